import { Controller, Get, HttpException, Inject } from '@nestjs/common';
import { Public } from '../auth/decorators';
import type { RedisConnections } from '../orchestration/orchestrator';
import { Repositories } from '../storage';
import { DEPENDENCIES, REDIS } from '../tokens';
import type { Dependencies } from './dependencies';
import { probeReadiness } from './readiness';

/** What /health says of one dependency when something is down. */
interface DependencyHealth {
  readonly state: 'up' | 'down';
  /** Whole seconds since its outage was first reported, when it was. */
  readonly downSeconds?: number;
}

/**
 * Readiness: the database answers, Redis answers on the connection the routes use, and every other connection the
 * coordinator holds (its queue workers and event listeners) is up. 503 names what is not: `database` and `redis`
 * (`ok` or `down`), and under `dependencies` each one's state and every Redis connection by name with its state.
 * Addresses stay out: the route is public, and the log has them.
 */
@Controller('health')
export class HealthController {
  constructor(
    private readonly repos: Repositories,
    @Inject(REDIS) private readonly redis: RedisConnections,
    @Inject(DEPENDENCIES) private readonly dependencies: Dependencies,
  ) {}

  @Get()
  @Public()
  async health(): Promise<{ status: 'ok'; database: 'ok'; redis: 'ok'; connections: number }> {
    const probe = await probeReadiness(this.repos.database.db, this.redis);
    const database = probe.database ? ('ok' as const) : ('down' as const);
    const redis = probe.redis ? ('ok' as const) : ('down' as const);
    const { connections, notReady } = probe;
    if (database !== 'ok' || redis !== 'ok' || notReady.length > 0) {
      const queues = notReady.length > 0 ? `, ${notReady.length} of ${connections.length} Redis connections not ready (${notReady.map((c) => c.status).join(', ')})` : '';
      const since = (reported: { since?: number }): { downSeconds?: number } => (reported.since === undefined ? {} : { downSeconds: Math.floor((Date.now() - reported.since) / 1000) });
      const dependencies: { database: DependencyHealth; redis: DependencyHealth & { connections: { name: string; state: string }[] } } = {
        database: { state: database === 'ok' ? 'up' : 'down', ...(database === 'ok' ? {} : since(this.dependencies.database.state)) },
        redis: {
          state: redis === 'ok' && notReady.length === 0 ? 'up' : 'down',
          ...(redis === 'ok' && notReady.length === 0 ? {} : since(this.dependencies.redis.reporter.state)),
          connections: this.dependencies.redis.states(),
        },
      };
      throw new HttpException({ message: `database ${database}, redis ${redis}${queues}`, status: 'unavailable', database, redis, dependencies }, 503);
    }
    return { status: 'ok', database, redis, connections: connections.length };
  }
}
