import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import type * as Crypto from '@confide/crypto';
import type * as Protocol from '@confide/protocol';
import type * as CliClient from '../apps/cli/src/client';
import type * as LocalRedisModule from '../apps/cli/src/local-redis';
import type { QueryView } from '../apps/coordinator/src/queries/queries.service';
import { startPlaintextBaseline } from './baseline-pipeline';
import { benchCoordinatorEnv, BUILT_CLI, checkResult, cleanupRedis, expectedOf, inTempDir, loadBuilt, loadNote, median, percentile, REPO, ROWS, runPrefix, sleep, SPEC, writeData, type Built, type Expected } from './e2e-support';
import { fmt, type BenchSection } from './harness';
import { cpuMsOf, memoryMiBOf, startProcess, stopProcess } from './processes';

/**
 * Scale: one query over N = 10 … 1,000 participants (issue 15). The coordinator runs in its own process
 * (`confide coordinator start`, embedded SQLite), the N participant workers in a few host processes
 * (bench/scale-host.ts: the product's ParticipantWorker, each with its own Redis connection and ACL user), all
 * enrolled as users enroll. For each N: the first query after enrollment (when every participant's ledger view
 * catches up with the enrollments after its own), then shamir queries one at a time (committee min(N, 10)), then
 * paillier queries (3072-bit key), each timed from the researcher's POST to the GET that shows the result, its
 * phases read from the ledger's entry times, with the coordinator's CPU and memory, the hosts' CPU and Redis's CPU
 * over the timed queries. Then the plaintext baseline (bench/baseline-pipeline.ts) at the same N, in this process.
 *
 * Environment: SCALE_SIZES (default 10,50,100,300,1000), SCALE_QUERIES (shamir queries timed per N, 5),
 * SCALE_PAILLIER_QUERIES (3; 0 leaves paillier out), SCALE_PAILLIER_MAX_N (1000: the largest N paillier runs at), SCALE_PROFILE_DIR (`--cpu-prof` for the coordinator and each
 * host, profiles written there by role; summarise them with bench/cpuprofile-summary.ts).
 */

/** How often a query is polled (its view lists who answered: at N = 1,000, 20 ms polls would be load of their own). */
const POLL_MS = 100;
const ROUND_SECONDS = 300;
/** Participants enrolling at once (each is an HTTP round trip, a ledger append and a ledger check). */
const ENROLL_CONCURRENCY = 8;

export interface ScaleOptions {
  readonly sizes: readonly number[];
  readonly shamirQueries: number;
  readonly paillierQueries: number;
  /** The largest N paillier runs at (SCALE_PAILLIER_MAX_N, 1000; lower it to leave paillier's slow large runs out). */
  readonly paillierUpTo: number;
}

export function scaleOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): ScaleOptions {
  const int = (name: string, fallback: number, min: number): number => {
    const v = env[name];
    if (v === undefined || v === '') return fallback;
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < min) throw new Error(`${name} must be an integer of at least ${min}, got ${JSON.stringify(v)}`);
    return n;
  };
  const sizes = (env.SCALE_SIZES ?? '10,50,100,300,1000').split(',').map((s) => Number(s.trim()));
  if (sizes.some((n) => !Number.isSafeInteger(n) || n < 3)) throw new Error(`SCALE_SIZES must be integers of at least 3, got ${JSON.stringify(env.SCALE_SIZES)}`);
  return { sizes, shamirQueries: int('SCALE_QUERIES', 5, 1), paillierQueries: int('SCALE_PAILLIER_QUERIES', 3, 0), paillierUpTo: int('SCALE_PAILLIER_MAX_N', 1000, 0) };
}

/** `--cpu-prof` for a process when SCALE_PROFILE_DIR is set (profiles written there at its exit, by role). */
function profiled(role: string): string[] {
  const dir = process.env.SCALE_PROFILE_DIR;
  return dir ? ['--cpu-prof', `--cpu-prof-dir=${join(dir, role)}`] : [];
}

/** How many host processes the workers of N participants share: one per 250, at most 4. */
const hostsFor = (n: number): number => Math.min(4, Math.max(1, Math.ceil(n / 250)));

interface Running {
  readonly url: string;
  readonly adminToken: string;
  readonly researcher: CliClient.CoordinatorClient;
  readonly identity: Crypto.KeyPair;
  readonly study: string;
  readonly coordinatorPid: number;
  readonly hostPids: readonly number[];
  readonly enrollMs: number;
  readonly hostsReadyMs: number;
  /** The slowest host's time to bring its workers' ledger views up to the head after enrollment (part of hostsReadyMs). */
  readonly viewsMs: number;
  close(): Promise<void>;
}

/** The coordinator, N enrolled participants and their host processes. */
async function startScale(b: Built, dir: string, redis: LocalRedisModule.LocalRedis, files: readonly string[]): Promise<Running> {
  const prefix = runPrefix();
  const adminToken = randomBytes(24).toString('base64url');
  const users: string[] = [];
  const children: Awaited<ReturnType<typeof startProcess>>['child'][] = [];
  const close = async (): Promise<void> => {
    await Promise.allSettled(children.slice(1).map((c) => stopProcess(c)));
    if (children[0]) await stopProcess(children[0]);
    await cleanupRedis(redis.adminUrl, prefix, users);
  };
  try {
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      ...benchCoordinatorEnv({ redis, dir, prefix, adminToken }),
      CONFIDE_ROUND1_SECONDS: String(ROUND_SECONDS),
      CONFIDE_ROUND2_SECONDS: String(ROUND_SECONDS),
      LOG_LEVEL: 'info',
    };
    delete env.DATABASE_URL;
    const coordinator = await startProcess('the coordinator', [...profiled('coordinator'), BUILT_CLI, 'coordinator', 'start', '--port', '0'], env, join(dir, 'coordinator.log'), /coordinator listening on (http:\/\/\S+) /);
    children.push(coordinator.child);
    const url = coordinator.match[1]!;
    const admin = new b.CoordinatorClient(url, adminToken, 600_000);
    const study = b.demo.syntheticSalaryStudy();
    await admin.post('/v1/studies', study);
    const identity = b.crypto.generateKeyPair('ed25519');
    const researcher = new b.CoordinatorClient(url, (await admin.post<{ token: string }>('/v1/api-keys', { role: 'researcher', identityKey: b.crypto.publicKeyBase64Url(identity.publicKey) })).token, 600_000);
    let t = performance.now();
    const homes: string[] = new Array<string>(files.length);
    let next = 0;
    const lane = async (): Promise<void> => {
      for (let i = next++; i < files.length; i = next++) {
        const { token } = await admin.post<{ token: string }>(`/v1/studies/${study.name}/invitations`, { participant: `hospital-${i + 1}` });
        const home = join(dir, `home-${i + 1}`);
        const enrolled = await b.enrollParticipant({ coordinatorUrl: url, invitation: token, home, dataFile: files[i]! });
        users.push(enrolled.redis.username);
        homes[i] = home;
        if ((i + 1) % 100 === 0) process.stderr.write(`    ${i + 1} enrolled\n`);
      }
    };
    await Promise.all(Array.from({ length: ENROLL_CONCURRENCY }, lane));
    const enrollMs = performance.now() - t;
    t = performance.now();
    const hosts = hostsFor(files.length);
    const per = Math.ceil(files.length / hosts);
    const started = await Promise.all(
      Array.from({ length: hosts }, (_, h) =>
        startProcess(`worker host ${h + 1}`, [...profiled(`host-${h + 1}`), '--import', 'tsx', join(REPO, 'bench', 'scale-host.ts')], { ...process.env, CONFIDE_SCALE_HOMES: JSON.stringify(homes.slice(h * per, (h + 1) * per)), LOG_LEVEL: 'warn' }, join(dir, `host-${h + 1}.log`), /^views (\d+) ms\s+ready \d+$/m, 1_200_000),
      ),
    );
    for (const s of started) children.push(s.child);
    const viewsMs = Math.max(...started.map((s) => Number(s.match[1])));
    return {
      viewsMs, url, adminToken, researcher, identity, study: study.name, coordinatorPid: coordinator.child.pid!, hostPids: started.map((s) => s.child.pid!), enrollMs, hostsReadyMs: performance.now() - t, close };
  } catch (err) {
    await close().catch(() => undefined);
    throw err;
  }
}

/** Where one query's time went, from its ledger entries' times (ms after the researcher's POST). */
interface Phases {
  readonly total: number;
  /** POST /v1/queries → committee.drawn or paillier.planned: the query's entry, its plan and the tasks made. */
  readonly planned: number;
  /** → round 1 closed (every answer checked) or, for paillier, the aggregate ready. */
  readonly round1: number;
  /** → result.released. */
  readonly released: number;
}

async function phasesOf(r: Running, id: string, startedAt: number): Promise<Omit<Phases, 'total'> & { refusals: Map<string, number> }> {
  const res = await fetch(`${r.url}/v1/ledger/entries/search?query=${id}&limit=100`, { headers: { authorization: `Bearer ${r.adminToken}` } });
  const { entries } = (await res.json()) as { entries: { entry: string }[] };
  const at = new Map<string, number>();
  // Why participants were not counted, by reason (a bench that sees refusals says so rather than just slowing down).
  const refusals = new Map<string, number>();
  for (const e of entries) {
    const entry = JSON.parse(Buffer.from(e.entry, 'base64').toString('utf8')) as { type: string; time: string; body: { round?: number; refusals?: { reason: string }[] } };
    const key = entry.type === 'round.closed' ? `round.closed:${entry.body.round ?? 1}` : entry.type;
    at.set(key, Date.parse(entry.time) - startedAt);
    for (const r of entry.body.refusals ?? []) refusals.set(r.reason, (refusals.get(r.reason) ?? 0) + 1);
  }
  const planned = at.get('committee.drawn') ?? at.get('paillier.planned') ?? NaN;
  return { planned, round1: at.get('round.closed:1') ?? NaN, released: at.get('result.released') ?? NaN, refusals };
}

async function awaitView(r: Running, id: string, ready: (q: QueryView) => boolean): Promise<QueryView> {
  const deadline = Date.now() + ROUND_SECONDS * 2000;
  for (;;) {
    const q = await r.researcher.get<QueryView>(`/v1/queries/${id}`);
    if (q.status === 'failed') throw new Error(`query ${id} failed: ${q.failureReason ?? 'no reason given'}`);
    if (ready(q)) return q;
    if (Date.now() > deadline) throw new Error(`query ${id} did not finish (round ${q.round}, ${q.answered}/${q.expected} answered)`);
    await sleep(POLL_MS);
  }
}

async function runShamir(b: Built, r: Running, expected: Expected): Promise<Phases> {
  const startedAt = Date.now();
  const t = performance.now();
  const { id } = await b.submitQuery(r.researcher, { study: r.study, protocol: 'shamir', ...SPEC });
  const q = await awaitView(r, id, (v) => v.status === 'succeeded');
  const total = performance.now() - t;
  const { refusals, ...phases } = await phasesOf(r, id, startedAt);
  for (const [reason, count] of refusals) process.stderr.write(`    query ${id}: ${count} refused: ${reason}\n`);
  checkResult('the secure pipeline (shamir)', q.results as Protocol.StatResult[], expected);
  return { total, ...phases };
}

async function runPaillier(b: Built, r: Running, keys: Crypto.PaillierKeyPair, expected: Expected): Promise<Phases> {
  const startedAt = Date.now();
  const t = performance.now();
  const { id } = await b.paillier.submitPaillierQuery(r.researcher, { study: r.study, ...SPEC }, keys.publicKey, r.identity);
  await awaitView(r, id, (v) => v.awaitingDecryption === true);
  const coordinatorKey = b.crypto.importPublicKeyBase64Url('ed25519', (await r.researcher.get<{ publicKey: string }>('/v1/ledger/public-key')).publicKey);
  const released = await b.paillier.checkDecryptAndPost<QueryView>(r.researcher, id, keys, coordinatorKey, { progress: () => undefined });
  const total = performance.now() - t;
  if (released.status !== 'succeeded') throw new Error(`paillier query ${id} ended ${released.status}`);
  checkResult('the secure pipeline (paillier)', released.results as Protocol.StatResult[], expected);
  const { refusals, ...phases } = await phasesOf(r, id, startedAt);
  for (const [reason, count] of refusals) process.stderr.write(`    query ${id}: ${count} refused: ${reason}\n`);
  // Paillier's round 1 closes when the aggregate is ready; the researcher's check, decryption and post follow.
  return { total, ...phases };
}

interface Measured {
  readonly phases: Phases[];
  readonly coordinatorCpuMs: number;
  readonly hostsCpuMs: number;
  readonly redisCpuMs: number;
  readonly coordinatorRssMiB: number;
  /** MB Redis received and sent per query. */
  readonly redisInMB: number;
  readonly redisOutMB: number;
}

async function redisCpuMs(redis: Redis): Promise<number> {
  const info = await redis.info('cpu');
  const v = (name: string): number => Number(new RegExp(`^${name}:([0-9.]+)`, 'm').exec(info)?.[1] ?? NaN);
  return (v('used_cpu_user') + v('used_cpu_sys')) * 1000;
}

/** Bytes Redis has received and sent so far (INFO stats). */
async function redisBytes(redis: Redis): Promise<{ in: number; out: number }> {
  const info = await redis.info('stats');
  const v = (name: string): number => Number(new RegExp(`^${name}:([0-9]+)`, 'm').exec(info)?.[1] ?? NaN);
  return { in: v('total_net_input_bytes'), out: v('total_net_output_bytes') };
}

/** Runs `count` queries one at a time, with the CPU every process used over them (per query). */
async function measure(r: Running, redis: Redis, count: number, one: () => Promise<Phases>): Promise<Measured> {
  const before = { c: cpuMsOf(r.coordinatorPid), h: r.hostPids.map(cpuMsOf), r: await redisCpuMs(redis), b: await redisBytes(redis) };
  const phases: Phases[] = [];
  for (let i = 0; i < count; i++) phases.push(await one());
  const after = { c: cpuMsOf(r.coordinatorPid), h: r.hostPids.map(cpuMsOf), r: await redisCpuMs(redis), b: await redisBytes(redis) };
  return {
    phases,
    coordinatorCpuMs: (after.c - before.c) / count,
    hostsCpuMs: after.h.reduce((s, v, i) => s + v - before.h[i]!, 0) / count,
    redisCpuMs: (after.r - before.r) / count,
    coordinatorRssMiB: memoryMiBOf(r.coordinatorPid).rss,
    redisInMB: (after.b.in - before.b.in) / count / 1e6,
    redisOutMB: (after.b.out - before.b.out) / count / 1e6,
  };
}

const p50 = (xs: readonly number[]): number => median(xs);

export async function scaleBench(opts: ScaleOptions = scaleOptionsFromEnv()): Promise<BenchSection> {
  const b = loadBuilt();
  const load = loadNote();
  const rows: (string | number)[][] = [];
  const notes: string[] = [];
  const keys = opts.paillierQueries > 0 ? await b.crypto.generatePaillierKeyPair(3072) : undefined;
  await inTempDir(
    b,
    async (root, redis) => {
      const admin = new Redis(redis.adminUrl, { maxRetriesPerRequest: 1 });
      try {
        for (const n of opts.sizes) {
          const dir = join(root, `n${n}`);
          const { files, texts } = writeData(b, join(dir, 'data'), n);
          const expected = expectedOf(b, texts);
          process.stderr.write(`  N=${n}: enrolling…\n`);
          const r = await startScale(b, dir, redis, files);
          try {
            process.stderr.write(`  N=${n}: enrolled in ${fmt(r.enrollMs)} ms, ${r.hostPids.length} host(s) ready in ${fmt(r.hostsReadyMs)} ms (views caught up in ${fmt(r.viewsMs)} ms)\n`);
            const first = await runShamir(b, r, expected);
            process.stderr.write(`  N=${n}: first query ${fmt(first.total)} ms\n`);
            const shamir = await measure(r, admin, opts.shamirQueries, () => runShamir(b, r, expected));
            process.stderr.write(`  N=${n}: shamir p50 ${fmt(p50(shamir.phases.map((p) => p.total)))} ms\n`);
            let paillier: Measured | undefined;
            if (keys && n <= opts.paillierUpTo) {
              await runPaillier(b, r, keys, expected);
              paillier = await measure(r, admin, opts.paillierQueries, () => runPaillier(b, r, keys, expected));
              process.stderr.write(`  N=${n}: paillier p50 ${fmt(p50(paillier.phases.map((p) => p.total)))} ms\n`);
            }
            const peak = memoryMiBOf(r.coordinatorPid).peak;
            const row = (protocol: string, m: Measured): (string | number)[] => {
              const total = m.phases.map((p) => p.total);
              return [
                n,
                protocol,
                m.phases.length,
                fmt(p50(total)),
                fmt(percentile(total, 95)),
                fmt(p50(m.phases.map((p) => p.planned))),
                fmt(p50(m.phases.map((p) => p.round1 - p.planned))),
                fmt(p50(m.phases.map((p) => p.total - p.round1))),
                fmt(m.coordinatorCpuMs),
                fmt(m.hostsCpuMs),
                fmt(m.redisCpuMs),
                `${fmt(m.coordinatorRssMiB)} (peak ${fmt(peak)})`,
                `${fmt(m.redisInMB)} / ${fmt(m.redisOutMB)}`,
              ];
            };
            rows.push(row('shamir', shamir));
            if (paillier) rows.push(row('paillier', paillier));
            const plain = await baseline(b, redis, files, expected, opts.shamirQueries);
            notes.push(`N = ${n}: enrollment ${fmt(r.enrollMs / 1000)} s (${ENROLL_CONCURRENCY} at a time), ${r.hostPids.length} worker host process(es), every ledger view brought to the head in ${fmt(r.viewsMs / 1000)} s; first query after enrollment ${fmt(first.total)} ms; plaintext baseline p50 ${fmt(plain)} ms (shamir p50 / baseline ${fmt(p50(shamir.phases.map((p) => p.total)) / plain)}×).`);
          } catch (err) {
            // The temp dir goes with the run: what the coordinator said last goes to stderr first.
            const log = readFileSync(join(dir, 'coordinator.log'), 'utf8').split('\n').slice(-30).join('\n');
            process.stderr.write(`  N=${n}: ${(err as Error).message}\n  the coordinator's log, last lines:\n${log}\n`);
            throw err;
          } finally {
            await r.close();
          }
        }
      } finally {
        admin.disconnect();
      }
    },
    'scale',
  );
  return {
    id: 'scale',
    title: 'Scale: one query over N participants',
    method: [
      `One secure mean (and count) of salary at a time over N participants with ${ROWS} generated rows each. The coordinator runs in its own process (\`confide coordinator start\`, embedded SQLite); the N participant workers (the product's ParticipantWorker, each with its own Redis connection and ACL user) share ${'`hostsFor(N)`'} host processes (bench/scale-host.ts: one per 250 participants, at most 4); all enrolled as users enroll (${ENROLL_CONCURRENCY} at a time); a private redis-server on loopback. Shamir with a committee of min(N, 10); paillier with a 3072-bit researcher key, timed through the researcher's check, decryption and post as \`confide query --protocol paillier --wait\` does (one untimed paillier query first fills the workers' r^n pools).`,
      `Timed from the POST to the GET that shows the result (polled every ${POLL_MS} ms). Phases from the ledger entries' times: *plan* = POST → committee.drawn / paillier.planned (the query entry, nonce, plan, every task signed and stored); *round 1* = → round.closed of round 1 (every participant's task sent, answered, checked); *rest* = → the result (shamir: round 2 over the committee; paillier: aggregation, the researcher's decryption and its check). CPU is per query over the timed queries, from /proc (coordinator, hosts) and INFO cpu (Redis); the coordinator's resident memory after them, and its peak over the whole run.`,
      "After enrollment, and before any query, each host brings its workers' ledger views up to the head (ParticipantWorker.syncLedger, what a worker does by itself in the background when its heartbeat shows it far behind): participant i's view lacks the N − i enrollments after its own, N²/2 study entries in all, each checked with its inclusion proof; its time is in the notes. The first query after that is listed apart in the notes too.",
    ].join('\n\n'),
    columns: ['participants', 'protocol', 'queries', 'p50 ms', 'p95 ms', 'plan ms', 'round 1 ms', 'rest ms', 'coordinator CPU ms/query', 'workers CPU ms/query', 'Redis CPU ms/query', 'coordinator RSS MiB', 'Redis in / out MB per query'],
    rows,
    notes: `${notes.join(' ')}${opts.paillierQueries > 0 && opts.sizes.some((n) => n > opts.paillierUpTo) ? ` Paillier runs up to N = ${opts.paillierUpTo} (SCALE_PAILLIER_MAX_N).` : ''} ${load}`,
  };
}

/** The plaintext baseline at the same N in this process: p50 of `count` queries after one warm-up. */
async function baseline(b: Built, redis: LocalRedisModule.LocalRedis, files: readonly string[], expected: Expected, count: number): Promise<number> {
  const plain = await startPlaintextBaseline({
    redisUrl: redis.adminUrl,
    prefix: `${runPrefix()}-plain`,
    schema: b.protocol.parseStudySchema(b.demo.syntheticSalaryStudy()),
    participants: files.map((dataFile) => ({ id: b.queue.newParticipantId(), dataFile })),
    libs: { protocol: b.protocol, queue: b.queue },
  });
  try {
    checkResult('the plaintext baseline', await plain.run(SPEC), expected);
    const times: number[] = [];
    for (let i = 0; i < count; i++) {
      const t = performance.now();
      checkResult('the plaintext baseline', await plain.run(SPEC), expected);
      times.push(performance.now() - t);
    }
    return p50(times);
  } finally {
    await plain.close();
  }
}
