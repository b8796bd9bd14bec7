import { z } from 'zod';

/**
 * A worker's heartbeat (issue 14): a signed participant request every 15 s (apps/participant worker
 * HEARTBEAT_MS) saying it runs, with what an on-call person needs and nothing about its data: its version, its
 * task queue (counts, and how long the oldest waiting task has waited), its last task (query, round, outcome),
 * and the tasks it refused since it started, by kind of refusal. `stopping` is its last one, sent as it stops.
 */
export const heartbeatSchema = z.strictObject({
  version: z.string().min(1).max(64),
  queue: z.strictObject({ waiting: z.number().int().min(0), active: z.number().int().min(0), delayed: z.number().int().min(0), oldestWaitingMs: z.number().int().min(0).nullable() }).nullable(),
  lastTask: z
    .strictObject({
      queryId: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/),
      round: z.number().int().min(0).max(2),
      outcome: z.enum(['answered', 'refused', 'failed']),
      at: z.iso.datetime(),
    })
    .nullable(),
  refused: z.record(z.string().regex(/^[a-z_]{1,32}$/), z.number().int().min(0)).refine((r) => Object.keys(r).length <= 32, 'at most 32 kinds'),
  stopping: z.boolean(),
});
export type Heartbeat = z.infer<typeof heartbeatSchema>;

/** What a participant row says about whether its worker runs. */
export interface Presence {
  readonly last_seen_at: number | null;
  readonly stopped_at: number | null;
}

/**
 * Online: seen (a heartbeat, another signed request, or a task answered or refused) within the window, and not
 * stopped since: a worker that says it is stopping is offline at once, one that dies is offline when the window
 * has passed without a heartbeat.
 */
export function isOnline(p: Presence, now: number, windowMs: number): boolean {
  if (p.last_seen_at === null) return false;
  if (p.stopped_at !== null && Number(p.stopped_at) >= Number(p.last_seen_at)) return false;
  return now - Number(p.last_seen_at) <= windowMs;
}

/** The stored heartbeat, or null when there is none or it does not parse (an older worker's). */
export function readHeartbeat(json: string | null): Omit<Heartbeat, 'stopping'> | null {
  if (json === null) return null;
  try {
    const parsed = heartbeatSchema.omit({ stopping: true }).safeParse(JSON.parse(json));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}
