import { createHash, sign, verify } from 'node:crypto';
import { importPublicKey, keyFingerprint, type KeyPair, type PublicKey } from '@confide/crypto';
import { bytesEqual } from './bytes';
import { HASH_SIZE } from './hash';

/** A signed tree head: the log's identity, its size, and its RFC 6962 root hash (C2SP tlog-checkpoint "Note text"). */
export interface Checkpoint {
  /** The log's identity, e.g. `confide.example/ledger`. */
  readonly origin: string;
  /** Number of leaves. */
  readonly size: number;
  /** MTH of the first `size` leaves (RFC 9162 §2.1.1), 32 bytes. */
  readonly root: Uint8Array;
}

/** Why a checkpoint or verifier key was rejected. */
export type CheckpointErrorReason =
  | 'malformed' // not a well-formed signed note, checkpoint body or verifier key
  | 'unknown-key' // no signature line from the expected key (name and key id)
  | 'bad-signature' // a signature line from the expected key that does not verify
  | 'origin-mismatch'; // signed, but for another log

/** A rejected checkpoint, signed note or verifier key (C2SP signed-note, tlog-checkpoint). */
export class CheckpointError extends Error {
  override readonly name = 'CheckpointError';

  /**
   * @param reason machine-readable cause
   * @param message human-readable detail
   * @param options the underlying error, if any
   */
  constructor(
    readonly reason: CheckpointErrorReason,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Signature type byte of Ed25519 in C2SP signed-note ("Signature types"). */
const ED25519_TYPE = 0x01;
const EM_DASH = '\u2014';
const KEY_ID_SIZE = 4;
const SIGNATURE_SIZE = 64;
// C2SP signed-note: verifiers SHOULD bound the number of signatures (and MUST accept 16); Go's sumdb/note stops at 100.
const MAX_SIGNATURES = 100;
const MAX_NOTE_LENGTH = 1 << 20;

// Key names: non-empty, no Unicode spaces and no '+' (C2SP signed-note "Format"); no control characters or lone
// surrogates either, since a note must be valid UTF-8 without control characters.
const FORBIDDEN_IN_NAME = /[\p{White_Space}\p{Cc}\p{Cs}+]/u;

function malformed(message: string, cause?: unknown): CheckpointError {
  return new CheckpointError('malformed', message, cause === undefined ? undefined : { cause });
}

function checkName(name: string, what: string): void {
  if (typeof name !== 'string' || name.length === 0 || FORBIDDEN_IN_NAME.test(name)) {
    throw malformed(`${what} must be non-empty, without spaces, '+' or control characters: ${JSON.stringify(name)}`);
  }
}

function toBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}

/** Strict standard base64 with padding (RFC 4648 §4), as C2SP notes use it: exactly one text per byte string. */
function fromBase64(text: string, what: string): Uint8Array {
  if (!/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(text)) throw malformed(`${what} is not base64`);
  const bytes = new Uint8Array(Buffer.from(text, 'base64'));
  if (toBase64(bytes) !== text) throw malformed(`${what} is not canonical base64`);
  return bytes;
}

function checkCheckpoint(checkpoint: Checkpoint): void {
  checkName(checkpoint.origin, 'origin');
  if (!Number.isSafeInteger(checkpoint.size) || checkpoint.size < 0) throw malformed(`tree size must be a non-negative safe integer, got ${checkpoint.size}`);
  if (!(checkpoint.root instanceof Uint8Array) || checkpoint.root.length !== HASH_SIZE) throw malformed(`root hash must be ${HASH_SIZE} bytes`);
}

/**
 * The checkpoint note text of C2SP tlog-checkpoint ("Note text"): `<origin>\n<size>\n<base64 root>\n`, size in
 * decimal without leading zeroes, root in standard base64. No extension lines (the spec does not recommend them).
 * The origin must also be a valid C2SP signed-note key name (no spaces, no '+'), the spec's recommended form.
 * @throws CheckpointError ('malformed') on a bad origin, size or root
 */
export function formatCheckpoint(checkpoint: Checkpoint): string {
  checkCheckpoint(checkpoint);
  return `${checkpoint.origin}\n${checkpoint.size}\n${toBase64(checkpoint.root)}\n`;
}

/**
 * Parses a checkpoint note text (C2SP tlog-checkpoint "Note text") as {@link formatCheckpoint} writes it: exactly
 * three lines, each newline-terminated. It does not check any signature: use {@link verifyCheckpoint} on a note.
 * @throws CheckpointError ('malformed') on extension lines, a missing final newline, a size with leading zeroes or
 *   beyond 2^53 − 1, or a root that is not canonical base64 of 32 bytes
 */
export function parseCheckpoint(text: string): Checkpoint {
  if (typeof text !== 'string' || !text.endsWith('\n')) throw malformed('checkpoint text must end with a newline');
  const lines = text.slice(0, -1).split('\n');
  if (lines.length !== 3) throw malformed(`checkpoint text must have exactly 3 lines (origin, size, root), got ${lines.length}`);
  const [origin, sizeText, rootText] = lines as [string, string, string];
  checkName(origin, 'origin');
  if (!/^(0|[1-9][0-9]*)$/.test(sizeText)) throw malformed(`tree size ${JSON.stringify(sizeText)} is not a decimal without leading zeroes`);
  const size = Number(sizeText);
  if (!Number.isSafeInteger(size)) throw malformed(`tree size ${sizeText} is beyond 2^53 − 1`);
  const root = fromBase64(rootText, 'root hash');
  if (root.length !== HASH_SIZE) throw malformed(`root hash must be ${HASH_SIZE} bytes, got ${root.length}`);
  return { origin, size, root };
}

function checkEd25519(key: PublicKey): void {
  if (key?.algorithm !== 'ed25519' || !(key.raw instanceof Uint8Array) || key.raw.length !== 32) throw new TypeError('checkpoint key must be an Ed25519 public key');
}

/**
 * Key ID of an Ed25519 note key: the first 4 bytes of SHA-256(key name ‖ 0x0A ‖ 0x01 ‖ 32-byte public key)
 * (C2SP signed-note "Ed25519 signatures"), big-endian as it appears in signatures and verifier keys.
 * @throws CheckpointError ('malformed') on an invalid key name, TypeError on a non-Ed25519 key
 */
export function noteKeyId(name: string, publicKey: PublicKey): Uint8Array {
  checkName(name, 'key name');
  checkEd25519(publicKey);
  const digest = createHash('sha256').update(name, 'utf8').update(Uint8Array.of(0x0a, ED25519_TYPE)).update(publicKey.raw).digest();
  return new Uint8Array(digest.subarray(0, KEY_ID_SIZE));
}

function checkNoteText(text: string, what: string): void {
  if (typeof text !== 'string') throw malformed(`${what} must be a string`);
  if (text.length > MAX_NOTE_LENGTH) throw malformed(`${what} is too long`);
  if (/\p{Cs}/u.test(text)) throw malformed(`${what} is not valid Unicode (lone surrogate)`);
  // eslint-disable-next-line no-control-regex -- the point is to find control characters
  if (/[\u0000-\u0009\u000b-\u001f]/.test(text)) throw malformed(`${what} contains a control character other than newline`);
}

/**
 * Signs a text as a C2SP signed note ("Format"): the text, a blank line, and the signature line
 * `— <name> <base64(key ID ‖ Ed25519 signature)>`, the signature being RFC 8032 §5.1 Ed25519 over the text's UTF-8
 * bytes including its final newline. Byte for byte what golang.org/x/mod/sumdb/note's Sign writes.
 * @param text non-empty, newline-terminated, no control characters but newline
 * @throws TypeError on a non-Ed25519 key, CheckpointError ('malformed') on a bad name or text
 */
export function signNote(key: KeyPair, name: string, text: string): string {
  if (key?.algorithm !== 'ed25519' || key.privateKey.asymmetricKeyType !== 'ed25519') throw new TypeError('note signing key must be Ed25519');
  const keyId = noteKeyId(name, key.publicKey);
  checkNoteText(text, 'note text');
  if (text.length === 0 || !text.endsWith('\n')) throw malformed('note text must be non-empty and end with a newline');
  const signature = sign(null, Buffer.from(text, 'utf8'), key.privateKey);
  const blob = new Uint8Array(KEY_ID_SIZE + SIGNATURE_SIZE);
  blob.set(keyId, 0);
  blob.set(signature, KEY_ID_SIZE);
  return `${text}\n${EM_DASH} ${name} ${toBase64(blob)}\n`;
}

/**
 * Opens a C2SP signed note with one Ed25519 key and returns its text (including the final newline). Strict: valid
 * Unicode with no control character but newline, text separated from the signatures by the last blank line,
 * every signature line well formed (`— <name> <base64>` with a valid key name and at least a key ID), at most 100
 * of them, nothing after the last. Signature lines from other keys are ignored, as the spec requires (witness
 * cosignatures may sit beside the log's signature); at least one must come from this key (same name and key ID)
 * and every one from it must verify ("Signatures": a failed known-key signature rejects the note).
 * @throws CheckpointError with reason 'malformed', 'unknown-key' or 'bad-signature'; TypeError on a non-Ed25519 key
 */
export function openNote(note: string, publicKey: PublicKey, name: string): string {
  const keyId = noteKeyId(name, publicKey);
  checkNoteText(note, 'note');
  const split = note.lastIndexOf('\n\n');
  if (split < 0) throw malformed('note has no blank line before its signatures');
  const text = note.slice(0, split + 1);
  const block = note.slice(split + 2);
  if (!block.endsWith('\n')) throw malformed('signature block must end with a newline');
  const lines = block.slice(0, -1).split('\n');
  if (lines.length > MAX_SIGNATURES) throw malformed(`note has more than ${MAX_SIGNATURES} signatures`);
  const message = Buffer.from(text, 'utf8');
  let verified = 0;
  for (const line of lines) {
    const match = /^\u2014 ([^ ]+) ([^ ]+)$/u.exec(line);
    if (!match) throw malformed(`not a signature line: ${JSON.stringify(line.slice(0, 80))}`);
    const [, lineName, encoded] = match as unknown as [string, string, string];
    checkName(lineName, 'signature key name');
    const blob = fromBase64(encoded, 'signature');
    if (blob.length <= KEY_ID_SIZE) throw malformed('signature is too short to hold a key ID');
    if (lineName !== name || !bytesEqual(blob.subarray(0, KEY_ID_SIZE), keyId)) continue;
    const signature = blob.subarray(KEY_ID_SIZE);
    if (signature.length !== SIGNATURE_SIZE || !verify(null, message, publicKey.key, signature)) {
      throw new CheckpointError('bad-signature', `signature by ${name} does not verify`);
    }
    verified += 1;
  }
  if (verified === 0) throw new CheckpointError('unknown-key', `note is not signed by ${name}`);
  return text;
}

/**
 * Signs a checkpoint (C2SP tlog-checkpoint "Signatures") as a signed note ({@link signNote}) over its text
 * ({@link formatCheckpoint}).
 * @param key the coordinator's Ed25519 key pair
 * @param name the key name; C2SP tlog-checkpoint says it SHOULD equal the origin, which {@link verifyCheckpoint}
 *   expects by default
 * @throws TypeError on a non-Ed25519 key, CheckpointError ('malformed') on a bad name or checkpoint
 */
export function signCheckpoint(key: KeyPair, name: string, checkpoint: Checkpoint): string {
  return signNote(key, name, formatCheckpoint(checkpoint));
}

/** Options of {@link verifyCheckpoint}. */
export interface VerifyCheckpointOptions {
  /** The log identity the checkpoint must carry; defaults to the key name. */
  readonly origin?: string;
}

/**
 * Verifies a signed checkpoint (C2SP tlog-checkpoint over C2SP signed-note) with the coordinator's public key and
 * returns its contents: {@link openNote}, then {@link parseCheckpoint} on the text (exactly origin, size and root:
 * extension lines are rejected), then the origin must equal `options.origin`, by default the key name — a
 * checkpoint of another log signed with the same key is not accepted by accident.
 * @throws CheckpointError with reason 'malformed', 'unknown-key', 'bad-signature' or 'origin-mismatch';
 *   TypeError on a non-Ed25519 key
 */
export function verifyCheckpoint(note: string, publicKey: PublicKey, name: string, options: VerifyCheckpointOptions = {}): Checkpoint {
  const checkpoint = parseCheckpoint(openNote(note, publicKey, name));
  const origin = options.origin ?? name;
  if (checkpoint.origin !== origin) throw new CheckpointError('origin-mismatch', `checkpoint is for ${JSON.stringify(checkpoint.origin)}, expected ${JSON.stringify(origin)}`);
  return checkpoint;
}

/** A parsed verifier key: who signs, the key ID, and the Ed25519 public key. */
export interface VerifierKey {
  readonly name: string;
  readonly keyId: Uint8Array;
  readonly publicKey: PublicKey;
}

/**
 * The verifier key string that auditors pin: `<name>+<hex key ID>+<base64(0x01 ‖ public key)>` (C2SP signed-note
 * key encoding, as golang.org/x/mod/sumdb/note writes it; key ID per {@link noteKeyId}).
 * @throws CheckpointError ('malformed') on a bad name, TypeError on a non-Ed25519 key
 */
export function formatVerifierKey(name: string, publicKey: PublicKey): string {
  const keyId = noteKeyId(name, publicKey);
  const typed = new Uint8Array(1 + 32);
  typed[0] = ED25519_TYPE;
  typed.set(publicKey.raw, 1);
  return `${name}+${Buffer.from(keyId).toString('hex')}+${toBase64(typed)}`;
}

/**
 * Parses a verifier key written by {@link formatVerifierKey}. Only Ed25519 (type 0x01) keys are accepted; the key
 * ID must be 8 lower-case hex digits and match the name and key (C2SP signed-note), and the key must pass
 * @confide/crypto's `importPublicKey` checks (canonical, not of small order).
 * @throws CheckpointError ('malformed') naming the problem
 */
export function parseVerifierKey(text: string): VerifierKey {
  if (typeof text !== 'string') throw malformed('verifier key must be a string');
  const first = text.indexOf('+');
  const second = first < 0 ? -1 : text.indexOf('+', first + 1);
  if (second < 0) throw malformed('verifier key must be <name>+<key id>+<key>');
  const name = text.slice(0, first);
  const idHex = text.slice(first + 1, second);
  checkName(name, 'key name');
  if (!/^[0-9a-f]{8}$/.test(idHex)) throw malformed('verifier key ID must be 8 lower-case hex digits');
  const typed = fromBase64(text.slice(second + 1), 'verifier public key');
  if (typed.length !== 33 || typed[0] !== ED25519_TYPE) throw malformed('verifier key must be an Ed25519 key (type 0x01 and 32 bytes)');
  let publicKey: PublicKey;
  try {
    publicKey = importPublicKey('ed25519', typed.subarray(1));
  } catch (cause) {
    throw malformed('verifier key is not a usable Ed25519 public key', cause);
  }
  const keyId = noteKeyId(name, publicKey);
  if (Buffer.from(keyId).toString('hex') !== idHex) throw malformed('verifier key ID does not match its name and key');
  return { name, keyId, publicKey };
}

/**
 * The origin (log identity, C2SP tlog-checkpoint) of a Confide ledger: `confide/` and the first 16 hex digits of
 * the coordinator key's fingerprint. Anyone holding the pinned coordinator key derives it without asking.
 */
export function ledgerOrigin(publicKey: PublicKey): string {
  return `confide/${keyFingerprint(publicKey).slice(0, 16)}`;
}
