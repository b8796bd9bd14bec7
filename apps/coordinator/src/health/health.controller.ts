import { Controller, Get, HttpException, Inject } from '@nestjs/common';
import { sql } from 'kysely';
import { pingRedis } from '@confide/queue';
import { Public } from '../auth/decorators';
import type { RedisConnections } from '../orchestration/orchestrator';
import { Repositories } from '../storage';
import { REDIS } from '../tokens';

/** Readiness: the database and Redis both answer. 503 names which does not. */
@Controller('health')
export class HealthController {
  constructor(
    private readonly repos: Repositories,
    @Inject(REDIS) private readonly redis: RedisConnections,
  ) {}

  @Get()
  @Public()
  async health(): Promise<{ status: 'ok'; database: 'ok'; redis: 'ok' }> {
    const [database, redis] = await Promise.all([
      sql`select 1`.execute(this.repos.database.db).then(
        () => 'ok' as const,
        () => 'down' as const,
      ),
      pingRedis(this.redis.producer, 1000).then((ok) => (ok ? ('ok' as const) : ('down' as const))),
    ]);
    if (database !== 'ok' || redis !== 'ok') throw new HttpException({ message: `database ${database}, redis ${redis}` }, 503);
    return { status: 'ok', database, redis };
  }
}
