import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import type * as Protocol from '@confide/protocol';
import { parseTaskJobId } from '@confide/queue';
import type * as CliClient from '../apps/cli/src/client';
import type * as LocalRedisModule from '../apps/cli/src/local-redis';
import type { QueryView } from '../apps/coordinator/src/queries/queries.service';
import { startPlaintextBaseline, type PlaintextBaseline } from './baseline-pipeline';
import { formatSummary, summariseCpuProfile } from './cpuprofile-summary';
import { childrenOf, cpuMsOf, startProcess, stopProcess } from './processes';
import {
  BASELINE,
  benchCoordinatorEnv,
  BUILT,
  BUILT_CLI,
  checkResult,
  cleanupRedis,
  expectedOf,
  InexactResult,
  inTempDir,
  loadBuilt,
  loadNote,
  percentile,
  REPO,
  ROWS,
  runPrefix,
  setUpStudy,
  sleep,
  SPEC,
  writeData,
  type Built,
  type Expected,
} from './e2e-support';
import { fmt, type BenchSection } from './harness';

/**
 * The soak: a bounded load test on loopback (a bench, not CI). A real coordinator process (`confide coordinator
 * start`, embedded SQLite) and N real participant processes (`confide participant run`) keep `inFlight` shamir
 * queries running for a set time, a new one submitted as each finishes; every answer is checked against the plain
 * mean of the files, and the run stops at the first that is not exact (or fails). Memory and CPU of every process
 * are sampled throughout, Redis's command statistics and latency and the coordinator's SQLite time are taken over
 * the measured window. Then the plaintext baseline (bench/baseline-pipeline.ts), with its participants in N
 * processes too, runs at the same concurrency over the same Redis, and the two are compared.
 *
 * Environment: SOAK_SECONDS (default 300), SOAK_IN_FLIGHT (200), SOAK_BASELINE_SECONDS (min(SOAK_SECONDS, 60)),
 * SOAK_PROFILE_DIR (when set: `--cpu-prof` for the coordinator and participant 1, profiles kept there and summarised
 * on stderr).
 */

/** How often the ledger is read for finished queries (one GET /v1/events each time, whatever the number in flight). */
const TAIL_MS = 50;
/** How often each process samples its memory (bench/soak-probe.cjs). */
const SAMPLE_MS = 1000;
/** Round deadlines of the soak's coordinator: a query that takes longer fails, and so does the soak. */
const ROUND_SECONDS = 900;
/** The part of each run before the measured window: queries finishing in it are checked but not counted. */
const WARMUP_FRACTION = 0.2;
/** Growth over the window below this is "flat" whatever the noise (MiB). */
const FLAT_FLOOR_MIB = 2;
const PROBE = join(REPO, 'bench', 'soak-probe.cjs');
const MIB = 2 ** 20;

/** What {@link soakBench} runs; the defaults are the issue's (200 in flight over 10 participants for 5 minutes). */
export interface SoakOptions {
  readonly participants: number;
  readonly inFlight: number;
  readonly seconds: number;
  readonly baselineSeconds: number;
  /** Where `--cpu-prof` writes the coordinator's and participant 1's profiles; none when unset. */
  readonly profileDir?: string;
}

/** The options from SOAK_* environment variables, with the issue's defaults. @throws Error naming a bad variable */
export function soakOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): SoakOptions {
  const int = (name: string, fallback: number): number => {
    const raw = env[name];
    if (raw === undefined || raw === '') return fallback;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer`);
    return n;
  };
  const seconds = int('SOAK_SECONDS', 300);
  return {
    participants: 10,
    inFlight: int('SOAK_IN_FLIGHT', 200),
    seconds,
    baselineSeconds: int('SOAK_BASELINE_SECONDS', Math.min(seconds, 60)),
    profileDir: env.SOAK_PROFILE_DIR || undefined,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Processes

/** `node` arguments for a profiled or unprofiled process with the memory probe in front. */
function nodeArgs(profileDir: string | undefined, role: string): string[] {
  const args = ['-r', PROBE];
  if (profileDir) {
    const dir = join(profileDir, role);
    mkdirSync(dir, { recursive: true });
    args.push('--cpu-prof', `--cpu-prof-dir=${dir}`);
  }
  return args;
}

// ---------------------------------------------------------------------------------------------------------------
// The secure service in processes

interface SoakCluster {
  readonly url: string;
  readonly researcher: CliClient.CoordinatorClient;
  readonly adminToken: string;
  readonly study: string;
  readonly coordinatorPid: number;
  readonly workerPids: readonly number[];
  close(): Promise<void>;
}

/**
 * The coordinator (`confide coordinator start`, embedded SQLite in `dir`) and one `confide participant run` process
 * per file, enrolled as a user does (bench/e2e-support setUpStudy), each with the memory probe in front, the
 * coordinator also timing its SQLite statements and ledger appends.
 */
async function startSoakCluster(b: Built, dir: string, redis: LocalRedisModule.LocalRedis, files: readonly string[], probeDir: string, profileDir: string | undefined): Promise<SoakCluster> {
  const prefix = runPrefix();
  const adminToken = randomBytes(24).toString('base64url');
  const users: string[] = [];
  const children: ChildProcess[] = [];
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
      CONFIDE_PROBE_DIR: probeDir,
      CONFIDE_PROBE_MS: String(SAMPLE_MS),
      CONFIDE_PROBE_COORDINATOR: '1',
      CONFIDE_PROBE_EVENTLOG: join(BUILT, 'apps/coordinator/src/db/repositories.js'),
      LOG_LEVEL: 'info',
    };
    // Embedded SQLite, the default: no DATABASE_URL.
    delete env.DATABASE_URL;
    const coordinator = await startProcess('the coordinator', [...nodeArgs(profileDir, 'coordinator'), BUILT_CLI, 'coordinator', 'start', '--port', '0'], env, join(dir, 'coordinator.log'), /coordinator listening on (http:\/\/\S+) /);
    children.push(coordinator.child);
    const url = coordinator.match[1]!;
    const study = await setUpStudy(b, url, adminToken, dir, files, users, async (home, i) => {
      const workerEnv: NodeJS.ProcessEnv = { ...process.env, CONFIDE_PROBE_DIR: probeDir, CONFIDE_PROBE_MS: String(SAMPLE_MS), LOG_LEVEL: 'info' };
      const args = [...nodeArgs(i === 0 ? profileDir : undefined, 'participant-1'), BUILT_CLI, 'participant', 'run', '--home', home];
      const started = await startProcess(`participant ${i + 1}`, args, workerEnv, join(dir, `participant-${i + 1}.log`), /worker ready/);
      children.push(started.child);
    });
    return {
      url,
      researcher: study.researcher,
      adminToken,
      study: study.name,
      coordinatorPid: coordinator.child.pid!,
      workerPids: children.slice(1).map((c) => c.pid!),
      close,
    };
  } catch (err) {
    await close().catch(() => undefined);
    throw err;
  }
}

/** The plaintext baseline with each participant in its own process (bench/baseline-worker.ts). */
async function startBaselineProcesses(b: Built, dir: string, redis: LocalRedisModule.LocalRedis, files: readonly string[]): Promise<{ baseline: PlaintextBaseline; workerPids: number[] }> {
  const workerPids: number[] = [];
  const study = b.demo.syntheticSalaryStudy();
  const baseline = await startPlaintextBaseline({
    redisUrl: redis.adminUrl,
    prefix: `${runPrefix()}-plain`,
    schema: b.protocol.parseStudySchema(study),
    participants: files.map((dataFile) => ({ id: b.queue.newParticipantId(), dataFile })),
    libs: { protocol: b.protocol, queue: b.queue },
    spawnWorker: async ({ schema: _parsed, ...worker }) => {
      const env = { ...process.env, CONFIDE_BASELINE_WORKER: JSON.stringify({ ...worker, study }) };
      const { child } = await startProcess(`baseline worker ${worker.participant.id}`, ['--import', 'tsx', join(REPO, 'bench', 'baseline-worker.ts')], env, join(dir, `baseline-${worker.participant.id}.log`), /^ready$/m);
      workerPids.push(child.pid!);
      return { close: () => stopProcess(child) };
    },
  });
  return { baseline, workerPids };
}

// ---------------------------------------------------------------------------------------------------------------
// Following queries to their end through the ledger

/** How long one ledger read may take, and how long reads may keep failing, before the soak counts the coordinator as down. */
const TAIL_TIMEOUT_MS = 60_000;

/**
 * Learns when queries end by reading the ledger (GET /v1/events from the last index seen, every TAIL_MS): one request
 * whatever the number in flight, where polling each query would cost the coordinator 200 requests per round. A
 * `result.released` entry resolves its query's wait with the time it was seen; `query.failed` rejects it. A read that
 * fails is tried again; reads failing or unanswered for TAIL_TIMEOUT_MS reject every wait, naming the cause.
 */
class LedgerTail {
  private next = 0;
  private stopped = false;
  private loop?: Promise<void>;
  private error?: Error;
  private readonly ended = new Map<string, { at: number; failure?: string }>();
  private readonly waiters = new Map<string, { resolve: (at: number) => void; reject: (err: Error) => void }>();

  constructor(
    private readonly url: string,
    private readonly adminToken: string,
  ) {}

  async start(): Promise<void> {
    this.next = (await this.read(0, 1)).total;
    this.loop = this.run();
  }

  /** Resolves with the time (performance.now()) the query's result was seen in the ledger. @throws when it failed */
  wait(queryId: string): Promise<number> {
    if (this.error) return Promise.reject(this.error);
    const ended = this.ended.get(queryId);
    if (ended) {
      this.ended.delete(queryId);
      return ended.failure === undefined ? Promise.resolve(ended.at) : Promise.reject(new Error(`query ${queryId} failed: ${ended.failure}`));
    }
    return new Promise((resolve, reject) => this.waiters.set(queryId, { resolve, reject }));
  }

  /** Rejects every wait, now and later, with `err`. */
  abort(err: Error): void {
    this.error ??= err;
    for (const w of this.waiters.values()) w.reject(this.error);
    this.waiters.clear();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
  }

  private async read(start: number, limit: number): Promise<{ total: number; events: { index: number; type: string; body: { queryId?: string; reason?: string } }[] }> {
    const res = await fetch(`${this.url}/v1/events?start=${start}&limit=${limit}`, { headers: { authorization: `Bearer ${this.adminToken}` }, signal: AbortSignal.timeout(TAIL_TIMEOUT_MS) });
    if (!res.ok) throw new Error(`GET /v1/events answered HTTP ${res.status}`);
    return (await res.json()) as Awaited<ReturnType<LedgerTail['read']>>;
  }

  private settle(queryId: string, at: number, failure?: string): void {
    const waiter = this.waiters.get(queryId);
    if (!waiter) {
      this.ended.set(queryId, { at, failure });
      return;
    }
    this.waiters.delete(queryId);
    if (failure === undefined) waiter.resolve(at);
    else waiter.reject(new Error(`query ${queryId} failed: ${failure}`));
  }

  private async run(): Promise<void> {
    let failingSince: number | undefined;
    while (!this.stopped && !this.error) {
      let page;
      try {
        page = await this.read(this.next, 1000);
        failingSince = undefined;
      } catch (err) {
        // undici's "fetch failed" hides its reason (a timeout, a reset socket) in `cause`.
        const cause = (err as Error).cause as { code?: string; message?: string } | undefined;
        const why = `${(err as Error).message}${cause ? ` (${cause.code ?? ''} ${cause.message ?? ''})` : ''}`;
        failingSince ??= performance.now();
        process.stderr.write(`  reading the ledger failed: ${why}\n`);
        if (performance.now() - failingSince >= TAIL_TIMEOUT_MS || (err as Error).name === 'TimeoutError') {
          this.abort(new Error(`the coordinator stopped answering GET /v1/events: ${why}`));
          return;
        }
        await sleep(1000);
        continue;
      }
      const at = performance.now();
      for (const e of page.events) {
        if (e.type === 'result.released' && e.body.queryId) this.settle(e.body.queryId, at);
        else if (e.type === 'query.failed' && e.body.queryId) this.settle(e.body.queryId, at, e.body.reason ?? 'no reason given');
        this.next = e.index + 1;
      }
      if (page.events.length < 1000) await sleep(TAIL_MS);
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The closed loop

interface Completion {
  readonly finishedAt: number;
  readonly latencyMs: number;
}

interface LoopResult {
  /** The queries finished in the window. */
  readonly completions: Completion[];
  /** Queries finished in each whole minute of the run (warm-up included): a soak's throughput should not sag. */
  readonly perMinute: number[];
  readonly windowStart: number;
  /** The end of the window: the end of the run, or the moment it failed. */
  readonly windowEnd: number;
  /** Every query checked exact, in the window or not (warm-up and drain included). */
  readonly checked: number;
  /** Why the run stopped early (a query failed, the coordinator stopped answering), and when (s from its start). */
  readonly failure?: { readonly atSeconds: number; readonly message: string };
}

/**
 * Keeps `inFlight` queries running for `seconds`: each lane runs one query (`runOne` resolves once its answer is
 * checked), then the next, until the time is up; then every lane finishes its query. The measured window is the part
 * after the warm-up; `onWindow` runs at its start and at its end (to take counters). An inexact answer is thrown at
 * once. Any other error (a query that failed, a coordinator that stopped answering) ends the run there: `abort` is
 * called with it, to release every lane still waiting, the window ends, and the failure is returned with what was
 * measured until then, for the report to show.
 * @throws InexactResult from `runOne`
 */
async function closedLoop(inFlight: number, seconds: number, runOne: () => Promise<void>, onWindow: (edge: 'start' | 'end') => Promise<void>, abort: (err: Error) => void): Promise<LoopResult> {
  const t0 = performance.now();
  const windowStart = t0 + seconds * 1000 * WARMUP_FRACTION;
  let windowEnd = t0 + seconds * 1000;
  const completions: Completion[] = [];
  let checked = 0;
  let inexact: InexactResult | undefined;
  let failure: { atSeconds: number; message: string } | undefined;
  let failed!: () => void;
  const stopped = new Promise<void>((resolve) => (failed = resolve));
  const lane = async (): Promise<void> => {
    while (performance.now() < windowEnd && !failure && !inexact) {
      const start = performance.now();
      try {
        await runOne();
      } catch (err) {
        const error = err instanceof Error ? err : new Error(String(err));
        if (error instanceof InexactResult) inexact ??= error;
        else if (!failure) {
          failure = { atSeconds: (performance.now() - t0) / 1000, message: error.cause instanceof Error ? `${error.message}: ${error.cause.message}` : error.message };
          windowEnd = Math.min(windowEnd, performance.now());
        }
        failed();
        abort(error);
        return;
      }
      const end = performance.now();
      checked++;
      completions.push({ finishedAt: end, latencyMs: end - start });
    }
  };
  const until = (at: number): Promise<void> => Promise.race([sleep(at - performance.now()), stopped]);
  const edges = (async () => {
    await until(windowStart);
    // Stopped before the window: no counters (a timer may also fire a little before performance.now() says).
    if (failure || inexact) return;
    await onWindow('start');
    await until(windowEnd);
    await onWindow('end');
  })();
  const progress = setInterval(() => {
    const done = completions.filter((c) => c.finishedAt >= t0).length;
    process.stderr.write(`  ${fmt((performance.now() - t0) / 1000)} s: ${done} queries done\n`);
  }, 30_000);
  try {
    await Promise.all([...Array.from({ length: inFlight }, lane), edges]);
  } finally {
    clearInterval(progress);
  }
  if (inexact) throw inexact;
  const perMinute = Array.from({ length: Math.floor(seconds / 60) }, (_, m) => completions.filter((c) => c.finishedAt >= t0 + m * 60_000 && c.finishedAt < t0 + (m + 1) * 60_000).length);
  return { completions: completions.filter((c) => c.finishedAt >= windowStart && c.finishedAt <= windowEnd), perMinute, windowStart, windowEnd, checked, ...(failure ? { failure } : {}) };
}

// ---------------------------------------------------------------------------------------------------------------
// Counters: CPU per process, Redis, SQLite, memory

interface Counters {
  readonly at: number;
  /** Length of every participant queue's BullMQ events stream (`<prefix>:participant.<id>:events`) in Redis. */
  readonly streams: number[];
  /** Bytes Redis received from and sent to its clients so far (INFO stats). */
  readonly redisNet: { in: number; out: number };
  /** Size of the `data` field of up to 100 jobs in participant queues (a task, as the worker reads it), bytes. */
  readonly jobSizes: number[];
  /** For up to 20 of those jobs, the JSON size of each field of the task they carry (evidence, view, plan, …), bytes. */
  readonly taskFields: Map<string, number[]>;
  readonly cpuMs: Map<string, number>;
  readonly redisCommands: Map<string, { calls: number; usec: number }>;
  readonly redisCpuMs: number;
}

/** Redis INFO as a map of field to value. */
function parseInfo(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\r\n')) {
    const at = line.indexOf(':');
    if (at > 0 && !line.startsWith('#')) out.set(line.slice(0, at), line.slice(at + 1));
  }
  return out;
}

async function takeCounters(redis: Redis, groups: ReadonlyMap<string, () => number[]>): Promise<Counters> {
  const cpuMs = new Map<string, number>();
  for (const [name, pids] of groups) {
    let total = 0;
    for (const pid of pids()) {
      try {
        total += cpuMsOf(pid);
      } catch {
        // a process that is gone counts nothing more
      }
    }
    cpuMs.set(name, total);
  }
  const bench = process.cpuUsage();
  cpuMs.set('bench', (bench.user + bench.system) / 1000);
  const stats = parseInfo(await redis.info('commandstats'));
  const redisCommands = new Map<string, { calls: number; usec: number }>();
  for (const [key, value] of stats) {
    const m = /calls=(\d+),usec=(\d+)/.exec(value);
    if (key.startsWith('cmdstat_') && m) redisCommands.set(key.slice('cmdstat_'.length), { calls: Number(m[1]), usec: Number(m[2]) });
  }
  const cpu = parseInfo(await redis.info('cpu'));
  const redisCpuMs = (Number(cpu.get('used_cpu_user')) + Number(cpu.get('used_cpu_sys'))) * 1000;
  const net = parseInfo(await redis.info('stats'));
  const redisNet = { in: Number(net.get('total_net_input_bytes')), out: Number(net.get('total_net_output_bytes')) };
  const streams: number[] = [];
  const jobSizes: number[] = [];
  const taskFields = new Map<string, number[]>();
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', '*:{participant.*', 'COUNT', 1000);
    cursor = next;
    for (const key of keys) {
      if (key.endsWith(':events')) streams.push(await redis.xlen(key));
      else if (jobSizes.length < 100 && parseTaskJobId(key.slice(key.lastIndexOf(':') + 1))) {
        jobSizes.push(await redis.hstrlen(key, 'data'));
        if (jobSizes.length > 20) continue;
        const task = (JSON.parse((await redis.hget(key, 'data')) ?? '{}') as { task?: Record<string, unknown> }).task;
        for (const [field, value] of Object.entries(task ?? {})) taskFields.set(field, [...(taskFields.get(field) ?? []), JSON.stringify(value).length]);
      }
    }
  } while (cursor !== '0');
  return { at: performance.now(), cpuMs, redisCommands, redisCpuMs, streams, redisNet, jobSizes, taskFields };
}

/** `redis-cli --latency` for the window: PINGs on its own connection, min/avg/max ms at the end. */
function redisLatency(redis: LocalRedisModule.LocalRedis): { stop(): Promise<string> } {
  const url = new URL(redis.adminUrl);
  const child = spawn('redis-cli', ['-h', url.hostname, '-p', url.port, '--user', decodeURIComponent(url.username), '--latency'], {
    env: { ...process.env, REDISCLI_AUTH: decodeURIComponent(url.password) },
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.on('error', () => undefined);
  return {
    async stop() {
      await stopProcess(child, 2000);
      const m = /(\d+(?:\.\d+)?) (\d+(?:\.\d+)?) (\d+(?:\.\d+)?) \((\d+) samples\)|^(\d+) (\d+) (\d+(?:\.\d+)?) (\d+)\s*$/m.exec(out.trim());
      if (!m) return 'not measured (redis-cli --latency gave no figures)';
      const [min, max, avg, n] = m[1] ? [m[1], m[2], m[3], m[4]] : [m[5], m[6], m[7], m[8]];
      return `min ${min} ms, avg ${avg} ms, max ${max} ms over ${n} PINGs`;
    },
  };
}

/** A probe's cumulative tally: key -> [count, total ms, total bytes]. */
type Tally = Record<string, [number, number, number]>;

interface ProbeSample {
  readonly t: number;
  readonly rss: number;
  readonly heapUsed: number;
  readonly sql?: Tally;
  readonly http?: Tally;
  readonly append?: Tally;
}

/** A tally's growth between two samples, per query, largest total time first. */
function tallyPerQuery(a: Tally | undefined, z: Tally | undefined, queries: number): { key: string; count: number; ms: number; bytes: number }[] {
  if (!z) return [];
  return Object.entries(z)
    .map(([key, [count, ms, bytes]]) => {
      const [c0, ms0, b0] = a?.[key] ?? [0, 0, 0];
      return { key, count: (count - c0) / queries, ms: (ms - ms0) / queries, bytes: (bytes - b0) / queries };
    })
    .filter((d) => d.count > 0)
    .sort((x, y) => y.ms - x.ms);
}

function readProbe(dir: string, pid: number): ProbeSample[] {
  const file = join(dir, `${pid}.jsonl`);
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as ProbeSample);
}

/** The last sample taken at or before `at` (epoch ms). */
const sampleAt = (samples: readonly ProbeSample[], at: number): ProbeSample | undefined => samples.filter((s) => s.t <= at).at(-1);

interface Trend {
  readonly start: number;
  readonly end: number;
  readonly max: number;
  /** MiB per minute, least squares over the window's buckets. */
  readonly slope: number;
  /** Fitted growth over the window, MiB. */
  readonly growth: number;
  readonly verdict: 'flat' | 'GROWS' | 'shrinks';
}

/**
 * A memory series over the window, in 10 buckets of equal time: each bucket's median (RSS) or minimum (heap used:
 * the floor after each collection, so the sawtooth of allocation does not count), then a least-squares line through
 * the buckets. "Flat": the line's growth over the window is within twice the buckets' scatter around it, or under
 * FLAT_FLOOR_MIB.
 */
function trend(samples: readonly ProbeSample[], from: number, to: number, value: (s: ProbeSample) => number, reduce: 'median' | 'min'): Trend | undefined {
  const inWindow = samples.filter((s) => s.t >= from && s.t <= to);
  if (inWindow.length < 10) return undefined;
  const buckets: { x: number; y: number }[] = [];
  const width = (to - from) / 10;
  for (let i = 0; i < 10; i++) {
    const ys = inWindow.filter((s) => s.t >= from + i * width && s.t < from + (i + 1) * width).map((s) => value(s) / MIB);
    if (!ys.length) continue;
    buckets.push({ x: (i + 0.5) * width, y: reduce === 'min' ? Math.min(...ys) : percentile(ys, 50) });
  }
  const n = buckets.length;
  const mx = buckets.reduce((a, p) => a + p.x, 0) / n;
  const my = buckets.reduce((a, p) => a + p.y, 0) / n;
  const sxx = buckets.reduce((a, p) => a + (p.x - mx) ** 2, 0);
  const slopePerMs = sxx ? buckets.reduce((a, p) => a + (p.x - mx) * (p.y - my), 0) / sxx : 0;
  const scatter = Math.sqrt(buckets.reduce((a, p) => a + (p.y - (my + slopePerMs * (p.x - mx))) ** 2, 0) / Math.max(1, n - 2));
  const growth = slopePerMs * (to - from);
  return {
    start: buckets[0]!.y,
    end: buckets[n - 1]!.y,
    max: Math.max(...inWindow.map((s) => value(s) / MIB)),
    slope: slopePerMs * 60_000,
    growth,
    verdict: Math.abs(growth) <= Math.max(2 * scatter, FLAT_FLOOR_MIB) ? 'flat' : growth > 0 ? 'GROWS' : 'shrinks',
  };
}

// ---------------------------------------------------------------------------------------------------------------
// The bench

interface RunFigures {
  readonly loop: LoopResult;
  readonly before: Counters;
  readonly after: Counters;
  readonly redisLatency: string;
  readonly windowEpoch: { from: number; to: number };
}

const perMinute = (r: LoopResult): number => (r.completions.length * 60_000) / (r.windowEnd - r.windowStart);
const latencies = (r: LoopResult): number[] => r.completions.map((c) => c.latencyMs);

/** Runs the closed loop with counters and Redis latency taken at the window's edges. */
async function measuredLoop(
  redis: LocalRedisModule.LocalRedis,
  admin: Redis,
  groups: ReadonlyMap<string, () => number[]>,
  inFlight: number,
  seconds: number,
  runOne: () => Promise<void>,
  abort: (err: Error) => void = () => undefined,
): Promise<RunFigures> {
  let before: Counters | undefined;
  let after: Counters | undefined;
  let latency: { stop(): Promise<string> } | undefined;
  const epoch = { from: 0, to: 0 };
  const loop = await closedLoop(inFlight, seconds, runOne, async (edge) => {
    if (edge === 'start') {
      epoch.from = Date.now();
      before = await takeCounters(admin, groups);
      latency = redisLatency(redis);
    } else {
      epoch.to = Date.now();
      after = await takeCounters(admin, groups);
    }
  }, abort);
  const redisLatencyText = latency ? await latency.stop() : 'not measured';
  if (loop.failure && (!before || !after)) throw new Error(`the run failed after ${fmt(loop.failure.atSeconds)} s, before its measured window: ${loop.failure.message}`);
  if (!before || !after) throw new Error('the measured window was never reached');
  return { loop, before, after, redisLatency: redisLatencyText, windowEpoch: epoch };
}

/** CPU ms per query of one process group over the window. */
const cpuPerQuery = (f: RunFigures, group: string): number => ((f.after.cpuMs.get(group) ?? 0) - (f.before.cpuMs.get(group) ?? 0)) / Math.max(1, f.loop.completions.length);
const redisCpuPerQuery = (f: RunFigures): number => (f.after.redisCpuMs - f.before.redisCpuMs) / Math.max(1, f.loop.completions.length);

/** Redis commands by time spent over the window, per query: calls and µs. */
function redisCommandsPerQuery(f: RunFigures): { name: string; calls: number; usec: number }[] {
  const n = Math.max(1, f.loop.completions.length);
  return [...f.after.redisCommands]
    .map(([name, a]) => {
      const b = f.before.redisCommands.get(name) ?? { calls: 0, usec: 0 };
      return { name, calls: (a.calls - b.calls) / n, usec: (a.usec - b.usec) / n };
    })
    .filter((c) => c.calls > 0)
    .sort((x, y) => y.usec - x.usec);
}

/**
 * The soak (see the top of this file): the secure service for `seconds`, then the plaintext baseline for
 * `baselineSeconds`, both with `inFlight` queries running over `participants` participant processes.
 */
export async function soakBench(opts: SoakOptions = soakOptionsFromEnv()): Promise<BenchSection> {
  const { participants: n, inFlight, seconds, baselineSeconds, profileDir } = opts;
  const b = loadBuilt();
  const load = loadNote();
  return inTempDir(
    b,
    async (root, redis) => {
      const { files, texts } = writeData(b, join(root, 'data'), n);
      const expected: Expected = expectedOf(b, texts);
      const probeDir = join(root, 'probe');
      const admin = new Redis(redis.adminUrl, { maxRetriesPerRequest: 1 });
      try {
        // The secure service.
        process.stderr.write(`  starting a coordinator and ${n} participant processes…\n`);
        const cluster = await startSoakCluster(b, root, redis, files, probeDir, profileDir);
        let secure: RunFigures;
        const pids = { coordinator: cluster.coordinatorPid, workers: cluster.workerPids, aggregators: [] as number[] };
        try {
          const tail = new LedgerTail(cluster.url, cluster.adminToken);
          await tail.start();
          const runSecure = async (): Promise<void> => {
            const { id } = await b.submitQuery(cluster.researcher, { study: cluster.study, protocol: 'shamir', ...SPEC });
            await tail.wait(id);
            const view = await cluster.researcher.get<QueryView>(`/v1/queries/${id}`);
            if (view.status !== 'succeeded') throw new Error(`query ${id} is ${view.status} after its result was released`);
            checkResult(`secure query ${id}`, view.results as Protocol.StatResult[], expected);
          };
          await runSecure();
          pids.aggregators = childrenOf(cluster.coordinatorPid);
          const groups = new Map<string, () => number[]>([
            ['coordinator', () => [cluster.coordinatorPid, ...pids.aggregators]],
            ['workers', () => [...cluster.workerPids]],
          ]);
          process.stderr.write(`  secure: ${inFlight} shamir queries in flight for ${seconds} s…\n`);
          try {
            secure = await measuredLoop(redis, admin, groups, inFlight, seconds, runSecure, (err) => tail.abort(err));
          } finally {
            await tail.stop();
          }
        } finally {
          await cluster.close();
          // The processes' logs (no secrets: the product logs none) beside the profiles, to look at afterwards.
          if (profileDir) for (const f of readdirSync(root).filter((x) => x.endsWith('.log'))) copyFileSync(join(root, f), join(profileDir, f));
        }
        process.stderr.write(`  secure: ${secure.loop.completions.length} queries in the window, ${fmt(perMinute(secure.loop))}/min, p50 ${fmt(percentile(latencies(secure.loop), 50))} ms\n`);

        // The plaintext baseline, same Redis, same concurrency, participants in their own processes too.
        process.stderr.write(`  starting the plaintext baseline with ${n} participant processes…\n`);
        const { baseline, workerPids } = await startBaselineProcesses(b, root, redis, files);
        let plain: RunFigures;
        try {
          const runPlain = async (): Promise<void> => checkResult('the plaintext baseline', await baseline.run(SPEC), expected);
          await runPlain();
          process.stderr.write(`  plaintext: ${inFlight} queries in flight for ${baselineSeconds} s…\n`);
          plain = await measuredLoop(redis, admin, new Map([['workers', () => workerPids]]), inFlight, baselineSeconds, runPlain);
        } finally {
          await baseline.close();
        }
        process.stderr.write(`  plaintext: ${plain.loop.completions.length} queries in the window, ${fmt(perMinute(plain.loop))}/min\n`);

        const section = report(opts, secure, plain, probeDir, pids, load);
        for (const [name, run] of [['secure', secure], ['plaintext', plain]] as const) {
          if (!run.loop.failure) continue;
          // Published all the same, with what was measured until then: the table says FAILED, and so does the exit code.
          process.stderr.write(`SOAK FAILED: the ${name} run stopped after ${fmt(run.loop.failure.atSeconds)} s: ${run.loop.failure.message}\n`);
          process.exitCode = 1;
        }
        if (profileDir) printProfiles(profileDir);
        return section;
      } finally {
        admin.disconnect();
      }
    },
    'soak',
  );
}

/** Prints a summary of every CPU profile under `dir` (by role) on stderr. */
function printProfiles(dir: string): void {
  for (const role of readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name)) {
    const sub = join(dir, role);
    for (const file of readdirSync(sub).filter((f) => f.endsWith('.cpuprofile'))) {
      process.stderr.write(`\n${formatSummary(`${role} ${file}`, summariseCpuProfile(join(sub, file), 25))}\n`);
    }
  }
}

/** The secure service's processes, as the memory probe names its files. */
interface SecurePids {
  readonly coordinator: number;
  readonly aggregators: readonly number[];
  readonly workers: readonly number[];
}

function report(opts: SoakOptions, secure: RunFigures, plain: RunFigures, probeDir: string, pids: SecurePids, load: string): BenchSection {
  const { participants: n, inFlight, seconds, baselineSeconds } = opts;
  const [s, p] = [secure.loop, plain.loop];
  const [s50, s95, p50, p95] = [percentile(latencies(s), 50), percentile(latencies(s), 95), percentile(latencies(p), 50), percentile(latencies(p), 95)];
  const window = (r: LoopResult): number => (r.windowEnd - r.windowStart) / 1000;
  const outcome = (r: LoopResult): string => (r.failure ? `**FAILED** after ${fmt(r.failure.atSeconds)} s: ${r.failure.message}` : 'ran its whole time');
  const rows: (string | number)[][] = [
    ['outcome', outcome(s), outcome(p), ''],
    ['measured window', `${fmt(window(s))} s (after ${fmt(seconds * WARMUP_FRACTION)} s of warm-up${s.failure ? ', to the failure' : ''})`, `${fmt(window(p))} s (after ${fmt(baselineSeconds * WARMUP_FRACTION)} s)`, ''],
    ['queries finished in the window (all exact)', s.completions.length.toLocaleString('en-US'), p.completions.length.toLocaleString('en-US'), ''],
    ['queries checked exact in the whole run', s.checked.toLocaleString('en-US'), p.checked.toLocaleString('en-US'), ''],
    ['throughput, queries/min', fmt(perMinute(s)), fmt(perMinute(p)), `${fmt(perMinute(p) / perMinute(s))}× fewer`],
    ['latency p50, ms', fmt(s50), fmt(p50), `${fmt(s50 / p50)}× longer`],
    ['latency p95, ms', fmt(s95), fmt(p95), `${fmt(s95 / p95)}× longer`],
  ];

  // CPU per query, by process.
  const cpuRows = [
    ['coordinator process (HTTP, orchestration, SQLite, ledger)' + (pids.aggregators.length ? ' + its idle aggregation worker' : ''), fmt(cpuPerQuery(secure, 'coordinator')), '— (in the bench process)'],
    [`${n} participant processes`, fmt(cpuPerQuery(secure, 'workers')), fmt(cpuPerQuery(plain, 'workers'))],
    ['redis-server', fmt(redisCpuPerQuery(secure)), fmt(redisCpuPerQuery(plain))],
    ['bench process (researcher HTTP client, ledger tail; the baseline\'s coordinator side)', fmt(cpuPerQuery(secure, 'bench')), fmt(cpuPerQuery(plain, 'bench'))],
  ];
  const total = (f: RunFigures, groups: string[]): number => groups.reduce((a, g) => a + cpuPerQuery(f, g), 0) + redisCpuPerQuery(f);
  const sTotal = total(secure, ['coordinator', 'workers', 'bench']);
  const pTotal = total(plain, ['workers', 'bench']);
  const cores = cpus().length;
  const busy = (f: RunFigures, t: number): string => `${fmt((t * f.loop.completions.length) / (window(f.loop) * 1000))} of ${cores} cores`;
  cpuRows.push(['total CPU per query', fmt(sTotal), fmt(pTotal)]);
  cpuRows.push(['CPU in use over the window (all of the above)', busy(secure, sTotal), busy(plain, pTotal)]);

  // Redis commands per query.
  const commands = (f: RunFigures): string =>
    redisCommandsPerQuery(f)
      .slice(0, 6)
      .map((c) => `${c.name} ${fmt(c.calls)} calls / ${fmt(c.usec / 1000)} ms`)
      .join(', ');

  // SQLite and ledger appends in the coordinator.
  const sqlLines: string[] = [];
  {
    const samples = readProbe(probeDir, pids.coordinator);
    const a = sampleAt(samples, secure.windowEpoch.from);
    const z = sampleAt(samples, secure.windowEpoch.to);
    const q = Math.max(1, s.completions.length);
    const sql = tallyPerQuery(a?.sql, z?.sql, q);
    if (sql.length) {
      const totalMs = sql.reduce((acc, d) => acc + d.ms, 0);
      const statements = sql.filter((d) => d.key !== '(prepare)').reduce((acc, d) => acc + d.count, 0);
      const prepared = sql.find((d) => d.key === '(prepare)')?.count ?? 0;
      sqlLines.push(
        `SQLite in the coordinator, per query (wall time inside better-sqlite3's synchronous calls, which block its event loop; a busy machine inflates it): ${fmt(totalMs)} ms over ${fmt(statements)} statements, ${fmt(prepared)} of them prepared (the others reuse a statement prepared earlier); by kind: ${sql
          .slice(0, 8)
          .map((d) => `${d.key} ${fmt(d.count)}× ${fmt(d.ms)} ms`)
          .join(', ')}.`,
      );
    }
    const [append] = tallyPerQuery(a?.append, z?.append, q);
    if (append) sqlLines.push(`Ledger appends (EventLog.append, wall time including the wait for the one SQLite connection): ${fmt(append.count)} per query, ${fmt(append.ms / append.count)} ms each on average.`);
    const http = tallyPerQuery(a?.http, z?.http, q);
    if (http.length) {
      sqlLines.push(
        `HTTP requests the coordinator served, per query (count, response KiB, wall ms from request to response): ${http
          .slice(0, 8)
          .map((d) => `${d.key} ${fmt(d.count)}× ${fmt(d.bytes / 1024)} KiB ${fmt(d.ms)} ms`)
          .join('; ')}.`,
      );
    }
  }

  // Memory.
  const { from, to } = secure.windowEpoch;
  const memRows: string[] = [];
  const memRow = (name: string, samples: readonly ProbeSample[]): void => {
    const rss = trend(samples, from, to, (x) => x.rss, 'median');
    const heap = trend(samples, from, to, (x) => x.heapUsed, 'min');
    if (!rss || !heap) return;
    const cell = (t: Trend): string => `${fmt(t.start)} → ${fmt(t.end)} (max ${fmt(t.max)}); ${t.slope >= 0 ? '+' : ''}${fmt(t.slope)} MiB/min: ${t.verdict}`;
    memRows.push(`| ${name} | ${cell(rss)} | ${cell(heap)} |`);
  };
  memRow('coordinator', readProbe(probeDir, pids.coordinator));
  for (const pid of pids.aggregators) memRow('aggregation worker (forked by the coordinator; idle with shamir)', readProbe(probeDir, pid));
  pids.workers.forEach((pid, i) => memRow(`participant ${i + 1}`, readProbe(probeDir, pid)));

  const method = [
    `A bounded soak on loopback. **Secure**: a coordinator process (\`confide coordinator start\`, **embedded SQLite**, the default dialect: no DATABASE_URL; WAL, better-sqlite3's default synchronous=NORMAL for WAL) and ${n} participant processes (\`confide participant run\`, BullMQ concurrency 1 each), enrolled as a user does, all with LOG_LEVEL=info to files, against a private redis-server on loopback (default user off, as the coordinator requires). ${inFlight} shamir queries (secure mean and count of salary, committee of ${Math.min(n, 10)}, ${ROWS} generated rows per participant) are kept in flight for ${seconds} s: ${inFlight} lanes, each submitting a query as \`confide query\` does (POST /v1/queries with a nonce commitment, then the nonce), waiting for its \`result.released\` entry, reading GET /v1/queries/:id and checking the mean and count against the plain figures of the files, then submitting the next. Finished queries are found by reading the ledger (GET /v1/events from the last index seen, every ${TAIL_MS} ms: one request however many are in flight; polling each query would add ${inFlight} requests per sweep to the coordinator being measured). Latency is from the POST to the checked GET, so up to ${TAIL_MS} ms of it is the tail's polling. The first inexact answer or failed query stops the run with an error. Round deadlines are ${ROUND_SECONDS} s.`,
    `${BASELINE} **Plaintext**, in the same run after the secure service has stopped, over the same redis-server: the same ${inFlight} lanes for ${baselineSeconds} s, with its ${n} participants in ${n} processes of their own (bench/baseline-worker.ts) and its coordinator side in the bench process.`,
    `Only the window after the first ${WARMUP_FRACTION * 100}% of each run counts: throughput is the queries finished in it per minute, p50/p95 (nearest rank) are over their latencies. CPU is read from /proc for every process (and INFO cpu for Redis) at the window's edges and divided by the queries finished in it. Memory: every process samples its RSS and V8 heap once a second (bench/soak-probe.cjs, a preload that only watches); the window is cut into 10 buckets, each bucket's median RSS and minimum heap used (the floor after collections) are fitted with a least-squares line, and a series is **flat** when the line's growth over the window is within twice the buckets' scatter around it, or under ${FLAT_FLOOR_MIB} MiB. Run it shorter with SOAK_SECONDS (and SOAK_BASELINE_SECONDS, SOAK_IN_FLIGHT); SOAK_PROFILE_DIR adds \`--cpu-prof\` to the coordinator and participant 1 and prints a summary of each profile (bench/cpuprofile-summary.ts).`,
  ].join('\n\n');

  const streams = (f: RunFigures): string => {
    const xs = f.after.streams;
    return xs.length ? `median ${fmt(percentile(xs, 50))}, max ${fmt(Math.max(...xs))} entries` : 'none';
  };
  const netPerQuery = (f: RunFigures): string => {
    const q = Math.max(1, f.loop.completions.length);
    return `${fmt((f.after.redisNet.in - f.before.redisNet.in) / q / 1024)} KiB / ${fmt((f.after.redisNet.out - f.before.redisNet.out) / q / 1024)} KiB`;
  };
  const jobSizes = (f: RunFigures): string => {
    const xs = f.after.jobSizes;
    return xs.length ? `median ${fmt(percentile(xs, 50) / 1024)} KiB, max ${fmt(Math.max(...xs) / 1024)} KiB over ${xs.length} jobs` : 'no job in the queues';
  };
  const anatomy = (f: RunFigures): string =>
    [...f.after.taskFields]
      .map(([field, sizes]) => ({ field, size: percentile(sizes, 50), n: sizes.length }))
      .sort((x, y) => y.size - x.size)
      .map((x) => `${x.field} ${fmt(x.size / 1024)} KiB${x.n < Math.min(20, f.after.jobSizes.length) ? ` (in ${x.n})` : ''}`)
      .join(', ');
  const notes = [
    `Queries finished in each minute of the run, warm-up included: secure ${s.perMinute.join(', ') || '(under a minute)'}; plaintext ${p.perMinute.join(', ') || '(under a minute)'}.`,
    '',
    'Where the CPU goes, per query finished in the window (ms of CPU, user + system):',
    '',
    '| process | secure | plaintext |',
    '| --- | --- | --- |',
    ...cpuRows.map((r) => `| ${r.join(' | ')} |`),
    '',
    `Redis, per query (INFO commandstats over the window, by time in Redis): secure ${commands(secure)}; plaintext ${commands(plain)}. \`redis-cli --latency\` during the window: secure ${secure.redisLatency}; plaintext ${plain.redisLatency}. Participant queues' BullMQ events streams at the window's end (XLEN): secure ${streams(secure)}; plaintext ${streams(plain)}. Bytes through Redis per query (INFO stats, in / out): secure ${netPerQuery(secure)}; plaintext ${netPerQuery(plain)}. A task job's \`data\` as stored (HSTRLEN, jobs in the queues at the window's end): secure ${jobSizes(secure)}; plaintext ${jobSizes(plain)}. What a secure task carries (median JSON size of each field over ${fmt(Math.min(20, secure.after.jobSizes.length))} of those jobs): ${anatomy(secure)}.`,
    ...(sqlLines.length ? ['', ...sqlLines] : []),
    '',
    `Memory of the secure service over its window (MiB; start and end are the first and last bucket):`,
    '',
    '| process | RSS | V8 heap used (floor after GC) |',
    '| --- | --- | --- |',
    ...memRows,
    '',
    load,
  ].join('\n');

  return {
    id: 'soak',
    title: `Soak: ${inFlight} queries in flight over ${n} participants`,
    method,
    columns: ['', 'secure (shamir)', 'plaintext baseline', 'secure cost'],
    rows,
    notes,
  };
}
