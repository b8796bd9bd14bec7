import { sign, verify, type KeyObject } from 'node:crypto';
import type { PublicKey } from './keys';
import { canonicalJson, fromBase64Url, toBase64Url } from './encoding';

/**
 * The bytes Confide signs: "confide/v1/<domain>\n" followed by the canonical JSON of the payload.
 * The domain names the message type (e.g. "shamir/round1"), so a signature on one kind of message can
 * never be replayed as another.
 */
export function signingBytes(domain: string, payload: unknown): Buffer {
  if (!/^[a-z0-9][a-z0-9/_.-]*$/.test(domain)) throw new TypeError(`invalid signature domain ${JSON.stringify(domain)}`);
  return Buffer.from(`confide/v1/${domain}\n${canonicalJson(payload)}`, 'utf8');
}

/**
 * Ed25519 signature (RFC 8032 §5.1, pure Ed25519) over {@link signingBytes}, as base64url.
 * @throws TypeError on a non-Ed25519 key or a payload with no canonical encoding
 */
export function signMessage(privateKey: KeyObject, domain: string, payload: unknown): string {
  if (privateKey.asymmetricKeyType !== 'ed25519') throw new TypeError('signing key must be Ed25519');
  return toBase64Url(sign(null, signingBytes(domain, payload), privateKey));
}

/**
 * {@link signMessage} for a payload whose canonical JSON the caller already holds (built from fragments it encoded
 * once, when many messages share most of their content): the same bytes, the same signature.
 * @throws TypeError on a non-Ed25519 key
 */
export function signCanonicalJson(privateKey: KeyObject, domain: string, json: string): string {
  if (privateKey.asymmetricKeyType !== 'ed25519') throw new TypeError('signing key must be Ed25519');
  if (!/^[a-z0-9][a-z0-9/_.-]*$/.test(domain)) throw new TypeError(`invalid signature domain ${JSON.stringify(domain)}`);
  return toBase64Url(sign(null, Buffer.from(`confide/v1/${domain}\n${json}`, 'utf8'), privateKey));
}

/**
 * Verifies an Ed25519 signature made by {@link signMessage}. Returns false — never throws — on a wrong
 * key, domain, payload, or a malformed signature, so callers have one branch to handle.
 */
export function verifyMessage(publicKey: PublicKey, domain: string, payload: unknown, signature: string): boolean {
  if (publicKey.algorithm !== 'ed25519') return false;
  try {
    const sig = fromBase64Url(signature, 64, 'signature');
    return verify(null, signingBytes(domain, payload), publicKey.key, sig);
  } catch {
    return false;
  }
}
