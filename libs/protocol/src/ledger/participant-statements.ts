import { signMessage, verifyMessage, type KeyPair, type PublicKey } from '@confide/crypto';
import { PARTICIPANT_REQUEST_MAX_SKEW_MS } from './participant-request';

/**
 * What a participant signs to change its own registration (DESIGN.md "Trust model": the coordinator may forge
 * anything it signs itself, so a change that is the participant's to make carries the participant's signature).
 *
 * - Enrollment: the participant signs its public keys, its maximum record count and the hash of the Redis password
 *   it chose, for the study its invitation shows. The coordinator records the enrollment only with this proof that
 *   the caller holds the signing key; the participant signs it after it has written its home.
 * - An update of its maximum record count: signed with the enrolled key, over the participant, the study, the new
 *   and the current value and a timestamp, so it cannot be replayed for another participant, applied over another
 *   value, or kept to be played long after. The ledger's `participant.updated` entry carries the statement and its
 *   signature, so an auditor checks them without trusting the coordinator (ledger-rules.ts `update.signed`).
 */

const ENROLL_DOMAIN = 'participant-enroll';
const UPDATE_DOMAIN = 'participant-update';

/** What a participant signs to enroll. */
export interface EnrollStatement {
  readonly studyId: string;
  /** Base64url raw public keys. */
  readonly encryptionKey: string;
  readonly signingKey: string;
  readonly maxRecords: number;
  /** SHA-256 hex of the Redis password the participant chose (libs/queue hashRedisPassword); the password stays home. */
  readonly redisPasswordSha256: string;
}

/** What a participant signs to change its maximum record count. */
export interface UpdateStatement {
  readonly participantId: string;
  readonly studyId: string;
  readonly maxRecords: number;
  /** The value this update replaces: an update made for another current value is refused. */
  readonly previousMaxRecords: number;
  /** Milliseconds since the epoch. */
  readonly time: number;
}

/** Why a signed statement was refused; `code` is stable. */
export class ParticipantStatementError extends Error {
  override readonly name = 'ParticipantStatementError';
  constructor(
    readonly code: 'bad_signature' | 'stale' | 'conflict',
    message: string,
  ) {
    super(message);
  }
}

const enrollPayload = (s: EnrollStatement): object => ({
  studyId: s.studyId,
  encryptionKey: s.encryptionKey,
  signingKey: s.signingKey,
  maxRecords: s.maxRecords,
  redisPasswordSha256: s.redisPasswordSha256,
});

const updatePayload = (s: UpdateStatement): object => ({
  participantId: s.participantId,
  studyId: s.studyId,
  maxRecords: s.maxRecords,
  previousMaxRecords: s.previousMaxRecords,
  time: s.time,
});

/**
 * Signs an enrollment statement with the key it registers (Ed25519 under the domain "participant-enroll").
 * @throws TypeError when the key is not Ed25519
 */
export function signEnrollStatement(signing: KeyPair, statement: EnrollStatement): string {
  return signMessage(signing.privateKey, ENROLL_DOMAIN, enrollPayload(statement));
}

/**
 * Checks that an enrollment statement is signed by the signing key it registers.
 * @throws ParticipantStatementError bad_signature
 */
export function verifyEnrollStatement(signingKey: PublicKey, statement: EnrollStatement, signature: string): void {
  if (!verifyMessage(signingKey, ENROLL_DOMAIN, enrollPayload(statement), signature)) {
    throw new ParticipantStatementError('bad_signature', 'the enrollment is not signed by the signing key it registers');
  }
}

/**
 * Signs an update statement with the participant's enrolled key (Ed25519 under the domain "participant-update").
 * @throws TypeError when the key is not Ed25519 or the time is not an integer
 */
export function signUpdateStatement(signing: KeyPair, statement: UpdateStatement): string {
  if (!Number.isSafeInteger(statement.time)) throw new TypeError('time must be an integer number of milliseconds');
  return signMessage(signing.privateKey, UPDATE_DOMAIN, updatePayload(statement));
}

/**
 * Checks an update's signature only: what an auditor can check from the ledger alone.
 * @returns false when the signature does not verify with `signingKey`
 */
export function updateSignatureValid(signingKey: PublicKey, statement: UpdateStatement, signature: string): boolean {
  return verifyMessage(signingKey, UPDATE_DOMAIN, updatePayload(statement), signature);
}

/**
 * Checks an update as the coordinator applies it: signed by the participant's registered key, made for the value it
 * replaces, and recent.
 * @param current the participant's maximum record count now
 * @param now the verifier's clock, in milliseconds
 * @throws ParticipantStatementError bad_signature, conflict (made for another current value) or stale (outside the
 *   clock window of participant-request.ts)
 */
export function verifyUpdateStatement(signingKey: PublicKey, statement: UpdateStatement, signature: string, current: number, now: number): void {
  if (!updateSignatureValid(signingKey, statement, signature)) {
    throw new ParticipantStatementError('bad_signature', 'the update is not signed by the participant’s enrolled signing key');
  }
  if (Math.abs(now - statement.time) > PARTICIPANT_REQUEST_MAX_SKEW_MS) {
    throw new ParticipantStatementError('stale', `the update was signed more than ${PARTICIPANT_REQUEST_MAX_SKEW_MS / 60000} minutes from the coordinator's clock; check this machine's clock and sign it again`);
  }
  if (statement.previousMaxRecords !== current) {
    throw new ParticipantStatementError('conflict', `the update replaces maxRecords ${statement.previousMaxRecords}, but the coordinator records ${current}`);
  }
}
