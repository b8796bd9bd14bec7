import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { importPrivateKeyPem, openEnvelope } from '@confide/crypto';
import { decodeShareVector, ROUND2_READER } from '@confide/protocol';
import { createRedis, participantQueue, taskJobId } from '@confide/queue';
import { CoordinatorClient, submitQuery } from '../../apps/cli/src/client';
import { Cluster, type ParticipantProcess, until as pollUntil } from '../support/cluster';
import { closeConnection, errorOf } from '../support/redis';
import { homeSecrets, LeakScanner, numberForms, privateKeyForms, type Needle } from '../support/secrets';
import { generateSalaryCsv, plainStats, syntheticSalaryStudy } from '../support/synthetic';

// DESIGN.md "Trust model": Redis and the coordinator are untrusted for confidentiality. No plaintext input, local
// aggregate, round-2 share sum or private key ever reaches Redis, the database or a log, and each participant's
// Redis user reaches its own queue only. Checked on the real processes, during both rounds of a query and after it.

/**
 * Salaries planted in each participant's file: 8 significant digits, so neither the decimal text nor the
 * fixed-point integer (12345789) turns up by chance in a timestamp, id or port.
 */
const PLANTED = [
  ['123457.89', '234568.91'],
  ['312457.83', '276543.21'],
  ['198765.43', '387654.29'],
  ['143256.87', '365478.19'],
] as const;

/** Appends rows with these salaries to a generated CSV, in its own column order and line ends. */
function plantSalaries(csv: string, salaries: readonly string[]): string {
  const eol = csv.includes('\r\n') ? '\r\n' : '\n';
  const body = csv.endsWith(eol) ? csv.slice(0, -eol.length) : csv;
  const header = body.replace(/^\uFEFF/, '').split(eol)[0]!.split(',').map((c) => c.replace(/^"(.*)"$/, '$1'));
  const rows = salaries.map((salary) => {
    const cells: Record<string, string> = { salary, yrs_since_phd: '17', rank: 'Prof', sex: 'Female' };
    return header.map((column) => cells[column]!).join(',');
  });
  return [body, ...rows].join(eol) + eol;
}

const until = <T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> => pollUntil(what, timeoutMs, probe, { intervalMs: 100, tolerant: false });

async function post<T>(cluster: Cluster, path: string, token: string, body: unknown): Promise<T> {
  const res = await fetch(`${cluster.url}${path}`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  if (!res.ok) throw new Error(`POST ${path}: HTTP ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

const sha256 = (text: string): string => createHash('sha256').update(text, 'utf8').digest('hex');

describe.each(['sqlite', 'postgres'] as const)('confidentiality on %s', (database) => {
  let cluster: Cluster;
  let study: string;
  const participants: ParticipantProcess[] = [];
  const texts: string[] = [];
  let researcher: string;
  let needles: Needle[];
  let tokens: Record<string, string>;

  beforeAll(async () => {
    cluster = await Cluster.start({ database });
    study = await cluster.createStudy(syntheticSalaryStudy());
    for (let i = 0; i < PLANTED.length; i++) {
      const text = plantSalaries(generateSalaryCsv(900 + i, 40), PLANTED[i]!);
      texts.push(text);
      const csv = join(cluster.dir, `site-${i + 1}.csv`);
      writeFileSync(csv, text);
      // Enrolled but not started: the test starts each worker when it wants a round to move on.
      participants.push(await cluster.enroll(study, `site-${i + 1}`, csv));
    }
    const key = async (role: string) => (await post<{ token: string }>(cluster, '/v1/api-keys', cluster.adminToken, { role })).token;
    researcher = await key('researcher');
    tokens = {
      'bootstrap admin token': cluster.adminToken,
      'researcher API key': researcher,
      'auditor API key': await key('auditor'),
      'admin API key': await key('admin'),
      'unused invitation token': await cluster.invite(study, 'site-5'),
    };

    const coordinatorDir = join(cluster.dir, 'coordinator');
    needles = [
      ...Object.entries(tokens).map(([name, text]) => ({ name, text })),
      ...participants.flatMap((p) => homeSecrets(p).needles),
      ...privateKeyForms('coordinator Ed25519 private key', readFileSync(join(coordinatorDir, 'coordinator-ed25519.pem'), 'utf8')),
      ...privateKeyForms('coordinator X25519 private key', readFileSync(join(coordinatorDir, 'coordinator-x25519.pem'), 'utf8')),
      { name: 'Redis administrator password', text: decodeURIComponent(new URL(cluster.redisUrl).password) },
    ];
    participants.forEach((p, i) => {
      // The local aggregate vector of this query is [count(salary), Σ salary]. Counts are two-digit numbers that
      // occur everywhere by chance, so the Σ coordinate is what can be searched for.
      const local = plainStats([texts[i]!]).get('salary')!;
      needles.push(...numberForms(`${p.name} local Σ salary`, local.sumText, local.sumScaled));
      PLANTED[i]!.forEach((planted, k) => needles.push(...numberForms(`${p.name} planted salary ${k + 1}`, planted, BigInt(planted.replace('.', '')))));
    });
  }, 120_000);
  afterAll(() => cluster?.stop(), 60_000);

  it('keeps raw values, local aggregates, private keys, Redis passwords and API tokens out of Redis, the database and every log, during both rounds and after', async () => {
    // The scan finds what is where it belongs: each participant's own file holds its planted salaries, its home its key.
    const control = new LeakScanner(needles);
    participants.forEach((p, i) => {
      control.scan(`${p.name}'s CSV`, texts[i]!);
      control.scan(`${p.name}'s x25519.pem`, readFileSync(join(p.home, 'x25519.pem'), 'utf8'));
    });
    expect(control.leaks).toEqual(
      expect.arrayContaining(
        participants.flatMap((p) => [
          `${p.name} planted salary 1 (decimal) in ${p.name}'s CSV`,
          `${p.name} planted salary 2 (decimal) in ${p.name}'s CSV`,
          `${p.name} X25519 private key (PEM body) in ${p.name}'s x25519.pem`,
        ]),
      ),
    );

    const [p1, p2, p3, p4] = participants as [ParticipantProcess, ParticipantProcess, ParticipantProcess, ParticipantProcess];
    // Every Redis dump is kept and scanned at the end, when the round-2 share sums are known too.
    const dumps: [string, string][] = [];
    const snapshot = async (label: string): Promise<string> => {
      const text = await cluster.redisDump();
      dumps.push([`Redis (${label})`, text]);
      return text;
    };
    const admin = new Redis(cluster.redisUrl);
    let sampling = true;
    let samples = 0;
    // Besides the snapshots at known points below, sample Redis continuously until the query is over.
    const sampler = (async () => {
      while (sampling) {
        await snapshot(`sample ${++samples}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    try {
      const { id } = await submitQuery(new CoordinatorClient(cluster.url, researcher), {
        study,
        protocol: 'shamir',
        select: [
          { stat: 'mean', field: 'salary' },
          { stat: 'sum', field: 'salary' },
        ],
      });
      const jobKey = (p: ParticipantProcess, round: number) => `${cluster.prefix}:${participantQueue(p.participantId)}:${taskJobId(id, round, p.participantId)}`;
      // The query's `completed` entries in the participants' BullMQ events streams: each carries its job's return value
      // (a bundle, a share sum), which would stay until the stream is trimmed, thousands of queries later.
      const kept = async (): Promise<string[]> => {
        const found: string[] = [];
        for (const p of [p1, p2, p3, p4]) {
          for (const [, fields] of await admin.xrange(`${cluster.prefix}:${participantQueue(p.participantId)}:events`, '-', '+')) {
            const at = (name: string): string | undefined => fields[fields.indexOf(name) + 1];
            if (at('event') === 'completed' && at('jobId')?.startsWith(`${id}-`)) found.push(at('jobId')!);
          }
        }
        return found;
      };

      // Round 1 with the tasks queued, then with three of the four encrypted share bundles in.
      // (Boolean checks on dumps: a failing toContain would print the whole dump.)
      expect((await snapshot('round 1, tasks queued')).includes(taskJobId(id, 1, p4.participantId))).toBe(true);
      await Promise.all([p1, p2, p3].map((p) => cluster.run(p)));
      await until('three round-1 answers', 30_000, async () => ((await cluster.get<{ answered: number }>(`/v1/queries/${id}`, researcher)).answered >= 3 ? true : undefined));
      const round1 = await snapshot('round 1, three bundles in');
      for (const p of [p1, p2, p3]) expect(await admin.hget(jobKey(p, 1), 'returnvalue')).toContain('"bundle"');
      expect(round1.includes(taskJobId(id, 1, p1.participantId))).toBe(true);

      // Round 2 with one committee member away: three share sums in, the fourth member's task (its deliveries) waiting.
      await cluster.kill(p1, 'SIGTERM');
      await cluster.run(p4);
      await until('three round-2 answers', 30_000, async () => ((await Promise.all([p2, p3, p4].map((p) => admin.hget(jobKey(p, 2), 'finishedOn')))).every(Boolean) ? true : undefined));
      const round2 = await snapshot('round 2, three share sums in');
      // The check below can see them: while the query runs, its answers' entries are there.
      expect((await kept()).length).toBeGreaterThanOrEqual(6);
      expect(round2.includes(taskJobId(id, 2, p1.participantId)) && round2.includes(taskJobId(id, 2, p4.participantId))).toBe(true);
      // Each share sum is in Redis only sealed to the coordinator's X25519 key. Opened here (the test holds that key),
      // its field elements become needles: any t of them give the exact totals.
      const reader = importPrivateKeyPem('x25519', readFileSync(join(cluster.dir, 'coordinator', 'coordinator-x25519.pem'), 'utf8'));
      const shareSums: bigint[] = [];
      for (const p of [p2, p3, p4]) {
        const answer = JSON.parse((await admin.hget(jobKey(p, 2), 'returnvalue'))!) as { result: Record<string, unknown> & { sealed: never; jobId: string } };
        expect(Object.keys(answer.result).sort()).toEqual(['closedHash', 'jobId', 'planHash', 'sealed', 'sender', 'signature', 'x']);
        const opened = openEnvelope(reader, answer.result.sealed, { jobId: id, round: 2, sender: p.participantId, recipient: ROUND2_READER });
        shareSums.push(...decodeShareVector(opened, opened.length / 16));
      }
      shareSums.forEach((v, i) => needles.push({ name: `round-2 share sum element ${i}`, text: v.toString() }, { name: `round-2 share sum element ${i} (hex)`, text: v.toString(16).padStart(32, '0') }));

      await cluster.run(p1);
      const done = (await cluster.waitForQuery(id, researcher)) as { status: string; participants: number; results: { stat: string; value: number; count: number }[] };
      sampling = false;
      await sampler;
      await snapshot('after the result');
      // Once the query is decided, they are gone.
      await until("the query's completed entries gone from every events stream", 15_000, async () => ((await kept()).length === 0 ? true : undefined));

      // The released total: all four files, planted rows included.
      const total = plainStats(texts).get('salary')!;
      expect(done.status).toBe('succeeded');
      expect(done.participants).toBe(4);
      expect(done.results.map((r) => [r.stat, r.count])).toEqual([
        ['mean', total.count],
        ['sum', total.count],
      ]);
      expect(done.results[1]!.value).toBe(Number(total.sumText));

      const scanner = new LeakScanner(needles);
      for (const [place, text] of dumps) scanner.scan(place, text);
      // The scan finds share sums where they are: in their decimal and hex forms.
      const control2 = new LeakScanner(needles.filter((n) => n.name.startsWith('round-2')));
      control2.scan('the opened share sums', shareSums.map((v) => `${v} ${v.toString(16).padStart(32, '0')}`).join('\n'));
      expect(control2.leaks).toHaveLength(2 * shareSums.length);
      const db = await cluster.databaseDump();
      scanner.scan('the database', db);
      // The scan can find what is there: the released total is in the database (result and event log), and so is
      // every token the database knows, as its SHA-256 (the bootstrap admin token lives in the environment only).
      expect(db.includes(String(Number(total.sumText)))).toBe(true);
      const stored = Object.entries(tokens).filter(([name]) => name !== 'bootstrap admin token');
      expect(stored.filter(([, token]) => !db.includes(sha256(token))).map(([name]) => name)).toEqual([]);

      const logs = readdirSync(cluster.dir).filter((f) => f.endsWith('.log'));
      expect(logs).toEqual(expect.arrayContaining(['coordinator.log', ...participants.map((p) => `participant-${p.name}.log`)]));
      for (const file of logs) scanner.scan(file, readFileSync(join(cluster.dir, file), 'utf8'));
      expect(readFileSync(join(cluster.dir, 'coordinator.log'), 'utf8').includes(id)).toBe(true);

      expect(samples).toBeGreaterThan(0);
      expect(shareSums.length).toBeGreaterThan(0);
      expect(scanner.leaks).toEqual([]);
    } finally {
      sampling = false;
      await sampler;
      await closeConnection(admin);
    }
  }, 90_000);

  it("gives each participant's Redis user its own queue only: NOPERM on another participant's job, wait list and Queue.add", async () => {
    // Workers stopped (offline, so the query goes in with allowOffline), so a fresh query's signed round-1 tasks
    // wait in every participant's queue.
    await Promise.all(participants.map((p) => cluster.kill(p, 'SIGTERM')));
    const { id } = await submitQuery(new CoordinatorClient(cluster.url, researcher), { study, protocol: 'shamir', select: [{ stat: 'count', field: 'salary' }], allowOffline: true });
    const [a, ...others] = participants as [ParticipantProcess, ...ParticipantProcess[]];
    const key = (p: ParticipantProcess, suffix: string) => `${cluster.prefix}:${participantQueue(p.participantId)}:${suffix}`;
    const { username, password } = homeSecrets(a).redis;
    const asA = createRedis(cluster.publicRedisUrl, { role: 'worker', username, password });
    asA.on('error', () => undefined);
    const admin = new Redis(cluster.redisUrl);
    try {
      // No one skips its own user: Redis's default user is off, so a client that does not log in can do nothing.
      const anonymous = new Redis(cluster.publicRedisUrl, { lazyConnect: true, enableReadyCheck: false, maxRetriesPerRequest: 0 });
      anonymous.on('error', () => undefined);
      await anonymous.connect();
      expect(await errorOf(anonymous.lrange(key(a, 'wait'), 0, -1))).toMatch(/^NOAUTH/);
      anonymous.disconnect();

      const own = taskJobId(id, 1, a.participantId);
      expect(await asA.lrange(key(a, 'wait'), 0, -1)).toContain(own);
      expect((await asA.hgetall(key(a, own))).name).toBe('shamir.round1');

      for (const b of others) {
        const job = taskJobId(id, 1, b.participantId);
        const waiting = await admin.lrange(key(b, 'wait'), 0, -1);
        // What A is refused exists: B's signed task, in B's wait list.
        expect(waiting).toContain(job);
        expect(Object.keys(await admin.hgetall(key(b, job)))).toContain('data');

        expect(await errorOf(asA.hgetall(key(b, job)))).toMatch(/^NOPERM/);
        expect(await errorOf(asA.hget(key(b, job), 'data'))).toMatch(/^NOPERM/);
        expect(await errorOf(asA.lrange(key(b, 'wait'), 0, -1))).toMatch(/^NOPERM/);
        const intruder = new Queue(participantQueue(b.participantId), { connection: asA, prefix: cluster.prefix });
        const forged = taskJobId(id, 2, b.participantId);
        expect(await errorOf(intruder.add('shamir.round2', { forged: true }, { jobId: forged }))).toMatch(/^NOPERM/);
        await intruder.close();
        expect(await admin.lrange(key(b, 'wait'), 0, -1)).toEqual(waiting);
        expect(await admin.exists(key(b, forged))).toBe(0);
      }
    } finally {
      await closeConnection(asA);
      await closeConnection(admin);
    }
  }, 60_000);
});
