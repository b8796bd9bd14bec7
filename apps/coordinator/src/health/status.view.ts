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

const up = z.enum(['up', 'down']);
const depths = z.strictObject({ waiting: count, active: count, delayed: count });

/**
 * `GET /v1/status/health`: the console's health page, which must render during an outage, so a dependency that is
 * down is reported, not answered with 503. Failure messages are the queries' failure reasons, which
 * `GET /v1/queries/:id` shows too: they name participants and rounds, never a value.
 */
export const healthView = z.strictObject({
  database: up.describe('select 1 answered'),
  redis: up.describe("PING answered on the routes' connection and every Redis connection of the coordinator is ready"),
  connections: z.array(z.strictObject({ name: z.string(), state: z.string().describe('ioredis status: ready, reconnecting, …') })),
  queues: z
    .strictObject({ tasks: depths.describe("every participant's task queue (removed participants aside), summed"), aggregation: depths.describe('Paillier aggregation jobs') })
    .nullable()
    .describe('null while Redis does not answer'),
  failures: z.strictObject({
    windowSeconds: count.describe('byReason counts queries that failed within this many seconds'),
    byReason: z.array(z.strictObject({ protocol: z.string(), reason: z.string().describe('the kind of failure reason, as /metrics labels it (too_few_answers, deadline, …, other)'), count })),
  }),
  recent: z
    .array(
      z.strictObject({
        queryId: z.string(),
        study: z.string(),
        protocol: z.string(),
        reason: z.string().describe('the kind, as in byReason'),
        message: z.string().nullable().describe("the query's failure reason"),
        finishedAt: z.string().nullable(),
      }),
    )
    .describe('the last 20 failed queries, newest first'),
  eventStreams: count.describe('GET /v1/queries/events streams open in this coordinator process, each polling the database every 250 ms'),
});
export type HealthView = z.infer<typeof healthView>;
