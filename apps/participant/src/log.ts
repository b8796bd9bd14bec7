import type { LedgerEntry } from '@confide/ledger';
import { describeQuery, Journal, type JournalRecord } from './journal';
import { CoordinatorLink, REQUEST_TIMEOUT_MS } from './coordinator-link';
import type { ParticipantHome } from './home';
import { LedgerView, LedgerViewError } from './ledger-view';

/**
 * Where the ledger records a task: its query, the closing of its round (which lists this participant as a
 * contributor, as missing, or with its refusal), the query's failure or its result. `state` sums it up:
 * `contributed` (the closing lists this contribution), `refused` / `missing` (the closing records the refusal, or
 * the participant as missing), `failed` (the ledger records the query's failure), `recorded` (the query is in the
 * ledger, its round not closed yet), `none` (no entry at all: a query that failed before it was recorded, or a
 * task the ledger never saw).
 */
export interface TaskLedger {
  readonly state: 'contributed' | 'refused' | 'missing' | 'failed' | 'recorded' | 'none';
  readonly submitted: number | null;
  readonly closing: number | null;
  readonly failed: { readonly index: number; readonly reason: string } | null;
  readonly released: number | null;
  /** The same, in words. */
  readonly text: string;
}

/** One task as `participant log` shows it: the journal's record and where the ledger records it. */
export interface LoggedTask extends JournalRecord {
  /** The index of the query's `query.submitted` entry in this participant's verified view, or null when there is none. */
  readonly inLedger: number | null;
  readonly entries: TaskLedger;
}

/** The ledger entries about one query: its submission, each round's closing, its failure and its result. */
export interface QueryEntries {
  submitted?: number;
  closings: Map<number, { index: number; body: Record<string, unknown> }>;
  failed?: { index: number; reason: string };
  released?: number;
}

/** The entries of a verified ledger view grouped by query id (the first of each kind; the view checks there is one). */
export function entriesByQuery(entries: readonly LedgerEntry[]): Map<string, QueryEntries> {
  const out = new Map<string, QueryEntries>();
  for (const e of entries) {
    const b = e.body as Record<string, unknown>;
    if (typeof b.queryId !== 'string') continue;
    let q = out.get(b.queryId);
    if (!q) out.set(b.queryId, (q = { closings: new Map() }));
    if (e.type === 'query.submitted') q.submitted ??= e.index;
    else if (e.type === 'round.closed' && typeof b.round === 'number' && !q.closings.has(b.round)) q.closings.set(b.round, { index: e.index, body: b });
    else if (e.type === 'query.failed') q.failed ??= { index: e.index, reason: String(b.reason) };
    else if (e.type === 'result.released') q.released ??= e.index;
  }
  return out;
}

/** Where the ledger records one task of this participant (see {@link TaskLedger}). */
export function taskLedger(task: JournalRecord, self: string, q: QueryEntries | undefined): TaskLedger {
  const submitted = q?.submitted ?? null;
  const failed = q?.failed ?? null;
  const released = q?.released ?? null;
  const closed = q?.closings.get(task.round);
  const closing = closed?.index ?? null;
  const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
  const contributed = list(closed?.body.contributors).some((c) => (c as { id?: unknown }).id === self);
  const refusal = list(closed?.body.refusals).find((r) => (r as { participantId?: unknown }).participantId === self) as { reason?: unknown } | undefined;
  const missing = list(closed?.body.missing).includes(self);
  const state: TaskLedger['state'] = contributed ? 'contributed' : refusal ? 'refused' : missing ? 'missing' : failed ? 'failed' : submitted !== null ? 'recorded' : 'none';
  const query = submitted !== null ? `query in ledger entry ${submitted}` : '';
  const end = failed ? `query failed (ledger entry ${failed.index}): ${failed.reason}` : released !== null ? `result released (ledger entry ${released})` : '';
  const text =
    state === 'none'
      ? 'no ledger entry: query failed or not recorded'
      : [
          query,
          state === 'contributed'
            ? `contribution counted in round ${task.round} (ledger entry ${closing})`
            : state === 'refused'
              ? `refusal recorded in round ${task.round} (ledger entry ${closing}): ${String(refusal!.reason)}`
              : state === 'missing'
                ? `round ${task.round} closed without this contribution (ledger entry ${closing})`
                : state === 'recorded' && !end
                  ? `round ${task.round} not closed yet`
                  : '',
          end,
        ]
          .filter((t) => t !== '')
          .join('; ');
  return { state, submitted, closing, failed, released, text };
}

/** One entry of the study's ledger, summarised for people. */
export interface StudyEntrySummary {
  readonly index: number;
  readonly time: string;
  readonly type: string;
  readonly queryId: string | null;
  readonly summary: string;
}

/** What `confide participant log` reports. */
export interface ParticipantLog {
  /** False when the ledger view could not be verified, or an answered task's query is not in the ledger. */
  readonly ok: boolean;
  readonly treeSize: number | null;
  readonly reason: string | null;
  readonly tasks: readonly LoggedTask[];
  readonly study: readonly StudyEntrySummary[];
}

function summarize(e: LedgerEntry): string {
  const b = e.body as Record<string, unknown>;
  const list = (v: unknown): string => (Array.isArray(v) ? v.map(String).join(', ') : '');
  switch (e.type) {
    case 'study.created':
      return `study ${String(b.name)}`;
    case 'participant.enrolled':
      return `${String(b.name)} (${String(b.participantId)}) enrolled; keys ${String(b.encryptionKeyFingerprint).slice(0, 16)}…/${String(b.signingKeyFingerprint).slice(0, 16)}…`;
    case 'participant.removed':
      return `${String(b.name)} (${String(b.participantId)}) removed by ${String(b.removedBy)}`;
    case 'participant.updated':
      return `${String(b.name)} (${String(b.participantId)}) maxRecords ${String(b.previousMaxRecords)} → ${String(b.maxRecords)}, signed by its key`;
    case 'query.submitted': {
      const q = describeQuery(b.query);
      return `${String(b.queryId)} by ${String(b.submittedBy)} (${String(b.protocol)}): ${q ? `${q.select.join(', ')}${q.where.length ? ` where ${q.where.join(' and ')}` : ''}${q.groupBy ? ` by ${q.groupBy}` : ''}` : ''}`;
    }
    case 'committee.drawn':
      return `${String(b.queryId)}: committee ${list(b.committee)} (threshold ${String(b.threshold)}) of ${Array.isArray(b.participants) ? b.participants.length : 0} participants`;
    case 'round.closed':
      return `${String(b.queryId)}: round ${String(b.round)} closed with ${Array.isArray(b.contributors) ? b.contributors.length : 0} contributors`;
    case 'result.released':
      return `${String(b.queryId)}: result released (${String(b.contributors)} contributors)`;
    case 'query.failed':
      return `${String(b.queryId)}: failed at round ${String(b.round)}: ${String(b.reason)}`;
    default:
      return typeof b.queryId === 'string' ? b.queryId : '';
  }
}

/**
 * What this participant computed, and for whom, beside its study's ledger (DESIGN.md "Trust model": every query is
 * in the ledger for participants to see): brings the participant's ledger view up to the coordinator's newest
 * checkpoint (consistent with the one saved, every entry proven), then lists every task from its journal, marking
 * those whose query the ledger does not record, and every entry of its study, enrollments included.
 */
export async function participantLog(home: ParticipantHome, timeoutMs = REQUEST_TIMEOUT_MS): Promise<ParticipantLog> {
  const identity = home.identity();
  const view = new LedgerView(home.dir, home.coordinatorKey(), new CoordinatorLink(identity.coordinatorUrl, identity.participantId, home.keys().signing, 0, timeoutMs), identity.studyId);
  let reason: string | null = null;
  let entries: LedgerEntry[];
  let treeSize: number | null;
  try {
    treeSize = (await view.catchUp()).size;
    entries = view.studyEntries();
  } catch (err) {
    if (!(err instanceof LedgerViewError)) throw err;
    reason = err.message;
    entries = view.studyEntries();
    treeSize = view.saved()?.size ?? null;
  }
  const byQuery = entriesByQuery(entries);
  const tasks = new Journal(home.dir).read().map((t) => {
    const q = byQuery.get(t.queryId);
    return { ...t, inLedger: q?.submitted ?? null, entries: taskLedger(t, identity.participantId, q) };
  });
  const unlogged = tasks.filter((t) => t.outcome === 'answered' && t.inLedger === null);
  if (!reason && unlogged.length) reason = `answered ${unlogged.length} task${unlogged.length === 1 ? '' : 's'} whose query the ledger does not record: ${unlogged.map((t) => t.queryId).join(', ')}`;
  const study = entries.map((e) => ({ index: e.index, time: e.time, type: e.type, queryId: typeof e.body.queryId === 'string' ? e.body.queryId : null, summary: summarize(e) }));
  return { ok: reason === null, treeSize, reason, tasks, study };
}
