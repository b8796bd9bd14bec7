import { Controller, Get, HttpException, Inject } from '@nestjs/common';
import { sql } from 'kysely';
import { pingRedis } from '@confide/queue';
import { Public } from '../auth/decorators';
import type { RedisConnections } from '../orchestration/orchestrator';
import { Repositories } from '../storage';
import { REDIS } from '../tokens';

/**
 * Readiness: the database answers, Redis answers on the connection the routes use, and every other connection the
 * coordinator holds (its queue workers and event listeners) is up. 503 names what is not.
 */
@Controller('health')
export class HealthController {
  constructor(
    private readonly repos: Repositories,
    @Inject(REDIS) private readonly redis: RedisConnections,
  ) {}

  @Get()
  @Public()
  async health(): Promise<{ status: 'ok'; database: 'ok'; redis: 'ok'; connections: number }> {
    const [database, redis] = await Promise.all([
      sql`select 1`.execute(this.repos.database.db).then(
        () => 'ok' as const,
        () => 'down' as const,
      ),
      pingRedis(this.redis.producer, 1000).then((ok) => (ok ? ('ok' as const) : ('down' as const))),
    ]);
    const connections = this.redis.all?.() ?? [this.redis.producer];
    const notReady = connections.filter((c) => c.status !== 'ready');
    if (database !== 'ok' || redis !== 'ok' || notReady.length > 0) {
      const queues = notReady.length > 0 ? `, ${notReady.length} of ${connections.length} Redis connections not ready (${notReady.map((c) => c.status).join(', ')})` : '';
      throw new HttpException({ message: `database ${database}, redis ${redis}${queues}` }, 503);
    }
    return { status: 'ok', database, redis, connections: connections.length };
  }
}
