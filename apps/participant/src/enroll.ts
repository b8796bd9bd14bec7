import { createReadStream } from 'node:fs';
import { resolve } from 'node:path';
import { canonicalJson, generateKeyPair, importPublicKeyBase64Url, keyFingerprint, publicKeyBase64Url } from '@confide/crypto';
import { ENTRY, ledgerSchema, parseEntryBody, parseStudySchema, type StudySchema } from '@confide/protocol';
import { CoordinatorLink } from './coordinator-link';
import { assertDataFile } from './data-file';
import { ParticipantHome, type Identity } from './home';
import { LedgerView } from './ledger-view';

/** Options of {@link enrollParticipant}. */
export interface EnrollOptions {
  readonly coordinatorUrl: string;
  readonly invitation: string;
  readonly home: string;
  readonly dataFile: string;
  /** Largest number of records this participant will ever contribute; default: twice the file's rows. */
  readonly maxRecords?: number;
  /**
   * The coordinator key fingerprint an admin handed over out of band (64 hex characters, as the coordinator logs it
   * and `GET /v1/coordinator` shows it): enrollment stops, before anything is registered, when the coordinator
   * answers with another key.
   */
  readonly coordinatorKeyFingerprint?: string;
  /**
   * Asked to accept the study's settings before the invitation is used; enrollment stops when it answers false.
   * Without it the settings are accepted as they are (`--accept-settings`).
   */
  readonly confirmSettings?: (study: StudySchema) => Promise<boolean>;
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

/** Enrollment stopped on this side: the settings were not accepted, or the coordinator is not the one expected. */
export class EnrollmentRefused extends Error {
  override readonly name = 'EnrollmentRefused';
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

/** Sends JSON to the coordinator with the invitation as the bearer and returns the parsed body, or throws CoordinatorError. */
export async function requestJson<T>(method: 'GET' | 'POST', url: string, token: string, body?: unknown): Promise<T> {
  let res: Response;
  try {
    res = await fetch(url, {
      method,
      headers: { ...(body !== undefined ? { 'content-type': 'application/json' } : {}), authorization: `Bearer ${token}` },
      body: body !== undefined ? JSON.stringify(body) : undefined,
      signal: AbortSignal.timeout(30_000),
    });
  } catch (err) {
    throw new CoordinatorError(0, 'unreachable', `cannot reach the coordinator at ${new URL(url).origin}: ${(err as Error).message}`);
  }
  const text = await res.text();
  let parsed: { error?: string; message?: string } = {};
  try {
    parsed = (text ? JSON.parse(text) : {}) as typeof parsed;
  } catch {
    throw new CoordinatorError(res.status, 'http_error', `the coordinator answered with something that is not JSON (HTTP ${res.status})`);
  }
  if (!res.ok) throw new CoordinatorError(res.status, parsed.error ?? 'http_error', parsed.message ?? `HTTP ${res.status}`);
  return parsed as T;
}

interface CoordinatorKeys {
  coordinatorKey: string;
  coordinatorKeyFingerprint: string;
  coordinatorEncryptionKey: string;
}

/**
 * The coordinator's keys as it sent them, checked here: the fingerprint is computed from the key itself (the
 * coordinator's own claim is not taken), both keys must be valid, and when the admin handed over a fingerprint out
 * of band it must be this one.
 * @throws EnrollmentRefused naming both fingerprints on a mismatch
 */
function checkCoordinatorKeys(keys: CoordinatorKeys, expected: string | undefined): string {
  const fingerprint = keyFingerprint(importPublicKeyBase64Url('ed25519', keys.coordinatorKey));
  importPublicKeyBase64Url('x25519', keys.coordinatorEncryptionKey);
  if (fingerprint !== keys.coordinatorKeyFingerprint) throw new EnrollmentRefused(`the coordinator's key fingerprint is ${fingerprint}, but it claims ${keys.coordinatorKeyFingerprint}`);
  if (expected !== undefined && expected !== fingerprint) {
    throw new EnrollmentRefused(`the coordinator's key is ${fingerprint}, not the ${expected} your admin gave you: not enrolling (is this the right coordinator?)`);
  }
  return fingerprint;
}

/**
 * Enrolls this machine as a participant: reads what the invitation is for without using it (the study's settings,
 * the coordinator's keys), checks the coordinator key against the fingerprint the admin handed over and has the
 * settings accepted, then generates X25519 and Ed25519 keys locally (stored 0600 in the home directory; the private
 * halves never leave), sends only the public keys with the invitation token, and stores the identity, the study
 * schema (the settings it pinned), the pinned coordinator keys and the Redis credentials it gets. Last, it reads its
 * study's ledger: its own enrollment must be recorded with its keys, and the study with the settings it pinned.
 * The data file is checked against the study's schema right after the invitation is read, before it is used.
 * @throws CoordinatorError on an unknown, expired or used invitation; DataCheckFailed when the data file does not
 *   match the study (nothing is registered); EnrollmentRefused when the settings were not
 *   accepted or the coordinator or its ledger is not what was expected; Error if the home is already enrolled
 */
export async function enrollParticipant(opts: EnrollOptions): Promise<Identity> {
  const home = new ParticipantHome(resolve(opts.home));
  if (home.isEnrolled()) throw new Error(`${home.dir} already holds an enrolled participant (${home.identity().participantId}); use another --home`);
  const dataFile = resolve(opts.dataFile);
  const base = opts.coordinatorUrl.replace(/\/+$/, '');
  const preview = await requestJson<CoordinatorKeys & { study: unknown; studyId: string }>('GET', `${base}/v1/invitation`, opts.invitation);
  checkCoordinatorKeys(preview, opts.coordinatorKeyFingerprint);
  const study = parseStudySchema(preview.study, 'the invitation’s study');
  // The data is checked against the study before the invitation is used: a broken file is fixed now, not found by a query.
  await assertDataFile(dataFile, study);
  const maxRecords = opts.maxRecords ?? Math.max(10, 2 * (await countLines(dataFile)));
  if (opts.confirmSettings && !(await opts.confirmSettings(study))) throw new EnrollmentRefused('the study’s settings were not accepted: not enrolled, the invitation is still unused');

  const encryption = generateKeyPair('x25519');
  const signing = generateKeyPair('ed25519');
  const res = await requestJson<
    CoordinatorKeys & {
      participantId: string;
      studyId: string;
      study: { name: string };
      redis: Identity['redis'];
    }
  >('POST', `${base}/v1/enroll`, opts.invitation, { encryptionKey: publicKeyBase64Url(encryption.publicKey), signingKey: publicKeyBase64Url(signing.publicKey), maxRecords });
  const fingerprint = checkCoordinatorKeys(res, opts.coordinatorKeyFingerprint);
  if (res.coordinatorKey !== preview.coordinatorKey || res.coordinatorEncryptionKey !== preview.coordinatorEncryptionKey || res.studyId !== preview.studyId) {
    throw new EnrollmentRefused('the coordinator enrolled this participant with other keys or another study than its invitation showed');
  }
  if (canonicalJson(ledgerSchema(parseStudySchema(res.study, 'study'))) !== canonicalJson(ledgerSchema(study))) {
    throw new EnrollmentRefused('the coordinator enrolled this participant in a study with other settings than the ones accepted');
  }
  home.storeKeys(encryption, signing);
  const identity: Identity = {
    version: 2,
    participantId: res.participantId,
    studyId: res.studyId,
    studyName: res.study.name,
    coordinatorUrl: base,
    coordinatorKey: res.coordinatorKey,
    coordinatorKeyFingerprint: fingerprint,
    coordinatorEncryptionKey: res.coordinatorEncryptionKey,
    dataFile,
    maxRecords,
    redis: res.redis,
  };
  home.storeEnrollment(identity, res.study);
  await checkEnrollmentInLedger(home, identity, study, { encryption: keyFingerprint(encryption.publicKey), signing: keyFingerprint(signing.publicKey) });
  return identity;
}

/**
 * The participant's first look at its study's ledger: the study is recorded with the settings pinned, and its own
 * enrollment with its own key fingerprints. The checkpoint verified here is the one every later checkpoint must
 * extend.
 * @throws EnrollmentRefused when either entry is missing or differs
 */
async function checkEnrollmentInLedger(home: ParticipantHome, identity: Identity, study: StudySchema, fingerprints: { encryption: string; signing: string }): Promise<void> {
  const view = new LedgerView(home.dir, home.coordinatorKey(), new CoordinatorLink(identity.coordinatorUrl, identity.participantId, home.keys().signing));
  const { entries } = await view.catchUp();
  const studyEntry = entries.find((e) => e.type === ENTRY.studyCreated && parseEntryBody(ENTRY.studyCreated, e.body)?.studyId === identity.studyId);
  if (!studyEntry || canonicalJson(parseEntryBody(ENTRY.studyCreated, studyEntry.body)!.schema) !== canonicalJson(ledgerSchema(study))) {
    throw new EnrollmentRefused(`the ledger does not record study ${identity.studyName} with the settings this participant accepted`);
  }
  const own = entries.map((e) => (e.type === ENTRY.participantEnrolled ? parseEntryBody(ENTRY.participantEnrolled, e.body) : undefined)).find((b) => b?.participantId === identity.participantId);
  if (!own || own.encryptionKeyFingerprint !== fingerprints.encryption || own.signingKeyFingerprint !== fingerprints.signing) {
    throw new EnrollmentRefused(`the ledger does not record this participant's enrollment with its own keys`);
  }
}
