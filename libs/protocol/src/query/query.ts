import { MAX_SIGNED, fitsInField, formatFixed, maxAbsSum, maxAbsSumOfProducts, maxAbsSumOfSquares } from '@confide/crypto';
import { addMultiple, ceilDiv, ceilQuotient, decimalOf, ratioToNumber, scaleRational, sqrtRatioToNumber, subtract, type Rational } from '../exact';
import { QueryError } from '../errors';
import { fieldIndex, type CategoryField, type NumberField, type StudyField, type StudySchema } from './schema';
import { compileWhere, type RecordFilter, type WhereCondition } from './where';

export { ratioToNumber, sqrtRatioToNumber } from '../exact';
export { WHERE_OPS, type CategoryFilter, type NumberFilter, type RecordFilter, type WhereCondition, type WhereOp, type WhereValue } from './where';

/**
 * The query compiler (DESIGN.md "Queries"): every statistic compiles to linear aggregate terms (counts, Σx,
 * Σx², Σxy, per-bin counts) that each participant sums over its own records; MPC then adds the participants'
 * term vectors, and the statistics are derived from the revealed totals.
 *
 * It is driven by two tables. TERMS says, per kind of linear term, how it is keyed and how large it can
 * grow (the overflow guard). STATISTICS says, per statistic, how a select item is read, which terms it needs
 * and how its value is derived from their totals. A new statistic is a row in STATISTICS; a new kind of term
 * a row in TERMS plus its accumulation step in aggregate.ts. The protocols only see the vector length.
 *
 * `where` (where.ts) decides which records count at all; `groupBy` repeats the whole term list once per
 * declared value of a category field. The vector is group-major: coordinate g·T + t is term t summed over
 * the records of group g (T = `terms.length`; one group, `null`, when the query is not grouped).
 *
 * Missing values: a record without a field's value is skipped by the terms on that field only, so each
 * statistic uses every record that has its field(s); correlation and regression use the records that have
 * both x and y (pairwise complete), so their terms are keyed by the pair. Grouped queries skip records whose
 * group value is missing: they belong to no group.
 *
 * Numerics: all totals are exact integers in the fields' fixed-point units; each statistic is then one exact
 * rational (or the square root of one), rounded once to the nearest double.
 */

// ---------------------------------------------------------------------------------------------------------
// Linear aggregate terms.

/**
 * The payload of each kind of linear aggregate term. Add a kind here, in TERMS, and in aggregate.ts.
 * `pairedWith` restricts a term to records where that second field is present too (pairwise-complete terms
 * for correlation and regression).
 */
interface TermPayloads {
  /** Number of records where the field (and `pairedWith`) is present. */
  count: { readonly field: string; readonly pairedWith?: string };
  /** Σ of the field's fixed-point values (scaled by 10^decimals) over records where it (and `pairedWith`) is present. */
  sum: { readonly field: string; readonly pairedWith?: string };
  /** Σ of the squares of the field's fixed-point values, over the same records as `sum`. */
  sumOfSquares: { readonly field: string; readonly pairedWith?: string };
  /** Σ of the products of the two fields' fixed-point values over records where both are present. */
  sumOfProducts: { readonly field: string; readonly pairedWith: string };
  /**
   * Number of records whose fixed-point value v has `from` ≤ v < `to` (null: unbounded on that side).
   * `decimals` is the field's, so the term's key can show the limits in the field's units.
   */
  bin: { readonly field: string; readonly from: bigint | null; readonly to: bigint | null; readonly decimals: number };
}

export type AggregateTermKind = keyof TermPayloads;

/** One linear term (one coordinate per group of the aggregate vector), as a discriminated union on `kind`. */
export type AggregateTerm<K extends AggregateTermKind = AggregateTermKind> = {
  [P in K]: { readonly kind: P } & TermPayloads[P];
}[K];

interface TermDefinition<K extends AggregateTermKind> {
  /** A readable key; two terms with the same key are the same coordinate. */
  key(term: AggregateTerm<K>): string;
  /** Largest |total| this term can reach over `maxRecords` records, from the schema bounds. */
  maxAbs(term: AggregateTerm<K>, schema: StudySchema, maxRecords: bigint): bigint;
}

/** `f` or `f | g` (f over the records where g is present too). */
function restricted(t: { field: string; pairedWith?: string }): string {
  return t.pairedWith === undefined ? t.field : `${t.field} | ${t.pairedWith}`;
}

/** A symmetric pair of field names in a fixed order, so (x, y) and (y, x) share a key. */
function unordered(a: string, b: string): string {
  return a < b ? `${a}, ${b}` : `${b}, ${a}`;
}

const TERMS: { readonly [K in AggregateTermKind]: TermDefinition<K> } = {
  count: {
    key: (t) => `count(${t.pairedWith === undefined ? t.field : unordered(t.field, t.pairedWith)})`,
    maxAbs: (_t, _schema, maxRecords) => maxRecords,
  },
  sum: {
    key: (t) => `sum(${restricted(t)})`,
    maxAbs: (t, schema, maxRecords) => maxAbsSum(numberField(schema, t.field).bounds, maxRecords),
  },
  sumOfSquares: {
    key: (t) => `sumsq(${restricted(t)})`,
    maxAbs: (t, schema, maxRecords) => maxAbsSumOfSquares(numberField(schema, t.field).bounds, maxRecords),
  },
  sumOfProducts: {
    key: (t) => `sumxy(${unordered(t.field, t.pairedWith)})`,
    maxAbs: (t, schema, maxRecords) =>
      maxAbsSumOfProducts(numberField(schema, t.field).bounds, numberField(schema, t.pairedWith).bounds, maxRecords),
  },
  bin: {
    key: (t) => {
      const from = t.from === null ? '(-∞' : `[${formatFixed(t.from, t.decimals)}`;
      const to = t.to === null ? '∞)' : `${formatFixed(t.to, t.decimals)})`;
      return `bin(${t.field}, ${from}, ${to})`;
    },
    maxAbs: (_t, _schema, maxRecords) => maxRecords,
  },
};

function termDefinition<K extends AggregateTermKind>(term: AggregateTerm<K>): TermDefinition<K> {
  return TERMS[term.kind];
}

/** The readable name of a term, as used in error messages and vector layouts: `sum(glu)`, `sumxy(bmi, glu)`. */
export function termKey(term: AggregateTerm): string {
  return termDefinition(term).key(term);
}

// ---------------------------------------------------------------------------------------------------------
// Statistics: spec, result and derivation types.

/** Equal-width histogram bins: [min, min + width), …, the last one ending at max (narrower if width does not divide max − min). */
export interface HistogramBins {
  readonly min: number;
  readonly max: number;
  readonly width: number;
}

/** The payload of each statistic in a query's `select`. Add one here, in StatValues and in STATISTICS. */
interface StatPayloads {
  count: { readonly field: string };
  sum: { readonly field: string };
  mean: { readonly field: string };
  /** Sample variance (n − 1 denominator, as R's var). */
  variance: { readonly field: string };
  /** Sample standard deviation (as R's sd). */
  stddev: { readonly field: string };
  /** Left-closed bins [a, b) given as equal-width `bins` or explicit `edges`; values below / at or above go to underflow / overflow. */
  histogram:
    | { readonly field: string; readonly bins: HistogramBins; readonly edges?: undefined }
    | { readonly field: string; readonly edges: readonly number[]; readonly bins?: undefined };
  /** Pearson correlation of x and y over the records with both. */
  correlation: { readonly x: string; readonly y: string };
  /** Least-squares regression of y on x over the records with both. */
  regression: { readonly x: string; readonly y: string };
}

export type StatName = keyof StatPayloads;

/** One item of a query's `select`, e.g. `{ stat: 'mean', field: 'glu' }` or `{ stat: 'regression', x: 'bmi', y: 'glu' }`. */
export type StatSpec<S extends StatName = StatName> = { [P in S]: { readonly stat: P } & StatPayloads[P] }[S];

/** A query (DESIGN.md "Queries"): statistics, an optional filter (all conditions must hold) and an optional grouping. */
export interface QuerySpec {
  readonly select: readonly StatSpec[];
  readonly where?: readonly WhereCondition[];
  /** A category field: every statistic is computed once per declared value, in declared order. */
  readonly groupBy?: string;
  /** Privacy settings (DESIGN.md "Queries"); not interpreted by the compiler. */
  readonly privacy?: unknown;
}

/** One histogram bin [min, max) and the number of values in it. */
export interface HistogramBin {
  readonly min: number;
  readonly max: number;
  readonly count: number;
}

/** A histogram: its bins in order, and the values below the first edge and at or above the last one. */
export interface HistogramValue {
  readonly bins: readonly HistogramBin[];
  readonly underflow: number;
  readonly overflow: number;
}

/** A fitted line y = intercept + slope · x; `r2` is null when y is constant (R reports NaN there). */
export interface RegressionValue {
  readonly slope: number;
  readonly intercept: number;
  readonly r2: number | null;
}

/** The value of each statistic; null where it is undefined (mean of no values, variance of fewer than 2, …). */
interface StatValues {
  count: number;
  sum: number;
  mean: number | null;
  variance: number | null;
  stddev: number | null;
  histogram: HistogramValue;
  correlation: number | null;
  regression: RegressionValue | null;
}

/** What a result row says it describes: `field`, or `x` and `y` for the two-field statistics. */
type Subject<S extends StatName> = StatPayloads[S] extends { readonly x: string } ? { readonly x: string; readonly y: string } : { readonly field: string };

/**
 * One derived statistic for one group: `group` is the group's value, null when the query is not grouped;
 * `count` is how many values (for two-field statistics, pairs) it used.
 */
export type StatResultOf<S extends StatName> = { readonly stat: S } & Subject<S> & {
    readonly group: string | null;
    readonly value: StatValues[S];
    readonly count: number;
  };

/** A result row of any statistic, discriminated by `stat`. */
export type StatResult = { [S in StatName]: StatResultOf<S> }[StatName];
export type ScalarStatResult = StatResultOf<'count' | 'sum' | 'mean' | 'variance' | 'stddev'>;
export type HistogramResult = StatResultOf<'histogram'>;
export type CorrelationResult = StatResultOf<'correlation'>;
export type RegressionResult = StatResultOf<'regression'>;

/** The most bins a histogram may have; more would make the aggregate vector (and every share) large for little gain. */
export const MAX_HISTOGRAM_BINS = 1000;

/** The longest aggregate vector a query may compile to (terms × groups); the shamir plan allows no more. */
export const MAX_VECTOR_LENGTH = 1_000_000;

// ---------------------------------------------------------------------------------------------------------
// Statistics: the table.

type SelectItem = Readonly<Record<string, unknown>>;

interface StatisticDefinition<S extends StatName> {
  /** Reads a select item (parsed JSON, at location `at`, e.g. `select[2]`) into a clean spec, checking it against the schema. */
  parse(item: SelectItem, at: string, schema: StudySchema): StatSpec<S>;
  /** The field(s) the result row names. */
  subject(spec: StatSpec<S>): Subject<S>;
  /** The linear terms it needs; `derive` receives their totals in this order. */
  terms(spec: StatSpec<S>, schema: StudySchema): AggregateTerm[];
  /** The statistic from its terms' totals (one group's). */
  derive(spec: StatSpec<S>, totals: readonly bigint[], schema: StudySchema): { value: StatValues[S]; count: number };
}

/** Reads `item[key]` as the name of a field of the schema. */
function fieldAt(item: SelectItem, key: string, at: string, schema: StudySchema): StudyField {
  const name = item[key];
  if (typeof name !== 'string') throw new QueryError(`${at}.${key}: must name a field of study "${schema.name}"`);
  const f = schema.fields[fieldIndex(schema, name) ?? -1];
  if (f === undefined) throw new QueryError(`${at}.${key}: unknown field "${name}" in study "${schema.name}"`);
  return f;
}

/** The `parse` of a statistic of one field of the given types. */
function oneField<S extends 'count' | 'sum' | 'mean' | 'variance' | 'stddev' | 'histogram'>(stat: S, types: readonly StudyField['type'][]) {
  return (item: SelectItem, at: string, schema: StudySchema): { stat: S; field: string } => {
    const f = fieldAt(item, 'field', at, schema);
    if (!types.includes(f.type)) throw new QueryError(`${at}: ${stat} needs a ${types.join(' or ')} field; "${f.name}" is a ${f.type} field`);
    return { stat, field: f.name };
  };
}

/** The `parse` of a statistic of two numeric fields x and y. */
function twoNumberFields<S extends 'correlation' | 'regression'>(stat: S) {
  return (item: SelectItem, at: string, schema: StudySchema): { stat: S; x: string; y: string } => {
    const [x, y] = (['x', 'y'] as const).map((key) => {
      const f = fieldAt(item, key, at, schema);
      if (f.type !== 'number') throw new QueryError(`${at}: ${stat} needs number fields; "${f.name}" (${key}) is a ${f.type} field`);
      return f.name;
    });
    return { stat, x: x!, y: y! };
  };
}

const fieldSubject = (spec: { field: string }): { field: string } => ({ field: spec.field });
const pairSubject = (spec: { x: string; y: string }): { x: string; y: string } => ({ x: spec.x, y: spec.y });

const countTerm = (field: string): AggregateTerm => ({ kind: 'count', field });
const sumTerm = (field: string): AggregateTerm => ({ kind: 'sum', field });
const squaresTerm = (field: string): AggregateTerm => ({ kind: 'sumOfSquares', field });

/** n·Σx² − (Σx)² over fixed-point values: n² times the spread, exactly (≥ 0). */
function spread(n: bigint, sum: bigint, sumOfSquares: bigint): bigint {
  return n * sumOfSquares - sum * sum;
}

/** The sample variance as an exact rational: (nΣx² − (Σx)²) / (n(n − 1)·scale²); null for fewer than 2 values. */
function sampleVariance(field: string, totals: readonly bigint[], schema: StudySchema): { ratio: Rational | null; count: number } {
  const count = countOf(totals, 0);
  if (count < 2) return { ratio: null, count };
  const n = BigInt(count);
  const scale = scaleOf(numberField(schema, field));
  return { ratio: { n: spread(n, totalOf(totals, 1), totalOf(totals, 2)), d: n * (n - 1n) * scale * scale }, count };
}

/**
 * The six pairwise-complete terms of (x, y): count, Σx, Σy, Σx², Σy², Σxy over records with both present.
 * x = y degenerates to the one-field terms.
 */
function pairTerms({ x, y }: { x: string; y: string }): AggregateTerm[] {
  if (x === y) return [countTerm(x), sumTerm(x), sumTerm(x), squaresTerm(x), squaresTerm(x), squaresTerm(x)];
  return [
    { kind: 'count', field: x, pairedWith: y },
    { kind: 'sum', field: x, pairedWith: y },
    { kind: 'sum', field: y, pairedWith: x },
    { kind: 'sumOfSquares', field: x, pairedWith: y },
    { kind: 'sumOfSquares', field: y, pairedWith: x },
    { kind: 'sumOfProducts', field: x, pairedWith: y },
  ];
}

/** From the totals of {@link pairTerms}: n, Σx, Σy, and n² times the spreads of x and y and their co-spread. */
function pairMoments(totals: readonly bigint[]): { count: number; n: bigint; sx: bigint; sy: bigint; vx: bigint; vy: bigint; c: bigint } {
  const count = countOf(totals, 0);
  const n = BigInt(count);
  const sx = totalOf(totals, 1);
  const sy = totalOf(totals, 2);
  return {
    count,
    n,
    sx,
    sy,
    vx: spread(n, sx, totalOf(totals, 3)),
    vy: spread(n, sy, totalOf(totals, 4)),
    c: n * totalOf(totals, 5) - sx * sy,
  };
}

/** Reads a finite number at `at`. */
function finiteAt(value: unknown, at: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) throw new QueryError(`${at}: must be a finite number`);
  return value;
}

function parseHistogram(item: SelectItem, at: string, schema: StudySchema): StatSpec<'histogram'> {
  const { field } = oneField('histogram', ['number'])(item, at, schema);
  const { bins, edges } = item;
  if ((bins === undefined) === (edges === undefined)) {
    throw new QueryError(`${at}: histogram needs either bins { min, max, width } or edges, not ${bins === undefined ? 'neither' : 'both'}`);
  }
  if (bins !== undefined) {
    if (typeof bins !== 'object' || bins === null || Array.isArray(bins)) throw new QueryError(`${at}.bins: must be { min, max, width }`);
    const b = bins as Record<string, unknown>;
    const min = finiteAt(b.min, `${at}.bins.min`);
    const max = finiteAt(b.max, `${at}.bins.max`);
    const width = finiteAt(b.width, `${at}.bins.width`);
    if (width <= 0) throw new QueryError(`${at}.bins.width: must be greater than 0, got ${width}`);
    if (min >= max) throw new QueryError(`${at}.bins: min (${min}) must be less than max (${max})`);
    const count = ceilQuotient(subtract(decimalOf(max), decimalOf(min)), decimalOf(width));
    if (count > BigInt(MAX_HISTOGRAM_BINS)) {
      throw new QueryError(`${at}.bins: (max − min) / width makes ${count} bins, more than the ${MAX_HISTOGRAM_BINS} allowed; widen the bins`);
    }
    return { stat: 'histogram', field, bins: Object.freeze({ min, max, width }) };
  }
  if (!Array.isArray(edges) || edges.length < 2) throw new QueryError(`${at}.edges: must be a list of at least 2 numbers`);
  if (edges.length > MAX_HISTOGRAM_BINS + 1) {
    throw new QueryError(`${at}.edges: ${edges.length} edges make ${edges.length - 1} bins, more than the ${MAX_HISTOGRAM_BINS} allowed`);
  }
  const checked = edges.map((e: unknown, i) => finiteAt(e, `${at}.edges[${i}]`));
  checked.forEach((e, i) => {
    const before = checked[i - 1];
    if (before !== undefined && !(e > before)) {
      throw new QueryError(`${at}.edges[${i}]: ${e} is not greater than the edge before it (${before}); edges must be strictly increasing`);
    }
  });
  return { stat: 'histogram', field, edges: Object.freeze(checked) };
}

/** A histogram's edges as exact decimals, and as the numbers its result reports. */
function histogramEdges(spec: StatSpec<'histogram'>): { exact: Rational[]; shown: number[] } {
  if (spec.edges !== undefined) return { exact: spec.edges.map(decimalOf), shown: [...spec.edges] };
  const min = decimalOf(spec.bins.min);
  const max = decimalOf(spec.bins.max);
  const width = decimalOf(spec.bins.width);
  const count = Number(ceilQuotient(subtract(max, min), width));
  // min + i·width exactly, so bins of 0.1 report 0.3 and not 0.30000000000000004; the last edge is max itself.
  const exact = Array.from({ length: count }, (_, i) => addMultiple(min, BigInt(i), width));
  exact.push(max);
  return { exact, shown: exact.map((e, i) => (i === count ? spec.bins.max : ratioToNumber(e.n, e.d))) };
}

const STATISTICS: { readonly [S in StatName]: StatisticDefinition<S> } = {
  count: {
    parse: oneField('count', ['number', 'category']),
    subject: fieldSubject,
    terms: ({ field }) => [countTerm(field)],
    derive: (_spec, totals) => {
      const n = countOf(totals, 0);
      return { value: n, count: n };
    },
  },
  sum: {
    parse: oneField('sum', ['number']),
    subject: fieldSubject,
    terms: ({ field }) => [countTerm(field), sumTerm(field)],
    derive: ({ field }, totals, schema) => ({
      value: ratioToNumber(totalOf(totals, 1), scaleOf(numberField(schema, field))),
      count: countOf(totals, 0),
    }),
  },
  mean: {
    parse: oneField('mean', ['number']),
    subject: fieldSubject,
    terms: ({ field }) => [countTerm(field), sumTerm(field)],
    derive: ({ field }, totals, schema) => {
      const n = countOf(totals, 0);
      if (n === 0) return { value: null, count: 0 };
      return { value: ratioToNumber(totalOf(totals, 1), BigInt(n) * scaleOf(numberField(schema, field))), count: n };
    },
  },
  variance: {
    parse: oneField('variance', ['number']),
    subject: fieldSubject,
    terms: ({ field }) => [countTerm(field), sumTerm(field), squaresTerm(field)],
    derive: ({ field }, totals, schema) => {
      const { ratio, count } = sampleVariance(field, totals, schema);
      return { value: ratio === null ? null : ratioToNumber(ratio.n, ratio.d), count };
    },
  },
  stddev: {
    parse: oneField('stddev', ['number']),
    subject: fieldSubject,
    terms: ({ field }) => [countTerm(field), sumTerm(field), squaresTerm(field)],
    derive: ({ field }, totals, schema) => {
      const { ratio, count } = sampleVariance(field, totals, schema);
      return { value: ratio === null ? null : sqrtRatioToNumber(ratio.n, ratio.d), count };
    },
  },
  histogram: {
    parse: parseHistogram,
    subject: fieldSubject,
    // [underflow, bin 0, …, bin k − 1, overflow]; each edge e becomes the integer threshold ⌈e·10^decimals⌉,
    // since a fixed-point value v is ≥ e exactly when v ≥ ⌈e·10^decimals⌉.
    terms: (spec, schema) => {
      const { name: field, decimals } = numberField(schema, spec.field);
      const thresholds = histogramEdges(spec).exact.map((e) => {
        const scaled = scaleRational(e, decimals);
        return ceilDiv(scaled.n, scaled.d);
      });
      return [null, ...thresholds].map((from, i): AggregateTerm => ({ kind: 'bin', field, from, to: thresholds[i] ?? null, decimals }));
    },
    derive: (spec, totals) => {
      const { shown } = histogramEdges(spec);
      const bins = shown.slice(1).map((max, i) => ({ min: shown[i]!, max, count: countOf(totals, i + 1) }));
      const underflow = countOf(totals, 0);
      const overflow = countOf(totals, totals.length - 1);
      return { value: { bins, underflow, overflow }, count: bins.reduce((n, b) => n + b.count, underflow + overflow) };
    },
  },
  correlation: {
    parse: twoNumberFields('correlation'),
    subject: pairSubject,
    terms: pairTerms,
    // r = (nΣxy − ΣxΣy) / √((nΣx² − (Σx)²)(nΣy² − (Σy)²)); the fixed-point scales cancel. Taken as
    // sign · √(c² / (vx·vy)) so the one rounding is of the exact value (and |r| ≤ 1 survives it).
    derive: (_spec, totals) => {
      const { count, n, vx, vy, c } = pairMoments(totals);
      if (n < 2n || vx === 0n || vy === 0n) return { value: null, count };
      const r = sqrtRatioToNumber(c * c, vx * vy);
      return { value: c < 0n ? -r : r, count };
    },
  },
  regression: {
    parse: twoNumberFields('regression'),
    subject: pairSubject,
    // With x = u / Sx and y = v / Sy in fixed point: slope = c·Sx / (vx·Sy), intercept = (Σv·vx − c·Σu) / (n·vx·Sy),
    // r² = c² / (vx·vy), each one exact rational rounded once.
    terms: pairTerms,
    derive: ({ x, y }, totals, schema) => {
      const { count, n, sx, sy, vx, vy, c } = pairMoments(totals);
      if (n < 2n || vx === 0n) return { value: null, count };
      const scaleX = scaleOf(numberField(schema, x));
      const scaleY = scaleOf(numberField(schema, y));
      return {
        value: {
          slope: ratioToNumber(c * scaleX, vx * scaleY),
          intercept: ratioToNumber(sy * vx - c * sx, n * vx * scaleY),
          r2: vy === 0n ? null : ratioToNumber(c * c, vx * vy),
        },
        count,
      };
    },
  },
};

/** Every statistic a query may select, from the table above (for API schemas and help texts). */
export const STAT_NAMES: readonly StatName[] = Object.freeze(Object.keys(STATISTICS) as StatName[]);

function statisticDefinition<S extends StatName>(spec: StatSpec<S>): StatisticDefinition<S> {
  return STATISTICS[spec.stat];
}

function totalOf(totals: readonly bigint[], i: number): bigint {
  const t = totals[i];
  if (t === undefined) throw new RangeError(`missing total ${i}`);
  return t;
}

/** A count total as a number; a negative or huge one means the revealed vector is not what was computed. */
function countOf(totals: readonly bigint[], i: number): number {
  const n = totalOf(totals, i);
  if (n < 0n || n > BigInt(Number.MAX_SAFE_INTEGER)) throw new RangeError(`count total ${n} is not a valid count; the aggregate is corrupt`);
  return Number(n);
}

function scaleOf(field: NumberField): bigint {
  return 10n ** BigInt(field.decimals);
}

function numberField(schema: StudySchema, name: string): NumberField {
  const f = schema.fields[fieldIndex(schema, name) ?? -1];
  if (f?.type !== 'number') throw new QueryError(`"${name}" is not a numeric field of study "${schema.name}"`);
  return f;
}

// ---------------------------------------------------------------------------------------------------------
// Compilation.

/** One select item after compilation: its spec and the positions of its terms in `terms` (the same in every group). */
export interface CompiledStat {
  readonly spec: StatSpec;
  readonly termIndices: readonly number[];
}

/**
 * A compiled query: the deduplicated terms, how each select item uses them, the record filter and the
 * groups. The aggregate vector is group-major: coordinate `g · terms.length + t` is term t over group g.
 */
export interface CompiledQuery {
  readonly schema: StudySchema;
  readonly select: readonly CompiledStat[];
  readonly terms: readonly AggregateTerm[];
  /** One filter per field named in `where`; a record counts only if it passes them all. */
  readonly where: readonly RecordFilter[];
  /** The category field the query is grouped by, or null. */
  readonly groupBy: string | null;
  /** The groups in vector order: the field's declared values, or `[null]` for an ungrouped query. */
  readonly groups: readonly (string | null)[];
  /** terms.length × groups.length. */
  readonly vectorLength: number;
}

function compileGroupBy(schema: StudySchema, groupBy: unknown): CategoryField | null {
  if (groupBy === undefined || groupBy === null) return null;
  if (typeof groupBy !== 'string') throw new QueryError(`groupBy: must name a category field of study "${schema.name}"`);
  const f = schema.fields[fieldIndex(schema, groupBy) ?? -1];
  if (f === undefined) throw new QueryError(`groupBy: unknown field "${groupBy}" in study "${schema.name}"`);
  if (f.type !== 'category') throw new QueryError(`groupBy: "${groupBy}" is a ${f.type} field; only a category field can group`);
  return f;
}

/**
 * Compiles a query against a study schema into linear aggregate terms (DESIGN.md "Queries": every statistic
 * compiles to count, Σx, Σx², Σxy, per-bin counts), a record filter and a group layout. Terms shared by
 * several statistics are computed once: `mean(glu)`, `variance(glu)` and `count(glu)` share one count.
 *
 * Histogram bins are left-closed, [a, b), all of them: a value equal to the first edge is in the first bin,
 * and a value equal to the last edge (max) is in the overflow, not in the last bin (R's hist closes bins on
 * the right by default; this does not). Equal-width bins end at max, the last one narrower when width does
 * not divide max − min. At most {@link MAX_HISTOGRAM_BINS} bins.
 *
 * Unknown keys of the query and its select items are ignored (`privacy` is read elsewhere).
 *
 * @param schema the validated study schema
 * @param spec the query; checked at run time, since it usually comes from JSON
 * @throws QueryError naming the problem and where it is (`select[2]: histogram needs a number field; "type"
 *   is a category field`): an empty select, an unknown statistic or field, a statistic on a field type it does
 *   not support, malformed bins or edges (width ≤ 0, min ≥ max, too many bins, edges not strictly
 *   increasing), a malformed or contradictory where (see where.ts), a groupBy that is not a category field,
 *   or a vector longer than {@link MAX_VECTOR_LENGTH}
 */
export function compileQuery(schema: StudySchema, spec: QuerySpec): CompiledQuery {
  const query = (typeof spec === 'object' && spec !== null ? spec : {}) as { select?: unknown; where?: unknown; groupBy?: unknown };
  const select = query.select;
  if (!Array.isArray(select) || select.length === 0) throw new QueryError('select: must list at least one statistic');

  const terms: AggregateTerm[] = [];
  const indexByKey = new Map<string, number>();
  const compiled = select.map((raw: unknown, i): CompiledStat => {
    const at = `select[${i}]`;
    const item = (typeof raw === 'object' && raw !== null ? raw : {}) as SelectItem;
    const stat = item.stat;
    if (typeof stat !== 'string' || !Object.hasOwn(STATISTICS, stat)) {
      const known = Object.keys(STATISTICS).join(', ');
      throw new QueryError(`${at}.stat: unknown statistic ${JSON.stringify(stat)} (known: ${known})`);
    }
    const definition = STATISTICS[stat as StatName] as StatisticDefinition<StatName>;
    const statSpec = Object.freeze(definition.parse(item, at, schema));
    const termIndices = definition.terms(statSpec, schema).map((term) => {
      const key = termKey(term);
      let index = indexByKey.get(key);
      if (index === undefined) {
        index = terms.push(Object.freeze(term)) - 1;
        indexByKey.set(key, index);
      }
      return index;
    });
    return Object.freeze({ spec: statSpec, termIndices: Object.freeze(termIndices) });
  });

  const where = compileWhere(schema, query.where);
  const groupBy = compileGroupBy(schema, query.groupBy);
  const groups: readonly (string | null)[] = groupBy === null ? [null] : groupBy.values;
  const vectorLength = terms.length * groups.length;
  if (vectorLength > MAX_VECTOR_LENGTH) {
    throw new QueryError(
      `the query needs ${vectorLength} aggregate values (${terms.length} terms × ${groups.length} groups), more than the ${MAX_VECTOR_LENGTH} allowed; ` +
        'ask for fewer bins or statistics',
    );
  }
  return Object.freeze({
    schema,
    select: Object.freeze(compiled),
    terms: Object.freeze(terms),
    where: Object.freeze(where),
    groupBy: groupBy?.name ?? null,
    groups: Object.freeze([...groups]),
    vectorLength,
  });
}

/** The readable name of coordinate i of the aggregate vector: `count(glu)`, or `count(glu) in group type = "No"`. */
export function coordinateKey(compiled: CompiledQuery, i: number): string {
  const t = compiled.terms.length;
  const term = compiled.terms[i % t];
  const group = compiled.groups[Math.floor(i / t)];
  if (term === undefined || group === undefined || i < 0 || !Number.isInteger(i)) throw new RangeError(`no coordinate ${i} in a vector of ${compiled.vectorLength}`);
  return group === null ? termKey(term) : `${termKey(term)} in group ${compiled.groupBy} = ${JSON.stringify(group)}`;
}

/**
 * The overflow guard (DESIGN.md "Queries": encoding): checks from the schema bounds that no coordinate of the
 * summed aggregate vector can wrap around p = 2^127 − 1, i.e. every coordinate's largest magnitude over
 * `maxTotalRecords` records is at most (p − 1)/2 (`fitsInField`).
 *
 * @param compiled the compiled query
 * @param maxTotalRecords the sum of the participants' declared maximum record counts
 * @throws QueryError naming the first coordinate that can overflow and the record count; RangeError for a negative count
 */
export function assertNoOverflow(compiled: CompiledQuery, maxTotalRecords: bigint): void {
  termMagnitudes(compiled, maxTotalRecords).forEach((maxAbs, i) => {
    if (!fitsInField(maxAbs)) {
      throw new QueryError(
        `${coordinateKey(compiled, i)} can reach ${maxAbs} over ${maxTotalRecords} records, more than the field holds as a signed ` +
          `integer (${MAX_SIGNED}); narrow the field's bounds or lower the participants' maximum record counts`,
      );
    }
  });
}

/**
 * The largest |total| each coordinate of the aggregate vector can reach over `maxTotalRecords` records, from
 * the schema bounds, in vector order (length `compiled.vectorLength`; every group may hold all the records,
 * so each group repeats the terms' magnitudes). The overflow guard checks these against the prime field; the
 * Paillier packing sizes its plaintext slots from them.
 *
 * @throws RangeError for a negative record count
 */
export function termMagnitudes(compiled: CompiledQuery, maxTotalRecords: bigint): bigint[] {
  if (maxTotalRecords < 0n) throw new RangeError(`maxTotalRecords must be non-negative, got ${maxTotalRecords}`);
  const perTerm = compiled.terms.map((term) => termDefinition(term).maxAbs(term, compiled.schema, maxTotalRecords));
  return compiled.groups.flatMap(() => perTerm);
}

/**
 * Derives each select item's statistic, per group, from the revealed totals (the exact signed sums of all
 * participants' aggregate vectors, DESIGN.md "Protocol shamir": finalize). Each value is one exact rational
 * (or the square root of one: stddev, correlation) rounded once to the nearest double
 * ({@link ratioToNumber}, {@link sqrtRatioToNumber}), so a sum is the double nearest its exact decimal value,
 * a mean the double nearest Σx / n, and a variance the double nearest the exact sample variance.
 *
 * @param compiled the compiled query
 * @param totals the revealed vector, of length `compiled.vectorLength`
 * @returns one row per select item per group, group-major: all of the first group's rows in select order, then
 *   the next group's (a single group, `group: null`, when the query is not grouped)
 * @throws RangeError when `totals` has the wrong length or holds a count that is negative or above 2^53 − 1
 */
export function deriveResults(compiled: CompiledQuery, totals: readonly bigint[]): StatResult[] {
  if (totals.length !== compiled.vectorLength) {
    throw new RangeError(`expected ${compiled.vectorLength} totals, got ${totals.length}`);
  }
  const width = compiled.terms.length;
  return compiled.groups.flatMap((group, g) =>
    compiled.select.map(({ spec, termIndices }) => {
      const own = termIndices.map((i) => totalOf(totals, g * width + i));
      const definition: StatisticDefinition<StatName> = statisticDefinition(spec);
      const { value, count } = definition.derive(spec, own, compiled.schema);
      return { stat: spec.stat, ...definition.subject(spec), group, value, count } as StatResult;
    }),
  );
}
