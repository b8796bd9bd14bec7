import { Job, Queue, QueueEvents, Worker } from 'bullmq';
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
 * aggregateLocal), and the orchestrator's completion mechanism: a QueueEvents per participant queue whose
 * `completed` event makes the coordinator side look up every job of the query with `Job.fromId`, finishing
 * the query once all are in, serialised per query.
 *
 * What it leaves out: task signatures, Shamir splitting, envelopes, bundle signatures and their checks, the
 * second (committee) round, the HTTP API, the database, the event log and the participant's stored answers.
 * One round: the coordinator side sums the plaintext vectors and derives the statistics with deriveResults.
 */

/** The library functions the baseline runs; bench/e2e.bench.ts passes the built ones, as the secure apps run them. */
export interface BaselineLibs {
  readonly protocol: Pick<typeof Protocol, 'compileQuery' | 'aggregateLocal' | 'readRecordsFromFile' | 'deriveResults'>;
  readonly queue: Pick<typeof QueueLib, 'createRedis' | 'participantQueue' | 'taskJobId' | 'parseTaskJobId' | 'newQueryId' | 'provisionParticipantUser' | 'generateRedisPassword' | 'removeRunKeys'>;
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
  readonly resolve: (results: Protocol.StatResult[]) => void;
  readonly reject: (err: Error) => void;
  done: boolean;
}

/**
 * Starts the baseline's participant workers (each with its own ACL user and connection) and its coordinator
 * side (producer connection, one QueueEvents per participant queue), and waits until every one is ready.
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
  const listeners: QueueEvents[] = [];
  const queues = new Map<string, Queue>();
  const pending = new Map<string, Pending>();
  const chains = new Map<string, Promise<void>>();
  const ids = opts.participants.map((p) => p.id);

  const close = async (): Promise<void> => {
    await Promise.allSettled(workers.map((w) => w.close()));
    await Promise.allSettled(listeners.map((l) => l.close()));
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
    const answers: BaselineAnswer[] = [];
    for (const id of ids) {
      const job = await Job.fromId<BaselineTask, BaselineAnswer>(queues.get(id)!, q.taskJobId(queryId, ROUND, id));
      if (!job) continue;
      if (job.finishedOn && job.returnvalue) answers.push(job.returnvalue);
      else if (job.failedReason && job.attemptsMade >= (job.opts.attempts ?? 1)) {
        p.done = true;
        p.reject(new Error(`plaintext baseline: participant ${id} failed: ${job.failedReason}`));
        return;
      }
    }
    if (answers.length < ids.length) return;
    const totals = new Array<bigint>(p.compiled.vectorLength).fill(0n);
    for (const a of answers) {
      if (!Array.isArray(a.vector) || a.vector.length !== totals.length) throw new Error('plaintext baseline: malformed answer');
      a.vector.forEach((v, i) => (totals[i]! += BigInt(v)));
    }
    p.done = true;
    pending.delete(queryId);
    p.resolve(protocol.deriveResults(p.compiled, totals));
    // As the orchestrator does once a result is out (its timing is after the result is visible there too).
    await Promise.allSettled(ids.map((id) => Job.fromId(queues.get(id)!, q.taskJobId(queryId, ROUND, id)).then((job) => job?.remove())));
  };

  const nudge = (queryId: string): void => {
    const next = (chains.get(queryId) ?? Promise.resolve()).then(() => advance(queryId)).catch((err: unknown) => {
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
    for (const p of opts.participants) {
      const name = q.participantQueue(p.id);
      // Participant side: its own ACL user and connection, as a product worker authenticates.
      const username = `${prefix}-${p.id}`;
      const password = q.generateRedisPassword();
      await q.provisionParticipantUser(admin, { username, password, prefix, queue: name });
      users.push(username);
      const worker = { redisUrl: opts.redisUrl, prefix, participant: p, username, password, schema };
      workers.push(await (opts.spawnWorker ? opts.spawnWorker(worker) : startBaselineWorker({ ...worker, libs: opts.libs })));

      // Coordinator side: the queue it produces into and the events it advances on.
      queues.set(p.id, new Queue(name, { connection: admin, prefix }));
      const blocking = q.createRedis(opts.redisUrl, { role: 'worker' });
      connections.push(blocking);
      const events = new QueueEvents(name, { connection: blocking, prefix });
      const onFinished = ({ jobId }: { jobId: string }): void => {
        const parsed = q.parseTaskJobId(jobId);
        if (parsed?.round === ROUND) nudge(parsed.queryId);
      };
      events.on('completed', onFinished);
      events.on('failed', onFinished);
      events.on('error', () => undefined);
      listeners.push(events);
      await events.waitUntilReady();
    }
  } catch (err) {
    await close().catch(() => undefined);
    throw err;
  }

  return {
    async run(spec) {
      const compiled = protocol.compileQuery(schema, spec);
      const queryId = q.newQueryId();
      const result = new Promise<Protocol.StatResult[]>((resolve, reject) => pending.set(queryId, { compiled, resolve, reject, done: false }));
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
