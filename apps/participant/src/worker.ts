import { resolve } from 'node:path';
import { UnrecoverableError, Worker, type Job } from 'bullmq';
import pino, { type Logger } from 'pino';
import { importPublicKeyBase64Url, RnPool, type KeyPair, type PaillierPublicKey, type PublicKey } from '@confide/crypto';
import {
  aggregateLocal,
  authorizePaillier,
  authorizeShamirRound1,
  authorizeShamirRound2,
  checkStudyView,
  committeeRound2,
  compileQuery,
  DataValidationError,
  openEvidence,
  paillierContext,
  paillierContribute,
  participantRound1,
  ProtocolError,
  QueryError,
  readRecordsFromFile,
  TaskRefusal,
  type KeyDirectory,
  type LedgerFacts,
  type PinnedSettings,
  type QuerySpec,
  type StudySchema,
} from '@confide/protocol';
import { createRedis, openTask, OutageMonitor, roundOf, TASK, taskJobId, TaskRejected, type Answer, type DirectoryEntry, type TaskOf, type TaskPayload } from '@confide/queue';
import { CoordinatorLink, CoordinatorRequestError, WORKER_OUTAGE_RETRY_MS } from './coordinator-link';
import { ParticipantHome, type Identity } from './home';
import { describeQuery, Journal } from './journal';
import { LedgerView, LedgerViewError } from './ledger-view';

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

/** How often a running worker makes a signed request the coordinator counts as "seen" (its online window is 10 minutes). */
export const HEARTBEAT_MS = 2 * 60 * 1000;

/**
 * The participant's worker: takes signed tasks from its own queue only (its Redis ACL allows nothing else),
 * checks each one (coordinator signature, this participant and study, not expired), then authorises it against
 * the settings pinned at enrollment and the signed ledger (libs/protocol authorize*, and its own ledger view:
 * consistency with the checkpoint it saved, the study's roster, one closing per round), and only then computes
 * its local aggregate from its CSV, runs the protocol step from libs/protocol and answers with the signed result.
 * Its data never leaves except as envelopes; its answers are stored locally before they are sent, so a
 * redelivered task gets the same answer. Every task's outcome, and a refusal's reason, goes to its journal.
 */
export class ParticipantWorker {
  private worker?: Worker;
  private heartbeat?: NodeJS.Timeout;
  private readonly home: ParticipantHome;
  private readonly identity: Identity;
  private readonly schema: StudySchema;
  private readonly keys: { encryption: KeyPair; signing: KeyPair };
  private readonly coordinatorKey: PublicKey;
  /** The coordinator's X25519 key pinned at enrollment: the one reader of this member's round-2 share sums. */
  private readonly reader: PublicKey;
  private readonly pinned: PinnedSettings;
  private readonly view: LedgerView;
  private readonly journal: Journal;
  private readonly logger: Logger;
  /** Precomputed r^n per researcher key (by n), most recent last. In memory only: a pooled value unmasks a plaintext. */
  private readonly pools = new Map<string, RnPool>();
  private refill?: AbortController;
  private outages?: OutageMonitor;

  constructor(private readonly options: WorkerOptions) {
    this.home = new ParticipantHome(resolve(options.home));
    this.identity = this.home.identity();
    this.schema = this.home.study();
    this.keys = this.home.keys();
    this.coordinatorKey = this.home.coordinatorKey();
    this.reader = this.home.coordinatorEncryptionKey();
    this.pinned = { participantId: this.identity.participantId, studyId: this.identity.studyId, study: this.schema };
    this.view = new LedgerView(this.home.dir, this.coordinatorKey, new CoordinatorLink(this.identity.coordinatorUrl, this.identity.participantId, this.keys.signing, WORKER_OUTAGE_RETRY_MS));
    this.journal = new Journal(this.home.dir);
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
    this.worker.on('failed', (job, err) => this.logger.warn({ jobId: job?.id, reason: err.message }, `task refused or failed: ${err.message}`));
    this.worker.on('completed', (job) => this.logger.info({ jobId: job.id }, 'task answered'));
    // Redis may restart at any time: the connection comes back by itself (libs/queue reconnectBackoff), logging one
    // line when it is lost and one when it is back, not one per retry.
    this.outages = new OutageMonitor(this.logger, 'task queue').watch(connection);
    this.worker.on('error', (err) => {
      if (this.outages?.quiet(err)) this.logger.debug({ err: err.message }, 'worker error during a Redis outage');
      else this.logger.error({ err: err.message }, 'worker error');
    });
    void this.worker.run();
    await this.worker.waitUntilReady();
    this.logger.info({ participantId: this.identity.participantId, study: this.identity.studyName }, 'worker ready');
    this.startHeartbeat();
  }

  /**
   * Says "still here" to the coordinator at start and every {@link HEARTBEAT_MS}: one signed read of the public
   * checkpoint, so `confide participant list` shows an idle worker as online. Nothing about the data travels.
   */
  private startHeartbeat(): void {
    const link = new CoordinatorLink(this.identity.coordinatorUrl, this.identity.participantId, this.keys.signing);
    const beat = (): void => {
      link.get('/v1/ledger/checkpoint').catch((err: unknown) => this.logger.debug({ err: (err as Error).message }, 'heartbeat to the coordinator failed'));
    };
    beat();
    this.heartbeat = setInterval(beat, HEARTBEAT_MS);
    this.heartbeat.unref();
  }

  /** Finishes the task in hand, then disconnects (SIGTERM drains). */
  async stop(): Promise<void> {
    clearInterval(this.heartbeat);
    this.refill?.abort();
    for (const pool of this.pools.values()) pool.clear();
    this.outages?.stop();
    await this.worker?.close();
    await this.worker?.disconnect();
  }

  /**
   * One task: validate, authorise, compute, answer. Permanent refusals are UnrecoverableError so BullMQ does not
   * retry; each one names its reason, which the coordinator records and this participant's journal keeps.
   */
  async process(job: Job): Promise<Answer> {
    let task;
    try {
      task = openTask(job.data, { coordinatorKey: this.coordinatorKey, participantId: this.identity.participantId, studyId: this.identity.studyId });
    } catch (err) {
      if (err instanceof TaskRejected) throw new UnrecoverableError(`task rejected: ${err.message}`);
      throw err;
    }
    const round = roundOf(task.kind);
    if (job.id !== taskJobId(task.queryId, round, this.identity.participantId)) throw new UnrecoverableError('task rejected: job id does not match the signed task');
    let facts: LedgerFacts | null = null;
    try {
      this.refill?.abort();
      const stored = this.home.readAnswer<Answer | { answer: Answer }>(task.queryId, round);
      // A redelivered task gets the answer already given (and already authorised), never a fresh sharing.
      if (stored && round === 1) return stored as Answer;
      facts = await this.authorize(task);
      const answer = task.kind === TASK.paillierContribute ? await this.contributePaillier(task) : task.kind === TASK.shamirRound1 ? await this.round1(task) : this.round2(task);
      this.record(task, 'answered', null, facts);
      return answer;
    } catch (err) {
      const refusal = this.refusal(err, task.queryId);
      this.record(task, refusal ? 'refused' : 'failed', refusal?.message ?? (err instanceof Error ? err.message : String(err)), facts);
      throw refusal ?? err;
    }
  }

  /**
   * Authorises a task before anything is computed (DESIGN.md "Trust model"): its plan and query against the
   * settings pinned at enrollment and its ledger evidence (libs/protocol), then its checkpoint against the one this
   * participant saved, which also brings the participant's view of its study up to date: the plan must ask exactly
   * the study's participants, and the query, its plan and its closing must each be the only one (checkStudyView).
   * @throws TaskRefusal or LedgerViewError (refusals), CoordinatorRequestError (the coordinator could not be asked)
   */
  private async authorize(task: TaskPayload): Promise<LedgerFacts> {
    const evidence = openEvidence(task.evidence, this.coordinatorKey);
    const pinned = this.pinned;
    const facts =
      task.kind === TASK.shamirRound1
        ? authorizeShamirRound1({ pinned, plan: task.plan, query: task.query, directory: task.directory, evidence })
        : task.kind === TASK.shamirRound2
          ? authorizeShamirRound2({ pinned, plan: task.plan, query: task.query, closed: task.closed, directory: task.directory, evidence })
          : authorizePaillier({ pinned, plan: task.plan, query: task.query, evidence });
    const { entries } = await this.view.catchUp(evidence.note, task.view);
    checkStudyView(pinned, task.queryId, task.plan.participants, facts, entries);
    return facts;
  }

  /** The UnrecoverableError a refusal becomes, or undefined for an error a retry may cure. */
  private refusal(err: unknown, queryId: string): UnrecoverableError | undefined {
    if (err instanceof UnrecoverableError) return err;
    if (err instanceof TaskRefusal || err instanceof LedgerViewError) return new UnrecoverableError(`task rejected: ${err.message}`);
    // The coordinator could not prove the checkpoint extends the saved one (e.g. a size its ledger never had).
    if (err instanceof CoordinatorRequestError && err.status >= 400 && err.status < 500) {
      return new UnrecoverableError(`task rejected: the coordinator cannot prove the task's checkpoint against the one this participant saved: ${err.message}`);
    }
    if (err instanceof ProtocolError) return new UnrecoverableError(err.message);
    if (err instanceof QueryError) return new UnrecoverableError(`query refused locally: ${err.message}`);
    if (err instanceof DataValidationError) {
      // The details name rows and cell values: they stay in this machine's log, never in Redis.
      this.logger.error({ queryId }, err.message);
      return new UnrecoverableError(`local data file failed validation (${err.issues.length} problem${err.issues.length === 1 ? '' : 's'}; see the participant's log)`);
    }
    return undefined;
  }

  private record(task: TaskPayload, outcome: 'answered' | 'refused' | 'failed', reason: string | null, facts: LedgerFacts | null): void {
    this.journal.append({
      time: new Date().toISOString(),
      queryId: task.queryId,
      round: roundOf(task.kind),
      task: task.kind,
      outcome,
      reason,
      query: describeQuery(task.query),
      submittedBy: facts?.submittedBy ?? null,
      ledger: facts ? { submitted: facts.submitted.index, plan: facts.plan.index, closing: facts.closing?.index ?? null } : null,
    });
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
    const { local } = await this.localAggregate(task.query);
    const bundle = participantRound1({ plan: task.plan, self: this.identity.participantId, signing: this.keys.signing, directory: directoryOf(task.directory), aggregate: local.vector });
    local.vector.fill(0n);
    const answer: Answer = { kind: TASK.shamirRound1, bundle };
    this.home.storeAnswer(task.queryId, 1, answer);
    return answer;
  }

  /**
   * Round 2 for a committee member (authorised already): sums its shares over exactly the closed set, seals the sum
   * to the coordinator's X25519 key pinned at enrollment, signs, and answers once per query: a second task with
   * another set is refused (committeeRound2 ALREADY_ANSWERED).
   */
  private round2(task: TaskOf<typeof TASK.shamirRound2>): Answer {
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
      reader: this.reader,
    });
    if (stored) return stored.answer;
    const answer: Answer = { kind: TASK.shamirRound2, result };
    this.home.storeAnswer(task.queryId, 2, { closedHash, answer });
    return answer;
  }
}
