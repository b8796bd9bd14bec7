import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Job, Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { importPrivateKeyPem, publicKeyBase64Url, type KeyPair } from '@confide/crypto';
import { participantQueue, taskPartKey, type DirectoryEntry } from '@confide/queue';
import { type Cluster, type ParticipantProcess, until as pollUntil } from './cluster';
import { closeConnection } from './redis';

/**
 * What an end-to-end test needs beyond the user-facing commands: the participants' task queues as Redis's
 * administrator sees them (to read a job, or to add one as a malicious coordinator would), the keys a party
 * holds on its own disk, and the coordinator's event log. Nothing here changes how the processes run.
 */

/** A job that reached a final state: completed with an answer, or failed for good. */
export interface FinishedJob {
  readonly state: 'completed' | 'failed';
  readonly data: unknown;
  readonly returnvalue: unknown;
  readonly failedReason: string | undefined;
}

/** Job options as the coordinator dispatches tasks (orchestrator.ts), so a forged or replayed task looks the same. */
const TASK_JOB_OPTIONS = { attempts: 3, backoff: { type: 'exponential', delay: 1000 }, removeOnComplete: false, removeOnFail: false } as const;

const until = <T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> => pollUntil(what, timeoutMs, probe, { intervalMs: 50, tolerant: false });

/** The participants' task queues of one cluster, over an administrator's Redis connection. Close it after. */
export class TaskQueues {
  private readonly connection: Redis;
  private readonly queues = new Map<string, Queue>();

  constructor(private readonly cluster: Cluster) {
    this.connection = new Redis(cluster.redisUrl, { maxRetriesPerRequest: null });
  }

  /** One participant's task queue (the same BullMQ queue the coordinator adds to and the worker takes from). */
  queue(participantId: string): Queue {
    let q = this.queues.get(participantId);
    if (!q) {
      q = new Queue(participantQueue(participantId), { connection: this.connection, prefix: this.cluster.prefix });
      this.queues.set(participantId, q);
    }
    return q;
  }

  /** A job as it is in Redis right now, or undefined when there is none with that id. */
  async job(participantId: string, jobId: string): Promise<Job | undefined> {
    return (await Job.fromId(this.queue(participantId), jobId)) ?? undefined;
  }

  /** Adds a task job (signed task data) to a participant's queue, with the coordinator's job options. */
  async add(participantId: string, name: string, jobId: string, data: unknown): Promise<void> {
    await this.queue(participantId).add(name, data, { ...TASK_JOB_OPTIONS, jobId });
  }

  /** Puts a shared task part (libs/queue task-refs.ts) into Redis under a study's key for `hash`, whatever `text` is. */
  async putPart(studyId: string, hash: string, text: string): Promise<void> {
    await this.connection.set(taskPartKey(this.cluster.prefix, studyId, hash), text, 'PX', 600_000);
  }

  /** Polls a job until it completed or failed for good (finishedOn is set only then), with a deadline. */
  waitForFinished(participantId: string, jobId: string, timeoutMs = 20_000): Promise<FinishedJob> {
    return until(`job ${jobId} to finish`, timeoutMs, async () => {
      const job = await this.job(participantId, jobId);
      if (!job?.finishedOn) return undefined;
      const state = await job.getState();
      if (state !== 'completed' && state !== 'failed') return undefined;
      return { state, data: job.data as unknown, returnvalue: job.returnvalue as unknown, failedReason: job.failedReason || undefined };
    });
  }

  /** Polls until a job exists (the coordinator dispatched it), with a deadline. */
  waitForAdded(participantId: string, jobId: string, timeoutMs = 20_000): Promise<Job> {
    return until(`job ${jobId} to be added`, timeoutMs, () => this.job(participantId, jobId));
  }

  /** Polls until a job is gone (the coordinator removes a finished query's tasks), with a deadline. */
  waitForRemoved(participantId: string, jobId: string, timeoutMs = 20_000): Promise<true> {
    return until(`job ${jobId} to be removed`, timeoutMs, async () => ((await this.job(participantId, jobId)) ? undefined : true));
  }

  async close(): Promise<void> {
    await Promise.all([...this.queues.values()].map((q) => q.close()));
    await closeConnection(this.connection);
  }
}

/** The coordinator's Ed25519 task-signing key, read from its data directory: what a malicious coordinator holds. */
export function coordinatorKey(cluster: Cluster): KeyPair {
  return importPrivateKeyPem('ed25519', readFileSync(join(cluster.dir, 'coordinator', 'coordinator-ed25519.pem'), 'utf8'));
}

/** A participant's private keys, read from its home directory (they never leave it in a real deployment). */
export function participantKeys(p: ParticipantProcess): { encryption: KeyPair; signing: KeyPair } {
  return {
    encryption: importPrivateKeyPem('x25519', readFileSync(join(p.home, 'x25519.pem'), 'utf8')),
    signing: importPrivateKeyPem('ed25519', readFileSync(join(p.home, 'ed25519.pem'), 'utf8')),
  };
}

/** A participant's registered public keys as a task's key directory carries them. */
export function directoryEntry(p: ParticipantProcess): DirectoryEntry {
  const { encryption, signing } = participantKeys(p);
  return { id: p.participantId, encryptionKey: publicKeyBase64Url(encryption.publicKey), signingKey: publicKeyBase64Url(signing.publicKey) };
}

/** The study id a participant enrolled in, from its home's identity.json. */
export function studyIdOf(p: ParticipantProcess): string {
  return (JSON.parse(readFileSync(join(p.home, 'identity.json'), 'utf8')) as { studyId: string }).studyId;
}

/** One entry of GET /v1/events. */
export interface LoggedEvent {
  readonly index: number;
  readonly type: string;
  readonly body: Record<string, unknown>;
}

/** Every event of the coordinator's log (admin token), oldest first. */
export async function eventLog(cluster: Cluster): Promise<LoggedEvent[]> {
  const out: LoggedEvent[] = [];
  for (;;) {
    const page = await cluster.get<{ total: number; events: LoggedEvent[] }>(`/v1/events?start=${out.length}&limit=1000`);
    out.push(...page.events);
    if (page.events.length === 0 || out.length >= page.total) return out;
  }
}

/** The events of one query, by type. */
export async function queryEvents(cluster: Cluster, queryId: string): Promise<LoggedEvent[]> {
  return (await eventLog(cluster)).filter((e) => e.body.queryId === queryId);
}

/**
 * Stops a participant's worker process without ending it (SIGSTOP): it stays connected but answers nothing
 * until {@link thaw}. A test holds a round open this way, deterministically, where a deadline race would not be.
 */
export function freeze(p: ParticipantProcess): void {
  if (!p.process?.kill('SIGSTOP')) throw new Error(`participant ${p.name} is not running`);
}

/** Lets a frozen participant's worker go on (SIGCONT). Harmless on a running one. */
export function thaw(p: ParticipantProcess): void {
  p.process?.kill('SIGCONT');
}
