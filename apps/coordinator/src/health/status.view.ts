import { z } from 'zod';

const count = z.number().int().min(0);

/** `GET /v1/status`: counts only (never a result, an input or a key); the OpenAPI response is generated from it. */
export const statusView = z.strictObject({
  onlineWindowSeconds: count.describe('a participant is online when heard from (a heartbeat, another signed request, a task answered or refused) within this many seconds, and not stopped since'),
  windowSeconds: count.describe('failedLastHour and succeededLastHour count queries that finished within this many seconds'),
  ledgerSize: count.describe('entries in the audit ledger (its tree size)'),
  studies: z.array(
    z.strictObject({
      name: z.string(),
      participants: count.describe('enrolled and not removed'),
      online: count.describe('of those, online'),
      running: count.describe('queries running now'),
      failedLastHour: count,
      succeededLastHour: count,
    }),
  ),
});
export type StatusView = z.infer<typeof statusView>;
