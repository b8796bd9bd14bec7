/**
 * Exact arithmetic for the query compiler: rationals of bigints for the numbers a query names (where values,
 * histogram edges), and the one correctly rounded step from an exact rational result to a double
 * ({@link ratioToNumber}, {@link sqrtRatioToNumber}). Statistics are derived from exact integer totals, so
 * all of their error is in that last step. The privacy layer uses the same arithmetic (noise bounds, the
 * discrete samplers, the budget), which is why this file sits beside query/ and privacy/ rather than in either.
 */

/** An exact rational n / d with d > 0 (not necessarily in lowest terms). */
export interface Rational {
  readonly n: bigint;
  readonly d: bigint;
}

const DECIMAL_TEXT = /^(-?)(\d+)(?:\.(\d+))?(?:e([+-]?\d+))?$/;

/**
 * The exact decimal a JS number stands for, as written in JSON: the shortest decimal that round-trips to the
 * same double (`String(x)`, ECMA-262 Number::toString), so `0.1` is 1/10 and not the binary double's
 * 0.1000000000000000055511151231257827… A query's numbers are decimals typed by a person; comparing against
 * the decimal they wrote is what they mean.
 *
 * @throws RangeError for NaN or ±Infinity
 */
export function decimalOf(x: number): Rational {
  if (!Number.isFinite(x)) throw new RangeError(`not a finite number: ${x}`);
  const m = DECIMAL_TEXT.exec(String(x));
  if (!m) throw new RangeError(`cannot read ${String(x)} as a decimal`);
  const [, sign, whole, fraction = '', exponent = '0'] = m;
  const digits = BigInt(whole! + fraction) * (sign === '-' ? -1n : 1n);
  const e = Number(exponent) - fraction.length;
  return e >= 0 ? { n: digits * 10n ** BigInt(e), d: 1n } : { n: digits, d: 10n ** BigInt(-e) };
}

/** a − b. */
export function subtract(a: Rational, b: Rational): Rational {
  return { n: a.n * b.d - b.n * a.d, d: a.d * b.d };
}

/** a + k·b for an integer k. */
export function addMultiple(a: Rational, k: bigint, b: Rational): Rational {
  return { n: a.n * b.d + k * b.n * a.d, d: a.d * b.d };
}

/** ⌊n / d⌋ for d > 0 (bigint division truncates toward zero). */
export function floorDiv(n: bigint, d: bigint): bigint {
  const q = n / d;
  return n % d !== 0n && n < 0n ? q - 1n : q;
}

/** ⌈n / d⌉ for d > 0. */
export function ceilDiv(n: bigint, d: bigint): bigint {
  return -floorDiv(-n, d);
}

/** r · 10^decimals: a decimal in a numeric field's fixed-point units (still exact, perhaps not an integer). */
export function scaleRational(r: Rational, decimals: number): Rational {
  return { n: r.n * 10n ** BigInt(decimals), d: r.d };
}

/** ⌈a / b⌉ for rationals with b > 0. */
export function ceilQuotient(a: Rational, b: Rational): bigint {
  return ceilDiv(a.n * b.d, a.d * b.n);
}

// ---------------------------------------------------------------------------------------------------------
// Exact rational to double.

function bitLength(x: bigint): number {
  return x === 0n ? 0 : x.toString(2).length;
}

/** x · 2^e, exact unless the result overflows or is subnormal (then rounded once). */
function scaleByPowerOfTwo(x: number, e: number): number {
  while (e > 1023) {
    x *= 2 ** 1023;
    e -= 1023;
  }
  while (e < -1022) {
    x *= 2 ** -1022;
    e += 1022;
  }
  return x * 2 ** e;
}

/**
 * The double nearest to numerator / denominator (IEEE 754 round to nearest, ties to even), for any bigints:
 * one rounding, so statistics derived from exact totals are as accurate as a double allows.
 *
 * Method: scale so the integer quotient q has 55 or 56 bits (53 for the significand, a round bit, and at
 * least one more), fold a non-zero remainder into q's lowest bit as a sticky bit, and let `Number(q)` (which
 * rounds to nearest, ties to even, ECMA-262 §21.1.1.1) do the one rounding; the power-of-two scaling after it
 * is exact. Near the subnormal range the scale is capped so q keeps two bits below 2^−1074 and the final
 * scaling does the one rounding instead.
 *
 * A zero numerator gives +0 whatever the signs (a statistic of zero is never printed as −0).
 *
 * @throws RangeError when the denominator is zero
 */
export function ratioToNumber(numerator: bigint, denominator: bigint): number {
  if (denominator === 0n) throw new RangeError('ratioToNumber: the denominator is zero');
  if (numerator === 0n) return 0;
  const negative = numerator < 0n !== denominator < 0n;
  const n = numerator < 0n ? -numerator : numerator;
  const d = denominator < 0n ? -denominator : denominator;
  const shift = Math.min(55 - (bitLength(n) - bitLength(d)), 1076);
  const num = shift > 0 ? n << BigInt(shift) : n;
  const den = shift < 0 ? d << BigInt(-shift) : d;
  let q = num / den;
  if (q * den !== num) q |= 1n;
  const magnitude = scaleByPowerOfTwo(Number(q), -shift);
  return negative ? -magnitude : magnitude;
}

/** ⌊√n⌋ for n ≥ 0, by Newton's iteration from a power of two above the root (it decreases monotonically to it). */
export function integerSqrt(n: bigint): bigint {
  if (n < 0n) throw new RangeError('integerSqrt: negative argument');
  if (n < 2n) return n;
  let x = 1n << BigInt(Math.ceil(bitLength(n) / 2));
  for (;;) {
    const y = (x + n / x) >> 1n;
    if (y >= x) return x;
    x = y;
  }
}

/**
 * The double nearest to √(numerator / denominator) (round to nearest, ties to even) for a non-negative
 * ratio: the square root is taken of the exact rational, with one rounding at the end, so a standard
 * deviation or a correlation is as accurate as a double allows rather than a rounded square root of a
 * rounded variance.
 *
 * Method: for an even shift s, r = ⌊√⌊2^s · n / d⌋⌋ equals ⌊2^(s/2) · √(n/d)⌋ (⌊√⌊x⌋⌋ = ⌊√x⌋ for real
 * x ≥ 0), and s is chosen so r has 55 or 56 bits. The root is exact exactly when the division leaves no
 * remainder and r² is the quotient; otherwise r's lowest bit is set as a sticky bit (it is below the round
 * bit, so it only breaks ties the right way), and `Number(r)` does the one rounding, as in
 * {@link ratioToNumber}. Scaling by 2^(−s/2) is exact for results in the normal range; a result below
 * 2^−1022, which no statistic of fixed-point data comes near, may be rounded twice.
 *
 * @throws RangeError when the denominator is zero or the ratio is negative
 */
export function sqrtRatioToNumber(numerator: bigint, denominator: bigint): number {
  if (denominator === 0n) throw new RangeError('sqrtRatioToNumber: the denominator is zero');
  if (numerator === 0n) return 0;
  if (numerator < 0n !== denominator < 0n) throw new RangeError('sqrtRatioToNumber: the ratio is negative');
  const n = numerator < 0n ? -numerator : numerator;
  const d = denominator < 0n ? -denominator : denominator;
  // 2^s · n / d > 2^(s + bitLength(n) − 1 − bitLength(d)) ≥ 2^109, so r ≥ 2^54; and < 2^112, so r < 2^56.
  let shift = 110 - (bitLength(n) - bitLength(d));
  if (shift % 2 !== 0) shift++;
  const num = shift > 0 ? n << BigInt(shift) : n;
  const den = shift < 0 ? d << BigInt(-shift) : d;
  const m = num / den;
  let r = integerSqrt(m);
  if (m * den !== num || r * r !== m) r |= 1n;
  return scaleByPowerOfTwo(Number(r), -shift / 2);
}
