import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort, startLocalRedis, type LocalRedis } from '../../apps/cli/src/local-redis';
import { openDatabase } from '../../apps/coordinator/src/db/database';
import { QueryRepository, RoundRepository } from '../../apps/coordinator/src/db/repositories';
import { assertBuilt, COORDINATOR, ROOT } from '../support/cli';
import { until as pollUntil } from '../support/cluster';
import { closeConnection } from '../support/redis';


/**
 * Polls /health until it answers 200 or the deadline passes (then returns the last answer): it answers 503 while
 * the coordinator's queue connections are still coming up.
 */
async function waitForHealth(url: string, deadlineMs: number): Promise<Response> {
  const until = Date.now() + deadlineMs;
  for (;;) {
    try {
      const res = await fetch(url);
      if (res.ok || Date.now() > until) return res;
    } catch (err) {
      if (Date.now() > until) throw err;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Starts the built coordinator against `redisUrl` on embedded SQLite; its stderr is collected. */
async function startCoordinator(redisUrl: string, extra: NodeJS.ProcessEnv = {}) {
  const port = await freePort();
  const dataDir = mkdtempSync(join(tmpdir(), 'confide-boot-'));
  const env: NodeJS.ProcessEnv = { ...process.env, PORT: String(port), REDIS_URL: redisUrl, CONFIDE_ADMIN_TOKEN: 'boot-test-admin-token-0123456789', CONFIDE_DATA_DIR: dataDir, CONFIDE_QUEUE_PREFIX: `confide-boot-${port}`, ...extra };
  delete env.DATABASE_URL;
  delete env.CONFIDE_PUBLIC_REDIS_URL;
  const child = spawn(process.execPath, [COORDINATOR], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { url: `http://127.0.0.1:${port}`, dataDir, child, exited, stderr: () => stderr, cleanup: () => rmSync(dataDir, { recursive: true, force: true }) };
}

const defaultUserFlags = async (adminUrl: string): Promise<string[]> => {
  const r = new Redis(adminUrl);
  try {
    const reply = (await r.call('ACL', 'GETUSER', 'default')) as unknown[];
    return (reply[reply.indexOf('flags') + 1] as string[]).map(String);
  } finally {
    await closeConnection(r);
  }
};

describe('coordinator (built app)', () => {
  let redis: LocalRedis | undefined;
  beforeAll(assertBuilt);
  afterEach(async () => {
    await redis?.stop();
    redis = undefined;
  });

  it('boots on embedded SQLite against a locked-down Redis, answers /health with database and Redis up, and exits cleanly on SIGTERM', async () => {
    redis = await startLocalRedis();
    const c = await startCoordinator(redis.adminUrl);
    try {
      const res = await waitForHealth(`${c.url}/health`, 15_000);
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ status: 'ok', database: 'ok', redis: 'ok', connections: expect.any(Number) as number });
    } finally {
      c.child.kill('SIGTERM');
    }
    expect(await c.exited).toBe(0);
    c.cleanup();
  }, 30_000);

  it('while Redis is down: /health answers 503 with Retry-After, routes that need only the database still work, and SIGTERM stops it within its grace period', async () => {
    redis = await startLocalRedis();
    const c = await startCoordinator(redis.adminUrl);
    const admin = { authorization: 'Bearer boot-test-admin-token-0123456789', 'content-type': 'application/json' };
    let stopping: number;
    try {
      expect((await waitForHealth(`${c.url}/health`, 15_000)).status).toBe(200);
      const study = { name: 'outage', minParticipants: 1, fields: [{ name: 'x', type: 'number', min: 0, max: 10, decimals: 0 }] };
      expect((await fetch(`${c.url}/v1/studies`, { method: 'POST', headers: admin, body: JSON.stringify(study) })).status).toBe(201);
      await redis.stop();
      // Every answer while Redis is down is a 503 with Retry-After; the connections' own states follow as ioredis
      // sees each socket close, so the message names them within a moment.
      await pollUntil('/health to name the connections not ready', 10_000, async () => {
        const health = await fetch(`${c.url}/health`, { signal: AbortSignal.timeout(10_000) });
        const body = (await health.json()) as { error: string; message: string };
        expect([health.status, health.headers.get('retry-after'), body.error, body.message]).toEqual([503, '5', 'http_error', expect.stringMatching(/^database ok, redis down/) as string]);
        return /^database ok, redis down, \d+ of \d+ Redis connections not ready \(.*\)$/.test(body.message) ? true : undefined;
      }, { tolerant: false });
      const invite = await fetch(`${c.url}/v1/studies/outage/invitations`, { method: 'POST', headers: admin, body: JSON.stringify({ participant: 'site-1' }), signal: AbortSignal.timeout(10_000) });
      expect(invite.status).toBe(201);
    } finally {
      stopping = Date.now();
      c.child.kill('SIGTERM');
    }
    expect(await c.exited).toBe(0);
    // BullMQ cannot drain without Redis: the stop waits its grace period (10 s), then drops the connections.
    expect(Date.now() - stopping).toBeLessThan(20_000);
    expect(c.stderr()).toMatch(/stopping without draining: Redis or the database did not answer in time/);
    // An outage is a refusal the client retries, not a failure of the coordinator.
    expect(c.stderr()).not.toMatch(/"msg":"request failed"/);
    c.cleanup();
  }, 60_000);

  it('ends every query by its deadline: one left between two steps (round closed, never moved on), one whose deadline job was lost', async () => {
    redis = await startLocalRedis();
    const c = await startCoordinator(redis.adminUrl, { CONFIDE_SWEEP_SECONDS: '1' });
    const admin = { authorization: 'Bearer boot-test-admin-token-0123456789', 'content-type': 'application/json' };
    const database = await openDatabase({ dataDir: c.dataDir });
    try {
      expect((await waitForHealth(`${c.url}/health`, 15_000)).status).toBe(200);
      const study = { name: 'stuck', minParticipants: 1, fields: [{ name: 'x', type: 'number', min: 0, max: 10, decimals: 0 }] };
      const { id: studyId } = (await (await fetch(`${c.url}/v1/studies`, { method: 'POST', headers: admin, body: JSON.stringify(study) })).json()) as { id: string };
      // As a crash leaves them: the coordinator's own rows, written as its repositories write them.
      const queries = new QueryRepository(database.db);
      const rounds = new RoundRepository(database.db);
      const now = Date.now();
      const stuck = { between: `q${'a'.repeat(24)}`, lost: `q${'b'.repeat(24)}` };
      for (const id of Object.values(stuck)) {
        await queries.create({ id, study_id: studyId, protocol: 'shamir', spec_json: '{"select":[]}', created_by: 'bootstrap-admin', created_at: now - 60_000, current_round: 1, plan_json: null });
      }
      await rounds.open({ query_id: stuck.between, round: 1, opened_at: now - 60_000, deadline: now + 3_600_000, expected: 1 });
      await rounds.close(stuck.between, 1, '{}', now - 30_000);
      await rounds.open({ query_id: stuck.lost, round: 1, opened_at: now - 60_000, deadline: now - 30_000, expected: 1 });
      const view = async (id: string) => (await (await fetch(`${c.url}/v1/queries/${id}`, { headers: admin })).json()) as { status: string; failureReason: string | null };
      const until = Date.now() + 15_000;
      while ((await view(stuck.between)).status === 'running' || (await view(stuck.lost)).status === 'running') {
        if (Date.now() > until) throw new Error('the sweep did not end the stuck queries in 15 s');
        await new Promise((r) => setTimeout(r, 200));
      }
      expect(await view(stuck.between)).toMatchObject({ status: 'failed', failureReason: expect.stringMatching(/round 1 is closed and the query never moved on/) as string });
      expect(await view(stuck.lost)).toMatchObject({ status: 'failed', failureReason: expect.stringMatching(/round 1 did not end by its deadline/) as string });
      const events = (await (await fetch(`${c.url}/v1/events?limit=1000`, { headers: admin })).json()) as { events: { type: string; body: { queryId?: string } }[] };
      expect(events.events.filter((e) => e.type === 'query.failed').map((e) => e.body.queryId).sort()).toEqual([stuck.between, stuck.lost].sort());
    } finally {
      await database.close();
      c.child.kill('SIGTERM');
    }
    expect(await c.exited).toBe(0);
    c.cleanup();
  }, 60_000);

  it("refuses to start on a Redis whose default user has no password when it would itself run as that user: participants could skip their ACL users", async () => {
    redis = await startLocalRedis({ openDefaultUser: true });
    const c = await startCoordinator(redis.publicUrl);
    expect(await c.exited).toBe(1);
    expect(c.stderr()).toMatch(/Redis's default user has no password, so any participant could skip its own ACL user/);
    // Nothing was served, and Redis is as it was.
    expect(await defaultUserFlags(redis.adminUrl)).toEqual(expect.arrayContaining(['on', 'nopass']));
    c.cleanup();
  }, 30_000);

  it("switches an open default user off itself when it runs as an administrator, and says so", async () => {
    redis = await startLocalRedis({ openDefaultUser: true });
    expect(await defaultUserFlags(redis.adminUrl)).toContain('on');
    const c = await startCoordinator(redis.adminUrl);
    try {
      expect((await waitForHealth(`${c.url}/health`, 15_000)).status).toBe(200);
      expect(await defaultUserFlags(redis.adminUrl)).toContain('off');
      expect(c.stderr()).toMatch(/Redis's default user had no password: switched it off/);
      // A client that does not log in can no longer do anything.
      const anonymous = new Redis(redis.publicUrl, { lazyConnect: true, enableReadyCheck: false, maxRetriesPerRequest: 0 });
      anonymous.on('error', () => undefined);
      await anonymous.connect();
      await expect(anonymous.ping()).rejects.toThrow(/NOAUTH/);
      anonymous.disconnect();
    } finally {
      c.child.kill('SIGTERM');
    }
    expect(await c.exited).toBe(0);
    c.cleanup();
  }, 30_000);
});
