import { Queue } from 'bullmq';
import { createRedis, withoutCredentials, type RedisClient } from '@confide/queue';
import { taskQueueOf, type ParticipantHome } from './home';
import { Journal, type JournalRecord } from './journal';
import { localReceipts, type LocalReceipts } from './receipts';

/** How many of the journal's latest tasks the status shows. */
export const STATUS_TASKS = 10;

/** The participant's task queue, as its own Redis user sees it, or why it could not be read. */
export type QueueState =
  | { readonly reachable: true; readonly waiting: number; readonly active: number; readonly delayed: number; readonly failed: number }
  | { readonly reachable: false; readonly url: string; readonly reason: string };

/** One task from the journal: what was asked (statistics, never a value) and what the participant did. */
export interface StatusTask {
  readonly time: string;
  readonly queryId: string;
  readonly round: number;
  readonly task: string;
  readonly outcome: JournalRecord['outcome'];
  readonly reason: string | null;
  readonly statistics: readonly string[];
  readonly records: number | null;
  readonly used: number | null;
}

/** `confide participant status`: what this participant's home and its own Redis user can say about it. */
export interface ParticipantStatus {
  readonly participant: { readonly name: string | null; readonly id: string; readonly study: string; readonly coordinatorUrl: string };
  readonly queue: QueueState;
  /** The latest {@link STATUS_TASKS} tasks, newest first. */
  readonly tasks: readonly StatusTask[];
  readonly receipts: LocalReceipts;
}

/**
 * A participant's task queue as BullMQ counts it (one script of LLEN, ZCARD and LINDEX on the queue's own keys,
 * within the participant's ACL): jobs by state, and how long the oldest waiting one has waited. The worker's
 * heartbeat and `participant status` both report it.
 */
export async function countTasks(queue: Queue, now = Date.now()): Promise<{ waiting: number; active: number; delayed: number; failed: number; oldestWaitingMs: number | null }> {
  const counts = await queue.getJobCounts('waiting', 'active', 'delayed', 'failed');
  const [oldest] = await queue.getWaiting(0, 0);
  return { waiting: counts.waiting ?? 0, active: counts.active ?? 0, delayed: counts.delayed ?? 0, failed: counts.failed ?? 0, oldestWaitingMs: oldest ? Math.max(0, now - oldest.timestamp) : null };
}

/** Settles with `work`, or rejects after `ms` saying what did not answer. */
async function within<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      work,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${ms / 1000} s (${what})`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Resolves once the connection is ready; rejects on its first error (a refused connection, bad credentials). */
function ready(conn: RedisClient): Promise<void> {
  if (conn.status === 'ready') return Promise.resolve();
  return new Promise((resolve, reject) => {
    conn.once('ready', () => resolve());
    conn.once('error', reject);
  });
}

/**
 * Counts the jobs in this participant's own task queue with its own Redis credentials (identity.json `redis`):
 * BullMQ's `Queue.getJobCounts` runs one script of LLEN, ZCARD and LINDEX on the queue's keys, all within the
 * participant's ACL (libs/queue acl.ts PARTICIPANT_COMMANDS). Never throws: an unreachable Redis, refused
 * credentials or a timeout come back as `reachable: false` with the URL (without credentials) and the reason.
 */
export async function queueState(home: ParticipantHome, opts: { redisUrl?: string; timeoutMs: number }): Promise<QueueState> {
  const identity = home.identity();
  const { redis } = identity;
  const url = opts.redisUrl ?? redis.url;
  let conn: RedisClient | undefined;
  let queue: Queue | undefined;
  try {
    // A producer connection: commands fail at once while Redis is down instead of waiting for it to come back.
    conn = createRedis(url, { role: 'producer', username: redis.username, password: redis.password });
    // Errors are reported once below; without a listener ioredis would print each reconnection attempt's.
    conn.on('error', () => undefined);
    await within(ready(conn), opts.timeoutMs, 'connecting');
    queue = new Queue(taskQueueOf(identity), { connection: conn, prefix: redis.prefix });
    queue.on('error', () => undefined);
    const { waiting, active, delayed, failed } = await within(countTasks(queue), opts.timeoutMs, 'counting jobs');
    return { reachable: true, waiting, active, delayed, failed };
  } catch (err) {
    return { reachable: false, url: withoutCredentials(url), reason: (err as Error).message.replaceAll(redis.password, '***') };
  } finally {
    await queue?.close().catch(() => undefined);
    conn?.disconnect();
  }
}

/** A journal record as the status lists it: the query's statistics as text, never a value. */
function statusTask(r: JournalRecord): StatusTask {
  return {
    time: r.time,
    queryId: r.queryId,
    round: r.round,
    task: r.task,
    outcome: r.outcome,
    reason: r.reason,
    statistics: r.query?.select ?? [],
    records: typeof r.records === 'number' ? r.records : null,
    used: typeof r.matched === 'number' ? r.matched : null,
  };
}

/**
 * This participant's status from its home and its own Redis user only: its identity, its task queue's counts, its
 * latest tasks from the journal and its receipts as stored (nothing is fetched from the coordinator). Whether its
 * worker runs cannot be known from here; the queue's waiting count growing is the sign that it does not.
 * @throws HomeError when DIR is not an enrolled participant's home
 */
export async function participantStatus(home: ParticipantHome, opts: { redisUrl?: string; timeoutMs: number }): Promise<ParticipantStatus> {
  const identity = home.identity();
  const tasks = new Journal(home.dir).read().slice(-STATUS_TASKS).reverse().map(statusTask);
  return {
    participant: { name: identity.participantName ?? null, id: identity.participantId, study: identity.studyName, coordinatorUrl: identity.coordinatorUrl },
    queue: await queueState(home, opts),
    tasks,
    receipts: localReceipts(home),
  };
}
