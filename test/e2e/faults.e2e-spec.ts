import { FAILPOINTS, type FailpointName } from '../../apps/coordinator/src/orchestration/failpoints';
import { until } from '../support/cluster';
import { singleJson } from '../support/cli';
import { Harness, SITES, type Protocol } from '../support/faults';
import { expectedSalaryResults, SALARY_SELECT } from '../support/salary-query';
import { taskJobId } from '@confide/queue';
import { freeze, TaskQueues, thaw } from '../support/task-queues';

// Issue 12, "Survive every restart": real coordinator, participant, Redis and PostgreSQL processes, and the faults an
// operator meets: the coordinator killed at every transition of both protocols (CONFIDE_FAILPOINT), Redis SIGKILLed
// with and without its append-only file, PostgreSQL going away under load, a participant SIGKILLed. After each:
// - no query hangs: every query in the ledger ends, exact or failed with a reason;
// - no double count: every successful result is exactly the plaintext's, over the participants that answered;
// - the ledger verifies (`confide ledger verify`, as an auditor runs it);
// - a new query succeeds within 10 s of the fault clearing, with no human action.

/** The points each protocol passes through: shamir has no aggregation job; both fail the same way. */
const POINTS: Record<Protocol, readonly FailpointName[]> = {
  shamir: FAILPOINTS.filter((p) => p !== 'aggregation.queued' && p !== 'failed.committed'),
  paillier: FAILPOINTS.filter((p) => p !== 'failed.committed'),
};

describe('faults: the coordinator crashes at every transition (SQLite)', () => {
  let h: Harness;
  beforeAll(async () => {
    // Short deadlines: a query whose nonce reveal died with the coordinator fails at its round-0 deadline.
    h = await Harness.start({ database: 'sqlite', round1Seconds: 8 });
  }, 180_000);
  afterAll(() => h?.stop(), 60_000);

  const cases = (['shamir', 'paillier'] as const).flatMap((protocol) => POINTS[protocol].map((point) => [protocol, point] as const));

  it.each(cases)('%s: killed at %s, restarted, every query ends and the ledger verifies', async (protocol, point) => {
    await h.cluster.stopCoordinator();
    await h.cluster.startCoordinator({ CONFIDE_FAILPOINT: `${point}:crash` });
    const crashed = h.cluster.coordinatorExit(60_000);
    // The query that runs into the point (its submission, nonce or decryption may be the request that dies).
    const id = h.submit(protocol).then((submitted) => (submitted ? h.finish(submitted, 60_000).catch(() => undefined) : undefined));
    expect(await crashed).toBe('SIGKILL');
    expect(h.cluster.logText()).toContain(`failpoint ${point}: crashing`);
    await h.cluster.startCoordinator();
    const restarted = Date.now();
    await h.expectFreshQueryBy(protocol, restarted);
    await id;
    const { succeeded } = await h.expectSettled();
    expect(succeeded).toBeGreaterThan(0);
  }, 240_000);

  it('round1.committed with the default sweep: round 2, re-sent at boot, ends on its answers, not on a timer or deadline', async () => {
    // The answers to tasks re-sent at boot can come before the new listeners' first read; a listener that started
    // from that read missed them, and the query waited for the next sweep (30 s) or its deadline. Three rounds of
    // it, as the race is lost only sometimes.
    for (let i = 0; i < 3; i++) {
      await h.cluster.stopCoordinator();
      await h.cluster.startCoordinator({ CONFIDE_FAILPOINT: 'round1.committed:crash', CONFIDE_SWEEP_SECONDS: '60' });
      const crashed = h.cluster.coordinatorExit(60_000);
      const id = await h.submit('shamir');
      expect(await crashed).toBe('SIGKILL');
      await h.cluster.startCoordinator({ CONFIDE_SWEEP_SECONDS: '60' });
      const restarted = Date.now();
      const q = await h.finish(id!, 30_000);
      expect({ status: q.status, results: q.results }).toEqual({ status: 'succeeded', results: expectedSalaryResults(h.texts) });
      expect(Date.now() - restarted).toBeLessThan(5_000);
    }
  }, 240_000);

  it('failed.committed: a query that fails is failed once, with its reason, across the crash', async () => {
    await h.cluster.stopCoordinator();
    await h.cluster.startCoordinator({ CONFIDE_FAILPOINT: 'failed.committed:crash' });
    const crashed = h.cluster.coordinatorExit(60_000);
    // Two of three sites frozen: round 1 cannot reach the study's minimum, and its 4-second deadline fails the query.
    h.sites.slice(1).forEach(freeze);
    try {
      const r = await h.cluster.cli(['query', '--study', 'salaries', '--protocol', 'shamir', ...SALARY_SELECT, '--deadline', '4', '--json'], h.researcher);
      expect(r.code).toBe(0);
      const failing = String(singleJson(r.stdout).id);
      expect(await crashed).toBe('SIGKILL');
      h.sites.forEach(thaw);
      await h.cluster.startCoordinator();
      const q = await h.finish(failing);
      expect(q).toMatchObject({ status: 'failed', failureReason: expect.stringMatching(/round 1: 1 of 3 participants answered/) as string });
      const { events } = await h.cluster.get<{ events: { type: string; body: { queryId?: string } }[] }>('/v1/events?limit=1000', h.auditor);
      expect(events.filter((e) => e.type === 'query.failed' && e.body.queryId === failing)).toHaveLength(1);
      await h.expectFreshQueryBy('shamir', Date.now());
      await h.expectSettled();
    } finally {
      h.sites.forEach(thaw);
    }
  }, 240_000);
});

describe.each([
  ['without', false],
  ['with', true],
] as const)('faults: Redis is SIGKILLed %s an append-only file (SQLite)', (_label, appendOnly) => {
  let h: Harness;
  beforeAll(async () => {
    h = await Harness.start({ database: 'sqlite', appendOnly });
  }, 180_000);
  afterAll(() => h?.stop(), 60_000);

  it('queries in flight finish exact, queries accepted during the outage run when Redis returns, and the service needs no one', async () => {
    // One site frozen holds both queries in round 1, their tasks in Redis, when Redis dies.
    freeze(h.sites[0]!);
    const inFlight = [await h.submit('shamir'), await h.submit('paillier')];
    expect(inFlight).toEqual([expect.any(String), expect.any(String)]);
    await h.cluster.killRedis();
    // While Redis is down: /health says so with 503; a query is still accepted (the outbox), and waits.
    await until('/health to answer 503', 10_000, async () => ((await fetch(`${h.cluster.url}/health`)).status === 503 ? true : undefined));
    const during = await Promise.all([h.submit('shamir'), h.submit('paillier')]);
    expect(during).toEqual([expect.any(String), expect.any(String)]);
    await h.cluster.restartRedis();
    const back = Date.now();
    thaw(h.sites[0]!);
    // A new query of each protocol, submitted as soon as Redis is back, is done within 10 s; the others finish too.
    await Promise.all([
      h.expectFreshQueryBy('shamir', back),
      h.expectFreshQueryBy('paillier', back),
      ...[...inFlight, ...during].map(async (id) => {
        const q = await h.finish(id!);
        expect({ id, status: q.status, participants: q.participants, results: q.results }).toEqual({ id, status: 'succeeded', participants: SITES, results: expectedSalaryResults(h.texts) });
      }),
    ]);
    await h.expectSettled();
    // Each worker said once that it lost Redis, not once per retry.
    const log = h.cluster.logText();
    expect(log.match(/Redis unreachable at \S+ \(task queue\)/g)?.length ?? 0).toBeGreaterThanOrEqual(SITES);
    expect(log.match(/Redis unreachable at \S+ \(task queue\)/g)?.length ?? 0).toBeLessThanOrEqual(2 * SITES);
    expect(log).toMatch(/Redis brought in line with the database.*Redis reconnected|Redis reconnected.*Redis brought in line with the database/);
  }, 300_000);
});

describe('faults: PostgreSQL goes away under load, and comes back', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await Harness.start({ database: 'postgres', databaseProxy: true });
  }, 180_000);
  afterAll(() => h?.stop(), 60_000);

  it('requests get 503 during the outage, the pool recovers, no ledger index is skipped or duplicated, and queries in flight finish', async () => {
    freeze(h.sites[0]!);
    const inFlight = [await h.submit('shamir'), await h.submit('paillier'), await h.submit('shamir')];
    expect(inFlight.every((id) => typeof id === 'string')).toBe(true);
    const outage = h.cluster.restartDatabase(4000);
    // During it: the database's routes answer 503 with Retry-After.
    const seen: number[] = [];
    const during = await until('a 503 from a database route', 4000, async () => {
      const res = await fetch(`${h.cluster.url}/v1/queries/${inFlight[0]!}`, { headers: { authorization: `Bearer ${h.researcher}` }, signal: AbortSignal.timeout(1000) });
      seen.push(res.status);
      return res.status === 503 ? res : undefined;
    }).catch((err: Error) => {
      throw new Error(`${err.message}; statuses seen: ${seen.join(', ')}`);
    });
    expect(during.headers.get('retry-after')).toBe('5');
    thaw(h.sites[0]!);
    await outage;
    const back = Date.now();
    await Promise.all([
      h.expectFreshQueryBy('shamir', back),
      ...inFlight.map(async (id) => {
        const q = await h.finish(id!);
        expect({ id, status: q.status, reason: q.failureReason ?? null, results: q.results }).toEqual({ id, status: 'succeeded', reason: null, results: expectedSalaryResults(h.texts) });
      }),
    ]);
    await h.expectSettled();
  }, 300_000);

  it('finishes a query whose last answer came in while the database was down within seconds of its return, not at the next sweep', async () => {
    // A sweep and a deadline a minute away: only the database's return can explain a finish within 10 s of it.
    await h.cluster.stopCoordinator();
    await h.cluster.startCoordinator({ CONFIDE_SWEEP_SECONDS: '60' });
    const site = h.sites[0]!;
    freeze(site);
    const id = (await h.submit('shamir', 60))!;
    const queues = new TaskQueues(h.cluster);
    await h.cluster.databaseDown();
    try {
      thaw(site);
      // Its answer lands while the database is down: the coordinator sees it complete and cannot record it.
      const answered = await queues.waitForFinished(site.participantId, taskJobId(id, 1, site.participantId), 20_000);
      expect(answered.state).toBe('completed');
    } finally {
      thaw(site);
      await h.cluster.databaseUp();
      await queues.close();
    }
    const back = Date.now();
    const q = await h.finish(id, 90_000);
    expect({ status: q.status, results: q.results }).toEqual({ status: 'succeeded', results: expectedSalaryResults(h.texts) });
    expect(Date.now() - back).toBeLessThan(10_000);
    await h.expectSettled();
  }, 180_000);
});

describe('faults: a participant is SIGKILLed (SQLite)', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await Harness.start({ database: 'sqlite' });
  }, 180_000);
  afterAll(() => h?.stop(), 60_000);

  it.each(['shamir', 'paillier'] as const)('%s: a site killed with its task waiting is restarted and counted once', async (protocol) => {
    const victim = h.sites[1]!;
    await h.cluster.kill(victim);
    const id = await h.submit(protocol);
    expect(id).toEqual(expect.any(String));
    await h.cluster.run(victim);
    const q = await h.finish(id!);
    expect({ status: q.status, participants: q.participants, results: q.results }).toEqual({ status: 'succeeded', participants: SITES, results: expectedSalaryResults(h.texts) });
    await h.expectSettled();
  }, 120_000);
});
