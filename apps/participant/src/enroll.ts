import { createReadStream, existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { canonicalJson, generateKeyPair, importPublicKeyBase64Url, keyFingerprint, publicKeyBase64Url, type KeyPair } from '@confide/crypto';
import { ENTRY, ledgerSchema, parseEntryBody, parseStudySchema, signEnrollStatement, toStudySchemaJson, type ParticipantEnrolledBody, type StudySchema } from '@confide/protocol';
import { generateRedisPassword, hashRedisPassword, participantIdOf } from '@confide/queue';
import { CoordinatorLink, REQUEST_TIMEOUT_MS } from './coordinator-link';
import { assertDataFile } from './data-file';
import { HomeError, ParticipantHome, type Identity } from './home';
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
  /** How long each request to the coordinator may take (`--timeout`); default 30 s. */
  readonly timeoutMs?: number;
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
export async function requestJson<T>(method: 'GET' | 'POST', url: string, token: string, body?: unknown, timeoutMs = REQUEST_TIMEOUT_MS): Promise<T> {
  let res: Response;
  const signal = AbortSignal.timeout(timeoutMs);
  try {
    res = await fetch(url, {
      method,
      headers: { ...(body !== undefined ? { 'content-type': 'application/json' } : {}), authorization: `Bearer ${token}` },
      body: body !== undefined ? JSON.stringify(body) : undefined,
      signal,
    });
  } catch (err) {
    if (signal.aborted) throw new CoordinatorError(0, 'timeout', `no answer from the coordinator at ${new URL(url).origin} within ${timeoutMs / 1000} s (${method} ${new URL(url).pathname}); --timeout SECONDS waits longer`);
    throw new CoordinatorError(0, 'unreachable', `cannot reach the coordinator at ${new URL(url).origin}: ${(err as Error).message}`);
  }
  // The answer's body comes under the same deadline: a coordinator that sends headers and then stalls is no answer.
  const text = await res.text().catch((err: unknown) => {
    if (signal.aborted) throw new CoordinatorError(0, 'timeout', `no answer from the coordinator at ${new URL(url).origin} within ${timeoutMs / 1000} s (${method} ${new URL(url).pathname}); --timeout SECONDS waits longer`);
    throw err;
  });
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

/** What the coordinator answers an enrollment with (apps/coordinator EnrollResponse). */
type EnrollAnswer = CoordinatorKeys & {
  participantId: string;
  name: string;
  studyId: string;
  study: { name: string };
  redis: Omit<Identity['redis'], 'password'>;
};

/** The keys and identity of an enrollment written to the home before the coordinator is asked. */
interface PendingEnrollment {
  readonly encryption: KeyPair;
  readonly signing: KeyPair;
  readonly identity: Identity;
}

/**
 * Enrolls this machine as a participant, so that a failure on either side leaves nothing behind (issue 13,
 * "Enrollment is atomic"):
 *
 * 1. It reads what the invitation is for without using it (the study's settings, the coordinator's keys), checks
 *    the coordinator key against the fingerprint the admin handed over, checks the data file against the study's
 *    schema (a broken file is fixed now, not found by a query), and has the settings accepted.
 * 2. It writes the whole home first, marked pending: X25519 and Ed25519 keys generated here (0600; the private
 *    halves never leave), the Redis password it chooses, its id (derived from its signing key), the study schema
 *    and the pinned coordinator keys. A home that cannot be written stops here: nothing was sent.
 * 3. The coordinator commits the enrollment in one transaction, on a request signed with the new key. A refusal
 *    removes what step 2 wrote; an unanswered request keeps the pending home, and running the same command again
 *    reuses it (the coordinator answers the same participant's retry the same way).
 * 4. Last, it reads its study's ledger (its own enrollment recorded with its keys, the study with the settings it
 *    pinned) and marks the home confirmed.
 * @throws CoordinatorError on an unknown, expired or used invitation or another refusal; DataCheckFailed when the
 *   data file does not match the study (nothing is registered or written); EnrollmentRefused when
 *   the settings were not accepted or the coordinator or its ledger is not what was expected; HomeError when the
 *   home cannot be written or is already enrolled
 */
export async function enrollParticipant(opts: EnrollOptions): Promise<Identity> {
  const home = new ParticipantHome(resolve(opts.home));
  if (home.isEnrolled()) throw new HomeError(`${home.dir} already holds an enrolled participant (${home.identity().participantId}); use another --home`);
  const dataFile = resolve(opts.dataFile);
  const base = opts.coordinatorUrl.replace(/\/+$/, '');
  const timeoutMs = opts.timeoutMs ?? REQUEST_TIMEOUT_MS;
  const { preview, resumed } = await readInvitation(home, base, opts.invitation, timeoutMs);
  const fingerprint = checkCoordinatorKeys(preview, opts.coordinatorKeyFingerprint);
  const study = parseStudySchema(preview.study, 'the invitation’s study');
  // The data is checked against the study before the invitation is used: a broken file is fixed now, not found by a query.
  await assertDataFile(dataFile, study);
  const maxRecords = opts.maxRecords ?? Math.max(10, 2 * (await countLines(dataFile)));
  if (!resumed && opts.confirmSettings && !(await opts.confirmSettings(study))) throw new EnrollmentRefused('the study’s settings were not accepted: not enrolled, the invitation is still unused');

  const createdDir = !existsSync(home.dir);
  const pending = writePendingHome(home, { ...preview, coordinatorKeyFingerprint: fingerprint }, base, dataFile, maxRecords);
  const { answer: res, identity: committed } = await commitEnrollment(home, createdDir, base, opts.invitation, pending, timeoutMs);
  checkCoordinatorKeys(res, opts.coordinatorKeyFingerprint);
  if (res.participantId !== pending.identity.participantId || res.coordinatorKey !== preview.coordinatorKey || res.coordinatorEncryptionKey !== preview.coordinatorEncryptionKey || res.studyId !== preview.studyId) {
    throw new EnrollmentRefused('the coordinator enrolled this participant with another id, other keys or another study than its invitation showed');
  }
  if (canonicalJson(ledgerSchema(parseStudySchema(res.study, 'study'))) !== canonicalJson(ledgerSchema(study))) {
    throw new EnrollmentRefused('the coordinator enrolled this participant in a study with other settings than the ones accepted');
  }
  const recorded = await checkEnrollmentInLedger(home, committed, study, { encryption: keyFingerprint(pending.encryption.publicKey), signing: keyFingerprint(pending.signing.publicKey) }, pending.signing, timeoutMs);
  // A retry of an enrollment the coordinator had already committed keeps the maximum it recorded then.
  const identity: Identity = { ...committed, participantName: recorded.name, maxRecords: recorded.maxRecords };
  home.confirm(identity);
  return identity;
}

type InvitationPreview = CoordinatorKeys & { study: unknown; studyId: string; participantName: string };

/**
 * Step 1: what the invitation is for. An invitation already used may have been used by this very home, whose
 * enrollment the coordinator committed while the answer was lost: then the pending home's pinned settings and keys
 * (accepted the first time) stand in for the preview, and the coordinator answers the same participant's retry.
 * @throws CoordinatorError as the coordinator refuses the invitation
 */
async function readInvitation(home: ParticipantHome, base: string, invitation: string, timeoutMs: number): Promise<{ preview: InvitationPreview; resumed: boolean }> {
  try {
    return { preview: await requestJson<InvitationPreview>('GET', `${base}/v1/invitation`, invitation, undefined, timeoutMs), resumed: false };
  } catch (err) {
    const earlier = home.pendingIdentity();
    if (!(err instanceof CoordinatorError) || err.code !== 'invitation_used' || earlier?.coordinatorUrl !== base) throw err;
    return {
      preview: {
        coordinatorKey: earlier.coordinatorKey,
        coordinatorKeyFingerprint: earlier.coordinatorKeyFingerprint,
        coordinatorEncryptionKey: earlier.coordinatorEncryptionKey,
        study: toStudySchemaJson(home.study()),
        studyId: earlier.studyId,
        participantName: earlier.participantName ?? '',
      },
      resumed: true,
    };
  }
}

/**
 * Step 2: the whole home, written before the coordinator is asked. A pending home left by an earlier attempt for
 * the same study and coordinator is reused (its keys may already be enrolled, the answer lost on the way); any
 * other pending home is overwritten.
 * @throws HomeError when the home cannot be written; what this call wrote is removed again
 */
function writePendingHome(home: ParticipantHome, preview: InvitationPreview, base: string, dataFile: string, maxRecords: number): PendingEnrollment {
  const earlier = home.pendingIdentity();
  const reuse = earlier !== undefined && earlier.studyId === preview.studyId && earlier.coordinatorKey === preview.coordinatorKey && earlier.coordinatorUrl === base;
  const createdDir = !existsSync(home.dir);
  try {
    const { encryption, signing } = reuse ? home.keys() : { encryption: generateKeyPair('x25519'), signing: generateKeyPair('ed25519') };
    const participantId = participantIdOf(keyFingerprint(signing.publicKey));
    const identity: Identity = {
      version: 2,
      participantId,
      participantName: preview.participantName,
      studyId: preview.studyId,
      studyName: parseStudySchema(preview.study, 'the invitation’s study').name,
      coordinatorUrl: base,
      coordinatorKey: preview.coordinatorKey,
      coordinatorKeyFingerprint: preview.coordinatorKeyFingerprint,
      coordinatorEncryptionKey: preview.coordinatorEncryptionKey,
      dataFile,
      maxRecords,
      redis: reuse ? earlier.redis : { url: '', username: `confide-${participantId}`, password: generateRedisPassword(), prefix: '', queue: '' },
    };
    home.storePending(encryption, signing, identity, preview.study);
    return { encryption, signing, identity };
  } catch (err) {
    if (!reuse) home.discardPending(createdDir);
    throw new HomeError(`cannot write the participant home ${home.dir}: ${(err as Error).message}; nothing was sent to the coordinator and the invitation is still unused`, { cause: err });
  }
}

/**
 * Step 3: the coordinator commits the enrollment, asked with a statement signed by the new key. The home then
 * learns where its Redis user is (returned with the answer). A definite refusal (HTTP 4xx) removes the pending home; no answer (or a 5xx)
 * keeps it for a retry, since the coordinator may have committed.
 * @throws CoordinatorError, with what happened to the home in its message
 */
async function commitEnrollment(home: ParticipantHome, createdDir: boolean, base: string, invitation: string, pending: PendingEnrollment, timeoutMs: number): Promise<{ answer: EnrollAnswer; identity: Identity }> {
  const { identity, encryption, signing } = pending;
  const body = {
    encryptionKey: publicKeyBase64Url(encryption.publicKey),
    signingKey: publicKeyBase64Url(signing.publicKey),
    maxRecords: identity.maxRecords,
    redisPasswordSha256: hashRedisPassword(identity.redis.password),
  };
  // The study is the invitation's: signed here, not sent (the coordinator takes it from the invitation).
  const signature = signEnrollStatement(signing, { ...body, studyId: identity.studyId });
  let res: EnrollAnswer;
  try {
    res = await requestJson<EnrollAnswer>('POST', `${base}/v1/enroll`, invitation, { ...body, signature }, timeoutMs);
  } catch (err) {
    if (!(err instanceof CoordinatorError)) throw err;
    if (err.status >= 400 && err.status < 500) {
      home.discardPending(createdDir);
      throw new CoordinatorError(err.status, err.code, `${err.message} (enrollment refused; nothing was kept in ${home.dir})`);
    }
    throw new CoordinatorError(err.status, err.code, `${err.message} (the enrollment may not have reached the coordinator: it is kept, pending, in ${home.dir}; run the same command again to finish it)`);
  }
  const committed: Identity = { ...identity, redis: { ...res.redis, password: identity.redis.password } };
  home.storePending(encryption, signing, committed, res.study);
  return { answer: res, identity: committed };
}

/**
 * The participant's first look at its study's ledger: the study is recorded with the settings pinned, and its own
 * enrollment with its own key fingerprints. The checkpoint verified here is the one every later checkpoint must
 * extend.
 * @returns its own `participant.enrolled` entry
 * @throws EnrollmentRefused when either entry is missing or differs
 */
async function checkEnrollmentInLedger(home: ParticipantHome, identity: Identity, study: StudySchema, fingerprints: { encryption: string; signing: string }, signing: KeyPair, timeoutMs: number): Promise<ParticipantEnrolledBody> {
  const view = new LedgerView(home.dir, importPublicKeyBase64Url('ed25519', identity.coordinatorKey), new CoordinatorLink(identity.coordinatorUrl, identity.participantId, signing, 0, timeoutMs), identity.studyId);
  await view.catchUp();
  const entries = view.studyEntries();
  const studyEntry = entries.find((e) => e.type === ENTRY.studyCreated && parseEntryBody(ENTRY.studyCreated, e.body)?.studyId === identity.studyId);
  if (!studyEntry || canonicalJson(parseEntryBody(ENTRY.studyCreated, studyEntry.body)!.schema) !== canonicalJson(ledgerSchema(study))) {
    throw new EnrollmentRefused(`the ledger does not record study ${identity.studyName} with the settings this participant accepted`);
  }
  const own = entries.map((e) => (e.type === ENTRY.participantEnrolled ? parseEntryBody(ENTRY.participantEnrolled, e.body) : undefined)).find((b) => b?.participantId === identity.participantId);
  if (!own || own.encryptionKeyFingerprint !== fingerprints.encryption || own.signingKeyFingerprint !== fingerprints.signing) {
    throw new EnrollmentRefused(`the ledger does not record this participant's enrollment with its own keys`);
  }
  return own;
}
