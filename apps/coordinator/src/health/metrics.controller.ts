import { Controller, Get, Header } from '@nestjs/common';
import { ApiBearerAuth, ApiProduces, ApiTags } from '@nestjs/swagger';
import { Roles } from '../auth/decorators';
import { Repositories } from '../storage';

/** One Prometheus sample line; label values escaped as the text exposition format requires. */
function sample(name: string, value: number, labels: Record<string, string> = {}): string {
  const entries = Object.entries(labels);
  const text = entries.length ? `{${entries.map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`).join(',')}}` : '';
  return `${name}${text} ${value}`;
}

/**
 * Prometheus metrics (DESIGN.md "Interfaces": /metrics), text exposition format 0.0.4. Counts only: queries by
 * protocol and status, participants, ledger size, and the process's own memory and uptime; never an input,
 * a result or a key. For admins and auditors, as every route but /health is authenticated (a scraper sends
 * an auditor key as its bearer token).
 */
@ApiTags('health')
@ApiBearerAuth()
@Controller('metrics')
export class MetricsController {
  constructor(private readonly repos: Repositories) {}

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
    const participants = await db.selectFrom('participants').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
    const entries = await this.repos.events.count();
    const memory = process.memoryUsage();
    return [
      '# HELP confide_queries Queries by protocol and status.',
      '# TYPE confide_queries gauge',
      ...queries.map((q) => sample('confide_queries', Number(q.n), { protocol: q.protocol, status: q.status })),
      '# HELP confide_participants Enrolled participants, all studies.',
      '# TYPE confide_participants gauge',
      sample('confide_participants', Number(participants.n)),
      '# HELP confide_ledger_entries Entries in the audit ledger (its tree size).',
      '# TYPE confide_ledger_entries gauge',
      sample('confide_ledger_entries', entries),
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
