import type { QueueBase } from 'bullmq';
import type { Redis } from 'ioredis';

/** How a job ended for good: what its worker returned, or why it failed. */
export type JobOutcome = { answer: unknown } | { failedReason: string };

/**
 * How a finished job ended, read from three fields of its hash: not `Job.fromId`, which reads the whole hash (the
 * task itself, tens of KiB of evidence and deliveries) when only the outcome is wanted, on every finished task.
 * A job ends for good when it has `finishedOn`: after its last attempt, or at once on an UnrecoverableError (every
 * worker refusal), when it may still have attempts left. The return value is JSON, as BullMQ stores it; one that
 * does not parse, or is null, is no answer.
 * @returns undefined while the job is not finished for good, or is not there
 */
export async function readOutcome(redis: Pick<Redis, 'hmget'>, queue: Pick<QueueBase, 'toKey'>, jobId: string): Promise<JobOutcome | undefined> {
  const [returnvalue, finishedOn, failedReason] = await redis.hmget(queue.toKey(jobId), 'returnvalue', 'finishedOn', 'failedReason');
  if (!finishedOn) return undefined;
  if (returnvalue) {
    let answer: unknown;
    try {
      answer = JSON.parse(returnvalue);
    } catch {
      answer = null;
    }
    if (answer !== null) return { answer };
  }
  return failedReason ? { failedReason } : undefined;
}
