import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI, ROOT, runCli } from '../support/cli';
import { Cluster } from '../support/cluster';

/**
 * Issue 13, "README examples run": every shell block of the README marked `<!-- example -->` (or
 * `<!-- example: ROLE -->`) runs, as the README's Development section says: bash with `set -euo pipefail`, in an
 * empty directory (with `examples/` linked in), against a real coordinator (embedded SQLite, a private
 * redis-server) with the `salaries` study of examples/salaries and its three participants enrolled and running,
 * `CONFIDE_URL` and `CONFIDE_TOKEN` (the ROLE's token; admin's by default) set, and `confide` on the PATH. An
 * example that drifts from the CLI fails here.
 */

export interface ReadmeExample {
  /** The README line of the block's first command. */
  readonly line: number;
  readonly role: 'admin' | 'researcher' | 'auditor';
  readonly script: string;
}

const ROLES = new Set(['admin', 'researcher', 'auditor']);

/**
 * The marked blocks: a line `<!-- example -->` or `<!-- example: ROLE -->`, then a fence opened with ```sh.
 * @throws Error for a marker not followed by a sh fence, or with an unknown role
 */
export function readmeExamples(markdown: string): ReadmeExample[] {
  const lines = markdown.split('\n');
  const out: ReadmeExample[] = [];
  lines.forEach((text, i) => {
    const marker = /^<!--\s*example(?::\s*(\w+))?\s*-->\s*$/.exec(text);
    if (!marker) return;
    const role = marker[1] ?? 'admin';
    if (!ROLES.has(role)) throw new Error(`README line ${i + 1}: unknown example role ${role}`);
    if (lines[i + 1]?.trim() !== '```sh') throw new Error(`README line ${i + 1}: an example marker must be followed by a \`\`\`sh fence`);
    const end = lines.findIndex((l, j) => j > i + 1 && l.trim() === '```');
    if (end === -1) throw new Error(`README line ${i + 2}: unclosed fence`);
    out.push({ line: i + 3, role: role as ReadmeExample['role'], script: lines.slice(i + 2, end).join('\n') });
  });
  return out;
}

const README = readFileSync(join(ROOT, 'README.md'), 'utf8');
const EXAMPLES = readmeExamples(README);

function bash(script: string, cwd: string, env: NodeJS.ProcessEnv, timeoutMs = 90_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-c', `set -euo pipefail\n${script}`], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`example did not finish in ${timeoutMs} ms\n${stderr}`));
    }, timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe('README examples', () => {
  let cluster: Cluster;
  let bin: string;
  const tokens: Record<string, string> = {};

  beforeAll(async () => {
    cluster = await Cluster.start({ database: 'sqlite' });
    const study = JSON.parse(readFileSync(join(ROOT, 'examples/salaries/study.json'), 'utf8')) as { name: string };
    await cluster.createStudy(study);
    for (const n of [1, 2, 3]) {
      const p = await cluster.enroll(study.name, `hospital-${n}`, join(ROOT, `examples/salaries/hospital-${n}.csv`));
      await cluster.run(p);
    }
    tokens.admin = cluster.adminToken;
    tokens.researcher = await cluster.apiKey('researcher');
    tokens.auditor = await cluster.apiKey('auditor');
    // `confide` on the PATH, as `npm install -g` or `npm link` would put it; `npx confide` resolves to it too.
    bin = join(cluster.dir, 'bin');
    mkdirSync(bin);
    writeFileSync(join(bin, 'confide'), `#!/bin/sh\nexec "${process.execPath}" "${CLI}" "$@"\n`);
    writeFileSync(join(bin, 'npx'), `#!/bin/sh\nif [ "$1" = confide ]; then shift; exec "${join(bin, 'confide')}" "$@"; fi\necho "npx $1: only npx confide is available to README examples" >&2; exit 127\n`);
    chmodSync(join(bin, 'confide'), 0o755);
    chmodSync(join(bin, 'npx'), 0o755);
  }, 180_000);
  afterAll(() => cluster?.stop(), 60_000);

  it('the README marks examples, each with a known role', () => {
    expect(EXAMPLES.length).toBeGreaterThanOrEqual(2);
    expect(EXAMPLES.map((e) => e.script).join('\n')).toMatch(/confide query .*--where/s);
  });

  it.each(EXAMPLES.map((e) => [e.line, e.role, e] as const))('the example at README line %i runs (%s)', async (_line, role, example) => {
    const dir = mkdtempSync(join(tmpdir(), 'confide-readme-'));
    try {
      symlinkSync(join(ROOT, 'examples'), join(dir, 'examples'));
      const env: NodeJS.ProcessEnv = { PATH: `${bin}:${process.env.PATH ?? ''}`, HOME: dir, CONFIDE_URL: cluster.url, CONFIDE_TOKEN: tokens[role] };
      const r = await bash(example.script, dir, env);
      expect({ code: r.code, stderr: r.code === 0 ? '' : r.stderr }).toEqual({ code: 0, stderr: '' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);

  it('ledger verify --state refuses a file holding a key, naming it, and leaves the file as it was', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'confide-readme-'));
    try {
      // As the README's auditor might: the key from `admin keys create --role auditor` saved as auditor.json.
      const keyFile = join(dir, 'auditor.json');
      const saved = await runCli(['admin', 'keys', 'create', '--role', 'auditor', '--json'], { env: { CONFIDE_URL: cluster.url, CONFIDE_TOKEN: cluster.adminToken } });
      writeFileSync(keyFile, saved.stdout);
      const auditor = (JSON.parse(saved.stdout) as { token: string }).token;
      const r = await runCli(['ledger', 'verify', '--state', keyFile], { env: { CONFIDE_URL: cluster.url, CONFIDE_TOKEN: auditor } });
      expect({ code: r.code, stderr: r.stderr.trim() }).toEqual({
        code: 2,
        stderr: expect.stringMatching(new RegExp(`^confide: --state ${keyFile.replace(/[.]/g, '\\.')}: holds an API key \\(a token\\), not a ledger state file\\. --state names the file where ledger verify keeps the checkpoint it verified last`)) as string,
      });
      expect(readFileSync(keyFile, 'utf8')).toBe(saved.stdout);
      // A PEM key, and a file that is no JSON at all, are named too.
      const pem = join(dir, 'identity.pem');
      await runCli(['keys', 'researcher', '--out', pem]);
      const r2 = await runCli(['ledger', 'verify', '--state', pem], { env: { CONFIDE_URL: cluster.url, CONFIDE_TOKEN: auditor } });
      expect([r2.code, r2.stderr]).toEqual([2, expect.stringContaining(`--state ${pem}: holds a PEM key, not a ledger state file`) as string]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
