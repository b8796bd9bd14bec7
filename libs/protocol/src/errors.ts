/**
 * The errors callers branch on across libs/protocol: a protocol step that refused or failed ({@link ProtocolError},
 * from shamir and paillier alike) and a query that cannot run ({@link QueryError}, from the query compiler). Errors
 * that one part alone throws stay with it (SchemaError, DataValidationError, PrivacyError, TaskRefusal, …).
 */

/**
 * Why a protocol step refused or failed. `permanent` errors will not go away on retry (a bad signature
 * stays bad); the queue layer maps them to BullMQ's UnrecoverableError.
 */
export type ProtocolErrorCode =
  | 'INVALID_MESSAGE'
  | 'BAD_SIGNATURE'
  | 'UNKNOWN_SENDER'
  | 'WRONG_JOB'
  | 'NOT_IN_COMMITTEE'
  | 'MIN_PARTICIPANTS'
  | 'SET_MISMATCH'
  | 'ALREADY_ANSWERED'
  | 'DECRYPTION_FAILED'
  | 'QUORUM'
  | 'INCONSISTENT_SHARES'
  | 'OVERFLOW';

/** A refusal or failure of a protocol step (shamir or paillier), with a machine-readable code and a sentence for people. */
export class ProtocolError extends Error {
  override readonly name = 'ProtocolError';
  constructor(
    readonly code: ProtocolErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  /** Retrying cannot help: the message or the situation is wrong, not the timing. */
  get permanent(): boolean {
    return this.code !== 'QUORUM';
  }
}

/** A query that cannot run: the message names the offending part (`select[1].field: unknown field "x"`). */
export class QueryError extends Error {
  override readonly name = 'QueryError';
}
