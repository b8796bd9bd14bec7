import type { QueueBase } from 'bullmq';
import type { Redis } from 'ioredis';
import { queryOfJob } from './names';

/**
 * The Redis key of a queue's BullMQ events stream, as BullMQ itself names it (`queue.keys.events`), so that no one
 * builds `<prefix>:<queue>:events` by hand and a BullMQ that lays out its keys differently breaks one place.
 * @throws Error when BullMQ gives the queue no events key
 */
export function eventsKey(queue: Pick<QueueBase, 'keys' | 'name'>): string {
  const key = queue.keys.events;
  if (!key) throw new Error(`BullMQ names no events stream for queue ${queue.name}`);
  return key;
}

/**
 * Every `completed` entry of a queue's events stream (a participant's, or the aggregation queue's), grouped by the
 * query its job id names ({@link queryOfJob}); entries of jobs Confide did not make are left out. Each entry carries
 * its job's return value (a round-1 bundle, a share sum, Paillier ciphertexts), which would otherwise stay in Redis
 * until the stream is trimmed, long after the job itself was removed. This reads the whole stream (its return values
 * included), so it is the backstop run at boot and now and then, not the path of every query: that is
 * {@link CompletedEntries}.
 * @returns entry ids by query id
 */
export async function completedEntries(redis: Pick<Redis, 'xrange'>, queue: Pick<QueueBase, 'keys' | 'name'>): Promise<Map<string, string[]>> {
  const byQuery = new Map<string, string[]>();
  for (const [id, fields] of await redis.xrange(eventsKey(queue), '-', '+')) {
    let event: string | undefined;
    let jobId: string | undefined;
    // Fields alternate name and value; read them as pairs, so a value never passes for a name.
    for (let i = 0; i + 1 < fields.length; i += 2) {
      if (fields[i] === 'event') event = fields[i + 1];
      else if (fields[i] === 'jobId') jobId = fields[i + 1];
    }
    const queryId = event === 'completed' && jobId !== undefined ? queryOfJob(jobId) : undefined;
    if (queryId === undefined) continue;
    const ids = byQuery.get(queryId);
    if (ids) ids.push(id);
    else byQuery.set(queryId, [id]);
  }
  return byQuery;
}

/**
 * Deletes the `completed` entries of each query's jobs from the events streams, by entry id, as the listeners read
 * them go by (QueueEvents hands each event's id to its listener), so that scrubbing a decided query costs one XDEL per
 * stream instead of reading every stream whole. An entry read after its query was scrubbed is deleted at once: a
 * late answer, or round 2 of a query whose round-1 entries went when round 1 closed.
 *
 * It sees only what the listeners of this process read, so {@link completedEntries} remains the backstop for entries
 * written while no listener was reading (before boot, or an outage's gap).
 */
export class CompletedEntries {
  /** Entry ids not yet deleted: query id → stream key → entry ids. */
  private readonly pending = new Map<string, Map<string, Set<string>>>();
  /** Queries already scrubbed, oldest first, kept up to `remember` of them. */
  private readonly scrubbed = new Set<string>();

  constructor(
    private readonly redis: Pick<Redis, 'xdel'>,
    private readonly remember = 10_000,
  ) {}

  /**
   * A listener read the `completed` entry `entryId` of job `jobId` in stream `key`.
   * @returns how many entries were deleted now (1 when its query was already scrubbed)
   */
  async saw(key: string, jobId: string, entryId: string): Promise<number> {
    const queryId = queryOfJob(jobId);
    if (queryId === undefined) return 0;
    return this.found(key, queryId, [entryId]);
  }

  /**
   * Entries of `queryId` in stream `key` found some other way (the backstop's whole read of a stream, at boot, of
   * answers no listener of this process saw): kept for its scrub like those seen, or deleted now if it already ran.
   * @returns how many entries were deleted now
   */
  async found(key: string, queryId: string, entryIds: readonly string[]): Promise<number> {
    if (entryIds.length === 0) return 0;
    if (this.scrubbed.has(queryId)) return this.redis.xdel(key, ...entryIds);
    let streams = this.pending.get(queryId);
    if (!streams) this.pending.set(queryId, (streams = new Map<string, Set<string>>()));
    const ids = streams.get(key);
    if (ids) for (const id of entryIds) ids.add(id);
    else streams.set(key, new Set(entryIds));
    return 0;
  }

  /**
   * Deletes every entry seen for `queryId`, and from now on each one seen for it.
   * @returns how many entries were deleted
   * @throws when Redis fails (the ids are kept for the next try)
   */
  async scrub(queryId: string): Promise<number> {
    // Marked before the first await, so an entry read while the deletions run is deleted by saw().
    this.scrubbed.delete(queryId);
    this.scrubbed.add(queryId);
    if (this.scrubbed.size > this.remember) this.scrubbed.delete(this.scrubbed.values().next().value as string);
    const streams = this.pending.get(queryId);
    if (!streams) return 0;
    this.pending.delete(queryId);
    let deleted = 0;
    try {
      for (const [key, ids] of streams) {
        deleted += await this.redis.xdel(key, ...ids);
        streams.delete(key);
      }
    } finally {
      // What Redis did not take waits for the next scrub of this query.
      if (streams.size > 0) this.pending.set(queryId, streams);
    }
    return deleted;
  }

  /** Entry ids seen and not yet deleted, over every query (what this process holds in memory for later). */
  get size(): number {
    let n = 0;
    for (const streams of this.pending.values()) for (const ids of streams.values()) n += ids.size;
    return n;
  }
}
