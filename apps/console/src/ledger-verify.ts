/**
 * The console's own verification of the ledger, in the browser with WebCrypto only (SHA-256 and Ed25519): a signed
 * checkpoint against a verifier key the user pinned (C2SP signed-note and tlog-checkpoint), an entry's inclusion
 * proof against that checkpoint (RFC 9162 §2.1.3.2), and a later checkpoint's consistency with the one verified
 * on an earlier visit (RFC 9162 §2.1.4.2). Nothing here trusts the coordinator that served the page: every answer
 * is recomputed from bytes and the pinned key.
 *
 * This is a second implementation of what libs/ledger does with node:crypto (the CLI's `ledger verify` and the
 * participants use that one); its unit tests check the two agree on the same trees and notes, and the shared tier
 * runs it on the published RFC 6962 vectors. It uses only what browsers and Node 20 both have (crypto.subtle,
 * TextEncoder, atob/btoa), so it has no DOM types and no Node imports.
 */

/** Why a verification failed; the console shows the message, the tests check the reason. */
export type VerifyFailure =
  | 'malformed' // a note, key, proof or entry that is not well formed
  | 'unknown-key' // the note has no signature by the pinned key
  | 'bad-signature' // a signature by the pinned key that does not verify
  | 'origin-mismatch' // signed for another log
  | 'proof-length' // too many or too few proof nodes
  | 'root-mismatch' // a proof that leads to another root
  | 'index-mismatch' // entry bytes that name another index than the one they were served at
  | 'rollback'; // a checkpoint smaller than the one verified before

export class VerifyError extends Error {
  override readonly name = 'VerifyError';
  constructor(
    readonly reason: VerifyFailure,
    message: string,
  ) {
    super(message);
  }
}

/** A checkpoint as its signed note states it. */
export interface VerifiedCheckpoint {
  readonly origin: string;
  readonly size: number;
  /** Standard base64 of the 32-byte root, as the note writes it. */
  readonly root: string;
}

/** An imported Ed25519 public key (named from WebCrypto itself: Node's types have no global CryptoKey). */
type VerifyingKey = Awaited<ReturnType<typeof crypto.subtle.importKey>>;

/** A pinned verifier key: `<name>+<8 hex key id>+<base64(0x01 ‖ Ed25519 public key)>`. */
export interface PinnedKey {
  readonly name: string;
  readonly keyId: Uint8Array;
  readonly raw: Uint8Array;
  readonly key: VerifyingKey;
}

const HASH_SIZE = 32;
const ED25519 = 0x01;
const EM_DASH = '\u2014';
const utf8 = new TextEncoder();

/** Strict standard base64 with padding: exactly one text per byte string, as C2SP notes and the API use it. */
export function fromBase64(text: string, what: string): Uint8Array<ArrayBuffer> {
  if (typeof text !== 'string' || !/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(text)) throw new VerifyError('malformed', `${what} is not base64`);
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  if (toBase64(bytes) !== text) throw new VerifyError('malformed', `${what} is not canonical base64`);
  return bytes;
}

export function toBase64(bytes: Uint8Array): string {
  let binary = '';
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary);
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

function concat(...parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

async function sha256(...parts: Uint8Array[]): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest('SHA-256', concat(...parts)));
}

/** SHA-256(0x00 ‖ entry): the leaf hash of RFC 9162 §2.1.1. */
export function leafHash(entry: Uint8Array): Promise<Uint8Array> {
  return sha256(Uint8Array.of(0x00), entry);
}

/** SHA-256(0x01 ‖ left ‖ right): an interior node. */
function nodeHash(left: Uint8Array, right: Uint8Array): Promise<Uint8Array> {
  return sha256(Uint8Array.of(0x01), left, right);
}

const NAME = /^[^\s+\p{Cc}]+$/u;

/** The C2SP key ID of an Ed25519 note key: SHA-256(name ‖ 0x0A ‖ 0x01 ‖ key)[0:4]. */
async function keyIdOf(name: string, raw: Uint8Array): Promise<Uint8Array> {
  return (await sha256(utf8.encode(name), Uint8Array.of(0x0a, ED25519), raw)).subarray(0, 4);
}

const hex = (bytes: Uint8Array): string => [...bytes].map((b) => b.toString(16).padStart(2, '0')).join('');

/**
 * Parses and imports a verifier key as `confide coordinator key` and GET /v1/ledger/public-key print it.
 * @throws VerifyError ('malformed') naming the problem: a bad shape, a non-Ed25519 key, or a key ID that does not
 *   match the name and key (a key copied with a typo)
 */
export async function pinKey(text: string): Promise<PinnedKey> {
  // The key's base64 may hold '+' itself: only the first two separate the fields.
  const m = /^([^+]*)\+([^+]*)\+(.*)$/s.exec(text.trim());
  if (!m) throw new VerifyError('malformed', 'a verifier key is <name>+<key id>+<key>');
  const [, name, idHex, encoded] = m as unknown as [string, string, string, string];
  if (!NAME.test(name)) throw new VerifyError('malformed', 'the key name must have no spaces or "+"');
  if (!/^[0-9a-f]{8}$/.test(idHex)) throw new VerifyError('malformed', 'the key ID must be 8 lower-case hex digits');
  const typed = fromBase64(encoded, 'the public key');
  if (typed.length !== 33 || typed[0] !== ED25519) throw new VerifyError('malformed', 'the key must be an Ed25519 key (type 0x01 and 32 bytes)');
  const raw = typed.slice(1);
  const keyId = await keyIdOf(name, raw);
  if (hex(keyId) !== idHex) throw new VerifyError('malformed', 'the key ID does not match the name and key: was the key copied whole?');
  let key: VerifyingKey;
  try {
    key = await crypto.subtle.importKey('raw', raw, { name: 'Ed25519' }, false, ['verify']);
  } catch (err) {
    throw new VerifyError('malformed', `not a usable Ed25519 public key (${(err as Error).message})`);
  }
  return { name, keyId, raw, key };
}

/**
 * Pins the coordinator's key by its fingerprint, the 64 hex digits the admin hands participants and auditors
 * (`confide coordinator info`): the key the coordinator serves (`publicKey`, base64url) is accepted only when
 * SHA-256("confide-key-v1:ed25519:" ‖ key) is that fingerprint. The log's name is then derived here, as
 * libs/ledger's ledgerOrigin does (`confide/` and the fingerprint's first 16 digits), not taken from the coordinator.
 * @throws VerifyError ('malformed') for a fingerprint or key of the wrong shape, ('unknown-key') for a served key
 *   with another fingerprint
 */
export async function pinFingerprint(fingerprint: string, publicKey: string): Promise<PinnedKey> {
  const pinned = fingerprint.trim();
  if (!/^[0-9a-f]{64}$/.test(pinned)) throw new VerifyError('malformed', 'a key fingerprint is 64 lower-case hex digits');
  if (!/^[A-Za-z0-9_-]{43}$/.test(publicKey)) throw new VerifyError('malformed', 'the coordinator served no Ed25519 public key');
  const raw = fromBase64(`${publicKey.replace(/-/g, '+').replace(/_/g, '/')}=`, 'the public key');
  const served = hex(await sha256(utf8.encode('confide-key-v1:ed25519:'), raw));
  if (served !== pinned) throw new VerifyError('unknown-key', `the coordinator's key has fingerprint ${served}, not the pinned ${pinned}`);
  const name = `confide/${pinned.slice(0, 16)}`;
  let key: VerifyingKey;
  try {
    key = await crypto.subtle.importKey('raw', raw, { name: 'Ed25519' }, false, ['verify']);
  } catch (err) {
    throw new VerifyError('malformed', `not a usable Ed25519 public key (${(err as Error).message})`);
  }
  return { name, keyId: await keyIdOf(name, raw), raw, key };
}

/**
 * Opens a signed checkpoint with the pinned key and returns what it states: every signature line well formed, at
 * least one by the pinned key (same name and key ID), every such one verifying, and the text exactly
 * `<origin>\n<size>\n<base64 root>\n` with the origin equal to the key's name.
 */
export async function verifyCheckpointNote(note: string, pinned: PinnedKey): Promise<VerifiedCheckpoint> {
  // eslint-disable-next-line no-control-regex -- the point is to find control characters
  if (typeof note !== 'string' || /[\u0000-\u0009\u000b-\u001f]/.test(note)) throw new VerifyError('malformed', 'the checkpoint note has a control character');
  const split = note.lastIndexOf('\n\n');
  if (split < 0 || !note.endsWith('\n')) throw new VerifyError('malformed', 'the checkpoint note has no signature block');
  const text = note.slice(0, split + 1);
  const lines = note.slice(split + 2, -1).split('\n');
  const message = utf8.encode(text);
  let verified = 0;
  for (const line of lines) {
    const match = /^\u2014 ([^ ]+) ([^ ]+)$/u.exec(line);
    if (!match || !line.startsWith(EM_DASH)) throw new VerifyError('malformed', `not a signature line: ${JSON.stringify(line.slice(0, 80))}`);
    const blob = fromBase64(match[2]!, 'a signature');
    if (blob.length <= 4) throw new VerifyError('malformed', 'a signature is too short to hold a key ID');
    if (match[1] !== pinned.name || !equal(blob.subarray(0, 4), pinned.keyId)) continue;
    const signature = blob.slice(4);
    if (signature.length !== 64 || !(await crypto.subtle.verify({ name: 'Ed25519' }, pinned.key, signature, message))) {
      throw new VerifyError('bad-signature', `the checkpoint's signature by ${pinned.name} does not verify`);
    }
    verified += 1;
  }
  if (verified === 0) throw new VerifyError('unknown-key', `the checkpoint is not signed by the pinned key ${pinned.name}`);
  const body = text.slice(0, -1).split('\n');
  if (body.length !== 3) throw new VerifyError('malformed', 'a checkpoint is exactly origin, size and root');
  const [origin, sizeText, root] = body as [string, string, string];
  if (!/^(0|[1-9][0-9]*)$/.test(sizeText) || !Number.isSafeInteger(Number(sizeText))) throw new VerifyError('malformed', `tree size ${JSON.stringify(sizeText)} is not a decimal`);
  if (fromBase64(root, 'the root hash').length !== HASH_SIZE) throw new VerifyError('malformed', 'the root hash is not 32 bytes');
  if (origin !== pinned.name) throw new VerifyError('origin-mismatch', `the checkpoint is for ${JSON.stringify(origin)}, the pinned key for ${JSON.stringify(pinned.name)}`);
  return { origin, size: Number(sizeText), root };
}

const isOdd = (n: number): boolean => n % 2 === 1;
const half = (n: number): number => Math.floor(n / 2);

/**
 * The inclusion proof check of RFC 9162 §2.1.3.2 over bytes, as strict as libs/ledger's: index < size, every hash
 * 32 bytes, the proof exactly as long as the path.
 */
export async function verifyInclusion(leaf: Uint8Array, index: number, size: number, proof: readonly Uint8Array[], root: Uint8Array): Promise<void> {
  if (root.length !== HASH_SIZE) throw new VerifyError('malformed', 'the root is not 32 bytes');
  if (!equal(await rootFromInclusion(leaf, index, size, proof), root)) throw new VerifyError('root-mismatch', `the inclusion proof of entry ${index} leads to another root`);
}

/** The root an inclusion proof leads to from `leaf` at `index` of `size` (RFC 9162 §2.1.3.2 steps 1–4). */
async function rootFromInclusion(leaf: Uint8Array, index: number, size: number, proof: readonly Uint8Array[]): Promise<Uint8Array> {
  if (!Number.isSafeInteger(index) || !Number.isSafeInteger(size) || index < 0 || index >= size) throw new VerifyError('malformed', `index ${index} is not in a tree of ${size}`);
  if (leaf.length !== HASH_SIZE) throw new VerifyError('malformed', 'the leaf hash is not 32 bytes');
  let fn = index;
  let sn = size - 1;
  let r = leaf;
  for (const p of proof) {
    if (p.length !== HASH_SIZE) throw new VerifyError('malformed', 'a proof node is not 32 bytes');
    if (sn === 0) throw new VerifyError('proof-length', `the proof of entry ${index} has too many nodes`);
    if (isOdd(fn) || fn === sn) {
      r = await nodeHash(p, r);
      while (!isOdd(fn) && fn !== 0) {
        fn = half(fn);
        sn = half(sn);
      }
    } else {
      r = await nodeHash(r, p);
    }
    fn = half(fn);
    sn = half(sn);
  }
  if (sn !== 0) throw new VerifyError('proof-length', `the proof of entry ${index} has too few nodes`);
  return r;
}

/**
 * Checks that `entry` (its bytes as the API served them, base64) is entry `index` of the verified checkpoint: its
 * leaf hash, with the inclusion proof, leads to the checkpoint's root; and the entry names that index itself (the
 * index is inside every entry's canonical JSON), so bytes of another position cannot be shown in its place.
 * @returns the parsed entry
 */
export async function verifyEntry(index: number, entryBase64: string, proofBase64: readonly string[], checkpoint: VerifiedCheckpoint): Promise<LedgerEntryView> {
  const bytes = fromBase64(entryBase64, `entry ${index}`);
  const entry = parseEntryBytes(bytes, index);
  const proof = proofBase64.map((p, i) => fromBase64(p, `proof node ${i}`));
  try {
    await verifyInclusion(await leafHash(bytes), index, checkpoint.size, proof, fromBase64(checkpoint.root, 'the checkpoint root'));
  } catch (err) {
    if (err instanceof VerifyError && err.reason === 'root-mismatch') {
      throw new VerifyError('root-mismatch', `entry ${index} does not match the signed checkpoint (size ${checkpoint.size}): its bytes or its proof were altered`);
    }
    throw err;
  }
  return entry;
}

/** A ledger entry as the console shows it. */
export interface LedgerEntryView {
  readonly index: number;
  readonly type: string;
  readonly time: string;
  readonly body: Record<string, unknown>;
}

/**
 * Reads entry bytes (`{"body":…,"index":…,"time":…,"type":…,"v":1}`, canonical JSON) and checks the index they
 * state is the one they were served at. The leaf hash covers the exact bytes, so this parse is only for display
 * and for the index check.
 */
export function parseEntryBytes(bytes: Uint8Array, index: number): LedgerEntryView {
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch {
    throw new VerifyError('malformed', `entry ${index} is not UTF-8 JSON`);
  }
  const e = value as { v?: unknown; index?: unknown; type?: unknown; time?: unknown; body?: unknown };
  if (typeof e !== 'object' || e === null || e.v !== 1 || typeof e.type !== 'string' || typeof e.time !== 'string' || typeof e.body !== 'object' || e.body === null) {
    throw new VerifyError('malformed', `entry ${index} is not a version 1 ledger entry`);
  }
  if (e.index !== index) throw new VerifyError('index-mismatch', `entry ${index} states index ${String(e.index)}`);
  return { index, type: e.type, time: e.time, body: e.body as Record<string, unknown> };
}

/**
 * Checks that the checkpoint `later` extends `earlier` (RFC 9162 §2.1.4.2): the log only grew, nothing before
 * `earlier.size` changed. A smaller later size is a rollback; equal sizes need equal roots; the empty tree is
 * extended by every tree.
 */
export async function verifyConsistency(earlier: VerifiedCheckpoint, later: VerifiedCheckpoint, proofBase64: readonly string[]): Promise<void> {
  if (later.size < earlier.size) throw new VerifyError('rollback', `the ledger has ${later.size} entries, fewer than the ${earlier.size} verified before`);
  if (earlier.size === 0) return;
  const proof = proofBase64.map((p, i) => fromBase64(p, `consistency proof node ${i}`));
  try {
    await verifyConsistencyProof(earlier.size, later.size, proof, fromBase64(earlier.root, 'the earlier root'), fromBase64(later.root, 'the later root'));
  } catch (err) {
    if (err instanceof VerifyError && err.reason === 'root-mismatch') {
      throw new VerifyError('root-mismatch', `the ledger at ${later.size} entries does not extend the one verified at ${earlier.size}: it was rewritten`);
    }
    throw err;
  }
}

/**
 * The consistency proof check of RFC 9162 §2.1.4.2 over bytes, as strict as libs/ledger's: sizes safe integers with
 * 0 < size1 ≤ size2, an empty proof exactly when the sizes are equal, every hash 32 bytes, no missing or extra node.
 */
export async function verifyConsistencyProof(size1: number, size2: number, proof: readonly Uint8Array[], root1: Uint8Array, root2: Uint8Array): Promise<void> {
  if (!Number.isSafeInteger(size1) || !Number.isSafeInteger(size2) || size1 < 1 || size1 > size2) throw new VerifyError('malformed', `no consistency proof from ${size1} to ${size2}`);
  if (size1 === size2) {
    // Nothing is hashed: the roots are compared as they are (RFC 9162 §2.1.4.2 step 1).
    if (proof.length !== 0) throw new VerifyError('proof-length', 'equal sizes need an empty consistency proof');
    if (!equal(root1, root2)) throw new VerifyError('root-mismatch', `two roots for the same size ${size1}`);
    return;
  }
  if (proof.length === 0) throw new VerifyError('proof-length', 'an empty consistency proof for a grown ledger');
  if ([root1, root2, ...proof].some((h) => h.length !== HASH_SIZE)) throw new VerifyError('malformed', 'a root or proof node is not 32 bytes');
  const path = isPowerOfTwo(size1) ? [root1, ...proof] : proof;
  let fn = size1 - 1;
  let sn = size2 - 1;
  while (isOdd(fn)) {
    fn = half(fn);
    sn = half(sn);
  }
  let fr = path[0]!;
  let sr = fr;
  for (const c of path.slice(1)) {
    if (sn === 0) throw new VerifyError('proof-length', 'the consistency proof has too many nodes');
    if (isOdd(fn) || fn === sn) {
      fr = await nodeHash(c, fr);
      sr = await nodeHash(c, sr);
      while (!isOdd(fn) && fn !== 0) {
        fn = half(fn);
        sn = half(sn);
      }
    } else {
      sr = await nodeHash(sr, c);
    }
    fn = half(fn);
    sn = half(sn);
  }
  if (sn !== 0) throw new VerifyError('proof-length', 'the consistency proof has too few nodes');
  if (!equal(fr, root1) || !equal(sr, root2)) throw new VerifyError('root-mismatch', `the consistency proof from ${size1} to ${size2} leads to other roots`);
}

// Not a bit trick: tree sizes go beyond 2^31.
function isPowerOfTwo(n: number): boolean {
  let p = 1;
  while (p < n) p *= 2;
  return p === n;
}
