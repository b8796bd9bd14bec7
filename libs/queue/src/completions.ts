import type { Redis } from 'ioredis';
import { parseTaskJobId, type TaskRound } from './names';

/**
 * Completion notices: how the coordinator learns that tasks finished without a listener per participant queue.
 *
 * Each worker appends the id of every task job it finished (answered or refused) to one stream
 * ({@link completionsKey}); the coordinator reads that stream with one blocking XREAD and looks at each named
 * job's outcome in its participant's own queue (readOutcome), a batch at a time. A notice is only a hint: it
 * carries a job id and nothing else, so a participant that writes a false one (another participant's job id, a
 * job that did not finish, garbage) makes the coordinator read an outcome that is not there, or one it would
 * have read anyway, and nothing more. A notice that is lost (Redis restarted, the worker crashed between
 * finishing and writing it) leaves its round to the coordinator's timer and recovery, which read every open
 * round's outcomes, as they did for an event no listener saw. Participants may append and not read (acl.ts):
 * the stream names other participants' job ids, which a participant has no business seeing.
 */

/** Roughly how many notices the stream keeps (XADD MAXLEN ~): a flood by one participant cannot grow it further. */
export const COMPLETIONS_MAX_LEN = 100_000;

/**
 * A worker's notice that task job `jobId` finished.
 * @returns the entry id
 */
export async function noteFinished(redis: Pick<Redis, 'xadd'>, key: string, jobId: string): Promise<string | null> {
  return redis.xadd(key, 'MAXLEN', '~', COMPLETIONS_MAX_LEN, '*', 'job', jobId);
}

/** The finished tasks of one batch of notices, by query, then round, then the participants named. */
export type FinishedTasks = Map<string, Map<TaskRound, Set<string>>>;

/**
 * Groups notices' job ids by query and round; ids Confide did not make (parseTaskJobId) are left out, and a job named
 * twice counts once.
 */
export function groupFinished(jobIds: Iterable<string>): FinishedTasks {
  const byQuery: FinishedTasks = new Map();
  for (const jobId of jobIds) {
    const parsed = parseTaskJobId(jobId);
    if (!parsed) continue;
    let rounds = byQuery.get(parsed.queryId);
    if (!rounds) byQuery.set(parsed.queryId, (rounds = new Map<TaskRound, Set<string>>()));
    let ids = rounds.get(parsed.round);
    if (!ids) rounds.set(parsed.round, (ids = new Set<string>()));
    ids.add(parsed.participantId);
  }
  return byQuery;
}

/** Notices read per XREAD: a round of 1,000 participants finishing at once is one or two reads. */
const BATCH = 1000;

/**
 * Reads the completion stream from `from` on, forever, on a connection of its own (XREAD BLOCK holds it), and hands
 * each batch's job ids to `onBatch` (awaited, so batches arrive in order and one at a time). Errors (Redis away)
 * go to `onError` and the read is tried again after `retryMs`; the position is kept, and entries appended meanwhile
 * are read when Redis answers again (entries lost with Redis are the timer's to find).
 */
export class CompletionReader {
  private stopped = false;
  private loop?: Promise<void>;

  constructor(
    private readonly redis: Pick<Redis, 'xread' | 'time' | 'disconnect'>,
    private readonly key: string,
    private readonly onBatch: (jobIds: string[]) => Promise<void>,
    private readonly onError: (err: unknown) => void,
    private readonly opts: { blockMs?: number; retryMs?: number } = {},
  ) {}

  /** Starts reading after entry id `from` (`now`: what is appended from now on, by Redis's clock). */
  start(from: string): void {
    this.loop ??= this.run(from);
  }

  private async run(from: string): Promise<void> {
    // Not XREAD's `$`: each new read would start from the newest entry again, missing what came between two reads.
    let last = from === 'now' ? await this.now() : from;
    const blockMs = this.opts.blockMs ?? 1000;
    while (!this.stopped) {
      let reply: [string, [string, string[]][]][] | null;
      try {
        reply = await this.redis.xread('COUNT', BATCH, 'BLOCK', blockMs, 'STREAMS', this.key, last);
      } catch (err) {
        if (this.stopped) return;
        this.onError(err);
        await new Promise((r) => setTimeout(r, this.opts.retryMs ?? 500));
        continue;
      }
      const entries = reply?.[0]?.[1] ?? [];
      if (entries.length === 0) continue;
      // `$` names no entry: from the first batch on, the position is the last entry read.
      last = entries[entries.length - 1]![0];
      const jobIds: string[] = [];
      for (const [, fields] of entries) {
        for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i] === 'job') jobIds.push(fields[i + 1]!);
      }
      try {
        await this.onBatch(jobIds);
      } catch (err) {
        this.onError(err);
      }
    }
  }

  /** An entry id for this instant on Redis's clock (its TIME), tried until Redis answers or the reader stops. */
  private async now(): Promise<string> {
    for (;;) {
      try {
        const [seconds, micros] = await this.redis.time();
        return `${Number(seconds) * 1000 + Math.floor(Number(micros) / 1000)}-0`;
      } catch (err) {
        if (this.stopped) return '0-0';
        this.onError(err);
        await new Promise((r) => setTimeout(r, this.opts.retryMs ?? 500));
      }
    }
  }

  /** Stops reading: the blocked XREAD is cut by closing the connection. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.redis.disconnect();
    await this.loop;
  }
}
