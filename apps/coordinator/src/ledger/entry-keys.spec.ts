import { ENTRY, entryKey } from '@confide/protocol';

// Every ledger entry the coordinator appends is deduplicated by a key built with entryKey from its ENTRY type and the
// parts each call site passes. Existing ledgers hold these keys: a different string for the same entry would let a
// redelivered job append it twice, which auditors' checks (ledger-rules.ts) then report. These are the exact keys.
const q = 'q0123456789abcdef01234567';
const p = 'p0123456789abcdef01234567';
const digest = 'ab'.repeat(32);

describe('ledger dedup keys', () => {
  it('keep every entry type name (never renamed)', () => {
    expect(ENTRY).toEqual({
      coordinatorKeys: 'coordinator.keys',
      apiKeyCreated: 'apikey.created',
      studyCreated: 'study.created',
      participantEnrolled: 'participant.enrolled',
      participantRemoved: 'participant.removed',
      participantUpdated: 'participant.updated',
      querySubmitted: 'query.submitted',
      committeeDrawn: 'committee.drawn',
      paillierPlanned: 'paillier.planned',
      roundClosed: 'round.closed',
      resultReleased: 'result.released',
      queryFailed: 'query.failed',
      contributionLate: 'contribution.late',
      contributionRejected: 'contribution.rejected',
      decryptionRejected: 'decryption.rejected',
      decryptionPartial: 'decryption.partial',
      privacySpent: 'privacy.spent',
    });
  });

  it.each([
    ['the coordinator keys (bootstrap)', entryKey(ENTRY.coordinatorKeys, 'sha256:aa', 'sha256:bb'), 'coordinator.keys:sha256:aa:sha256:bb'],
    ['an API key (studies service)', entryKey(ENTRY.apiKeyCreated, 'k-1'), 'apikey.created:k-1'],
    ['a study (studies service)', entryKey(ENTRY.studyCreated, 's-1'), 'study.created:s-1'],
    ['an enrollment (enrollment service)', entryKey(ENTRY.participantEnrolled, p), `participant.enrolled:${p}`],
    ['a removal (participants service)', entryKey(ENTRY.participantRemoved, p), `participant.removed:${p}`],
    ['a signed maxRecords update (participants service)', entryKey(ENTRY.participantUpdated, p, 1796655153864, 'AbCd'), `participant.updated:${p}:1796655153864:AbCd`],
    ['a submitted query (queries service)', entryKey(ENTRY.querySubmitted, q), `query.submitted:${q}`],
    ['a DP query’s spending (queries service)', entryKey(ENTRY.privacySpent, q), `privacy.spent:${q}`],
    ['a shamir plan (orchestrator)', entryKey(ENTRY.committeeDrawn, q), `committee.drawn:${q}`],
    ['a paillier plan (orchestrator)', entryKey(ENTRY.paillierPlanned, q), `paillier.planned:${q}`],
    ['round 1’s closing (orchestrator, receipts)', entryKey(ENTRY.roundClosed, q, 1), `round.closed:${q}:1`],
    ['a released result (orchestrator)', entryKey(ENTRY.resultReleased, q), `result.released:${q}`],
    ['a failed query (orchestrator)', entryKey(ENTRY.queryFailed, q), `query.failed:${q}`],
    ['a late answer (orchestrator)', entryKey(ENTRY.contributionLate, q, 2, p), `contribution.late:${q}:2:${p}`],
    ['a rejected contribution (orchestrator)', entryKey(ENTRY.contributionRejected, q, 1, p), `contribution.rejected:${q}:1:${p}`],
    ['a rejected decryption (orchestrator)', entryKey(ENTRY.decryptionRejected, q, digest), `decryption.rejected:${q}:${digest}`],
    ['a custodian’s partial decryption (orchestrator)', entryKey(ENTRY.decryptionPartial, q, 3), `decryption.partial:${q}:3`],
  ])('are byte for byte what ledgers already hold for %s', (_what, built, stored) => {
    expect(built).toBe(stored);
  });
});
