import { P, mod, type FieldElement } from './field';

/** Largest magnitude a signed value may have in GF(p): values in (−p/2, p/2) map one-to-one. */
export const MAX_SIGNED = (P - 1n) / 2n;

const DECIMAL = /^([+-]?)(\d+)(?:\.(\d+))?$/;
const MAX_DECIMALS = 18;

function checkDecimals(decimals: number): void {
  if (!Number.isInteger(decimals) || decimals < 0 || decimals > MAX_DECIMALS) {
    throw new RangeError(`decimals must be an integer from 0 to ${MAX_DECIMALS}, got ${decimals}`);
  }
}

/**
 * Parses a decimal number into a fixed-point integer scaled by 10^decimals, exactly: "30.2" with
 * 1 decimal is 302n. Accepts a decimal string (optional sign, digits, optional fraction; no exponent)
 * or a finite number, which is read through its shortest round-trip string so 0.1 stays 0.1.
 * Throws RangeError on malformed input or when the value has more fractional digits than `decimals`
 * (rounding silently would change a participant's data).
 */
export function parseFixed(value: string | number, decimals: number): bigint {
  checkDecimals(decimals);
  let text: string;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new RangeError(`not a finite number: ${value}`);
    text = numberToPlainString(value);
  } else {
    text = value.trim();
  }
  const m = DECIMAL.exec(text);
  if (!m) throw new RangeError(`not a decimal number: ${JSON.stringify(String(value))}`);
  const [, sign, whole, fraction = ''] = m;
  const trimmed = fraction.replace(/0+$/, '');
  if (trimmed.length > decimals) {
    throw new RangeError(`${text} has more than ${decimals} decimal place${decimals === 1 ? '' : 's'}`);
  }
  const scaled = BigInt(whole! + trimmed.padEnd(decimals, '0'));
  return sign === '-' ? -scaled : scaled;
}

function numberToPlainString(value: number): string {
  const s = String(value);
  if (!/e/i.test(s)) return s;
  // Exponent form (1e-7, 1e21): expand through toFixed/BigInt so the digits stay exact.
  if (Math.abs(value) >= 1) return BigInt(value).toString();
  return value.toFixed(20).replace(/0+$/, '');
}

/** Formats a fixed-point integer scaled by 10^decimals as an exact decimal string (no trailing zeros). */
export function formatFixed(scaled: bigint, decimals: number): string {
  checkDecimals(decimals);
  const negative = scaled < 0n;
  const digits = (negative ? -scaled : scaled).toString().padStart(decimals + 1, '0');
  const whole = digits.slice(0, digits.length - decimals);
  const fraction = digits.slice(digits.length - decimals).replace(/0+$/, '');
  return `${negative ? '-' : ''}${whole}${fraction ? `.${fraction}` : ''}`;
}

/**
 * Maps a signed integer into GF(p): non-negatives as themselves, negatives as p − |x|.
 * Throws RangeError when |x| > (p − 1)/2, where the mapping would stop being invertible.
 */
export function encodeSigned(x: bigint): FieldElement {
  if (x > MAX_SIGNED || -x > MAX_SIGNED) throw new RangeError('value does not fit in the field as a signed integer');
  return mod(x);
}

/** Inverse of {@link encodeSigned}: elements above (p − 1)/2 are read as negative. */
export function decodeSigned(x: FieldElement): bigint {
  if (x < 0n || x >= P) throw new RangeError('not a field element');
  return x > MAX_SIGNED ? x - P : x;
}

/** Encodes a decimal value straight into a field element at the given scale (parse, then map sign). */
export function encodeFixed(value: string | number, decimals: number): FieldElement {
  return encodeSigned(parseFixed(value, decimals));
}

/** Decodes a field element holding a signed fixed-point integer back to its exact decimal string. */
export function decodeFixed(x: FieldElement, decimals: number): string {
  return formatFixed(decodeSigned(x), decimals);
}

/** Inclusive bounds of a fixed-point quantity, as scaled integers. */
export interface FixedBounds {
  readonly min: bigint;
  readonly max: bigint;
}

function checkBounds(b: FixedBounds): void {
  if (b.min > b.max) throw new RangeError(`empty bounds: min ${b.min} > max ${b.max}`);
}

function checkCount(maxRecords: bigint): void {
  if (maxRecords < 0n) throw new RangeError('maxRecords must be non-negative');
}

const absMax = (b: FixedBounds): bigint => {
  const lo = b.min < 0n ? -b.min : b.min;
  const hi = b.max < 0n ? -b.max : b.max;
  return lo > hi ? lo : hi;
};

/** Largest |Σ x| over at most `maxRecords` values with x in `bounds`. */
export function maxAbsSum(bounds: FixedBounds, maxRecords: bigint): bigint {
  checkBounds(bounds);
  checkCount(maxRecords);
  return absMax(bounds) * maxRecords;
}

/** Largest |Σ x·y| over at most `maxRecords` pairs with x in `a`, y in `b` (Σx² is the case a = b). */
export function maxAbsSumOfProducts(a: FixedBounds, b: FixedBounds, maxRecords: bigint): bigint {
  checkBounds(a);
  checkBounds(b);
  checkCount(maxRecords);
  return absMax(a) * absMax(b) * maxRecords;
}

/** Largest Σ x² over at most `maxRecords` values with x in `bounds`. */
export function maxAbsSumOfSquares(bounds: FixedBounds, maxRecords: bigint): bigint {
  return maxAbsSumOfProducts(bounds, bounds, maxRecords);
}

/**
 * The overflow guard (DESIGN.md "Queries": encoding): true when an aggregate whose magnitude can reach
 * `maxAbs` is still recovered exactly as a signed integer after summation in GF(p), i.e. maxAbs ≤ (p − 1)/2.
 */
export function fitsInField(maxAbs: bigint): boolean {
  return maxAbs >= 0n && maxAbs <= MAX_SIGNED;
}
