import { MAX_SIGNED, fitsInField, maxAbsSum } from '@confide/crypto';
import { fieldIndex, type NumberField, type StudyField, type StudySchema } from './schema';

/**
 * The query compiler (DESIGN.md "Queries"): every statistic compiles to linear aggregate terms (count, Σx,
 * later Σx², Σxy, per-bin counts) that each participant sums over its own records; MPC then adds the
 * participants' term vectors, and the statistics are derived from the revealed totals.
 *
 * It is driven by two tables. TERMS says, per kind of linear term, how it is keyed and how large it can
 * grow (the overflow guard). STATISTICS says, per statistic, which terms it needs and how its value is
 * derived from their totals. A new statistic (variance: count, Σx, Σx²) is a row in STATISTICS, a new
 * kind of term (Σx²) a row in TERMS plus its accumulation step in aggregate.ts. `where` filters and
 * `groupBy` will change the vector layout (terms × groups) and the per-record step, not these tables.
 */

// ---------------------------------------------------------------------------------------------------------
// Linear aggregate terms.

/** The payload of each kind of linear aggregate term. Add a kind here, in TERMS, and in aggregate.ts. */
interface TermPayloads {
  /** Number of records where the field is not missing. */
  count: { readonly field: string };
  /** Σ of the field's fixed-point values (scaled by 10^decimals) over records where it is not missing. */
  sum: { readonly field: string };
}

export type AggregateTermKind = keyof TermPayloads;

/** One coordinate of the aggregate vector, as a discriminated union on `kind`. */
export type AggregateTerm<K extends AggregateTermKind = AggregateTermKind> = {
  [P in K]: { readonly kind: P } & TermPayloads[P];
}[K];

interface TermDefinition<K extends AggregateTermKind> {
  /** A readable key; two terms with the same key are the same coordinate. */
  key(term: AggregateTerm<K>): string;
  /** Largest |total| this term can reach over `maxRecords` records, from the schema bounds. */
  maxAbs(term: AggregateTerm<K>, schema: StudySchema, maxRecords: bigint): bigint;
}

const TERMS: { readonly [K in AggregateTermKind]: TermDefinition<K> } = {
  count: {
    key: (t) => `count(${t.field})`,
    maxAbs: (_t, _schema, maxRecords) => maxRecords,
  },
  sum: {
    key: (t) => `sum(${t.field})`,
    maxAbs: (t, schema, maxRecords) => maxAbsSum(numberField(schema, t.field).bounds, maxRecords),
  },
};

function termDefinition<K extends AggregateTermKind>(term: AggregateTerm<K>): TermDefinition<K> {
  return TERMS[term.kind];
}

/** The readable name of a term, as used in error messages and vector layouts: `sum(glu)`. */
export function termKey(term: AggregateTerm): string {
  return termDefinition(term).key(term);
}

// ---------------------------------------------------------------------------------------------------------
// Statistics.

/** The payload of each statistic in a query's `select`. Add one here and in STATISTICS. */
interface StatPayloads {
  count: { readonly field: string };
  sum: { readonly field: string };
  mean: { readonly field: string };
}

export type StatName = keyof StatPayloads;

/** One item of a query's `select`, e.g. `{ stat: 'mean', field: 'glu' }`. */
export type StatSpec<S extends StatName = StatName> = { [P in S]: { readonly stat: P } & StatPayloads[P] }[S];

/** A query (DESIGN.md "Queries"). `where`, `groupBy` and `privacy` come later. */
export interface QuerySpec {
  readonly select: readonly StatSpec[];
}

/** A derived statistic: `count` is the number of non-missing values it used; `value` is null when undefined (mean of none). */
export interface StatResult {
  readonly stat: StatName;
  readonly field: string;
  readonly value: number | null;
  readonly count: number;
}

interface StatisticDefinition<S extends StatName> {
  /** The field types the statistic accepts. */
  readonly fieldTypes: readonly StudyField['type'][];
  /** The linear terms it needs; `derive` receives their totals in this order. */
  terms(spec: StatSpec<S>): AggregateTerm[];
  /** The statistic from its terms' totals. */
  derive(spec: StatSpec<S>, totals: readonly bigint[], schema: StudySchema): { value: number | null; count: number };
}

const STATISTICS: { readonly [S in StatName]: StatisticDefinition<S> } = {
  count: {
    fieldTypes: ['number', 'category'],
    terms: ({ field }) => [{ kind: 'count', field }],
    derive: (_spec, totals) => {
      const n = countOf(totals, 0);
      return { value: n, count: n };
    },
  },
  sum: {
    fieldTypes: ['number'],
    terms: ({ field }) => [
      { kind: 'count', field },
      { kind: 'sum', field },
    ],
    derive: ({ field }, totals, schema) => ({
      value: ratioToNumber(totalOf(totals, 1), scaleOf(numberField(schema, field))),
      count: countOf(totals, 0),
    }),
  },
  mean: {
    fieldTypes: ['number'],
    terms: ({ field }) => [
      { kind: 'count', field },
      { kind: 'sum', field },
    ],
    derive: ({ field }, totals, schema) => {
      const n = countOf(totals, 0);
      if (n === 0) return { value: null, count: 0 };
      return { value: ratioToNumber(totalOf(totals, 1), BigInt(n) * scaleOf(numberField(schema, field))), count: n };
    },
  },
};

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

/** A query that cannot run: the message names the offending part (`select[1].field: unknown field "x"`). */
export class QueryError extends Error {
  override readonly name = 'QueryError';
}

/** One select item after compilation: its spec and the positions of its terms in the aggregate vector. */
export interface CompiledStat {
  readonly spec: StatSpec;
  readonly termIndices: readonly number[];
}

/** A compiled query: the deduplicated terms (one per coordinate of the aggregate vector) and how each select item uses them. */
export interface CompiledQuery {
  readonly schema: StudySchema;
  readonly select: readonly CompiledStat[];
  readonly terms: readonly AggregateTerm[];
  readonly vectorLength: number;
}

/**
 * Compiles a query against a study schema into linear aggregate terms (DESIGN.md "Queries": every statistic
 * compiles to count, Σx, …). Terms shared by several statistics are computed once: `mean(glu)` and
 * `count(glu)` use the same count coordinate.
 *
 * @param schema the validated study schema
 * @param spec the query; checked at run time too, since it usually comes from JSON
 * @throws QueryError for an empty select, an unknown statistic, an unknown field, or a statistic on a field
 *   type it does not support (sum or mean of a category field)
 */
export function compileQuery(schema: StudySchema, spec: QuerySpec): CompiledQuery {
  const select: unknown = (spec as { select?: unknown } | null)?.select;
  if (!Array.isArray(select) || select.length === 0) throw new QueryError('select: must list at least one statistic');

  const terms: AggregateTerm[] = [];
  const indexByKey = new Map<string, number>();
  const compiled = select.map((item: unknown, i): CompiledStat => {
    const at = `select[${i}]`;
    const { stat, field } = (item ?? {}) as { stat?: unknown; field?: unknown };
    if (typeof stat !== 'string' || !Object.hasOwn(STATISTICS, stat)) {
      const known = Object.keys(STATISTICS).join(', ');
      throw new QueryError(`${at}.stat: unknown statistic ${JSON.stringify(stat)} (known: ${known})`);
    }
    if (typeof field !== 'string') throw new QueryError(`${at}.field: must name a field of study "${schema.name}"`);
    const f = schema.fields[fieldIndex(schema, field) ?? -1];
    if (f === undefined) throw new QueryError(`${at}.field: unknown field "${field}" in study "${schema.name}"`);
    const statSpec = { stat, field } as StatSpec;
    const definition = statisticDefinition(statSpec);
    if (!definition.fieldTypes.includes(f.type)) {
      throw new QueryError(`${at}: ${stat} needs a ${definition.fieldTypes.join(' or ')} field; "${field}" is a ${f.type} field`);
    }
    const termIndices = definition.terms(statSpec).map((term) => {
      const key = termKey(term);
      let index = indexByKey.get(key);
      if (index === undefined) {
        index = terms.push(Object.freeze(term)) - 1;
        indexByKey.set(key, index);
      }
      return index;
    });
    return Object.freeze({ spec: Object.freeze(statSpec), termIndices: Object.freeze(termIndices) });
  });
  return Object.freeze({
    schema,
    select: Object.freeze(compiled),
    terms: Object.freeze(terms),
    vectorLength: terms.length,
  });
}

/**
 * The overflow guard (DESIGN.md "Queries": encoding): checks from the schema bounds that no coordinate of the
 * summed aggregate vector can wrap around p = 2^127 − 1, i.e. every term's largest magnitude over
 * `maxTotalRecords` records is at most (p − 1)/2 (`fitsInField`).
 *
 * @param compiled the compiled query
 * @param maxTotalRecords the sum of the participants' declared maximum record counts
 * @throws QueryError naming the first term that can overflow and the record count; RangeError for a negative count
 */
export function assertNoOverflow(compiled: CompiledQuery, maxTotalRecords: bigint): void {
  const magnitudes = termMagnitudes(compiled, maxTotalRecords);
  compiled.terms.forEach((term, i) => {
    const maxAbs = magnitudes[i]!;
    if (!fitsInField(maxAbs)) {
      throw new QueryError(
        `${termKey(term)} can reach ${maxAbs} over ${maxTotalRecords} records, more than the field holds as a signed ` +
          `integer (${MAX_SIGNED}); narrow the field's bounds or lower the participants' maximum record counts`,
      );
    }
  });
}

/**
 * The largest |total| each coordinate of the aggregate vector can reach over `maxTotalRecords` records, from
 * the schema bounds, in vector order (length `compiled.vectorLength`). The overflow guard checks these against
 * the prime field; the Paillier packing sizes its plaintext slots from them.
 *
 * @throws RangeError for a negative record count
 */
export function termMagnitudes(compiled: CompiledQuery, maxTotalRecords: bigint): bigint[] {
  if (maxTotalRecords < 0n) throw new RangeError(`maxTotalRecords must be non-negative, got ${maxTotalRecords}`);
  return compiled.terms.map((term) => termDefinition(term).maxAbs(term, compiled.schema, maxTotalRecords));
}

/**
 * Derives each select item's statistic from the revealed totals (the exact signed sums of all participants'
 * aggregate vectors, DESIGN.md "Protocol shamir": finalize). Each value comes from one correctly rounded
 * division ({@link ratioToNumber}), so a sum is the double nearest its exact decimal value and a mean the
 * double nearest Σx / n.
 *
 * @param compiled the compiled query
 * @param totals the revealed vector, of length `compiled.vectorLength`
 * @throws RangeError when `totals` has the wrong length or holds a count that is negative or above 2^53 − 1
 */
export function deriveResults(compiled: CompiledQuery, totals: readonly bigint[]): StatResult[] {
  if (totals.length !== compiled.vectorLength) {
    throw new RangeError(`expected ${compiled.vectorLength} totals, got ${totals.length}`);
  }
  return compiled.select.map(({ spec, termIndices }) => {
    const own = termIndices.map((i) => totalOf(totals, i));
    const { value, count } = statisticDefinition(spec).derive(spec, own, compiled.schema);
    return { stat: spec.stat, field: spec.field, value, count };
  });
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
