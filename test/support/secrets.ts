import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ParticipantProcess } from './cluster';

/**
 * Helpers for confidentiality scans (DESIGN.md "Trust model": no plaintext input, local aggregate or private key
 * ever reaches Redis, the database or a log): the textual forms a secret could leak in, and a scanner that
 * names which secret turned up where.
 */

/** A secret to look for, by a name that says what it is (never printed with its value). */
export interface Needle {
  readonly name: string;
  readonly text: string;
}

/**
 * Collects every (needle, place) pair where a needle occurs, so a failing test lists all leaks at once and by
 * name. Needles shorter than `minLength` are refused: a short string turns up by chance (ports, ids, counts)
 * and a scan for it proves nothing either way.
 */
export class LeakScanner {
  readonly leaks: string[] = [];

  constructor(
    readonly needles: readonly Needle[],
    minLength = 8,
  ) {
    for (const n of needles) {
      if (n.text.length < minLength) throw new Error(`needle ${n.name} is too short (${n.text.length} < ${minLength}) to scan for`);
    }
  }

  /** Scans one text (a Redis dump, database dump, log) and records every needle it holds. */
  scan(place: string, text: string): void {
    for (const n of this.needles) if (text.includes(n.text)) this.leaks.push(`${n.name} in ${place}`);
  }
}

/**
 * The forms a fixed-point number could be written in: its decimal text (as written, and as a JS number prints
 * it), its scaled integer, and that integer in hex when the hex is long enough not to turn up by chance.
 */
export function numberForms(name: string, decimalText: string, scaled: bigint): Needle[] {
  const forms = new Map<string, string>([
    [decimalText, 'decimal'],
    [String(Number(decimalText)), 'decimal'],
    [scaled.toString(), 'fixed-point'],
  ]);
  const hex = scaled.toString(16);
  if (hex.length >= 8) forms.set(hex, 'fixed-point hex');
  return [...forms].map(([text, form]) => ({ name: `${name} (${form})`, text }));
}

/**
 * The forms a PKCS#8 PEM private key (X25519 or Ed25519, as a participant home stores them) could leak in: the
 * PEM body, and the raw 32-byte key (the last 32 bytes of the DER) as base64, unpadded base64, base64url and hex.
 */
export function privateKeyForms(name: string, pem: string): Needle[] {
  const body = pem.replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, '');
  const der = Buffer.from(body, 'base64');
  if (der.length !== 48) throw new Error(`${name}: expected a 48-byte PKCS#8 X25519/Ed25519 key, got ${der.length} bytes`);
  const raw = der.subarray(16);
  const base64 = raw.toString('base64');
  return [
    { name: `${name} (PEM body)`, text: body },
    { name: `${name} (raw base64)`, text: base64 },
    { name: `${name} (raw base64, unpadded)`, text: base64.replace(/=+$/, '') },
    { name: `${name} (raw base64url)`, text: raw.toString('base64url') },
    { name: `${name} (raw hex)`, text: raw.toString('hex') },
  ];
}

/** A participant home's secrets: both private keys and its Redis password (identity.json). */
export function homeSecrets(p: ParticipantProcess): { needles: Needle[]; redis: { username: string; password: string } } {
  const identity = JSON.parse(readFileSync(join(p.home, 'identity.json'), 'utf8')) as { redis: { username: string; password: string } };
  return {
    needles: [
      ...privateKeyForms(`${p.name} X25519 private key`, readFileSync(join(p.home, 'x25519.pem'), 'utf8')),
      ...privateKeyForms(`${p.name} Ed25519 private key`, readFileSync(join(p.home, 'ed25519.pem'), 'utf8')),
      { name: `${p.name} Redis password`, text: identity.redis.password },
    ],
    redis: { username: identity.redis.username, password: identity.redis.password },
  };
}

/**
 * The forms a Paillier ciphertext (canonical base64url of its fixed-width bytes, as a contribution carries it) could
 * leak in: 64-character prefixes of its base64url, base64 and decimal texts, and 96 hex digits (48 bytes).
 */
export function ciphertextForms(name: string, base64url: string): Needle[] {
  const bytes = Buffer.from(base64url, 'base64url');
  return [
    { name: `${name} (base64url)`, text: base64url.slice(0, 64) },
    { name: `${name} (base64)`, text: bytes.toString('base64').slice(0, 64) },
    { name: `${name} (hex)`, text: bytes.toString('hex').slice(0, 96) },
    { name: `${name} (decimal)`, text: BigInt(`0x${bytes.toString('hex')}`).toString().slice(0, 64) },
  ];
}

/**
 * A response body as a scan should see it: the text, and every base64 or base64url run in it decoded, as UTF-8 and
 * as hex (ledger entries and proofs travel base64-encoded, so a secret inside one is not in the text as such).
 */
export function withDecodedBase64(text: string): string {
  const runs = text.match(/[A-Za-z0-9+/_-]{24,}={0,2}/g) ?? [];
  return [text, ...runs.map((run) => Buffer.from(run, 'base64')).flatMap((bytes) => [bytes.toString('utf8'), bytes.toString('hex')])].join('\n');
}
