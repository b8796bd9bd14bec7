import { signMessage, verifyMessage, type KeyPair, type PublicKey } from '@confide/crypto';

/**
 * Signed HTTP requests from a participant to the coordinator. Participants hold no API key: they prove who
 * they are with the Ed25519 key registered at enrollment (and recorded in the ledger), so the key that signs
 * their contributions is also the one that fetches the receipts for them.
 *
 * The signature covers the method, the full path with its query string, the participant id and a timestamp
 * under the domain "participant-request", so it cannot be replayed on another route, for other parameters,
 * by another participant, or as any protocol message. Within the clock window a captured request can be
 * replayed as is; the routes that accept it are read-only, and the coordinator serves the same data again.
 */

const DOMAIN = 'participant-request';

/** How far a request's timestamp may be from the coordinator's clock. */
export const PARTICIPANT_REQUEST_MAX_SKEW_MS = 5 * 60 * 1000;

/** The request headers, lower-case as Node presents them. */
export const PARTICIPANT_REQUEST_HEADERS = {
  participant: 'x-confide-participant',
  time: 'x-confide-time',
  signature: 'x-confide-signature',
} as const;

/** What a participant signs for one request. */
export interface ParticipantRequest {
  readonly method: string;
  /** Path and query string exactly as sent, e.g. `/v1/ledger/receipt?queryId=q-1`. */
  readonly path: string;
  readonly participantId: string;
  /** Milliseconds since the epoch. */
  readonly time: number;
}

/** Why a signed participant request was refused. */
export class ParticipantRequestError extends Error {
  override readonly name = 'ParticipantRequestError';
}

function payload(req: ParticipantRequest): object {
  return { method: req.method.toUpperCase(), path: req.path, participantId: req.participantId, time: req.time };
}

/**
 * The headers that authenticate one request as `participantId`.
 *
 * @throws TypeError when the key is not Ed25519 or the time is not an integer
 */
export function participantRequestHeaders(signing: KeyPair, req: ParticipantRequest): Record<string, string> {
  if (!Number.isSafeInteger(req.time)) throw new TypeError('time must be an integer number of milliseconds');
  return {
    [PARTICIPANT_REQUEST_HEADERS.participant]: req.participantId,
    [PARTICIPANT_REQUEST_HEADERS.time]: String(req.time),
    [PARTICIPANT_REQUEST_HEADERS.signature]: signMessage(signing.privateKey, DOMAIN, payload(req)),
  };
}

/**
 * Reads the participant id and timestamp from a request's headers, before its key is looked up.
 *
 * @returns undefined when the request carries no participant header (it is not a participant's request)
 * @throws ParticipantRequestError when the headers are present but malformed
 */
export function readParticipantRequestHeaders(headers: Readonly<Record<string, string | string[] | undefined>>): { participantId: string; time: number; signature: string } | undefined {
  const one = (name: string): string | undefined => {
    const v = headers[name];
    if (Array.isArray(v)) throw new ParticipantRequestError(`header ${name} given more than once`);
    return v;
  };
  const participantId = one(PARTICIPANT_REQUEST_HEADERS.participant);
  if (participantId === undefined) return undefined;
  const time = one(PARTICIPANT_REQUEST_HEADERS.time);
  const signature = one(PARTICIPANT_REQUEST_HEADERS.signature);
  if (!/^[A-Za-z0-9_-]{1,128}$/.test(participantId)) throw new ParticipantRequestError(`${PARTICIPANT_REQUEST_HEADERS.participant} is not a participant id`);
  if (time === undefined || !/^\d{1,16}$/.test(time)) throw new ParticipantRequestError(`${PARTICIPANT_REQUEST_HEADERS.time} must be milliseconds since the epoch`);
  if (signature === undefined) throw new ParticipantRequestError(`${PARTICIPANT_REQUEST_HEADERS.signature} is missing`);
  return { participantId, time: Number(time), signature };
}

/**
 * Checks a participant's request signature and timestamp.
 *
 * @param signingKey the participant's registered Ed25519 key
 * @param now the verifier's clock, in milliseconds
 * @throws ParticipantRequestError when the timestamp is outside the window or the signature does not verify
 */
export function verifyParticipantRequest(signingKey: PublicKey, req: ParticipantRequest, signature: string, now: number): void {
  if (Math.abs(now - req.time) > PARTICIPANT_REQUEST_MAX_SKEW_MS) {
    throw new ParticipantRequestError(`request time is more than ${PARTICIPANT_REQUEST_MAX_SKEW_MS / 60000} minutes from the coordinator's clock; check this machine's clock`);
  }
  if (!verifyMessage(signingKey, DOMAIN, payload(req), signature)) throw new ParticipantRequestError('request signature does not verify with the participant’s registered key');
}
