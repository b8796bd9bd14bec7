import { runInNewContext } from 'node:vm';
import fc from 'fast-check';
import { canonicalBytes, canonicalJson, fromBase64Url, toBase64Url } from './encoding';
import { canonicalValue } from '../../../test/support/arbitraries';

describe('toBase64Url / fromBase64Url (RFC 4648 §5, unpadded)', () => {
  it('matches the RFC 4648 §10 test vectors, without padding', () => {
    const vectors: [string, string][] = [
      ['', ''],
      ['f', 'Zg'],
      ['fo', 'Zm8'],
      ['foo', 'Zm9v'],
      ['foob', 'Zm9vYg'],
      ['fooba', 'Zm9vYmE'],
      ['foobar', 'Zm9vYmFy'],
    ];
    for (const [plain, encoded] of vectors) {
      expect(toBase64Url(Buffer.from(plain))).toBe(encoded);
      expect(Buffer.from(fromBase64Url(encoded)).toString()).toBe(plain);
    }
  });

  it('uses the URL-safe alphabet', () => {
    expect(toBase64Url(Uint8Array.of(0xfb, 0xff))).toBe('-_8');
    expect(fromBase64Url('-_8')).toEqual(Uint8Array.of(0xfb, 0xff));
  });

  it('encodes only the viewed bytes of a subarray', () => {
    const backing = Uint8Array.of(1, 2, 3, 4, 5);
    expect(toBase64Url(backing.subarray(1, 3))).toBe(toBase64Url(Uint8Array.of(2, 3)));
  });

  it('round-trips any bytes, and the text is canonical', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 80 }), (bytes) => {
        const text = toBase64Url(bytes);
        expect(text).toMatch(/^[A-Za-z0-9_-]*$/);
        expect(fromBase64Url(text, bytes.length)).toEqual(bytes);
      }),
      { numRuns: 300 },
    );
  });

  it.each([
    ['padding', 'Zg=='],
    ['a single padding character', 'Zm8='],
    ["'+' from the standard alphabet", 'a+b_'],
    ["'/' from the standard alphabet", 'a/b_'],
    ['whitespace', 'Zm9v Yg'],
    ['a trailing newline', 'Zm9v\n'],
    ['a non-ASCII digit', 'Zm9v١'],
  ])('rejects %s', (_what, text) => {
    expect(() => fromBase64Url(text)).toThrow(TypeError);
  });

  it('rejects non-canonical trailing bits (Node would silently drop them)', () => {
    // "Zg" is the canonical encoding of "f"; "Zh".."Zv" decode to the same byte with nonzero leftover bits.
    expect(Buffer.from('Zh', 'base64url')).toEqual(Buffer.from('f'));
    for (const text of ['Zh', 'Zv', 'Zm9', 'Zm-']) expect(() => fromBase64Url(text)).toThrow(TypeError);
    expect(() => fromBase64Url('Zm8')).not.toThrow();
  });

  it('rejects a text whose length cannot be base64 (1 mod 4)', () => {
    for (const text of ['A', 'Zm9vY']) expect(() => fromBase64Url(text)).toThrow(TypeError);
  });

  it('rejects a decoded length other than the expected one, and names the value', () => {
    const text = toBase64Url(new Uint8Array(31));
    expect(() => fromBase64Url(text, 32, 'epk')).toThrow(RangeError);
    expect(() => fromBase64Url(text, 32, 'epk')).toThrow(/epk must be 32 bytes, got 31/);
    expect(fromBase64Url(text, 31)).toHaveLength(31);
  });

  it('rejects a value that is not a string', () => {
    expect(() => fromBase64Url(42 as unknown as string)).toThrow(TypeError);
  });
});

describe('canonicalJson', () => {
  it('sorts object keys by UTF-16 code units, at every depth, without whitespace', () => {
    expect(canonicalJson({ b: 1, a: [true, null, 'x'], c: { z: 0, y: -1 } })).toBe('{"a":[true,null,"x"],"b":1,"c":{"y":-1,"z":0}}');
    // Integer-like keys sort as strings ("10" < "9"), unlike JS property order and JSON.stringify.
    expect(JSON.stringify({ 10: 1, 9: 2 })).toBe('{"9":2,"10":1}');
    expect(canonicalJson({ 10: 1, 9: 2, a: 3 })).toBe('{"10":1,"9":2,"a":3}');
    // U+1F600 is the surrogate pair D83D DE00, which sorts before U+FFFF by code unit (RFC 8785 §3.2.3).
    expect(canonicalJson({ '\uffff': 1, '\u{1F600}': 2, é: 3, Z: 4 })).toBe('{"Z":4,"é":3,"😀":2,"\uffff":1}');
  });

  it('does not depend on the order keys were inserted in', () => {
    const entries = fc.uniqueArray(fc.tuple(fc.string({ unit: 'binary', maxLength: 6 }), fc.maxSafeInteger()), {
      maxLength: 12,
      selector: ([k]) => k,
    });
    fc.assert(
      fc.property(
        entries.chain((e) => fc.tuple(fc.constant(e), fc.shuffledSubarray(e, { minLength: e.length, maxLength: e.length }))),
        ([inOrder, shuffled]) => {
          const a: Record<string, number> = {};
          const b: Record<string, number> = {};
          for (const [k, v] of inOrder) Object.defineProperty(a, k, { value: v, enumerable: true });
          for (const [k, v] of shuffled) Object.defineProperty(b, k, { value: v, enumerable: true });
          expect(canonicalJson(a)).toBe(canonicalJson(b));
        },
      ),
      { numRuns: 200 },
    );
  });

  it('produces JSON that parses back to the same value and re-encodes to the same text', () => {
    const value = canonicalValue({ unit: 'binary', keyUnit: 'binary' });
    fc.assert(
      fc.property(value, (v) => {
        const text = canonicalJson(v);
        const parsed = JSON.parse(text) as unknown;
        expect(parsed).toEqual(v);
        expect(canonicalJson(parsed)).toBe(text);
      }),
      { numRuns: 300 },
    );
  });

  it('encodes -0 as 0 and accepts the extreme safe integers', () => {
    expect(canonicalJson(-0)).toBe('0');
    expect(canonicalJson({ a: -0 })).toBe('{"a":0}');
    expect(canonicalJson([Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER])).toBe('[9007199254740991,-9007199254740991]');
  });

  it('accepts a plain object made in another realm (another vm context, a fetch body) like any other', () => {
    const foreign = runInNewContext('({ b: 1, a: [2, { c: 3 }] })') as unknown;
    expect(Object.getPrototypeOf(foreign)).not.toBe(Object.prototype);
    expect(canonicalJson(foreign)).toBe('{"a":[2,{"c":3}],"b":1}');
  });

  it('accepts null-prototype objects and drops undefined object members, as JSON does', () => {
    const bare = Object.create(null) as Record<string, unknown>;
    bare.k = 1;
    expect(canonicalJson(bare)).toBe('{"k":1}');
    expect(canonicalJson({ a: undefined, b: 2 })).toBe('{"b":2}');
  });

  class Point {
    constructor(readonly x: number) {}
  }

  it.each<[string, unknown]>([
    ['a float', 1.5],
    ['a float inside an object', { amount: 0.1 }],
    ['NaN', Number.NaN],
    ['Infinity', Number.POSITIVE_INFINITY],
    ['an unsafe integer', 2 ** 53],
    ['a bigint', 1n],
    ['a bigint inside an array', [1n]],
    ['undefined at the top level', undefined],
    ['undefined in an array', [1, undefined]],
    // eslint-disable-next-line no-sparse-arrays
    ['a hole in a sparse array', [, 1]],
    ['an array of holes', new Array(3)],
    ['a function', () => 1],
    ['a symbol', Symbol('s')],
    ['a class instance', new Point(1)],
    ['a Date', new Date(0)],
    ['a Map', new Map([['a', 1]])],
    ['bytes', Uint8Array.of(1)],
    ['a boxed number', Object(1)],
  ])('rejects %s', (_what, value) => {
    expect(() => canonicalJson(value)).toThrow(TypeError);
  });

  it('canonicalBytes is the UTF-8 of canonicalJson', () => {
    expect(Buffer.from(canonicalBytes({ b: 'é', a: 1 })).toString('hex')).toBe(Buffer.from('{"a":1,"b":"é"}', 'utf8').toString('hex'));
  });
});
