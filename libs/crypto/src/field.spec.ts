import fc from 'fast-check';
import { P, add, addVectors, assertFieldElement, inv, mod, mul, neg, randomElement, sub, sumVectors } from './field';
import type { RandomSource } from './random';
import { chiSquare } from '../../../test/support/randomness';

// Reference arithmetic: plain bigint `%`, normalised to [0, p).
const ref = (x: bigint): bigint => ((x % P) + P) % P;

function powRef(base: bigint, exponent: bigint): bigint {
  let result = 1n;
  let b = ref(base);
  for (let e = exponent; e > 0n; e >>= 1n) {
    if (e & 1n) result = (result * b) % P;
    b = (b * b) % P;
  }
  return result;
}

// Field elements weighted towards the edges: near 0, near p (so sums wrap and products approach 2^254), powers of two.
const element = fc.oneof(
  fc.bigInt({ min: 0n, max: P - 1n }),
  fc.bigInt({ min: P - (1n << 20n), max: P - 1n }),
  fc.bigInt({ min: 0n, max: 1n << 20n }),
  fc.integer({ min: 0, max: 126 }).map((k) => 1n << BigInt(k)),
  fc.constantFrom(0n, 1n, 2n, P - 1n, P - 2n, (P - 1n) / 2n, (P + 1n) / 2n),
);

/** Hands out the given byte strings in order, one per call; fails the test if asked for more. */
function scripted(...chunks: Uint8Array[]): RandomSource & { calls: () => number } {
  let next = 0;
  const source = (length: number): Uint8Array => {
    const chunk = chunks[next++];
    if (!chunk) throw new Error('scripted random source exhausted');
    expect(chunk).toHaveLength(length);
    return chunk;
  };
  return Object.assign(source, { calls: () => next });
}

const hex16 = (hex: string): Uint8Array => Uint8Array.from(Buffer.from(hex.padStart(32, '0'), 'hex'));

/** Bytes that vary with `i` (distinct draws), for sources that only need to be non-constant. */
const secureRandomLike = (n: number, i: number): Uint8Array => Uint8Array.from({ length: n }, (_, j) => (i * 31 + j * 7) & 0xff);

// χ² critical value for 7 degrees of freedom (8 bins) at p = 10^-6: scipy.stats.chi2.isf(1e-6, 7).
const CHI2_CRITICAL_7DF = 40.52;

/** True when the top 3 bits of the 127-bit samples pass a χ² test for uniformity over 8 bins (false-alarm rate 10^-6). */
function topBitsLookUniform(samples: readonly bigint[]): boolean {
  const counts = new Array<number>(8).fill(0);
  for (const s of samples) counts[Number(s >> 124n)]! += 1;
  return chiSquare(counts) < CHI2_CRITICAL_7DF;
}

describe('GF(2^127 − 1)', () => {
  it('uses the Mersenne prime p = 2^127 − 1', () => {
    expect(P).toBe(2n ** 127n - 1n);
    // Fermat witnesses: a^(p−1) ≡ 1 for a few bases (p is prime, so this must hold).
    for (const a of [2n, 3n, 5n, 7n]) expect(powRef(a, P - 1n)).toBe(1n);
  });

  it('add, sub, mul and neg agree with bigint % arithmetic', () => {
    fc.assert(
      fc.property(element, element, (a, b) => {
        expect(add(a, b)).toBe(ref(a + b));
        expect(sub(a, b)).toBe(ref(a - b));
        expect(mul(a, b)).toBe(ref(a * b));
        expect(neg(a)).toBe(ref(-a));
        expect(add(a, neg(a))).toBe(0n);
      }),
      { numRuns: 2000 },
    );
  });

  it('reduces products near 2^254 exactly', () => {
    expect(mul(P - 1n, P - 1n)).toBe(1n); // (−1)² = 1, from (2^127 − 2)² ≈ 2^254
    expect(mul(P - 2n, P - 1n)).toBe(2n);
    expect(mul(1n << 126n, 1n << 126n)).toBe(1n << 125n); // 2^252 = 2^(127+125) ≡ 2^125
    expect(mul(1n << 126n, 4n)).toBe(2n); // 2^128 ≡ 2
    expect(mul((P + 1n) / 2n, 2n)).toBe(1n); // (p + 1)/2 is the inverse of 2
    expect(add(P - 1n, P - 1n)).toBe(P - 2n);
    expect(sub(0n, P - 1n)).toBe(1n);
    expect(neg(0n)).toBe(0n);
  });

  it('mod reduces any integer, negative or wider than 2^254, like bigint %', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: -(1n << 400n), max: 1n << 400n }), (x) => {
        expect(mod(x)).toBe(ref(x));
      }),
      { numRuns: 1000 },
    );
    expect(mod(-1n)).toBe(P - 1n);
    expect(mod(-P)).toBe(0n);
    expect(mod(-(P + 1n))).toBe(P - 1n);
    expect(mod(-(P * P))).toBe(0n);
    expect(mod(P)).toBe(0n);
    expect(mod(2n * P)).toBe(0n);
    expect(mod(1n << 254n)).toBe(1n);
    expect(mod(-(1n << 127n))).toBe(P - 1n);
  });

  it('inv is the multiplicative inverse, matching Fermat a^(p−2)', () => {
    fc.assert(
      fc.property(
        element.filter((a) => a !== 0n),
        (a) => {
          const i = inv(a);
          expect(mul(a, i)).toBe(1n);
          expect(i).toBe(powRef(a, P - 2n));
        },
      ),
      { numRuns: 300 },
    );
    expect(inv(1n)).toBe(1n);
    expect(inv(P - 1n)).toBe(P - 1n);
    expect(inv(-1n)).toBe(P - 1n);
  });

  it('inv(0) throws, and so does the inverse of any multiple of p', () => {
    expect(() => inv(0n)).toThrow(RangeError);
    expect(() => inv(P)).toThrow(RangeError);
    expect(() => inv(-3n * P)).toThrow(RangeError);
  });

  it('assertFieldElement accepts exactly [0, p)', () => {
    expect(() => assertFieldElement(0n)).not.toThrow();
    expect(() => assertFieldElement(P - 1n)).not.toThrow();
    expect(() => assertFieldElement(P, 'share')).toThrow(/share is not an element/);
    expect(() => assertFieldElement(-1n)).toThrow(RangeError);
    expect(() => assertFieldElement(1 as unknown as bigint)).toThrow(RangeError);
  });

  it('addVectors and sumVectors add element-wise mod p', () => {
    const vector = (n: number) => fc.array(element, { minLength: n, maxLength: n });
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 5 }).chain((n) => fc.tuple(fc.constant(n), fc.array(vector(n), { maxLength: 40 }))),
        ([n, vectors]) => {
          const expected = vectors.reduce((acc, v) => acc.map((x, i) => ref(x + v[i]!)), new Array<bigint>(n).fill(0n));
          expect(sumVectors(vectors, n)).toEqual(expected);
          const [first, second] = vectors;
          if (first && second) expect(addVectors(first, second)).toEqual(first.map((x, i) => ref(x + second[i]!)));
        },
      ),
      { numRuns: 200 },
    );
    expect(sumVectors(Array.from({ length: 1000 }, () => [P - 1n]), 1)).toEqual([ref(1000n * (P - 1n))]);
    expect(() => addVectors([1n], [1n, 2n])).toThrow(RangeError);
    expect(() => sumVectors([[1n], [1n, 2n]], 1)).toThrow(RangeError);
  });
});

describe('randomElement', () => {
  it('rejects the single value p (2^127 − 1) and draws again', () => {
    const rng = scripted(hex16('7fffffffffffffffffffffffffffffff'), hex16('0123456789abcdef0123456789abcdef'));
    expect(randomElement(rng)).toBe(0x0123456789abcdef0123456789abcdefn);
    expect(rng.calls()).toBe(2);
  });

  it('ignores the 128th bit, so all-ones bytes are p too and are rejected', () => {
    const rng = scripted(hex16('ffffffffffffffffffffffffffffffff'), hex16('ff'.repeat(15) + 'fe'));
    expect(randomElement(rng)).toBe(P - 1n);
    expect(rng.calls()).toBe(2);
    expect(randomElement(scripted(hex16('80000000000000000000000000000001')))).toBe(1n);
  });

  it('returns the masked draw and never a value ≥ p, whatever the bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), (bytes) => {
        const drawn = BigInt(`0x${Buffer.from(bytes).toString('hex')}`) & P;
        const rng = scripted(bytes, new Uint8Array(16));
        const x = randomElement(rng);
        expect(x).toBeGreaterThanOrEqual(0n);
        expect(x).toBeLessThan(P);
        expect(x).toBe(drawn === P ? 0n : drawn);
      }),
      { numRuns: 500 },
    );
  });

  it('rejects a random source that returns the wrong number of bytes', () => {
    expect(() => randomElement(() => new Uint8Array(15))).toThrow(RangeError);
  });

  it('has uniform top bits (χ² over 8 bins), and the test notices a biased source', () => {
    const samples = Array.from({ length: 8000 }, () => randomElement());
    expect(topBitsLookUniform(samples)).toBe(true);
    expect(new Set(samples).size).toBe(samples.length);

    // The same statistic rejects a source whose leading byte never exceeds 0x5f: it must be able to fail.
    let counter = 0;
    const drifting: RandomSource = (n) => {
      const b = secureRandomLike(n, counter);
      b[0] = counter++ % 0x60;
      return b;
    };
    expect(topBitsLookUniform(Array.from({ length: 8000 }, () => randomElement(drifting)))).toBe(false);
  });
});
