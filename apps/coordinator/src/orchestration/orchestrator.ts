import { createHash } from 'node:crypto';
import { Inject, Injectable, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import { Job, Queue, QueueEvents, Worker } from 'bullmq';
import { canonicalJson, importPublicKeyBase64Url, thresholdVerificationFromJson, type KeyPair } from '@confide/crypto';
import { verifyCheckpoint } from '@confide/ledger';
import {
  addEncryptedNoise,
  bundleHash,
  clampNoisyTotals,
  dpNoise,
  effectivePrivacy,
  privacyReport,
  suppress,
  type CompiledQuery,
  type PrivacySettings,
  paillierContext,
  planPaillier,
  verifyPostedDecryption,
  aggregateHash,
  checkPostedPartials,
  combineCustodianPartials,
  parsePostedPartials,
  unpackTotals,
  type AggregateBundle,
  type EncryptedNoise,
  type PostedPartials,
  type PaillierDecryption,
  type PaillierPlan,
  closeRound1,
  committeeSeed,
  deepFreeze,
  compileQuery,
  deliveriesFor,
  deriveResults,
  ENTRY,
  entryKey,
  finalizeShamir,
  ledgerValue,
  paillierPlanHash,
  toStudySchemaJson,
  planHash,
  planShamir,
  ProtocolError,
  queryHash,
  verifyRound1Bundle,
  type LedgerEvidence,
  type ViewUpdate,
  type KeyDirectory,
  type QuerySpec,
  type Round1Bundle,
  type Round1Closed,
  type ShamirPlan,
  type StudySchema,
  aggregatingRound,
  closedRound,
  NONCE_ROUND,
  openRound,
  roundSpec,
  run,
  step,
  sweepAction,
  type Refusal,
  type RoundEffect,
  type RoundEvent,
  type RoundNumber,
  type Transition,
} from '@confide/protocol';
import {
  AGGREGATE,
  AGGREGATION_QUEUE,
  aggregationJobId,
  aggregationResultSchema,
  parseAggregationJobId,
  roundOf,
  answerSchemas,
  CompletedEntries,
  completedEntries,
  CompletionReader,
  completionsKey,
  eventsKey,
  groupFinished,
  readOutcome,
  type JobOutcome,
  isRedisOutage,
  openAggregation,
  type OutageMonitor,
  RedisUnavailableError,
  signAggregation,
  CONTROL,
  CONTROL_QUEUE,
  controlJobSchema,
  deadlineJobId,
  participantQueue,
  provisionParticipantUser,
  revokeParticipantUser,
  signTaskRefs,
  taskPartKey,
  TASK,
  taskJobId,
  type DirectoryEntry,
  type RedisClient,
  type TaskPayload,
  type TaskQuery,
} from '@confide/queue';
import type { CoordinatorConfig } from '../config';
import type { Logger } from '../logging';
import { isDatabaseOutage } from '../db/database';
import type { Dispatch, Participant, TaskPart } from '../db/schema';
import { Repositories, type RepositorySet } from '../storage';
import type { Dependencies } from '../health/dependencies';
import { CONFIG, COORDINATOR_ENCRYPTION_KEY, COORDINATOR_KEY, DEPENDENCIES, LOGGER, REDIS } from '../tokens';
import { QueryRefusal } from './errors';
import { Failpoints } from './failpoints';
import { LeaseKeeper, LeaseLostError } from './leases';
import { closedMembersColumn, dispatchPayloadColumn, paillierOptionsColumn, paillierRound1ClosedColumn, partialsColumn, planColumn, readColumn, readQuerySpec, readStudySchema, shamirRound1ClosedColumn, type PaillierClosed } from '../db/columns';

/** The queue states /metrics reports depths of. */
const QUEUE_STATES = ['waiting', 'active', 'delayed'] as const;
type QueueState = (typeof QUEUE_STATES)[number];

/** How often the timer reads the events streams whole, for answers of decided queries that no listener saw. */
const BACKSTOP_MS = 5 * 60_000;

/** The most ledger entries a task's view update spans ({@link Orchestrator.prepareTasks}); a view further behind is not sent. */
const VIEW_ENTRIES_INLINE = 64;

/** Key directories of running shamir queries the orchestrator keeps, oldest dropped first. */
const DIRECTORIES_KEPT = 256;

/** Outcomes read that the orchestrator keeps between passes over open rounds, over every round (a few KiB each). */
const OUTCOMES_KEPT = 20_000;

/** The Redis connections the orchestrator uses: one shared for producing, a factory for blocking readers. */
export interface RedisConnections {
  readonly producer: RedisClient;
  /** A new connection with maxRetriesPerRequest: null, for a Worker or QueueEvents (each blocks one), by what uses it. */
  readonly blocking: (name: string) => RedisClient;
  /** Every connection opened so far (the producer and each blocking one), for /health. */
  readonly all?: () => readonly RedisClient[];
  /** Where every connection's and BullMQ object's errors go: one line per outage (libs/queue outage.ts). */
  readonly outages: OutageMonitor;
}

/** An outbox row to send: read back from the database, or just stored, with the signed task it was made from. */
/** A stored task on its way to Redis: the signed task it holds, and the shared parts it names, when at hand. */
type Outgoing = Dispatch & { readonly signed?: unknown; readonly parts?: readonly TaskPart[] };

/** How long a task part stays in Redis past its round's deadline (putParts). */
const PART_KEPT_MS = 3_600_000;

/** How a task job is kept and retried: the same for its first dispatch and every re-dispatch. */
const TASK_JOB_OPTIONS = { attempts: 3, backoff: { type: 'exponential', delay: 1000 }, removeOnComplete: false, removeOnFail: false } as const;

/** What a running query needs to proceed, as stored with it. */
interface QueryContext {
  readonly queryId: string;
  readonly studyId: string;
  readonly spec: QuerySpec;
  readonly schema: StudySchema;
  readonly plan: ShamirPlan | PaillierPlan;
  /** The API key that submitted the query: for paillier with a full key, the only one that gets the aggregate. */
  readonly submittedBy: string | null;
  /** Paillier with custodians: their verification keys (JSON), as query.submitted records them. */
  readonly custodians: Readonly<Record<string, unknown>> | null;
}

/** A shamir query's context (narrowed by its plan). */
type ShamirContext = QueryContext & { readonly plan: ShamirPlan };
type PaillierContext = QueryContext & { readonly plan: PaillierPlan };

interface ParticipantRow {
  readonly id: string;
  readonly encryption_key: string;
  readonly signing_key: string;
}

const entryOf = (p: ParticipantRow): DirectoryEntry => ({ id: p.id, encryptionKey: p.encryption_key, signingKey: p.signing_key });

function keyDirectory(rows: readonly ParticipantRow[]): KeyDirectory {
  return new Map(
    rows.map((p) => [p.id, { encryption: importPublicKeyBase64Url('x25519', p.encryption_key), signing: importPublicKeyBase64Url('ed25519', p.signing_key) }]),
  );
}

/**
 * Runs shamir queries over BullMQ (DESIGN.md "Protocol shamir"): dispatches signed tasks to each
 * participant's own queue with deterministic job ids, schedules each round's deadline as a delayed control
 * job, and advances a round when every expected answer is in or the deadline passed with quorum; otherwise
 * the query fails with its reason. Every step that matters is appended to the event log, idempotently, and
 * round transitions are compare-and-set in the database, so a redelivered job or a second coordinator
 * process cannot double-count or double-log.
 *
 * Crash consistency (DESIGN.md "Storage and services"): each transition's writes (a round's close, its ledger entry,
 * the next round's tasks or the query's outcome) commit in one transaction; effects outside the database (sending
 * tasks, deadline jobs, removing finished jobs) come after it, are idempotent, and are driven again from the
 * database at boot, whenever Redis comes back, and on a timer: tasks from the outbox (`dispatches`), deadlines from
 * the open rounds, cleanup from the decided queries that still have tasks.
 */
@Injectable()
export class Orchestrator implements OnModuleInit, OnModuleDestroy {
  private readonly queues = new Map<string, Queue>();
  /** Workers' notices of finished tasks (libs/queue completions.ts): one blocking read for every participant. */
  private completions?: CompletionReader;
  private control!: Queue;
  private controlWorker!: Worker;
  private aggregation!: Queue;
  private aggregationEvents?: QueueEvents;
  /** Serialises advance() per query inside this process; the database CAS covers other processes. */
  private readonly chains = new Map<string, Promise<void>>();
  /**
   * The advance() queued behind the running one, per query, round and deadline flag: nudges that come while it waits
   * join it (with the participants they name) instead of queueing one more pass each, so N answers arriving at
   * once cost a few passes over the round, not N.
   */
  private readonly waiting = new Map<string, { readonly participants: Set<string>; done: Promise<void> }>();
  /**
   * Final outcomes already read, per `<query>:<round>`, oldest first: an outcome does not change once its job
   * finished, so each pass over a round reads only the jobs not yet finished. Dropped when the query is decided,
   * and the oldest rounds beyond {@link OUTCOMES_KEPT} outcomes in all (a later pass reads theirs again).
   */
  private readonly outcomes = new Map<string, Map<string, JobOutcome>>();
  private outcomesHeld = 0;
  /** Each answer's check, by the answer read (the same object while its outcome stays in {@link outcomes}). */
  private readonly checked = new WeakMap<object, { bundle: Round1Bundle; hash: string } | { refused: string }>();
  /** The key directory of each running shamir query's plan (keys of enrolled participants do not change). */
  private readonly directories = new Map<string, KeyDirectory>();
  private closing = false;
  private failpoints!: Failpoints;
  /** The recovery under way or last run: recoveries run one at a time. */
  private recovery: Promise<void> = Promise.resolve();
  /** The `completed` entries of running queries' jobs, by id as the listeners read them, to delete once decided. */
  private entries!: CompletedEntries;
  /** When the events streams were last read whole ({@link scrubDecidedEntries}). */
  private backstopAt = Date.now();
  /** The queries this replica drives (orchestration/leases.ts): advance, deadlines and the sweep act on these only. */
  private leases!: LeaseKeeper;

  constructor(
    private readonly repos: Repositories,
    @Inject(CONFIG) private readonly config: CoordinatorConfig,
    @Inject(REDIS) private readonly redis: RedisConnections,
    @Inject(COORDINATOR_KEY) private readonly key: KeyPair,
    @Inject(COORDINATOR_ENCRYPTION_KEY) private readonly encryptionKey: KeyPair,
    @Inject(LOGGER) private readonly logger: Logger,
    @Inject(DEPENDENCIES) private readonly dependencies: Dependencies,
  ) {}

  private sweeper?: NodeJS.Timeout;
  private ticking = false;

  async onModuleInit(): Promise<void> {
    this.failpoints = new Failpoints(this.config.failpoint);
    if (this.failpoints.armed.length) this.logger.warn({ failpoints: this.failpoints.armed }, 'TEST ONLY: fault points armed (CONFIDE_FAILPOINT); never set it in production');
    const { replicaId, leaseMs, leaseRenewMs: renewMs } = this.config;
    this.leases = new LeaseKeeper(this.repos, { replicaId, leaseMs, renewMs, reclaimAll: this.repos.database.dialect === 'sqlite' }, this.logger, (taken) => void this.drive(taken));
    this.logger.info({ replica: replicaId, leaseMs }, 'replica started: it drives the queries whose lease it holds');
    const prefix = this.config.queuePrefix;
    this.entries = new CompletedEntries(this.redis.producer);
    const outages = this.redis.outages;
    this.completions = new CompletionReader(
      this.redis.blocking('completion notices'),
      completionsKey(prefix),
      (jobIds) => Promise.resolve(this.finished(jobIds)),
      (err) => this.connectionError(err, 'completion notices'),
    );
    this.control = new Queue(CONTROL_QUEUE, { connection: this.redis.producer, prefix });
    this.controlWorker = new Worker(
      CONTROL_QUEUE,
      async (job: Job) => {
        const data = controlJobSchema.parse(job.data);
        // Any replica may take a deadline job: it drives the query if its lease is free, else the holder's pass does.
        if (!(await this.leases.tryAcquire(data.queryId))) return;
        await this.advance(data.queryId, data.round, job.name === CONTROL.deadline);
      },
      { connection: this.redis.blocking('control worker'), prefix, concurrency: 4 },
    );
    this.controlWorker.on('failed', (job, err) => this.logger.error({ err, jobId: job?.id }, 'control job failed'));
    outages.listen(this.controlWorker, 'control worker');
    this.aggregation = new Queue(AGGREGATION_QUEUE, { connection: this.redis.producer, prefix });
    this.aggregationEvents = new QueueEvents(AGGREGATION_QUEUE, { connection: this.redis.blocking('aggregation events'), prefix });
    const onAggregated = ({ jobId }: { jobId: string }): void => {
      const queryId = parseAggregationJobId(jobId)?.queryId;
      if (queryId) void this.nudge(queryId, 1);
    };
    const aggregationEvents = this.aggregationEvents;
    this.aggregationEvents.on('completed', (args, id) => {
      this.sawCompleted(aggregationEvents, args.jobId, id);
      onAggregated(args);
    });
    this.aggregationEvents.on('failed', onAggregated);
    outages.listen(this.aggregationEvents, 'aggregation events').listen(this.control, 'control queue').listen(this.aggregation, 'aggregation queue');
    await this.leases.start();
    // Whatever was in flight when this process (re)started: users, tasks, deadlines, cleanup, open rounds.
    await this.recover('boot');
    // Redis keeps ACL users in memory only, and may have lost tasks and deadlines: each time it comes back, again.
    // Outcomes read before may be gone with Redis (a restart from an older file, or none): the aggregation worker
    // reads a paillier round's answers from Redis, so what is counted must be what Redis holds now. Forgotten at the
    // instant the connection is back, before any pass can read through it.
    this.redis.producer.on('ready', () => {
      this.outcomes.clear();
      this.outcomesHeld = 0;
    });
    this.redis.producer.on('ready', () => void this.recover('Redis reconnected').catch((err: unknown) => this.logger.error({ err }, 'recovery after a Redis outage failed; the timer retries')));
    // Answers that came in while the database was down nudged nothing: when it is back, look at the open rounds at
    // once rather than at the timer's next turn (up to CONFIDE_SWEEP_SECONDS later).
    this.dependencies.database.whenBack(() => void this.tick());
    // And every query ends by its deadline, whatever happened to its deadline job or to this process.
    this.sweeper = setInterval(() => void this.tick(), this.config.sweepSeconds * 1000);
    this.sweeper.unref();
  }

  /** A Redis error outside a connection's own events: logged once per outage (libs/queue OutageMonitor). */
  private connectionError(err: unknown, what: string): void {
    this.redis.outages.error(err, what);
  }

  /**
   * Brings Redis back in line with the database, from the database alone (idempotent, so it may run any number of
   * times): first every participant's ACL user (Redis keeps them in memory only, and workers retry their login until
   * it is back), then every task of every open round, sent again with its job id (a job still in Redis is left as it
   * is; a worker asked again answers what it stored, so nothing is counted twice), every open round's deadline job,
   * the jobs of decided queries, and a look at every open round. Runs at boot and each time Redis comes back.
   * @throws when the database or Redis fails on the way (at boot that stops the boot; after an outage the timer retries)
   */
  recover(why: string): Promise<void> {
    const run = this.recovery.then(async () => {
      if (this.closing) return;
      const started = Date.now();
      const prefix = this.config.queuePrefix;
      const participants = await this.repos.participants.listAll();
      // The completion notices are read from now on Redis's clock, not from the reader's first read: the tasks re-sent
      // below may be answered before that read, and a notice nobody reads leaves its round to the timer.
      const [seconds, micros] = await this.redis.producer.time();
      const from = `${Number(seconds) * 1000 + Math.floor(Number(micros) / 1000)}-0`;
      for (const p of participants) {
        // A removed participant's user stays gone, even if Redis lost the deletion (a restart from an older file).
        if (p.removed_at !== null) {
          await revokeParticipantUser(this.redis.producer, p.redis_user);
          continue;
        }
        await provisionParticipantUser(this.redis.producer, { username: p.redis_user, passwordHash: p.redis_password_sha256, prefix, queue: participantQueue(p.id), studyId: p.study_id });
      }
      // Started once: after an outage it goes on from the last notice it read.
      this.completions?.start(from);

      const tasks = await this.repos.dispatches.openRounds({ pendingOnly: false });
      await this.sendTasks(tasks, { strict: true });
      const open = await this.repos.rounds.listOpen();
      for (const r of open) await this.scheduleDeadline(r.query_id, r.round, r.deadline);
      const decided = await this.repos.dispatches.decidedQueries();
      for (const queryId of decided) await this.cleanupDecided(queryId);
      // Answers that came in while no listener of this process was reading (before it started, or during an outage).
      await this.scrubDecidedEntries(participants.map((p) => p.id));
      for (const r of open) void this.nudge(r.query_id, r.round);
      this.logger.info({ why, participants: participants.length, tasks: tasks.length, openRounds: open.length, cleaned: decided.length, ms: Date.now() - started }, 'Redis brought in line with the database');
    });
    this.recovery = run.catch(() => undefined);
    return run;
  }

  /**
   * The backstop of the events cleanup: empties these participants' events streams ({@link trimEvents}: answers
   * written while no decision of this process emptied them, e.g. before it started), and reads the aggregation
   * queue's stream whole, deleting the `completed` entries of every query that is decided or unknown here. A running
   * query's aggregation entry stays (its listener's hint) and is handed to {@link CompletedEntries}, so that its
   * decision deletes it although no listener of this process read it.
   * @returns how many aggregation entries it deleted
   */
  private async scrubDecidedEntries(participantIds: readonly string[]): Promise<number> {
    this.backstopAt = Date.now();
    for (let i = 0; i < participantIds.length; i += 1000) await this.trimEvents(participantIds.slice(i, i + 1000));
    const found: [string, Map<string, string[]>][] = [[eventsKey(this.aggregation), await completedEntries(this.redis.producer, this.aggregation)]];
    const statuses = await this.repos.queries.statuses([...new Set(found.flatMap(([, byQuery]) => [...byQuery.keys()]))]);
    let deleted = 0;
    for (const [key, byQuery] of found) {
      const ids: string[] = [];
      for (const [queryId, entryIds] of byQuery) {
        if (statuses.get(queryId) === 'running') deleted += await this.entries.found(key, queryId, entryIds);
        else ids.push(...entryIds);
      }
      if (ids.length > 0) deleted += await this.redis.producer.xdel(key, ...ids);
    }
    if (deleted > 0) this.logger.info({ deleted }, "decided queries' answers deleted from the events streams");
    return deleted;
  }

  /**
   * The timer: sends tasks still waiting in the outbox (a round opened while Redis was down), removes the jobs of
   * decided queries whose cleanup could not run, looks at every open round again (answers that came in while the
   * database was down nudged nothing), then the deadline {@link sweep}.
   */
  private async tick(): Promise<void> {
    // One at a time: the timer and the database's return may both call it.
    if (this.ticking) return;
    this.ticking = true;
    try {
      await this.tickOnce();
    } finally {
      this.ticking = false;
    }
  }

  private async tickOnce(): Promise<void> {
    try {
      if (this.redis.producer.status === 'ready') {
        await this.sendTasks(await this.repos.dispatches.openRounds({ pendingOnly: true }));
        for (const queryId of await this.repos.dispatches.decidedQueries()) await this.cleanupDecided(queryId);
        for (const r of await this.repos.rounds.listOpen()) if (!this.chains.has(r.query_id)) void this.nudge(r.query_id, r.round);
        if (Date.now() - this.backstopAt >= BACKSTOP_MS) await this.scrubDecidedEntries((await this.repos.participants.listAll()).map((p) => p.id));
      }
    } catch (err) {
      if (isDatabaseOutage(err) && this.redis.producer.status === 'ready') this.logger.debug({ err: (err as Error).message }, 'the outbox waits for the database');
      else this.connectionError(err, 'outbox');
    }
    // The database's outage is reported once, by its own watch (health/dependencies.ts); a sweep it stops just waits.
    await this.sweep().catch((err: unknown) => (isDatabaseOutage(err) ? this.logger.debug({ err: (err as Error).message }, 'deadline sweep waits for the database') : this.logger.error({ err }, 'deadline sweep failed')));
  }

  /**
   * After each lease pass: looks at the open rounds of the queries this replica just took (answers may have come in
   * while nobody held them) and of those it holds whose deadline passed (whichever replica took the deadline job).
   */
  private async drive(taken: readonly string[]): Promise<void> {
    if (this.closing) return;
    const now = Date.now();
    try {
      for (const r of await this.repos.rounds.listOpen()) {
        if (!this.leases.holds(r.query_id) || this.chains.has(r.query_id)) continue;
        if (taken.includes(r.query_id) || r.deadline <= now) void this.nudge(r.query_id, r.round, r.deadline <= now);
      }
    } catch (err) {
      if (!isDatabaseOutage(err)) this.logger.error({ err }, 'looking at leased queries failed');
    }
  }

  /**
   * Ends every query that outlived its deadline (DESIGN.md: a deadline ends every query), from the database alone,
   * so it works when a deadline job was lost with Redis, an aggregation job hung, or this process stopped between
   * two writes of a transition. A round still open one grace period (CONFIDE_SWEEP_SECONDS) past its deadline is
   * advanced as its deadline job would; if that does not end it, the query fails. A query whose current round is
   * closed or failed while the query still runs, for longer than the grace period, was left between states: it
   * fails, with that reason in the ledger.
   * @returns the ids of the queries it failed
   */
  async sweep(now = Date.now()): Promise<string[]> {
    const grace = this.config.sweepSeconds * 1000;
    const failed: string[] = [];
    for (const q of await this.repos.queries.listRunning()) {
      if (!this.leases.holds(q.id)) continue;
      const round = await this.repos.rounds.get(q.id, q.current_round);
      const verdict = sweepAction(
        { round: round && { round: round.round, status: round.status, deadline: round.deadline, openedAt: round.opened_at, closedAt: round.closed_at }, currentRound: q.current_round, createdAt: q.created_at },
        now,
        grace,
      );
      if (verdict.action === 'wait') continue;
      if (verdict.action === 'force') {
        await this.nudge(q.id, round!.round, true);
        const after = await this.repos.rounds.get(q.id, round!.round);
        if (after?.status !== 'open') continue;
        await this.fail(q.id, round!.round, verdict.reason, []);
        failed.push(q.id);
      } else if (await this.failLeftBetweenStates(q.id, q.current_round, verdict.reason)) {
        failed.push(q.id);
      }
    }
    return failed;
  }

  /** Fails a query whose current round is not open (so {@link fail}'s round guard does not apply): once, by finish. */
  private async failLeftBetweenStates(queryId: string, round: number, reason: string): Promise<boolean> {
    const now = Date.now();
    const failed = await this.fenced(queryId, async (tx) => {
      const q = await tx.queries.get(queryId);
      if (!q || !(await tx.queries.finish(queryId, { status: 'failed', failure_reason: reason }, now))) return false;
      await tx.events.append(ENTRY.queryFailed, { queryId, round, reason, refusals: [] }, entryKey(ENTRY.queryFailed, queryId), now, q.study_id);
      if (q.protocol === 'paillier') await forgetContributions(tx, queryId);
      return true;
    });
    if (!failed) return false;
    this.logger.warn({ queryId, round, reason }, 'query failed');
    await this.effect('cleanup', () => this.cleanupDecided(queryId));
    return true;
  }

  async onModuleDestroy(): Promise<void> {
    clearInterval(this.sweeper);
    this.closing = true;
    await this.controlWorker?.close();
    await this.completions?.stop();
    await this.aggregationEvents?.close();
    await Promise.all([...this.queues.values()].map((q) => q.close()));
    await this.control?.close();
    await this.aggregation?.close();
    await Promise.allSettled([...this.chains.values()]);
    await this.leases?.stop();
  }

  /**
   * Runs a transition of `queryId` in one transaction that first checks this replica still holds the query's lease
   * with its token (the fencing check): a replica whose lease was taken over commits nothing.
   * @throws LeaseLostError when it no longer holds it
   */
  private fenced<T>(queryId: string, fn: (tx: RepositorySet) => Promise<T>): Promise<T> {
    return this.repos.transaction(async (tx) => {
      await this.leases.fence(tx, queryId);
      return fn(tx);
    });
  }

  /**
   * Tasks waiting, being worked on and delayed (a retry's backoff), summed over these participants' queues, and the
   * same for the aggregation queue: the queue depths /metrics reports. Counts only, from BullMQ's own counters.
   */
  async queueDepths(participantIds: readonly string[]): Promise<{ tasks: Record<QueueState, number>; aggregation: Record<QueueState, number> }> {
    const sum = (counts: readonly Record<string, number>[]): Record<QueueState, number> => {
      const out = { waiting: 0, active: 0, delayed: 0 };
      for (const c of counts) for (const state of QUEUE_STATES) out[state] += c[state] ?? 0;
      return out;
    };
    const tasks = await Promise.all(participantIds.map((pid) => this.queueOf(pid).getJobCounts(...QUEUE_STATES)));
    return { tasks: sum(tasks), aggregation: sum([await this.aggregation.getJobCounts(...QUEUE_STATES)]) };
  }

  /** The task queue of one participant (created once, kept open). */
  private queueOf(participantId: string): Queue {
    let q = this.queues.get(participantId);
    if (!q) {
      q = new Queue(participantQueue(participantId), { connection: this.redis.producer, prefix: this.config.queuePrefix });
      this.redis.outages.listen(q, `queue of ${participantId}`);
      this.queues.set(participantId, q);
    }
    return q;
  }

  /** A listener read a `completed` entry: kept by id for its query's cleanup, or deleted now if that already ran. */
  private sawCompleted(events: QueueEvents, jobId: string, entryId: string): void {
    this.entries.saw(eventsKey(events), jobId, entryId).catch((err: unknown) => this.connectionError(err, 'events scrub'));
  }

  /**
   * A batch of workers' notices (libs/queue completions.ts): each query's round is looked at once for the batch, with
   * the participants that said they finished (a closed round records them as late). A notice is a hint only: what
   * counts is the outcome read from the participant's own queue.
   */
  private finished(jobIds: readonly string[]): void {
    for (const [queryId, rounds] of groupFinished(jobIds)) {
      for (const [round, participants] of rounds) void this.nudge(queryId, round, false, [...participants]);
    }
  }

  /**
   * Plans and starts a paillier query (DESIGN.md "Protocol paillier"): one task per enrolled participant carrying
   * the researcher's public key, and the contribution deadline. The key and the packing it implies are checked
   * here first, so a query that cannot fit is refused before anything is dispatched.
   * @throws ProtocolError for a bad key, too few participants, or slots that do not fit the key
   */
  async startPaillier(input: { queryId: string; studyId: string; spec: QuerySpec; schema: StudySchema; publicKey: { n: string }; deadlineSeconds?: number; submittedIndex: number; submittedBy: string }): Promise<PaillierPlan> {
    const participants = await this.enrolledInLedger(input.studyId);
    const compiled = compileQuery(input.schema, input.spec);
    const now = Date.now();
    const plan = planPaillier({
      jobId: input.queryId,
      queryHash: queryHash(input.spec),
      compiled,
      publicKey: input.publicKey,
      participants: participants.map((p) => p.id),
      minParticipants: privacyOf(input.spec, input.schema).minParticipants,
      maxRecords: participants.reduce((m, p) => (BigInt(p.max_records) > m ? BigInt(p.max_records) : m), 0n),
      deadline: now + (input.deadlineSeconds ?? this.config.round1Seconds) * 1000,
      dp: privacyOf(input.spec, input.schema).dp,
    });
    // The plan, its ledger entry, the round and its tasks commit together; the tasks then go to Redis (or wait in the
    // outbox while Redis is down: the query is accepted, and dispatched when Redis returns).
    await this.leases.claim(input.queryId);
    const tasks = await this.fenced(input.queryId, async (tx) => {
      await tx.queries.setPlan(input.queryId, JSON.stringify(plan));
      const plannedIndex = await tx.events.append(
      ENTRY.paillierPlanned,
      {
        queryId: input.queryId,
        studyId: input.studyId,
        participants: plan.participants,
        publicKey: plan.publicKey,
        maxRecords: plan.maxRecords,
        deadline: plan.deadline,
        planHash: paillierPlanHash(plan),
      },
      entryKey(ENTRY.paillierPlanned, input.queryId),
      now,
      input.studyId,
    );
      this.failpoints.hit('plan.appended');
      await tx.rounds.open({ query_id: input.queryId, round: 1, status: 'open', opened_at: now, deadline: plan.deadline, expected: plan.participants.length });
      // The study's settings, and the researcher's key binding that the query's signature is checked against.
      const more = await tx.events.indicesOf([entryKey(ENTRY.studyCreated, input.studyId), entryKey(ENTRY.apiKeyCreated, input.submittedBy)]);
      const evidence = await tx.events.evidence([input.submittedIndex, plannedIndex, ...more.values()]);
      // One query object for every task: the round's tasks share it (libs/queue signTaskRefs).
      const query = taskQuery(input.spec);
      return this.prepareTasks(tx, input.studyId, evidence, participants, (pid) => ({
      kind: TASK.paillierContribute,
      queryId: input.queryId,
      studyId: input.studyId,
      participantId: pid,
      issuedAt: now,
      deadline: plan.deadline,
      plan,
      query,
      evidence,
    }));
    });
    this.failpoints.hit('plan.committed');
    await this.sendTasks(tasks);
    await this.effect('deadline', () => this.scheduleDeadline(input.queryId, 1, plan.deadline));
    return plan;
  }

  /**
   * A submitted shamir query waits for its researcher's committee nonce (round 0), until the round-1 deadline: the
   * nonce is revealed only once its commitment is in the signed ledger, so the committee seed is a coin toss between
   * the coordinator (which signed the root) and the researcher (which fixed the nonce).
   */
  async awaitNonce(queryId: string): Promise<void> {
    const now = Date.now();
    const deadline = now + this.config.round1Seconds * 1000;
    await this.leases.claim(queryId);
    await this.repos.rounds.open({ query_id: queryId, round: 0, status: 'open', opened_at: now, deadline, expected: 1 });
    await this.effect('deadline', () => this.scheduleDeadline(queryId, 0, deadline));
  }

  /**
   * Plans and starts a shamir query once its researcher revealed the committee nonce: the seed from the nonce and the
   * ledger root right after `query.submitted` (libs/protocol committeeSeed), the committee drawn from it over every
   * enrolled participant, `committee.drawn` with the plan's hash, then one round-1 task per participant carrying the
   * ledger evidence each participant checks before it computes anything (libs/protocol authorizeShamirRound1).
   * @throws ProtocolError when the plan cannot be made (too few participants, a threshold below the floor); QueryRefusal
   *   not_awaiting_nonce when the query is no longer waiting for its nonce
   */
  async start(input: {
    queryId: string;
    studyId: string;
    spec: QuerySpec;
    schema: StudySchema;
    threshold?: number;
    deadlineSeconds?: number;
    nonce: string;
    submittedIndex: number;
  }): Promise<ShamirPlan> {
    const participants = await this.enrolledInLedger(input.studyId);
    const compiled = compileQuery(input.schema, input.spec);
    const now = Date.now();
    const round1 = (input.deadlineSeconds ?? this.config.round1Seconds) * 1000;
    const seedTreeSize = input.submittedIndex + 1;
    const plan = planShamir({
      jobId: input.queryId,
      queryHash: queryHash(input.spec),
      vectorLength: compiled.vectorLength,
      participants: participants.map((p) => p.id),
      minParticipants: privacyOf(input.spec, input.schema).minParticipants,
      seed: committeeSeed(await this.repos.events.rootAt(seedTreeSize), input.nonce),
      deadlines: { round1: now + round1, round2: now + round1 + this.config.round2Seconds * 1000 },
      threshold: input.threshold,
      minThreshold: input.schema.minThreshold ?? undefined,
    });
    // Round 0's close, the plan, `committee.drawn`, round 1 and its tasks commit together; then the tasks go out.
    await this.leases.claim(input.queryId);
    const tasks = await this.fenced(input.queryId, async (tx) => {
      if (!(await tx.rounds.close(input.queryId, 0, JSON.stringify({ nonce: input.nonce }), now))) {
        throw new QueryRefusal('not_awaiting_nonce', `query ${input.queryId} is not waiting for a committee nonce`);
      }
      await tx.queries.setPlan(input.queryId, JSON.stringify(plan));
      const drawnIndex = await tx.events.append(
      ENTRY.committeeDrawn,
      {
        queryId: input.queryId,
        studyId: input.studyId,
        seed: plan.seed,
        nonce: input.nonce,
        seedTreeSize,
        committee: plan.committee,
        threshold: plan.threshold,
        participants: plan.participants,
        planHash: planHash(plan),
      },
      entryKey(ENTRY.committeeDrawn, input.queryId),
      now,
      input.studyId,
    );
      this.failpoints.hit('plan.appended');
      await tx.rounds.open({ query_id: input.queryId, round: 1, status: 'open', opened_at: now, deadline: plan.deadlines.round1, expected: plan.participants.length });
      await tx.queries.setRound(input.queryId, 1);
      const indices = await tx.events.indicesOf([entryKey(ENTRY.studyCreated, input.studyId), ...plan.committee.map((m) => entryKey(ENTRY.participantEnrolled, m))]);
      const evidence = await tx.events.evidence([input.submittedIndex, drawnIndex, ...indices.values()], seedTreeSize);
      const committee = participants.filter((p) => plan.committee.includes(p.id)).map(entryOf);
      // One query object for every task: the round's tasks share it (libs/queue signTaskRefs).
      const query = taskQuery(input.spec);
      return this.prepareTasks(tx, input.studyId, evidence, participants, (pid) => ({
      kind: TASK.shamirRound1,
      queryId: input.queryId,
      studyId: input.studyId,
      participantId: pid,
      issuedAt: now,
      deadline: plan.deadlines.round1,
      plan,
      query,
      directory: committee,
      evidence,
    }));
    });
    this.failpoints.hit('plan.committed');
    await this.effect('deadline', () => this.control.remove(deadlineJobId(input.queryId, 0)));
    await this.sendTasks(tasks);
    await this.effect('deadline', () => this.scheduleDeadline(input.queryId, 1, plan.deadlines.round1));
    return plan;
  }

  /**
   * The study's participants whose enrollment is in the ledger. A participant's row is written just before its
   * `participant.enrolled` entry; a plan made in between would list someone participants cannot find in their view
   * of the study, and they would refuse it (libs/protocol checkStudyView). Such a participant joins the next query.
   */
  private async enrolledInLedger(studyId: string) {
    const rows = await this.repos.participants.listByStudy(studyId, { active: true });
    const logged = await this.repos.events.indicesOf(rows.map((r) => entryKey(ENTRY.participantEnrolled, r.id)));
    return rows.filter((r) => logged.has(entryKey(ENTRY.participantEnrolled, r.id)));
  }

  /** Fails a query that could not start (its plan was refused, or dispatching failed), at the round it reached. */
  async failUnstarted(queryId: string, reason: string): Promise<void> {
    const q = await this.repos.queries.get(queryId);
    if (q?.status !== 'running') return;
    await this.leases.claim(queryId);
    await this.fail(queryId, q.current_round, reason, []);
  }

  /**
   * Signs one task for each of `to`, all resting on the same ledger evidence, and stores them in the outbox inside
   * the transition's transaction; {@link sendTasks} puts them in Redis once it commits. They go by reference (libs/queue
   * task-refs.ts): what they share is stored once, as the round's parts. Each task also brings its
   * participant's view of the ledger up to the evidence's checkpoint from where the coordinator believes it stands
   * (the checkpoint of the last task it sent it: libs/protocol ViewUpdate), so a participant that answered that task
   * checks consistency without a request of its own; one that did not asks over HTTP. Views starting at the same
   * size share one update.
   * @returns the stored tasks, each with the signed task it holds (so sending them now does not read it back)
   */
  private async prepareTasks(
    tx: RepositorySet,
    studyId: string,
    evidence: LedgerEvidence,
    to: readonly { id: string; ledger_size: number | null }[],
    task: (participantId: string) => TaskPayload,
  ): Promise<Outgoing[]> {
    const { size } = verifyCheckpoint(evidence.checkpoint, this.key.publicKey, this.repos.origin);
    // Where each view stands now, inside the transaction: the rows passed in were read before it, and another
    // query's tasks may have moved them on since (a stale start makes an update the participant cannot apply, and
    // it then asks over HTTP).
    const current = new Map((await tx.participants.listByStudy(studyId)).map((p) => [p.id, p.ledger_size]));
    const updates = new Map<number, ViewUpdate>();
    const now = Date.now();
    const payloads: TaskPayload[] = [];
    for (const p of to) {
      let view: ViewUpdate | undefined;
      const from = current.has(p.id) ? current.get(p.id)! : p.ledger_size;
      // A view far behind (a worker back after a long absence, every worker after a thousand enrollments) catches
      // up over HTTP by itself, a page at a time: its update here would be the whole gap's entries with a proof each,
      // made inside this transaction for every such participant (O(N²) for N new participants).
      if (from !== null && from >= 1 && from < size && size - from <= VIEW_ENTRIES_INLINE) {
        view = updates.get(from) ?? (await tx.events.viewUpdate(studyId, from, size));
        updates.set(from, view);
      }
      const payload = task(p.id);
      payloads.push(view ? { ...payload, view } : payload);
    }
    // By reference: the plan, query, evidence and views they share are encoded, hashed, stored and sent once a
    // round, and each task is its own few fields and their hashes (libs/queue task-refs.ts).
    const { refs, parts } = signTaskRefs(this.key, payloads);
    const deadline = payloads.reduce((latest, p) => Math.max(latest, p.deadline), 0);
    const queryId = payloads[0]?.queryId;
    const stored: TaskPart[] = queryId === undefined ? [] : [...parts].map(([hash, body]) => ({ query_id: queryId, hash, study_id: studyId, body, expires_at: deadline }));
    const rows: Dispatch[] = refs.map((signed, i) => ({
      query_id: signed.ref.queryId,
      round: roundOf(signed.ref.kind),
      participant_id: to[i]!.id,
      job_name: signed.ref.kind,
      payload_json: JSON.stringify(signed),
      created_at: now,
      dispatched_at: null,
    }));
    await tx.dispatches.storeParts(stored);
    await tx.dispatches.store(rows);
    await tx.participants.setLedgerSize(
      to.map((p) => p.id),
      size,
    );
    return rows.map((row, i) => ({ ...row, signed: refs[i], parts: stored }));
  }

  /**
   * Adds stored tasks to their participants' queues, each under its deterministic job id, so sending one again is
   * harmless (BullMQ keeps the job it has), and records which went in. While Redis is down they stay in the outbox:
   * the timer and the next recovery send them. `strict` (a recovery) rethrows the first failure instead.
   */
  private async sendTasks(rows: readonly Outgoing[], { strict = false } = {}): Promise<void> {
    if (rows.length === 0) return;
    // A BullMQ queue first used while its connection is down waits for it without a timeout: not in a request.
    if (this.redis.producer.status !== 'ready') {
      if (strict) throw new RedisUnavailableError(`Redis is not available (connection ${this.redis.producer.status})`);
      this.logger.warn({ waiting: rows.length }, 'Redis is unavailable: tasks wait in the outbox and are sent when it returns');
      return;
    }
    try {
      await this.putParts(rows);
    } catch (err) {
      // No task goes without its parts: all of them wait in the outbox for the timer or the recovery.
      if (strict) throw err;
      if (isRedisOutage(err)) this.logger.warn({ waiting: rows.length }, 'Redis is unavailable: tasks wait in the outbox and are sent when it returns');
      else this.logger.error({ err }, 'putting task parts into Redis failed; the timer retries');
      return;
    }
    const sent = new Map<string, { queryId: string; round: number; ids: string[] }>();
    const results = await Promise.allSettled(
      rows.map(async (row) => {
        await this.queueOf(row.participant_id).add(row.job_name, row.signed ?? readColumn(dispatchPayloadColumn, row.payload_json, `dispatches.payload_json of query ${row.query_id} round ${row.round} participant ${row.participant_id}`), { jobId: taskJobId(row.query_id, row.round, row.participant_id), ...TASK_JOB_OPTIONS });
        const key = `${row.query_id}:${row.round}`;
        const group = sent.get(key) ?? { queryId: row.query_id, round: row.round, ids: [] };
        group.ids.push(row.participant_id);
        sent.set(key, group);
      }),
    );
    const now = Date.now();
    for (const g of sent.values()) await this.repos.dispatches.markDispatched(g.queryId, g.round, g.ids, now);
    const failure = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (!failure) return;
    if (strict) throw failure.reason;
    if (isRedisOutage(failure.reason)) this.logger.warn({ waiting: results.filter((r) => r.status === 'rejected').length }, 'Redis is unavailable: tasks wait in the outbox and are sent when it returns');
    else this.logger.error({ err: failure.reason }, 'sending tasks failed; the timer retries');
  }

  /**
   * Puts the shared parts these tasks name into Redis (libs/queue task-refs.ts), before the tasks, so a worker that
   * takes a task finds them: each under its hash, kept an hour past its round's deadline (a worker retrying late still
   * finds it; they are public to the study and go by themselves). Parts not at hand (a task sent again from the outbox)
   * are read from the database. Idempotent: the key is the content's hash.
   */
  private async putParts(rows: readonly Outgoing[]): Promise<void> {
    const parts = new Map<string, TaskPart>();
    const unread = new Set<string>();
    for (const row of rows) {
      if (row.parts) for (const p of row.parts) parts.set(`${p.query_id}:${p.hash}`, p);
      else unread.add(row.query_id);
    }
    for (const p of await this.repos.dispatches.partsOf([...unread])) parts.set(`${p.query_id}:${p.hash}`, p);
    const now = Date.now();
    await Promise.all([...parts.values()].map((p) => this.redis.producer.set(taskPartKey(this.config.queuePrefix, p.study_id, p.hash), p.body, 'PX', Math.max(0, p.expires_at - now) + PART_KEPT_MS)));
  }

  /**
   * Runs an effect outside the database after a transition committed. It must not undo or fail the transition: an
   * outage is logged (the recovery redoes it from the database when Redis returns), any other error too.
   */
  private async effect(what: string, run: () => Promise<unknown>): Promise<void> {
    try {
      if (this.redis.producer.status !== 'ready') throw new RedisUnavailableError(`Redis is not available (connection ${this.redis.producer.status})`);
      await run();
    } catch (err) {
      if (isRedisOutage(err)) this.logger.warn({ what }, `Redis is unavailable: ${what} is redone when it returns`);
      else this.logger.error({ err, what }, `${what} failed after the transition committed; the timer retries`);
    }
  }

  private async scheduleDeadline(queryId: string, round: number, deadline: number): Promise<void> {
    await this.control.add(CONTROL.deadline, { queryId, round }, { jobId: deadlineJobId(queryId, round), delay: Math.max(0, deadline - Date.now()), removeOnComplete: true, removeOnFail: 100 });
  }

  /**
   * Runs advance() after any advance already running for the same query (never two at once here). A nudge that finds
   * one already waiting for the same round joins it ({@link waiting}).
   */
  private nudge(queryId: string, round: number, deadlinePassed = false, participantIds: readonly string[] = []): Promise<void> {
    const key = `${queryId}:${round}:${deadlinePassed ? 'deadline' : ''}`;
    const queued = this.waiting.get(key);
    if (queued) {
      for (const id of participantIds) queued.participants.add(id);
      return queued.done;
    }
    const entry = { participants: new Set(participantIds), done: Promise.resolve() };
    this.waiting.set(key, entry);
    const previous = this.chains.get(queryId) ?? Promise.resolve();
    const next = previous
      .then(() => {
        // From here on, a nudge queues another pass: this one may read the round before that nudge's answer landed.
        this.waiting.delete(key);
        return this.advance(queryId, round, deadlinePassed, [...entry.participants]);
      })
      // A lost lease was logged by the fencing check: the new holder drives the query.
      .catch((err: unknown) => (err instanceof LeaseLostError ? undefined : this.logger.error({ err, queryId, round }, 'advancing a round failed')));
    entry.done = next;
    this.chains.set(queryId, next);
    void next.finally(() => {
      if (this.chains.get(queryId) === next) this.chains.delete(queryId);
    });
    return next;
  }

  private async context(queryId: string): Promise<QueryContext | undefined> {
    const q = await this.repos.queries.get(queryId);
    if (!q || q.status !== 'running' || !q.plan_json) return undefined;
    const study = await this.repos.studies.getById(q.study_id);
    if (!study) return undefined;
    return {
      queryId,
      studyId: q.study_id,
      spec: readQuerySpec(q.spec_json, `queries.spec_json of query ${queryId}`),
      schema: readStudySchema(study.schema_json, `studies.schema_json of study ${study.id}`),
      // Frozen: every answer of a pass is checked against it, and its hash is then computed once (libs/protocol frozen.ts).
      plan: deepFreeze(readColumn(planColumn, q.plan_json, `queries.plan_json of query ${queryId}`)),
      submittedBy: q.created_by,
      custodians: q.protocol === 'paillier' && q.options_json ? readColumn(paillierOptionsColumn, q.options_json, `queries.options_json of query ${queryId}`).custodians : null,
    };
  }

  /**
   * Looks at a round: turns what it finds (answers and refusals in the participants' queues, the deadline, the
   * aggregation job's end) into events for the round machine (libs/protocol rounds), and carries out what the machine
   * decides: round 1 then dispatches round 2 to the committee (or hands the aggregate to its key holder); round 2
   * reconstructs and releases the result; a round that cannot go on fails the query. An answer to a round already
   * closed is recorded as late. Safe to call any number of times, from any process.
   */
  async advance(queryId: string, round: number, deadlinePassed: boolean, finishedBy: readonly string[] = []): Promise<void> {
    if (round !== 0 && round !== 1 && round !== 2) return;
    const roundRow = await this.repos.rounds.get(queryId, round);
    if (!roundRow) return;
    if (roundRow.status !== 'open') {
      // An answer after its round closed: recorded as late, by whichever replica reads the notice (the record is
      // appended once, by its key), also once the query is decided and its lease gone.
      if (round === 0 || finishedBy.length === 0) return;
      await this.heardAfterClose(queryId, round, finishedBy, roundRow.closed_json);
      // A late answer of a decided query: its cleanup already emptied the events streams, so this entry goes now.
      if ((await this.repos.queries.get(queryId))?.status !== 'running') await this.effect('events cleanup', () => this.trimEvents(finishedBy));
      return;
    }
    // Only the lease holder drives an open round; a notice for another replica's query is its to act on (it reads
    // the completion stream too).
    if (!this.leases.holds(queryId)) return;
    const pastDeadline = deadlinePassed || Date.now() >= roundRow.deadline;
    if (round === 0) {
      // The nonce itself arrives with the researcher's request (start); here only its deadline can.
      if (pastDeadline) await this.carry(queryId, step(openRound(NONCE_ROUND), { type: 'deadline', round: 0 }), {});
      return;
    }
    const ctx = await this.context(queryId);
    if (!ctx) return;
    if (isPaillier(ctx)) {
      if (round === 1) await this.advancePaillier(ctx, pastDeadline);
      else if (pastDeadline) await this.decryptionDeadline(ctx);
      return;
    }
    if (!isShamir(ctx)) return;
    if (round === 1) await this.advanceRound1(ctx, pastDeadline);
    else await this.advanceRound2(ctx, pastDeadline);
  }

  /**
   * Carries out a round transition's effects in order. A close whose own checks refuse (it returns the reason) goes
   * back to the machine as `refused`, and the failure the machine then decides is carried out in turn.
   * @param handlers what closing and aggregating mean for this round; `failWrites` go into a failure's transaction
   */
  private async carry(
    queryId: string,
    t: Transition,
    handlers: {
      close?: (effect: Extract<RoundEffect, { type: 'close' }>) => Promise<string | undefined>;
      aggregate?: (effect: Extract<RoundEffect, { type: 'aggregate' }>) => Promise<void>;
      failWrites?: (tx: RepositorySet) => Promise<void>;
    },
  ): Promise<void> {
    for (const effect of t.effects) {
      switch (effect.type) {
        case 'fail':
          await this.fail(queryId, effect.round, effect.reason, effect.refused, handlers.failWrites);
          break;
        case 'late':
          await this.recordLate(queryId, effect.round, effect.from);
          break;
        case 'aggregate':
          if (!handlers.aggregate) throw new Error(`round ${t.state.spec.round} of ${queryId} cannot aggregate here`);
          await handlers.aggregate(effect);
          break;
        case 'close': {
          if (!handlers.close) throw new Error(`round ${effect.round} of ${queryId} cannot close here`);
          const refused = await handlers.close(effect);
          if (refused !== undefined) await this.carry(queryId, step(t.state, { type: 'refused', round: effect.round, reason: refused }), handlers);
          break;
        }
        case 'plan':
          throw new Error(`query ${queryId} is planned when its researcher reveals the nonce, not here`);
      }
    }
  }

  /** A participant's task of a round that is no longer open finished: the machine says whether that is late. */
  private async heardAfterClose(queryId: string, round: 1 | 2, participantIds: readonly string[], closedJson: string | null): Promise<void> {
    const q = await this.repos.queries.get(queryId);
    if (!q?.plan_json) return;
    // Read once for every notice of the batch: most name a participant the closing counted (notices of one batch
    // that the round's close had already read), and parsing the plan and the closed set for each was O(N²) a round.
    const closed = closedJson ? readColumn(closedMembersColumn, closedJson, `rounds.closed_json of query ${queryId} round ${round}`) : undefined;
    const counted = [...(closed?.contributors ?? []).map((c) => c.id), ...(closed?.answered ?? [])];
    const state = closedRound(roundSpec(readColumn(planColumn, q.plan_json, `queries.plan_json of query ${queryId}`), round), counted);
    for (const participantId of participantIds) {
      const transition = step(state, { type: 'answer', round, from: participantId });
      if (transition.effects.length) await this.carry(queryId, transition, {});
    }
  }

  /**
   * An answer that finished after its round closed (or the query ended) is not counted: logged, and recorded in
   * the ledger with the participant's own refusal if it refused (e.g. a task that reached it after its deadline).
   */
  private async recordLate(queryId: string, round: RoundNumber, participantId: string): Promise<void> {
    const q = await this.repos.queries.get(queryId);
    const job = await Job.fromId(this.queueOf(participantId), taskJobId(queryId, round, participantId));
    if (!q || !job) return;
    const reason = job.failedReason ? `refused by the participant: ${job.failedReason}` : 'answered after the round closed; not counted';
    this.logger.warn({ queryId, round, participantId, reason }, 'late answer');
    await this.repos.events.append(ENTRY.contributionLate, { queryId, round, participantId, reason }, entryKey(ENTRY.contributionLate, queryId, round, participantId), Date.now(), q.study_id);
    await job.remove().catch(() => undefined);
    // An answer after the decision came after its query's cleanup: its `completed` entry (with the return value) goes
    // too. While the query runs, its entries are still the listeners' hints, and the decision's cleanup takes them.
    if (q.status !== 'running') await this.effect('cleanup', () => this.entries.scrub(queryId));
  }

  /**
   * Paillier's contribution round: once every participant answered or refused, or the deadline passed, the
   * answered set is handed to an aggregation worker (its own process) as one signed job with a deterministic id,
   * so the set is fixed once. When the worker is done, the accepted contributors and rejections go to the ledger,
   * the aggregate ciphertexts are kept for the researcher, and the decryption round opens.
   */
  private async advancePaillier(ctx: PaillierContext, pastDeadline: boolean): Promise<void> {
    const { plan } = ctx;
    const spec = roundSpec(plan, 1);
    const jobId = aggregationJobId(ctx.queryId);
    const existing = await Job.fromId(this.aggregation, jobId);
    if (!existing) {
      const { answers, refusals } = await this.collect(ctx, 1, plan.participants);
      await this.carry(ctx.queryId, run(openRound(spec), observed(1, answers.keys(), refusals, pastDeadline)), { aggregate: (e) => this.queueAggregation(ctx, e.answered) });
      return;
    }
    const state = await existing.getState();
    if (state !== 'completed' && state !== 'failed') return;
    // The job was read before its state: if it finished in between, that snapshot has no return value or
    // failure reason yet. Read it again now that it is known to be finished.
    const finished = await Job.fromId(this.aggregation, jobId);
    if (!finished) return;
    if (state === 'failed') {
      await this.carry(ctx.queryId, step(aggregatingRound(spec), { type: 'refused', round: 1, reason: `aggregation failed: ${finished.failedReason}` }), {});
      return;
    }
    const result = openAggregation(finished.returnvalue, aggregationResultSchema, this.key.publicKey);
    const { refusals } = await this.collect(ctx, 1, plan.participants);
    const merged = new Map([...refusals, ...result.rejected.map((r) => [r.participantId, r.reason] as const)]);
    const refused: Refusal[] = [...merged].map(([participantId, reason]) => ({ participantId, reason }));
    const aggregating = aggregatingRound(
      spec,
      result.contributors.map((c) => c.id),
      refused,
    );
    const recordRejections = async (tx: RepositorySet): Promise<void> => {
      for (const r of result.rejected) {
        await tx.events.append(ENTRY.contributionRejected, { queryId: ctx.queryId, round: 1, participantId: r.participantId, reason: r.reason }, entryKey(ENTRY.contributionRejected, ctx.queryId, 1, r.participantId), Date.now(), ctx.studyId);
      }
    };
    const t = step(aggregating, result.aggregate ? { type: 'aggregated', round: 1 } : { type: 'refused', round: 1, reason: `round 1: ${result.failure ?? 'no aggregate'}` });
    await this.carry(ctx.queryId, t, {
      failWrites: recordRejections,
      close: async (e) => {
        await this.closePaillierRound1(ctx, { ...result, aggregate: result.aggregate! }, e.refused, recordRejections);
        await finished.remove().catch(() => undefined);
        return undefined;
      },
    });
  }

  /** Hands exactly the answered set of a paillier round to one aggregation job (its id fixes the set once). */
  private async queueAggregation(ctx: PaillierContext, answeredIds: readonly string[]): Promise<void> {
    const rows = await this.repos.participants.listByStudy(ctx.studyId);
    const answered = rows.filter((r) => answeredIds.includes(r.id)).map((r) => ({ id: r.id, signingKey: r.signing_key }));
    const job = signAggregation(this.key, { queryId: ctx.queryId, plan: ctx.plan, query: taskQuery(ctx.spec), schema: toStudySchemaJson(ctx.schema), answered });
    await this.aggregation.add(AGGREGATE, job, { jobId: aggregationJobId(ctx.queryId), attempts: 3, backoff: { type: 'exponential', delay: 1000 }, removeOnComplete: false, removeOnFail: false });
    this.failpoints.hit('aggregation.queued');
    this.logger.info({ queryId: ctx.queryId, answered: answered.length }, 'contributions handed to aggregation');
  }

  /**
   * Closes a paillier contribution round on its aggregation's result: the encrypted DP noise goes in, then the
   * round's close, the contributions, rejections and `round.closed`, and the decryption round commit in one
   * transaction; the participants' jobs and the result's events then leave Redis.
   */
  private async closePaillierRound1(
    ctx: PaillierContext,
    result: Pick<PaillierClosed, 'contributors' | 'contributions' | 'aggregate'>,
    refused: readonly Refusal[],
    recordRejections: (tx: RepositorySet) => Promise<void>,
  ): Promise<void> {
    const { plan } = ctx;
    const now = Date.now();
    const settings = privacyOf(ctx.spec, ctx.schema);
    let aggregate = result.aggregate;
    let noise: EncryptedNoise | null = null;
    if (settings.dp) {
      // The key holder must only ever decrypt noised totals: the noise goes in under the researcher's key, with
      // proofs that it is noise, and is forgotten here at once (DESIGN.md "Trust model": DP is the defence against
      // differencing queries).
      const compiled = compileQuery(ctx.schema, ctx.spec);
      ({ aggregate, noise } = addEncryptedNoise(paillierContext(plan, compiled), ctx.queryId, aggregate, dpNoise(compiled, settings.dp)));
    }
    const closed: PaillierClosed = { contributors: result.contributors, contributions: result.contributions, noise, aggregate };
    const deadline = now + this.config.decryptionSeconds * 1000;
    const committed = await this.fenced(ctx.queryId, async (tx) => {
      if (!(await tx.rounds.close(ctx.queryId, 1, JSON.stringify(closed), now))) return false;
      for (const c of result.contributors) await tx.contributions.record({ query_id: ctx.queryId, round: 1, participant_id: c.id, bundle_hash: c.bundleHash, received_at: now });
      await recordRejections(tx);
      await recordRound1Closed(tx, ctx.queryId, ctx.studyId, plan.participants, result.contributors, refused, now);
      this.failpoints.hit('round1.appended');
      await tx.rounds.open({ query_id: ctx.queryId, round: 2, status: 'open', opened_at: now, deadline, expected: 1 });
      await tx.queries.setRound(ctx.queryId, 2);
      return true;
    });
    if (!committed) return;
    this.failpoints.hit('round1.committed');
    await this.effect('deadline', () => this.control.remove(deadlineJobId(ctx.queryId, 1)));
    await this.effect('deadline', () => this.scheduleDeadline(ctx.queryId, 2, deadline));
    // The participants' jobs are no longer needed: the accepted contributions are kept with the round.
    // The participants' jobs, and the aggregation's `completed` entry: the result carried the signed contributions,
    // which are kept with the round, not in Redis.
    await this.effect('cleanup', () => this.cleanup(ctx));
    this.logger.info({ queryId: ctx.queryId, contributors: result.contributors.length }, 'aggregate ready for the researcher');
  }

  /**
   * Ledger evidence for a shamir task of `ctx` (libs/protocol LedgerEvidence): its `query.submitted` and
   * `committee.drawn` entries, the study's `study.created`, the root the committee seed was drawn from, and the
   * entries at `more`, all proven in the newest signed checkpoint.
   */
  private async roundEvidence(tx: RepositorySet, ctx: ShamirContext, more: readonly number[]): Promise<LedgerEvidence> {
    const keys = [entryKey(ENTRY.querySubmitted, ctx.queryId), entryKey(ENTRY.committeeDrawn, ctx.queryId), entryKey(ENTRY.studyCreated, ctx.studyId)];
    const found = await tx.events.indicesOf(keys);
    const submitted = found.get(keys[0]!);
    if (submitted === undefined) throw new Error(`query ${ctx.queryId} has no query.submitted entry`);
    return tx.events.evidence([...found.values(), ...more], submitted + 1);
  }

  /**
   * A paillier query's aggregate, for its key holder: the researcher who submitted it (DESIGN.md "Protocol
   * paillier"). It comes with what the key holder checks before decrypting anything (libs/protocol key-holder.ts):
   * every signed contribution it multiplies with its participant's signing key, the encrypted noise with its
   * proofs, and the ledger evidence: the query, its plan, the study, the round's closing and every contributor's
   * enrollment, each proven in the newest signed checkpoint.
   * @throws QueryRefusal not_found for an unknown query, forbidden for another caller, not_ready while the aggregate is not ready
   */
  async aggregateFor(queryId: string, keyId: string): Promise<AggregateBundle> {
    const ctx = await this.paillierContextFor(queryId, keyId, { custodians: true });
    const round = await this.repos.rounds.get(queryId, 2);
    const closed = await this.closedPaillier(queryId);
    if (!round || round.status !== 'open' || !closed) throw new QueryRefusal('not_ready', `query ${queryId} has no aggregate awaiting decryption`);
    const signingKeys = new Map((await this.repos.participants.listByStudy(ctx.studyId)).map((p) => [p.id, p.signing_key]));
    const keys = [
      entryKey(ENTRY.querySubmitted, queryId),
      entryKey(ENTRY.paillierPlanned, queryId),
      entryKey(ENTRY.roundClosed, queryId, 1),
      entryKey(ENTRY.studyCreated, ctx.studyId),
      ...closed.contributors.map((c) => entryKey(ENTRY.participantEnrolled, c.id)),
    ];
    const evidence = await this.repos.events.evidence([...(await this.repos.events.indicesOf(keys)).values()]);
    return {
      queryId,
      publicKey: ctx.plan.publicKey,
      ciphertexts: closed.aggregate,
      contributors: closed.contributors.length,
      deadline: round.deadline,
      contributions: closed.contributions.map((contribution) => ({ contribution, signingKey: signingKeys.get(contribution.sender) ?? '' })),
      noise: closed.noise,
      evidence,
      custodians: ctx.custodians,
    };
  }

  /**
   * Accepts one custodian's partial decryptions of a paillier aggregate (libs/protocol custodians.ts): every chunk's
   * proof must show that the custodian used its share on exactly this aggregate. A post that does not verify is
   * refused and recorded in the ledger, naming the custodian. Once t custodians' partials are in, they are combined,
   * the exact totals unpacked, and the result released; the partials are then dropped (with t of them anyone could
   * decrypt the aggregate, which holds totals the release may suppress).
   * @returns how many custodians have decrypted so far, and whether the result is out
   * @throws QueryRefusal invalid_partial (recorded), not_custodial for a query its researcher decrypts, not_ready
   */
  async acceptPartials(queryId: string, keyId: string, posted: PostedPartials): Promise<{ decrypted: number; threshold: number; released: boolean }> {
    const ctx = await this.paillierContextFor(queryId, keyId, { custodians: true });
    if (!ctx.custodians) throw new QueryRefusal('not_custodial', `query ${queryId} is decrypted by its researcher's key, not by custodians`);
    // The replica serving the post decides the query: it takes the lease (from whichever replica drove it so far).
    await this.leases.claim(queryId);
    const round = await this.repos.rounds.get(queryId, 2);
    const closed = await this.closedPaillier(queryId);
    if (!round || round.status !== 'open' || !closed) throw new QueryRefusal('not_ready', `query ${queryId} has no aggregate awaiting decryption`);
    const verification = thresholdVerificationFromJson(ctx.custodians);
    try {
      checkPostedPartials(verification, queryId, closed.aggregate, posted);
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err;
      const digest = createHash('sha256').update(canonicalJson(posted)).digest('hex');
      await this.repos.events.append(ENTRY.decryptionRejected, { queryId, custodian: posted.index, reason: err.message, postedHash: digest }, entryKey(ENTRY.decryptionRejected, queryId, digest), Date.now(), ctx.studyId);
      this.logger.warn({ queryId, custodian: posted.index, reason: err.message }, 'partial decryption rejected');
      throw new QueryRefusal('invalid_partial', `partial decryption rejected: ${err.message}`);
    }
    const now = Date.now();
    if (await this.repos.partials.record({ query_id: queryId, custodian: posted.index, partials_json: JSON.stringify(posted), received_at: now })) {
      const digest = createHash('sha256').update(canonicalJson(posted)).digest('hex');
      await this.repos.events.append(ENTRY.decryptionPartial, { queryId, custodian: posted.index, partialsHash: digest }, entryKey(ENTRY.decryptionPartial, queryId, posted.index), now, ctx.studyId);
    }
    const rows = await this.repos.partials.list(queryId);
    const t = run(openRound(roundSpec(ctx.plan, 2, { threshold: verification.threshold })), partialsPosted(rows));
    let combineError: string | undefined;
    await this.carry(queryId, t, {
      close: async () => {
        combineError = await this.combineCustodians(ctx, closed, rows);
        return combineError === undefined ? undefined : `the custodians' partial decryptions do not combine: ${combineError}`;
      },
    });
    if (combineError !== undefined) throw new QueryRefusal('not_ready', `query ${queryId} failed: ${combineError}`);
    return { decrypted: rows.length, threshold: verification.threshold, released: t.state.status === 'closing' };
  }

  /**
   * Combines the first t custodians' partial decryptions (each was checked, proof and all, when it arrived), unpacks
   * the exact totals and releases the result; the contributions and partials are then forgotten.
   * @returns why the partials do not combine, or undefined once released (or decided by another process)
   */
  private async combineCustodians(ctx: PaillierContext, closed: PaillierClosed, rows: readonly { custodian: number; partials_json: string }[]): Promise<string | undefined> {
    const verification = thresholdVerificationFromJson(ctx.custodians!);
    const used = rows.slice(0, verification.threshold);
    const byCustodian = used.map((r) => parsePostedPartials(verification, closed.aggregate.length, readColumn(partialsColumn, r.partials_json, `partial_decryptions.partials_json of query ${ctx.queryId} custodian ${r.custodian}`)));
    const compiled = compileQuery(ctx.schema, ctx.spec);
    let totals: bigint[];
    try {
      totals = unpackTotals(paillierContext(ctx.plan, compiled).layout, combineCustodianPartials(verification, closed.aggregate, byCustodian), closed.contributors.length);
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err;
      return err.message;
    }
    const now = Date.now();
    const decryption = { aggregateHash: aggregateHash(closed.aggregate), custodians: used.map((r) => r.custodian) };
    await this.decide(ctx.queryId, async (tx) => {
      if (!(await tx.rounds.close(ctx.queryId, 2, JSON.stringify({ decrypted: true, custodians: used.map((r) => r.custodian) }), now))) return false;
      await this.release(tx, ctx, compiled, totals, { contributors: closed.contributors.length, paillier: decryption }, now, { noised: true });
      await forgetContributions(tx, ctx.queryId);
      return true;
    });
    return undefined;
  }

  /**
   * A paillier decryption round's deadline: the machine fails the query, naming the key holder's silence or which
   * custodians decrypted; or, when t custodians' partials are in but were never combined (the coordinator stopped
   * in between), combines them now.
   */
  private async decryptionDeadline(ctx: PaillierContext): Promise<void> {
    const custodians = ctx.custodians ? { threshold: thresholdVerificationFromJson(ctx.custodians).threshold } : null;
    const rows = custodians ? await this.repos.partials.list(ctx.queryId) : [];
    const t = run(openRound(roundSpec(ctx.plan, 2, custodians)), [...partialsPosted(rows), { type: 'deadline', round: 2 }]);
    await this.carry(ctx.queryId, t, {
      close: async () => {
        const closed = await this.closedPaillier(ctx.queryId);
        if (!closed) return 'the aggregate awaiting decryption is gone';
        const error = await this.combineCustodians(ctx, closed, rows);
        return error === undefined ? undefined : `the custodians' partial decryptions do not combine: ${error}`;
      },
    });
  }

  /**
   * Accepts the researcher's decryption of the aggregate (DESIGN.md "Protocol paillier"): every posted plaintext m
   * and randomness r must re-encrypt to its aggregate ciphertext, c = (1 + n)^m · r^n mod n²; then the exact totals
   * are unpacked and the statistics derived exactly as for shamir, and the result is released to the ledger.
   * @throws QueryRefusal invalid_decryption for a posted result that does not verify (recorded in the ledger);
   *   the others as {@link aggregateFor}
   */
  async acceptDecryption(queryId: string, keyId: string, posted: PaillierDecryption): Promise<void> {
    const ctx = await this.paillierContextFor(queryId, keyId);
    if (ctx.custodians) throw new QueryRefusal('custodial', `query ${queryId} is decrypted by custodians: each posts POST /v1/queries/${queryId}/partial-decryptions`);
    await this.leases.claim(queryId);
    const round = await this.repos.rounds.get(queryId, 2);
    const closed = await this.closedPaillier(queryId);
    if (!round || round.status !== 'open' || !closed) throw new QueryRefusal('not_ready', `query ${queryId} has no aggregate awaiting decryption`);
    const compiled = compileQuery(ctx.schema, ctx.spec);
    let totals: bigint[];
    try {
      totals = verifyPostedDecryption(paillierContext(ctx.plan, compiled), closed.aggregate, posted, closed.contributors.length);
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err;
      const digest = createHash('sha256').update(canonicalJson(posted)).digest('hex');
      await this.repos.events.append(ENTRY.decryptionRejected, { queryId, reason: err.message, postedHash: digest }, entryKey(ENTRY.decryptionRejected, queryId, digest), Date.now(), ctx.studyId);
      this.logger.warn({ queryId, reason: err.message }, 'posted decryption rejected');
      throw new QueryRefusal('invalid_decryption', `decryption rejected: ${err.message}`);
    }
    const now = Date.now();
    let released = false;
    await this.carry(queryId, step(openRound(roundSpec(ctx.plan, 2, null)), { type: 'decryption', round: 2 }), {
      close: async () => {
        released = await this.decide(queryId, async (tx) => {
          if (!(await tx.rounds.close(queryId, 2, JSON.stringify({ decrypted: true }), now))) return false;
          await this.release(tx, ctx, compiled, totals, { contributors: closed.contributors.length, paillier: { aggregateHash: aggregateHash(closed.aggregate), custodians: null } }, now, { noised: true });
          await forgetContributions(tx, queryId);
          return true;
        });
        return undefined;
      },
    });
    if (!released) throw new QueryRefusal('not_ready', `query ${queryId} is already decided`);
  }

  /**
   * A paillier query's context for one of its key holders: the researcher who submitted it, or, when `custodians`
   * allows it and the key is split among custodians, any caller (a custodian needs an API key, nothing more: what
   * it gets is the aggregate under a key no fewer than t custodians can open, and what it posts proves itself).
   */
  private async paillierContextFor(queryId: string, keyId: string, { custodians = false }: { custodians?: boolean } = {}): Promise<PaillierContext> {
    const q = await this.repos.queries.get(queryId);
    if (!q) throw new QueryRefusal('not_found', `no query ${queryId}`);
    if (q.protocol !== 'paillier') throw new QueryRefusal('not_paillier', `query ${queryId} uses the ${q.protocol} protocol`);
    const custodial = q.options_json !== null && readColumn(paillierOptionsColumn, q.options_json, `queries.options_json of query ${queryId}`).custodians !== undefined;
    if (q.created_by !== keyId && !(custodians && custodial)) throw new QueryRefusal('forbidden', 'only the researcher who submitted a paillier query gets its aggregate');
    const ctx = await this.context(queryId);
    if (!ctx || !isPaillier(ctx)) throw new QueryRefusal('not_ready', `query ${queryId} is ${q.status}`);
    return ctx;
  }

  private async closedPaillier(queryId: string): Promise<PaillierClosed | undefined> {
    const r1 = await this.repos.rounds.get(queryId, 1);
    return r1?.closed_json ? readColumn(paillierRound1ClosedColumn, r1.closed_json, `rounds.closed_json of query ${queryId} round 1`) : undefined;
  }

  /**
   * Records who answered or refused a round, and that the participant was seen, for the views that name participants
   * (GET /v1/queries/:id, /v1/studies/:name/participants). Only the fact, never the answer; each outcome is written
   * once, the first time it is observed (one read per call, since this runs on every finished task).
   */
  /** Records outcomes read for the first time (the first one observed stays: taskOutcomes.record ignores repeats). */
  private async noteOutcomes(queryId: string, round: number, fresh: ReadonlyMap<string, JobOutcome>): Promise<void> {
    const now = Date.now();
    for (const [participantId, outcome] of fresh) {
      await this.repos.taskOutcomes.record({ query_id: queryId, round, participant_id: participantId, outcome: 'answer' in outcome ? 'answered' : 'refused', at: now });
      await this.repos.participants.seen(participantId, now);
    }
  }

  /**
   * The jobs of one round, by participant: finished answers and failure reasons. Outcomes already read are kept
   * ({@link outcomes}), so a pass reads only the jobs still unfinished, all asked at once (readOutcome: three
   * fields of each job's hash).
   */
  private async collect(ctx: QueryContext, round: number, expected: readonly string[]) {
    const key = `${ctx.queryId}:${round}`;
    let known = this.outcomes.get(key);
    if (!known) this.outcomes.set(key, (known = new Map<string, JobOutcome>()));
    const unread = expected.filter((pid) => !known.has(pid));
    const read = await Promise.all(unread.map((pid) => readOutcome(this.redis.producer, this.queueOf(pid), taskJobId(ctx.queryId, round, pid))));
    const fresh = new Map<string, JobOutcome>();
    unread.forEach((pid, i) => {
      const outcome = read[i];
      if (outcome) fresh.set(pid, outcome);
    });
    for (const [pid, outcome] of fresh) known.set(pid, outcome);
    this.outcomesHeld += fresh.size;
    this.forgetOldOutcomes(key);
    await this.noteOutcomes(ctx.queryId, round, fresh);
    const answers = new Map<string, unknown>();
    const refusals = new Map<string, string>();
    for (const pid of expected) {
      const outcome = known.get(pid);
      if (outcome && 'answer' in outcome) answers.set(pid, outcome.answer);
      else if (outcome) refusals.set(pid, outcome.failedReason);
    }
    return { answers, refusals };
  }

  /** Drops the oldest rounds' outcomes beyond {@link OUTCOMES_KEPT} (never `keep`, the round being read). */
  private forgetOldOutcomes(keep: string): void {
    for (const [key, held] of this.outcomes) {
      if (this.outcomesHeld <= OUTCOMES_KEPT) return;
      if (key === keep) continue;
      this.outcomes.delete(key);
      this.outcomesHeld -= held.size;
    }
  }

  /** Forgets what this process keeps of a query while it runs: its outcomes read and its key directory. */
  private forgetQuery(queryId: string): void {
    for (const round of [1, 2]) {
      const held = this.outcomes.get(`${queryId}:${round}`);
      if (!held) continue;
      this.outcomes.delete(`${queryId}:${round}`);
      this.outcomesHeld -= held.size;
    }
    this.directories.delete(queryId);
  }

  /** The key directory of a shamir query's plan, made once per query (importing N keys is most of a pass's work). */
  private async directoryOf(ctx: ShamirContext): Promise<KeyDirectory> {
    let directory = this.directories.get(ctx.queryId);
    if (!directory) {
      const rows = await this.repos.participants.listByStudy(ctx.studyId);
      const members = new Set(ctx.plan.participants);
      directory = keyDirectory(rows.filter((r) => members.has(r.id)));
      this.directories.set(ctx.queryId, directory);
      // Kept for the running queries this replica drives; one whose lease moved on is dropped in turn.
      if (this.directories.size > DIRECTORIES_KEPT) this.directories.delete(this.directories.keys().next().value as string);
    }
    return directory;
  }

  private async advanceRound1(ctx: ShamirContext, pastDeadline: boolean): Promise<void> {
    const { plan } = ctx;
    const { answers, refusals } = await this.collect(ctx, 1, plan.participants);
    const accepted: { bundle: Round1Bundle; hash: string }[] = [];
    // Each answer is checked once: on a later pass, by the object read ({@link checked}); after a restart, by the
    // bundle hash recorded with it, so a round with N answers arriving one by one costs N signature checks, not
    // N(N+1)/2. The recorded hashes are read only when an answer has not been checked in this process.
    let verified: Map<string, string> | undefined;
    for (const [pid, raw] of answers) {
      const seen = typeof raw === 'object' && raw !== null ? this.checked.get(raw) : undefined;
      if (seen) {
        if ('refused' in seen) refusals.set(pid, seen.refused);
        else accepted.push(seen);
        continue;
      }
      const parsed = answerSchemas[TASK.shamirRound1].safeParse(raw);
      verified ??= new Map((await this.repos.contributions.list(ctx.queryId, 1)).map((c) => [c.participant_id, c.bundle_hash]));
      const known = verified.get(pid);
      const recorded = parsed.success && known !== undefined && known === bundleHash(parsed.data.bundle);
      // Read before the checks, which alone are caught: a database error is not a refusal of the answer.
      const directory = parsed.success && !recorded ? await this.directoryOf(ctx) : undefined;
      let outcome: { bundle: Round1Bundle; hash: string } | { refused: string };
      let fresh = false;
      try {
        if (!parsed.success) throw new ProtocolError('INVALID_MESSAGE', 'malformed round-1 answer');
        if (recorded) {
          outcome = { bundle: parsed.data.bundle, hash: known };
        } else {
          const checked = verifyRound1Bundle(plan, directory!, parsed.data.bundle);
          if (checked.bundle.sender !== pid) throw new ProtocolError('UNKNOWN_SENDER', 'round-1 answer signed by another participant');
          outcome = checked;
          fresh = true;
        }
      } catch (err) {
        outcome = { refused: err instanceof Error ? err.message : String(err) };
      }
      if ('refused' in outcome) {
        await this.repos.events.append(ENTRY.contributionRejected, { queryId: ctx.queryId, round: 1, participantId: pid, reason: outcome.refused }, entryKey(ENTRY.contributionRejected, ctx.queryId, 1, pid), Date.now(), ctx.studyId);
      } else if (fresh) {
        await this.repos.contributions.record({ query_id: ctx.queryId, round: 1, participant_id: pid, bundle_hash: outcome.hash, received_at: Date.now() });
      }
      if (typeof raw === 'object' && raw !== null) this.checked.set(raw, outcome);
      if ('refused' in outcome) refusals.set(pid, outcome.refused);
      else accepted.push(outcome);
    }
    const t = run(openRound(roundSpec(plan, 1)), observed(1, accepted.map((a) => a.bundle.sender), refusals, pastDeadline));
    await this.carry(ctx.queryId, t, {
      close: async (e) => {
        const answered = new Set(e.answered);
        return this.closeShamirRound1(ctx, await this.repos.participants.listByStudy(ctx.studyId), accepted.filter((a) => answered.has(a.bundle.sender)), e.refused);
      },
    });
  }

  /**
   * Closes shamir round 1 over the accepted bundles: the round's close, `round.closed`, round 2 and its tasks
   * commit together, then the tasks go out.
   * @returns why closeRound1 refused the set, or undefined
   */
  private async closeShamirRound1(ctx: ShamirContext, rows: readonly Participant[], accepted: readonly { bundle: Round1Bundle; hash: string }[], refused: readonly Refusal[]): Promise<string | undefined> {
    const { plan } = ctx;
    let closed: Round1Closed;
    try {
      closed = closeRound1(plan, accepted);
    } catch (err) {
      return err instanceof Error ? err.message : String(err);
    }
    const now = Date.now();
    const contributorIds = new Set(closed.contributors.map((c) => c.id));
    const contributors = rows.filter((r) => contributorIds.has(r.id)).map(entryOf);
    const bundles = accepted.map((a) => a.bundle);
    // The round's close, `round.closed`, round 2 and its tasks commit together; then the tasks go out.
    const tasks = await this.fenced(ctx.queryId, async (tx) => {
      if (!(await tx.rounds.close(ctx.queryId, 1, JSON.stringify(closed), now))) return undefined;
      const closedIndex = await recordRound1Closed(tx, ctx.queryId, ctx.studyId, plan.participants, closed.contributors, refused, now);
      this.failpoints.hit('round1.appended');
      await tx.rounds.open({ query_id: ctx.queryId, round: 2, status: 'open', opened_at: now, deadline: plan.deadlines.round2, expected: plan.committee.length });
      await tx.queries.setRound(ctx.queryId, 2);
      // Members check the closed set against the signed ledger, not just this task: the coordinator commits to
      // one contributor set in a log that participants and auditors verify, before any member sums a share. The
      // evidence also proves the query, its plan and every contributor's enrollment (authorizeShamirRound2).
      const enrolled = await tx.events.indicesOf(closed.contributors.map((c) => entryKey(ENTRY.participantEnrolled, c.id)));
      const evidence = await this.roundEvidence(tx, ctx, [closedIndex, ...enrolled.values()]);
      return this.prepareTasks(
      tx,
      ctx.studyId,
      evidence,
      rows.filter((r) => plan.committee.includes(r.id)),
      (member) => ({
        kind: TASK.shamirRound2,
        queryId: ctx.queryId,
        studyId: ctx.studyId,
        participantId: member,
        issuedAt: now,
        deadline: plan.deadlines.round2,
        plan,
        query: taskQuery(ctx.spec),
        closed,
        deliveries: deliveriesFor(plan, member, bundles),
        directory: contributors,
        evidence,
      }),
    );
    });
    if (!tasks) return undefined;
    this.failpoints.hit('round1.committed');
    await this.effect('deadline', () => this.control.remove(deadlineJobId(ctx.queryId, 1)));
    await this.sendTasks(tasks);
    await this.effect('deadline', () => this.scheduleDeadline(ctx.queryId, 2, plan.deadlines.round2));
    return undefined;
  }

  private async advanceRound2(ctx: ShamirContext, pastDeadline: boolean): Promise<void> {
    const { plan } = ctx;
    const roundOne = await this.repos.rounds.get(ctx.queryId, 1);
    if (!roundOne?.closed_json) return;
    const closed = readColumn(shamirRound1ClosedColumn, roundOne.closed_json, `rounds.closed_json of query ${ctx.queryId} round 1`);
    const { answers, refusals } = await this.collect(ctx, 2, plan.committee);
    const results = new Map<string, unknown>();
    for (const [pid, raw] of answers) {
      const parsed = answerSchemas[TASK.shamirRound2].safeParse(raw);
      if (parsed.success && parsed.data.result.sender === pid) results.set(pid, parsed.data.result);
      else refusals.set(pid, 'malformed round-2 answer');
    }
    const t = run(openRound(roundSpec(plan, 2)), observed(2, results.keys(), refusals, pastDeadline));
    await this.carry(ctx.queryId, t, { close: (e) => this.finishShamir(ctx, closed, e.answered.map((id) => results.get(id))) });
  }

  /**
   * Reconstructs a shamir query's totals from its committee's share sums and releases the result.
   * @returns why finalizeShamir refused them (too few valid, inconsistent), or undefined
   */
  private async finishShamir(ctx: ShamirContext, closed: Round1Closed, results: readonly unknown[]): Promise<string | undefined> {
    const { plan } = ctx;
    const rows = await this.repos.participants.listByStudy(ctx.studyId);
    let outcome;
    try {
      outcome = finalizeShamir(plan, closed, keyDirectory(rows.filter((r) => plan.committee.includes(r.id))), results, this.encryptionKey);
    } catch (err) {
      return err instanceof Error ? err.message : String(err);
    }
    const compiled = compileQuery(ctx.schema, ctx.spec);
    const now = Date.now();
    await this.decide(ctx.queryId, async (tx) => {
      if (!(await tx.rounds.close(ctx.queryId, 2, JSON.stringify({ answered: outcome.answered, badMembers: outcome.badMembers }), now))) return false;
      await this.release(tx, ctx, compiled, outcome.totals, { contributors: outcome.contributors, committee: plan.committee, answered: outcome.answered, badMembers: outcome.badMembers, threshold: plan.threshold }, now, { noised: false });
      return true;
    });
    return undefined;
  }

  /**
   * Commits a query's decision (its last round's close and `release`) in one transaction, then removes its jobs
   * from Redis (or leaves that to the timer while Redis is down).
   * @returns whether this call decided it
   */
  private async decide(queryId: string, write: (tx: RepositorySet) => Promise<boolean>): Promise<boolean> {
    if (!(await this.fenced(queryId, write))) return false;
    this.failpoints.hit('result.committed');
    await this.effect('cleanup', () => this.cleanupDecided(queryId));
    return true;
  }

  /**
   * Releases a query's statistics (DESIGN.md "Queries", output privacy): differential-privacy noise on the exact
   * totals unless it is already in them (paillier adds it under encryption), post-processing of the noised totals,
   * the statistics, small-cell suppression, and a report of which measures applied; then the ledger
   * (`result.released`) and the query row, in the caller's transaction; {@link decide} then cleans up.
   */
  private async release(tx: RepositorySet, ctx: QueryContext, compiled: CompiledQuery, exactOrNoised: readonly bigint[], details: { readonly contributors: number } & Record<string, unknown>, now: number, opts: { noised: boolean }): Promise<void> {
    const settings = privacyOf(ctx.spec, ctx.schema);
    let totals = [...exactOrNoised];
    if (settings.dp) {
      if (!opts.noised) {
        const noise = dpNoise(compiled, settings.dp);
        totals = totals.map((t, i) => t + noise[i]!);
      }
      totals = clampNoisyTotals(compiled, totals);
    }
    const released = suppress(compiled, totals, deriveResults(compiled, totals), settings.minGroupSize);
    totals.fill(0n);
    const result = { results: released.rows, privacy: privacyReport(settings, released.suppressedCells), ...details };
    // Ledger entries are canonical JSON with integers only (libs/crypto canonicalJson), so that any verifier in
    // any language re-encodes them byte for byte: statistic values go in as their shortest decimal strings.
    const ledgerIndex = await tx.events.append(ENTRY.resultReleased, { queryId: ctx.queryId, ...(ledgerValue(result) as object) }, entryKey(ENTRY.resultReleased, ctx.queryId), now, ctx.studyId);
    this.failpoints.hit('result.appended');
    await tx.queries.finish(ctx.queryId, { status: 'succeeded', result_json: JSON.stringify({ ...result, ledgerIndex }), contributors: details.contributors }, now);
    this.logger.info({ queryId: ctx.queryId, contributors: details.contributors, ledgerIndex }, 'result released');
  }

  /**
   * Fails a query with its reason (and the participants' refusals): the round, `query.failed` and the outcome in one
   * transaction (with `more`, writes that belong to it), then its jobs leave Redis.
   */
  private async fail(queryId: string, round: number, reason: string, refused: readonly Refusal[], more?: (tx: RepositorySet) => Promise<void>): Promise<void> {
    const now = Date.now();
    const failed = await this.fenced(queryId, async (tx) => {
      if (!(await tx.rounds.fail(queryId, round, now))) return false;
      await more?.(tx);
      const q = await tx.queries.get(queryId);
      // The researcher reads the reason: each refusing participant by its invited name beside its id.
      const names = new Map(q ? (await tx.participants.listByStudy(q.study_id)).map((p) => [p.id, p.name]) : []);
      const label = (id: string): string => (names.has(id) ? `${names.get(id)!} (${id})` : id);
      const full = refused.length ? `${reason}; refusals: ${refused.map((r) => `${label(r.participantId)}: ${r.reason}`).join('; ')}` : reason;
      await tx.events.append(ENTRY.queryFailed, { queryId, round, reason, refusals: refused }, entryKey(ENTRY.queryFailed, queryId), now, q?.study_id ?? null);
      await tx.queries.finish(queryId, { status: 'failed', failure_reason: full }, now);
      if (q?.protocol === 'paillier') await forgetContributions(tx, queryId);
      return true;
    });
    if (!failed) return;
    this.failpoints.hit('failed.committed');
    this.logger.warn({ queryId, round, reason }, 'query failed');
    await this.effect('cleanup', () => this.cleanupDecided(queryId));
  }

  /**
   * Everything a decided query left in Redis goes (idempotent; the timer retries it while Redis is down): its
   * deadline jobs, its task jobs and their events (cleanup), a paillier query's aggregation job and events; then its
   * outbox rows, which are what tells the timer that the query still has jobs to remove.
   * @throws RedisUnavailableError while Redis is down (the rows stay)
   */
  private async cleanupDecided(queryId: string): Promise<void> {
    if (this.redis.producer.status !== 'ready') throw new RedisUnavailableError(`Redis is not available (connection ${this.redis.producer.status})`);
    const q = await this.repos.queries.get(queryId);
    if (!q || q.status === 'running') return;
    // A job being worked on right now is locked and cannot be removed: the deadline job that is deciding this query,
    // an aggregation still running. The rows then stay, and the timer comes back for it.
    let locked = false;
    const remove = (queue: Queue, jobId: string): Promise<unknown> =>
      queue.remove(jobId).catch((err: unknown) => {
        if (!(err instanceof Error && /locked/i.test(err.message))) throw err;
        locked = true;
      });
    for (const round of [0, 1, 2]) await remove(this.control, deadlineJobId(queryId, round));
    if (q.plan_json) await this.cleanup({ queryId, plan: readColumn(planColumn, q.plan_json, `queries.plan_json of query ${queryId}`) });
    if (q.protocol === 'paillier') {
      await remove(this.aggregation, aggregationJobId(queryId));
      await this.entries.scrub(queryId);
    }
    if (this.redis.producer.status !== 'ready') throw new RedisUnavailableError('Redis went away during cleanup');
    if (!locked) await this.repos.dispatches.forget(queryId);
  }

  /**
   * Removes a finished query's task jobs from Redis: they hold ciphertexts and share sums that nobody
   * needs once the result is out. Metadata (who, hashes, times) stays in the database.
   */
  private async cleanup(ctx: Pick<QueryContext, 'queryId' | 'plan'>): Promise<void> {
    const removals: Promise<unknown>[] = [];
    for (const round of ctx.plan.protocol === 'paillier' ? [1] : [1, 2]) {
      for (const pid of ctx.plan.participants) {
        removals.push(
          Job.fromId(this.queueOf(pid), taskJobId(ctx.queryId, round, pid)).then(async (job) => {
            // A task nobody took yet holds only the signed task (public), no answer: it stays, so a participant that
            // comes online late refuses it as expired and the refusal is recorded (recordLate), then removed.
            if (!job || !['completed', 'failed'].includes(await job.getState())) return;
            await job.remove().catch((err: unknown) => {
              // A job a worker still holds (locked) cannot be removed; it expires with its deadline.
              if (!(err instanceof Error && /locked/i.test(err.message))) throw err;
            });
          }),
        );
      }
    }
    await Promise.allSettled(removals);
    this.forgetQuery(ctx.queryId);
    await this.trimEvents(ctx.plan.participants);
    // Its aggregation's `completed` entry, from now on too.
    await this.entries.scrub(ctx.queryId);
  }

  /**
   * Empties these participants' BullMQ events streams. BullMQ writes each finished job's return value there (a
   * round-1 bundle, a share sum, a Paillier ciphertext), which would otherwise stay in Redis until the stream is
   * trimmed at 10,000 entries. Nothing reads these streams any more (answers are noticed through the completion
   * stream, libs/queue completions.ts, and read from the jobs themselves), so every entry goes, a running query's
   * too, without waiting for each answer.
   */
  private async trimEvents(participantIds: readonly string[]): Promise<void> {
    // Sent all at once, not as one pipeline: on a Redis Cluster each participant's keys are in a slot of their own.
    await Promise.all(participantIds.map((pid) => this.redis.producer.xtrim(eventsKey(this.queueOf(pid)), 'MAXLEN', 0)));
  }
}

/**
 * Appends the `round.closed` entry of round 1, the same for both protocols: it is what committee members check at
 * round 2 and what participants' receipts point at, so its shape is one contract.
 * @returns the entry's ledger index
 */
function recordRound1Closed(
  tx: RepositorySet,
  queryId: string,
  studyId: string,
  participants: readonly string[],
  contributors: readonly { id: string; bundleHash: string }[],
  refused: readonly Refusal[],
  now: number,
): Promise<number> {
  return tx.events.append(
    ENTRY.roundClosed,
    {
      queryId,
      round: 1,
      contributors,
      missing: participants.filter((p) => !contributors.some((c) => c.id === p)),
      refusals: refused.map(({ participantId, reason }) => ({ participantId, reason })),
    },
    entryKey(ENTRY.roundClosed, queryId, 1),
    now,
    studyId,
  );
}

/**
 * Once a paillier query is decided, its individual contributions and any custodians' partials are dropped: the
 * contributions' hashes stay in the ledger, and t partials would decrypt the aggregate for anyone.
 */
async function forgetContributions(tx: RepositorySet, queryId: string): Promise<void> {
  const r1 = await tx.rounds.get(queryId, 1);
  const closed = r1?.closed_json ? readColumn(paillierRound1ClosedColumn, r1.closed_json, `rounds.closed_json of query ${queryId} round 1`) : undefined;
  if (closed?.contributions.length) await tx.rounds.rewriteClosed(queryId, 1, JSON.stringify({ ...closed, contributions: [], noise: null }));
  await tx.partials.forget(queryId);
}

/** The privacy a query runs with: as stored with it at submission (effectivePrivacy), or the study's defaults. */
function privacyOf(spec: QuerySpec, schema: StudySchema): PrivacySettings {
  const stored = (spec as { privacy?: PrivacySettings }).privacy;
  return stored && typeof stored.minGroupSize === 'number' ? stored : effectivePrivacy(schema.privacy, undefined);
}

const isPaillier = (ctx: QueryContext): ctx is PaillierContext => ctx.plan.protocol === 'paillier';
const isShamir = (ctx: QueryContext): ctx is ShamirContext => ctx.plan.protocol === 'shamir';

/**
 * The query as carried to participants: its statistics, filters, grouping and effective privacy settings, exactly
 * what libs/protocol queryHash covers and the ledger's `query.submitted` records.
 */
function taskQuery(spec: QuerySpec): TaskQuery {
  const { select, where, groupBy, privacy } = spec as QuerySpec & { where?: unknown; groupBy?: unknown };
  return JSON.parse(JSON.stringify({ select, where, groupBy, privacy })) as TaskQuery;
}


/**
 * A round's collected jobs as events for the round machine: the answers that passed the coordinator's checks, the
 * refusals (the participants' own, and answers that failed the checks), and the deadline if it passed.
 */
function observed(round: 1 | 2, answered: Iterable<string>, refusals: ReadonlyMap<string, string>, pastDeadline: boolean): RoundEvent[] {
  const events: RoundEvent[] = [...answered].map((from) => ({ type: 'answer', round, from }));
  for (const [from, reason] of refusals) events.push({ type: 'refusal', round, from, reason });
  if (pastDeadline) events.push({ type: 'deadline', round });
  return events;
}

/** The custodians' stored partial decryptions as events for the decryption round, in the order they arrived. */
function partialsPosted(rows: readonly { custodian: number }[]): RoundEvent[] {
  return rows.map((r) => ({ type: 'partial', round: 2, custodian: r.custodian }));
}
