import { join } from 'node:path';
import { sql } from 'kysely';
import { OutageMonitor, OutageReporter, withoutCredentials } from '@confide/queue';
import type { CoordinatorConfig } from '../config';
import { isDatabaseOutage, SQLITE_FILE, type Database } from '../db/database';
import type { Logger } from '../logging';

/**
 * How often the database is pinged, to see an outage start while nothing else uses it, and to see it end: every 5 s
 * while it answers, every second while it does not, so its return is seen (and acted on) within about 2 s.
 */
const DATABASE_PROBE_MS = 5_000;
const DATABASE_PROBE_DOWN_MS = 1_000;
const DATABASE_PROBE_TIMEOUT_MS = 2_000;

/**
 * The coordinator's two dependencies, Redis and the database, each reported once per outage (libs/queue outage.ts):
 * every Redis connection and BullMQ object routes its errors to {@link redis}; database outages are seen by a ping
 * every few seconds, by idle pooled connections that fail, and by requests that fail on them (the error filter).
 * /health reads their state from here.
 */
export class Dependencies {
  readonly redis: OutageMonitor;
  readonly database: OutageReporter;
  private probe?: NodeJS.Timeout;
  private stopped = false;

  constructor(config: Pick<CoordinatorConfig, 'redisUrl' | 'databaseUrl' | 'dataDir'>, logger: Logger) {
    this.redis = new OutageMonitor(logger, { what: 'coordinator', url: config.redisUrl });
    const url = config.databaseUrl ?? `sqlite:${join(config.dataDir, SQLITE_FILE)}`;
    const checks = config.databaseUrl
      ? `is PostgreSQL running at ${withoutCredentials(url)}? is DATABASE_URL right?`
      : `does another process hold ${url.slice('sqlite:'.length)} locked? is CONFIDE_DATA_DIR on a disk that answers?`;
    this.database = new OutageReporter(logger, { dependency: 'database', what: 'coordinator', url, checks });
  }

  /** A database error: an outage's starts (or continues) the database's outage; true when it was one. */
  databaseError(err: unknown): boolean {
    if (!isDatabaseOutage(err)) return false;
    this.database.lost(err);
    return true;
  }

  /** Pings the database every few seconds, so the outage's start and end are seen whoever uses it. */
  watchDatabase(database: Database): void {
    const ping = async (): Promise<void> => {
      let timer: NodeJS.Timeout | undefined;
      try {
        await Promise.race([
          sql`select 1`.execute(database.db),
          new Promise((_, reject) => {
            timer = setTimeout(() => reject(new Error(`no answer within ${DATABASE_PROBE_TIMEOUT_MS / 1000} s`)), DATABASE_PROBE_TIMEOUT_MS);
          }),
        ]);
        this.database.restored();
      } catch (err) {
        // A ping that times out is an outage too (a relay that accepts and never answers).
        this.database.lost(err);
      } finally {
        clearTimeout(timer);
      }
    };
    const next = (): void => {
      if (this.stopped) return;
      this.probe = setTimeout(() => void ping().finally(next), this.database.down ? DATABASE_PROBE_DOWN_MS : DATABASE_PROBE_MS);
      this.probe.unref();
    };
    next();
  }

  /** No more lines or pings: the coordinator is stopping. */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.probe);
    this.redis.stop();
    this.database.stop();
  }
}
