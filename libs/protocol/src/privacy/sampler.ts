import { secureRandom, type RandomSource } from '@confide/crypto';
import { integerSqrt, type Rational } from '../exact';

/**
 * Exact samplers for differential privacy (Canonne, Kamath, Steinke, "The Discrete Gaussian for Differential
 * Privacy", NeurIPS 2020; arXiv:2004.00010, Algorithms 1–3). Every step is integer or exact
 * rational arithmetic on bigints, and all randomness is uniform integers drawn from a {@link RandomSource}
 * by rejection, so the output distribution is exactly the stated one: no floating-point value is ever
 * sampled, rounded or compared (the attack on textbook floating-point Laplace noise, Mironov, CCS 2012,
 * does not apply).
 */

function bitLength(x: bigint): number {
  return x === 0n ? 0 : x.toString(2).length;
}

const CHUNK = 256;

/**
 * The bytes of a {@link RandomSource}, read one at a time from chunks of 256: a sample takes a few dozen
 * small draws, and one call to the source per chunk is much cheaper than one per draw. Each byte is used
 * once and zeroed as it is read (noise is secret: it is what hides the true total). One reader per source
 * (weakly held), so consecutive samples continue the same stream and a seeded source gives the same draws.
 */
class ByteReader {
  private pool: Uint8Array = new Uint8Array(0);
  private offset = 0;

  constructor(private readonly rng: RandomSource) {}

  byte(): number {
    if (this.offset === this.pool.length) {
      this.pool = this.rng(CHUNK);
      if (this.pool.length !== CHUNK) throw new RangeError(`the random source returned ${this.pool.length} bytes, asked for ${CHUNK}`);
      this.offset = 0;
    }
    const b = this.pool[this.offset]!;
    this.pool[this.offset++] = 0;
    return b;
  }
}

const readers = new WeakMap<RandomSource, ByteReader>();

function readerOf(rng: RandomSource): ByteReader {
  let reader = readers.get(rng);
  if (reader === undefined) readers.set(rng, (reader = new ByteReader(rng)));
  return reader;
}

/**
 * A uniform integer in [0, d), by rejection: read ⌈bits/8⌉ bytes, keep the low bitLength(d − 1) bits, retry
 * when the value is ≥ d (probability < 1/2 per try).
 */
function uniformBelow(d: bigint, rng: ByteReader): bigint {
  if (d === 1n) return 0n;
  const bits = bitLength(d - 1n);
  const length = Math.ceil(bits / 8);
  const topMask = 0xff >> (length * 8 - bits);
  for (;;) {
    let x: bigint;
    if (length <= 6) {
      // Below 2^48: exact in a double's integer range, so the bytes are assembled without bigint steps.
      let small = rng.byte() & topMask;
      for (let i = 1; i < length; i++) small = small * 256 + rng.byte();
      x = BigInt(small);
    } else {
      x = BigInt(rng.byte() & topMask);
      for (let i = 1; i < length; i++) x = (x << 8n) | BigInt(rng.byte());
    }
    if (x < d) return x;
  }
}

/** Bernoulli(n/d) for 0 ≤ n ≤ d, d > 0: one uniform draw below d. */
function bernoulli(n: bigint, d: bigint, rng: ByteReader): boolean {
  return uniformBelow(d, rng) < n;
}

/** CKS Algorithm 1, first case: Bernoulli(exp(−n/d)) for 0 ≤ n/d ≤ 1. K is the first k with Bernoulli(γ/k) = 0; P[K odd] = e^−γ. */
function bernoulliExpAtMostOne(n: bigint, d: bigint, rng: ByteReader): boolean {
  let k = 1n;
  while (bernoulli(n, d * k, rng)) k++;
  return k % 2n === 1n;
}

/** CKS Algorithm 1: Bernoulli(exp(−n/d)) for any n/d ≥ 0, as ⌊γ⌋ coins of e^−1 and one of e^−(γ − ⌊γ⌋). */
function bernoulliExpUnchecked(n: bigint, d: bigint, rng: ByteReader): boolean {
  if (n <= d) return bernoulliExpAtMostOne(n, d, rng);
  const whole = n / d;
  for (let i = 0n; i < whole; i++) {
    if (!bernoulliExpAtMostOne(1n, 1n, rng)) return false;
  }
  return bernoulliExpAtMostOne(n - whole * d, d, rng);
}

/**
 * CKS Algorithm 2: the discrete Laplace distribution with scale t/s, P[Z = z] ∝ exp(−|z|·s/t), for positive
 * integers s and t. X = U + t·V is geometric with parameter 1 − e^(−1/t) (U uniform below t kept with
 * probability e^(−U/t), V a count of e^−1 coins); ⌊X/s⌋ is then geometric with parameter 1 − e^(−s/t), and a
 * random sign with "−0" rejected makes it two-sided.
 */
function discreteLaplaceUnchecked(t: bigint, s: bigint, rng: ByteReader): bigint {
  for (;;) {
    const u = uniformBelow(t, rng);
    if (!bernoulliExpUnchecked(u, t, rng)) continue;
    let v = 0n;
    while (bernoulliExpAtMostOne(1n, 1n, rng)) v++;
    const y = (u + t * v) / s;
    const negative = bernoulli(1n, 2n, rng);
    if (negative && y === 0n) continue;
    return negative ? -y : y;
  }
}

/**
 * CKS Algorithm 3: the discrete Gaussian N_Z(0, σ²), P[Z = z] ∝ exp(−z²/(2σ²)), for σ² = a/b. Proposals are
 * discrete Laplace with scale t = ⌊σ⌋ + 1, accepted with probability exp(−(|y| − σ²/t)²/(2σ²)); the exponent
 * is the exact rational (|y|·b·t − a)² / (2·a·b·t²).
 */
function discreteGaussianUnchecked(a: bigint, b: bigint, rng: ByteReader): bigint {
  // ⌊√⌊x⌋⌋ = ⌊√x⌋ for x ≥ 0, so ⌊σ⌋ is the integer square root of ⌊σ²⌋.
  const t = integerSqrt(a / b) + 1n;
  for (;;) {
    const y = discreteLaplaceUnchecked(t, 1n, rng);
    const magnitude = y < 0n ? -y : y;
    const offset = magnitude * b * t - a;
    if (bernoulliExpUnchecked(offset * offset, 2n * a * b * t * t, rng)) return y;
  }
}

function checkPositive(r: Rational, name: string): void {
  if (typeof r.n !== 'bigint' || typeof r.d !== 'bigint' || r.n <= 0n || r.d <= 0n) {
    throw new RangeError(`${name} must be a positive rational n/d with bigints n, d > 0`);
  }
}

function checkBound(bound: bigint | undefined): void {
  if (bound !== undefined && (typeof bound !== 'bigint' || bound < 0n)) throw new RangeError('bound must be a non-negative bigint');
}

/** Resamples until |z| ≤ bound (the truncation noiseBound documents); no bound, no truncation. */
function truncated(sample: () => bigint, bound: bigint | undefined): bigint {
  for (;;) {
    const z = sample();
    if (bound === undefined || (z <= bound && z >= -bound)) return z;
  }
}

/**
 * One draw from Bernoulli(exp(−γ)) for a rational γ ≥ 0, exactly (CKS Algorithm 1).
 *
 * @param gamma γ = n/d with n ≥ 0, d > 0
 * @param rng the source of uniform bytes (default the OS CSPRNG), read 256 bytes at a time; calls with the same
 *   source continue one stream, so a seeded source gives a reproducible sequence of draws
 * @throws RangeError for a negative γ or a zero denominator
 */
export function sampleBernoulliExp(gamma: Rational, rng: RandomSource = secureRandom): boolean {
  if (typeof gamma.n !== 'bigint' || typeof gamma.d !== 'bigint' || gamma.n < 0n || gamma.d <= 0n) {
    throw new RangeError('gamma must be a non-negative rational n/d with bigints n ≥ 0, d > 0');
  }
  return bernoulliExpUnchecked(gamma.n, gamma.d, readerOf(rng));
}

/**
 * One draw from the discrete Laplace distribution on the integers with the given scale b,
 * P[Z = z] = (1 − q)/(1 + q) · q^|z| with q = e^(−1/b), exactly (CKS Algorithm 2 with t/s = b). Adding it to an
 * integer query of L1 sensitivity Δ gives (Δ/b)-differential privacy (the geometric mechanism, Ghosh,
 * Roughgarden, Sundararajan, STOC 2009).
 *
 * @param scale b = n/d > 0
 * @param rng the source of uniform bytes (default the OS CSPRNG), read 256 bytes at a time; calls with the same
 *   source continue one stream, so a seeded source gives a reproducible sequence of draws
 * @param bound when given, draws are repeated until |Z| ≤ bound (the distribution conditioned on that event)
 * @throws RangeError for a scale that is not a positive rational, or a negative bound
 */
export function sampleDiscreteLaplace(scale: Rational, rng: RandomSource = secureRandom, bound?: bigint): bigint {
  checkPositive(scale, 'scale');
  checkBound(bound);
  const source = readerOf(rng);
  return truncated(() => discreteLaplaceUnchecked(scale.n, scale.d, source), bound);
}

/**
 * One draw from the discrete Gaussian N_Z(0, σ²), P[Z = z] ∝ exp(−z²/(2σ²)) on the integers, exactly (CKS
 * Algorithm 3). Adding it to an integer query of L2 sensitivity Δ gives Δ²/(2σ²)-zCDP (CKS 2020 §2).
 *
 * @param sigma2 σ² = n/d > 0
 * @param rng the source of uniform bytes (default the OS CSPRNG), read 256 bytes at a time; calls with the same
 *   source continue one stream, so a seeded source gives a reproducible sequence of draws
 * @param bound when given, draws are repeated until |Z| ≤ bound (the distribution conditioned on that event)
 * @throws RangeError for a σ² that is not a positive rational, or a negative bound
 */
export function sampleDiscreteGaussian(sigma2: Rational, rng: RandomSource = secureRandom, bound?: bigint): bigint {
  checkPositive(sigma2, 'sigma2');
  checkBound(bound);
  const source = readerOf(rng);
  return truncated(() => discreteGaussianUnchecked(sigma2.n, sigma2.d, source), bound);
}
