import { appendFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The participant's own record of every task it received: what was asked, by whom, and whether it answered or
 * refused, and why, with the ledger entries the task rested on. It stays in the home (`state/journal.jsonl`, 0600)
 * and is what `confide participant log` shows beside the study's ledger. It holds no data value: the query's
 * shape, never an aggregate or a share.
 */
export interface JournalRecord {
  readonly time: string;
  readonly queryId: string;
  readonly round: number;
  /** The task kind (`shamir.round1`, `shamir.round2`, `paillier.contribute`). */
  readonly task: string;
  readonly outcome: 'answered' | 'refused' | 'failed';
  readonly reason: string | null;
  /** The query's statistics and filters, as text (`mean(salary)`, `age>=40`), when the task carried a query. */
  readonly query: { readonly select: string[]; readonly where: string[]; readonly groupBy: string | null; readonly fields?: string[] } | null;
  /** The API key id that submitted the query, as its ledger entry records it. */
  readonly submittedBy: string | null;
  /** Ledger indices of the entries the task was authorised by (`query.submitted`, the plan, the round's closing). */
  readonly ledger: { readonly submitted: number; readonly plan: number; readonly closing: number | null } | null;
  /** Records read from the data file for this task (absent in journals written before it was recorded). */
  readonly records?: number | null;
  /** Of those, the records that met the query's conditions: the ones its answer is over (absent in older journals). */
  readonly matched?: number | null;
}

/** A query's shape as journal text: statistics with their fields, conditions, grouping. */
export function describeQuery(query: unknown): JournalRecord['query'] {
  if (!query || typeof query !== 'object') return null;
  const q = query as { select?: unknown; where?: unknown; groupBy?: unknown };
  const text = (v: unknown): string => (typeof v === 'string' || typeof v === 'number' ? String(v) : JSON.stringify(v) ?? '');
  const select = Array.isArray(q.select)
    ? q.select.map((s: { stat?: unknown; field?: unknown; x?: unknown; y?: unknown }) => `${text(s.stat)}(${s.field !== undefined ? text(s.field) : `${text(s.x)}, ${text(s.y)}`})`)
    : [];
  // A word operator (`in`) gets spaces: `rank in ["Prof"]`, not `rankin["Prof"]`.
  const op = (v: unknown): string => (/^[a-z]/i.test(text(v)) ? ` ${text(v)} ` : text(v));
  const where = Array.isArray(q.where) ? q.where.map((w: { field?: unknown; op?: unknown; value?: unknown }) => `${text(w.field)}${op(w.op)}${JSON.stringify(w.value)}`) : [];
  const groupBy = typeof q.groupBy === 'string' ? q.groupBy : null;
  // The fields the query reads, once each: its statistics', its conditions' and its grouping's.
  const named = [
    ...(Array.isArray(q.select) ? q.select.flatMap((s: { field?: unknown; x?: unknown; y?: unknown }) => [s.field, s.x, s.y]) : []),
    ...(Array.isArray(q.where) ? q.where.map((w: { field?: unknown }) => w.field) : []),
    groupBy,
  ];
  const fields = [...new Set(named.filter((f): f is string => typeof f === 'string'))];
  return { select, where, groupBy, fields };
}

export class Journal {
  private readonly file: string;
  private made = false;

  constructor(homeDir: string) {
    this.file = join(homeDir, 'state', 'journal.jsonl');
  }

  /** Appends one record (one line, so a crash leaves at most a half line, which {@link read} skips). */
  append(record: JournalRecord): void {
    if (!this.made) mkdirSync(join(this.file, '..'), { recursive: true, mode: 0o700 });
    this.made = true;
    appendFileSync(this.file, `${JSON.stringify(record)}\n`, { mode: 0o600 });
  }

  /** Every record, oldest first. */
  read(): JournalRecord[] {
    if (!existsSync(this.file)) return [];
    const out: JournalRecord[] = [];
    for (const line of readFileSync(this.file, 'utf8').split('\n')) {
      if (!line.trim()) continue;
      try {
        out.push(JSON.parse(line) as JournalRecord);
      } catch {
        continue;
      }
    }
    return out;
  }
}
