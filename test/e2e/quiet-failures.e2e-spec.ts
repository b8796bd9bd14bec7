import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, startLocalRedis, type LocalRedis } from '../../apps/cli/src/local-redis';
import { assertBuilt, CLI, COORDINATOR, ROOT } from '../support/cli';
import { Cluster, until, type ParticipantProcess } from '../support/cluster';
import { generateSalaryCsv, syntheticSalaryStudy } from '../support/synthetic';

/**
 * Issue 13, "quiet failure modes": with Redis or the database unreachable, each process says so once (what is down,
 * where without credentials, what to check), reminds every minute, says once when it is back, and stops within 10 s
 * of SIGTERM; /health names what is down. Real processes, a private redis-server killed and restarted, and
 * PostgreSQL behind a relay taken down (the machine's PostgreSQL is never touched).
 */

/** How long each outage is watched for lines: what a user sees in the first seconds, retries and all. */
const WINDOW_MS = 10_000;
const STOP_BOUND_MS = 10_000;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A log's lines from `offset` on, parsed when they are JSON (pino), kept as text otherwise. */
function linesOf(text: string): { level: number | null; msg: string; raw: string }[] {
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((raw) => {
      try {
        const o = JSON.parse(raw) as { level?: number; msg?: string };
        return { level: o.level ?? null, msg: String(o.msg ?? ''), raw };
      } catch {
        return { level: null, msg: raw, raw };
      }
    });
}

/** What an operator sees at the default level (info and up, and anything not from the logger). */
const seen = (text: string) => linesOf(text).filter((l) => l.level === null || l.level >= 30);

/** A growing log file, read from a mark. */
class LogTail {
  private offset = 0;
  constructor(private readonly file: string) {}
  mark(): void {
    this.offset = this.text(0).length;
  }
  text(from = this.offset): string {
    try {
      return readFileSync(this.file, 'utf8').slice(from);
    } catch {
      return '';
    }
  }
}

function exitOf(child: ChildProcess): Promise<{ code: number | null; signal: string | null }> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
}

/** SIGTERM, and how long the process took to exit. */
async function timeStop(child: ChildProcess): Promise<{ ms: number; code: number | null; signal: string | null }> {
  const exited = exitOf(child);
  const t0 = Date.now();
  child.kill('SIGTERM');
  const { code, signal } = await exited;
  return { ms: Date.now() - t0, code, signal };
}

describe('quiet failure modes: Redis goes away under a running coordinator and worker', () => {
  let cluster: Cluster;
  let site: ParticipantProcess;
  let coordinatorLog: LogTail;
  let workerLog: LogTail;
  /** The worker is told its Redis with credentials in the URL (its own come from its home): they must not be shown. */
  const urlSecret = `url-secret-${Date.now()}`;

  beforeAll(async () => {
    cluster = await Cluster.start({ database: 'sqlite' });
    const study = await cluster.createStudy(syntheticSalaryStudy());
    const csv = join(cluster.dir, 'site-1.csv');
    writeFileSync(csv, generateSalaryCsv(1301, 20));
    site = await cluster.enroll(study, 'site-1', csv);
    const workerUrl = cluster.publicRedisUrl.replace('redis://', `redis://someone:${urlSecret}@`);
    const child = spawn(process.execPath, [CLI, 'participant', 'run', '--home', site.home], { cwd: ROOT, env: { ...process.env, LOG_LEVEL: 'debug', CONFIDE_REDIS_URL: workerUrl }, stdio: ['ignore', 'ignore', 'pipe'] });
    const file = join(cluster.dir, 'worker-site-1.stderr');
    writeFileSync(file, '');
    child.stderr.on('data', (d: Buffer) => writeFileSync(file, d, { flag: 'a' }));
    site.process = child;
    workerLog = new LogTail(file);
    coordinatorLog = new LogTail(join(cluster.dir, 'coordinator.log'));
    await until('the worker to be ready', 20_000, () => Promise.resolve(workerLog.text(0).includes('worker ready') ? true : undefined));
  }, 120_000);
  afterAll(() => cluster?.stop(), 60_000);

  it('each process logs one line naming Redis, its URL without credentials and what to check; /health names it; one line when it is back', async () => {
    coordinatorLog.mark();
    workerLog.mark();
    await cluster.killRedis();
    const killed = Date.now();
    // /health: 503, naming the dependency that is down and each connection with its state.
    // (Its ping may fail a moment before the client sees its connection close: wait for both.)
    const body = await until('/health to answer 503 with the producer connection down', 5_000, async () => {
      const res = await fetch(`${cluster.url}/health`, { signal: AbortSignal.timeout(3000) });
      if (res.status !== 503) return undefined;
      const b = (await res.json()) as { dependencies?: { redis?: { connections?: { name: string; state: string }[] } } } & Record<string, unknown>;
      return b.dependencies?.redis?.connections?.some((c) => c.name === 'producer' && c.state !== 'ready') ? b : undefined;
    });
    expect(body).toMatchObject({
      status: 'unavailable',
      database: 'ok',
      redis: 'down',
      dependencies: {
        database: { state: 'up' },
        redis: { state: 'down', connections: expect.arrayContaining([{ name: 'producer', state: expect.not.stringMatching(/^ready$/) as string }, { name: 'control worker', state: expect.any(String) as string }]) as unknown },
      },
    });
    // A load balancer keeps asking meanwhile; none of that is news in the log.
    while (Date.now() - killed < WINDOW_MS) {
      await fetch(`${cluster.url}/health`, { signal: AbortSignal.timeout(3000) }).catch(() => undefined);
      await sleep(500);
    }
    const coordinator = seen(coordinatorLog.text());
    const worker = seen(workerLog.text());
    const unreachable = (lines: { msg: string }[]) => lines.filter((l) => /unreachable/.test(l.msg)).map((l) => l.msg);
    expect(unreachable(coordinator)).toEqual([
      `Redis unreachable at ${cluster.publicRedisUrl} (coordinator): the connection closed. Check: is redis-server running at ${cluster.publicRedisUrl}? is REDIS_URL right? Retrying with backoff.`,
    ]);
    expect(unreachable(worker)).toEqual([expect.stringMatching(new RegExp(`^Redis unreachable at ${cluster.publicRedisUrl.replace(/[.]/g, '\\.')} \\(task queue\\): .*Check: is redis-server running at .*--redis or CONFIDE_REDIS_URL`))]);
    // No reconnect storm: a handful of lines in 10 s, and no raw stack traces.
    expect(coordinator.length + worker.length).toBeLessThan(10);
    for (const text of [coordinatorLog.text(), workerLog.text()]) {
      expect(text).not.toMatch(/Unhandled error event|\n\s+at /);
      expect(text).not.toContain(urlSecret);
      expect(text).not.toContain(new URL(cluster.redisUrl).password);
    }

    await cluster.restartRedis();
    await until('both processes to say Redis is back', 20_000, () =>
      Promise.resolve(
        seen(coordinatorLog.text()).some((l) => l.msg.startsWith(`Redis is back at ${cluster.publicRedisUrl} (coordinator) after `)) &&
          seen(workerLog.text()).some((l) => l.msg.startsWith(`Redis is back at ${cluster.publicRedisUrl} (task queue) after `))
          ? true
          : undefined,
      ),
    );
    await until('/health to answer 200', 10_000, async () => ((await fetch(`${cluster.url}/health`)).status === 200 ? true : undefined));
    expect(unreachable(seen(coordinatorLog.text()))).toHaveLength(1);
    expect(unreachable(seen(workerLog.text()))).toHaveLength(1);
  }, 90_000);

  it('SIGTERM during the outage ends the coordinator and the worker within 10 s, saying what it dropped', async () => {
    coordinatorLog.mark();
    workerLog.mark();
    await cluster.killRedis();
    await until('the outage to be reported', 10_000, () => Promise.resolve(/unreachable/.test(coordinatorLog.text()) && /unreachable/.test(workerLog.text()) ? true : undefined));
    const t0 = Date.now();
    const [w, [coordinatorCode, coordinatorMs]] = await Promise.all([timeStop(site.process!), cluster.stopCoordinator('SIGTERM').then((code) => [code, Date.now() - t0] as const)]);
    expect({ worker: w.ms < STOP_BOUND_MS, coordinator: coordinatorMs < STOP_BOUND_MS }).toEqual({ worker: true, coordinator: true });
    expect({ worker: [w.code, w.signal], coordinator: coordinatorCode }).toEqual({ worker: [0, null], coordinator: 0 });
    expect(workerLog.text()).toMatch(/stopping without draining: Redis did not answer in time; dropping task queue Redis connection/);
    expect(coordinatorLog.text()).toMatch(/stopping without draining: Redis or the database did not answer in time; dropping .*Redis connection producer/);
    site.process = undefined;
  }, 60_000);

  it('a worker started while Redis is down says so once, and SIGTERM ends it within 10 s', async () => {
    // Redis is still down from the test before.
    const file = join(cluster.dir, 'worker-late.stderr');
    writeFileSync(file, '');
    const child = spawn(process.execPath, [CLI, 'participant', 'run', '--home', site.home], { cwd: ROOT, env: { ...process.env, LOG_LEVEL: 'info' }, stdio: ['ignore', 'ignore', 'pipe'] });
    child.stderr.on('data', (d: Buffer) => writeFileSync(file, d, { flag: 'a' }));
    const log = new LogTail(file);
    const started = Date.now();
    try {
      await until('the outage line', 5_000, () => Promise.resolve(/unreachable/.test(log.text(0)) ? true : undefined));
      await sleep(WINDOW_MS / 2 - (Date.now() - started));
      // Its own lines (the data file checked at start) may come too; about Redis, one line.
      const aboutRedis = seen(log.text(0)).filter((l) => !/^data file .* checked: /.test(l.msg));
      expect(aboutRedis.map((l) => l.msg)).toEqual([expect.stringMatching(/^Redis unreachable at redis:\/\/127\.0\.0\.1:\d+ \(task queue\): connect ECONNREFUSED .*Check: /)]);
      const stopped = await timeStop(child);
      expect(stopped.ms).toBeLessThan(STOP_BOUND_MS);
      expect(log.text(0)).not.toMatch(/Unhandled error event|\n\s+at /);
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
  }, 30_000);
});

/** Starts the built coordinator on embedded SQLite (or `env`'s DATABASE_URL) against `redisUrl`; stderr collected. */
async function spawnCoordinator(redisUrl: string, env: NodeJS.ProcessEnv = {}) {
  const port = await freePort();
  const dataDir = mkdtempSync(join(tmpdir(), 'confide-quiet-'));
  const childEnv: NodeJS.ProcessEnv = { ...process.env, PORT: String(port), REDIS_URL: redisUrl, CONFIDE_ADMIN_TOKEN: 'quiet-test-admin-token-0123456789', CONFIDE_DATA_DIR: dataDir, CONFIDE_QUEUE_PREFIX: `confide-quiet-${port}`, LOG_LEVEL: 'info', ...env };
  if (!env.DATABASE_URL) delete childEnv.DATABASE_URL;
  delete childEnv.CONFIDE_PUBLIC_REDIS_URL;
  const child = spawn(process.execPath, [COORDINATOR], { cwd: ROOT, env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return { url: `http://127.0.0.1:${port}`, child, stderr: () => stderr, cleanup: () => rmSync(dataDir, { recursive: true, force: true }) };
}

describe('quiet failure modes: a coordinator started before its Redis, or without its database', () => {
  let redis: LocalRedis | undefined;
  beforeAll(assertBuilt);
  afterEach(async () => {
    await redis?.stop();
    redis = undefined;
  });

  it('waits for Redis with one line saying where and what to check, and starts when Redis comes up', async () => {
    redis = await startLocalRedis();
    await redis.kill();
    const password = new URL(redis.adminUrl).password;
    const c = await spawnCoordinator(redis.adminUrl);
    try {
      const started = Date.now();
      await until('the outage line', 5_000, () => Promise.resolve(/unreachable/.test(c.stderr()) ? true : undefined));
      await sleep(WINDOW_MS - (Date.now() - started));
      expect(seen(c.stderr()).filter((l) => /unreachable/.test(l.msg)).map((l) => l.msg)).toEqual([
        expect.stringMatching(new RegExp(`^Redis unreachable at ${redis.publicUrl.replace(/[.]/g, '\\.')} \\(coordinator\\): connect ECONNREFUSED .*Check: is redis-server running at .*\\? is REDIS_URL right\\?`)),
      ]);
      expect(c.stderr()).not.toContain(password);
      expect(c.stderr()).not.toMatch(/Unhandled error event|\n\s+at /);
      await redis.restart();
      await until('the coordinator to start', 20_000, async () => ((await fetch(`${c.url}/health`).catch(() => undefined))?.status === 200 ? true : undefined));
      await until('the coordinator to say Redis is back', 5_000, () => Promise.resolve(seen(c.stderr()).some((l) => /^Redis is back at redis:\/\/127\.0\.0\.1:\d+ \(coordinator\) after \d+ s$/.test(l.msg)) ? true : undefined));
      expect(seen(c.stderr()).filter((l) => /unreachable/.test(l.msg))).toHaveLength(1);
    } finally {
      const stopped = await timeStop(c.child);
      expect(stopped.ms).toBeLessThan(STOP_BOUND_MS);
      c.cleanup();
    }
  }, 60_000);

  it('SIGTERM while it waits for Redis at boot ends it at once', async () => {
    redis = await startLocalRedis();
    await redis.kill();
    const c = await spawnCoordinator(redis.adminUrl);
    await until('the outage line', 5_000, () => Promise.resolve(/unreachable/.test(c.stderr()) ? true : undefined));
    const stopped = await timeStop(c.child);
    expect(stopped.ms).toBeLessThan(STOP_BOUND_MS);
    c.cleanup();
  }, 30_000);

  it('refuses to start without its database, naming it without credentials and what to check', async () => {
    redis = await startLocalRedis();
    const secret = `pg-secret-${Date.now()}`;
    const port = await freePort();
    const c = await spawnCoordinator(redis.adminUrl, { DATABASE_URL: `postgres://confide:${secret}@127.0.0.1:${port}/confide` });
    expect((await exitOf(c.child)).code).toBe(1);
    expect(c.stderr()).toContain(`coordinator: database unreachable at postgres://127.0.0.1:${port}/confide: connect ECONNREFUSED 127.0.0.1:${port}. Check: is PostgreSQL running at postgres://127.0.0.1:${port}/confide? is DATABASE_URL right?`);
    expect(c.stderr()).not.toContain(secret);
    c.cleanup();
  }, 30_000);
});

describe('quiet failure modes: the database goes away under a running coordinator (PostgreSQL through a relay)', () => {
  let cluster: Cluster;
  let log: LogTail;
  const secret = `pg-secret-${Date.now()}`;

  beforeAll(async () => {
    cluster = await Cluster.start({ database: 'postgres', databaseProxy: true, env: { CONFIDE_SWEEP_SECONDS: '2' } });
    // The test PostgreSQL trusts every login; a password in the URL is what an operator's URL holds, and must not show.
    await cluster.stopCoordinator('SIGTERM');
    cluster.databaseUrl = cluster.databaseUrl!.replace('postgres://postgres@', `postgres://postgres:${secret}@`);
    await cluster.startCoordinator();
    log = new LogTail(join(cluster.dir, 'coordinator.log'));
  }, 120_000);
  afterAll(async () => {
    await cluster?.databaseUp();
    await cluster?.stop();
  }, 60_000);

  it('one line naming the database, its URL without credentials and what to check; /health names it; one line when it is back', async () => {
    log.mark();
    await cluster.databaseDown();
    const down = Date.now();
    const health = await until('/health to answer 503', 5_000, async () => {
      const res = await fetch(`${cluster.url}/health`, { signal: AbortSignal.timeout(3000) });
      return res.status === 503 ? res : undefined;
    });
    expect(await health.json()).toMatchObject({ status: 'unavailable', database: 'down', redis: 'ok', dependencies: { database: { state: 'down' }, redis: { state: 'up' } } });
    while (Date.now() - down < WINDOW_MS) {
      await fetch(`${cluster.url}/health`, { signal: AbortSignal.timeout(3000) }).catch(() => undefined);
      await sleep(500);
    }
    const shown = new URL(cluster.databaseUrl!);
    const url = `postgres://${shown.host}${shown.pathname}`;
    const lines = seen(log.text());
    expect(lines.filter((l) => /unreachable/.test(l.msg)).map((l) => l.msg)).toEqual([
      expect.stringMatching(new RegExp(`^database unreachable at ${url.replace(/[.]/g, '\\.')} \\(coordinator\\): .*Check: is PostgreSQL running at ${url.replace(/[.]/g, '\\.')}\\? is DATABASE_URL right\\? Retrying with backoff\\.$`)),
    ]);
    expect(lines.length).toBeLessThan(6);
    expect(log.text()).not.toContain(secret);
    expect(log.text()).not.toMatch(/\n\s+at /);

    await cluster.databaseUp();
    await until('the coordinator to say the database is back', 15_000, () => Promise.resolve(seen(log.text()).some((l) => l.msg.startsWith(`database is back at ${url} (coordinator) after `)) ? true : undefined));
    await until('/health to answer 200', 10_000, async () => ((await fetch(`${cluster.url}/health`)).status === 200 ? true : undefined));
  }, 90_000);

  it('SIGTERM during the outage ends the coordinator within 10 s', async () => {
    log.mark();
    await cluster.databaseDown();
    await until('the outage to be reported', 15_000, () => Promise.resolve(/database unreachable/.test(log.text()) ? true : undefined));
    const t0 = Date.now();
    const code = await cluster.stopCoordinator('SIGTERM');
    expect(Date.now() - t0).toBeLessThan(STOP_BOUND_MS);
    expect(typeof code).toBe('number');
  }, 60_000);
});
