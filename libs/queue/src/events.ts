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
 * Deletes a decided query's `completed` entries from a queue's events stream (a participant's, or the aggregation
 * queue's). Each carries its job's return value (a round-1 bundle, a share sum, Paillier ciphertexts), which would
 * otherwise stay in Redis until the stream is trimmed, long after the job itself was removed. Entries are matched
 * by the query their job id names ({@link queryOfJob}); every other entry stays.
 * @returns how many entries it deleted
 */
export async function scrubCompletedEvents(redis: Pick<Redis, 'xrange' | 'xdel'>, queue: Pick<QueueBase, 'keys' | 'name'>, queryId: string): Promise<number> {
  const key = eventsKey(queue);
  const entries = await redis.xrange(key, '-', '+');
  // Every query decided reads the whole stream (thousands of entries under load): no allocation per entry, and the
  // id is parsed only for entries whose job id starts with the query's.
  const prefix = `${queryId}-`;
  const ids: string[] = [];
  for (const [id, fields] of entries) {
    let event: string | undefined;
    let jobId: string | undefined;
    // Fields alternate name and value; read them as pairs, so a value never passes for a name.
    for (let i = 0; i + 1 < fields.length; i += 2) {
      if (fields[i] === 'event') event = fields[i + 1];
      else if (fields[i] === 'jobId') jobId = fields[i + 1];
    }
    if (event === 'completed' && jobId?.startsWith(prefix) && queryOfJob(jobId) === queryId) ids.push(id);
  }
  return ids.length ? redis.xdel(key, ...ids) : 0;
}
