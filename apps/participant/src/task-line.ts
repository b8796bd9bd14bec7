import type { JournalRecord } from './journal';

/** What the worker logs about one task: the query's shape and who asked, never a data value or an aggregate. */
export interface TaskReport {
  readonly queryId: string | null;
  /** The BullMQ job id, for a task whose query could not be read (a bad signature, say). */
  readonly jobId: string | null;
  readonly round: number | null;
  readonly task: string | null;
  readonly query: JournalRecord['query'];
  /** The API key that submitted the query, as its ledger entry records it; null before the task was authorised. */
  readonly submittedBy: string | null;
  /** Records read from the data file (filtered ones included); null when none were read. */
  readonly records: number | null;
  /** Of those, the records that met the query's conditions; null when none were read. */
  readonly matched: number | null;
  readonly outcome: 'answered' | 'refused' | 'failed';
  /** The reason as the coordinator got it. */
  readonly reason: string | null;
  /** Details that stay on this machine (the data file's problems), when there are any. */
  readonly details: string | null;
}

/** The fields a query reads (journal records written before they were recorded have none). */
export function queryFields(query: JournalRecord['query']): string[] {
  return query?.fields ?? [];
}

/**
 * The one line a task gets in the worker's log, the same on a terminal and as a JSON line's msg:
 * `query q1 round 1 (shamir.round1): mean(salary) where rank="Prof"; fields salary, rank; submitted by k1;
 * 48 records read, 12 used; answered` (or `refused: <reason>`). "used" counts the records that met the query's
 * conditions (and, grouped, have a group value): what the answer is computed over.
 */
export function taskSentence(r: TaskReport): string {
  const head = r.queryId ? `query ${r.queryId} round ${r.round ?? '?'}${r.task ? ` (${r.task})` : ''}` : `task ${r.jobId ?? '(no id)'}`;
  const parts: string[] = [];
  if (r.query) {
    const q = r.query;
    parts.push(`${q.select.join(', ') || 'no statistic'}${q.where.length ? ` where ${q.where.join(' and ')}` : ''}${q.groupBy ? ` by ${q.groupBy}` : ''}`);
    parts.push(`fields ${queryFields(q).join(', ') || 'none'}`);
  }
  if (r.queryId) parts.push(`submitted by ${r.submittedBy ?? 'unknown (not authorised)'}`);
  parts.push(r.records === null ? 'no records read' : `${r.records} record${r.records === 1 ? '' : 's'} read${r.matched === null ? '' : `, ${r.matched} used`}`);
  const outcome =
    r.outcome === 'answered' ? 'answered' : r.outcome === 'refused' ? `refused: ${r.reason ?? ''}` : `failed, will be retried: ${r.reason ?? ''}`;
  parts.push(r.details ? `${outcome} — ${r.details}` : outcome);
  return `${head}: ${parts.join('; ')}`;
}

/** The structured fields of the task's JSON log line, beside its sentence. */
export function taskFields(r: TaskReport): Record<string, unknown> {
  return {
    jobId: r.jobId,
    queryId: r.queryId,
    round: r.round,
    task: r.task,
    select: r.query?.select ?? null,
    fields: queryFields(r.query),
    where: r.query?.where ?? null,
    groupBy: r.query?.groupBy ?? null,
    submittedBy: r.submittedBy,
    records: r.records,
    matched: r.matched,
    outcome: r.outcome,
    reason: r.reason,
  };
}
