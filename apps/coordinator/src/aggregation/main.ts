import { z } from 'zod';
import { createRedis, OutageMonitor, REDIS_URL_SCHEMES, settledWithin, stopWithin } from '@confide/queue';
import { loadCoordinatorKey } from '../coordinator-key';
import { createLogger } from '../logging';
import { Aggregator } from './aggregator';

const envSchema = z.object({
  REDIS_URL: z.string().regex(REDIS_URL_SCHEMES, 'must be a redis://, rediss://, redis+cluster:// or rediss+cluster:// URL').default('redis://127.0.0.1:6379'),
  CONFIDE_DATA_DIR: z.string().min(1).default('./data'),
  CONFIDE_QUEUE_PREFIX: z.string().regex(/^[A-Za-z0-9_-]{1,40}$/, 'letters, digits, - and _ only').default('confide'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

/** How long a stop waits for BullMQ to drain before it drops its connections (within its coordinator's own grace). */
const STOP_GRACE_MS = 4_000;

/**
 * Runs one Paillier aggregation worker process until SIGTERM: the coordinator forks these (CONFIDE_AGGREGATORS),
 * and `confide coordinator aggregate` runs one anywhere with the coordinator's data directory (for its key) and
 * Redis. Needs no database and serves no HTTP.
 * @throws Error naming the variable on a bad environment, or when the coordinator key is missing
 */
export async function runAggregator(env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) throw new Error(`invalid configuration:\n  ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('\n  ')}`);
  const e = parsed.data;
  const logger = createLogger(e.LOG_LEVEL, 'aggregator');
  // A forked aggregator goes when its coordinator does, even one killed outright, and even while Redis is down (a
  // clean stop drains BullMQ, which needs Redis): it must not live on as an orphan holding the coordinator's stdout.
  process.once('disconnect', () => setTimeout(() => process.exit(0), STOP_GRACE_MS));
  const key = loadCoordinatorKey(e.CONFIDE_DATA_DIR);
  // One line per Redis outage, from the coordinator that forked this process (it reports the same Redis) or, run
  // on its own (`confide coordinator aggregate`, no IPC channel), from here.
  const outages = new OutageMonitor(logger, { what: 'aggregation worker', url: e.REDIS_URL, quiet: process.send !== undefined });
  const connection = createRedis(e.REDIS_URL, { role: 'worker' });
  const reader = createRedis(e.REDIS_URL, { role: 'producer' });
  outages.watch(connection, 'aggregation worker').watch(reader, 'reader');
  const aggregator = new Aggregator({ connection, reader, prefix: e.CONFIDE_QUEUE_PREFIX, key, logger, outages });
  await aggregator.start();
  await new Promise<void>((resolve) => {
    for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => resolve());
    // A forked aggregator goes when its coordinator does.
    process.once('disconnect', () => resolve());
  });
  const stopped = (async () => {
    outages.stop();
    await aggregator.stop();
    await Promise.allSettled([connection.quit(), reader.quit()]);
  })();
  await stopWithin(
    async () => {
      // Redis down: drop the connections after the grace period rather than wait for it.
      if (await settledWithin(stopped, STOP_GRACE_MS)) return;
      logger.warn({ graceMs: STOP_GRACE_MS }, 'stopping without draining: Redis did not answer in time');
      connection.disconnect();
      reader.disconnect();
      await settledWithin(stopped, 1_000);
    },
    { logger, stillOpen: () => [connection, reader].filter((c) => c.status !== 'end').map((c) => `Redis connection (${c.status})`) },
  );
}

if (require.main === module) {
  runAggregator().then(
    () => process.exit(0),
    (err: unknown) => {
      process.stderr.write(`aggregator: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    },
  );
}
