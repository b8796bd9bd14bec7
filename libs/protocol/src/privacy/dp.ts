import { secureRandom, type RandomSource } from '@confide/crypto';
import { ceilDiv, decimalOf, floorDiv, integerSqrt, type Rational } from '../exact';
import { termKey, termMagnitudes, type AggregateTerm, type CompiledQuery } from '../query/query';
import { fieldIndex, type NumberField, type StudySchema } from '../query/schema';
import { sampleDiscreteGaussian, sampleDiscreteLaplace } from './sampler';
import type { DpSettings } from './settings';

/**
 * Differential privacy on the aggregate vector (DESIGN.md "Trust model": output privacy). Noise is added to
 * the exact integer totals, per coordinate and in the fields' fixed-point units, before any statistic is
 * derived; everything derived afterwards (statistics, suppression) is post-processing and keeps the guarantee.
 *
 * Neighbouring data sets differ by adding or removing one record (anywhere, at any participant). The
 * guarantee is per record: a person with several records is protected as several records.
 *
 * Sensitivity. One record changes each term of its own group by at most what one record can contribute,
 * from the study's bounds (values outside them are rejected or clamped before aggregation): count 1,
 * Σx max(|min|, |max|)·10^decimals, Σx² that squared, Σxy the product of the two, and 1 for each bin it
 * falls in. The bins of one field form one family: a record falls in at most as many of them as there are
 * overlapping histograms of that field (1 for a single histogram), which is their L1 sensitivity and their
 * squared L2 sensitivity. Every other term is its own family. Families with zero sensitivity (a field whose
 * bounds are [0, 0]) need no noise and take no share.
 *
 * Composition. A record is in at most one group, so groups compose in parallel (each gets the whole ε), and
 * within a group the F families compose sequentially, each with an equal share:
 * - laplace (pure ε-DP): family f gets ε/F; each of its coordinates gets discrete Laplace noise of scale
 *   b_f = F·Δ₁_f/ε (the geometric mechanism: Δ₁/b-DP, Ghosh–Roughgarden–Sundararajan 2009).
 * - gaussian ((ε, δ)-DP via zero-concentrated DP): the whole query gets ρ with
 *   ρ + 2√(ρ·ln(1/δ)) = ε, i.e. ρ = ε² / (√(ln(1/δ) + ε) + √ln(1/δ))² (Bun–Steinke 2016, Proposition 1.3),
 *   family f gets ρ/F, and each of its coordinates discrete Gaussian noise with σ_f² = F·Δ₂_f²/(2ρ)
 *   (Δ²/(2σ²)-zCDP for the discrete Gaussian, CKS 2020 §2; zCDP adds up under composition). This holds
 *   for every ε > 0 and 0 < δ < 1, unlike the classic σ = Δ√(2 ln(1.25/δ))/ε, which needs ε < 1 and is
 *   for continuous noise.
 *   ρ is computed with doubles from the public ε and δ (no data is involved) and rounded down, with a
 *   2^−30 relative margin, to an exact dyadic rational, so σ² is never smaller than the formula asks.
 *
 * Truncation. Noise is resampled until |noise| ≤ B ({@link noiseBound}), B chosen so a draw lands outside
 * with probability < 2^−64. Conditioning on that event moves every output probability by a factor of at
 * most 1/(1 − η), with η < vectorLength·2^−64 the chance any coordinate needed a redraw: the mechanism is
 * (ε + 2η, δ + 3e^ε·η)-DP instead of (ε, δ), a difference far below anything the budget can express.
 */

/** A rational upper bound on ln 2 = 0.69314718055994530941723212…, for the tail bounds. */
const LN2_UP: Rational = { n: 6931471805599453094173n, d: 10n ** 22n };
/** −log2 of the per-coordinate probability that noise exceeds its bound, less one (for the two tails). */
const TAIL_BITS = 65n;

function gcd(a: bigint, b: bigint): bigint {
  let x = a < 0n ? -a : a;
  let y = b < 0n ? -b : b;
  while (y !== 0n) [x, y] = [y, x % y];
  return x;
}

function reduced(n: bigint, d: bigint): Rational {
  const g = gcd(n, d);
  return g <= 1n ? { n, d } : { n: n / g, d: d / g };
}

/** A positive finite double as the exact dyadic rational it is. */
function dyadicOf(x: number): Rational {
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, x);
  const bits = view.getBigUint64(0);
  const exponent = Number((bits >> 52n) & 0x7ffn);
  const fraction = bits & ((1n << 52n) - 1n);
  const mantissa = exponent === 0 ? fraction : fraction | (1n << 52n);
  const e = (exponent === 0 ? 1 : exponent) - 1075;
  return e >= 0 ? { n: mantissa << BigInt(e), d: 1n } : { n: mantissa, d: 1n << BigInt(-e) };
}

/**
 * The zCDP parameter ρ that gives (ε, δ)-DP by Bun–Steinke 2016 Proposition 1.3, as an exact rational no
 * larger than the true value. Computed as ε²/(√(L + ε) + √L)² (L = ln(1/δ)), which has no cancellation; the
 * double's error (a few ulps) is covered by the 2^−30 margin.
 */
function zcdpRho(epsilon: number, delta: number): Rational {
  const log = -Math.log(delta);
  const rho = (epsilon / (Math.sqrt(log + epsilon) + Math.sqrt(log))) ** 2;
  if (!(rho >= 2 ** -1000) || !Number.isFinite(rho)) throw new RangeError(`dp: epsilon ${epsilon} and delta ${delta} give no usable noise scale`);
  const exact = dyadicOf(rho);
  return reduced(exact.n - (exact.n >> 30n) - 1n, exact.d);
}

function checkDp(dp: DpSettings): void {
  if (dp.mechanism !== 'laplace' && dp.mechanism !== 'gaussian') throw new RangeError(`dp.mechanism must be "laplace" or "gaussian", got ${JSON.stringify(dp.mechanism)}`);
  if (typeof dp.epsilon !== 'number' || !Number.isFinite(dp.epsilon) || dp.epsilon <= 0) throw new RangeError(`dp.epsilon must be a finite number > 0, got ${String(dp.epsilon)}`);
  if (dp.mechanism === 'gaussian') {
    if (typeof dp.delta !== 'number' || !(dp.delta > 0 && dp.delta < 1)) throw new RangeError(`dp.delta must be a number in (0, 1) for the gaussian mechanism, got ${String(dp.delta)}`);
  } else if (dp.delta !== undefined) {
    throw new RangeError('dp.delta: the laplace mechanism takes no delta');
  }
}

/** The family of a term: its own key, or `bins(field)` for every bin term of that field. */
function familyKey(term: AggregateTerm): string {
  return term.kind === 'bin' ? `bins(${term.field})` : termKey(term);
}

/** The most of the given half-open intervals [from, to) (null: unbounded) that one value can be in, by a sweep over their ends. */
function maxOverlap(intervals: readonly { readonly from: bigint | null; readonly to: bigint | null }[]): bigint {
  const change = new Map<bigint, number>();
  let current = 0;
  for (const { from, to } of intervals) {
    if (from === null) current++;
    else change.set(from, (change.get(from) ?? 0) + 1);
    if (to !== null) change.set(to, (change.get(to) ?? 0) - 1);
  }
  let best = current;
  for (const at of [...change.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))) {
    current += change.get(at)!;
    if (current > best) best = current;
  }
  return BigInt(best);
}

/**
 * The largest change one record can make to each term of the aggregate vector (in the term's fixed-point
 * units, the same for every group), from the schema bounds: count 1, Σx max(|min|, |max|)·10^decimals, Σx²
 * its square, Σxy the product of both fields', bin 1. It is the overflow guard's per-term magnitude over one
 * record ({@link termMagnitudes} with one record), so a new term kind gets its sensitivity from the TERMS table.
 *
 * @param compiled the compiled query
 * @returns one sensitivity per term, in `compiled.terms` order
 */
export function termSensitivities(compiled: CompiledQuery): bigint[] {
  return termMagnitudes(compiled, 1n).slice(0, compiled.terms.length);
}

/** How one term is noised: its family, its sensitivity, the noise distribution's scale and the truncation bound. */
export interface TermNoise {
  /** The term's key (`sum(glu)`). */
  readonly term: string;
  /** The family that shares one ε (or ρ) share: the term's key, or `bins(field)` for all bins of a field. */
  readonly family: string;
  /** The family's L1 sensitivity (laplace) or squared L2 sensitivity (gaussian) per record. */
  readonly familySensitivity: bigint;
  /** The term's own per-record sensitivity ({@link termSensitivities}). */
  readonly sensitivity: bigint;
  /** laplace: b in P[z] ∝ exp(−|z|/b); gaussian: σ². 0/1 when the family cannot change and gets no noise. */
  readonly scale: Rational;
  /** The truncation bound B: |noise| ≤ B always; an untruncated draw exceeds it with probability < 2^−64. */
  readonly bound: bigint;
}

/**
 * The noise calibration of every term (module comment: sensitivities, the equal split of ε (laplace) or ρ
 * (gaussian) over a group's F families, the scale, the bound). The same for every group.
 *
 * Bounds: laplace, P[|Z| > B] = 2q^(B+1)/(1 + q) < 2e^(−(B+1)/b) with q = e^(−1/b), below 2^−64 for
 * B = ⌈65·ln2·b⌉. Gaussian, the discrete Gaussian is subgaussian with variance proxy σ² (CKS 2020 §2,
 * utility), so P[Z ≥ m] ≤ e^(−m²/2σ²) by Chernoff and P[|Z| > B] ≤ 2e^(−(B+1)²/2σ²), below 2^−64 for
 * B = ⌊√(130·ln2·σ²)⌋. Both use a rational upper bound on ln 2, so B is never too small.
 *
 * @param compiled the compiled query
 * @param dp the query's DP settings (`PrivacySettings.dp`)
 * @returns one entry per term, in `compiled.terms` order
 * @throws RangeError for malformed settings (ε ≤ 0, gaussian without 0 < δ < 1, laplace with δ)
 */
export function noiseParameters(compiled: CompiledQuery, dp: DpSettings): TermNoise[] {
  checkDp(dp);
  const sensitivities = termSensitivities(compiled);
  const gaussian = dp.mechanism === 'gaussian';

  const members = new Map<string, number[]>();
  compiled.terms.forEach((term, t) => {
    const key = familyKey(term);
    const list = members.get(key);
    if (list === undefined) members.set(key, [t]);
    else list.push(t);
  });
  const familySensitivity = new Map<string, bigint>();
  for (const [key, terms] of members) {
    const first = compiled.terms[terms[0]!]!;
    if (first.kind === 'bin') {
      // A record is in `overlap` bins of this field, each +1: L1 and squared L2 are both the overlap.
      familySensitivity.set(key, maxOverlap(terms.map((t) => compiled.terms[t] as AggregateTerm<'bin'>)));
    } else {
      const delta = sensitivities[terms[0]!]!;
      familySensitivity.set(key, gaussian ? delta * delta : delta);
    }
  }
  const shares = BigInt([...familySensitivity.values()].filter((s) => s > 0n).length);

  let perShare: (sensitivity: bigint) => Rational;
  if (gaussian) {
    // σ² = F·Δ₂²/(2ρ).
    const rho = zcdpRho(dp.epsilon, dp.delta!);
    perShare = (s) => reduced(shares * s * rho.d, 2n * rho.n);
  } else {
    // b = F·Δ₁/ε with ε the exact decimal written.
    const epsilon = decimalOf(dp.epsilon);
    perShare = (s) => reduced(shares * s * epsilon.d, epsilon.n);
  }
  const bound = (scale: Rational): bigint => {
    if (scale.n === 0n) return 0n;
    if (gaussian) return integerSqrt((2n * TAIL_BITS * LN2_UP.n * scale.n) / (LN2_UP.d * scale.d));
    return ceilDiv(TAIL_BITS * LN2_UP.n * scale.n, LN2_UP.d * scale.d);
  };

  return compiled.terms.map((term, t) => {
    const family = familyKey(term);
    const fs = familySensitivity.get(family)!;
    const scale = fs === 0n ? { n: 0n, d: 1n } : perShare(fs);
    return Object.freeze({ term: termKey(term), family, familySensitivity: fs, sensitivity: sensitivities[t]!, scale: Object.freeze(scale), bound: bound(scale) });
  });
}

/**
 * Per coordinate of the aggregate vector, the bound B with |noise| ≤ B for every draw of {@link dpNoise}
 * (draws beyond it are resampled; an untruncated draw exceeds it with probability < 2^−64). Group-major like
 * the vector. Add it to `termMagnitudes` to size a field element or a Paillier plaintext slot for a noised
 * total.
 *
 * @param compiled the compiled query
 * @param dp the query's DP settings
 * @returns length `compiled.vectorLength`
 * @throws RangeError for malformed settings
 */
export function noiseBound(compiled: CompiledQuery, dp: DpSettings): bigint[] {
  const perTerm = noiseParameters(compiled, dp).map((p) => p.bound);
  return compiled.groups.flatMap(() => perTerm);
}

/**
 * Draws the DP noise vector for a query (module comment: calibration, composition, truncation): per
 * coordinate an independent discrete Laplace or discrete Gaussian integer (CKS 2020 Algorithms 2 and 3, exact,
 * sampler.ts) truncated to {@link noiseBound}. Add it to the exact totals before deriving statistics, then
 * use {@link clampNoisyTotals}.
 *
 * @param compiled the compiled query
 * @param dp the query's DP settings
 * @param rng uniform bytes; the OS CSPRNG unless a test injects a seeded source
 * @returns length `compiled.vectorLength`, group-major like the aggregate vector
 * @throws RangeError for malformed settings
 */
export function dpNoise(compiled: CompiledQuery, dp: DpSettings, rng: RandomSource = secureRandom): bigint[] {
  const parameters = noiseParameters(compiled, dp);
  const sample = dp.mechanism === 'gaussian' ? sampleDiscreteGaussian : sampleDiscreteLaplace;
  const out: bigint[] = [];
  for (let g = 0; g < compiled.groups.length; g++) {
    for (const p of parameters) out.push(p.scale.n === 0n ? 0n : sample(p.scale, rng, p.bound));
  }
  return out;
}

function numberField(schema: StudySchema, name: string): NumberField | undefined {
  const f = schema.fields[fieldIndex(schema, name) ?? -1];
  return f?.type === 'number' ? f : undefined;
}

function clamp(x: bigint, lo: bigint, hi: bigint): bigint {
  return x < lo ? lo : x > hi ? hi : x;
}

function absMax(f: NumberField): bigint {
  const lo = f.bounds.min < 0n ? -f.bounds.min : f.bounds.min;
  const hi = f.bounds.max < 0n ? -f.bounds.max : f.bounds.max;
  return lo > hi ? lo : hi;
}

/**
 * Post-processing of noised totals so the statistics derived from them are well formed (post-processing
 * keeps DP: it reads only the noised totals and the public bounds). Per group:
 * - counts and bins are made ≥ 0 (deriveResults refuses a negative count);
 * - Σx is clamped to [n·min, n·max] for its count n (so a mean stays within the field's bounds);
 * - Σx² to [⌈(Σx)²/n⌉, n·max(|min|,|max|)²] (so a variance is ≥ 0 and a standard deviation exists);
 * - Σxy so that (nΣxy − ΣxΣy)² ≤ (nΣx² − (Σx)²)(nΣy² − (Σy)²) (so |r| ≤ 1); when no integer satisfies
 *   that (spreads below one unit), to the integer nearest ΣxΣy/n, raising the pair's Σx² just enough.
 * A term whose partner terms (its count, its Σx, …) are not in the query is left as it is.
 *
 * @param compiled the compiled query
 * @param totals exact totals plus noise, length `compiled.vectorLength`
 * @returns a new vector of the same length
 * @throws RangeError when `totals` has the wrong length
 */
export function clampNoisyTotals(compiled: CompiledQuery, totals: readonly bigint[]): bigint[] {
  if (totals.length !== compiled.vectorLength) throw new RangeError(`expected ${compiled.vectorLength} totals, got ${totals.length}`);
  const { schema, terms } = compiled;
  const width = terms.length;
  const index = new Map(terms.map((term, t) => [termKey(term), t]));
  const find = (term: AggregateTerm): number | undefined => index.get(termKey(term));
  const out = [...totals];

  for (let g = 0; g < compiled.groups.length; g++) {
    const base = g * width;
    const get = (t: number): bigint => out[base + t]!;
    const set = (t: number, v: bigint): void => {
      out[base + t] = v;
    };
    const countOf = (field: string, pairedWith: string | undefined): bigint | undefined => {
      const t = find({ kind: 'count', field, pairedWith });
      return t === undefined ? undefined : get(t);
    };
    const sumOf = (field: string, pairedWith: string | undefined): bigint | undefined => {
      const t = find({ kind: 'sum', field, pairedWith });
      return t === undefined ? undefined : get(t);
    };
    const squaresOf = (field: string, pairedWith: string | undefined): bigint | undefined => {
      const t = find({ kind: 'sumOfSquares', field, pairedWith });
      return t === undefined ? undefined : get(t);
    };

    terms.forEach((term, t) => {
      if ((term.kind === 'count' || term.kind === 'bin') && get(t) < 0n) set(t, 0n);
    });
    terms.forEach((term, t) => {
      if (term.kind !== 'sum') return;
      const f = numberField(schema, term.field);
      const n = countOf(term.field, term.pairedWith);
      if (f !== undefined && n !== undefined) set(t, clamp(get(t), n * f.bounds.min, n * f.bounds.max));
    });
    terms.forEach((term, t) => {
      if (term.kind !== 'sumOfSquares') return;
      const f = numberField(schema, term.field);
      const n = countOf(term.field, term.pairedWith);
      const s = sumOf(term.field, term.pairedWith);
      if (f === undefined || n === undefined || s === undefined) return;
      const m = absMax(f);
      set(t, n === 0n ? 0n : clamp(get(t), ceilDiv(s * s, n), n * m * m));
    });
    terms.forEach((term, t) => {
      if (term.kind !== 'sumOfProducts') return;
      const { field: x, pairedWith: y } = term;
      const n = countOf(x, y);
      const sx = sumOf(x, y);
      const sy = sumOf(y, x);
      const qx = squaresOf(x, y);
      const qy = squaresOf(y, x);
      if (n === undefined || sx === undefined || sy === undefined || qx === undefined || qy === undefined) return;
      if (n === 0n) {
        set(t, 0n);
        return;
      }
      const vx = n * qx - sx * sx;
      const vy = n * qy - sy * sy;
      const product = sx * sy;
      const r = integerSqrt(vx > 0n && vy > 0n ? vx * vy : 0n);
      const lo = ceilDiv(product - r, n);
      const hi = floorDiv(product + r, n);
      if (lo <= hi) {
        set(t, clamp(get(t), lo, hi));
        return;
      }
      // No integer Σxy fits the tiny spreads: take the nearest one and widen Σx² just enough that |r| ≤ 1.
      set(t, floorDiv(2n * product + n, 2n * n));
      const c = n * get(t) - product;
      const qxIndex = find({ kind: 'sumOfSquares', field: x, pairedWith: y })!;
      if (vx > 0n && vy > 0n && c * c > vx * vy) set(qxIndex, ceilDiv(sx * sx + ceilDiv(c * c, vy), n));
    });
  }
  return out;
}
