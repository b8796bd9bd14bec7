import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cluster, type ParticipantProcess, until } from '../support/cluster';
import { CLI, ROOT, singleJson, stderrEvents, type RunResult } from '../support/cli';
import { SALARY_SELECT } from '../support/salary-query';
import { generateSalaryCsv, syntheticSalaryStudy } from '../support/synthetic';

// Issue 13, "List and show views", "Profiles and secrets" and "Robust waiting", as users met them: three workers,
// one of them offline; a coordinator restarted while a researcher waits; a coordinator that accepts connections
// and never answers; a revoked key; a token kept in a profile instead of the environment.

const ROUND_SECONDS = 6;

/** The CLI's environment with no connection settings of the test runner's own. */
function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const k of ['CONFIDE_URL', 'CONFIDE_TOKEN', 'CONFIDE_PROFILE', 'CONFIDE_TIMEOUT', 'XDG_CONFIG_HOME']) delete env[k];
  return { ...env, ...extra };
}

/** A running CLI process whose streams are collected, for commands followed while they run. */
interface Running {
  readonly child: ChildProcess;
  readonly done: Promise<RunResult>;
  stderr: () => string;
}

function startCli(args: readonly string[], env: NodeJS.ProcessEnv, input?: string): Running {
  const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, env, stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  if (input !== undefined) child.stdin!.end(input);
  const done = new Promise<RunResult>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
  return { child, done, stderr: () => stderr };
}

describe('CLI views, profiles and robust waiting (three participant processes, SQLite)', () => {
  let cluster: Cluster;
  let researcher: string;
  let sites: ParticipantProcess[] = [];
  let workersStarted = 0;

  beforeAll(async () => {
    cluster = await Cluster.start({ database: 'sqlite', round1Seconds: ROUND_SECONDS, round2Seconds: ROUND_SECONDS });
    // Two of three make a result: a query goes on without the one that is offline, after its round's deadline.
    const study = { ...syntheticSalaryStudy(), minParticipants: 2 };
    await cluster.createStudy(study);
    sites = await Promise.all(
      [1, 2, 3].map(async (i) => {
        const csv = join(cluster.dir, `site-${i}.csv`);
        writeFileSync(csv, generateSalaryCsv(1300 + i, 40));
        return cluster.enroll('salaries', `site-${i}`, csv);
      }),
    );
    // Enrollment itself made signed requests: only a check-in after this counts as the worker's.
    workersStarted = Date.now();
    await Promise.all(sites.map((p) => cluster.run(p)));
    researcher = await cluster.apiKey('researcher');
  }, 120_000);

  afterAll(async () => {
    await cluster?.stop();
  }, 60_000);

  const researcherEnv = (): NodeJS.ProcessEnv => cleanEnv({ CONFIDE_URL: cluster.url, CONFIDE_TOKEN: researcher });

  it('lists and shows studies, participants with their online state, queries, keys and the coordinator', async () => {
    // Online before any task: a worker checks in with a signed request when it starts.
    const seen = await until('every worker to have checked in', 20_000, async () => {
      const v = await cluster.get<{ participants: { online: boolean; lastSeen: string | null }[] }>('/v1/studies/salaries/participants', researcher);
      return v.participants.length === 3 && v.participants.every((p) => p.online && p.lastSeen !== null && Date.parse(p.lastSeen) >= workersStarted) ? v : undefined;
    });
    expect(seen.participants).toHaveLength(3);
    const wait = await cluster.cli(['query', '--study', 'salaries', ...SALARY_SELECT, '--wait', '--json'], researcher);
    expect(wait.code).toBe(0);
    const id = String(singleJson(wait.stdout).id);
    // The id came first, as a JSON event on stderr, before anything else was waited for.
    expect(wait.stderr.split('\n')[0]).toBe(JSON.stringify({ event: 'submitted', id }));

    const studies = (await cluster.cliJson(['study', 'list'], researcher)).studies as Record<string, unknown>[];
    expect(studies).toEqual([expect.objectContaining({ name: 'salaries', participants: 3, minParticipants: 2 })]);

    expect(await cluster.cliJson(['study', 'show', String(studies[0]!.id)], researcher)).toMatchObject({ id: studies[0]!.id, name: 'salaries' });
    const shown = await cluster.cli(['study', 'show', 'salaries'], researcher);
    expect(shown.code).toBe(0);
    expect(shown.stdout).toMatch(/salary\s+number\s+30000 to 400000, 2 decimals/);
    expect(shown.stdout).toMatch(/yrs_since_phd\s+number\s+0 to 60, integers/);
    expect(shown.stdout).toMatch(/rank\s+category\s+AsstProf \| AssocProf \| Prof/);
    expect(shown.stdout).toContain('at least 2 participants in every result');
    expect(shown.stdout).toContain('no differential privacy');
    const shownJson = await cluster.cliJson(['study', 'show', 'salaries'], researcher);
    expect((shownJson.schema as { fields: { name: string }[] }).fields.map((f) => f.name)).toEqual(['salary', 'yrs_since_phd', 'rank', 'sex']);

    const listed = await cluster.cliJson(['participant', 'list', '--study', 'salaries'], researcher);
    expect(listed.onlineWindowSeconds).toBe(45);
    const participants = listed.participants as { id: string; name: string; online: boolean; lastSeen: string | null }[];
    expect(participants.map((p) => [p.name, p.id, p.online])).toEqual(sites.map((s) => [s.name, s.participantId, true]));
    for (const p of participants) expect(Date.now() - Date.parse(p.lastSeen!)).toBeLessThan(120_000);
    const table = await cluster.cli(['participant', 'list', '--study', 'salaries'], researcher);
    expect(table.stdout).toMatch(new RegExp(`site-1\\s+${sites[0]!.participantId}\\s+online\\s+\\d+ s ago`));

    for (const filter of [['--study', 'salaries'], ['--mine']]) {
      const queries = (await cluster.cliJson(['query', 'list', ...filter], researcher)).queries as Record<string, unknown>[];
      expect(queries[0]).toMatchObject({ id, study: 'salaries', status: 'succeeded', statistics: ['mean(salary)', 'sum(salary)', 'count(yrs_since_phd)'] });
      expect(queries[0]!.finishedAt).toEqual(expect.any(String));
    }
    // Another researcher's --mine does not see it.
    const other = await cluster.apiKey('researcher');
    expect((await cluster.cliJson(['query', 'list', '--mine'], other)).queries).toEqual([]);

    const info = await cluster.cliJson(['coordinator', 'info'], researcher);
    const served = await cluster.get<{ fingerprint: string }>('/v1/coordinator');
    expect(info).toMatchObject({ url: cluster.url, fingerprint: served.fingerprint, version: (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version });
    expect(info.fingerprint).toMatch(/^[0-9a-f]{64}$/);

    const keys = await cluster.cli(['admin', 'keys', 'list', '--json']);
    expect(keys.code).toBe(0);
    expect(keys.stdout).not.toContain(researcher);
    expect((singleJson(keys.stdout).keys as { role: string; revokedAt: null }[]).filter((k) => k.role === 'researcher').length).toBeGreaterThanOrEqual(2);
  }, 120_000);

  it('fails in about the timeout, saying so, when the coordinator accepts connections and never answers', async () => {
    const sockets: Socket[] = [];
    const hung: Server = createServer((s) => sockets.push(s));
    const port = await new Promise<number>((resolve) => hung.listen(0, '127.0.0.1', () => resolve((hung.address() as { port: number }).port)));
    try {
      const url = `http://127.0.0.1:${port}`;
      for (const args of [['query', 'status', 'q0123456789abcdef01234567'], ['ledger', 'verify']]) {
        const started = Date.now();
        const r = await startCli([...args, '--coordinator', url, '--token', 'tok', '--timeout', '2'], cleanEnv()).done;
        const took = Date.now() - started;
        expect(r.code).toBe(1);
        expect(r.stderr).toContain(`no answer from the coordinator at ${url} within 2 s`);
        expect(took).toBeGreaterThanOrEqual(1900);
        expect(took).toBeLessThan(8000);
      }
      // The participant's own commands, whose coordinator is the one its home pinned at enrollment.
      const home = join(cluster.dir, 'hung-home');
      cpSync(sites[0]!.home, home, { recursive: true });
      const identityFile = join(home, 'identity.json');
      writeFileSync(identityFile, JSON.stringify({ ...(JSON.parse(readFileSync(identityFile, 'utf8')) as object), coordinatorUrl: url }));
      for (const args of [['participant', 'receipts', '--home', home, '--verify'], ['participant', 'log', '--home', home]]) {
        const started = Date.now();
        const r = await startCli([...args, '--timeout', '2'], cleanEnv()).done;
        const took = Date.now() - started;
        expect(r.code).toBe(1);
        expect(`${r.stdout}${r.stderr}`).toContain(`no answer from the coordinator at ${url} within 2 s`);
        expect(took).toBeGreaterThanOrEqual(1900);
        expect(took).toBeLessThan(8000);
      }
      // Enrollment too, before anything is written: its first request reads the invitation.
      const csv = join(cluster.dir, 'hung-site.csv');
      writeFileSync(csv, generateSalaryCsv(4242, 5));
      const enrollHome = join(cluster.dir, 'hung-enroll-home');
      const started = Date.now();
      const r = await startCli(['participant', 'enroll', '--invite', 'inv_never_read', '--home', enrollHome, '--data', csv, '--coordinator', url, '--accept-settings', '--timeout', '2'], cleanEnv()).done;
      const took = Date.now() - started;
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`no answer from the coordinator at ${url} within 2 s (GET /v1/invitation)`);
      expect(took).toBeGreaterThanOrEqual(1900);
      expect(took).toBeLessThan(8000);
      expect(existsSync(enrollHome)).toBe(false);
    } finally {
      for (const s of sockets) s.destroy();
      hung.close();
    }
  }, 60_000);

  it('names the participant --wait is waiting for while one worker is offline', async () => {
    const offline = sites[2]!;
    await cluster.kill(offline, 'SIGTERM');
    try {
      const r = await cluster.cli(['query', '--study', 'salaries', '--stat', 'count', '--field', 'salary', '--deadline', String(ROUND_SECONDS), '--wait', '--json'], researcher);
      expect(r.code).toBe(0);
      const id = String(singleJson(r.stdout).id);
      const events = stderrEvents(r.stderr);
      expect(events[0]).toEqual({ event: 'submitted', id });
      const waiting = events.filter((e) => e.event === 'waiting');
      // Once the others answered, only the offline one is named: by its invited name and id, nothing else.
      const alone = [{ id: offline.participantId, name: offline.name }];
      expect(waiting).toContainEqual({ event: 'waiting', id, round: 1, participants: alone });
      expect(waiting.at(-1)).toMatchObject({ event: 'waiting', id, participants: alone });
      expect(singleJson(r.stdout)).toMatchObject({ status: 'succeeded', participants: 2 });
      const status = await cluster.get<{ progress: unknown }>(`/v1/queries/${id}`, researcher);
      expect(status.progress).toBeNull();
    } finally {
      await cluster.run(offline);
    }
  }, 120_000);

  it('prints the id first and still gets the result when the coordinator restarts during --wait', async () => {
    const offline = sites[2]!;
    // One worker offline holds round 1 open until its deadline: time to restart the coordinator mid-query.
    await cluster.kill(offline, 'SIGTERM');
    try {
      const waiting = startCli(['query', '--study', 'salaries', '--stat', 'count', '--field', 'salary', '--deadline', String(ROUND_SECONDS * 2), '--wait'], researcherEnv());
      const id = await until('the query id on stderr', 30_000, () => Promise.resolve(/^submitted query (q[0-9a-f]{24});/.exec(waiting.stderr())?.[1]));
      expect(waiting.stderr().startsWith(`submitted query ${id};`)).toBe(true);
      await until('the CLI to name who it waits for', 30_000, () => Promise.resolve(waiting.stderr().includes(`waiting for ${offline.name}`) ? true : undefined));
      await cluster.stopCoordinator('SIGTERM');
      await until('the CLI to notice the outage', 30_000, () => Promise.resolve(waiting.stderr().includes('the coordinator is not answering') ? true : undefined));
      await cluster.startCoordinator();
      const r = await waiting.done;
      expect(r.code).toBe(0);
      expect(r.stderr).toContain(`the coordinator answers again; still following query ${id}`);
      expect(r.stdout).toContain(`query ${id}: 2 participants contributed`);
    } finally {
      await cluster.run(offline);
    }
  }, 180_000);

  it('refuses a revoked key at once, with 401 naming the key and when it was revoked', async () => {
    const created = await cluster.cliJson(['admin', 'keys', 'create', '--role', 'auditor', '--label', 'temp auditor']);
    const token = String(created.token);
    expect((await cluster.cli(['study', 'list'], token)).code).toBe(0);
    const revoked = await cluster.cliJson(['admin', 'keys', 'revoke', String(created.id)]);
    expect(revoked).toMatchObject({ id: created.id, role: 'auditor', label: 'temp auditor' });
    expect(Date.now() - Date.parse(String(revoked.revokedAt))).toBeLessThan(60_000);
    const refused = await cluster.cli(['study', 'list', '--json'], token);
    expect(refused.code).toBe(1);
    expect(singleJson(refused.stdout)).toEqual({ error: 'unauthenticated', message: `API key ${String(created.id)} was revoked at ${String(revoked.revokedAt)}` });
    const res = await fetch(`${cluster.url}/v1/studies`, { headers: { authorization: `Bearer ${token}` } });
    expect(res.status).toBe(401);
    const again = await cluster.cli(['admin', 'keys', 'revoke', String(created.id)]);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain(`API key ${String(created.id)} was already revoked`);
    const listed = (await cluster.cliJson(['admin', 'keys', 'list'])).keys as { id: string; revokedAt: string | null }[];
    expect(listed.find((k) => k.id === created.id)?.revokedAt).toBe(revoked.revokedAt);
  }, 60_000);

  it('logs in to a profile from standard input, then runs commands with no token in their arguments or environment', async () => {
    const config = mkdtempSync(join(tmpdir(), 'confide-e2e-profile-'));
    try {
      const env = cleanEnv({ XDG_CONFIG_HOME: config });
      const login = await startCli(['login', '--coordinator', cluster.url, '--profile', 'lab'], env, `${researcher}\n`).done;
      expect(login.code).toBe(0);
      expect(login.stdout).toContain(`logged in to ${cluster.url} as profile lab`);
      const file = join(config, 'confide', 'profiles.json');
      expect(statSync(join(config, 'confide')).mode & 0o777).toBe(0o700);
      expect(statSync(file).mode & 0o777).toBe(0o600);

      const args = ['query', '--study', 'salaries', '--stat', 'count', '--field', 'salary', '--wait', '--json', '--profile', 'lab'];
      const run = startCli(args, env);
      // What `ps` shows of the running command: no token, and none in its environment either.
      const cmdline = readFileSync(`/proc/${run.child.pid!}/cmdline`, 'utf8');
      expect(cmdline).toContain('--profile');
      expect(cmdline).not.toContain(researcher);
      expect(Object.values(env).join('\n')).not.toContain(researcher);
      const done = await run.done;
      expect(done.code).toBe(0);
      expect(singleJson(done.stdout)).toMatchObject({ status: 'succeeded' });

      // CONFIDE_PROFILE selects it too; a flag still beats it.
      expect((await startCli(['study', 'list'], { ...env, CONFIDE_PROFILE: 'lab' }).done).code).toBe(0);
      const bad = await startCli(['study', 'list', '--token', 'cfd_key_wrong'], { ...env, CONFIDE_PROFILE: 'lab' }).done;
      expect(bad.code).toBe(1);
      expect(bad.stderr).toContain('unknown API key');

      chmodSync(file, 0o644);
      const loose = await startCli(['study', 'list', '--profile', 'lab'], env).done;
      expect(loose.code).toBe(2);
      expect(loose.stderr).toContain(`refusing to read ${file}: its mode is 0644`);
      chmodSync(file, 0o600);

      expect((await startCli(['logout', '--profile', 'lab'], env).done).code).toBe(0);
      const gone = await startCli(['study', 'list', '--profile', 'lab'], env).done;
      expect(gone.code).toBe(2);
      expect(gone.stderr).toContain('no profile named "lab"');
    } finally {
      rmSync(config, { recursive: true, force: true });
    }
  }, 120_000);
  it('reads the key on a terminal without echoing it, so it is not on screen or in scroll-back', async () => {
    const config = mkdtempSync(join(tmpdir(), 'confide-e2e-tty-'));
    // script(1) runs the CLI on a real pseudo-terminal and copies everything the terminal shows to its stdout.
    const child = spawn('script', ['-q', '-e', '-c', `'${process.execPath}' '${CLI}' login --coordinator ${cluster.url} --profile tty`, '/dev/null'], {
      cwd: ROOT,
      env: cleanEnv({ XDG_CONFIG_HOME: config }),
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let screen = '';
    child.stdout.on('data', (d: Buffer) => (screen += d.toString()));
    const closed = new Promise<number | null>((resolve) => child.on('close', resolve));
    try {
      await until('the key prompt', 15_000, () => Promise.resolve(screen.includes('API key') ? true : undefined));
      child.stdin.write(`${researcher}\r`);
      await until('the login', 15_000, () => Promise.resolve(/logged in|confide:/.test(screen) ? true : undefined));
      child.stdin.end();
      expect(await closed).toBe(0);
      expect(screen).toContain(`logged in to ${cluster.url} as profile tty`);
      expect(screen).not.toContain(researcher);
      expect(readFileSync(join(config, 'confide', 'profiles.json'), 'utf8')).toContain(researcher);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
      rmSync(config, { recursive: true, force: true });
    }
  }, 60_000);
});

describe('the CLI describes itself: --version, help COMMAND, completion', () => {
  const cli = (args: readonly string[]) => startCli(args, cleanEnv()).done;

  it('prints its version from package.json, a command’s help, and refuses help for what is not a command', async () => {
    const version = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
    expect(await cli(['--version'])).toMatchObject({ code: 0, stdout: `confide ${version}\n` });
    const help = await cli(['help', 'study']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('confide study show NAME');
    expect(help.stdout).toContain('--timeout SECONDS');
    const top = await cli(['--help']);
    for (const line of ['participant enroll|update|run|receipts|log|check|status|list', 'coordinator start|aggregate|info', 'admin study create|invite|keys create|keys list|keys revoke|participants list|participants remove|status', 'login', 'completion bash|zsh']) expect(top.stdout).toContain(line);
    const nope = await cli(['help', 'nope']);
    expect(nope.code).toBe(2);
    expect(nope.stderr).toContain('confide: no help for "nope": not a command');
  });

  it('prints a bash completion script that registers confide and completes a prefix', async () => {
    const script = `source <("${process.execPath}" "${CLI}" completion bash)
complete -p confide
COMP_WORDS=(confide admin keys re); COMP_CWORD=3; _confide; echo "\${COMPREPLY[@]}"
COMP_WORDS=(confide qu); COMP_CWORD=1; _confide; echo "\${COMPREPLY[@]}"`;
    const r = await new Promise<RunResult>((resolve, reject) => {
      const child = spawn('bash', ['-c', script], { cwd: ROOT, env: cleanEnv() });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.on('error', reject);
      child.on('close', (code) => resolve({ code, stdout, stderr }));
    });
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(r.stdout.split('\n')).toEqual(['complete -o default -F _confide confide', 'revoke', 'query', '']);
  });
});
