import { Client } from 'pg';
import { until, type ReplicaProcess } from '../support/cluster';
import { Harness, SITES, type Protocol } from '../support/faults';
import { expectedSalaryResults } from '../support/salary-query';
import { taskJobId } from '@confide/queue';
import { freeze, TaskQueues, thaw } from '../support/task-queues';

// Issue 15, "Coordinator replicas": three `confide coordinator start` processes over one PostgreSQL database and one
// Redis (one queue prefix), with three participant workers, as an operator runs them behind a load balancer. Each
// query is driven by the replica holding its lease; a replica SIGKILLed mid-round loses its leases when they expire,
// and another replica finishes its queries; the ledger stays gapless and verifies.

/** Short leases, so that a failover is quick to watch: a dead replica's queries change hands 6 s after its last renewal. */
const LEASE_SECONDS = 6;
const LEASE_ENV = { CONFIDE_LEASE_SECONDS: String(LEASE_SECONDS), CONFIDE_LEASE_RENEW_SECONDS: '1' };

interface Replica {
  readonly id: string;
  /** Its log file's name. */
  readonly log: string;
  readonly url: string;
  readonly process?: ReplicaProcess;
}

describe('coordinator replicas over one PostgreSQL (issue 15)', () => {
  let h: Harness;
  const replicas: Replica[] = [];

  beforeAll(async () => {
    // A sweep a minute apart: within these tests, only the replicas' lease passes can explain a prompt failover.
    h = await Harness.start({ database: 'postgres', env: { ...LEASE_ENV, CONFIDE_SWEEP_SECONDS: '60', CONFIDE_REPLICA_ID: 'replica-a' } });
    replicas.push({ id: 'replica-a', log: 'coordinator', url: h.cluster.url });
    for (const name of ['b', 'c']) {
      const process = await h.cluster.startReplica(name, { CONFIDE_REPLICA_ID: `replica-${name}` });
      replicas.push({ id: `replica-${name}`, log: `coordinator-${name}`, url: process.url, process });
    }
  }, 240_000);
  afterAll(() => h?.stop(), 60_000);

  /** The replica whose log says it released this query's result. */
  const releasedBy = (queryId: string): string[] =>
    replicas.filter((r) => h.cluster.logOf(r.log).split('\n').some((line) => line.includes('"result released"') && line.includes(`"queryId":"${queryId}"`))).map((r) => r.id);

  async function leaseOf(queryId: string): Promise<{ owner: string; token: number } | undefined> {
    const client = new Client({ connectionString: h.cluster.databaseUrl });
    await client.connect();
    try {
      const { rows } = await client.query<{ owner: string; token: string }>('select owner, token from query_leases where query_id = $1', [queryId]);
      return rows[0] && { owner: rows[0].owner, token: Number(rows[0].token) };
    } finally {
      await client.end();
    }
  }

  it('queries submitted round-robin to three replicas all end exact, and every replica drove some', async () => {
    const submitted: { id: string; protocol: Protocol; to: Replica }[] = [];
    for (let i = 0; i < 6; i++) {
      const protocol: Protocol = i % 2 === 0 ? 'shamir' : 'paillier';
      const to = replicas[i % replicas.length]!;
      const id = await h.submit(protocol, 60, to.url);
      expect(id).toEqual(expect.any(String));
      submitted.push({ id: id!, protocol, to });
    }
    await Promise.all(
      submitted.map(async ({ id }) => {
        const q = await h.finish(id, 90_000);
        expect({ id, status: q.status, participants: q.participants, results: q.results }).toEqual({ id, status: 'succeeded', participants: SITES, results: expectedSalaryResults(h.texts) });
      }),
    );
    // Exactly one replica released each result; a shamir query is driven to its end by the replica it was submitted
    // to (a paillier query ends where its researcher posts the decryption, here the first replica's address).
    for (const { id, protocol, to } of submitted) {
      expect({ id, by: releasedBy(id) }).toEqual({ id, by: protocol === 'shamir' ? [to.id] : [expect.any(String)] });
    }
    for (const r of replicas) expect({ replica: r.id, drove: submitted.filter((s) => releasedBy(s.id).includes(r.id)).length > 0 }).toEqual({ replica: r.id, drove: true });
    // A replica that does not hold a query never tries to commit a transition of it: every replica saw every answer,
    // and only the holders acted, so no transaction was refused by the fencing check.
    for (const r of replicas) expect({ replica: r.id, fenced: h.cluster.logOf(r.log).split('\n').filter((l) => l.includes('"lease lost')) }).toEqual({ replica: r.id, fenced: [] });
  }, 300_000);

  it('a replica SIGKILLed mid-round: its queries finish exact on another replica within the lease expiry and a few seconds', async () => {
    const victim = replicas[1]!;
    // A frozen site holds both queries in round 1 with their tasks in Redis, while the victim holds their leases.
    freeze(h.sites[0]!);
    try {
      const ids = [(await h.submit('shamir', 60, victim.url))!, (await h.submit('paillier', 60, victim.url))!];
      for (const id of ids) {
        await h.cluster.waitForRound(id, h.researcher, 1);
        expect({ id, lease: await leaseOf(id) }).toEqual({ id, lease: { owner: victim.id, token: expect.any(Number) as number } });
      }
      await h.cluster.stopReplica(victim.process!, 'SIGKILL');
      const killedAt = Date.now();
      // The site answers while the dead replica's leases still hold: no replica may act on those answers, so the one
      // that takes the leases must look at the rounds itself, not wait for a notice that already went by.
      thaw(h.sites[0]!);
      const queues = new TaskQueues(h.cluster);
      try {
        for (const id of ids) expect((await queues.waitForFinished(h.sites[0]!.participantId, taskJobId(id, 1, h.sites[0]!.participantId))).state).toBe('completed');
      } finally {
        await queues.close();
      }
      for (const id of ids) expect({ id, lease: (await leaseOf(id))?.owner }).toEqual({ id, lease: victim.id });
      await Promise.all(
        ids.map(async (id) => {
          const q = await h.finish(id, 60_000);
          expect({ id, status: q.status, participants: q.participants, results: q.results }).toEqual({ id, status: 'succeeded', participants: SITES, results: expectedSalaryResults(h.texts) });
          expect(releasedBy(id)).toEqual([expect.stringMatching(/^replica-[ac]$/) as string]);
        }),
      );
      expect(Date.now() - killedAt).toBeLessThan((LEASE_SECONDS + 8) * 1000);
      // The survivors' logs say who took the dead replica's queries over.
      const lines = replicas.filter((r) => r !== victim).flatMap((r) => h.cluster.logOf(r.log).split('\n'));
      for (const id of ids) expect({ id, taken: lines.some((l) => /"msg":"leases? taken"/.test(l) && l.includes(id)) }).toEqual({ id, taken: true });
    } finally {
      thaw(h.sites[0]!);
    }
  }, 180_000);

  it('a replica stopped with SIGTERM hands its queries over as it stops, well before its lease would expire', async () => {
    const leaving = replicas[2]!;
    freeze(h.sites[0]!);
    try {
      const id = (await h.submit('shamir', 60, leaving.url))!;
      await h.cluster.waitForRound(id, h.researcher, 1);
      expect((await leaseOf(id))?.owner).toBe(leaving.id);
      await h.cluster.stopReplica(leaving.process!, 'SIGTERM');
      // Its lease was renewed at most a second before it stopped: only the handover explains a new owner within
      // two seconds less than the lease.
      const lease = await until('another replica to take the lease', (LEASE_SECONDS - 2) * 1000, async () => {
        const l = await leaseOf(id);
        return l && l.owner !== leaving.id && l.owner !== '' ? l : undefined;
      });
      thaw(h.sites[0]!);
      const q = await h.finish(id, 30_000);
      expect({ status: q.status, participants: q.participants, results: q.results }).toEqual({ status: 'succeeded', participants: SITES, results: expectedSalaryResults(h.texts) });
      expect(releasedBy(id)).toEqual([lease.owner]);
    } finally {
      thaw(h.sites[0]!);
    }
  }, 120_000);

  it('the ledger written by all replicas has indices 0..n-1, none duplicated or skipped, and `confide ledger verify` passes', async () => {
    // Every query in the ledger ended exact or failed with a reason; the indices and the auditor's verify.
    const { succeeded } = await h.expectSettled();
    expect(succeeded).toBeGreaterThanOrEqual(9);
    const client = new Client({ connectionString: h.cluster.databaseUrl });
    await client.connect();
    try {
      const { rows } = await client.query<{ idx: string }>('select idx from events order by idx');
      expect(rows.map((r) => Number(r.idx))).toEqual(rows.map((_, i) => i));
    } finally {
      await client.end();
    }
  }, 180_000);
});
