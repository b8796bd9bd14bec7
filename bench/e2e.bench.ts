import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import pino from 'pino';
import type * as Crypto from '@confide/crypto';
import type * as Protocol from '@confide/protocol';
import type * as CliClient from '../apps/cli/src/client';
import type * as LocalRedisModule from '../apps/cli/src/local-redis';
import type * as Bootstrap from '../apps/coordinator/src/bootstrap';
import type { QueryView } from '../apps/coordinator/src/queries/queries.service';
import type * as ParticipantWorkerModule from '../apps/participant/src/worker';
import { startPlaintextBaseline, type PlaintextBaseline } from './baseline-pipeline';
import { BASELINE, benchCoordinatorEnv, type Built, checkResult, cleanupRedis, type Expected, expectedOf, inTempDir, loadBuilt, loadNote, median, percentile, ROWS, runPrefix, setUpStudy, sleep, SPEC, writeData } from './e2e-support';
import { fmt, type BenchSection } from './harness';

/**
 * End-to-end benchmarks of the running service: a real coordinator (HTTP, embedded SQLite, BullMQ) and real
 * participant workers, against a bench-only plaintext pipeline over the same queues (bench/baseline-pipeline.ts).
 */

/** How often a single query is polled while timing latency. */
const POLL_MS = 20;
/** How often the pending queries of a burst are polled (one GET each, in turn): 10 queries at 20 ms would be 500 GET/s. */
const BURST_POLL_MS = 100;

/** The secure service at N participants: a coordinator and N workers in this process, enrolled as a user does. */
interface SecureCluster {
  submit(): Promise<string>;
  /** Submits a paillier query as the CLI does: the public key, with the researcher's signed binding. */
  submitPaillier(publicKey: Crypto.PaillierPublicKey): Promise<string>;
  /** The researcher's API client. */
  readonly researcher: CliClient.CoordinatorClient;
  /** The key that signs the ledger, which the key holder checks the aggregate's evidence with. */
  readonly coordinatorKey: Crypto.PublicKey;
  view(id: string): Promise<QueryView>;
  close(): Promise<void>;
}

async function startSecure(b: Built, dir: string, prefix: string, files: readonly string[], redis: LocalRedisModule.LocalRedis): Promise<SecureCluster> {
  const adminToken = randomBytes(24).toString('base64url');
  const workers: ParticipantWorkerModule.ParticipantWorker[] = [];
  const users: string[] = [];
  let coordinator: Bootstrap.RunningCoordinator | undefined;
  const close = async (): Promise<void> => {
    await Promise.allSettled(workers.map((w) => w.stop()));
    await coordinator?.close().catch(() => undefined);
    await cleanupRedis(redis.adminUrl, prefix, users);
  };
  try {
    const running = await b.startCoordinator(
      b.loadConfig(benchCoordinatorEnv({ redis, dir, prefix, adminToken })),
    );
    coordinator = running;
    const logger = pino({ level: 'silent' });
    const study = await setUpStudy(b, running.url, adminToken, dir, files, users, async (home) => {
      const worker = new b.ParticipantWorker({ home, logger });
      workers.push(worker);
      await worker.start();
    });
    const { researcher, identity } = study;
    return {
      // As `confide query` does: for shamir, a committed nonce revealed once the commitment is in the ledger.
      submit: async () => (await b.submitQuery(researcher, { study: study.name, protocol: 'shamir', ...SPEC })).id,
      submitPaillier: async (publicKey) => (await b.paillier.submitPaillierQuery(researcher, { study: study.name, ...SPEC }, publicKey, identity)).id,
      researcher,
      coordinatorKey: running.coordinatorKey,
      view: (id) => researcher.get<QueryView>(`/v1/queries/${id}`),
      close,
    };
  } catch (err) {
    await close().catch(() => undefined);
    throw err;
  }
}

/** Polls one query every POLL_MS until it succeeds; returns its statistics. @throws if it fails or takes over 2 minutes */
async function awaitQuery(c: SecureCluster, id: string): Promise<Protocol.StatResult[]> {
  const deadline = Date.now() + 120_000;
  for (;;) {
    const q = await c.view(id);
    if (q.status === 'succeeded') return q.results as Protocol.StatResult[];
    if (q.status === 'failed') throw new Error(`query ${id} failed: ${q.failureReason ?? 'no reason given'}`);
    if (Date.now() > deadline) throw new Error(`query ${id} did not finish in 2 minutes (round ${q.round}, ${q.answered}/${q.expected} answered)`);
    await sleep(POLL_MS);
  }
}

/** Polls every query of a burst in turn, then waits BURST_POLL_MS, until all succeeded; returns their statistics. */
async function awaitAll(c: SecureCluster, ids: readonly string[]): Promise<Protocol.StatResult[][]> {
  const deadline = Date.now() + 180_000;
  const done = new Map<string, Protocol.StatResult[]>();
  for (;;) {
    for (const id of ids.filter((i) => !done.has(i))) {
      const q = await c.view(id);
      if (q.status === 'succeeded') done.set(id, q.results as Protocol.StatResult[]);
      else if (q.status === 'failed') throw new Error(`query ${id} failed: ${q.failureReason ?? 'no reason given'}`);
    }
    if (done.size === ids.length) return ids.map((id) => done.get(id)!);
    if (Date.now() > deadline) throw new Error(`${ids.length - done.size} of ${ids.length} queries did not finish in 3 minutes`);
    await sleep(BURST_POLL_MS);
  }
}

/** Both pipelines running at N participants over the same files, under one run's Redis prefix. */
interface Pair {
  readonly secure: SecureCluster;
  readonly plain: PlaintextBaseline;
  readonly expected: Expected;
  close(): Promise<void>;
}

async function startPair(b: Built, root: string, n: number, redis: LocalRedisModule.LocalRedis): Promise<Pair> {
  const dir = join(root, `n${n}`);
  const prefix = runPrefix();
  const { files, texts } = writeData(b, join(dir, 'data'), n);
  const secure = await startSecure(b, dir, prefix, files, redis);
  let plain: PlaintextBaseline;
  try {
    plain = await startPlaintextBaseline({
      redisUrl: redis.adminUrl,
      prefix: `${prefix}-plain`,
      schema: b.protocol.parseStudySchema(b.demo.syntheticSalaryStudy()),
      participants: files.map((dataFile) => ({ id: b.queue.newParticipantId(), dataFile })),
      libs: { protocol: b.protocol, queue: b.queue },
    });
  } catch (err) {
    await secure.close();
    throw err;
  }
  return {
    secure,
    plain,
    expected: expectedOf(b, texts),
    async close() {
      await Promise.allSettled([secure.close(), plain.close()]);
    },
  };
}

/** One query each way, not counted: JIT, HTTP keep-alive, prepared statements, QueueEvents cursors. */
async function warmUp(pair: Pair): Promise<void> {
  checkResult('the secure pipeline', await awaitQuery(pair.secure, await pair.secure.submit()), pair.expected);
  checkResult('the plaintext baseline', await pair.plain.run(SPEC), pair.expected);
}

const IN_ONE_PROCESS =
  'The participant workers share one Node process with the coordinator (Nest HTTP API, embedded SQLite in a temp dir, BullMQ), each with its own Redis connection and ACL user (BullMQ concurrency 1), against a private redis-server on loopback (default user off, as the coordinator requires) that is removed afterwards.';

/**
 * Latency of one secure mean, POST /v1/queries to the GET that shows it succeeded, at N = 3, 10, 50, against
 * the plaintext baseline at the same N over the same files; the two alternate, query by query.
 */
export async function e2eLatencyBench(plan: readonly { n: number; queries: number }[] = [{ n: 3, queries: 40 }, { n: 10, queries: 40 }, { n: 50, queries: 20 }]): Promise<BenchSection> {
  const b = loadBuilt();
  const load = loadNote();
  const rows: (string | number)[][] = [];
  await inTempDir(b, async (root, redis) => {
    for (const { n, queries } of plan) {
      process.stderr.write(`  N=${n}: enrolling ${n} participants…\n`);
      const pair = await startPair(b, root, n, redis);
      try {
        await warmUp(pair);
        const secure: number[] = [];
        const plain: number[] = [];
        for (let i = 0; i < queries; i++) {
          let t = performance.now();
          checkResult('the secure pipeline', await awaitQuery(pair.secure, await pair.secure.submit()), pair.expected);
          secure.push(performance.now() - t);
          t = performance.now();
          checkResult('the plaintext baseline', await pair.plain.run(SPEC), pair.expected);
          plain.push(performance.now() - t);
        }
        process.stderr.write(`  N=${n}: secure p50 ${fmt(median(secure))} ms, plaintext p50 ${fmt(median(plain))} ms\n`);
        const [s50, s95, p50, p95] = [percentile(secure, 50), percentile(secure, 95), percentile(plain, 50), percentile(plain, 95)];
        rows.push([n, (n * ROWS).toLocaleString('en-US'), queries, fmt(s50), fmt(s95), fmt(p50), fmt(p95), fmt(s50 / p50), fmt(s95 / p95)]);
      } finally {
        await pair.close();
      }
    }
  });
  return {
    id: 'e2e-latency',
    title: 'End-to-end secure mean latency vs plaintext pipeline',
    method: [
      `Secure mean (and count) of salary over the shamir protocol, timed from sending POST /v1/queries to receiving the GET /v1/queries/:id that shows \`succeeded\` (polled every ${POLL_MS} ms, so up to ${POLL_MS} ms of each figure is polling); committee of min(N, 10). Each participant holds ${ROWS} generated salary rows (generateSalaryCsv). ${IN_ONE_PROCESS}`,
      `${BASELINE} Timed from submitting to holding the statistics.`,
      'Secure and plaintext queries alternate, one at a time, after one warm-up query each; every answer is checked against the mean computed from the files. p50/p95 are nearest-rank over the queries listed (with 20 queries, p95 is the second slowest).',
    ].join('\n\n'),
    columns: ['participants', 'records', 'queries', 'secure p50 ms', 'secure p95 ms', 'plaintext p50 ms', 'plaintext p95 ms', 'ratio p50', 'ratio p95'],
    rows,
    notes: load,
  };
}

/**
 * Throughput with `inFlight` queries submitted at once at N participants: wall time from the first submission
 * until every one succeeded, repeated `bursts` times, for both pipelines.
 */
export async function e2eThroughputBench(n = 10, inFlight = 10, bursts = 5): Promise<BenchSection> {
  const b = loadBuilt();
  const load = loadNote();
  const secure: number[] = [];
  const plain: number[] = [];
  await inTempDir(b, async (root, redis) => {
    process.stderr.write(`  N=${n}: enrolling ${n} participants…\n`);
    const pair = await startPair(b, root, n, redis);
    try {
      await warmUp(pair);
      for (let burst = 0; burst < bursts; burst++) {
        let t = performance.now();
        const ids = await Promise.all(Array.from({ length: inFlight }, () => pair.secure.submit()));
        for (const results of await awaitAll(pair.secure, ids)) checkResult('the secure pipeline', results, pair.expected);
        secure.push(performance.now() - t);
        t = performance.now();
        for (const results of await Promise.all(Array.from({ length: inFlight }, () => pair.plain.run(SPEC)))) checkResult('the plaintext baseline', results, pair.expected);
        plain.push(performance.now() - t);
        process.stderr.write(`  burst ${burst + 1}/${bursts}: secure ${fmt(secure.at(-1)!)} ms, plaintext ${fmt(plain.at(-1)!)} ms\n`);
      }
    } finally {
      await pair.close();
    }
  });
  const perMinute = (ms: number): number => (inFlight * 60_000) / ms;
  const row = (name: string, walls: number[]): (string | number)[] => [name, walls.map((w) => fmt(w)).join(', '), fmt(perMinute(median(walls)))];
  const ratio = median(secure) / median(plain);
  return {
    id: 'e2e-throughput',
    title: `End-to-end throughput: ${inFlight} queries in flight at ${n} participants`,
    method: [
      `${inFlight} secure means (with count) of salary submitted at once (POST /v1/queries), timed until GET /v1/queries/:id shows every one \`succeeded\` (the pending queries polled in turn every ${BURST_POLL_MS} ms); ${bursts} bursts, queries per minute from the median burst. ${n} participants with ${ROWS} generated salary rows each, committee of ${Math.min(n, 10)}. ${IN_ONE_PROCESS}`,
      `${BASELINE} The baseline runs the same bursts (${inFlight} queries submitted at once), alternating with the secure ones.`,
    ].join('\n\n'),
    columns: ['pipeline', `wall ms per burst of ${inFlight}`, 'queries/min (median burst)'],
    rows: [row('secure (shamir)', secure), row('plaintext baseline', plain)],
    notes: `Secure/plaintext wall-time ratio (median bursts): ${fmt(ratio)}. ${load}`,
  };
}

/**
 * One paillier query as the researcher's CLI runs it with --wait: submit with the public key and the signed binding,
 * poll until the aggregate is ready, fetch it, check it (ledger evidence, every contribution's signature, the product
 * recomputed), decrypt it locally (CRT) with its randomness, and post; the coordinator verifies c = (1+n)^m · r^n
 * before it releases. Returns the released statistics.
 */
async function runPaillier(b: Built, c: SecureCluster, keys: Crypto.PaillierKeyPair): Promise<Protocol.StatResult[]> {
  const id = await c.submitPaillier(keys.publicKey);
  const deadline = Date.now() + 120_000;
  for (;;) {
    const q = await c.view(id);
    if (q.status === 'failed') throw new Error(`query ${id} failed: ${q.failureReason ?? 'no reason given'}`);
    if (q.awaitingDecryption) break;
    if (Date.now() > deadline) throw new Error(`paillier query ${id} did not reach its aggregate in 2 minutes`);
    await sleep(POLL_MS);
  }
  const released = await b.paillier.checkDecryptAndPost<QueryView>(c.researcher, id, keys, c.coordinatorKey, { progress: () => undefined });
  if (released.status !== 'succeeded') throw new Error(`paillier query ${id} ended ${released.status}`);
  return released.results as Protocol.StatResult[];
}

/**
 * Paillier vs shamir end to end at N = 10 and 50 participants over the same files: latency of one secure mean each
 * way, alternating, with a 3072-bit researcher key made once (natively) before the runs.
 */
export async function e2ePaillierBench(plan: readonly { n: number; queries: number }[] = [{ n: 10, queries: 12 }, { n: 50, queries: 6 }], bits = 3072): Promise<BenchSection> {
  const b = loadBuilt();
  const load = loadNote();
  const rows: (string | number)[][] = [];
  let t = performance.now();
  const keys = await b.crypto.generatePaillierKeyPair(bits);
  const keygenMs = performance.now() - t;
  await inTempDir(b, async (root, redis) => {
    for (const { n, queries } of plan) {
      process.stderr.write(`  N=${n}: enrolling ${n} participants…\n`);
      const pair = await startPair(b, root, n, redis);
      try {
        await warmUp(pair);
        checkResult('paillier', await runPaillier(b, pair.secure, keys), pair.expected);
        const shamir: number[] = [];
        const paillier: number[] = [];
        for (let i = 0; i < queries; i++) {
          t = performance.now();
          checkResult('shamir', await awaitQuery(pair.secure, await pair.secure.submit()), pair.expected);
          shamir.push(performance.now() - t);
          t = performance.now();
          checkResult('paillier', await runPaillier(b, pair.secure, keys), pair.expected);
          paillier.push(performance.now() - t);
        }
        process.stderr.write(`  N=${n}: shamir p50 ${fmt(median(shamir))} ms, paillier p50 ${fmt(median(paillier))} ms\n`);
        rows.push([n, queries, fmt(median(shamir)), fmt(percentile(shamir, 95)), fmt(median(paillier)), fmt(percentile(paillier, 95)), fmt(median(paillier) / median(shamir))]);
      } finally {
        await pair.close();
      }
    }
  });
  return {
    id: 'e2e-paillier',
    title: 'End-to-end secure mean: paillier vs shamir',
    method: [
      `The same secure mean (and count) of salary over the same files, once with shamir (two rounds, committee of min(N, 10)) and once with paillier (${bits}-bit researcher key, one round), alternating query by query after one warm-up each. Shamir is timed from POST /v1/queries to the GET that shows \`succeeded\`; paillier from POST /v1/queries (with the researcher's signed key binding, which every worker checks against the ledger before it encrypts) through the GET that shows the aggregate ready (polled every ${POLL_MS} ms), fetching the aggregate with its contributions and ledger evidence, checking it as the key holder does (evidence, every contribution's signature and hash, the product recomputed), decrypting it with the private key (CRT, native) and posting plaintext and randomness, to the response that releases the verified result — what \`confide query --protocol paillier --wait\` does. Each participant holds ${ROWS} generated salary rows. ${IN_ONE_PROCESS} The aggregation worker is a separate process forked by the coordinator (CONFIDE_AGGREGATORS=1).`,
      'In paillier each participant encrypts its packed vector (one 6144-bit ciphertext here) and signs; the aggregation worker checks every ciphertext (range, unit mod n², signature) and multiplies; the coordinator checks the posted decryption with one exponentiation. The first query with a key finds every worker\'s r^n pool empty; the pools fill while the workers are idle, so timed queries use pooled values. Here all N workers share this process and its 2 vCPUs, so each worker\'s refill after answering (one 3072-bit r^n, ≈ 40 ms, per ciphertext used) runs on the same cores as the next query: at N = 50 that is ≈ 2 s of CPU per query that a deployment spreads over 50 machines. The paillier figures are therefore an upper bound for one machine hosting every participant.',
    ].join('\n\n'),
    columns: ['participants', 'queries each', 'shamir p50 ms', 'shamir p95 ms', 'paillier p50 ms', 'paillier p95 ms', 'paillier / shamir p50'],
    rows,
    notes: `${load} Researcher key generation (${bits} bits, native, once): ${fmt(keygenMs)} ms.`,
  };
}
