import { statSync } from 'node:fs';
import { Harness, RECOVERY_MS, SITES, type Protocol } from '../test/support/faults';
import { freeze, thaw } from '../test/support/task-queues';
import { BUILT_CLI, InexactResult, loadNote, percentile, sleep, warnIfStale } from './e2e-support';
import { fmt, type BenchSection } from './harness';

/**
 * Recovery after faults (issue 12): how long after a fault clears until a new query, submitted then, is done and
 * exact. The faults are those test/e2e/faults.e2e-spec.ts checks, played on the same Harness (test/support/faults.ts):
 * real coordinator, participant and redis-server processes, PostgreSQL behind a relay that can be taken down. Each
 * fault runs `trials` times on one cluster, and the same query with no fault runs on that cluster too, so every
 * figure has a baseline measured next to it.
 *
 * Environment: RECOVERY_TRIALS (default 10).
 */

/** How often the bench polls the new query: finer than the tests' 250 ms, as it is timing, not checking. */
const POLL_MS = 50;
/** How long Redis and PostgreSQL stay down: long enough that every client's reconnect backoff reaches its 2 s cap. */
const OUTAGE_MS = 3000;
/** A pause before each trial, so that a trial does not start on the tail of the previous one's clean-up. */
const SETTLE_MS = 500;
/** The coordinator's default CONFIDE_SWEEP_SECONDS (the Harness sets 2 s, to keep the tests short). */
const DEFAULT_SWEEP = '30';
/** A fault that does not clear by itself within these bounds fails the bench rather than being timed. */
const FRESH = { acceptMs: 60_000, finishMs: 90_000, intervalMs: POLL_MS };

function trialsFromEnv(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.RECOVERY_TRIALS;
  if (raw === undefined || raw === '') return 10;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new Error('RECOVERY_TRIALS must be a positive integer');
  return n;
}

/** One row of the table: the samples of one thing measured after one fault, for one protocol. */
interface Row {
  readonly fault: string;
  readonly cleared: string;
  readonly protocol: Protocol;
  readonly measured: string;
  readonly samples: number[];
  /** The no-fault row of the same protocol on the same cluster, when this row is a fault's. */
  readonly baseline?: Row;
}

/** A new query of `protocol`, submitted now; ms from `since` until it is done. @throws InexactResult unless it succeeded exactly */
async function newQuery(h: Harness, protocol: Protocol, since: number): Promise<number> {
  const { query, took } = await h.freshQuery(protocol, since, FRESH);
  const wrong = h.inexact(query);
  if (wrong) throw new InexactResult(wrong);
  return took;
}

/** One trial of one row: injects the fault, times what the row measures and adds it to the row. */
type Step = (trial: number) => Promise<void>;

/** A step that times a new query of the row's protocol from the moment `fault` resolves (when the fault cleared). */
const timed =
  (h: Harness, row: Row, fault: (trial: number) => Promise<number>): Step =>
  async (i) => {
    row.samples.push(await newQuery(h, row.protocol, await fault(i)));
  };

/**
 * Runs `trials` rounds of `steps`, each step once per round. Round-robin rather than one row after another: the
 * machine's load changes while the bench runs (other work shares it), and this way a change lands on every row of
 * the cluster alike, the no-fault rows included.
 */
async function rounds(trials: number, steps: readonly Step[]): Promise<void> {
  for (let i = 0; i < trials; i++) {
    for (const step of steps) {
      await sleep(SETTLE_MS);
      await step(i);
    }
    process.stderr.write(`    round ${i + 1}/${trials} done\n`);
  }
}

/** Every query the ledger holds ended exact over every site, and `confide ledger verify` passes. @throws InexactResult or Error */
async function checkEverything(h: Harness): Promise<number> {
  const ids = await h.loggedQueries();
  for (const id of ids) {
    const wrong = h.inexact(await h.finish(id, 90_000, POLL_MS));
    if (wrong) throw new InexactResult(wrong);
  }
  const verify = await h.cluster.cli(['ledger', 'verify', '--json'], h.auditor);
  if (verify.code !== 0) throw new Error(`confide ledger verify exited ${verify.code}: ${verify.stdout}${verify.stderr}`);
  return ids.length;
}

/**
 * Starts a Harness, warms it up (one query per protocol, not counted: JIT, connections, prepared statements), runs
 * `fn`, checks every query it ran, and stops it whatever happens.
 */
async function onCluster(name: string, options: Parameters<typeof Harness.start>[0], protocols: readonly Protocol[], fn: (h: Harness) => Promise<void>): Promise<number> {
  process.stderr.write(`  ${name}: starting the cluster…\n`);
  const h = await Harness.start({ ...options, env: { CONFIDE_SWEEP_SECONDS: DEFAULT_SWEEP, ...options.env } });
  try {
    for (const protocol of protocols) await newQuery(h, protocol, Date.now());
    await fn(h);
    return await checkEverything(h);
  } finally {
    await h.stop();
  }
}

/**
 * `npm run bench -- recovery`: three clusters (SQLite with Redis without, then with, an append-only file; PostgreSQL
 * behind the relay), each running its faults and its no-fault rows round-robin, `trials` rounds.
 */
export async function recoveryBench(trials = trialsFromEnv()): Promise<BenchSection> {
  warnIfStale(statSync(BUILT_CLI).mtimeMs);
  const loadBefore = loadNote();
  const started = Date.now();
  const rows: Row[] = [];
  const bootMs: number[] = [];
  const workerStartMs: number[] = [];
  let checked = 0;
  const row = (fault: string, cleared: string, protocol: Protocol, baseline?: Row, measured = 'new query'): Row => {
    const r: Row = { fault, cleared, protocol, measured, samples: [], baseline };
    rows.push(r);
    return r;
  };
  const noFault = (db: string, protocol: Protocol): Row => row(`no fault (${db})`, 'none: submitted at once', protocol);
  const now = (): Promise<number> => Promise.resolve(Date.now());

  // SQLite, Redis without an append-only file: the participant and coordinator faults, and the Redis restart that
  // loses everything (tasks, answers, deadline jobs and the participants' ACL users).
  checked += await onCluster('SQLite, Redis without AOF', { database: 'sqlite' }, ['shamir', 'paillier'], async (h) => {
    const base = { shamir: noFault('SQLite', 'shamir'), paillier: noFault('SQLite', 'paillier') };
    const redis = `Redis SIGKILL without AOF, down ${OUTAGE_MS / 1000} s (SQLite)`;
    const participant = timed(h, row('participant SIGKILL, restarted (SQLite)', 'the restarted worker logs `worker ready`', 'shamir', base.shamir), async (i) => {
      const victim = h.sites[i % SITES]!;
      await h.cluster.kill(victim);
      const t = Date.now();
      await h.cluster.run(victim);
      workerStartMs.push(Date.now() - t);
      return Date.now();
    });
    const coordinator = timed(h, row('coordinator SIGKILL, restarted on the same port (SQLite)', 'the new process answers /health', 'shamir', base.shamir), async () => {
      await h.cluster.stopCoordinator('SIGKILL');
      const t = Date.now();
      await h.cluster.startCoordinator();
      bootMs.push(Date.now() - t);
      return Date.now();
    });
    await rounds(trials, [
      timed(h, base.shamir, now),
      timed(h, base.paillier, now),
      participant,
      timed(h, row(redis, 'redis-server answers PING again', 'shamir', base.shamir), () => redisOutage(h)),
      timed(h, row(redis, 'redis-server answers PING again', 'paillier', base.paillier), () => redisOutage(h)),
      coordinator,
      // Not timed: so that the next round's no-fault queries do not meet a coordinator process that has served one query.
      async () => void (await newQuery(h, 'shamir', Date.now())),
    ]);
  });

  // SQLite, Redis with an append-only file (fsync always): Redis comes back with its data, but never with ACL users.
  checked += await onCluster('SQLite, Redis with AOF', { database: 'sqlite', appendOnly: true }, ['shamir'], async (h) => {
    const base = noFault('SQLite, Redis AOF', 'shamir');
    await rounds(trials, [timed(h, base, now), timed(h, row(`Redis SIGKILL with AOF, down ${OUTAGE_MS / 1000} s (SQLite)`, 'redis-server answers PING again', 'shamir', base), () => redisOutage(h))]);
  });

  // PostgreSQL through the relay the fault test uses: with the default sweep (and the no-fault row), then with 2 s.
  checked += await onCluster('PostgreSQL', { database: 'postgres', databaseProxy: true }, ['shamir'], async (h) => {
    const base = noFault('PostgreSQL', 'shamir');
    const outage = (sweep: string): Step => {
      const fault = `PostgreSQL unreachable ${OUTAGE_MS / 1000} s, CONFIDE_SWEEP_SECONDS=${sweep}`;
      const cleared = 'the relay accepts connections again';
      const fresh = row(fault, cleared, 'shamir', base);
      const inFlight = row(fault, cleared, 'shamir', undefined, 'query in flight: its end');
      const periodMs = Number(sweep) * 1000;
      let lastEnd = Date.now();
      return async (i) => {
        // The in-flight query ends at a sweep, and the next trial would start just after it, its outage ending at the
        // same point of the sweep's period every time. Waiting i/trials of a period first spreads those points over it.
        await sleep(Math.max(0, lastEnd + (i * periodMs) / trials - Date.now()));
        const { since, pending } = await databaseOutage(h);
        const [took, held] = await Promise.all([newQuery(h, 'shamir', since), pending]);
        fresh.samples.push(took);
        inFlight.samples.push(held - since);
        lastEnd = held;
      };
    };
    await rounds(trials, [timed(h, base, now), outage(DEFAULT_SWEEP)]);
    await h.cluster.stopCoordinator();
    await h.cluster.startCoordinator({ CONFIDE_SWEEP_SECONDS: '2' });
    await newQuery(h, 'shamir', Date.now());
    await rounds(trials, [outage('2')]);
  });

  for (const r of rows) process.stderr.write(`  ${r.fault}, ${r.protocol}, ${r.measured}: ${r.samples.map((s) => fmt(s)).join(', ')} ms\n`);
  const minutes = (Date.now() - started) / 60_000;
  const slowest = Math.max(...rows.filter((r) => r.measured === 'new query').flatMap((r) => r.samples));
  return {
    id: 'recovery',
    title: 'Recovery after faults (issue 12)',
    method: [
      `The faults test/e2e/faults.e2e-spec.ts checks, played with real processes on its Harness (test/support/faults.ts): a coordinator process (\`confide coordinator start\`, LOG_LEVEL=debug to a file), ${SITES} participant processes (\`confide participant run\`) with 30 generated salary rows each, a private redis-server, and embedded SQLite or a fresh PostgreSQL database reached through a TCP relay that can drop every connection and refuse new ones. Round deadlines 20 s; CONFIDE_SWEEP_SECONDS ${DEFAULT_SWEEP} (the default) unless a row says otherwise.`,
      `**Recovery time** is from the moment the fault cleared (the column says what that moment is) until a new query, submitted then with the researcher's CLI (\`confide query\`, a new Node process each time, retried until the coordinator accepts it), is seen done by polling GET /v1/queries/:id every ${POLL_MS} ms; a paillier query includes the researcher's \`confide query decrypt\` (2048-bit key, another process) once its aggregate is ready. Every query, timed or not, must succeed with the plaintext's exact figures over all ${SITES} sites, and \`confide ledger verify\` must pass at the end of each cluster, or the bench stops. The faults: the coordinator SIGKILLed while idle and started again on the same port; a participant SIGKILLed while idle and started again (each trial the next site); redis-server SIGKILLed, left down ${OUTAGE_MS / 1000} s and started on the same port with the same configuration, without (every key and ACL user gone) and with an append-only file (appendfsync always; ACL users are still not persisted); PostgreSQL made unreachable for ${OUTAGE_MS / 1000} s. For PostgreSQL a query is also in flight: submitted (deadline 60 s) while one site is stopped (SIGSTOP), the site let go (SIGCONT) 0.5 s into the outage so that its answer comes while the database is away; its row is that query's end minus the outage's end, the new query running meanwhile. That query ends at a look of the sweep timer, so trial i first waits i/${trials} of a sweep period after the previous one ended: the outages end at points spread over the period rather than at the same point each time.`,
      `Shamir runs after every fault; paillier too with no fault and after Redis without AOF (every task and ACL user re-created), the case the issue names, and nowhere else so that the run stays near 15 minutes on this machine. On each cluster the rows run round-robin, ${trials} rounds of one trial per row (the machine's load changes while the bench runs, and this way a change lands on every row alike), after one warm-up query per protocol; after the coordinator restart an untimed query follows, so that the next round's no-fault queries do not meet a process that has served a single query. The PostgreSQL rows with CONFIDE_SWEEP_SECONDS=2 run after those with the default, on the same database with the coordinator restarted. p50/p95 are nearest-rank (with 10 trials, p95 is the slowest). The last column is the row's p50 less the no-fault p50 of the same protocol on the same cluster: what the fault adds.`,
    ].join('\n\n'),
    columns: ['fault', 'cleared when', 'protocol', 'measured', 'p50 ms', 'p95 ms', 'max ms', 'p50 over no fault, ms'],
    rows: rows.map((r) => [
      r.fault,
      r.cleared,
      r.protocol,
      r.measured,
      fmt(percentile(r.samples, 50)),
      fmt(percentile(r.samples, 95)),
      fmt(Math.max(...r.samples)),
      r.baseline ? fmt(percentile(r.samples, 50) - percentile(r.baseline.samples, 50)) : '',
    ]),
    notes: [
      `Restarts themselves, not in the figures above: the coordinator from spawn to its first 200 on /health p50 ${fmt(percentile(bootMs, 50))} ms (max ${fmt(Math.max(...bootMs))}), a participant from spawn to \`worker ready\` p50 ${fmt(percentile(workerStartMs, 50))} ms (max ${fmt(Math.max(...workerStartMs))}).`,
      `Slowest new query after any fault: ${fmt(slowest)} ms (the fault tests' bound is ${fmt(RECOVERY_MS)} ms). ${checked} queries checked exact; the whole run took ${fmt(minutes)} min. ${loadBefore} At its end: ${loadNote().replace('Load average when the run started: ', '')}`,
    ].join(' '),
  };
}

/** SIGKILLs the cluster's Redis, leaves it down {@link OUTAGE_MS}, starts it again; resolves when it answers PING. */
async function redisOutage(h: Harness): Promise<number> {
  await h.cluster.killRedis();
  await sleep(OUTAGE_MS);
  await h.cluster.restartRedis();
  return Date.now();
}

/**
 * Puts a shamir query in flight with site 1 stopped, takes the database away for {@link OUTAGE_MS} and lets site 1
 * answer during it. Resolves when the database is back (`since`) with `pending`: when that query is seen done.
 */
async function databaseOutage(h: Harness): Promise<{ since: number; pending: Promise<number> }> {
  const site = h.sites[0]!;
  freeze(site);
  let id: string | undefined;
  try {
    id = await h.submit('shamir', 60);
    if (!id) throw new Error('the coordinator refused the query meant to be in flight during the database outage');
    const outage = h.cluster.restartDatabase(OUTAGE_MS);
    await sleep(500);
    thaw(site);
    await outage;
  } finally {
    thaw(site);
  }
  const since = Date.now();
  const inFlight = id;
  const pending = h.finish(inFlight, 90_000, POLL_MS).then((q) => {
    const wrong = h.inexact(q);
    if (wrong) throw new InexactResult(wrong);
    return Date.now();
  });
  return { since, pending };
}
