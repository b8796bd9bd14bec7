import type { LedgerEntry } from '@confide/ledger';
import { describeQuery, Journal, type JournalRecord } from './journal';
import { CoordinatorLink, REQUEST_TIMEOUT_MS } from './coordinator-link';
import type { ParticipantHome } from './home';
import { LedgerView, LedgerViewError } from './ledger-view';

/** One task as `participant log` shows it: the journal's record and whether the ledger records its query. */
export interface LoggedTask extends JournalRecord {
  /** The index of the query's `query.submitted` entry in this participant's verified view, or null when there is none. */
  readonly inLedger: number | null;
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
  const view = new LedgerView(home.dir, home.coordinatorKey(), new CoordinatorLink(identity.coordinatorUrl, identity.participantId, home.keys().signing, 0, timeoutMs));
  let reason: string | null = null;
  let entries: LedgerEntry[];
  let treeSize: number | null;
  try {
    const caught = await view.catchUp();
    entries = caught.entries;
    treeSize = caught.checkpoint.size;
  } catch (err) {
    if (!(err instanceof LedgerViewError)) throw err;
    reason = err.message;
    entries = view.studyEntries();
    treeSize = view.saved()?.size ?? null;
  }
  const submitted = new Map<string, number>();
  for (const e of entries) if (e.type === 'query.submitted' && typeof e.body.queryId === 'string') submitted.set(e.body.queryId, e.index);
  const tasks = new Journal(home.dir).read().map((t) => ({ ...t, inLedger: submitted.get(t.queryId) ?? null }));
  const unlogged = tasks.filter((t) => t.outcome === 'answered' && t.inLedger === null);
  if (!reason && unlogged.length) reason = `answered ${unlogged.length} task${unlogged.length === 1 ? '' : 's'} whose query the ledger does not record: ${unlogged.map((t) => t.queryId).join(', ')}`;
  const study = entries.map((e) => ({ index: e.index, time: e.time, type: e.type, queryId: typeof e.body.queryId === 'string' ? e.body.queryId : null, summary: summarize(e) }));
  return { ok: reason === null, treeSize, reason, tasks, study };
}
