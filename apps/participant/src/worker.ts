import { randomInt } from 'node:crypto';
import { resolve } from 'node:path';
import { Queue, UnrecoverableError, Worker, type Job } from 'bullmq';
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
  describeProblems,
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
import { completionsKey, confideVersion, createRedis, noteFinished, DRAIN_GRACE_MS, openDispatchedTask, OutageMonitor, taskPartKey, roundOf, settledWithin, TASK, taskJobId, TaskRejected, withoutCredentials, type Answer, type DirectoryEntry, type RedisClient, type TaskOf, type TaskPayload } from '@confide/queue';
import { CoordinatorLink, CoordinatorRequestError, WORKER_OUTAGE_RETRY_MS } from './coordinator-link';
import { DataFileMonitor, DataFileRefusal } from './data-file';
import { ParticipantHome, taskQueueOf, type Identity } from './home';
import { describeQuery, Journal } from './journal';
import { LedgerView, LedgerViewError } from './ledger-view';
import { countTasks } from './status';
import { taskFields, taskSentence, type TaskReport } from './task-line';

/** Pino levels by number, for the plain lines a terminal gets. */
const LEVELS: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };

/**
 * The worker's default logger: JSON lines on stderr, or, when stderr is a terminal, the same lines as
 * `time LEVEL sentence` (every line's msg is a whole sentence, so nothing a person needs is lost).
 */
function defaultLogger(): Logger {
  const options = { name: 'participant', level: process.env.LOG_LEVEL ?? 'info' };
  if (!process.stderr.isTTY) return pino(options, pino.destination(2));
  return pino(options, {
    write(line: string) {
      const entry = JSON.parse(line) as { time?: number; level?: number; msg?: string };
      process.stderr.write(`${new Date(entry.time ?? Date.now()).toISOString()} ${LEVELS[entry.level ?? 30] ?? 'INFO'} ${entry.msg ?? ''}\n`);
    },
  });
}

/** The system calls of a file system error (whose message names its path), as opposed to a network one. */
const FS_SYSCALLS = new Set(['open', 'read', 'write', 'close', 'rename', 'mkdir', 'rmdir', 'unlink', 'stat', 'lstat', 'fstat', 'scandir', 'access', 'chmod', 'fsync', 'copyfile']);

/** Per task: what the log line reports beyond the task itself. */
interface TaskNote {
  records: number | null;
  matched: number | null;
  /** A refusal's kind, for the heartbeat's counts (a TaskRefusal's code, data_file, max_records, …). */
  refusal?: string;
  details: string | null;
}

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
 * How often a running worker sends its heartbeat (CONFIDE_HEARTBEAT_SECONDS, default 15): the coordinator counts a
 * participant online while it hears from it within its window (CONFIDE_ONLINE_SECONDS, default 45: three beats).
 * @throws Error naming the variable when it is not a number of seconds from 1 to 3600
 */
export function heartbeatMs(env: NodeJS.ProcessEnv = process.env): number {
  const text = env.CONFIDE_HEARTBEAT_SECONDS ?? '15';
  const seconds = Number(text);
  if (!/^\d+(\.\d+)?$/.test(text) || seconds < 1 || seconds > 3600) throw new Error(`CONFIDE_HEARTBEAT_SECONDS must be a number of seconds from 1 to 3600, not ${JSON.stringify(text)}`);
  return seconds * 1000;
}

/** How far behind the ledger a view may be before the worker catches up in the background (a task's update spans up to 64). */
const VIEW_CATCH_UP_GAP = 32;

/** How long the last heartbeat (the one that says the worker is stopping) may take: a stop never waits longer. */
const GOODBYE_MS = 1_500;

/**
 * The kind of a refusal, for the heartbeat's counts: a ledger or settings rule's code (libs/protocol TaskRefusal:
 * `roster`, `duplicate`, `checkpoint`, …), or what else refused it. `known` is a kind set where it was thrown.
 */
function refusalKind(err: unknown, known: string | undefined): string {
  if (known) return known;
  if (err instanceof TaskRefusal) return err.code.toLowerCase();
  if (err instanceof LedgerViewError || err instanceof CoordinatorRequestError) return 'ledger_view';
  if (err instanceof DataFileRefusal) return 'data_file';
  if (err instanceof QueryError) return 'query';
  if (err instanceof ProtocolError) return 'protocol';
  if (err instanceof Error && /already answered/.test(err.message)) return 'already_answered';
  return 'other';
}

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
  /** The background catch-up of the ledger view under way ({@link catchUpIfFarBehind}). */
  private catchingUp?: Promise<void>;
  private outages?: OutageMonitor;
  private readonly data: DataFileMonitor;
  private connection?: RedisClient;
  /** This participant's own task queue, read for the heartbeat's counts (its ACL allows its own keys only). */
  private queue?: Queue;
  private readonly link: CoordinatorLink;
  private lastTask: { queryId: string; round: number; outcome: 'answered' | 'refused' | 'failed'; at: string } | null = null;
  /** Tasks refused since this worker started, by kind: sent with every heartbeat, counted by the coordinator's /metrics. */
  private readonly refusedByKind = new Map<string, number>();

  constructor(private readonly options: WorkerOptions) {
    this.home = new ParticipantHome(resolve(options.home));
    this.identity = this.home.identity();
    this.schema = this.home.study();
    this.keys = this.home.keys();
    this.coordinatorKey = this.home.coordinatorKey();
    this.reader = this.home.coordinatorEncryptionKey();
    this.pinned = { participantId: this.identity.participantId, studyId: this.identity.studyId, study: this.schema };
    const viewLink = new CoordinatorLink(this.identity.coordinatorUrl, this.identity.participantId, this.keys.signing, WORKER_OUTAGE_RETRY_MS);
    this.view = new LedgerView(this.home.dir, this.coordinatorKey, viewLink, this.identity.studyId);
    this.journal = new Journal(this.home.dir);
    this.link = new CoordinatorLink(this.identity.coordinatorUrl, this.identity.participantId, this.keys.signing, 0, 10_000);
    this.logger = options.logger ?? defaultLogger();
    this.data = new DataFileMonitor(this.identity.dataFile, this.schema, this.logger);
  }

  /** This worker's logger, for its process's last lines. */
  get log(): Logger {
    return this.logger;
  }

  get participantId(): string {
    return this.identity.participantId;
  }

  /** Connects to Redis with this participant's own credentials and starts taking tasks. */
  async start(): Promise<void> {
    const { redis } = this.identity;
    const url = this.options.redisUrl ?? redis.url;
    const connection = createRedis(url, { role: 'worker', username: redis.username, password: redis.password });
    this.connection = connection;
    // Redis may be down at start or restart at any time: the connection comes back by itself (libs/queue
    // reconnectBackoff), and the worker says so once per outage, with what to check, not once per retry.
    const checks = `is redis-server running at ${withoutCredentials(url)}? is that the right address (${this.options.redisUrl ? '--redis or CONFIDE_REDIS_URL' : 'the one given at enrollment; --redis or CONFIDE_REDIS_URL override it'})? After a Redis restart the coordinator must be up to re-create this participant's Redis user.`;
    this.outages = new OutageMonitor(this.logger, { what: 'task queue', url, checks }).watch(connection, 'task queue');
    const queue = taskQueueOf(this.identity);
    this.worker = new Worker(queue, (job) => this.process(job), { connection, prefix: redis.prefix, concurrency: 1, autorun: false });
    // process() logs each task's one line; these events only repeat it, for debugging. Each also tells the
    // coordinator the task finished (libs/queue completions.ts): a job id on the one stream it reads for everyone.
    const completions = completionsKey(redis.prefix);
    const notify = (jobId: string | undefined): void => {
      if (jobId) noteFinished(connection, completions, jobId).catch((err: unknown) => this.outages?.error(err, 'completion notice'));
    };
    this.worker.on('failed', (job, err) => {
      this.logger.debug({ jobId: job?.id, reason: err.message }, `job ${job?.id ?? ''} failed: ${err.message}`);
      notify(job?.id);
    });
    this.worker.on('completed', (job) => {
      this.logger.debug({ jobId: job.id }, `job ${job.id ?? ''} completed`);
      notify(job.id);
    });
    this.outages.listen(this.worker, 'task queue');
    this.queue = new Queue(queue, { connection, prefix: redis.prefix });
    // Its errors are the connection's: reported once per outage with the rest, never as raw stack traces.
    this.outages.listen(this.queue, 'task queue');
    // Checked (and logged) before the first task, and again whenever the file changes.
    await this.data.start();
    void this.worker.run();
    await this.worker.waitUntilReady();
    this.logger.info({ participantId: this.identity.participantId, study: this.identity.studyName }, 'worker ready');
    this.startHeartbeat();
  }

  /**
   * Says "still here" to the coordinator at start and every {@link heartbeatMs}: a signed request (POST
   * /v1/participant/heartbeat) with this worker's version, its queue's depth and how long its oldest task has waited,
   * its last task (query, round, outcome) and its refusals by kind. Nothing about the data travels.
   */
  private startHeartbeat(): void {
    const beat = (): void => {
      this.sendHeartbeat(false).catch((err: unknown) => this.logger.debug({ err: (err as Error).message }, 'heartbeat to the coordinator failed'));
    };
    beat();
    this.heartbeat = setInterval(beat, heartbeatMs());
    this.heartbeat.unref();
  }

  private async sendHeartbeat(stopping: boolean): Promise<void> {
    const answer = await this.link.post<{ ledgerSize?: unknown }>('/v1/participant/heartbeat', { version: confideVersion(), queue: await this.queueState(), lastTask: this.lastTask, refused: Object.fromEntries(this.refusedByKind), stopping });
    if (!stopping && typeof answer.ledgerSize === 'number') this.catchUpIfFarBehind(answer.ledgerSize);
  }

  /**
   * Brings this participant's ledger view up to the coordinator's newest signed checkpoint now (checked as every
   * catch-up is), e.g. once after a long absence.
   * @returns the size of the ledger it verified
   * @throws LedgerViewError when the ledger does not verify; CoordinatorRequestError when the coordinator cannot be asked
   */
  async syncLedger(): Promise<number> {
    return (await this.view.catchUp()).size;
  }

  /**
   * Brings the ledger view up to date in the background when it is more than {@link VIEW_CATCH_UP_GAP} entries behind
   * the ledger (after many enrollments, or a long absence): a task carries only a short update (the coordinator sends
   * none for a view further behind), so the view would otherwise catch up during the next task, page by page. The
   * view checks everything it fetches against the signed checkpoint, as always; one catch-up at a time.
   */
  private catchUpIfFarBehind(ledgerSize: number): void {
    if (this.catchingUp || ledgerSize - (this.view.saved()?.size ?? 0) <= VIEW_CATCH_UP_GAP) return;
    // After a jitter of up to one heartbeat period: workers that all learn at once that they are behind (a thousand
    // enrollments, a coordinator back after an outage) do not all ask the coordinator for their pages at once.
    this.catchingUp = new Promise<void>((resolve) => setTimeout(resolve, randomInt(heartbeatMs())).unref())
      .then(() => this.view.catchUp())
      .then((cp) => this.logger.info({ size: cp.size }, `ledger view caught up to ${cp.size} entries`))
      .catch((err: unknown) => this.logger.warn({ err: (err as Error).message }, `ledger view could not catch up: ${(err as Error).message}`))
      .finally(() => (this.catchingUp = undefined));
  }

  /** This participant's queue as BullMQ counts it, or null when Redis does not answer (the heartbeat goes anyway). */
  private async queueState(): Promise<{ waiting: number; active: number; delayed: number; oldestWaitingMs: number | null } | null> {
    if (!this.queue || this.connection?.status !== 'ready') return null;
    try {
      const { waiting, active, delayed, oldestWaitingMs } = await countTasks(this.queue);
      return { waiting, active, delayed, oldestWaitingMs };
    } catch {
      return null;
    }
  }

  /**
   * Finishes the task in hand, then disconnects (SIGTERM drains). Draining needs Redis: when it does not answer
   * within the grace period, the connection is dropped instead (a task in hand is delivered again, and answered
   * from what this participant stored).
   */
  async stop(): Promise<void> {
    clearInterval(this.heartbeat);
    // The last heartbeat says this worker is stopping, so it shows offline at once; a coordinator that does not
    // answer in time is not waited for (it sees the worker offline when its heartbeats stop).
    if (this.heartbeat) await settledWithin(this.sendHeartbeat(true), GOODBYE_MS);
    this.refill?.abort();
    for (const pool of this.pools.values()) pool.clear();
    this.outages?.stop();
    this.data.stop();
    const drained = (async () => {
      await this.worker?.close();
      await this.queue?.close();
      await this.worker?.disconnect();
    })();
    if (await settledWithin(drained, DRAIN_GRACE_MS)) return drained;
    this.logger.warn({ graceMs: DRAIN_GRACE_MS, stillOpen: this.stillOpen() }, `stopping without draining: Redis did not answer in time; dropping ${this.stillOpen().join(', ')}`);
    this.connection?.disconnect();
    await settledWithin(drained, 1_500);
  }

  /** What a stop has not closed yet, for the line logged if it outlasts its deadline. */
  stillOpen(): string[] {
    const c = this.connection;
    return c && c.status !== 'end' ? [`task queue Redis connection (${c.status})`] : [];
  }

  /**
   * One task: validate, authorise, compute, answer. Permanent refusals are UnrecoverableError so BullMQ does not
   * retry; each one names its reason, which the coordinator records and this participant's journal keeps.
   */
  async process(job: Job): Promise<Answer> {
    let task;
    try {
      task = await openDispatchedTask(job.data, { coordinatorKey: this.coordinatorKey, participantId: this.identity.participantId, studyId: this.identity.studyId }, (hash) => this.fetchPart(hash));
      if (job.id !== taskJobId(task.queryId, roundOf(task.kind), this.identity.participantId)) throw new UnrecoverableError('task rejected: job id does not match the signed task');
    } catch (err) {
      const refusal = err instanceof TaskRejected ? new UnrecoverableError(`task rejected: ${err.message}`) : err;
      const reason = refusal instanceof Error ? refusal.message : String(refusal);
      const outcome = refusal instanceof UnrecoverableError ? 'refused' : 'failed';
      this.logTask({ queryId: task?.queryId ?? null, jobId: job.id ?? null, round: task ? roundOf(task.kind) : null, task: task?.kind ?? null, query: task ? describeQuery(task.query) : null, submittedBy: null, records: null, matched: null, outcome, reason, details: null }, 'task_rejected');
      throw refusal;
    }
    const round = roundOf(task.kind);
    let facts: LedgerFacts | null = null;
    const note: TaskNote = { records: null, matched: null, details: null };
    try {
      this.refill?.abort();
      const stored = this.home.readAnswer<Answer | { answer: Answer }>(task.queryId, round);
      // A redelivered task gets the answer already given (and already authorised), never a fresh sharing.
      if (stored && round === 1) {
        this.logTask(this.report(task, job, 'answered', null, null, note));
        return stored as Answer;
      }
      facts = await this.authorize(task);
      const answer = task.kind === TASK.paillierContribute ? await this.contributePaillier(task, note) : task.kind === TASK.shamirRound1 ? await this.round1(task, note) : this.round2(task);
      this.record(task, 'answered', null, facts, note);
      this.logTask(this.report(task, job, 'answered', null, facts, note));
      return answer;
    } catch (err) {
      const refusal = this.refusal(err, note);
      const failure = refusal ?? this.retryable(err, note);
      this.record(task, refusal ? 'refused' : 'failed', failure.message, facts, note);
      this.logTask(this.report(task, job, refusal ? 'refused' : 'failed', failure.message, facts, note), note.refusal);
      throw failure;
    }
  }

  /**
   * A shared task part (libs/queue task-refs.ts) from Redis, over this participant's own connection: its ACL lets it
   * GET its study's parts and nothing else. Checked against its hash by the caller, so nothing is trusted from Redis.
   */
  private async fetchPart(hash: string): Promise<string | null> {
    if (!this.connection) throw new Error('the worker is not connected to Redis');
    return this.connection.get(taskPartKey(this.identity.redis.prefix, this.identity.studyId, hash));
  }

  private report(task: TaskPayload, job: Job, outcome: TaskReport['outcome'], reason: string | null, facts: LedgerFacts | null, note: TaskNote): TaskReport {
    return {
      queryId: task.queryId,
      jobId: job.id ?? null,
      round: roundOf(task.kind),
      task: task.kind,
      query: describeQuery(task.query),
      submittedBy: facts?.submittedBy ?? null,
      records: note.records,
      matched: note.matched,
      outcome,
      reason,
      details: note.details,
    };
  }

  /** The task's one log line (task-line.ts): what was asked, by whom, how many records, and the outcome. */
  private logTask(report: TaskReport, refusal?: string): void {
    const level = report.outcome === 'answered' ? 'info' : report.outcome === 'refused' ? 'warn' : 'error';
    this.logger[level](taskFields(report), taskSentence(report));
    if (report.queryId !== null && report.round !== null) this.lastTask = { queryId: report.queryId, round: report.round, outcome: report.outcome, at: new Date().toISOString() };
    if (report.outcome === 'refused') {
      const kind = refusal ?? 'other';
      this.refusedByKind.set(kind, (this.refusedByKind.get(kind) ?? 0) + 1);
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
    // The evidence's checkpoint was verified by openEvidence with the same pinned key: not verified twice.
    await this.view.catchUp({ note: evidence.note, checkpoint: evidence.checkpoint }, task.view);
    checkStudyView(task.queryId, task.plan.participants, facts, this.view.studyIndex(), this.view.queryEntries(task.queryId));
    return facts;
  }

  /** The UnrecoverableError a refusal becomes, or undefined for an error a retry may cure. */
  private refusal(err: unknown, note: TaskNote): UnrecoverableError | undefined {
    note.refusal = refusalKind(err, note.refusal);
    if (err instanceof UnrecoverableError) return err;
    if (err instanceof TaskRefusal || err instanceof LedgerViewError) return new UnrecoverableError(`task rejected: ${err.message}`);
    // The coordinator could not prove the checkpoint extends the saved one (e.g. a size its ledger never had).
    if (err instanceof CoordinatorRequestError && err.status >= 400 && err.status < 500) {
      return new UnrecoverableError(`task rejected: the coordinator cannot prove the task's checkpoint against the one this participant saved: ${err.message}`);
    }
    if (err instanceof ProtocolError) return new UnrecoverableError(err.message);
    if (err instanceof QueryError) return new UnrecoverableError(`query refused locally: ${err.message}`);
    if (err instanceof DataFileRefusal) {
      // The details name the file, rows and cells: they stay in this machine's log, never in Redis.
      note.details = err.details;
      return new UnrecoverableError(err.message);
    }
    return undefined;
  }

  /**
   * The error BullMQ records (and the coordinator reads) for a failure a retry may cure. A file system error's
   * message names a local path (the home's state files), so it goes to this machine's log and the coordinator
   * gets its code only.
   */
  private retryable(err: unknown, note: TaskNote): Error {
    const code = (err as NodeJS.ErrnoException | null)?.code;
    if (typeof code === 'string' && FS_SYSCALLS.has((err as NodeJS.ErrnoException).syscall ?? '')) {
      note.details = (err as Error).message;
      return new Error(`local file system error (${code}); see the participant's log`, { cause: err });
    }
    return err instanceof Error ? err : new Error(String(err));
  }

  private record(task: TaskPayload, outcome: 'answered' | 'refused' | 'failed', reason: string | null, facts: LedgerFacts | null, note: TaskNote): void {
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
      records: note.records,
      matched: note.matched,
    });
  }

  /** The local aggregate of a task's query over this participant's CSV, checked against the declared record count. */
  private async localAggregate(query: TaskOf<typeof TASK.shamirRound1>['query'], note: TaskNote) {
    const compiled = compileQuery(this.schema, query as unknown as QuerySpec);
    // Refused while the last check of the file failed; the check is redone first if the file changed.
    await this.data.assertUsable();
    const local = await this.readLocal(compiled);
    note.records = local.records;
    note.matched = local.matched;
    if (local.records > this.identity.maxRecords) {
      note.refusal = 'max_records';
      local.vector.fill(0n);
      throw new UnrecoverableError(`local data has more records than declared at enrollment (${this.identity.maxRecords}); raise it with 'confide participant update --max-records N'`);
    }
    return { compiled, local };
  }

  /**
   * The aggregate over the file as it is now. The file can still change between the check and this read: a
   * problem found here becomes the same refusal as a failed check, never the reader's error, whose message
   * names the file's path (ENOENT … open '/…/hospital-1.csv') or its cells.
   * @throws DataFileRefusal
   */
  private async readLocal(compiled: ReturnType<typeof compileQuery>) {
    try {
      return await aggregateLocal(compiled, readRecordsFromFile(this.identity.dataFile, this.schema));
    } catch (err) {
      if (err instanceof DataValidationError) {
        const problems = describeProblems({ ok: false, problems: err.issues.map((i) => ({ line: i.line, column: i.column ?? null, message: i.message, fix: i.fix ?? '' })), truncated: err.truncated, records: null, fields: null });
        throw new DataFileRefusal(DataFileRefusal.INVALID, `data file ${this.identity.dataFile}: ${problems.join('; ')}`);
      }
      const code = (err as NodeJS.ErrnoException | null)?.code;
      if (typeof code === 'string' && code.startsWith('E')) throw new DataFileRefusal(DataFileRefusal.UNREADABLE, `data file ${this.identity.dataFile}: ${(err as Error).message}`);
      throw err;
    }
  }

  /**
   * Paillier's one round (DESIGN.md "Protocol paillier"): validates the researcher's key and the packing layout it
   * implies (recomputed here from the plan, never taken from the coordinator), packs and encrypts the local
   * aggregate with precomputed r^n values, signs, and answers. The worker may exit right after: nothing more is
   * asked of it for this query.
   */
  private async contributePaillier(task: TaskOf<typeof TASK.paillierContribute>, note: TaskNote): Promise<Answer> {
    if (BigInt(this.identity.maxRecords) > BigInt(task.plan.maxRecords)) {
      throw new UnrecoverableError(`task rejected: the plan sizes slots for ${task.plan.maxRecords} records, this participant declared ${this.identity.maxRecords}`);
    }
    const { compiled, local } = await this.localAggregate(task.query, note);
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

  private async round1(task: TaskOf<typeof TASK.shamirRound1>, note: TaskNote): Promise<Answer> {
    const { local } = await this.localAggregate(task.query, note);
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
