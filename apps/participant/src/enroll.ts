import { createReadStream } from 'node:fs';
import { resolve } from 'node:path';
import { generateKeyPair, publicKeyBase64Url } from '@confide/crypto';
import { ParticipantHome, type Identity } from './home';

/** Options of {@link enrollParticipant}. */
export interface EnrollOptions {
  readonly coordinatorUrl: string;
  readonly invitation: string;
  readonly home: string;
  readonly dataFile: string;
  /** Largest number of records this participant will ever contribute; default: twice the file's rows. */
  readonly maxRecords?: number;
}

/** An HTTP error from the coordinator, with its stable error code. */
export class CoordinatorError extends Error {
  override readonly name = 'CoordinatorError';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** Counts the lines of a file by streaming it (an upper bound on its records: quoted newlines count too). */
async function countLines(path: string): Promise<number> {
  let lines = 0;
  let last = 10;
  for await (const chunk of createReadStream(path)) {
    const buf = chunk as Buffer;
    for (let i = 0; i < buf.length; i++) if (buf[i] === 10) lines++;
    if (buf.length) last = buf[buf.length - 1]!;
  }
  return last === 10 ? lines : lines + 1;
}

/** POSTs JSON to the coordinator and returns the parsed body, or throws CoordinatorError with its message. */
export async function postJson<T>(url: string, token: string, body: unknown): Promise<T> {
  let res: Response;
  try {
    res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify(body) });
  } catch (err) {
    throw new CoordinatorError(0, 'unreachable', `cannot reach the coordinator at ${new URL(url).origin}: ${(err as Error).message}`);
  }
  const text = await res.text();
  const parsed = (text ? JSON.parse(text) : {}) as { error?: string; message?: string };
  if (!res.ok) throw new CoordinatorError(res.status, parsed.error ?? 'http_error', parsed.message ?? `HTTP ${res.status}`);
  return parsed as T;
}

/**
 * Enrolls this machine as a participant: generates X25519 and Ed25519 keys locally (stored 0600 in the
 * home directory; the private halves never leave), sends only the public keys with the invitation token,
 * and stores the identity, the study schema, the pinned coordinator key and the Redis credentials it gets.
 * @throws CoordinatorError on an unknown, expired or used invitation; Error if the home is already enrolled
 */
export async function enrollParticipant(opts: EnrollOptions): Promise<Identity> {
  const home = new ParticipantHome(resolve(opts.home));
  if (home.isEnrolled()) throw new Error(`${home.dir} already holds an enrolled participant (${home.identity().participantId}); use another --home`);
  const dataFile = resolve(opts.dataFile);
  const maxRecords = opts.maxRecords ?? Math.max(10, 2 * (await countLines(dataFile)));
  const encryption = generateKeyPair('x25519');
  const signing = generateKeyPair('ed25519');
  const base = opts.coordinatorUrl.replace(/\/+$/, '');
  const res = await postJson<{
    participantId: string;
    studyId: string;
    study: { name: string };
    coordinatorKey: string;
    coordinatorKeyFingerprint: string;
    redis: Identity['redis'];
  }>(`${base}/v1/enroll`, opts.invitation, { encryptionKey: publicKeyBase64Url(encryption.publicKey), signingKey: publicKeyBase64Url(signing.publicKey), maxRecords });
  home.storeKeys(encryption, signing);
  const identity: Identity = {
    version: 1,
    participantId: res.participantId,
    studyId: res.studyId,
    studyName: res.study.name,
    coordinatorUrl: base,
    coordinatorKey: res.coordinatorKey,
    coordinatorKeyFingerprint: res.coordinatorKeyFingerprint,
    dataFile,
    maxRecords,
    redis: res.redis,
  };
  home.storeEnrollment(identity, res.study);
  return identity;
}
