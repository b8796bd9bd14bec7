import fc from 'fast-check';
import { discreteGaussianCdf, discreteLaplaceCdf, dkwRadius, ksDistance } from '../../../../test/support/distributions';
import { seededRandom } from '../../../../test/support/randomness';
import { aggregateLocal } from '../query/aggregate';
import type { DataRecord } from '../query/csv';
import { compileQuery, deriveResults, termKey, type CompiledQuery, type StatResult } from '../query/query';
import { parseStudySchema } from '../query/schema';
import { clampNoisyTotals, dpNoise, noiseBound, noiseParameters, termSensitivities } from './dp';
import type { DpSettings } from './settings';

const schema = parseStudySchema({
  name: 'dp',
  fields: [
    { name: 'x', type: 'number', min: -3, max: 2, decimals: 1 },
    { name: 'y', type: 'number', min: 0, max: 5, decimals: 0 },
    { name: 'zero', type: 'number', min: 0, max: 0, decimals: 0 },
    { name: 'c', type: 'category', values: ['a', 'b', 'c'] },
  ],
});

// Two overlapping histograms of x share their overflow bin [2, ∞); every other value is in one bin of each.
const everything = compileQuery(schema, {
  select: [
    { stat: 'count', field: 'c' },
    { stat: 'variance', field: 'x' },
    { stat: 'correlation', x: 'x', y: 'y' },
    { stat: 'histogram', field: 'x', edges: [-3, 0, 2] },
    { stat: 'histogram', field: 'x', bins: { min: -2, max: 2, width: 1 } },
    { stat: 'sum', field: 'zero' },
  ],
  groupBy: 'c',
});

const ratio = (r: { n: bigint; d: bigint }): number => Number(r.n) / Number(r.d);

/** ρ of Bun–Steinke Proposition 1.3 in doubles, for comparison. */
const rhoOf = (epsilon: number, delta: number): number => (epsilon / (Math.sqrt(Math.log(1 / delta) + epsilon) + Math.sqrt(Math.log(1 / delta)))) ** 2;

describe('termSensitivities', () => {
  it('is what one record can add to each term kind, in fixed-point units (x: |−3.0| → 30; y: 5)', () => {
    expect(termSensitivities(everything)).toEqual([
      1n, // count(c)
      1n, // count(x)
      30n, // sum(x): max(|min|, |max|)·10^decimals
      900n, // sumsq(x): that squared
      1n, // count(x, y)
      30n, // sum(x | y)
      5n, // sum(y | x)
      900n, // sumsq(x | y)
      25n, // sumsq(y | x)
      150n, // sumxy(x, y): 30 · 5
      1n, 1n, 1n, 1n, // the first histogram's bins
      1n, 1n, 1n, 1n, 1n, // the second's (its overflow is the first's)
      1n, // count(zero)
      0n, // sum(zero): a field with bounds [0, 0] cannot change it
    ]);
    expect(everything.terms.map((t) => t.kind)).toEqual([
      'count', 'count', 'sum', 'sumOfSquares', 'count', 'sum', 'sum', 'sumOfSquares', 'sumOfSquares', 'sumOfProducts',
      'bin', 'bin', 'bin', 'bin', 'bin', 'bin', 'bin', 'bin', 'bin', 'count', 'sum',
    ]);
  });
});

describe('noiseParameters', () => {
  it('laplace: splits ε equally over the 12 families that can change, b = 12·Δ₁/ε, the bins of x together Δ₁ = 2', () => {
    const params = noiseParameters(everything, { mechanism: 'laplace', epsilon: 0.5 });
    const scales = Object.fromEntries(params.map((p) => [p.term, ratio(p.scale)]));
    expect(scales['count(c)']).toBe(24);
    expect(scales['sum(x)']).toBe(720);
    expect(scales['sumsq(x)']).toBe(21_600);
    expect(scales['sum(y | x)']).toBe(120);
    expect(scales['sumxy(x, y)']).toBe(3600);
    expect(scales['bin(x, [2, ∞))']).toBe(48);
    expect(scales['sum(zero)']).toBe(0);
    const bins = params.filter((p) => p.family === 'bins(x)');
    expect(bins).toHaveLength(9);
    expect(new Set(bins.map((p) => p.familySensitivity))).toEqual(new Set([2n]));
    expect(new Set(params.map((p) => p.family)).size).toBe(13);
  });

  it('laplace: uses the exact decimal ε (0.1 is 1/10, not the double just above it)', () => {
    const only = compileQuery(schema, { select: [{ stat: 'count', field: 'y' }] });
    expect(noiseParameters(only, { mechanism: 'laplace', epsilon: 0.1 })[0]!.scale).toEqual({ n: 10n, d: 1n });
    expect(noiseParameters(only, { mechanism: 'laplace', epsilon: 3 })[0]!.scale).toEqual({ n: 1n, d: 3n });
  });

  it('gaussian: σ² = F·Δ₂²/(2ρ) with ρ from (ε, δ) by Bun–Steinke, rounded to the safe side', () => {
    const dp: DpSettings = { mechanism: 'gaussian', epsilon: 1, delta: 1e-6 };
    const rho = rhoOf(1, 1e-6);
    for (const p of noiseParameters(everything, dp)) {
      const expected = (12 * Number(p.familySensitivity)) / (2 * rho);
      if (expected === 0) {
        expect(p.scale.n).toBe(0n);
        continue;
      }
      const got = ratio(p.scale);
      expect(got).toBeGreaterThanOrEqual(expected);
      expect(got / expected - 1).toBeLessThan(1e-8);
    }
    // Squared L2 sensitivities: Δ² for one term, the overlap (2) for the bins of x.
    const params = Object.fromEntries(noiseParameters(everything, dp).map((p) => [p.term, p.familySensitivity]));
    expect(params['sumxy(x, y)']).toBe(22_500n);
    expect(params['bin(x, [0, 1))']).toBe(2n);
  });

  it('gaussian: holds for ε above 1 too (the zCDP conversion has no ε < 1 condition)', () => {
    const only = compileQuery(schema, { select: [{ stat: 'count', field: 'y' }] });
    const sigma2 = ratio(noiseParameters(only, { mechanism: 'gaussian', epsilon: 4, delta: 1e-9 })[0]!.scale);
    const rho = rhoOf(4, 1e-9);
    expect(sigma2 / (1 / (2 * rho)) - 1).toBeLessThan(1e-8);
    // ρ + 2√(ρ ln(1/δ)) = ε at that ρ.
    expect(rho + 2 * Math.sqrt(rho * Math.log(1e9))).toBeCloseTo(4, 12);
  });

  it('rejects malformed settings', () => {
    const only = compileQuery(schema, { select: [{ stat: 'count', field: 'y' }] });
    expect(() => noiseParameters(only, { mechanism: 'laplace', epsilon: 0 })).toThrow(RangeError);
    expect(() => noiseParameters(only, { mechanism: 'laplace', epsilon: Number.NaN })).toThrow(RangeError);
    expect(() => noiseParameters(only, { mechanism: 'laplace', epsilon: 1, delta: 1e-6 })).toThrow(RangeError);
    expect(() => noiseParameters(only, { mechanism: 'gaussian', epsilon: 1 })).toThrow(RangeError);
    expect(() => noiseParameters(only, { mechanism: 'gaussian', epsilon: 1, delta: 1 })).toThrow(RangeError);
    expect(() => noiseParameters(only, { mechanism: 'cauchy' as never, epsilon: 1 })).toThrow(RangeError);
  });
});

describe('noiseBound', () => {
  const LOG_2_64 = 64 * Math.LN2;

  it('laplace: one bound per coordinate, group-major; a draw exceeds it with probability < 2^−64, and it is not much more', () => {
    const dp: DpSettings = { mechanism: 'laplace', epsilon: 0.5 };
    const bounds = noiseBound(everything, dp);
    expect(bounds).toHaveLength(everything.vectorLength);
    const perTerm = noiseParameters(everything, dp);
    expect(bounds).toEqual([...perTerm, ...perTerm, ...perTerm].map((p) => p.bound));
    for (const p of perTerm) {
      const b = ratio(p.scale);
      if (b === 0) {
        expect(p.bound).toBe(0n);
        continue;
      }
      const B = Number(p.bound);
      // P[|Z| > B] = 2q^(B+1)/(1 + q), q = e^(−1/b), in logs.
      const logTail = Math.LN2 - (B + 1) / b - Math.log1p(Math.exp(-1 / b));
      expect(logTail).toBeLessThan(-LOG_2_64);
      expect(B).toBeLessThanOrEqual(65 * Math.LN2 * b + 1);
    }
  });

  it('gaussian: the exact tail beyond the bound is below 2^−64 (summed pmf for small σ², subgaussian bound for all)', () => {
    const only = compileQuery(schema, { select: [{ stat: 'count', field: 'y' }, { stat: 'sum', field: 'x' }] });
    for (const epsilon of [0.1, 1, 8]) {
      for (const p of noiseParameters(only, { mechanism: 'gaussian', epsilon, delta: 1e-6 })) {
        const sigma2 = ratio(p.scale);
        const B = Number(p.bound);
        expect(Math.log(2) - (B + 1) ** 2 / (2 * sigma2)).toBeLessThan(-LOG_2_64);
        expect(B).toBeLessThanOrEqual(Math.sqrt(130 * Math.LN2 * sigma2));
        if (sigma2 < 1e5) {
          let norm = 0;
          let tail = 0;
          for (let z = 0; z <= B + 40 * Math.sqrt(sigma2) + 40; z++) {
            const w = Math.exp(-(z * z) / (2 * sigma2)) * (z === 0 ? 1 : 2);
            norm += w;
            if (z > B) tail += w;
          }
          expect(tail / norm).toBeLessThan(2 ** -64);
        }
      }
    }
  });
});

describe('dpNoise', () => {
  const meanY = compileQuery(schema, { select: [{ stat: 'mean', field: 'y' }], groupBy: 'c' });
  // Terms count(y) (Δ 1) and sum(y) (Δ 5): two families; three groups.

  /** The noise of each term over `rounds` vectors, pooled over the groups. */
  function pooled(compiled: CompiledQuery, dp: DpSettings, rounds: number, seed: string): number[][] {
    const rng = seededRandom(seed);
    const perTerm: number[][] = compiled.terms.map(() => []);
    for (let r = 0; r < rounds; r++) {
      dpNoise(compiled, dp, rng).forEach((z, i) => perTerm[i % compiled.terms.length]!.push(Number(z)));
    }
    return perTerm;
  }

  const variance = (xs: readonly number[]): number => xs.reduce((a, b) => a + b * b, 0) / xs.length;

  it('has the vector length, zero where nothing can change, and stays within the bound', () => {
    const rng = seededRandom('dpnoise-shape');
    const dp: DpSettings = { mechanism: 'laplace', epsilon: 1 };
    const bounds = noiseBound(everything, dp);
    const zeroAt = everything.terms.findIndex((t) => t.kind === 'sum' && t.field === 'zero');
    for (let r = 0; r < 20; r++) {
      const noise = dpNoise(everything, dp, rng);
      expect(noise).toHaveLength(everything.vectorLength);
      noise.forEach((z, i) => expect(z <= bounds[i]! && z >= -bounds[i]!).toBe(true));
      for (let g = 0; g < 3; g++) expect(noise[g * everything.terms.length + zeroAt]).toBe(0n);
    }
  });

  it('laplace: each term has the discrete Laplace variance of its scale (ε = 2: b = 1 for the count, 5 for the sum)', () => {
    const [counts, sums] = pooled(meanY, { mechanism: 'laplace', epsilon: 2 }, 4000, 'dpnoise-laplace');
    for (const [xs, b] of [
      [counts!, 1],
      [sums!, 5],
    ] as const) {
      const q = Math.exp(-1 / b);
      expect(xs).toHaveLength(12_000);
      // Relative standard error of the variance over 12,000 draws ≈ 2%.
      expect(Math.abs(variance(xs) / ((2 * q) / (1 - q) ** 2) - 1)).toBeLessThan(0.08);
    }
  });

  it('gaussian: each term has variance σ² (ε = 1, δ = 1e−5)', () => {
    const dp: DpSettings = { mechanism: 'gaussian', epsilon: 1, delta: 1e-5 };
    const [counts, sums] = pooled(meanY, dp, 4000, 'dpnoise-gaussian');
    const [countNoise, sumNoise] = noiseParameters(meanY, dp);
    // Relative standard error √(2/12000) ≈ 1.3%.
    expect(Math.abs(variance(counts!) / ratio(countNoise!.scale) - 1)).toBeLessThan(0.06);
    expect(Math.abs(variance(sums!) / ratio(sumNoise!.scale) - 1)).toBeLessThan(0.06);
    expect(ratio(sumNoise!.scale) / ratio(countNoise!.scale)).toBeCloseTo(25, 9);
  });

  // The two tests below compare each term's pooled noise with the distribution dp.ts promises, at a scale worked
  // out here from ε, δ and the sensitivities (not read from noiseParameters), by Kolmogorov–Smirnov. Each test makes
  // two comparisons of 6,000 draws, each failing correct noise with probability ≤ 5·10⁻¹⁰ (DKW): a test fails
  // correct noise for fewer than 1 seed in 10⁹. Zero noise is at distance ≥ 0.43 from each of these distributions, a
  // Laplace scale off by 2× at about 0.12 and a σ² off by 2× at about 0.08, against the 0.043 allowed.
  const KS_ROUNDS = 2000;
  const KS_ALPHA = 5e-10;

  it('laplace: each term is discrete Laplace of scale F·Δ/ε (ε = 0.5, two families: b = 4 for the count, 20 for the sum), by Kolmogorov–Smirnov', () => {
    const [counts, sums] = pooled(meanY, { mechanism: 'laplace', epsilon: 0.5 }, KS_ROUNDS, 'dpnoise-ks-laplace');
    const allowed = dkwRadius(counts!.length, KS_ALPHA);
    expect(ksDistance(counts!, discreteLaplaceCdf((2 * 1) / 0.5))).toBeLessThan(allowed);
    expect(ksDistance(sums!, discreteLaplaceCdf((2 * 5) / 0.5))).toBeLessThan(allowed);
  });

  it('gaussian: each term is discrete Gaussian of variance F·Δ²/(2ρ) (ε = 1, δ = 10⁻⁵, ρ by Bun–Steinke), by Kolmogorov–Smirnov', () => {
    const [counts, sums] = pooled(meanY, { mechanism: 'gaussian', epsilon: 1, delta: 1e-5 }, KS_ROUNDS, 'dpnoise-ks-gaussian');
    const rho = rhoOf(1, 1e-5);
    const allowed = dkwRadius(counts!.length, KS_ALPHA);
    expect(ksDistance(counts!, discreteGaussianCdf((2 * 1 ** 2) / (2 * rho)))).toBeLessThan(allowed);
    expect(ksDistance(sums!, discreteGaussianCdf((2 * 5 ** 2) / (2 * rho)))).toBeLessThan(allowed);
  });

  it('is reproducible from a seeded source and differs between seeds', () => {
    const dp: DpSettings = { mechanism: 'gaussian', epsilon: 1, delta: 1e-6 };
    expect(dpNoise(everything, dp, seededRandom('same'))).toEqual(dpNoise(everything, dp, seededRandom('same')));
    expect(dpNoise(everything, dp, seededRandom('one'))).not.toEqual(dpNoise(everything, dp, seededRandom('other')));
  });
});

describe('clampNoisyTotals', () => {
  const query = compileQuery(schema, {
    select: [
      { stat: 'mean', field: 'x' },
      { stat: 'stddev', field: 'x' },
      { stat: 'correlation', x: 'x', y: 'y' },
      { stat: 'regression', x: 'x', y: 'y' },
      { stat: 'histogram', field: 'y', edges: [0, 2, 4] },
    ],
    groupBy: 'c',
  });
  const records: DataRecord[] = [
    [-30n, 1n, 0n, 'a'],
    [5n, 4n, 0n, 'a'],
    [20n, 5n, 0n, 'a'],
    [0n, 0n, 0n, 'b'],
    [-12n, null, 0n, 'b'],
    [7n, 3n, 0n, 'b'],
    [-1n, 2n, 0n, 'b'],
  ];

  it('leaves totals that real data can produce unchanged', async () => {
    const { vector } = await aggregateLocal(query, records);
    expect(clampNoisyTotals(query, vector)).toEqual(vector);
  });

  it('makes counts non-negative, keeps sums within n·bounds and spreads non-negative', () => {
    const width = query.terms.length;
    const at = (key: string): number => query.terms.findIndex((t) => termKey(t) === key);
    const totals = new Array<bigint>(query.vectorLength).fill(0n);
    const count = at('count(x)');
    const sum = at('sum(x)');
    const squares = at('sumsq(x)');
    totals[count] = -3n;
    totals[sum] = 40n;
    totals[width + count] = 2n;
    totals[width + sum] = 100n; // above 2 · 20
    totals[width + squares] = 5n; // far below (Σx)²/n
    const clamped = clampNoisyTotals(query, totals);
    expect(clamped[count]).toBe(0n);
    expect(clamped[sum]).toBe(0n);
    expect(clamped[width + sum]).toBe(40n);
    expect(clamped[width + squares]).toBe(800n);
    expect(() => deriveResults(query, clamped)).not.toThrow();
  });

  it('rejects a vector of the wrong length', () => {
    expect(() => clampNoisyTotals(query, [1n])).toThrow(RangeError);
  });

  it('makes any noised totals derivable: no refusal, |r| ≤ 1, r² ≤ 1, variances ≥ 0, means within bounds', async () => {
    const { vector } = await aggregateLocal(query, records);
    const noise = fc.array(fc.bigInt({ min: -2000n, max: 2000n }), { minLength: vector.length, maxLength: vector.length });
    const scaled = fc.tuple(noise, fc.constantFrom(1n, 10n, 1000n));
    fc.assert(
      fc.property(scaled, ([z, scale]) => {
        const noisy = vector.map((v, i) => v + z[i]! * (query.terms[i % query.terms.length]!.kind === 'count' ? 1n : scale));
        const rows: StatResult[] = deriveResults(query, clampNoisyTotals(query, noisy));
        for (const row of rows) {
          if (row.stat === 'mean' && row.value !== null) expect(row.value >= -3 && row.value <= 2).toBe(true);
          if (row.stat === 'stddev' && row.value !== null) expect(row.value).toBeGreaterThanOrEqual(0);
          if (row.stat === 'correlation' && row.value !== null) expect(Math.abs(row.value)).toBeLessThanOrEqual(1);
          if (row.stat === 'regression' && row.value?.r2 != null) expect(row.value.r2).toBeLessThanOrEqual(1);
          if (row.stat === 'histogram') expect(row.value.bins.every((b) => b.count >= 0)).toBe(true);
        }
      }),
      { numRuns: 300 },
    );
  });
});
