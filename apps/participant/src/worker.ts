import { resolve } from 'node:path';
import { UnrecoverableError, Worker, type Job } from 'bullmq';
import pino, { type Logger } from 'pino';
import { canonicalJson, importPublicKeyBase64Url, RnPool, type KeyPair, type PaillierPublicKey } from '@confide/crypto';
import { ledgerOrigin, leafHash, parseEntry, verifyCheckpoint, verifyInclusion } from '@confide/ledger';
import {
  aggregateLocal,
  committeeRound2,
  compileQuery,
  DataValidationError,
  paillierContext,
  paillierContribute,
  participantRound1,
  ProtocolError,
  QueryError,
  readRecordsFromFile,
  type KeyDirectory,
  type QuerySpec,
  type StudySchema,
} from '@confide/protocol';
import { createRedis, openTask, TASK, taskJobId, TaskRejected, type Answer, type DirectoryEntry, type ProvenEntry, type TaskOf } from '@confide/queue';
import { ParticipantHome, type Identity } from './home';

function directoryOf(entries: readonly DirectoryEntry[]): KeyDirectory {
  return new Map(
    entries.map((e) => [e.id, { encryption: importPublicKeyBase64Url('x25519', e.encryptionKey), signing: importPublicKeyBase64Url('ed25519', e.signingKey) }]),
  );
}

/** How many r^n values the worker precomputes per researcher key while idle, and for how many keys. */
const POOL_TARGET = 8;
const POOL_KEYS = 4;

/** Options of {@link ParticipantWorker}. */
export interface WorkerOptions {
  readonly home: string;
  /** Overrides the Redis URL from enrollment (e.g. inside docker-compose); credentials still come from the home. */
  readonly redisUrl?: string;
  readonly logger?: Logger;
}

/**
 * The participant's worker: takes signed tasks from its own queue only (its Redis ACL allows nothing else),
 * checks each one (coordinator signature, this participant and study, not expired), computes its local
 * aggregate from its CSV, runs the protocol step from libs/protocol and answers with the signed result.
 * Its data never leaves except as envelopes; its answers are stored locally before they are sent, so a
 * redelivered task gets the same answer.
 */
export class ParticipantWorker {
  private worker?: Worker;
  private readonly home: ParticipantHome;
  private readonly identity: Identity;
  private readonly schema: StudySchema;
  private readonly keys: { encryption: KeyPair; signing: KeyPair };
  private readonly logger: Logger;
  /** Precomputed r^n per researcher key (by n), most recent last. In memory only: a pooled value unmasks a plaintext. */
  private readonly pools = new Map<string, RnPool>();
  private refill?: AbortController;

  constructor(private readonly options: WorkerOptions) {
    this.home = new ParticipantHome(resolve(options.home));
    this.identity = this.home.identity();
    this.schema = this.home.study();
    this.keys = this.home.keys();
    this.logger = options.logger ?? pino({ name: 'participant', level: process.env.LOG_LEVEL ?? 'info' }, pino.destination(2));
  }

  get participantId(): string {
    return this.identity.participantId;
  }

  /** Connects to Redis with this participant's own credentials and starts taking tasks. */
  async start(): Promise<void> {
    const { redis } = this.identity;
    const connection = createRedis(this.options.redisUrl ?? redis.url, { role: 'worker', username: redis.username, password: redis.password });
    this.worker = new Worker(redis.queue, (job) => this.process(job), { connection, prefix: redis.prefix, concurrency: 1, autorun: false });
    this.worker.on('failed', (job, err) => this.logger.warn({ jobId: job?.id, reason: err.message }, 'task refused or failed'));
    this.worker.on('completed', (job) => this.logger.info({ jobId: job.id }, 'task answered'));
    this.worker.on('error', (err) => this.logger.error({ err: err.message }, 'worker error'));
    void this.worker.run();
    await this.worker.waitUntilReady();
    this.logger.info({ participantId: this.identity.participantId, study: this.identity.studyName }, 'worker ready');
  }

  /** Finishes the task in hand, then disconnects (SIGTERM drains). */
  async stop(): Promise<void> {
    this.refill?.abort();
    for (const pool of this.pools.values()) pool.clear();
    await this.worker?.close();
    await this.worker?.disconnect();
  }

  /** One task: validate, compute, answer. Permanent refusals are UnrecoverableError so BullMQ does not retry. */
  async process(job: Job): Promise<Answer> {
    let task;
    try {
      task = openTask(job.data, { coordinatorKey: this.home.coordinatorKey(), participantId: this.identity.participantId, studyId: this.identity.studyId });
    } catch (err) {
      if (err instanceof TaskRejected) throw new UnrecoverableError(`task rejected: ${err.message}`);
      throw err;
    }
    const round = task.kind === TASK.shamirRound2 ? 2 : 1;
    if (job.id !== taskJobId(task.queryId, round, this.identity.participantId)) throw new UnrecoverableError('task rejected: job id does not match the signed task');
    try {
      this.refill?.abort();
      if (task.kind === TASK.paillierContribute) return await this.contributePaillier(task);
      return task.kind === TASK.shamirRound1 ? await this.round1(task) : this.round2(task);
    } catch (err) {
      if (err instanceof ProtocolError) throw new UnrecoverableError(err.message);
      if (err instanceof QueryError) throw new UnrecoverableError(`query refused locally: ${err.message}`);
      if (err instanceof DataValidationError) {
        // The details name rows and cell values: they stay in this machine's log, never in Redis.
        this.logger.error({ queryId: task.queryId }, err.message);
        throw new UnrecoverableError(`local data file failed validation (${err.issues.length} problem${err.issues.length === 1 ? '' : 's'}; see the participant's log)`);
      }
      throw err;
    }
  }

  /** The local aggregate of a task's query over this participant's CSV, checked against the declared record count. */
  private async localAggregate(query: TaskOf<typeof TASK.shamirRound1>['query']) {
    const compiled = compileQuery(this.schema, query as unknown as QuerySpec);
    const local = await aggregateLocal(compiled, readRecordsFromFile(this.identity.dataFile, this.schema));
    if (local.records > this.identity.maxRecords) {
      local.vector.fill(0n);
      throw new UnrecoverableError(`local data has more records than declared at enrollment (${this.identity.maxRecords}); re-enroll with a larger --max-records`);
    }
    return { compiled, local };
  }

  /**
   * Paillier's one round (DESIGN.md "Protocol paillier"): validates the researcher's key and the packing layout it
   * implies (recomputed here from the plan, never taken from the coordinator), packs and encrypts the local
   * aggregate with precomputed r^n values, signs, and answers. The worker may exit right after: nothing more is
   * asked of it for this query.
   */
  private async contributePaillier(task: TaskOf<typeof TASK.paillierContribute>): Promise<Answer> {
    const stored = this.home.readAnswer<Answer>(task.queryId, 1);
    if (stored) return stored;
    if (BigInt(this.identity.maxRecords) > BigInt(task.plan.maxRecords)) {
      throw new UnrecoverableError(`task rejected: the plan sizes slots for ${task.plan.maxRecords} records, this participant declared ${this.identity.maxRecords}`);
    }
    const { compiled, local } = await this.localAggregate(task.query);
    try {
      const context = paillierContext(task.plan, compiled);
      const pool = this.poolFor(context.publicKey);
      const contribution = paillierContribute({ plan: task.plan, context, self: this.identity.participantId, signing: this.keys.signing, aggregate: local.vector, randomnessPower: () => pool.take() });
      const answer: Answer = { kind: TASK.paillierContribute, contribution };
      this.home.storeAnswer(task.queryId, 1, answer);
      this.scheduleRefill(pool);
      return answer;
    } finally {
      local.vector.fill(0n);
    }
  }

  private poolFor(publicKey: PaillierPublicKey): RnPool {
    const n = publicKey.n.toString(16);
    let pool = this.pools.get(n);
    if (pool) this.pools.delete(n);
    else pool = new RnPool(publicKey);
    this.pools.set(n, pool);
    for (const [key, old] of this.pools) {
      if (this.pools.size <= POOL_KEYS) break;
      old.clear();
      this.pools.delete(key);
    }
    return pool;
  }

  /** Tops the pool up while the worker is idle; the next task aborts it (fill yields between exponentiations). */
  private scheduleRefill(pool: RnPool): void {
    this.refill?.abort();
    const refill = new AbortController();
    this.refill = refill;
    setImmediate(() => {
      pool.fill(Math.max(0, POOL_TARGET - pool.size), { signal: refill.signal }).catch((err: unknown) => this.logger.warn({ err: (err as Error).message }, 'r^n precomputation stopped'));
    });
  }

  private async round1(task: TaskOf<typeof TASK.shamirRound1>): Promise<Answer> {
    const stored = this.home.readAnswer<Answer>(task.queryId, 1);
    if (stored) return stored;
    const committee = new Set(task.plan.committee);
    if (task.directory.length !== committee.size || !task.directory.every((e) => committee.has(e.id))) {
      throw new UnrecoverableError('task rejected: key directory does not match the committee');
    }
    const { local } = await this.localAggregate(task.query);
    const bundle = participantRound1({ plan: task.plan, self: this.identity.participantId, signing: this.keys.signing, directory: directoryOf(task.directory), aggregate: local.vector });
    local.vector.fill(0n);
    const answer: Answer = { kind: TASK.shamirRound1, bundle };
    this.home.storeAnswer(task.queryId, 1, answer);
    return answer;
  }

  /**
   * Checks the round-2 task's closed set against the coordinator's signed ledger (DESIGN.md "Protocol shamir":
   * U1 must be exactly the set the ledger's "round 1 closed" entry records): the checkpoint is signed by the
   * coordinator key pinned at enrollment, the entry is included in it at its index, and it is the `round.closed`
   * entry of this query listing exactly the contributors and bundle hashes of `task.closed`. A coordinator that
   * shows members different sets must then log each of them, where every participant and auditor sees it.
   */
  private checkClosingRecord(task: TaskOf<typeof TASK.shamirRound2>): void {
    const record: ProvenEntry = task.closingRecord;
    const reject = (why: string): never => {
      throw new UnrecoverableError(`task rejected: closing record ${why}`);
    };
    const coordinatorKey = this.home.coordinatorKey();
    let checkpoint;
    try {
      checkpoint = verifyCheckpoint(record.checkpoint, coordinatorKey, ledgerOrigin(coordinatorKey));
    } catch (err) {
      return reject(`checkpoint does not verify with the pinned coordinator key: ${(err as Error).message}`);
    }
    const bytes = new Uint8Array(Buffer.from(record.entry, 'base64'));
    try {
      verifyInclusion(leafHash(bytes), record.index, checkpoint.size, record.proof.map((p) => new Uint8Array(Buffer.from(p, 'base64'))), checkpoint.root);
    } catch (err) {
      return reject(`is not in the signed ledger: ${(err as Error).message}`);
    }
    const entry = parseEntry(bytes);
    const body = entry.body as { queryId?: unknown; round?: unknown; contributors?: unknown };
    if (entry.index !== record.index || entry.type !== 'round.closed' || body.queryId !== task.queryId || body.round !== 1) {
      return reject(`entry ${record.index} is not the round-1 closing of query ${task.queryId}`);
    }
    if (canonicalJson(body.contributors ?? null) !== canonicalJson(task.closed.contributors)) {
      return reject(`entry ${record.index} records another contributor set than the task carries`);
    }
  }

  private round2(task: TaskOf<typeof TASK.shamirRound2>): Answer {
    this.checkClosingRecord(task);
    const stored = this.home.readAnswer<{ closedHash: string; answer: Answer }>(task.queryId, 2);
    const { result, closedHash } = committeeRound2({
      plan: task.plan,
      self: this.identity.participantId,
      encryption: this.keys.encryption,
      signing: this.keys.signing,
      directory: directoryOf(task.directory),
      closed: task.closed,
      deliveries: task.deliveries,
      memory: { answeredFor: () => stored?.closedHash },
    });
    if (stored) return stored.answer;
    const answer: Answer = { kind: TASK.shamirRound2, result };
    this.home.storeAnswer(task.queryId, 2, { closedHash, answer });
    return answer;
  }
}
