import { ENTRY_VERSION, type LedgerEntry } from '@confide/ledger';
import type { JournalRecord } from './journal';
import { entriesByQuery, taskLedger } from './log';

const SELF = 'p000000000000000000000001';
const OTHER = 'p000000000000000000000002';
const entry = (index: number, type: string, body: Record<string, unknown>): LedgerEntry => ({ v: ENTRY_VERSION, index, time: '2026-12-07T00:00:00.000Z', type, body: body as LedgerEntry['body'] });
const task = (queryId: string, outcome: JournalRecord['outcome'] = 'answered'): JournalRecord => ({
  time: '2026-12-07T00:00:01.000Z',
  queryId,
  round: 1,
  task: 'shamir.round1',
  outcome,
  reason: null,
  query: null,
  submittedBy: null,
  ledger: null,
});
const closed = (index: number, queryId: string, body: { contributors?: string[]; missing?: string[]; refusals?: { participantId: string; reason: string }[] }): LedgerEntry =>
  entry(index, 'round.closed', { queryId, round: 1, contributors: (body.contributors ?? []).map((id) => ({ id, bundleHash: '0'.repeat(64) })), missing: body.missing ?? [], refusals: body.refusals ?? [] });

describe('taskLedger', () => {
  const ledger = entriesByQuery([
    entry(3, 'query.submitted', { queryId: 'qa' }),
    closed(5, 'qa', { contributors: [SELF, OTHER] }),
    entry(8, 'result.released', { queryId: 'qa' }),
    entry(9, 'query.submitted', { queryId: 'qb' }),
    entry(10, 'query.failed', { queryId: 'qb', round: 1, reason: 'round 1: 2 of 3 participants answered, at least 3 needed' }),
    entry(11, 'query.submitted', { queryId: 'qc' }),
    closed(12, 'qc', { contributors: [OTHER], refusals: [{ participantId: SELF, reason: "data file failed validation (see the participant's log)" }] }),
    entry(13, 'query.submitted', { queryId: 'qd' }),
    closed(14, 'qd', { contributors: [OTHER], missing: [SELF] }),
    entry(15, 'query.submitted', { queryId: 'qe' }),
  ]);
  const of = (queryId: string, outcome?: JournalRecord['outcome']) => taskLedger(task(queryId, outcome), SELF, ledger.get(queryId));

  it('names the closing that counts the contribution, and the result', () => {
    expect(of('qa')).toEqual({ state: 'contributed', submitted: 3, closing: 5, failed: null, released: 8, text: 'query in ledger entry 3; contribution counted in round 1 (ledger entry 5); result released (ledger entry 8)' });
  });

  it('says failed, with the reason, when the ledger records the query’s failure', () => {
    expect(of('qb', 'refused')).toMatchObject({
      state: 'failed',
      failed: { index: 10, reason: 'round 1: 2 of 3 participants answered, at least 3 needed' },
      text: 'query in ledger entry 9; query failed (ledger entry 10): round 1: 2 of 3 participants answered, at least 3 needed',
    });
  });

  it('names the closing that records a refusal, or the participant as missing', () => {
    expect(of('qc', 'refused')).toMatchObject({ state: 'refused', closing: 12, text: "query in ledger entry 11; refusal recorded in round 1 (ledger entry 12): data file failed validation (see the participant's log)" });
    expect(of('qd', 'failed')).toMatchObject({ state: 'missing', closing: 14, text: 'query in ledger entry 13; round 1 closed without this contribution (ledger entry 14)' });
  });

  it('says a round is still open rather than pending forever', () => {
    expect(of('qe')).toMatchObject({ state: 'recorded', submitted: 15, closing: null, text: 'query in ledger entry 15; round 1 not closed yet' });
  });

  it('marks a task with no ledger entry at all', () => {
    expect(of('qz', 'refused')).toEqual({ state: 'none', submitted: null, closing: null, failed: null, released: null, text: 'no ledger entry: query failed or not recorded' });
  });
});
