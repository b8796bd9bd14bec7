import { createCipheriv, createDecipheriv, createHmac, diffieHellman } from 'node:crypto';
import { canonicalBytes, fromBase64Url, toBase64Url } from './encoding';
import { assertSafeX25519PublicKey, generateKeyPair, importPublicKey, type KeyPair, type PublicKey } from './keys';
import { secureRandom, type RandomSource } from './random';

/**
 * What an envelope is bound to. Authenticated as AES-GCM associated data, so a ciphertext lifted into
 * another job, round, or sender/recipient pair fails to decrypt.
 */
export interface EnvelopeContext {
  readonly jobId: string;
  readonly round: number;
  readonly sender: string;
  readonly recipient: string;
}

/** A sealed message to one recipient. All byte fields are base64url. */
export interface Envelope {
  readonly v: 1;
  /** Sender's ephemeral X25519 public key. */
  readonly epk: string;
  /** AES-GCM nonce, 12 bytes. */
  readonly iv: string;
  /** AES-256-GCM ciphertext followed by the 16-byte tag. */
  readonly ct: string;
}

const INFO = Buffer.from('confide/envelope/v1 X25519-HKDF-SHA256-AES256GCM', 'utf8');
const TAG_BYTES = 16;

/** Thrown when an envelope does not open: wrong key, altered bytes, or another context. Says nothing more. */
export class EnvelopeError extends Error {
  override readonly name = 'EnvelopeError';
}

function associatedData(ctx: EnvelopeContext): Uint8Array {
  if (!Number.isSafeInteger(ctx.round) || ctx.round < 0) throw new RangeError('envelope round must be a non-negative integer');
  for (const k of ['jobId', 'sender', 'recipient'] as const) {
    if (typeof ctx[k] !== 'string' || ctx[k].length === 0) throw new TypeError(`envelope ${k} must be a non-empty string`);
  }
  return canonicalBytes({ domain: 'confide/envelope/v1', jobId: ctx.jobId, round: ctx.round, sender: ctx.sender, recipient: ctx.recipient });
}

function deriveKey(shared: Buffer, epk: Uint8Array, rpk: Uint8Array): Buffer {
  // An all-zero X25519 output means a small-order point slipped through; never derive a key from it.
  if (shared.every((b) => b === 0)) throw new EnvelopeError('X25519 produced the all-zero shared secret');
  return hkdfSha256(shared, Buffer.concat([epk, rpk]), INFO);
}

/**
 * HKDF-SHA256 (RFC 5869 §2.2–2.3) for one 32-byte output block: PRK = HMAC(salt, IKM), OKM = HMAC(PRK, info ‖ 0x01).
 * Two HMAC calls are half the cost of node's general hkdfSync here; a unit test checks they agree.
 */
export function hkdfSha256(ikm: Uint8Array, salt: Uint8Array, info: Uint8Array): Buffer {
  const prk = createHmac('sha256', salt).update(ikm).digest();
  const okm = createHmac('sha256', prk).update(info).update(ONE).digest();
  prk.fill(0);
  return okm;
}
const ONE = Buffer.of(1);

/**
 * Encrypts `plaintext` to one recipient: ephemeral-static X25519 (RFC 7748), HKDF-SHA256 (RFC 5869) with
 * salt = epk ‖ recipient public key, then AES-256-GCM (NIST SP 800-38D) with the canonical JSON of `context`
 * as associated data — the construction of HPKE's base mode (RFC 9180) specialised to one suite.
 * @param recipient the recipient's X25519 public key, from `importPublicKey` (validated: canonical, not small order)
 * @param rng source of the ephemeral key and nonce (the CSPRNG unless a test injects one)
 * @throws RangeError on an invalid recipient key or context
 */
export function sealEnvelope(
  recipient: PublicKey,
  plaintext: Uint8Array,
  context: EnvelopeContext,
  rng: RandomSource = secureRandom,
): Envelope {
  if (recipient.algorithm !== 'x25519') throw new TypeError('envelope recipient key must be X25519');
  assertSafeX25519PublicKey(recipient.raw);
  const aad = associatedData(context);
  const ephemeral = generateKeyPair('x25519', rng);
  const shared = diffieHellman({ privateKey: ephemeral.privateKey, publicKey: recipient.key });
  const key = deriveKey(shared, ephemeral.publicKey.raw, recipient.raw);
  const iv = rng(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES });
  cipher.setAAD(aad);
  const ct = Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
  key.fill(0);
  shared.fill(0);
  return { v: 1, epk: toBase64Url(ephemeral.publicKey.raw), iv: toBase64Url(iv), ct: toBase64Url(ct) };
}

/**
 * Opens an envelope with the recipient's X25519 key pair, checking the GCM tag over the ciphertext
 * and the associated data rebuilt from `context`.
 * @throws EnvelopeError when anything does not match (key, bytes, context) — deliberately uninformative
 */
export function openEnvelope(recipient: KeyPair, envelope: Envelope, context: EnvelopeContext): Uint8Array {
  if (recipient.algorithm !== 'x25519') throw new TypeError('envelope recipient key must be X25519');
  let epk: Uint8Array;
  let iv: Uint8Array;
  let ct: Uint8Array;
  try {
    if (envelope.v !== 1) throw new Error('unsupported envelope version');
    epk = fromBase64Url(envelope.epk, 32, 'epk');
    iv = fromBase64Url(envelope.iv, 12, 'iv');
    ct = fromBase64Url(envelope.ct, undefined, 'ct');
    if (ct.length < TAG_BYTES) throw new Error('ciphertext shorter than its tag');
  } catch (cause) {
    throw new EnvelopeError('malformed envelope', { cause });
  }
  const aad = associatedData(context);
  let ephemeral: PublicKey;
  try {
    ephemeral = importPublicKey('x25519', epk);
  } catch (cause) {
    throw new EnvelopeError('envelope ephemeral key rejected', { cause });
  }
  let shared: Buffer;
  try {
    shared = diffieHellman({ privateKey: recipient.privateKey, publicKey: ephemeral.key });
  } catch (cause) {
    throw new EnvelopeError('envelope key agreement failed', { cause });
  }
  const key = deriveKey(shared, epk, recipient.publicKey.raw);
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES });
    decipher.setAAD(aad);
    decipher.setAuthTag(ct.subarray(ct.length - TAG_BYTES));
    return new Uint8Array(Buffer.concat([decipher.update(ct.subarray(0, ct.length - TAG_BYTES)), decipher.final()]));
  } catch (cause) {
    throw new EnvelopeError('envelope does not open with this key and context', { cause });
  } finally {
    key.fill(0);
    shared.fill(0);
  }
}
