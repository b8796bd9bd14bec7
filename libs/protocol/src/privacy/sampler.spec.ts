import { seededRandom } from '../../../../test/support/randomness';
import { sampleBernoulliExp, sampleDiscreteGaussian, sampleDiscreteLaplace } from './sampler';

const DRAWS = 20_000;

function draws(n: number, sample: () => bigint): number[] {
  return Array.from({ length: n }, () => Number(sample()));
}

function moments(xs: readonly number[]): { mean: number; variance: number; meanAbs: number } {
  const n = xs.length;
  const mean = xs.reduce((a, b) => a + b, 0) / n;
  return { mean, variance: xs.reduce((a, b) => a + b * b, 0) / n, meanAbs: xs.reduce((a, b) => a + Math.abs(b), 0) / n };
}

/** Pearson's χ² of the draws against a pmf on [−m, m], with the two tails (|z| > m) pooled into one cell. */
function chiSquareAgainst(xs: readonly number[], pmf: (z: number) => number, m: number): { statistic: number; cells: number } {
  const observed = new Map<number, number>();
  let tail = 0;
  for (const x of xs) {
    if (Math.abs(x) > m) tail++;
    else observed.set(x, (observed.get(x) ?? 0) + 1);
  }
  let statistic = 0;
  let inside = 0;
  for (let z = -m; z <= m; z++) {
    const p = pmf(z);
    inside += p;
    const expected = p * xs.length;
    statistic += ((observed.get(z) ?? 0) - expected) ** 2 / expected;
  }
  const expectedTail = (1 - inside) * xs.length;
  statistic += (tail - expectedTail) ** 2 / expectedTail;
  return { statistic, cells: 2 * m + 2 };
}

/** The discrete Laplace pmf with scale b: (1 − q)/(1 + q) · q^|z|, q = e^(−1/b). */
function laplacePmf(b: number): (z: number) => number {
  const q = Math.exp(-1 / b);
  return (z) => ((1 - q) / (1 + q)) * q ** Math.abs(z);
}

/** The discrete Gaussian pmf and its exact variance, by summing far into the tails. */
function gaussian(sigma2: number): { pmf: (z: number) => number; variance: number; meanAbs: number } {
  const reach = Math.ceil(40 * Math.sqrt(sigma2)) + 40;
  let norm = 0;
  let second = 0;
  let first = 0;
  for (let z = -reach; z <= reach; z++) {
    const w = Math.exp(-(z * z) / (2 * sigma2));
    norm += w;
    second += z * z * w;
    first += Math.abs(z) * w;
  }
  return { pmf: (z) => Math.exp(-(z * z) / (2 * sigma2)) / norm, variance: second / norm, meanAbs: first / norm };
}

// χ² critical values at p = 0.001 for the degrees of freedom used below (cells − 1).
const CHI2_999: Record<number, number> = { 13: 34.53, 17: 40.79 };

describe('sampleDiscreteLaplace (CKS 2020 Algorithm 2)', () => {
  it('matches the discrete Laplace pmf for scale 3/2 (χ² over 20,000 seeded draws)', () => {
    const rng = seededRandom('dlap-chi2');
    const xs = draws(DRAWS, () => sampleDiscreteLaplace({ n: 3n, d: 2n }, rng));
    const { statistic, cells } = chiSquareAgainst(xs, laplacePmf(1.5), 6);
    expect(statistic).toBeLessThan(CHI2_999[cells - 1]!);
  });

  it.each([
    ['3/2', 3n, 2n],
    ['1000', 1000n, 1n],
    ['2500/3', 2500n, 3n],
  ])('has the variance 2q/(1 − q)² and mean |z| 2q/(1 − q²) of scale %s', (_name, n, d) => {
    const b = Number(n) / Number(d);
    const q = Math.exp(-1 / b);
    const rng = seededRandom(`dlap-moments-${b}`);
    const { mean, variance, meanAbs } = moments(draws(DRAWS, () => sampleDiscreteLaplace({ n, d }, rng)));
    const expectedVariance = (2 * q) / (1 - q) ** 2;
    // Relative standard errors over 20,000 draws: variance ≈ 1.6%, mean |z| ≈ 0.7%; the bounds are about 4 of them.
    expect(Math.abs(variance / expectedVariance - 1)).toBeLessThan(0.065);
    expect(Math.abs(meanAbs / ((2 * q) / (1 - q * q)) - 1)).toBeLessThan(0.03);
    expect(Math.abs(mean)).toBeLessThan((5 * Math.sqrt(expectedVariance)) / Math.sqrt(DRAWS));
  });

  it('keeps P[z]/P[z + 1] = e^(1/b) between neighbouring values (the privacy ratio), within sampling error', () => {
    const rng = seededRandom('dlap-ratio');
    const xs = draws(DRAWS, () => sampleDiscreteLaplace({ n: 2n, d: 1n }, rng));
    const at = (z: number): number => xs.filter((x) => x === z).length;
    for (const z of [0, 1, 2]) {
      // Both signs pooled: counts of ±z against ±(z + 1) (z = 0 has one value, so halve the others).
      const here = z === 0 ? 2 * at(0) : at(z) + at(-z);
      const next = at(z + 1) + at(-(z + 1));
      // The relative standard error of a count ratio here is at most about 2.7%.
      expect(Math.abs(here / next / Math.exp(1 / 2) - 1)).toBeLessThan(0.1);
    }
  });

  it('truncates by resampling: every draw is within the bound, distributed as the pmf conditioned on it', () => {
    const rng = seededRandom('dlap-truncate');
    const xs = draws(DRAWS, () => sampleDiscreteLaplace({ n: 5n, d: 1n }, rng, 1n));
    expect(xs.every((x) => Math.abs(x) <= 1)).toBe(true);
    const q = Math.exp(-1 / 5);
    const zeroShare = xs.filter((x) => x === 0).length / DRAWS;
    expect(Math.abs(zeroShare - 1 / (1 + 2 * q))).toBeLessThan(0.015);
    expect(draws(200, () => sampleDiscreteLaplace({ n: 5n, d: 1n }, rng, 0n)).every((x) => x === 0)).toBe(true);
  });

  it('is a function of the random bytes alone: the same seed gives the same draws, and Math.random is never called', () => {
    const spy = jest.spyOn(Math, 'random').mockImplementation(() => {
      throw new Error('Math.random called');
    });
    try {
      const a = seededRandom('dlap-determinism');
      const b = seededRandom('dlap-determinism');
      expect(draws(100, () => sampleDiscreteLaplace({ n: 7n, d: 3n }, a))).toEqual(draws(100, () => sampleDiscreteLaplace({ n: 7n, d: 3n }, b)));
    } finally {
      spy.mockRestore();
    }
  });

  it('rejects a scale that is not a positive rational, and a negative bound', () => {
    expect(() => sampleDiscreteLaplace({ n: 0n, d: 1n })).toThrow(RangeError);
    expect(() => sampleDiscreteLaplace({ n: 1n, d: 0n })).toThrow(RangeError);
    expect(() => sampleDiscreteLaplace({ n: -1n, d: 1n })).toThrow(RangeError);
    expect(() => sampleDiscreteLaplace({ n: 1n, d: 1n }, undefined, -1n)).toThrow(RangeError);
  });
});

describe('sampleDiscreteGaussian (CKS 2020 Algorithm 3)', () => {
  it('matches the discrete Gaussian pmf for σ² = 2 (χ² over 20,000 seeded draws)', () => {
    const rng = seededRandom('dgauss-chi2');
    const xs = draws(DRAWS, () => sampleDiscreteGaussian({ n: 2n, d: 1n }, rng));
    const { statistic, cells } = chiSquareAgainst(xs, gaussian(2).pmf, 4);
    expect(cells - 1).toBe(9);
    // χ² critical value for 9 degrees of freedom at p = 0.001.
    expect(statistic).toBeLessThan(27.88);
  });

  it('matches the discrete Gaussian pmf for σ² = 10/3 (a fractional σ², χ² with 17 degrees of freedom)', () => {
    const rng = seededRandom('dgauss-chi2-fraction');
    const xs = draws(DRAWS, () => sampleDiscreteGaussian({ n: 10n, d: 3n }, rng));
    const { statistic, cells } = chiSquareAgainst(xs, gaussian(10 / 3).pmf, 8);
    expect(statistic).toBeLessThan(CHI2_999[cells - 1]!);
  });

  it.each([
    ['25', 25n, 1n],
    ['10^4 / 7', 10_000n, 7n],
    ['10^12', 10n ** 12n, 1n],
  ])('has the variance (≈ σ²) and mean |z| (≈ σ√(2/π)) of N_Z(0, %s)', (_name, n, d) => {
    const sigma2 = Number(n) / Number(d);
    const exact = sigma2 < 1e6 ? gaussian(sigma2) : { variance: sigma2, meanAbs: Math.sqrt((2 * sigma2) / Math.PI) };
    const rng = seededRandom(`dgauss-moments-${sigma2}`);
    const { mean, variance, meanAbs } = moments(draws(DRAWS, () => sampleDiscreteGaussian({ n, d }, rng)));
    // Relative standard errors: variance √(2/20000) = 1%, mean |z| ≈ 0.53%; the bounds are about 4.5 of them.
    expect(Math.abs(variance / exact.variance - 1)).toBeLessThan(0.045);
    expect(Math.abs(meanAbs / exact.meanAbs - 1)).toBeLessThan(0.025);
    expect(Math.abs(mean)).toBeLessThan((5 * Math.sqrt(sigma2)) / Math.sqrt(DRAWS));
  });

  it('truncates by resampling within the bound', () => {
    const rng = seededRandom('dgauss-truncate');
    expect(draws(2000, () => sampleDiscreteGaussian({ n: 100n, d: 1n }, rng, 3n)).every((x) => Math.abs(x) <= 3)).toBe(true);
  });

  it('rejects a σ² that is not a positive rational', () => {
    expect(() => sampleDiscreteGaussian({ n: 0n, d: 1n })).toThrow(RangeError);
    expect(() => sampleDiscreteGaussian({ n: 1n, d: -2n })).toThrow(RangeError);
  });
});

describe('sampleBernoulliExp (CKS 2020 Algorithm 1)', () => {
  it('is always true for γ = 0', () => {
    const rng = seededRandom('bexp-zero');
    expect(Array.from({ length: 200 }, () => sampleBernoulliExp({ n: 0n, d: 5n }, rng)).every(Boolean)).toBe(true);
  });

  it.each([
    [1n, 3n],
    [1n, 1n],
    [5n, 2n],
    [7n, 1n],
  ])('comes up true with probability exp(−%i/%i)', (n, d) => {
    const rng = seededRandom(`bexp-${n}-${d}`);
    const p = Math.exp(-Number(n) / Number(d));
    const hits = Array.from({ length: DRAWS }, () => sampleBernoulliExp({ n, d }, rng)).filter(Boolean).length;
    expect(Math.abs(hits / DRAWS - p)).toBeLessThan(5 * Math.sqrt((p * (1 - p)) / DRAWS) + 1e-4);
  });

  it('rejects a negative γ', () => {
    expect(() => sampleBernoulliExp({ n: -1n, d: 1n })).toThrow(RangeError);
  });
});
