import { add, assertFieldElement, inv, mul, randomElement, sub, type FieldElement } from './field';
import { secureRandom, type RandomSource } from './random';

/**
 * Shamir secret sharing of vectors over GF(2^127 − 1) (A. Shamir, "How to share a secret", CACM 1979).
 * Holder j (1-based) receives the evaluations at x = j of one random polynomial of degree t − 1 per
 * coordinate, whose constant term is the secret coordinate. Any t shares determine the polynomials;
 * any t − 1 are uniformly distributed and independent of the secret.
 */
export interface ShamirShare {
  /** The holder's evaluation point, 1..k. Never 0: f(0) is the secret. */
  readonly x: number;
  /** One field element per secret coordinate. */
  readonly y: readonly FieldElement[];
}

/** Largest number of holders a split supports; evaluation points are small integers 1..k. */
export const MAX_HOLDERS = 1024;

function checkThreshold(threshold: number, holders: number): void {
  if (!Number.isInteger(holders) || holders < 1 || holders > MAX_HOLDERS) {
    throw new RangeError(`holders must be an integer from 1 to ${MAX_HOLDERS}, got ${holders}`);
  }
  if (!Number.isInteger(threshold) || threshold < 1 || threshold > holders) {
    throw new RangeError(`threshold must be an integer from 1 to ${holders}, got ${threshold}`);
  }
}

/**
 * Splits a vector of secrets into `holders` shares, any `threshold` of which reconstruct it.
 * @param secrets canonical field elements (encode signed values with `encodeSigned` first)
 * @param rng source of the polynomial coefficients; the CSPRNG unless a test injects one
 * @returns shares for holders x = 1..holders, in that order
 * @throws RangeError on a threshold outside 1..holders or a secret that is not a field element
 */
export function splitSecret(
  secrets: readonly FieldElement[],
  threshold: number,
  holders: number,
  rng: RandomSource = secureRandom,
): ShamirShare[] {
  checkThreshold(threshold, holders);
  secrets.forEach((s, i) => assertFieldElement(s, `secret[${i}]`));
  const ys: FieldElement[][] = Array.from({ length: holders }, () => new Array<FieldElement>(secrets.length));
  const coefficients = new Array<FieldElement>(threshold);
  for (let c = 0; c < secrets.length; c++) {
    coefficients[0] = secrets[c]!;
    for (let d = 1; d < threshold; d++) coefficients[d] = randomElement(rng);
    for (let j = 0; j < holders; j++) {
      // Horner's rule at x = j + 1.
      const x = BigInt(j + 1);
      let acc = coefficients[threshold - 1]!;
      for (let d = threshold - 2; d >= 0; d--) acc = add(mul(acc, x), coefficients[d]!);
      ys[j]![c] = acc;
    }
  }
  coefficients.fill(0n);
  return ys.map((y, j) => ({ x: j + 1, y }));
}

function checkShares(shares: readonly ShamirShare[]): number {
  const first = shares[0];
  if (!first) throw new RangeError('no shares given');
  const seen = new Set<number>();
  for (const s of shares) {
    if (!Number.isInteger(s.x) || s.x < 1 || s.x > MAX_HOLDERS) throw new RangeError(`invalid evaluation point ${s.x}`);
    if (seen.has(s.x)) throw new RangeError(`two shares for holder ${s.x}`);
    seen.add(s.x);
    if (s.y.length !== first.y.length) throw new RangeError(`share ${s.x} has ${s.y.length} coordinates, expected ${first.y.length}`);
    s.y.forEach((v, i) => assertFieldElement(v, `share ${s.x} coordinate ${i}`));
  }
  return first.y.length;
}

/**
 * Lagrange basis coefficients λ_i(z) = Π_{j≠i} (z − x_j) / (x_i − x_j) for the given points, with a
 * single field inversion (Montgomery's batch trick).
 */
function lagrangeAt(points: readonly number[], z: bigint): FieldElement[] {
  const xs = points.map(BigInt);
  const numerators: FieldElement[] = [];
  const denominators: FieldElement[] = [];
  for (let i = 0; i < xs.length; i++) {
    let num = 1n;
    let den = 1n;
    for (let j = 0; j < xs.length; j++) {
      if (i === j) continue;
      num = mul(num, sub(z, xs[j]!));
      den = mul(den, sub(xs[i]!, xs[j]!));
    }
    numerators.push(num);
    denominators.push(den);
  }
  const prefix: FieldElement[] = [];
  let running = 1n;
  for (const d of denominators) {
    prefix.push(running);
    running = mul(running, d);
  }
  let inverse = inv(running);
  const result = new Array<FieldElement>(xs.length);
  for (let i = xs.length - 1; i >= 0; i--) {
    result[i] = mul(numerators[i]!, mul(inverse, prefix[i]!));
    inverse = mul(inverse, denominators[i]!);
  }
  return result;
}

function interpolateAt(shares: readonly ShamirShare[], z: bigint, length: number): FieldElement[] {
  const lambdas = lagrangeAt(
    shares.map((s) => s.x),
    z,
  );
  const out = new Array<FieldElement>(length).fill(0n);
  shares.forEach((s, i) => {
    const l = lambdas[i]!;
    for (let c = 0; c < length; c++) out[c] = add(out[c]!, mul(l, s.y[c]!));
  });
  return out;
}

/**
 * Reconstructs the secret vector from exactly the first `threshold` of the given shares by Lagrange
 * interpolation at 0. Extra shares are ignored here; use {@link checkConsistency} to use them as a check.
 * @throws RangeError with fewer than `threshold` shares, duplicate holders or malformed shares
 */
export function reconstructSecret(shares: readonly ShamirShare[], threshold: number): FieldElement[] {
  if (!Number.isInteger(threshold) || threshold < 1) throw new RangeError(`invalid threshold ${threshold}`);
  const length = checkShares(shares);
  if (shares.length < threshold) {
    throw new RangeError(`${shares.length} share${shares.length === 1 ? '' : 's'} given, ${threshold} needed to reconstruct`);
  }
  return interpolateAt(shares.slice(0, threshold), 0n, length);
}

/** Outcome of {@link checkConsistency}. */
export type ConsistencyResult =
  | { readonly consistent: true; readonly secret: FieldElement[] }
  | {
      readonly consistent: false;
      /** Holders whose shares disagree with the polynomial most shares lie on; empty when that cannot be decided. */
      readonly badHolders: number[];
      /** The secret recovered from the agreeing shares, when the bad ones could be named. */
      readonly secret: FieldElement[] | null;
    };

const MAX_SUBSETS = 20_000;

function* subsets(n: number, size: number): Generator<number[]> {
  const idx = Array.from({ length: size }, (_, i) => i);
  for (;;) {
    yield idx.slice();
    let i = size - 1;
    while (i >= 0 && idx[i] === n - size + i) i--;
    if (i < 0) return;
    idx[i]!++;
    for (let j = i + 1; j < size; j++) idx[j] = idx[j - 1]! + 1;
  }
}

function binomial(n: number, k: number): number {
  let r = 1;
  for (let i = 1; i <= k; i++) r = (r * (n - k + i)) / i;
  return Math.round(r);
}

function agrees(poly: readonly ShamirShare[], share: ShamirShare, length: number): boolean {
  const at = interpolateAt(poly, BigInt(share.x), length);
  return at.every((v, c) => v === share.y[c]);
}

/**
 * Checks that more than `threshold` shares lie on one polynomial of degree threshold − 1 per coordinate
 * and, when they do not, names the holders whose shares are off. With n shares and e bad ones the bad
 * shares are named whenever n ≥ t + 2e (unique decoding of a Reed–Solomon code: McEliece & Sarwate, 1981);
 * the search tries subsets of t shares, so it is meant for committee-sized inputs (tens of holders).
 * With exactly `threshold` shares there is nothing to check against: the result is consistent.
 * @throws RangeError on an invalid threshold, fewer than `threshold` shares or malformed shares
 */
export function checkConsistency(shares: readonly ShamirShare[], threshold: number): ConsistencyResult {
  // A non-integer threshold would make the subset search below loop forever.
  if (!Number.isInteger(threshold) || threshold < 1) throw new RangeError(`invalid threshold ${threshold}`);
  const length = checkShares(shares);
  if (shares.length < threshold) throw new RangeError(`${shares.length} shares given, ${threshold} needed`);
  const base = shares.slice(0, threshold);
  const rest = shares.slice(threshold);
  if (rest.every((s) => agrees(base, s, length))) return { consistent: true, secret: interpolateAt(base, 0n, length) };

  // Find the polynomial that the most shares agree with.
  let best: { agreeing: ShamirShare[]; poly: ShamirShare[] } | null = null;
  if (binomial(shares.length, threshold) <= MAX_SUBSETS) {
    for (const subset of subsets(shares.length, threshold)) {
      const poly = subset.map((i) => shares[i]!);
      const agreeing = shares.filter((s) => subset.includes(shares.indexOf(s)) || agrees(poly, s, length));
      if (!best || agreeing.length > best.agreeing.length) best = { agreeing, poly };
    }
  }
  if (best) {
    const bad = shares.filter((s) => !best.agreeing.includes(s)).map((s) => s.x);
    if (shares.length >= threshold + 2 * bad.length) {
      return { consistent: false, badHolders: bad, secret: interpolateAt(best.poly, 0n, length) };
    }
  }
  return { consistent: false, badHolders: [], secret: null };
}

/**
 * Additive secret sharing: `parties` vectors that sum to the secret in GF(p); any parties − 1 of them
 * are uniformly random. The first parties − 1 vectors are drawn at random, the last is the difference.
 * @throws RangeError on parties < 1 or a secret that is not a field element
 */
export function splitAdditive(
  secrets: readonly FieldElement[],
  parties: number,
  rng: RandomSource = secureRandom,
): FieldElement[][] {
  if (!Number.isInteger(parties) || parties < 1) throw new RangeError(`parties must be a positive integer, got ${parties}`);
  secrets.forEach((s, i) => assertFieldElement(s, `secret[${i}]`));
  const shares: FieldElement[][] = [];
  const last = secrets.slice();
  for (let p = 0; p < parties - 1; p++) {
    const share = secrets.map(() => randomElement(rng));
    share.forEach((r, c) => (last[c] = sub(last[c]!, r)));
    shares.push(share);
  }
  shares.push(last);
  return shares;
}
