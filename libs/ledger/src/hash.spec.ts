import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { ENTRY_VERSION, HASH_SIZE, emptyRoot, entryBytes, leafHash, nodeHash, parseEntry } from './hash';
import { canonicalValue } from '../../../test/support/arbitraries';

type ErrorClass = new (message: string) => Error;

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');
const utf8 = (text: string) => new Uint8Array(Buffer.from(text, 'utf8'));
const sha256 = (...parts: number[][]) => createHash('sha256').update(Uint8Array.from(parts.flat())).digest('hex');

describe('RFC 6962 hashing', () => {
  it('has the empty-tree root SHA-256("")', () => {
    expect(hex(emptyRoot())).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  });

  it('hashes a leaf as SHA-256(0x00 ‖ entry)', () => {
    expect(hex(leafHash(new Uint8Array(0)))).toBe('6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d');
    expect(hex(leafHash(Uint8Array.of(1, 2, 3)))).toBe(sha256([0, 1, 2, 3]));
  });

  it('hashes a node as SHA-256(0x01 ‖ left ‖ right), order mattering', () => {
    const a = leafHash(utf8('a'));
    const b = leafHash(utf8('b'));
    expect(hex(nodeHash(a, b))).toBe(sha256([1], [...a], [...b]));
    expect(hex(nodeHash(a, b))).not.toBe(hex(nodeHash(b, a)));
  });

  it('keeps leaves and nodes apart: a 64-byte entry never hashes like the node of its halves', () => {
    const a = leafHash(utf8('a'));
    const b = leafHash(utf8('b'));
    expect(hex(leafHash(Uint8Array.from([...a, ...b])))).not.toBe(hex(nodeHash(a, b)));
  });

  it('refuses children that are not 32-byte hashes', () => {
    const h = leafHash(utf8('a'));
    expect(() => nodeHash(h.subarray(1), h)).toThrow(RangeError);
    expect(() => nodeHash(h, Uint8Array.from([...h, 0]))).toThrow(RangeError);
    expect(() => nodeHash(new Uint8Array(0), new Uint8Array(0))).toThrow(RangeError);
    expect(HASH_SIZE).toBe(32);
  });
});

describe('ledger entries', () => {
  const event = { index: 7, type: 'study.created', time: '2025-03-01T12:00:00.000Z', body: { name: 'salaries', fields: ['salary', 'rank'], n: 3 } };

  it('is canonical JSON with sorted keys, no whitespace, and a version', () => {
    expect(Buffer.from(entryBytes(event)).toString('utf8')).toBe(
      '{"body":{"fields":["salary","rank"],"n":3,"name":"salaries"},"index":7,"time":"2025-03-01T12:00:00.000Z","type":"study.created","v":1}',
    );
    expect(ENTRY_VERSION).toBe(1);
  });

  it('does not depend on key insertion order', () => {
    const reordered = { body: { n: 3, fields: ['salary', 'rank'], name: 'salaries' }, time: event.time, type: event.type, index: 7 };
    expect(hex(entryBytes(reordered))).toBe(hex(entryBytes(event)));
  });

  it('binds the index, so an entry cannot be replayed at another position', () => {
    expect(hex(leafHash(entryBytes({ ...event, index: 8 })))).not.toBe(hex(leafHash(entryBytes(event))));
  });

  it('round-trips through parseEntry for any canonical body', () => {
    const value = canonicalValue({ unit: 'grapheme', size: 3 });
    fc.assert(
      fc.property(fc.dictionary(fc.string({ maxLength: 6 }), value, { maxKeys: 4 }), fc.nat(), fc.date({ noInvalidDate: true, min: new Date(0), max: new Date(4e12) }), (body, index, date) => {
        const entry = { index, type: 'query.submitted', time: date.toISOString(), body: body as typeof event.body };
        const bytes = entryBytes(entry);
        const parsed = parseEntry(bytes);
        expect(parsed).toEqual({ ...entry, v: 1, body: JSON.parse(JSON.stringify(body)) as unknown });
        expect(hex(entryBytes(parsed))).toBe(hex(bytes));
      }),
      { numRuns: 200 },
    );
  });

  it.each<[string, unknown, ErrorClass, string]>([
    ['a negative index', { ...event, index: -1 }, RangeError, 'entry index must be a non-negative safe integer'],
    ['a fractional index', { ...event, index: 1.5 }, RangeError, 'entry index must be a non-negative safe integer'],
    ['an index beyond 2^53', { ...event, index: 2 ** 53 }, RangeError, 'entry index must be a non-negative safe integer'],
    ['an empty type', { ...event, type: '' }, TypeError, 'invalid entry type ""'],
    ['a type with spaces', { ...event, type: 'study created' }, TypeError, 'invalid entry type "study created"'],
    ['an upper-case type', { ...event, type: 'Study.created' }, TypeError, 'invalid entry type "Study.created"'],
    ['a time without milliseconds', { ...event, time: '2025-03-01T12:00:00Z' }, TypeError, 'entry time must be UTC ISO 8601 as toISOString writes it, got "2025-03-01T12:00:00Z"'],
    ['a time with an offset', { ...event, time: '2025-03-01T12:00:00.000+01:00' }, TypeError, 'entry time must be UTC ISO 8601 as toISOString writes it, got "2025-03-01T12:00:00.000+01:00"'],
    ['an impossible date', { ...event, time: '2025-02-30T12:00:00.000Z' }, TypeError, 'entry time must be UTC ISO 8601 as toISOString writes it, got "2025-02-30T12:00:00.000Z"'],
    ['a float in the body', { ...event, body: { x: 0.5 } }, TypeError, 'canonical JSON allows only safe integers, got 0.5'],
    ['a bigint in the body', { ...event, body: { x: 1n } }, TypeError, 'canonical JSON cannot encode a bigint'],
    ['an array body', { ...event, body: [] }, TypeError, 'entry body must be a JSON object'],
  ])('refuses to write an entry with %s', (_what, bad, type, message) => {
    expect(() => entryBytes(bad as typeof event)).toThrow(expect.objectContaining({ message }) as Error);
    expect(() => entryBytes(bad as typeof event)).toThrow(type);
  });

  const valid = Buffer.from(entryBytes(event)).toString('utf8');
  const notCanonical = 'entry is not in canonical JSON form';
  it.each<[string, string, ErrorClass, string]>([
    ['whitespace', valid.replace('{"body":', '{ "body":'), TypeError, notCanonical],
    ['unsorted keys', valid.replace('"index":7,"time"', '"time"').replace('"type"', '"index":7,"type"'), TypeError, notCanonical],
    ['a duplicate key', valid.replace('"index":7', '"index":8,"index":7'), TypeError, notCanonical],
    ['an unknown field', valid.replace('"v":1', '"v":1,"x":0'), TypeError, 'entry has unknown field(s) x'],
    ['another version', valid.replace('"v":1', '"v":2'), RangeError, 'unsupported ledger entry version 2'],
    ['a float written as 7.0', valid.replace('"index":7', '"index":7.0'), TypeError, notCanonical],
    ['an escaped character written differently', valid.replace('salaries', 'sal\\u0061ries'), TypeError, notCanonical],
    ['a byte-order mark', `\uFEFF${valid}`, TypeError, 'entry is not JSON'],
    ['a trailing newline', `${valid}\n`, TypeError, notCanonical],
    ['not an object', '[]', TypeError, 'entry is not a JSON object'],
  ])('rejects stored entry bytes with %s (a second encoding of the same entry)', (_what, text, type, message) => {
    expect(text).not.toBe(valid);
    expect(parseEntry(utf8(valid))).toEqual({ ...event, v: 1 });
    expect(() => parseEntry(utf8(text))).toThrow(expect.objectContaining({ message }) as Error);
    expect(() => parseEntry(utf8(text))).toThrow(type);
  });

  it('rejects bytes that are not UTF-8', () => {
    expect(() => parseEntry(Uint8Array.of(0x7b, 0xff, 0x7d))).toThrow(TypeError);
  });
});
