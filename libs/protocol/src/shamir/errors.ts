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

/** A refusal or failure of the shamir protocol, with a machine-readable code and a sentence for people. */
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
