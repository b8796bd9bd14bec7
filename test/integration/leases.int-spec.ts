import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import pino from 'pino';
import { openDatabase, type Database, type DatabaseConfig } from '../../apps/coordinator/src/db/database';
import { RepositorySet } from '../../apps/coordinator/src/db/repositories';
import { LeaseKeeper, LeaseLostError, type LeaseSettings } from '../../apps/coordinator/src/orchestration/leases';

// Coordinator replicas (issue 15): query leases with fencing tokens, against real databases. PostgreSQL is what
// replicas share (several pools on one schema stand for several processes); SQLite is the single-process default,
// and runs the same code path.
const POSTGRES_URL = process.env.CONFIDE_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

interface Target {
  readonly name: 'sqlite' | 'postgres';
  config(dir: string): DatabaseConfig;
}
const targets: Target[] = [
  { name: 'sqlite', config: (dir) => ({ dataDir: join(dir, 'data') }) },
  { name: 'postgres', config: (dir) => ({ url: POSTGRES_URL, dataDir: dir, schema: `test_${randomBytes(6).toString('hex')}` }) },
];

const T0 = 1_750_000_000_000;
const LEASE_MS = 10_000;
const silent = pino({ level: 'silent' });

describe.each(targets)('query leases on $name', (target) => {
  let dir: string;
  let config: DatabaseConfig;
  let database: Database;
  let repos: RepositorySet;
  /** A second process's view of the same database (PostgreSQL: its own pool). */
  let other: { database: Database; repos: RepositorySet } | undefined;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), `confide-leases-${target.name}-`));
    config = target.config(dir);
    database = await openDatabase(config);
    repos = new RepositorySet(database.db);
    if (target.name === 'postgres') {
      const second = await openDatabase(config);
      other = { database: second, repos: new RepositorySet(second.db) };
    }
  });
  afterAll(async () => {
    await other?.database.close();
    if (config.schema !== undefined) await sql`drop schema ${sql.id(config.schema)} cascade`.execute(database.db);
    await database.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const studyId = randomUUID();
  beforeAll(async () => {
    await repos.studies.create({ id: studyId, name: `study-${studyId}`, schema_json: '{"fields":[]}', min_participants: 3, created_at: T0 });
  });
  const newQuery = async (): Promise<string> => {
    const id = randomUUID();
    await repos.queries.create({ id, study_id: studyId, protocol: 'shamir', spec_json: '{"select":[]}', created_by: 'key-1', created_at: T0, current_round: 1, plan_json: null });
    return id;
  };
  /** Two replicas' keepers over the database, on one clock the test moves. */
  const keepers = (clock: { now: number }, second = repos) => {
    const settings = (replicaId: string): LeaseSettings => ({ replicaId, leaseMs: LEASE_MS, renewMs: 1000, reclaimAll: false });
    return [new LeaseKeeper(repos, settings(`a-${randomUUID()}`), silent, undefined, () => clock.now), new LeaseKeeper(second, settings(`b-${randomUUID()}`), silent, undefined, () => clock.now)] as const;
  };

  it('claim creates a new query\'s lease (token 1), keeps the token for its live holder, and a takeover adds one', async () => {
    const q = await newQuery();
    const first = await repos.leases.claim(q, 'a', T0, LEASE_MS);
    expect(first).toEqual({ queryId: q, token: 1, expiresAt: T0 + LEASE_MS });
    expect(await repos.leases.claim(q, 'a', T0 + 1, LEASE_MS, 1)).toEqual({ queryId: q, token: 1, expiresAt: T0 + 1 + LEASE_MS });
    expect(await repos.leases.claim(q, 'b', T0 + 2, LEASE_MS)).toEqual({ queryId: q, token: 2, expiresAt: T0 + 2 + LEASE_MS });
    expect(await repos.leases.fence(q, 'a', 1)).toBe(false);
    expect(await repos.leases.fence(q, 'b', 2)).toBe(true);
  });

  it('acquire takes only a free or expired lease, each time with a new token', async () => {
    const q = await newQuery();
    await repos.leases.claim(q, 'a', T0, LEASE_MS);
    expect(await repos.leases.acquire(q, 'b', T0 + LEASE_MS - 1, LEASE_MS)).toBeUndefined();
    expect(await repos.leases.acquire(q, 'b', T0 + LEASE_MS, LEASE_MS)).toEqual({ queryId: q, token: 2, expiresAt: T0 + 2 * LEASE_MS });
    expect(await repos.leases.get(q)).toMatchObject({ owner: 'b', token: 2 });
  });

  it('two replicas taking expired leases at once take each one exactly once', async () => {
    // A fresh table: only these leases are expired at `now`.
    const ids = await Promise.all(Array.from({ length: 20 }, () => newQuery()));
    for (const id of ids) await repos.leases.claim(id, 'dead', T0, LEASE_MS);
    const now = T0 + 50 * LEASE_MS;
    const [a, b] = await Promise.all([repos.leases.acquireExpired('a', now, LEASE_MS, 1000), (other?.repos ?? repos).leases.acquireExpired('b', now, LEASE_MS, 1000)]);
    const taken = [...a, ...b].map((l) => l.queryId).filter((id) => ids.includes(id));
    expect(taken.sort()).toEqual([...ids].sort());
    expect([...a, ...b].filter((l) => ids.includes(l.queryId)).every((l) => l.token === 2)).toBe(true);
  });

  it('renews only the leases its owner still holds, with their tokens', async () => {
    const [q1, q2] = [await newQuery(), await newQuery()];
    await repos.leases.claim(q1, 'a', T0, LEASE_MS);
    await repos.leases.claim(q2, 'a', T0, LEASE_MS);
    await repos.leases.claim(q2, 'b', T0 + 1, LEASE_MS);
    const renewed = await repos.leases.renew('a', [q1, q2], T0 + 5000, LEASE_MS);
    expect(renewed).toEqual([{ queryId: q1, token: 1, expiresAt: T0 + 5000 + LEASE_MS }]);
  });

  it('a decided query loses its lease; a running query without one gets a free one', async () => {
    const [done, orphan] = [await newQuery(), await newQuery()];
    await repos.leases.claim(done, 'a', T0, LEASE_MS);
    await repos.queries.finish(done, { status: 'failed', failure_reason: 'test' }, T0);
    expect(await repos.leases.forgetDecided()).toContain(done);
    expect(await repos.leases.get(done)).toBeUndefined();
    expect(await repos.leases.get(orphan)).toBeUndefined();
    expect(await repos.leases.adopt()).toBeGreaterThanOrEqual(1);
    expect(await repos.leases.get(orphan)).toEqual({ query_id: orphan, owner: '', token: 0, expires_at: 0 });
    expect(await repos.leases.adopt()).toBe(0);
  });

  it('a replica that stops renewing loses its queries after the lease expires, and its transitions no longer commit', async () => {
    const clock = { now: T0 + 1_000_000 };
    const [a, b] = keepers(clock, other?.repos ?? repos);
    const q = await newQuery();
    await a.claim(q);
    expect(a.holds(q)).toBe(true);
    // B looks while A's lease is live: it takes nothing of A's.
    expect(await b.pass()).not.toContain(q);
    expect(b.holds(q)).toBe(false);
    // A dies (no more renewals); just before expiry B still waits, at expiry it takes the query.
    clock.now += LEASE_MS - 1;
    expect(await b.pass()).not.toContain(q);
    clock.now += 1;
    expect(a.holds(q)).toBe(false);
    expect(await b.pass()).toContain(q);
    expect(b.holds(q)).toBe(true);
    // A wakes up (a long pause, not a death) and tries to commit a transition of q: the fencing check refuses it,
    // and its write rolls back.
    const write = repos.transaction(async (tx) => {
      await tx.queries.setRound(q, 2);
      await a.fence(tx, q);
    });
    await expect(write).rejects.toBeInstanceOf(LeaseLostError);
    expect((await repos.queries.get(q))?.current_round).toBe(1);
    // B's transition commits.
    await repos.transaction(async (tx) => {
      await b.fence(tx, q);
      await tx.queries.setRound(q, 2);
    });
    expect((await repos.queries.get(q))?.current_round).toBe(2);
    await Promise.all([a.stop(), b.stop()]);
  });

  it('a renewing replica keeps its queries past the lease duration; a takeover makes its next pass drop them', async () => {
    const clock = { now: T0 + 2_000_000 };
    const [a, b] = keepers(clock, other?.repos ?? repos);
    const q = await newQuery();
    await a.claim(q);
    for (let i = 0; i < 5; i++) {
      clock.now += LEASE_MS / 2;
      await a.pass();
      expect(await b.pass()).not.toContain(q);
    }
    expect(a.holds(q)).toBe(true);
    await b.claim(q);
    await a.pass();
    expect(a.holds(q)).toBe(false);
    await expect(repos.transaction((tx) => a.fence(tx, q))).rejects.toBeInstanceOf(LeaseLostError);
    await Promise.all([a.stop(), b.stop()]);
  });

  it('a replica restarted under the same id takes its leases back at once, and fences out a process still using them', async () => {
    const clock = { now: T0 + 5_000_000 };
    const settings: LeaseSettings = { replicaId: `same-${randomUUID()}`, leaseMs: LEASE_MS, renewMs: 1000, reclaimAll: false };
    const before = new LeaseKeeper(repos, settings, silent, undefined, () => clock.now);
    const q = await newQuery();
    await before.claim(q);
    const after = new LeaseKeeper(other?.repos ?? repos, settings, silent, undefined, () => clock.now);
    expect(await after.start()).toContain(q);
    expect(after.holds(q)).toBe(true);
    await before.pass();
    expect(before.holds(q)).toBe(false);
    await expect(repos.transaction((tx) => before.fence(tx, q))).rejects.toBeInstanceOf(LeaseLostError);
    await after.stop();
  });

  it('a replica shutting down hands its leases back at once', async () => {
    const clock = { now: T0 + 3_000_000 };
    const [a, b] = keepers(clock, other?.repos ?? repos);
    const q = await newQuery();
    await a.claim(q);
    await a.stop();
    expect(await b.pass()).toContain(q);
    expect((await repos.leases.get(q))?.token).toBe(2);
    await b.stop();
  });

  if (target.name === 'sqlite') {
    it('one process: at boot it takes back every live lease, whatever replica id held it', async () => {
      const clock = { now: T0 + 4_000_000 };
      const q = await newQuery();
      await repos.leases.claim(q, 'previous-process', clock.now, LEASE_MS);
      const keeper = new LeaseKeeper(repos, { replicaId: 'this-process', leaseMs: LEASE_MS, renewMs: 1000, reclaimAll: true }, silent, undefined, () => clock.now);
      expect(await keeper.start()).toContain(q);
      expect(keeper.holds(q)).toBe(true);
      await keeper.stop();
    });
  }

  if (target.name === 'postgres') {
    it('a takeover waits for a transition that passed its fencing check, and then fences it out', async () => {
      const q = await newQuery();
      await repos.leases.claim(q, 'a', T0, LEASE_MS);
      const order: string[] = [];
      let commit!: () => void;
      const held = new Promise<void>((r) => (commit = r));
      let fenced!: () => void;
      const checked = new Promise<void>((r) => (fenced = r));
      const transition = repos.transaction(async (tx) => {
        expect(await tx.leases.fence(q, 'a', 1)).toBe(true);
        fenced();
        await held;
        await tx.queries.setRound(q, 2);
        order.push('transition committed');
      });
      await checked;
      const takeover = other!.repos.leases.claim(q, 'b', T0 + 1, LEASE_MS).then((l) => {
        order.push('taken over');
        return l;
      });
      await new Promise((r) => setTimeout(r, 300));
      expect(order).toEqual([]);
      commit();
      await transition;
      expect((await takeover).token).toBe(2);
      expect(order).toEqual(['transition committed', 'taken over']);
      expect(await repos.leases.fence(q, 'a', 1)).toBe(false);
    });

    it('taking expired leases skips a row a transition holds locked instead of waiting for it (SKIP LOCKED)', async () => {
      const q = await newQuery();
      await repos.leases.claim(q, 'a', T0, LEASE_MS);
      let release!: () => void;
      const held = new Promise<void>((r) => (release = r));
      let locked!: () => void;
      const isLocked = new Promise<void>((r) => (locked = r));
      const transition = repos.transaction(async (tx) => {
        await tx.leases.fence(q, 'a', 1);
        locked();
        await held;
      });
      await isLocked;
      let timer: NodeJS.Timeout | undefined;
      const looked = await Promise.race([
        other!.repos.leases.acquireExpired('b', T0 + 100 * LEASE_MS, LEASE_MS, 1000),
        new Promise<'waited'>((r) => (timer = setTimeout(() => r('waited'), 2000))),
      ]);
      clearTimeout(timer);
      release();
      await transition;
      expect(looked).not.toBe('waited');
      expect((looked as { queryId: string }[]).map((l) => l.queryId)).not.toContain(q);
    });

    it('ledger appends from two processes at once stay gapless: indices 0..n-1, none taken twice', async () => {
      const before = await repos.events.count();
      await Promise.all(
        [repos, other!.repos].flatMap((r, p) => Array.from({ length: 25 }, (_, i) => r.events.append('test.replica', { p, i }, `replica-${p}-${i}-${randomUUID()}`, T0))),
      );
      const events = await repos.events.list(0, 1000);
      expect(events.length).toBe(before + 50);
      expect(events.map((e) => Number(e.idx))).toEqual(events.map((_, i) => i));
    });
  }
});
