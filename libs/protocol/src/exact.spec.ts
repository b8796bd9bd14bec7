import fc from 'fast-check';
import { ceilDiv, ceilQuotient, decimalOf, floorDiv, integerSqrt, sqrtRatioToNumber } from './exact';

const view = new DataView(new ArrayBuffer(8));
const bitsOf = (x: number): bigint => {
  view.setFloat64(0, x);
  return view.getBigUint64(0);
};
const fromBits = (bits: bigint): number => {
  view.setBigUint64(0, bits);
  return view.getFloat64(0);
};

/** The exact value of a finite positive normal double as num / 2^shift. */
function exact(x: number): { num: bigint; shift: bigint } {
  const bits = bitsOf(x);
  const exponent = (bits >> 52n) & 0x7ffn;
  return { num: (bits & ((1n << 52n) - 1n)) | (1n << 52n), shift: 1075n - exponent };
}

/** Sign of m² − n/d, where m is the midpoint of the positive doubles a < b (exact: m = (A·2^(s−sa) + B·2^(s−sb)) / 2^(s+1)). */
function midpointSquaredVs(a: number, b: number, n: bigint, d: bigint): number {
  const ea = exact(a);
  const eb = exact(b);
  const s = ea.shift > eb.shift ? ea.shift : eb.shift;
  const m = (ea.num << (s - ea.shift)) + (eb.num << (s - eb.shift)); // m / 2^(s+1)
  const lhs = m * m * d;
  const rhs = n << (2n * (s + 1n));
  return lhs < rhs ? -1 : lhs > rhs ? 1 : 0;
}

/** Asserts that r is √(n/d) rounded to nearest, ties to even (n, d > 0, result a normal double). */
function expectSqrtNearest(n: bigint, d: bigint, r: number): void {
  expect(r > 0 && Number.isFinite(r)).toBe(true);
  const above = fromBits(bitsOf(r) + 1n);
  const below = fromBits(bitsOf(r) - 1n);
  // √(n/d) lies between the midpoints below and above r: (below+r)/2 ≤ √(n/d) ≤ (r+above)/2.
  const low = midpointSquaredVs(below, r, n, d);
  const high = midpointSquaredVs(r, above, n, d);
  expect(low <= 0 && high >= 0).toBe(true);
  if (low === 0 || high === 0) expect(bitsOf(r) & 1n).toBe(0n);
}

describe('decimalOf', () => {
  it.each<[number, bigint, bigint]>([
    [0, 0n, 1n],
    [-0, 0n, 1n],
    [40, 40n, 1n],
    [0.1, 1n, 10n],
    [-39.5, -395n, 10n],
    [1e21, 10n ** 21n, 1n],
    [1.5e-7, 15n, 10n ** 8n],
    [5e-324, 5n, 10n ** 324n],
  ])('%p is %p / %p, the decimal as written', (x, n, d) => {
    expect(decimalOf(x)).toEqual({ n, d });
  });

  it('refuses NaN and infinities', () => {
    expect(() => decimalOf(Number.NaN)).toThrow(RangeError);
    expect(() => decimalOf(Infinity)).toThrow(RangeError);
  });

  it('round-trips: the decimal converts back to the same double', () => {
    fc.assert(
      fc.property(fc.double({ noNaN: true, noDefaultInfinity: true }), (x) => {
        const { n, d } = decimalOf(x);
        expect(Number(`${n}e-${d.toString().length - 1}`)).toBe(x === 0 ? 0 : x);
      }),
    );
  });
});

describe('floorDiv, ceilDiv, ceilQuotient', () => {
  it.each<[bigint, bigint, bigint, bigint]>([
    [7n, 2n, 3n, 4n],
    [-7n, 2n, -4n, -3n],
    [6n, 3n, 2n, 2n],
    [-6n, 3n, -2n, -2n],
    [0n, 5n, 0n, 0n],
  ])('%p / %p: floor %p, ceil %p', (n, d, floor, ceil) => {
    expect(floorDiv(n, d)).toBe(floor);
    expect(ceilDiv(n, d)).toBe(ceil);
  });

  it('ceilQuotient counts how many widths cover a span', () => {
    expect(ceilQuotient({ n: 250n, d: 1n }, { n: 10n, d: 1n })).toBe(25n);
    expect(ceilQuotient({ n: 1n, d: 1n }, { n: 3n, d: 10n })).toBe(4n);
  });
});

describe('integerSqrt', () => {
  it('is ⌊√n⌋', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: 2n ** 300n }), (n) => {
        const r = integerSqrt(n);
        expect(r * r <= n && (r + 1n) * (r + 1n) > n).toBe(true);
      }),
    );
    expect([0n, 1n, 2n, 3n, 4n, 15n, 16n, 17n].map(integerSqrt)).toEqual([0n, 1n, 1n, 1n, 2n, 3n, 4n, 4n]);
  });
});

describe('sqrtRatioToNumber', () => {
  it.each<[bigint, bigint, number]>([
    [0n, 5n, 0],
    [4n, 1n, 2],
    [1n, 4n, 0.5],
    [2n, 1n, Math.SQRT2],
    [1n, 2n, Math.SQRT1_2],
    [-9n, -4n, 1.5],
    [10n ** 400n, 1n, 1e200],
  ])('√(%p / %p) = %p', (n, d, expected) => {
    expect(sqrtRatioToNumber(n, d)).toBe(expected);
  });

  it('refuses a zero denominator and a negative ratio', () => {
    expect(() => sqrtRatioToNumber(1n, 0n)).toThrow(RangeError);
    expect(() => sqrtRatioToNumber(-1n, 2n)).toThrow(RangeError);
  });

  it('equals Math.sqrt (correctly rounded by IEEE 754) when the ratio is an exact double', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 1n, max: 2n ** 53n }), fc.integer({ min: -60, max: 60 }), (n, k) => {
        const [num, den] = k >= 0 ? [n << BigInt(k), 1n] : [n, 1n << BigInt(-k)];
        expect(sqrtRatioToNumber(num, den)).toBe(Math.sqrt(Number(n) * 2 ** k));
      }),
      { numRuns: 2000 },
    );
  });

  it('is the nearest double to the exact root for large and small ratios', () => {
    const big = fc.bigInt({ min: 1n, max: 2n ** 300n });
    fc.assert(
      fc.property(big, big, (n, d) => {
        expectSqrtNearest(n, d, sqrtRatioToNumber(n, d));
      }),
      { numRuns: 1000 },
    );
  });

  it('is the nearest double next to exact squares and midpoints', () => {
    // (m ± tiny)² / 4^k: roots just off a double or just off a midpoint between two.
    const arb = fc.record({ m: fc.bigInt({ min: 2n ** 52n, max: 2n ** 54n }), k: fc.integer({ min: 0, max: 80 }), nudge: fc.constantFrom(-1n, 0n, 1n) });
    fc.assert(
      fc.property(arb, ({ m, k, nudge }) => {
        const n = m * m * 4n + nudge;
        const d = 4n ** BigInt(k + 1);
        expectSqrtNearest(n, d, sqrtRatioToNumber(n, d));
      }),
      { numRuns: 2000 },
    );
  });
});
