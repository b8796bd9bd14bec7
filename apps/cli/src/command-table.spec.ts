import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiCallError } from './client';
import { COMMANDS, completionScript, NETWORKED, NOT_NETWORKED, USAGE, usageLines } from './command-table';
import { Output } from './output';
import { saveProfile } from './profiles';

const label = (l: { command: string; sub: string }): string => `${l.command}${l.sub ? ` ${l.sub}` : ''}`;

describe('the command table and the help', () => {
  it('finds the documented command lines in the usage strings', () => {
    const lines = usageLines().map(label);
    for (const expected of ['participant receipts', 'coordinator aggregate', 'admin keys revoke', 'query', 'query status', 'study show', 'login']) expect(lines).toContain(expected);
  });

  it('lists every command line of every usage string in the top-level help', () => {
    const missing: string[] = [];
    for (const l of usageLines()) {
      // The help's line for a command names its subcommands as alternatives: "admin study create|invite|keys create|…".
      const entry = USAGE.split('\n').find((line) => line.startsWith(`  ${l.command} `) || line === `  ${l.command}`);
      const alternatives = entry?.trim().split(/\s{2,}/)[0]?.slice(l.command.length).trim().split('|') ?? [];
      if (!entry || (l.sub && !alternatives.includes(l.sub))) missing.push(label(l));
    }
    expect(missing).toEqual([]);
  });

  it('classifies every command line as networked or not, so a new one cannot skip the common flags', () => {
    const lines = [...new Set(usageLines().map(label))];
    expect(lines.filter((l) => !NETWORKED.includes(l) && !NOT_NETWORKED.includes(l))).toEqual([]);
    expect([...NETWORKED, ...NOT_NETWORKED].filter((l) => !lines.includes(l))).toEqual([]);
  });
});

describe('every networked command accepts the common flags', () => {
  let dir: string;
  let port: number;
  const saved = { ...process.env };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'confide-flags-'));
    process.env.XDG_CONFIG_HOME = dir;
    saveProfile('lab', { coordinator: 'http://127.0.0.1:1', token: 'tok-lab', savedAt: new Date().toISOString() });
    writeFileSync(join(dir, 'study.json'), '{"name":"s"}');
    // A port nobody listens on: every command must get as far as the network and fail there.
    const { createServer } = await import('node:net');
    const server = createServer();
    port = await new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port)));
    await new Promise((r) => server.close(r));
  });
  afterAll(() => {
    process.env = saved;
    rmSync(dir, { recursive: true, force: true });
  });

  /** The rest of a minimal command line for each networked command; decrypt and decrypt-share read a key file first. */
  const EXAMPLES: Record<string, readonly string[]> = {
    login: ['login'],
    'coordinator info': ['coordinator', 'info'],
    'admin study create': ['admin', 'study', 'create', '--file', 'STUDY'],
    'admin invite': ['admin', 'invite', '--study', 's', '--participant', 'p'],
    'admin keys create': ['admin', 'keys', 'create', '--role', 'auditor'],
    'admin keys list': ['admin', 'keys', 'list'],
    'admin keys revoke': ['admin', 'keys', 'revoke', '0b0e1e3c-5d0f-4f43-9c3c-1f1e2d3c4b5a'],
    'admin participants list': ['admin', 'participants', 'list', '--study', 's'],
    'admin participants remove': ['admin', 'participants', 'remove', '--study', 's', '--participant', 'site-1'],
    'admin status': ['admin', 'status'],
    'study list': ['study', 'list'],
    'study show': ['study', 'show', 's'],
    'participant list': ['participant', 'list', '--study', 's'],
    query: ['query', '--study', 's', '--stat', 'count', '--field', 'x'],
    'query status': ['query', 'status', 'q000000000000000000000000'],
    'query list': ['query', 'list', '--mine'],
    'query decrypt': ['query', 'decrypt', 'q000000000000000000000000', '--key', 'KEY'],
    'query decrypt-share': ['query', 'decrypt-share', 'q000000000000000000000000', '--share', 'KEY'],
    'ledger verify': ['ledger', 'verify'],
    'ledger show': ['ledger', 'show'],
    'ledger proof': ['ledger', 'proof', '--index', '0'],
  };

  it.each(NETWORKED.map((n) => [n]))('%s', async (name) => {
    const argv = EXAMPLES[name];
    expect(argv).toBeDefined();
    const [command, ...rest] = argv!.map((a) => (a === 'STUDY' ? join(dir, 'study.json') : a === 'KEY' ? join(dir, 'missing-key.json') : a));
    const common = ['--coordinator', `http://127.0.0.1:${port}`, '--token', 'tok', '--profile', 'lab', '--timeout', '2', '--json'];
    const out = new Output();
    const err = await COMMANDS[command!]!.run([...rest, ...common], out).then(
      () => undefined,
      (e: unknown) => e,
    );
    if (name === 'query decrypt' || name === 'query decrypt-share') {
      // Flags parsed; the key file is read before any request.
      expect((err as Error).message).toMatch(/no such file/);
    } else {
      expect(err).toBeInstanceOf(ApiCallError);
      expect(err).toMatchObject({ code: 'unreachable' });
      expect((err as Error).message).toContain(`http://127.0.0.1:${port}`);
    }
    expect(out.json).toBe(true);
  });
});

describe('shell completion', () => {
  const bash = (script: string, line: string): string => execFileSync('bash', ['-c', `${script}\n${line}`], { encoding: 'utf8' });

  it('registers a bash completion for confide that completes commands, subcommands and flags from the usage', () => {
    const script = completionScript('bash');
    expect(bash(script, 'complete -p confide')).toBe('complete -o default -F _confide confide\n');
    const complete = (words: string[]) => bash(script, `COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _confide; printf '%s\\n' "\${COMPREPLY[@]}"`).trim().split('\n');
    expect(complete(['confide', 'st'])).toEqual(['study']);
    expect(complete(['confide', 'p'])).toEqual(['participant']);
    expect(complete(['confide', 'participant', 're'])).toEqual(['receipts']);
    expect(complete(['confide', 'query', '--ti'])).toEqual(['--timeout']);
    expect(complete(['confide', 'admin', 'keys', 're'])).toEqual(['revoke']);
    expect(complete(['confide', 'admin', 'participants', 're'])).toEqual(['remove']);
    expect(complete(['confide', 'admin', 'p'])).toEqual(['participants']);
    expect(complete(['confide', 'admin', 'st'])).toEqual(['status', 'study']);
    expect(complete(['confide', 'participant', 'st'])).toEqual(['status']);
  });

  it('loads the zsh script through bashcompinit', () => {
    expect(completionScript('zsh')).toContain('autoload -U +X bashcompinit && bashcompinit');
    expect(completionScript('zsh')).toContain('complete -o default -F _confide confide');
  });
});
