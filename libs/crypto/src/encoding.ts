/** Base64url without padding (RFC 4648 §5), the byte encoding Confide uses at every boundary. */
export function toBase64Url(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64url');
}

/**
 * Decodes strict base64url (RFC 4648 §5, no padding, no other characters).
 * @param expectedLength when given, the decoded length must match
 * @throws TypeError on any other character, or RangeError on a length mismatch
 */
export function fromBase64Url(text: string, expectedLength?: number, what = 'value'): Uint8Array {
  if (typeof text !== 'string' || !/^[A-Za-z0-9_-]*$/.test(text)) throw new TypeError(`${what} is not base64url`);
  const bytes = new Uint8Array(Buffer.from(text, 'base64url'));
  // Node ignores trailing bits; insist the text is the canonical encoding of the bytes.
  if (toBase64Url(bytes) !== text) throw new TypeError(`${what} is not canonical base64url`);
  if (expectedLength !== undefined && bytes.length !== expectedLength) {
    throw new RangeError(`${what} must be ${expectedLength} bytes, got ${bytes.length}`);
  }
  return bytes;
}

/** A JSON value that has exactly one canonical encoding: no floats, no undefined, no bigint. */
export type CanonicalValue =
  | null
  | boolean
  | number
  | string
  | readonly CanonicalValue[]
  | { readonly [key: string]: CanonicalValue };

/**
 * Canonical JSON: object keys sorted by UTF-16 code units, no insignificant whitespace, strings as
 * JSON.stringify escapes them — the RFC 8785 (JCS) rules restricted to integers, so that every value has
 * one encoding and number formatting can never differ between signer and verifier. Big integers travel
 * as decimal or hex strings.
 * @throws TypeError on a non-safe-integer number, bigint, undefined (or an array hole), function, or a non-plain object
 */
export function canonicalJson(value: unknown): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'boolean':
      return value ? 'true' : 'false';
    case 'string':
      return JSON.stringify(value);
    case 'number':
      if (!Number.isSafeInteger(value)) throw new TypeError(`canonical JSON allows only safe integers, got ${value}`);
      return Object.is(value, -0) ? '0' : String(value);
    case 'object': {
      // Indexing visits holes as undefined (which throws); Array#map would skip them and emit "[,1]", not JSON.
      // Plain loops and string concatenation: this runs over every task, entry and signed message.
      if (Array.isArray(value)) {
        const items = value as unknown[];
        let out = '[';
        for (let i = 0; i < items.length; i++) out += (i === 0 ? '' : ',') + canonicalJson(items[i]);
        return `${out}]`;
      }
      // A plain object's prototype is Object.prototype of whichever realm made it (JSON.parse in another vm
      // context, a fetch body), or null; anything with a longer chain (class instances, Map, Date) is refused.
      const proto = Object.getPrototypeOf(value) as object | null;
      if (proto !== null && Object.getPrototypeOf(proto) !== null) throw new TypeError('canonical JSON allows only plain objects');
      const record = value as Record<string, unknown>;
      // Array#sort without a comparator orders strings by UTF-16 code units, as RFC 8785 §3.2.3 asks.
      let out = '{';
      for (const key of Object.keys(record).sort()) {
        const item = record[key];
        if (item === undefined) continue;
        out += `${out.length === 1 ? '' : ','}${JSON.stringify(key)}:${canonicalJson(item)}`;
      }
      return `${out}}`;
    }
    default:
      throw new TypeError(`canonical JSON cannot encode a ${typeof value}`);
  }
}

/** UTF-8 bytes of {@link canonicalJson}. */
export function canonicalBytes(value: unknown): Uint8Array {
  return new Uint8Array(Buffer.from(canonicalJson(value), 'utf8'));
}
