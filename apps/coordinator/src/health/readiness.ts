import { sql, type Kysely } from 'kysely';
import { pingRedis, type RedisClient } from '@confide/queue';
import type { Tables } from '../db/schema';
import type { RedisConnections } from '../orchestration/orchestrator';

/** What /health and GET /v1/status/health probe: one probe, so the two never disagree on what "up" means. */
export interface Readiness {
  /** `select 1` answered. */
  readonly database: boolean;
  /** PING answered within a second on the connection the routes use. */
  readonly redis: boolean;
  /** Every Redis connection the coordinator holds (the routes', its queue workers', its event listeners'). */
  readonly connections: readonly RedisClient[];
  /** Those not `ready` (reconnecting, closed, …). */
  readonly notReady: readonly RedisClient[];
}

/** Pings the database and Redis at once and reads each Redis connection's state; never throws. */
export async function probeReadiness(db: Kysely<Tables>, redis: RedisConnections): Promise<Readiness> {
  const [database, ping] = await Promise.all([
    sql`select 1`.execute(db).then(
      () => true,
      () => false,
    ),
    pingRedis(redis.producer, 1000),
  ]);
  const connections = redis.all?.() ?? [redis.producer];
  return { database, redis: ping, connections, notReady: connections.filter((c) => c.status !== 'ready') };
}
