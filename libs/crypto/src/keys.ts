import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { fromBase64Url, toBase64Url } from './encoding';
import { secureRandom, type RandomSource } from './random';

/** The two key types a participant holds: X25519 to receive encrypted shares, Ed25519 to sign. */
export type KeyAlgorithm = 'x25519' | 'ed25519';

// DER prefixes of PKCS#8 private keys for the two curves (RFC 8410 §7), followed by the 32 raw key bytes.
// Building keys from raw bytes this way lets a test inject deterministic randomness.
const PKCS8_PREFIX: Record<KeyAlgorithm, string> = {
  x25519: '302e020100300506032b656e04220420',
  ed25519: '302e020100300506032b657004220420',
};
const JWK_CURVE: Record<KeyAlgorithm, string> = { x25519: 'X25519', ed25519: 'Ed25519' };

/** A validated public key: its node:crypto KeyObject and its 32 raw bytes (what travels and gets hashed). */
export interface PublicKey {
  readonly algorithm: KeyAlgorithm;
  readonly key: KeyObject;
  readonly raw: Uint8Array;
}

/** A key pair. The private key stays a KeyObject and is never serialised except by {@link exportPrivateKeyPem}. */
export interface KeyPair {
  readonly algorithm: KeyAlgorithm;
  readonly privateKey: KeyObject;
  readonly publicKey: PublicKey;
}

function pairOf(algorithm: KeyAlgorithm, privateKey: KeyObject, publicKey = createPublicKey(privateKey)): KeyPair {
  return { algorithm, privateKey, publicKey: { algorithm, key: publicKey, raw: rawPublicKey(publicKey) } };
}

/**
 * Generates an X25519 (RFC 7748) or Ed25519 (RFC 8032) key pair. With the default source the key comes
 * from OpenSSL's generator; an injected source supplies the 32 private bytes (tests only).
 */
export function generateKeyPair(algorithm: KeyAlgorithm, rng?: RandomSource): KeyPair {
  if (!rng || rng === secureRandom) {
    const { privateKey, publicKey } = generateKeyPairSync(algorithm as 'x25519');
    return pairOf(algorithm, privateKey, publicKey);
  }
  return keyPairFromPrivate(algorithm, rng(32));
}

/** Rebuilds a key pair from its 32 raw private-key bytes (RFC 8410 PKCS#8 wrapping). */
export function keyPairFromPrivate(algorithm: KeyAlgorithm, raw: Uint8Array): KeyPair {
  if (raw.length !== 32) throw new RangeError(`${algorithm} private key must be 32 bytes`);
  const der = Buffer.concat([Buffer.from(PKCS8_PREFIX[algorithm], 'hex'), raw]);
  return pairOf(algorithm, createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }));
}

/** The 32 raw bytes of an X25519 or Ed25519 public key (RFC 8037 JWK `x`); a private key gives its public half. */
export function rawPublicKey(key: KeyObject): Uint8Array {
  const publicKey = key.type === 'private' ? createPublicKey(key) : key;
  // The JWK export is an order of magnitude cheaper than DER in Node 20 (bench: envelope sealing).
  const { x } = publicKey.export({ format: 'jwk' });
  if (typeof x !== 'string') throw new TypeError('not an X25519 or Ed25519 public key');
  return fromBase64Url(x, 32, 'public key');
}

/**
 * Imports a raw 32-byte public key, or throws. X25519 keys also pass
 * {@link assertSafeX25519PublicKey}, Ed25519 keys {@link assertSafeEd25519PublicKey} (OpenSSL itself
 * accepts any 32 bytes here and checks nothing until a signature is verified).
 */
export function importPublicKey(algorithm: KeyAlgorithm, raw: Uint8Array): PublicKey {
  if (raw.length !== 32) throw new RangeError(`${algorithm} public key must be 32 bytes, got ${raw.length}`);
  if (algorithm === 'x25519') assertSafeX25519PublicKey(raw);
  else assertSafeEd25519PublicKey(raw);
  try {
    // Imported as an RFC 8037 JWK: the same key as the RFC 8410 SPKI form, ten times cheaper to parse in Node 20.
    const key = createPublicKey({ key: { kty: 'OKP', crv: JWK_CURVE[algorithm], x: toBase64Url(raw) }, format: 'jwk' });
    return { algorithm, key, raw: Uint8Array.from(raw) };
  } catch (cause) {
    throw new RangeError(`invalid ${algorithm} public key`, { cause });
  }
}

/** Public keys imported from text, most recent last: the same committee's and contributors' keys come with every task. */
const imported = new Map<string, PublicKey>();
const IMPORT_CACHE_SIZE = 4096;

/**
 * Imports a public key given as base64url of its raw bytes. The same text always gives the same key, so keys that
 * passed {@link importPublicKey}'s checks are kept (up to 4,096, least recently used out) and handed out again:
 * creating an OpenSSL key object is the costly part of checking a task's directory.
 */
export function importPublicKeyBase64Url(algorithm: KeyAlgorithm, text: string): PublicKey {
  const id = `${algorithm}:${text}`;
  const known = imported.get(id);
  if (known) {
    imported.delete(id);
    imported.set(id, known);
    return known;
  }
  const key = importPublicKey(algorithm, fromBase64Url(text, 32, `${algorithm} public key`));
  imported.set(id, Object.freeze(key));
  if (imported.size > IMPORT_CACHE_SIZE) imported.delete(imported.keys().next().value!);
  return key;
}

const P25519 = (1n << 255n) - 19n;
// u-coordinates of the points of small order on Curve25519 and its twist (orders 1, 2, 4, 8): any X25519
// shared secret computed with one is the all-zero string whatever the private key (RFC 7748 §6.1), so a
// sender who used one would "encrypt" to a key everybody knows.
const LOW_ORDER_U = new Set<bigint>([
  0n,
  1n,
  P25519 - 1n,
  325606250916557431795983626356110631294008115727848805560023387167927233504n,
  39382357235489614581723060781553021112529911719440698176882885853963445705823n,
]);

/**
 * Rejects an X25519 public key that is non-canonical (u ≥ 2^255 − 19, or the unused top bit set) or of
 * small order (RFC 7748 §6.1 warns against both; libsodium blocks the same points).
 * @throws RangeError naming the problem
 */
export function assertSafeX25519PublicKey(raw: Uint8Array): void {
  if (raw.length !== 32) throw new RangeError('X25519 public key must be 32 bytes');
  if ((raw[31]! & 0x80) !== 0) throw new RangeError('X25519 public key has its top bit set (non-canonical)');
  let u = 0n;
  for (let i = 31; i >= 0; i--) u = (u << 8n) | BigInt(raw[i]!);
  if (u >= P25519) throw new RangeError('X25519 public key is not reduced mod 2^255 − 19 (non-canonical)');
  if (LOW_ORDER_U.has(u)) throw new RangeError('X25519 public key is a point of small order');
}

// y-coordinates of the eight Ed25519 points of small order (orders 1, 2, 4, 8; the sign bit picks ±x). With such a
// public key A, [k]A takes at most 8 values, so R = identity, S = 0 verifies for one message in eight whatever the
// message: anybody can sign as that key (libsodium's ge25519_has_small_order blocks the same points).
const LOW_ORDER_ED25519_Y = new Set<bigint>([
  0n,
  1n,
  P25519 - 1n,
  2707385501144840649318225287225658788936804267575313519463743609750303402022n,
  55188659117513257062467267217118295137698188065244968500265048394206261417927n,
]);

/**
 * Rejects an Ed25519 public key (RFC 8032 §5.1.2 encoding) whose y-coordinate is non-canonical
 * (y ≥ 2^255 − 19) or that encodes a point of small order, under which signatures are forgeable.
 * @throws RangeError naming the problem
 */
export function assertSafeEd25519PublicKey(raw: Uint8Array): void {
  if (raw.length !== 32) throw new RangeError('Ed25519 public key must be 32 bytes');
  let y = BigInt(raw[31]! & 0x7f);
  for (let i = 30; i >= 0; i--) y = (y << 8n) | BigInt(raw[i]!);
  if (y >= P25519) throw new RangeError('Ed25519 public key is not reduced mod 2^255 − 19 (non-canonical)');
  if (LOW_ORDER_ED25519_Y.has(y)) throw new RangeError('Ed25519 public key is a point of small order');
}

/** Private key as PKCS#8 PEM, for a key file on the holder's disk (mode 0600 is the caller's job). */
export function exportPrivateKeyPem(key: KeyObject): string {
  return key.export({ format: 'pem', type: 'pkcs8' }).toString();
}

/** Reads a PKCS#8 PEM private key of the expected algorithm. @throws TypeError on any other key type */
export function importPrivateKeyPem(algorithm: KeyAlgorithm, pem: string): KeyPair {
  const privateKey = createPrivateKey({ key: pem, format: 'pem' });
  if (privateKey.asymmetricKeyType !== algorithm) {
    throw new TypeError(`expected an ${algorithm} private key, got ${privateKey.asymmetricKeyType ?? 'unknown'}`);
  }
  return pairOf(algorithm, privateKey);
}

/**
 * Key fingerprint: hex SHA-256 over "confide-key-v1:<algorithm>:" ‖ raw public key. What the ledger
 * records for a registered key and what a human compares out of band.
 */
export function keyFingerprint(key: PublicKey): string {
  return createHash('sha256').update(`confide-key-v1:${key.algorithm}:`).update(key.raw).digest('hex');
}

/** Base64url of a public key's raw bytes, its form on the wire and in the database. */
export function publicKeyBase64Url(key: PublicKey): string {
  return toBase64Url(key.raw);
}
