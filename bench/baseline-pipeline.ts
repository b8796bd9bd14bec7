import { Queue, Worker } from 'bullmq';
import type * as Protocol from '@confide/protocol';
import type * as QueueLib from '@confide/queue';

/**
 * The plaintext baseline of bench/e2e.bench.ts: the product's query pipeline with the security taken out.
 * BENCH-ONLY, NEVER A PRODUCT MODE: participants hand their local aggregates to the coordinator in the clear.
 *
 * What it keeps from the product, so the secure/plaintext ratio measures what security adds: one BullMQ queue
 * per participant under a key prefix (`<prefix>:participant.<id>`), deterministic job ids (`taskJobId`, read back
 * with `parseTaskJobId`, so participant ids must be the product's: `newParticipantId`),
 * one Redis connection and ACL user per participant worker (`provisionParticipantUser`, concurrency 1), the
 * local aggregate computed from the participant's CSV by libs/protocol (compileQuery + readRecordsFromFile +
 * aggregateLocal), and the orchestrator's completion mechanism (libs/queue completions.ts): each worker appends its
 * finished job's id to the completion stream, the coordinator side reads that stream with one blocking XREAD and
 * reads the outcome of each job not yet finished (readOutcome), a batch at a time, serialised per query,
 * finishing the query once all are in.
 *
 * What it leaves out: task signatures, Shamir splitting, envelopes, bundle signatures and their checks, the
 * second (committee) round, the HTTP API, the database, the event log and the participant's stored answers.
 * One round: the coordinator side sums the plaintext vectors and derives the statistics with deriveResults.
 */

/** The library functions the baseline runs; bench/e2e.bench.ts passes the built ones, as the secure apps run them. */
export interface BaselineLibs {
  readonly protocol: Pick<typeof Protocol, 'compileQuery' | 'aggregateLocal' | 'readRecordsFromFile' | 'deriveResults'>;
  readonly queue: Pick<
    typeof QueueLib,
    'createRedis' | 'participantQueue' | 'taskJobId' | 'parseTaskJobId' | 'newQueryId' | 'provisionParticipantUser' | 'generateRedisPassword' | 'removeRunKeys' | 'completionsKey' | 'noteFinished' | 'CompletionReader' | 'groupFinished' | 'readOutcome'
  >;
}

/** Options of {@link startPlaintextBaseline}. */
export interface BaselineOptions {
  readonly redisUrl: string;
  /** Key prefix of this baseline's queues; nothing else may use it (close() deletes every key under it). */
  readonly prefix: string;
  readonly schema: Protocol.StudySchema;
  /** Ids as the product makes them (`newParticipantId`): finished jobs are matched to their query by `parseTaskJobId`. */
  readonly participants: readonly { readonly id: string; readonly dataFile: string }[];
  readonly libs: BaselineLibs;
  /**
   * Starts one participant's worker somewhere else (its own process: bench/baseline-worker.ts), given what
   * {@link startBaselineWorker} takes but the libraries; resolves once it takes jobs. Default: in this process.
   */
  readonly spawnWorker?: (worker: Omit<BaselineWorkerOptions, 'libs'>) => Promise<{ close(): Promise<void> }>;
}

/** Options of {@link startBaselineWorker}: one participant's side of the baseline. */
export interface BaselineWorkerOptions {
  readonly redisUrl: string;
  readonly prefix: string;
  readonly participant: { readonly id: string; readonly dataFile: string };
  /** The participant's own ACL user, as {@link startPlaintextBaseline} provisions it. */
  readonly username: string;
  readonly password: string;
  readonly schema: Protocol.StudySchema;
  readonly libs: BaselineLibs;
}

/** A running baseline: submit a query and get its statistics, then close (which also removes its keys and ACL users). */
export interface PlaintextBaseline {
  run(spec: Protocol.QuerySpec): Promise<Protocol.StatResult[]>;
  close(): Promise<void>;
}

/** The one job name of the baseline's queues. */
const JOB = 'plaintext.aggregate';
const ROUND = 1;

interface BaselineTask {
  readonly queryId: string;
  readonly query: Protocol.QuerySpec;
}

interface BaselineAnswer {
  /** The participant's local aggregate vector, as decimal strings (job return values are JSON). */
  readonly vector: string[];
  readonly records: number;
}

interface Pending {
  readonly compiled: Protocol.CompiledQuery;
  /** Answers read so far, by participant (an outcome does not change once its job finished). */
  readonly answers: Map<string, BaselineAnswer>;
  readonly resolve: (results: Protocol.StatResult[]) => void;
  readonly reject: (err: Error) => void;
  done: boolean;
}

/**
 * Starts the baseline's participant workers (each with its own ACL user and connection) and its coordinator
 * side (producer connection, one reader of the completion stream), and waits until every one is ready.
 * @throws whatever Redis or BullMQ throws; anything already started is closed and removed first
 */
export async function startPlaintextBaseline(opts: BaselineOptions): Promise<PlaintextBaseline> {
  const { protocol, queue: q } = opts.libs;
  const { prefix, schema } = opts;
  // An id parseTaskJobId cannot read back would leave every query waiting for answers it never hears of.
  const unreadable = opts.participants.find((p) => !q.parseTaskJobId(q.taskJobId(q.newQueryId(), ROUND, p.id)));
  if (unreadable) throw new TypeError(`plaintext baseline: participant id ${unreadable.id} is not one the product makes (newParticipantId)`);
  const admin = q.createRedis(opts.redisUrl, { role: 'producer' });
  const connections: QueueLib.RedisClient[] = [admin];
  const users: string[] = [];
  const workers: { close(): Promise<void> }[] = [];
  let reader: QueueLib.CompletionReader | undefined;
  const queues = new Map<string, Queue>();
  const pending = new Map<string, Pending>();
  const chains = new Map<string, Promise<void>>();
  const ids = opts.participants.map((p) => p.id);

  const close = async (): Promise<void> => {
    await Promise.allSettled(workers.map((w) => w.close()));
    await reader?.stop();
    await Promise.allSettled([...queues.values()].map((x) => x.close()));
    await Promise.allSettled([...chains.values()]);
    for (const p of pending.values()) p.reject(new Error('the plaintext baseline was closed'));
    try {
      await q.removeRunKeys(admin, prefix, users);
    } finally {
      // quit() on a connection that is not up fails and leaves it reconnecting, which would keep the process alive.
      for (const c of connections) if (c.status !== 'ready') c.disconnect();
      await Promise.allSettled(connections.filter((c) => c.status === 'ready').map((c) => c.quit()));
    }
  };

  /** The orchestrator's collect-and-advance, one round: every answer in means sum, derive, release, remove jobs. */
  const advance = async (queryId: string): Promise<void> => {
    const p = pending.get(queryId);
    if (!p || p.done) return;
    const unread = ids.filter((id) => !p.answers.has(id));
    const outcomes = await Promise.all(unread.map((id) => q.readOutcome(admin, queues.get(id)!, q.taskJobId(queryId, ROUND, id))));
    for (const [i, outcome] of outcomes.entries()) {
      if (!outcome) continue;
      if ('failedReason' in outcome) {
        p.done = true;
        p.reject(new Error(`plaintext baseline: participant ${unread[i]!} failed: ${outcome.failedReason}`));
        return;
      }
      p.answers.set(unread[i]!, outcome.answer as BaselineAnswer);
    }
    if (p.answers.size < ids.length) return;
    const answers = [...p.answers.values()];
    const totals = new Array<bigint>(p.compiled.vectorLength).fill(0n);
    for (const a of answers) {
      if (!Array.isArray(a.vector) || a.vector.length !== totals.length) throw new Error('plaintext baseline: malformed answer');
      a.vector.forEach((v, i) => (totals[i]! += BigInt(v)));
    }
    p.done = true;
    pending.delete(queryId);
    p.resolve(protocol.deriveResults(p.compiled, totals));
    // As the orchestrator does once a result is out (its timing is after the result is visible there too).
    await Promise.allSettled(ids.map((id) => queues.get(id)!.remove(q.taskJobId(queryId, ROUND, id))));
  };

  /** One pass queued per query at most behind the running one (as the orchestrator coalesces its nudges). */
  const queued = new Set<string>();
  const nudge = (queryId: string): void => {
    if (queued.has(queryId)) return;
    queued.add(queryId);
    const next = (chains.get(queryId) ?? Promise.resolve()).then(() => {
      queued.delete(queryId);
      return advance(queryId);
    }).catch((err: unknown) => {
      const p = pending.get(queryId);
      if (p && !p.done) {
        p.done = true;
        p.reject(err instanceof Error ? err : new Error(String(err)));
      }
    });
    chains.set(queryId, next);
    void next.finally(() => {
      if (chains.get(queryId) === next) chains.delete(queryId);
    });
  };

  try {
    // A producer connection fails fast (no offline queue), so nothing may be sent on it before it is up.
    if (admin.status !== 'ready') await new Promise<void>((resolve, reject) => admin.once('ready', resolve).once('error', reject));
    const blocking = q.createRedis(opts.redisUrl, { role: 'worker' });
    connections.push(blocking);
    reader = new q.CompletionReader(
      blocking,
      q.completionsKey(prefix),
      (jobIds) => {
        for (const [queryId, rounds] of q.groupFinished(jobIds)) if (rounds.has(ROUND)) nudge(queryId);
        return Promise.resolve();
      },
      () => undefined,
    );
    reader.start('now');
    for (const p of opts.participants) {
      const name = q.participantQueue(p.id);
      // Participant side: its own ACL user and connection, as a product worker authenticates.
      const username = `${prefix}-${p.id}`;
      const password = q.generateRedisPassword();
      await q.provisionParticipantUser(admin, { username, password, prefix, queue: name, studyId: 'baseline' });
      users.push(username);
      const worker = { redisUrl: opts.redisUrl, prefix, participant: p, username, password, schema };
      workers.push(await (opts.spawnWorker ? opts.spawnWorker(worker) : startBaselineWorker({ ...worker, libs: opts.libs })));

      // Coordinator side: the queue it produces into.
      queues.set(p.id, new Queue(name, { connection: admin, prefix }));
    }
  } catch (err) {
    await close().catch(() => undefined);
    throw err;
  }

  return {
    async run(spec) {
      const compiled = protocol.compileQuery(schema, spec);
      const queryId = q.newQueryId();
      const result = new Promise<Protocol.StatResult[]>((resolve, reject) => pending.set(queryId, { compiled, answers: new Map(), resolve, reject, done: false }));
      await Promise.all(
        ids.map((id) =>
          queues.get(id)!.add(JOB, { queryId, query: spec }, { jobId: q.taskJobId(queryId, ROUND, id), attempts: 3, backoff: { type: 'exponential', delay: 1000 }, removeOnComplete: false, removeOnFail: false }),
        ),
      );
      return result;
    },
    close,
  };
}

/**
 * One participant's side of the baseline: a BullMQ worker on its queue, logged in as its own ACL user with its own
 * connection (concurrency 1, as a product worker), answering each job with the plaintext local aggregate of its CSV.
 * Resolves once the worker takes jobs; close() stops it and drops its connection.
 */
export async function startBaselineWorker(opts: BaselineWorkerOptions): Promise<{ close(): Promise<void> }> {
  const { protocol, queue: q } = opts.libs;
  const { schema, participant } = opts;
  const connection = q.createRedis(opts.redisUrl, { role: 'worker', username: opts.username, password: opts.password });
  const worker = new Worker<BaselineTask, BaselineAnswer>(
    q.participantQueue(participant.id),
    async (job) => {
      const compiled = protocol.compileQuery(schema, job.data.query);
      const local = await protocol.aggregateLocal(compiled, protocol.readRecordsFromFile(participant.dataFile, schema));
      return { vector: local.vector.map(String), records: local.records };
    },
    { connection, prefix: opts.prefix, concurrency: 1, autorun: false },
  );
  worker.on('error', () => undefined);
  // As a product worker tells the coordinator (apps/participant worker.ts).
  const completions = q.completionsKey(opts.prefix);
  const notify = (jobId: string | undefined): void => {
    if (jobId) q.noteFinished(connection, completions, jobId).catch(() => undefined);
  };
  worker.on('completed', (job) => notify(job.id));
  worker.on('failed', (job) => notify(job?.id));
  const close = async (): Promise<void> => {
    await worker.close().catch(() => undefined);
    if (connection.status === 'ready') await connection.quit().catch(() => undefined);
    else connection.disconnect();
  };
  try {
    void worker.run();
    await worker.waitUntilReady();
  } catch (err) {
    await close();
    throw err;
  }
  return { close };
}
