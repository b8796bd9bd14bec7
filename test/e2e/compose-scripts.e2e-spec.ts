import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CLI, ROOT } from '../support/cli';
import { Cluster, until } from '../support/cluster';

// docker-compose.yml's one-shot and participant containers run docker/*.sh. No container runtime here, so the
// scripts run as they are, on this machine, with the volumes as directories and `confide` on PATH as the image
// links it: setup (twice, as on a second `docker compose up`), three participants, and the researcher's query.

const EXAMPLES = join(ROOT, 'examples');
const PARTICIPANTS = ['hospital-1', 'hospital-2', 'hospital-3'] as const;

interface Script {
  readonly child: ChildProcess;
  readonly output: () => string;
  readonly exited: Promise<number | null>;
}

/** The plaintext mean and count of the salary column over the three example files (empty cells are missing). */
function plaintextSalary(): { mean: number; count: number } {
  let sum = 0;
  let count = 0;
  for (const p of PARTICIPANTS) {
    const [header, ...rows] = readFileSync(join(EXAMPLES, 'salaries', `${p}.csv`), 'utf8').trim().split(/\r?\n/);
    const column = header!.split(',').map((h) => h.replace(/"/g, '')).indexOf('salary');
    for (const row of rows) {
      const cell = row.split(',')[column]!.replace(/"/g, '').trim();
      if (cell === '') continue;
      sum += Number(cell);
      count++;
    }
  }
  return { mean: sum / count, count };
}

describe('docker compose scripts (docker/*.sh)', () => {
  let cluster: Cluster;
  let env: NodeJS.ProcessEnv;
  const running: Script[] = [];

  const run = (script: string, extra: NodeJS.ProcessEnv = {}): Script => {
    const child = spawn('/bin/sh', [join(ROOT, 'docker', script)], { cwd: ROOT, env: { ...env, ...extra }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const s = { child, output: () => output, exited };
    running.push(s);
    return s;
  };

  /** Runs a one-shot script to its end, failing after `timeoutMs`. */
  const runToEnd = async (script: string, timeoutMs: number): Promise<{ code: number | null; output: string }> => {
    const s = run(script);
    const timer = setTimeout(() => s.child.kill('SIGKILL'), timeoutMs);
    const code = await s.exited;
    clearTimeout(timer);
    return { code, output: s.output() };
  };

  beforeAll(async () => {
    cluster = await Cluster.start({ database: 'postgres' });
    const bin = join(cluster.dir, 'bin');
    mkdirSync(bin);
    writeFileSync(join(bin, 'confide'), `#!/bin/sh\nexec "${process.execPath}" "${CLI}" "$@"\n`);
    chmodSync(join(bin, 'confide'), 0o755);
    const invites = join(cluster.dir, 'invites');
    mkdirSync(invites);
    env = {
      ...process.env,
      PATH: `${bin}:${process.env.PATH ?? ''}`,
      CONFIDE_URL: cluster.url,
      CONFIDE_TOKEN: cluster.adminToken,
      CONFIDE_INVITES_DIR: invites,
      CONFIDE_EXAMPLES_DIR: EXAMPLES,
    };
  }, 60_000);

  afterAll(async () => {
    for (const s of running) if (s.child.exitCode === null && s.child.signalCode === null) s.child.kill('SIGTERM');
    await Promise.all(running.map((s) => s.exited));
    await cluster?.stop();
  }, 60_000);

  it('creates the study, the invitations and the researcher key, and does it again without looping on a second up', async () => {
    const first = await runToEnd('setup.sh', 30_000);
    expect(first).toMatchObject({ code: 0, output: expect.stringContaining('study and invitations ready') as string });
    const invites = env.CONFIDE_INVITES_DIR!;
    const tokens = Object.fromEntries([...PARTICIPANTS, 'researcher'].map((n) => [n, readFileSync(join(invites, `${n}.token`), 'utf8').trim()]));
    for (const t of Object.values(tokens)) expect(t).toMatch(/^\S{20,}$/);
    expect(JSON.parse(readFileSync(join(invites, 'study.json'), 'utf8'))).toMatchObject({ name: 'salaries' });

    // The study exists now: the second run must take the conflict as done, not as a coordinator still starting.
    const second = await runToEnd('setup.sh', 15_000);
    expect(second.output).not.toContain('waiting for the coordinator');
    expect(second.code).toBe(0);
    for (const [n, t] of Object.entries(tokens)) expect(readFileSync(join(invites, `${n}.token`), 'utf8').trim()).toBe(t);
  }, 60_000);

  it('enrolls three participants, runs their workers, and answers the researcher with the plaintext mean', async () => {
    const workers = PARTICIPANTS.map((p) => run('participant.sh', { PARTICIPANT: p, CONFIDE_PARTICIPANT_HOME: join(cluster.dir, 'homes', p) }));
    await until('three workers ready', 60_000, () => Promise.resolve(workers.every((w) => w.output().includes('worker ready')) ? true : undefined));
    for (const p of PARTICIPANTS) cluster.adopt(p, join(cluster.dir, 'homes', p));

    const query = await runToEnd('query.sh', 90_000);
    expect(query.code).toBe(0);
    const expected = plaintextSalary();
    const mean = /mean\(salary\) = ([0-9.]+)\s+\(n = (\d+)\)/.exec(query.output);
    expect(mean).not.toBeNull();
    expect(Number(mean![2])).toBe(expected.count);
    expect(Number(mean![1])).toBeCloseTo(expected.mean, 6);
    expect(query.output).toContain('3 participants contributed');
  }, 180_000);

  it('restarts a participant from its home without a new invitation', async () => {
    const home = join(cluster.dir, 'homes', 'hospital-2');
    const again = run('participant.sh', { PARTICIPANT: 'hospital-2', CONFIDE_PARTICIPANT_HOME: home, CONFIDE_INVITES_DIR: join(cluster.dir, 'no-invites') });
    await until('the restarted worker to be ready', 30_000, () => Promise.resolve(again.output().includes('worker ready') ? true : undefined));
    expect(again.output()).not.toContain('waiting for an invitation');
  }, 60_000);
});
