import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { loadavg, tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { Redis } from 'ioredis';
import type * as Crypto from '@confide/crypto';
import type * as Protocol from '@confide/protocol';
import type * as QueueLib from '@confide/queue';
import type * as CliClient from '../apps/cli/src/client';
import type * as CliPaillier from '../apps/cli/src/paillier';
import type * as LocalRedisModule from '../apps/cli/src/local-redis';
import type * as DemoData from '../apps/cli/src/demo-data';
import type * as Bootstrap from '../apps/coordinator/src/bootstrap';
import type * as CoordinatorConfig from '../apps/coordinator/src/config';
import type * as Enroll from '../apps/participant/src/enroll';
import type * as ParticipantWorkerModule from '../apps/participant/src/worker';
import { removeRunKeys } from '@confide/queue';
import { fmt } from './harness';

/** How long a bench's request to the coordinator may take (10 minutes): benches measure slowness, they do not fail on it. */
const BENCH_REQUEST_TIMEOUT_MS = 600_000;

/**
 * What the end-to-end benchmarks share (bench/e2e.bench.ts, bench/soak.bench.ts): the built apps, the generated
 * data and its plain answer, the check of every answer against it, a private Redis, and the study set-up a user
 * goes through (study, researcher key, invitations, enrollment).
 */

export const REPO = join(__dirname, '..');
/** dist/apps/cli holds the coordinator, participant, CLI and libs compiled together, as `npm run demo` runs them. */
export const BUILT = join(REPO, 'dist', 'apps', 'cli');
/** The built CLI, as `confide` runs: `coordinator start`, `participant run`. */
export const BUILT_CLI = join(BUILT, 'apps', 'cli', 'src', 'main.js');
/** Generated salary rows per participant. */
export const ROWS = 200;
/** The query every end-to-end benchmark asks: a secure mean of salary, with its count. */
export const SPEC: Protocol.QuerySpec = { select: [{ stat: 'mean', field: 'salary' }, { stat: 'count', field: 'salary' }] };

export interface Built {
  readonly startCoordinator: typeof Bootstrap.startCoordinator;
  readonly loadConfig: typeof CoordinatorConfig.loadConfig;
  readonly enrollParticipant: typeof Enroll.enrollParticipant;
  readonly ParticipantWorker: typeof ParticipantWorkerModule.ParticipantWorker;
  readonly CoordinatorClient: typeof CliClient.CoordinatorClient;
  readonly submitQuery: typeof CliClient.submitQuery;
  readonly paillier: typeof CliPaillier;
  readonly startLocalRedis: typeof LocalRedisModule.startLocalRedis;
  readonly demo: typeof DemoData;
  readonly protocol: typeof Protocol;
  readonly queue: typeof QueueLib;
  readonly crypto: typeof Crypto;
}

/**
 * Loads the apps as `npm run build` compiled them, not their TypeScript sources. The coordinator's Nest
 * providers are resolved from `design:paramtypes` metadata, which tsc emits (emitDecoratorMetadata) and the
 * esbuild inside tsx does not: from the sources, Nest warns "The Orchestrator has no decorator metadata" and
 * injects undefined, so the coordinator cannot boot. bench/run.ts stays a tsx script like every bench, and
 * this one requires the tsc output. The plaintext baseline takes libs/protocol and libs/queue from the same
 * build, so both pipelines run the same compiled code.
 * @throws Error saying to run `npm run build` when dist is missing
 */
export function loadBuilt({ quiet = false }: { quiet?: boolean } = {}): Built {
  const entry = join(BUILT, 'apps/coordinator/src/bootstrap.js');
  if (!existsSync(entry)) throw new Error(`the e2e benchmarks run the built apps and ${relative(REPO, entry)} is missing: run \`npm run build\` first`);
  if (!quiet) warnIfStale(statSync(entry).mtimeMs);
  const load = createRequire(__filename);
  const from = <T>(path: string): T => load(join(BUILT, path)) as T;
  return {
    startCoordinator: from<typeof Bootstrap>('apps/coordinator/src/bootstrap.js').startCoordinator,
    loadConfig: from<typeof CoordinatorConfig>('apps/coordinator/src/config.js').loadConfig,
    enrollParticipant: from<typeof Enroll>('apps/participant/src/enroll.js').enrollParticipant,
    ParticipantWorker: from<typeof ParticipantWorkerModule>('apps/participant/src/worker.js').ParticipantWorker,
    CoordinatorClient: from<typeof CliClient>('apps/cli/src/client.js').CoordinatorClient,
    submitQuery: from<typeof CliClient>('apps/cli/src/client.js').submitQuery,
    paillier: from<typeof CliPaillier>('apps/cli/src/paillier.js'),
    startLocalRedis: from<typeof LocalRedisModule>('apps/cli/src/local-redis.js').startLocalRedis,
    demo: from<typeof DemoData>('apps/cli/src/demo-data.js'),
    protocol: from<typeof Protocol>('libs/protocol/src/index.js'),
    queue: from<typeof QueueLib>('libs/queue/src/index.js'),
    crypto: from<typeof Crypto>('libs/crypto/src/index.js'),
  };
}

/** Says so on stderr when a source file is newer than the build: the figures would be of older code. */
export function warnIfStale(builtAt: number): void {
  const newer: string[] = [];
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, e.name);
      if (e.isDirectory()) walk(path);
      else if (e.name.endsWith('.ts') && !e.name.endsWith('.spec.ts') && statSync(path).mtimeMs > builtAt) newer.push(relative(REPO, path));
    }
  };
  for (const dir of ['apps', 'libs']) walk(join(REPO, dir));
  if (newer.length) process.stderr.write(`warning: ${newer.length} source file(s) changed since the last build (${newer.slice(0, 3).join(', ')}${newer.length > 3 ? ', …' : ''}); run \`npm run build\` to measure them\n`);
}

/** The load average when a bench starts: these benches share the CPUs with whatever else runs, and say so. */
export function loadNote(): string {
  const [one, five] = loadavg();
  return `Load average when the run started: ${fmt(one!)} (1 min), ${fmt(five!)} (5 min).`;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Nearest-rank percentile: the smallest sample with at least p% of the samples at or below it. */
export function percentile(samples: readonly number[], p: number): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

export const median = (samples: readonly number[]): number => percentile(samples, 50);

/** N participants' synthetic salary files (generateSalaryCsv, as the demo uses), written 0600 under `dir`. */
export function writeData(b: Built, dir: string, n: number): { files: string[]; texts: string[] } {
  mkdirSync(dir, { recursive: true });
  const texts = Array.from({ length: n }, (_, i) => b.demo.generateSalaryCsv(1000 + i, ROWS));
  const files = texts.map((text, i) => {
    const file = join(dir, `participant-${i + 1}.csv`);
    writeFileSync(file, text, { mode: 0o600 });
    return file;
  });
  return { files, texts };
}

/** The plain answer to {@link SPEC} over generated files, computed by the bench from the files it wrote. */
export interface Expected {
  readonly mean: number | null;
  readonly count: number;
}

/** The plain mean and count of salary over the texts {@link writeData} wrote. */
export function expectedOf(b: Built, texts: readonly string[]): Expected {
  const stats = b.demo.plainStats(texts).get('salary')!;
  return { mean: stats.mean, count: stats.count };
}

/** An answer that is not the plain answer of the files: a benchmark stops on it, whatever else it tolerates. */
export class InexactResult extends Error {
  override readonly name = 'InexactResult';
}

/** Checks a pipeline's answer against the plain mean the bench computes from the files it wrote. @throws InexactResult naming both */
export function checkResult(what: string, results: readonly Protocol.StatResult[], expected: Expected): void {
  const mean = (results[0]?.value ?? null) as number | null;
  const count = (results[1]?.value ?? null) as number | null;
  if (mean === null || expected.mean === null || Math.abs(mean - expected.mean) > 1e-6 * Math.abs(expected.mean) || count !== expected.count) {
    throw new InexactResult(`${what} answered mean ${mean} over ${count} salaries; the data has mean ${expected.mean} over ${expected.count}`);
  }
}

/** Removes one run's keys and ACL users (and nothing else) from Redis. */
export async function cleanupRedis(url: string, prefix: string, users: readonly string[]): Promise<void> {
  const r = new Redis(url, { maxRetriesPerRequest: 1 });
  try {
    await removeRunKeys(r, prefix, users);
  } finally {
    r.disconnect();
  }
}

/**
 * Runs `fn` with a temp dir and a private, locked-down redis-server (its `default` user off, as the coordinator
 * requires), both removed afterwards, whatever happens.
 */
export async function inTempDir<T>(b: Built, fn: (dir: string, redis: LocalRedisModule.LocalRedis) => Promise<T>, name = 'e2e'): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), `confide-bench-${name}-`));
  const redis = await b.startLocalRedis();
  try {
    return await fn(dir, redis);
  } finally {
    await redis.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A study with its researcher and enrolled participants, as {@link setUpStudy} leaves it. */
export interface EnrolledStudy {
  readonly name: string;
  /** The researcher's API client. */
  readonly researcher: CliClient.CoordinatorClient;
  /** The researcher's identity key, bound to its API key (paillier queries are signed with it). */
  readonly identity: Crypto.KeyPair;
  /** Each participant's home directory, in the order of `files`. */
  readonly homes: string[];
  /** Each participant's Redis ACL user (removed with the run's keys). */
  readonly users: string[];
}

/**
 * The environment of a coordinator a benchmark runs in its own process: embedded SQLite in `dir`, a private Redis,
 * two-minute round deadlines (a slow machine must not fail a timed query), warnings only in the log.
 */
export function benchCoordinatorEnv(opts: { redis: { adminUrl: string; publicUrl: string }; dir: string; prefix: string; adminToken: string }): Record<string, string> {
  return {
    PORT: '0',
    REDIS_URL: opts.redis.adminUrl,
    CONFIDE_PUBLIC_REDIS_URL: opts.redis.publicUrl,
    CONFIDE_ADMIN_TOKEN: opts.adminToken,
    CONFIDE_DATA_DIR: join(opts.dir, 'coordinator'),
    CONFIDE_QUEUE_PREFIX: opts.prefix,
    CONFIDE_ROUND1_SECONDS: '120',
    CONFIDE_ROUND2_SECONDS: '120',
    LOG_LEVEL: 'warn',
  };
}

/**
 * What a user does before the first query, against a running coordinator: the admin creates the synthetic salary
 * study and a researcher API key bound to a fresh identity key, invites `hospital-1…N`, and each participant enrolls
 * with its CSV into `<dir>/home-i` (enrollParticipant, as `confide participant enroll --accept-settings`). `onEnrolled`
 * runs after each enrollment (to start that participant's worker), so a failure leaves `users` known for cleanup.
 */
export async function setUpStudy(
  b: Built,
  url: string,
  adminToken: string,
  dir: string,
  files: readonly string[],
  users: string[],
  onEnrolled: (home: string, i: number) => Promise<void> = () => Promise.resolve(),
): Promise<EnrolledStudy> {
  // A bench times requests, so none is cut short: the CLI's 30 s default would turn a slow answer under load into a
  // failed run instead of a measured one.
  const admin = new b.CoordinatorClient(url, adminToken, BENCH_REQUEST_TIMEOUT_MS);
  const study = b.demo.syntheticSalaryStudy();
  await admin.post('/v1/studies', study);
  const identity = b.crypto.generateKeyPair('ed25519');
  const researcher = new b.CoordinatorClient(url, (await admin.post<{ token: string }>('/v1/api-keys', { role: 'researcher', identityKey: b.crypto.publicKeyBase64Url(identity.publicKey) })).token, BENCH_REQUEST_TIMEOUT_MS);
  const homes: string[] = [];
  for (const [i, dataFile] of files.entries()) {
    const { token } = await admin.post<{ token: string }>(`/v1/studies/${study.name}/invitations`, { participant: `hospital-${i + 1}` });
    const home = join(dir, `home-${i + 1}`);
    const enrolled = await b.enrollParticipant({ coordinatorUrl: url, invitation: token, home, dataFile });
    users.push(enrolled.redis.username);
    homes.push(home);
    await onEnrolled(home, i);
  }
  return { name: study.name, researcher, identity, homes, users };
}

/** A fresh key prefix for one run's queues (every key under it is removed afterwards). */
export const runPrefix = (): string => `confide-bench-${randomBytes(4).toString('hex')}`;

export const BASELINE =
  'Baseline (bench/baseline-pipeline.ts, a bench-only pipeline, never a product mode): the same per-participant BullMQ queues, job ids, connections and ACL users, and the same local aggregate computed by libs/protocol from the same CSV, but the job carries the query in the clear and returns the plaintext vector; one round, completed as the orchestrator completes a round (QueueEvents `completed` → `Job.fromId` over every job of the query), then summed and `deriveResults`. No signatures, shares, envelopes, committee round, HTTP, database or event log, so the ratio prices everything the product adds on top of moving plaintext aggregates through the same queues.';
