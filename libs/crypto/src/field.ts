import { modInv } from 'bigint-crypto-utils';
import { bytesToBigInt, secureRandom, type RandomSource } from './random';

/**
 * The Mersenne prime p = 2^127 − 1. Confide's secret sharing and fixed-point aggregates live in GF(p)
 * (DESIGN.md "Queries": encoding). 127 bits hold any sum of 10^6 records of 18-digit fixed-point values
 * with room to spare, and the Mersenne form makes reduction two shifts and an add.
 */
export const P = (1n << 127n) - 1n;
const BITS = 127n;

/** A field element: a bigint in [0, p). Functions below check their inputs where the type cannot. */
export type FieldElement = bigint;

/**
 * x mod p for any integer x (negative too), using p = 2^127 − 1: 2^127 ≡ 1, so the high part folds onto the low part.
 * Faster than the generic `%` for the products of two elements this code reduces on the hot path (bench/field.bench.ts).
 */
export function mod(x: bigint): FieldElement {
  if (x < 0n) {
    const r = modPositive(-x);
    return r === 0n ? 0n : P - r;
  }
  return modPositive(x);
}

function modPositive(x: bigint): bigint {
  while (x > P) x = (x & P) + (x >> BITS);
  return x === P ? 0n : x;
}

/** Asserts that x is a canonical field element. Throws RangeError otherwise. */
export function assertFieldElement(x: bigint, what = 'value'): asserts x is FieldElement {
  if (typeof x !== 'bigint' || x < 0n || x >= P) throw new RangeError(`${what} is not an element of GF(2^127 − 1)`);
}

/** (a + b) mod p for canonical a, b. */
export function add(a: FieldElement, b: FieldElement): FieldElement {
  const s = a + b;
  return s >= P ? s - P : s;
}

/** (a − b) mod p for canonical a, b. */
export function sub(a: FieldElement, b: FieldElement): FieldElement {
  const d = a - b;
  return d < 0n ? d + P : d;
}

/** (−a) mod p. */
export function neg(a: FieldElement): FieldElement {
  return a === 0n ? 0n : P - a;
}

/** (a · b) mod p. */
export function mul(a: FieldElement, b: FieldElement): FieldElement {
  return modPositive(a * b);
}

/**
 * Multiplicative inverse a^(−1) mod p, by bigint-crypto-utils' extended Euclid.
 * Throws RangeError for a ≡ 0, which has none.
 */
export function inv(a: FieldElement): FieldElement {
  const r = mod(a);
  if (r === 0n) throw new RangeError('0 has no inverse in GF(p)');
  return modInv(r, P);
}

/**
 * A uniformly random field element. Draws 127 bits and rejects the single value p (probability 2^-127),
 * so there is no modulo bias, unlike reducing a wider random integer mod p.
 */
export function randomElement(rng: RandomSource = secureRandom): FieldElement {
  for (;;) {
    const bytes = rng(16);
    if (bytes.length !== 16) throw new RangeError('random source returned the wrong number of bytes');
    const x = bytesToBigInt(bytes) & P;
    if (x !== P) return x;
  }
}

/** Element-wise sum of two vectors of equal length. */
export function addVectors(a: readonly FieldElement[], b: readonly FieldElement[]): FieldElement[] {
  if (a.length !== b.length) throw new RangeError(`vector lengths differ: ${a.length} vs ${b.length}`);
  return a.map((x, i) => add(x, b[i]!));
}

/** Element-wise sum of any number of vectors of equal length (the zero vector of `length` when given none). */
export function sumVectors(vectors: readonly (readonly FieldElement[])[], length: number): FieldElement[] {
  const acc = new Array<bigint>(length).fill(0n);
  for (const v of vectors) {
    if (v.length !== length) throw new RangeError(`vector length ${v.length}, expected ${length}`);
    // Accumulate unreduced and fold once at the end: each addend is < 2^127, so thousands fit easily.
    for (let i = 0; i < length; i++) acc[i]! += v[i]!;
  }
  return acc.map(modPositive);
}
