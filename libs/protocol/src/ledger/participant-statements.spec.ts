import { generateKeyPair, publicKeyBase64Url } from '@confide/crypto';
import { ParticipantStatementError, signEnrollStatement, signUpdateStatement, verifyEnrollStatement, verifyUpdateStatement, type UpdateStatement } from './participant-statements';

// What a participant signs to enroll and to change its maximum record count (issue 13): each refusal is named.

const signing = generateKeyPair('ed25519');
const mallory = generateKeyPair('ed25519');
const NOW = Date.UTC(2030, 0, 15, 12);

const refusal = (fn: () => void): { code: string; message: string } | undefined => {
  try {
    fn();
    return undefined;
  } catch (err) {
    if (!(err instanceof ParticipantStatementError)) throw err;
    return { code: err.code, message: err.message };
  }
};

describe('enrollment statements', () => {
  const statement = {
    studyId: 'salaries',
    encryptionKey: publicKeyBase64Url(generateKeyPair('x25519').publicKey),
    signingKey: publicKeyBase64Url(signing.publicKey),
    maxRecords: 100,
    redisPasswordSha256: 'ab'.repeat(32),
  };

  it('verifies an enrollment signed by the key it registers', () => {
    expect(refusal(() => verifyEnrollStatement(signing.publicKey, statement, signEnrollStatement(signing, statement)))).toBeUndefined();
  });

  it('refuses an enrollment whose caller does not hold the key it registers', () => {
    expect(refusal(() => verifyEnrollStatement(signing.publicKey, statement, signEnrollStatement(mallory, statement)))).toEqual({ code: 'bad_signature', message: 'the enrollment is not signed by the signing key it registers' });
  });

  it('refuses a signed enrollment replayed for another study or with another Redis password', () => {
    const signature = signEnrollStatement(signing, statement);
    expect(refusal(() => verifyEnrollStatement(signing.publicKey, { ...statement, studyId: 'payroll' }, signature))?.code).toBe('bad_signature');
    expect(refusal(() => verifyEnrollStatement(signing.publicKey, { ...statement, redisPasswordSha256: 'cd'.repeat(32) }, signature))?.code).toBe('bad_signature');
  });
});

describe('maxRecords update statements', () => {
  const statement: UpdateStatement = { participantId: 'p1', studyId: 'salaries', maxRecords: 250, previousMaxRecords: 100, time: NOW };
  const check = (s: UpdateStatement, signature: string, current = 100, now = NOW) => refusal(() => verifyUpdateStatement(signing.publicKey, s, signature, current, now));

  it('applies an update signed by the enrolled key, made for the current value, within the clock window', () => {
    expect(check(statement, signUpdateStatement(signing, statement))).toBeUndefined();
  });

  it('refuses an update forged with another key', () => {
    expect(check(statement, signUpdateStatement(mallory, statement))).toEqual({ code: 'bad_signature', message: 'the update is not signed by the participant’s enrolled signing key' });
  });

  it('refuses an update whose value was changed after it was signed, or replayed for another participant', () => {
    const signature = signUpdateStatement(signing, statement);
    expect(check({ ...statement, maxRecords: 100_000 }, signature)?.code).toBe('bad_signature');
    expect(check({ ...statement, participantId: 'p2' }, signature)?.code).toBe('bad_signature');
  });

  it('refuses an old update played again after the value moved on, and one outside the clock window', () => {
    const signature = signUpdateStatement(signing, statement);
    expect(check(statement, signature, 250)).toEqual({ code: 'conflict', message: 'the update replaces maxRecords 100, but the coordinator records 250' });
    expect(check(statement, signature, 100, NOW + 6 * 60_000)?.code).toBe('stale');
  });
});
