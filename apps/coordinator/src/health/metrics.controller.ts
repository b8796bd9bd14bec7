import { Controller, Get, Header, Inject } from '@nestjs/common';
import { ApiBearerAuth, ApiProduces, ApiTags } from '@nestjs/swagger';
import { sql } from 'kysely';
import { Roles } from '../auth/decorators';
import { histogramLines, LEDGER_APPEND_SECONDS, sample } from '../metrics/prometheus';
import { Orchestrator } from '../orchestration/orchestrator';
import { Repositories } from '../storage';
import type { CoordinatorConfig } from '../config';
import { isOnline, readHeartbeat } from '../participants/presence';
import { CONFIG } from '../tokens';
import { failureKindSql } from './failure-kind';

/** Upper bounds (seconds) of the round duration histogram: a quick round takes under a second, a deadline minutes. */
const ROUND_BUCKETS = [0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600];

/**
 * Prometheus metrics (DESIGN.md "Interfaces": /metrics), text exposition format 0.0.4: what an on-call person
 * needs, counts and durations only, never an input, a result or a key. For admins and auditors, as every route but
 * /health is authenticated (a scraper sends an auditor key as its bearer token).
 *
 * The database's totals (queries, rounds, failures, participants) are the same from every coordinator process
 * over one database; the ledger append histogram and the queue depths are this process's view.
 */
@ApiTags('health')
@ApiBearerAuth()
@Controller('metrics')
export class MetricsController {
  constructor(
    private readonly repos: Repositories,
    private readonly orchestrator: Orchestrator,
    @Inject(CONFIG) private readonly config: CoordinatorConfig,
  ) {}

  @Get()
  @Roles('admin', 'auditor')
  @Header('content-type', 'text/plain; version=0.0.4; charset=utf-8')
  @ApiProduces('text/plain')
  async metrics(): Promise<string> {
    const db = this.repos.database.db;
    const queries = await db
      .selectFrom('queries')
      .select(['protocol', 'status', (eb) => eb.fn.countAll<number>().as('n')])
      .groupBy(['protocol', 'status'])
      .execute();
    // Each failure reason is counted by its kind (libs/protocol FAILURE_KINDS: a phrase only that kind's messages hold).
    const failures = await db
      .selectFrom('queries')
      .where('status', '=', 'failed')
      .select(['protocol', failureKindSql().as('kind'), (eb) => eb.fn.countAll<number>().as('n')])
      .groupBy(['protocol', 'kind'])
      .execute();
    const rounds = await db
      .selectFrom('rounds as r')
      .innerJoin('queries as q', 'q.id', 'r.query_id')
      .where('r.closed_at', 'is not', null)
      .select(['q.protocol', 'r.round', 'r.status', (eb) => eb.fn.countAll<number>().as('n'), sql<number>`sum(r.closed_at - r.opened_at)`.as('ms')])
      .select(ROUND_BUCKETS.map((le, i) => sql<number>`sum(case when r.closed_at - r.opened_at <= ${sql.lit(le * 1000)} then 1 else 0 end)`.as(`b${i}`)))
      .groupBy(['q.protocol', 'r.round', 'r.status'])
      .execute();
    const studies = await this.repos.studies.list();
    const people = await db.selectFrom('participants').select(['id', 'study_id', 'removed_at', 'last_seen_at', 'stopped_at', 'heartbeat_json']).execute();
    const now = Date.now();
    const taking = people.filter((p) => p.removed_at === null);
    const depths = await this.orchestrator.queueDepths(taking.map((p) => p.id));
    const entries = await this.repos.events.count();
    const memory = process.memoryUsage();
    const online = (p: (typeof taking)[number]): boolean => isOnline(p, now, this.config.onlineSeconds * 1000);
    // Refusals by kind, as each running worker counts them since it started (its last heartbeat).
    const refused = new Map<string, number>();
    for (const p of taking) {
      const study = studies.find((s) => s.id === p.study_id)?.name ?? p.study_id;
      for (const [kind, n] of Object.entries(readHeartbeat(p.heartbeat_json)?.refused ?? {})) refused.set(`${study}\u0000${kind}`, (refused.get(`${study}\u0000${kind}`) ?? 0) + n);
    }
    const perStudy = (name: string, counted: (p: (typeof taking)[number]) => boolean): string[] =>
      studies.map((s) => sample(name, taking.filter((p) => p.study_id === s.id && counted(p)).length, { study: s.name }));
    return [
      '# HELP confide_queries Queries by protocol and status.',
      '# TYPE confide_queries gauge',
      ...queries.map((q) => sample('confide_queries', Number(q.n), { protocol: q.protocol, status: q.status })),
      '# HELP confide_query_failures_total Failed queries by protocol and kind of reason (too_few_answers, not_decrypted, deadline, interrupted, aggregation, other).',
      '# TYPE confide_query_failures_total counter',
      ...failures.map((f) => sample('confide_query_failures_total', Number(f.n), { protocol: f.protocol, reason: String(f.kind) })),
      '# HELP confide_round_duration_seconds From a round opening to its closing (closed) or failing (failed), by protocol and round.',
      '# TYPE confide_round_duration_seconds histogram',
      ...rounds.flatMap((r) => {
        const row = r as unknown as Record<string, unknown>;
        const cumulative = ROUND_BUCKETS.map((_, i) => Number(row[`b${i}`] ?? 0));
        return histogramLines('confide_round_duration_seconds', { buckets: ROUND_BUCKETS, cumulative, count: Number(r.n), sum: Number(r.ms) / 1000 }, { protocol: r.protocol, round: String(r.round), outcome: r.status });
      }),
      '# HELP confide_participants Enrolled participants, all studies (removed ones included).',
      '# TYPE confide_participants gauge',
      sample('confide_participants', people.length),
      '# HELP confide_study_participants Participants taking part in each study (not removed).',
      '# TYPE confide_study_participants gauge',
      ...perStudy('confide_study_participants', () => true),
      `# HELP confide_participants_online Participants of each study seen in the last ${this.config.onlineSeconds} s (a heartbeat, another signed request, or a task answered or refused) and not stopped since.`,
      '# TYPE confide_participants_online gauge',
      ...perStudy('confide_participants_online', online),
      '# HELP confide_worker_refused_tasks Tasks the workers refused since each started, by study and kind, from their heartbeats.',
      '# TYPE confide_worker_refused_tasks gauge',
      ...[...refused].map(([key, n]) => {
        const [study, reason] = key.split('\u0000') as [string, string];
        return sample('confide_worker_refused_tasks', n, { study, reason });
      }),
      '# HELP confide_tasks_queued Tasks in the participants\' queues, by state (waiting, active, delayed).',
      '# TYPE confide_tasks_queued gauge',
      ...Object.entries(depths.tasks).map(([state, n]) => sample('confide_tasks_queued', n, { state })),
      '# HELP confide_aggregation_jobs_queued Paillier aggregation jobs, by state.',
      '# TYPE confide_aggregation_jobs_queued gauge',
      ...Object.entries(depths.aggregation).map(([state, n]) => sample('confide_aggregation_jobs_queued', n, { state })),
      '# HELP confide_ledger_entries Entries in the audit ledger (its tree size).',
      '# TYPE confide_ledger_entries gauge',
      sample('confide_ledger_entries', entries),
      '# HELP confide_ledger_append_seconds Wall time of a ledger append in this process, the wait for the append lock included.',
      '# TYPE confide_ledger_append_seconds histogram',
      ...histogramLines('confide_ledger_append_seconds', LEDGER_APPEND_SECONDS.snapshot()),
      '# HELP process_resident_memory_bytes Resident memory of the coordinator process.',
      '# TYPE process_resident_memory_bytes gauge',
      sample('process_resident_memory_bytes', memory.rss),
      '# HELP process_uptime_seconds Seconds since the coordinator process started.',
      '# TYPE process_uptime_seconds gauge',
      sample('process_uptime_seconds', Math.round(process.uptime())),
      '',
    ].join('\n');
  }
}
