import { Inject, Injectable } from '@nestjs/common';
import type { CoordinatorConfig } from '../config';
import { Orchestrator, type RedisConnections } from '../orchestration/orchestrator';
import { isOnline } from '../participants/presence';
import { QueryEvents } from '../queries/query-events';
import { Repositories } from '../storage';
import { CONFIG, DEPENDENCIES, REDIS } from '../tokens';
import type { Dependencies } from './dependencies';
import { failureKindSql } from './failure-kind';
import { probeReadiness } from './readiness';
import type { HealthView, StatusView } from './status.view';

/** The window over which `GET /v1/status` counts finished queries. */
export const STATUS_WINDOW_MS = 60 * 60 * 1000;

/** How many failed queries `GET /v1/status/health` lists. */
const RECENT_FAILURES = 20;

/**
 * The consortium at a glance (`confide admin status`): per study, participants enrolled and online, queries running,
 * and queries that failed or succeeded in the last hour; and the ledger's size. Counts only: no result, input, share
 * or key is read.
 */
@Injectable()
export class StatusService {
  constructor(
    private readonly repos: Repositories,
    private readonly orchestrator: Orchestrator,
    private readonly events: QueryEvents,
    @Inject(CONFIG) private readonly config: CoordinatorConfig,
    @Inject(REDIS) private readonly redis: RedisConnections,
    @Inject(DEPENDENCIES) private readonly dependencies: Dependencies,
  ) {}

  /**
   * Builds the status view at `now`. Online is what `GET /v1/studies/:name/participants` calls online
   * ({@link isOnline}: heard from within CONFIDE_ONLINE_SECONDS, not stopped since); removed participants are
   * neither enrolled nor online.
   */
  async view(now = Date.now()): Promise<StatusView> {
    const since = now - STATUS_WINDOW_MS;
    const [studies, participants, queries, ledgerSize] = await Promise.all([
      this.repos.studies.list(),
      this.repos.participants.listAll(),
      this.repos.queries.countByStudyAndStatus(since),
      this.repos.events.count(),
    ]);
    return {
      onlineWindowSeconds: this.config.onlineSeconds,
      windowSeconds: STATUS_WINDOW_MS / 1000,
      ledgerSize,
      studies: studies.map((s) => {
        const enrolled = participants.filter((p) => p.study_id === s.id && p.removed_at === null);
        const count = (status: 'running' | 'failed' | 'succeeded'): number => queries.find((q) => q.studyId === s.id && q.status === status)?.count ?? 0;
        return {
          name: s.name,
          participants: enrolled.length,
          online: enrolled.filter((p) => isOnline(p, now, this.config.onlineSeconds * 1000)).length,
          running: count('running'),
          failedLastHour: count('failed'),
          succeededLastHour: count('succeeded'),
        };
      }),
    };
  }

  /**
   * The console's health page at `now`: the database and Redis as /health probes them, every Redis connection's
   * state, the queues' depths as /metrics counts them, failed queries of the last hour by protocol and kind of
   * reason (the /metrics kinds), the last {@link RECENT_FAILURES} failed queries, and the live query streams open
   * (a stream its client left and that still polled would show here). Redis down is reported, with no
   * queue depths, rather than refused with 503, so the page renders during the outage; the database down fails the
   * request as every route does (503), as everything but the probe reads it.
   */
  async health(now = Date.now()): Promise<HealthView> {
    const db = this.repos.database.db;
    const probe = await probeReadiness(db, this.redis);
    const kind = failureKindSql();
    const [participants, byReason, recent] = await Promise.all([
      this.repos.participants.listAll(),
      db
        .selectFrom('queries')
        .where('status', '=', 'failed')
        .where('finished_at', '>=', now - STATUS_WINDOW_MS)
        .select(['protocol', kind.as('kind'), (eb) => eb.fn.countAll<number | string | bigint>().as('n')])
        .groupBy(['protocol', 'kind'])
        .orderBy('protocol')
        .orderBy('kind')
        .execute(),
      db
        .selectFrom('queries as q')
        .leftJoin('studies as s', 's.id', 'q.study_id')
        .where('q.status', '=', 'failed')
        .select(['q.id', 'q.study_id', 's.name', 'q.protocol', 'q.failure_reason', 'q.finished_at', kind.as('kind')])
        .orderBy('q.finished_at', 'desc')
        .orderBy('q.id', 'desc')
        .limit(RECENT_FAILURES)
        .execute(),
    ]);
    const taking = participants.filter((p) => p.removed_at === null).map((p) => p.id);
    return {
      database: probe.database ? 'up' : 'down',
      redis: probe.redis && probe.notReady.length === 0 ? 'up' : 'down',
      connections: this.dependencies.redis.states(),
      queues: probe.redis ? await this.orchestrator.queueDepths(taking) : null,
      failures: {
        windowSeconds: STATUS_WINDOW_MS / 1000,
        // PostgreSQL's count is a bigint, which the driver returns as a string.
        byReason: byReason.map((r) => ({ protocol: r.protocol, reason: r.kind, count: Number(r.n) })),
      },
      recent: recent.map((q) => ({
        queryId: q.id,
        study: q.name ?? q.study_id,
        protocol: q.protocol,
        reason: q.kind,
        message: q.failure_reason,
        finishedAt: q.finished_at !== null ? new Date(Number(q.finished_at)).toISOString() : null,
      })),
      eventStreams: this.events.open,
    };
  }
}
