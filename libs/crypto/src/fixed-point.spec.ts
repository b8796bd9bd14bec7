import fc from 'fast-check';
import { P, add, mul } from './field';
import {
  MAX_SIGNED,
  decodeFixed,
  decodeSigned,
  encodeFixed,
  encodeSigned,
  fitsInField,
  formatFixed,
  maxAbsSum,
  maxAbsSumOfProducts,
  maxAbsSumOfSquares,
  parseFixed,
  type FixedBounds,
} from './fixed-point';

const decimals = fc.integer({ min: 0, max: 18 });

describe('parseFixed / formatFixed', () => {
  it('round-trips any scaled integer at any scale 0..18', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: -(10n ** 45n), max: 10n ** 45n }), decimals, (scaled, d) => {
        const text = formatFixed(scaled, d);
        expect(text).toMatch(/^-?\d+(\.\d*[1-9])?$/);
        expect(parseFixed(text, d)).toBe(scaled);
      }),
      { numRuns: 1000 },
    );
  });

  it('reads a decimal string exactly and writes it back in its shortest form', () => {
    const decimalText = decimals.chain((d) =>
      fc.record({
        d: fc.constant(d),
        sign: fc.constantFrom('', '+', '-'),
        whole: fc.stringMatching(/^\d{1,25}$/),
        fraction: fc.stringMatching(new RegExp(`^\\d{0,${d}}$`)),
      }),
    );
    fc.assert(
      fc.property(decimalText, ({ d, sign, whole, fraction }) => {
        const text = fraction ? `${sign}${whole}.${fraction}` : `${sign}${whole}`;
        const magnitude = BigInt(whole) * 10n ** BigInt(d) + (fraction ? BigInt(fraction) * 10n ** BigInt(d - fraction.length) : 0n);
        const scaled = parseFixed(text, d);
        expect(scaled).toBe(sign === '-' ? -magnitude : magnitude);
        // Shortest form: no leading zeros, no trailing fractional zeros, no "+" and no "-0".
        const shortest = formatFixed(scaled, d);
        expect(shortest).not.toMatch(/^-?0\d|\.\d*0$|^\+|^-0$/);
        expect(parseFixed(shortest, d)).toBe(scaled);
      }),
      { numRuns: 500 },
    );
  });

  it.each<[string, number, bigint]>([
    ['30.2', 1, 302n],
    ['30.20', 1, 302n],
    ['-0.05', 2, -5n],
    ['-0', 3, 0n],
    ['+7', 0, 7n],
    ['007.5', 1, 75n],
    ['  12.5 ', 2, 1250n],
    ['0.000000000000000001', 18, 1n],
    ['123456789012345678901234567890', 0, 123456789012345678901234567890n],
  ])('parses %p at %p decimals as %p', (text, d, expected) => {
    expect(parseFixed(text, d)).toBe(expected);
  });

  it.each<[number, number, bigint]>([
    [0.1, 1, 1n],
    [0.1, 18, 10n ** 17n], // not the double's binary expansion 0.1000000000000000055…
    [-2.5, 1, -25n],
    [0.1 + 0.2, 17, 30000000000000004n], // the double 0.30000000000000004, read as written
    [1e-7, 7, 1n],
    [1e-7, 18, 10n ** 11n],
    [-1e-7, 7, -1n],
    [1.5e-7, 8, 15n],
    [1e21, 0, 10n ** 21n],
    [1e21, 2, 10n ** 23n],
    [-1e21, 0, -(10n ** 21n)],
    [2 ** 60, 0, 1152921504606847000n], // read through its shortest round-trip string, as 0.1 is, not 2^60 exactly
    [-0, 2, 0n],
  ])('parses the number %p at %p decimals as %p', (value, d, expected) => {
    expect(parseFixed(value, d)).toBe(expected);
  });

  it.each<[string | number, number]>([
    ['1.234', 2],
    ['30.25', 1],
    ['-0.001', 2],
    ['0.5', 0],
    [0.1 + 0.2, 16],
    [1e-7, 6],
    [1e-19, 18],
    [5e-324, 18],
  ])('rejects %p: more decimal places than %p', (value, d) => {
    expect(() => parseFixed(value, d)).toThrow(RangeError);
  });

  it.each(['1e5', '1E5', '1.2.3', '', ' ', '0x10', '١٢', '.5', '5.', '--1', '+-1', '1_000', '1,5', '1 000', 'Infinity', 'NaN', '½'])(
    'rejects the malformed string %p',
    (text) => {
      expect(() => parseFixed(text, 4)).toThrow(RangeError);
    },
  );

  it.each([Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY])('rejects the number %p', (value) => {
    expect(() => parseFixed(value, 2)).toThrow(RangeError);
  });

  it.each([-1, 19, 1.5, Number.NaN])('rejects %p decimals', (d) => {
    expect(() => parseFixed('1', d)).toThrow(RangeError);
    expect(() => formatFixed(1n, d)).toThrow(RangeError);
  });

  it('formats exactly', () => {
    expect(formatFixed(302n, 1)).toBe('30.2');
    expect(formatFixed(-5n, 2)).toBe('-0.05');
    expect(formatFixed(300n, 2)).toBe('3');
    expect(formatFixed(0n, 18)).toBe('0');
    expect(formatFixed(1n, 18)).toBe('0.000000000000000001');
    expect(formatFixed(-123n, 0)).toBe('-123');
  });
});

describe('encodeSigned / decodeSigned', () => {
  it('MAX_SIGNED is (p − 1)/2 = 2^126 − 1', () => {
    expect(MAX_SIGNED).toBe((P - 1n) / 2n);
    expect(MAX_SIGNED).toBe(2n ** 126n - 1n);
  });

  it('round-trips every signed integer with |x| ≤ (p − 1)/2', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.bigInt({ min: -MAX_SIGNED, max: MAX_SIGNED }),
          fc.bigInt({ min: MAX_SIGNED - 1000n, max: MAX_SIGNED }),
          fc.bigInt({ min: -MAX_SIGNED, max: -MAX_SIGNED + 1000n }),
        ),
        (x) => {
          const e = encodeSigned(x);
          expect(e).toBeGreaterThanOrEqual(0n);
          expect(e).toBeLessThan(P);
          expect(decodeSigned(e)).toBe(x);
        },
      ),
      { numRuns: 1000 },
    );
  });

  it('is one-to-one onto GF(p): decodeSigned then encodeSigned is the identity', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: P - 1n }), (e) => {
        expect(encodeSigned(decodeSigned(e))).toBe(e);
      }),
      { numRuns: 500 },
    );
  });

  it('fits exactly ±(p − 1)/2 and throws one beyond', () => {
    expect(encodeSigned(MAX_SIGNED)).toBe(MAX_SIGNED);
    expect(encodeSigned(-MAX_SIGNED)).toBe(MAX_SIGNED + 1n);
    expect(decodeSigned(MAX_SIGNED)).toBe(MAX_SIGNED);
    expect(decodeSigned(MAX_SIGNED + 1n)).toBe(-MAX_SIGNED);
    expect(encodeSigned(-1n)).toBe(P - 1n);
    expect(() => encodeSigned(MAX_SIGNED + 1n)).toThrow(RangeError);
    expect(() => encodeSigned(-MAX_SIGNED - 1n)).toThrow(RangeError);
    expect(() => decodeSigned(P)).toThrow(RangeError);
    expect(() => decodeSigned(-1n)).toThrow(RangeError);
  });

  it('encodeFixed / decodeFixed carry a signed decimal through the field', () => {
    expect(encodeFixed('-0.05', 2)).toBe(P - 5n);
    expect(decodeFixed(P - 5n, 2)).toBe('-0.05');
    expect(decodeFixed(encodeFixed(30.2, 1), 1)).toBe('30.2');
  });

  it('sums of encoded values decode to the plain sum while the overflow guard holds', () => {
    const bounds: FixedBounds = { min: -(10n ** 30n), max: 10n ** 30n };
    fc.assert(
      fc.property(fc.array(fc.bigInt({ min: bounds.min, max: bounds.max }), { maxLength: 60 }), (xs) => {
        expect(fitsInField(maxAbsSum(bounds, BigInt(xs.length)))).toBe(true);
        const inField = xs.reduce((acc, x) => add(acc, encodeSigned(x)), 0n);
        expect(decodeSigned(inField)).toBe(xs.reduce((a, b) => a + b, 0n));
      }),
      { numRuns: 300 },
    );
    // Without the guard the sum silently wraps: two maximal values come back negative.
    expect(fitsInField(maxAbsSum({ min: 0n, max: MAX_SIGNED }, 2n))).toBe(false);
    expect(decodeSigned(add(encodeSigned(MAX_SIGNED), encodeSigned(MAX_SIGNED)))).toBe(-1n);
    expect(decodeSigned(mul(encodeSigned(-3n), encodeSigned(7n)))).toBe(-21n);
  });
});

describe('overflow guard', () => {
  it('computes the worst-case magnitudes', () => {
    expect(maxAbsSum({ min: -5n, max: 3n }, 10n)).toBe(50n);
    expect(maxAbsSum({ min: 2n, max: 9n }, 3n)).toBe(27n);
    expect(maxAbsSum({ min: -9n, max: -2n }, 3n)).toBe(27n);
    expect(maxAbsSum({ min: -5n, max: 3n }, 0n)).toBe(0n);
    expect(maxAbsSumOfSquares({ min: -5n, max: 3n }, 10n)).toBe(250n);
    expect(maxAbsSumOfSquares({ min: 0n, max: 0n }, 10n)).toBe(0n);
    expect(maxAbsSumOfProducts({ min: -2n, max: 7n }, { min: -9n, max: 1n }, 4n)).toBe(252n);
  });

  it('bounds are real and attained: no records within bounds exceed them', () => {
    const boundsArb = fc
      .tuple(fc.bigInt({ min: -(10n ** 20n), max: 10n ** 20n }), fc.bigInt({ min: -(10n ** 20n), max: 10n ** 20n }))
      .map(([a, b]): FixedBounds => (a <= b ? { min: a, max: b } : { min: b, max: a }));
    const within = (b: FixedBounds) => fc.bigInt({ min: b.min, max: b.max });
    fc.assert(
      fc.property(
        boundsArb.chain((a) =>
          boundsArb.chain((b) => fc.tuple(fc.constant(a), fc.constant(b), fc.array(fc.tuple(within(a), within(b)), { maxLength: 30 }))),
        ),
        ([a, b, pairs]) => {
          const n = BigInt(pairs.length);
          const abs = (x: bigint) => (x < 0n ? -x : x);
          expect(abs(pairs.reduce((s, [x]) => s + x, 0n))).toBeLessThanOrEqual(maxAbsSum(a, n));
          expect(pairs.reduce((s, [x]) => s + x * x, 0n)).toBeLessThanOrEqual(maxAbsSumOfSquares(a, n));
          expect(abs(pairs.reduce((s, [x, y]) => s + x * y, 0n))).toBeLessThanOrEqual(maxAbsSumOfProducts(a, b, n));
          // n copies of the extreme of largest magnitude reach the bound exactly.
          const extreme = abs(a.min) > abs(a.max) ? a.min : a.max;
          expect(abs(extreme * n)).toBe(maxAbsSum(a, n));
          expect(extreme * extreme * n).toBe(maxAbsSumOfSquares(a, n));
        },
      ),
      { numRuns: 300 },
    );
  });

  it('rejects empty bounds and negative record counts', () => {
    expect(() => maxAbsSum({ min: 1n, max: 0n }, 1n)).toThrow(RangeError);
    expect(() => maxAbsSum({ min: 0n, max: 1n }, -1n)).toThrow(RangeError);
    expect(() => maxAbsSumOfSquares({ min: 1n, max: 0n }, 1n)).toThrow(RangeError);
    expect(() => maxAbsSumOfProducts({ min: 0n, max: 1n }, { min: 2n, max: 1n }, 1n)).toThrow(RangeError);
    expect(() => maxAbsSumOfProducts({ min: 0n, max: 1n }, { min: 0n, max: 1n }, -1n)).toThrow(RangeError);
  });

  it('fitsInField is exactly 0 ≤ maxAbs ≤ (p − 1)/2', () => {
    expect(fitsInField(0n)).toBe(true);
    expect(fitsInField(MAX_SIGNED)).toBe(true);
    expect(fitsInField(MAX_SIGNED + 1n)).toBe(false);
    expect(fitsInField(-1n)).toBe(false);
  });

  it('a sum whose bound is exactly (p − 1)/2 fits; one record more does not', () => {
    // 2^126 − 1 = (2^63 − 1)(2^63 + 1) is divisible by 3 and by 7² = 49.
    expect(MAX_SIGNED % 3n).toBe(0n);
    expect(MAX_SIGNED % 49n).toBe(0n);
    const third: FixedBounds = { min: -(MAX_SIGNED / 3n), max: 1n };
    expect(maxAbsSum(third, 3n)).toBe(MAX_SIGNED);
    expect(fitsInField(maxAbsSum(third, 3n))).toBe(true);
    expect(fitsInField(maxAbsSum(third, 4n))).toBe(false);

    const seven: FixedBounds = { min: -7n, max: 7n };
    const n = MAX_SIGNED / 49n;
    expect(maxAbsSumOfSquares(seven, n)).toBe(MAX_SIGNED);
    expect(fitsInField(maxAbsSumOfSquares(seven, n))).toBe(true);
    expect(fitsInField(maxAbsSumOfSquares(seven, n + 1n))).toBe(false);
  });

  it('a realistic query: Σx² of values within ±10^6 at 6 decimals fits for at most 85,070,591,730,234 records', () => {
    const bounds: FixedBounds = { min: parseFixed('-1000000', 6), max: parseFixed('1000000', 6) };
    const limit = 85_070_591_730_234n;
    expect(fitsInField(maxAbsSumOfSquares(bounds, limit))).toBe(true);
    expect(fitsInField(maxAbsSumOfSquares(bounds, limit + 1n))).toBe(false);
    expect(fitsInField(maxAbsSumOfProducts(bounds, bounds, limit + 1n))).toBe(false);
    // At 18 decimals not even one square of 10^6 fits (10^48 > 2^126).
    const fine: FixedBounds = { min: parseFixed('-1000000', 18), max: parseFixed('1000000', 18) };
    expect(fitsInField(maxAbsSumOfSquares(fine, 1n))).toBe(false);
    expect(fitsInField(maxAbsSum(fine, 10n ** 6n))).toBe(true);
  });
});
