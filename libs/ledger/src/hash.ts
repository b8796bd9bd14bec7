import { createHash } from 'node:crypto';
import { canonicalJson, type CanonicalValue } from '@confide/crypto';

/** Size in bytes of every hash in the ledger: SHA-256 (RFC 9162 §2.1, the hash algorithm of RFC 6962 §2.1). */
export const HASH_SIZE = 32;

/** Version of the ledger entry format ({@link entryBytes}, the leaf input of RFC 9162 §2.1.1); recorded in every entry as `v`. */
export const ENTRY_VERSION = 1;

const LEAF_PREFIX = 0x00;
const NODE_PREFIX = 0x01;

function sha256(...parts: Uint8Array[]): Uint8Array {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
}

/**
 * Throws unless `hash` is a byte array of exactly {@link HASH_SIZE} bytes, the SHA-256 output every tree hash has
 * (RFC 9162 §2.1).
 * @throws TypeError when not a Uint8Array, RangeError on a wrong length
 */
export function assertHash(hash: unknown, what = 'hash'): asserts hash is Uint8Array {
  if (!(hash instanceof Uint8Array)) throw new TypeError(`${what} must be a Uint8Array`);
  if (hash.length !== HASH_SIZE) throw new RangeError(`${what} must be ${HASH_SIZE} bytes, got ${hash.length}`);
}

/**
 * Leaf hash of a ledger entry: SHA-256(0x00 ‖ entry) (RFC 9162 §2.1.1, RFC 6962 §2.1). The 0x00 prefix
 * keeps a leaf from ever hashing like an interior node (second-preimage resistance).
 * @param entry the entry's bytes, normally {@link entryBytes}
 * @throws TypeError when entry is not a Uint8Array
 */
export function leafHash(entry: Uint8Array): Uint8Array {
  if (!(entry instanceof Uint8Array)) throw new TypeError('entry must be a Uint8Array');
  return sha256(Uint8Array.of(LEAF_PREFIX), entry);
}

/**
 * Interior node hash: SHA-256(0x01 ‖ left ‖ right) (RFC 9162 §2.1.1, RFC 6962 §2.1).
 * @throws RangeError unless both children are 32-byte hashes
 */
export function nodeHash(left: Uint8Array, right: Uint8Array): Uint8Array {
  assertHash(left, 'left child');
  assertHash(right, 'right child');
  return sha256(Uint8Array.of(NODE_PREFIX), left, right);
}

/** Root hash of the empty tree: SHA-256 of the empty string (RFC 9162 §2.1.1, MTH({})). */
export function emptyRoot(): Uint8Array {
  return sha256();
}

/** One event as the ledger records it (DESIGN.md "Ledger": study created, participant enrolled, query submitted, …). */
export interface LedgerEvent {
  /** Event type, lower-case dotted words such as `study.created` or `round.closed`. */
  readonly type: string;
  /** Event details; any canonical JSON object (no floats). */
  readonly body: { readonly [key: string]: CanonicalValue };
  /** When the coordinator recorded it: UTC ISO 8601 with milliseconds, exactly as `Date.prototype.toISOString` writes it. */
  readonly time: string;
}

/** A ledger entry: an event at its position in the log. */
export interface LedgerEntry extends LedgerEvent {
  /** Format version, {@link ENTRY_VERSION}. */
  readonly v: typeof ENTRY_VERSION;
  /** Zero-based position of the entry in the log (its leaf index). */
  readonly index: number;
}

const TYPE_PATTERN = /^[a-z][a-z0-9_-]*(\.[a-z][a-z0-9_-]*)*$/;

function checkEntry(entry: { v: unknown; index: unknown; type: unknown; body: unknown; time: unknown }): LedgerEntry {
  const { v, index, type, body, time } = entry;
  if (v !== ENTRY_VERSION) throw new RangeError(`unsupported ledger entry version ${String(v)}`);
  if (typeof index !== 'number' || !Number.isSafeInteger(index) || index < 0) throw new RangeError('entry index must be a non-negative safe integer');
  if (typeof type !== 'string' || !TYPE_PATTERN.test(type)) throw new TypeError(`invalid entry type ${JSON.stringify(type)}`);
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new TypeError('entry body must be a JSON object');
  if (typeof time !== 'string' || !isIsoTime(time)) throw new TypeError(`entry time must be UTC ISO 8601 as toISOString writes it, got ${JSON.stringify(time)}`);
  return { v, index, type, body: body as LedgerEntry['body'], time };
}

function isIsoTime(time: string): boolean {
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/.test(time)) return false;
  const ms = Date.parse(time);
  return Number.isFinite(ms) && new Date(ms).toISOString() === time;
}

/**
 * The bytes of a ledger entry: UTF-8 canonical JSON (sorted keys, no insignificant whitespace,
 * integers only; see `canonicalJson` in @confide/crypto) of
 *
 *     {"body":{…},"index":<index>,"time":"<ISO 8601 UTC>","type":"<type>","v":1}
 *
 * The index is inside the entry, so an entry cannot be replayed at another position and two identical events
 * still have distinct leaves; `v` lets the format change later without ambiguity. These bytes are what
 * {@link leafHash} hashes (RFC 9162 §2.1.1: the leaf input D[index]). Fields that are `undefined` in the
 * body are dropped, as canonical JSON does.
 * @throws TypeError or RangeError on a bad index, type, time, or a body with no canonical encoding
 */
export function entryBytes(entry: Omit<LedgerEntry, 'v'>): Uint8Array {
  const checked = checkEntry({ v: ENTRY_VERSION, index: entry.index, type: entry.type, body: entry.body, time: entry.time });
  return new Uint8Array(Buffer.from(canonicalJson(checked), 'utf8'));
}

/**
 * Parses entry bytes written by {@link entryBytes}, accepting only the canonical encoding (so one entry has
 * exactly one leaf hash, RFC 9162 §2.1.1) and only known fields.
 * @throws TypeError or RangeError on anything else, naming the problem
 */
export function parseEntry(bytes: Uint8Array): LedgerEntry {
  if (!(bytes instanceof Uint8Array)) throw new TypeError('entry must be a Uint8Array');
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch (cause) {
    throw new TypeError('entry is not valid UTF-8', { cause });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    throw new TypeError('entry is not JSON', { cause });
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new TypeError('entry is not a JSON object');
  const fields = value as Record<string, unknown>;
  const extra = Object.keys(fields).filter((k) => !['v', 'index', 'type', 'body', 'time'].includes(k));
  if (extra.length > 0) throw new TypeError(`entry has unknown field(s) ${extra.join(', ')}`);
  const entry = checkEntry({ v: fields.v, index: fields.index, type: fields.type, body: fields.body, time: fields.time });
  let canonical: string;
  try {
    canonical = canonicalJson(entry);
  } catch (cause) {
    throw new TypeError('entry has no canonical encoding', { cause });
  }
  if (canonical !== text) throw new TypeError('entry is not in canonical JSON form');
  return entry;
}
