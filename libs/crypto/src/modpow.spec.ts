import { generatePrimeSync } from 'node:crypto';
import { modPow as referenceModPow } from 'bigint-crypto-utils';
import fc from 'fast-check';
import { NATIVE_MODULUS_BITS, bigIntToBuffer, bitLength, bufferToBigInt, isNativeModulus, modPow, prepareModPow, prepareModulus } from './modpow';

/** An odd modulus of exactly `bits` bits. */
const oddModulus = (minBits: number, maxBits: number) =>
  fc.integer({ min: minBits, max: maxBits }).chain((bits) => fc.bigInt({ min: 1n << BigInt(bits - 1), max: (1n << BigInt(bits)) - 1n }).map((m) => m | 1n));

/** Exponents from 0 to a few times the modulus' size, with the small ones OpenSSL might treat specially. */
const exponent = fc.oneof(fc.constantFrom(0n, 1n, 2n, 3n, 65537n), fc.bigInt({ min: 0n, max: (1n << 4096n) - 1n }));

/** Bases anywhere, negative and ≥ modulus included, plus the values the native path answers itself. */
const baseFor = (m: bigint) =>
  fc.oneof(fc.bigInt({ min: 0n, max: m - 1n }), fc.bigInt({ min: -3n * m, max: 3n * m }), fc.constantFrom(0n, 1n, 2n, m - 2n, m - 1n, m, m + 1n, -1n, 2n * m - 1n));

const prime = (bits: number): bigint => generatePrimeSync(bits, { bigint: true });

describe('modPow (OpenSSL through node:crypto Diffie–Hellman)', () => {
  it('equals bigint-crypto-utils modPow on random odd moduli of 512–2048 bits (native path)', () => {
    fc.assert(
      fc.property(
        oddModulus(512, 2048).chain((m) => fc.record({ m: fc.constant(m), e: exponent, b: baseFor(m) })),
        ({ m, e, b }) => {
          expect(isNativeModulus(m)).toBe(true);
          expect(modPow(b, e, m)).toBe(referenceModPow(b, e, m));
        },
      ),
      { numRuns: 60 },
    );
  });

  it('equals bigint-crypto-utils modPow on small and even moduli (bigint fallback)', () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: 1n, max: (1n << 600n) - 1n }).chain((m) => fc.record({ m: fc.constant(m), e: exponent, b: baseFor(m) })),
        ({ m, e, b }) => {
          expect(modPow(b, e, m)).toBe(referenceModPow(b, e, m));
        },
      ),
      { numRuns: 100 },
    );
  });

  it('is right at the edges of what OpenSSL accepts: 511/512 and 10,000/10,001-bit moduli', () => {
    // Below 512 bits OpenSSL's DH returns a buffer of zeros instead of failing; above 10,000 it throws.
    for (const bits of [400, 511, 512, 513, 10_000, 10_001]) {
      const m = (1n << BigInt(bits - 1)) + 12345n * 2n + 1n;
      const b = 0x1234567890abcdefn;
      for (const e of [65537n, (1n << 200n) + 7n]) expect(modPow(b, e, m)).toBe(referenceModPow(b, e, m));
    }
    expect(isNativeModulus((1n << 511n) + 1n)).toBe(true);
    expect(isNativeModulus((1n << 510n) + 1n)).toBe(false);
    expect(isNativeModulus(1n << 600n)).toBe(false);
    expect(NATIVE_MODULUS_BITS).toEqual({ min: 512, max: 10_000 });
  });

  it('answers the trivial cases OpenSSL refuses: base 0, 1, m − 1, exponent 0 and 1, modulus 1', () => {
    const m = prime(300) * prime(300);
    const e = (1n << 500n) + 3n;
    expect(modPow(0n, e, m)).toBe(0n);
    expect(modPow(1n, e, m)).toBe(1n);
    expect(modPow(m - 1n, e, m)).toBe(m - 1n);
    expect(modPow(m - 1n, e + 1n, m)).toBe(1n);
    expect(modPow(m, e, m)).toBe(0n);
    expect(modPow(m + 1n, e, m)).toBe(1n);
    expect(modPow(-1n, 3n, m)).toBe(m - 1n);
    expect(modPow(12345n, 0n, m)).toBe(1n);
    expect(modPow(0n, 0n, m)).toBe(1n);
    expect(modPow(m + 5n, 1n, m)).toBe(5n);
    expect(modPow(12345n, 0n, 1n)).toBe(0n);
  });

  it('gives 0 when the base shares every prime factor of the modulus (a zero from OpenSSL is rechecked)', () => {
    const p = prime(300);
    const m = p * p;
    expect(modPow(p * 7n, 2n, m)).toBe(0n);
    expect(modPow(p * 7n, 1n << 300n, m)).toBe(0n);
    expect(modPow(p * 7n, 1n, m)).toBe(p * 7n);
  });

  it('a prepared exponentiation is reused across bases and matches the reference for each', () => {
    const m = prime(768) ** 2n;
    const e = prime(768) - 1n;
    const pow = prepareModPow(e, m);
    fc.assert(
      fc.property(baseFor(m), (b) => {
        expect(pow(b)).toBe(referenceModPow(b, e, m));
      }),
      { numRuns: 40 },
    );
  });

  it('keeps repeated (modulus, exponent) pairs prepared and stays correct as the cache turns over', () => {
    const moduli = Array.from({ length: 12 }, () => prime(300) * prime(300));
    for (let round = 0; round < 2; round++) {
      for (const [i, m] of moduli.entries()) {
        const e = m - BigInt(i) - 2n;
        expect(modPow(3n, e, m)).toBe(referenceModPow(3n, e, m));
      }
    }
  });

  it('a prepared modulus swaps exponents on one object: closures for several exponents, interleaved, each match the reference', () => {
    fc.assert(
      fc.property(oddModulus(512, 1536), fc.array(exponent, { minLength: 1, maxLength: 4 }), fc.array(fc.bigInt({ min: -(1n << 1600n), max: 1n << 1600n }), { minLength: 1, maxLength: 3 }), (m, exps, bases) => {
        const ctx = prepareModulus(m);
        const pows = exps.map((e) => ctx(e));
        for (const base of bases) {
          // Every closure after every other: each must set its own exponent again.
          for (const [i, pow] of pows.entries()) expect(pow(base)).toBe(referenceModPow(base, exps[i]!, m));
        }
      }),
      { numRuns: 25 },
    );
    expect(prepareModulus(15n)(7n)(4n)).toBe(referenceModPow(4n, 7n, 15n));
    expect(() => prepareModulus(0n)).toThrow(RangeError);
    expect(() => prepareModulus(101n)(-1n)).toThrow(RangeError);
  });

  it('refuses a non-positive modulus, a negative exponent and non-bigint arguments', () => {
    expect(() => modPow(2n, 3n, 0n)).toThrow(RangeError);
    expect(() => modPow(2n, 3n, -7n)).toThrow(RangeError);
    expect(() => modPow(2n, -1n, 7n)).toThrow(RangeError);
    expect(() => prepareModPow(-1n, 7n)).toThrow(RangeError);
    expect(() => modPow(2 as unknown as bigint, 3n, 7n)).toThrow(TypeError);
    expect(() => modPow(2n, 3 as unknown as bigint, 7n)).toThrow(TypeError);
  });
});

describe('byte helpers', () => {
  it('round-trip integers through minimal big-endian bytes; leading zero bytes are ignored', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: (1n << 3000n) - 1n }), (x) => {
        const bytes = bigIntToBuffer(x);
        expect(bufferToBigInt(bytes)).toBe(x);
        expect(bitLength(x)).toBe(x === 0n ? 0 : x.toString(2).length);
        expect(bytes.length).toBe(Math.max(1, Math.ceil(bitLength(x) / 8)));
        expect(bufferToBigInt(Buffer.concat([Buffer.alloc(3), bytes]))).toBe(x);
      }),
    );
    expect(bufferToBigInt(new Uint8Array(0))).toBe(0n);
    expect(bitLength(0n)).toBe(0);
    expect(bitLength(255n)).toBe(8);
  });
});
