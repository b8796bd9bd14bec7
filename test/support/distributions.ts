/**
 * The distributions the differential-privacy noise claims to have (libs/protocol/src/privacy/dp.ts), and tests of
 * draws against them whose chance of failing a correct implementation is a stated bound, not an estimate. The
 * noise is truncated at a bound it exceeds with probability < 2^−64 (dp.ts noiseBound); that is ignored here.
 */

/** The CDF of the discrete Laplace distribution of scale b: P[Z = z] = (1 − q)/(1 + q)·q^|z|, q = e^(−1/b). */
export function discreteLaplaceCdf(b: number): (z: number) => number {
  const q = Math.exp(-1 / b);
  // P[Z ≤ −k] = q^k/(1 + q) for k ≥ 1, and P[Z > z] = q^(z+1)/(1 + q) for z ≥ 0.
  return (z) => (z < 0 ? q ** -z / (1 + q) : 1 - q ** (z + 1) / (1 + q));
}

/** The CDF of the discrete Gaussian N_Z(0, σ²), P[Z = z] ∝ e^(−z²/2σ²), by summing its pmf out to ±(40σ + 40). */
export function discreteGaussianCdf(sigma2: number): (z: number) => number {
  const reach = Math.ceil(40 * Math.sqrt(sigma2)) + 40;
  const weights = Array.from({ length: 2 * reach + 1 }, (_, i) => Math.exp(-((i - reach) ** 2) / (2 * sigma2)));
  const total = weights.reduce((a, b) => a + b, 0);
  let running = 0;
  const cumulative = weights.map((w) => (running += w) / total);
  return (z) => (z < -reach ? 0 : z >= reach ? 1 : cumulative[z + reach]!);
}

/**
 * The Kolmogorov–Smirnov distance sup_z |F_n(z) − F(z)| between integer draws and an integer distribution's CDF.
 * Both CDFs step only at integers, so the supremum is reached at an integer from min − 1 to max.
 */
export function ksDistance(draws: readonly number[], cdf: (z: number) => number): number {
  const counts = new Map<number, number>();
  for (const x of draws) counts.set(x, (counts.get(x) ?? 0) + 1);
  const low = draws.reduce((a, b) => Math.min(a, b));
  const high = draws.reduce((a, b) => Math.max(a, b));
  let below = 0;
  let distance = cdf(low - 1);
  for (let z = low; z <= high; z++) {
    below += counts.get(z) ?? 0;
    distance = Math.max(distance, Math.abs(below / draws.length - cdf(z)));
  }
  return distance;
}

/**
 * The largest Kolmogorov–Smirnov distance that n independent draws from the right distribution exceed with
 * probability at most α: the Dvoretzky–Kiefer–Wolfowitz inequality with Massart's constant (Ann. Probab. 18(3),
 * 1990), P[sup |F_n − F| > t] ≤ 2e^(−2nt²) for α ≤ 1. It holds for a discrete F too: jumps in F only make the
 * distance stochastically smaller than for a continuous F.
 */
export function dkwRadius(n: number, alpha: number): number {
  return Math.sqrt(Math.log(2 / alpha) / (2 * n));
}

/** log E[e^(t|Z|)] for Z discrete Laplace of scale b, with u = t·b < 1; each factor in a form exact for b large. */
function logMgfOfMagnitude(b: number, u: number): number {
  // E[e^(t|Z|)] = (1 − q)(1 + q·e^t) / ((1 + q)(1 − q·e^t)), q = e^(−1/b), q·e^t = e^((u − 1)/b) < 1.
  const logQ = -1 / b;
  const logQe = (u - 1) / b;
  return Math.log(-Math.expm1(logQ)) + Math.log1p(Math.exp(logQe)) - Math.log1p(Math.exp(logQ)) - Math.log(-Math.expm1(logQe));
}

/** Grids of u = t·b for Chernoff's bound: any u gives a valid bound, a finer grid only a tighter one. */
const UPPER_U = Array.from({ length: 160 }, (_, j) => 1 - 2 ** (-(j + 1) / 8));
const LOWER_U = Array.from({ length: 160 }, (_, j) => -(2 ** (j / 8 - 10)));

/**
 * An interval [low, high] that S = Σ|Z_i| over k independent discrete Laplace draws of scale b leaves (S ≤ low or
 * S ≥ high) with probability at most α, α/2 on each side, by Chernoff's bound with the exact moment generating
 * function of |Z|: P[S ≥ s] ≤ E[e^(t|Z|)]^k·e^(−ts) for t > 0, P[S ≤ s] ≤ the same for t < 0. `low` is −∞ when
 * even S = 0 is not that unlikely (a small scale, where most draws are 0).
 */
export function laplaceMagnitudeInterval(b: number, k: number, alpha: number): { low: number; high: number } {
  const target = Math.log(alpha / 2);
  // In units of b: s = S/b, and t·S = u·s.
  const logUpperTail = (s: number): number => Math.min(...UPPER_U.map((u) => k * logMgfOfMagnitude(b, u) - u * s));
  const logLowerTail = (s: number): number => Math.min(...LOWER_U.map((u) => k * logMgfOfMagnitude(b, u) - u * s));
  let high = 1;
  while (logUpperTail(high) > target) high *= 2;
  let below = 0;
  for (let i = 0; i < 60; i++) {
    const mid = (below + high) / 2;
    if (logUpperTail(mid) > target) below = mid;
    else high = mid;
  }
  if (logLowerTail(0) > target) return { low: -Infinity, high: high * b };
  let low = 0;
  let above = k;
  for (let i = 0; i < 60; i++) {
    const mid = (low + above) / 2;
    if (logLowerTail(mid) <= target) low = mid;
    else above = mid;
  }
  return { low: low * b, high: high * b };
}
