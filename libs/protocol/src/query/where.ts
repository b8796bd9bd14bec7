import { formatFixed } from '@confide/crypto';
import { ceilDiv, decimalOf, floorDiv, scaleRational } from '../exact';
import { QueryError } from '../errors';
import { fieldIndex, type CategoryField, type NumberField, type StudySchema } from './schema';

/**
 * A query's `where` (DESIGN.md "Queries": filters applied locally): a list of conditions that all must hold,
 * compiled to one filter per field that the participants evaluate on each record before aggregating it.
 *
 * Semantics:
 * - A record whose field is missing fails every condition on that field (`bp != 80` does not keep a record
 *   without bp), as SQL's three-valued logic does.
 * - Numeric conditions compare exactly: the value is the decimal written in the query (`decimalOf`), the
 *   record's value is its fixed-point integer, and the comparison is between the two rationals. A value
 *   finer than the field's decimals is allowed and means what it says: on an integer field `age > 39.5` is
 *   `age >= 40`, and `age = 39.5` can never hold. Each condition therefore becomes an integer bound, an
 *   allowed set or an excluded value in the field's fixed-point units.
 * - Category conditions (=, != and in only) name declared values of the field; anything else is refused.
 * - Conditions that can never all hold, for the schema's bounds too (an empty `in`, `age >= 40` with
 *   `age < 30`, `type = "Yes"` with `type = "No"`, `age > 200` when the study bounds age to 18..120), are
 *   refused with a QueryError rather than run to an all-zero answer.
 */

export const WHERE_OPS = ['=', '!=', '<', '<=', '>', '>=', 'in'] as const;

/** A comparison operator of a where condition. */
export type WhereOp = (typeof WHERE_OPS)[number];

/** A value in a where condition: a number for a numeric field, a declared value for a category field. */
export type WhereValue = number | string;

/** One condition of a query's `where`, e.g. `{ field: 'age', op: '>=', value: 40 }`. */
export type WhereCondition =
  | { readonly field: string; readonly op: Exclude<WhereOp, 'in'>; readonly value: WhereValue }
  | { readonly field: string; readonly op: 'in'; readonly value: readonly WhereValue[] };

/**
 * All of a query's conditions on one numeric field, in the field's fixed-point units. A value v passes when
 * it is present and: v is in `only` when that is not null; otherwise `min` ≤ v ≤ `max` (a null limit is
 * open) and v is not in `not`.
 */
export interface NumberFilter {
  readonly type: 'number';
  readonly field: string;
  readonly min: bigint | null;
  readonly max: bigint | null;
  /** The only values allowed (from = and in), sorted, already within min..max and without the excluded ones. */
  readonly only: readonly bigint[] | null;
  /** Values excluded by !=, sorted (within min..max). */
  readonly not: readonly bigint[];
}

/** All of a query's conditions on one category field: a value passes when it is present and in `values`. */
export interface CategoryFilter {
  readonly type: 'category';
  readonly field: string;
  /** The allowed values, in the schema's order (never empty). */
  readonly values: readonly string[];
}

/** One field's filter; a record passes the query's where when it passes every filter. */
export type RecordFilter = NumberFilter | CategoryFilter;

const MAX_ECHO = 60;

function describe(field: string, op: string, value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return `${field} ${op} ${text.length > MAX_ECHO ? `${text.slice(0, MAX_ECHO)}…` : text}`;
}

interface NumberAccumulator {
  readonly field: NumberField;
  min: bigint | null;
  max: bigint | null;
  only: Set<bigint> | null;
  readonly not: Set<bigint>;
  readonly conditions: string[];
}

interface CategoryAccumulator {
  readonly field: CategoryField;
  allowed: Set<string>;
  readonly conditions: string[];
}

/** The condition value v in fixed-point units, as a rational v.n / v.d. */
function fixedPoint(value: number, field: NumberField): { n: bigint; d: bigint; integer: bigint | null } {
  const { n, d } = scaleRational(decimalOf(value), field.decimals);
  return { n, d, integer: n % d === 0n ? n / d : null };
}

function intersect<T>(a: Set<T> | null, b: Set<T>): Set<T> {
  return a === null ? b : new Set([...a].filter((v) => b.has(v)));
}

function readValue(value: unknown, at: string, field: NumberField | CategoryField, schemaName: string): WhereValue {
  if (field.type === 'number') {
    if (typeof value !== 'number' || !Number.isFinite(value)) {
      throw new QueryError(`${at}: must be a finite number; "${field.name}" is a number field`);
    }
    return value;
  }
  if (typeof value !== 'string') throw new QueryError(`${at}: must be a string; "${field.name}" is a category field of study "${schemaName}"`);
  if (!field.values.includes(value)) {
    const known = field.values.map((v) => JSON.stringify(v)).join(', ');
    throw new QueryError(`${at}: ${JSON.stringify(value)} is not a value of "${field.name}" (expected one of ${known})`);
  }
  return value;
}

function sortBigints(values: Iterable<bigint>): bigint[] {
  return [...values].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/** Is there an integer in [lo, hi] (null = unbounded) that passes `only` / `not`? */
function satisfiable(lo: bigint | null, hi: bigint | null, only: Set<bigint> | null, not: Set<bigint>): boolean {
  const within = (v: bigint): boolean => (lo === null || v >= lo) && (hi === null || v <= hi) && !not.has(v);
  if (only !== null) return [...only].some(within);
  if (lo === null || hi === null) return true;
  if (lo > hi) return false;
  let excluded = 0n;
  for (const v of not) if (v >= lo && v <= hi) excluded++;
  return excluded < hi - lo + 1n;
}

function finishNumber(acc: NumberAccumulator): NumberFilter {
  const { field, min, max, only, not } = acc;
  const { min: bmin, max: bmax } = field.bounds;
  const lo = min === null || min < bmin ? bmin : min;
  const hi = max === null || max > bmax ? bmax : max;
  if (!satisfiable(lo, hi, only, not)) {
    const byThemselves = satisfiable(min, max, only, not);
    const range = `${formatFixed(bmin, field.decimals)} to ${formatFixed(bmax, field.decimals)}`;
    throw new QueryError(
      `where: conditions on "${field.name}" can never all hold${byThemselves ? ` within its range ${range}` : ''} (${acc.conditions.join('; ')})`,
    );
  }
  const inRange = (v: bigint): boolean => (min === null || v >= min) && (max === null || v <= max);
  if (only !== null) {
    return { type: 'number', field: field.name, min: null, max: null, only: Object.freeze(sortBigints([...only].filter((v) => inRange(v) && !not.has(v)))), not: Object.freeze([]) };
  }
  return { type: 'number', field: field.name, min, max, only: null, not: Object.freeze(sortBigints([...not].filter(inRange))) };
}

function finishCategory(acc: CategoryAccumulator): CategoryFilter {
  const values = acc.field.values.filter((v) => acc.allowed.has(v));
  if (values.length === 0) throw new QueryError(`where: conditions on "${acc.field.name}" can never all hold (${acc.conditions.join('; ')})`);
  return { type: 'category', field: acc.field.name, values: Object.freeze(values) };
}

/**
 * Compiles a query's `where` (parsed JSON) against the schema into one filter per field named, in the order
 * the fields first appear. See the module comment for the semantics.
 *
 * @param schema the study schema
 * @param where the query's `where`: undefined or null (no filter), or a list of `{ field, op, value }`
 * @throws QueryError naming the condition (`where[1].op: unknown operator "~"`) for a malformed condition, an
 *   unknown field, an operator the field's type does not support, a value of the wrong type or not declared,
 *   and naming the field for conditions that can never all hold
 */
export function compileWhere(schema: StudySchema, where: unknown): RecordFilter[] {
  if (where === undefined || where === null) return [];
  if (!Array.isArray(where)) throw new QueryError('where: must be a list of conditions { field, op, value }');
  const accumulators = new Map<string, NumberAccumulator | CategoryAccumulator>();
  where.forEach((item: unknown, i) => {
    const at = `where[${i}]`;
    if (typeof item !== 'object' || item === null || Array.isArray(item)) throw new QueryError(`${at}: must be a condition { field, op, value }`);
    const { field: name, op, value } = item as { field?: unknown; op?: unknown; value?: unknown };
    if (typeof name !== 'string') throw new QueryError(`${at}.field: must name a field of study "${schema.name}"`);
    const field = schema.fields[fieldIndex(schema, name) ?? -1];
    if (field === undefined) throw new QueryError(`${at}.field: unknown field "${name}" in study "${schema.name}"`);
    if (typeof op !== 'string' || !(WHERE_OPS as readonly string[]).includes(op)) {
      throw new QueryError(`${at}.op: unknown operator ${JSON.stringify(op)} (known: ${WHERE_OPS.join(', ')})`);
    }
    const whereOp = op as WhereOp;
    if (field.type === 'category' && !['=', '!=', 'in'].includes(whereOp)) {
      throw new QueryError(`${at}.op: "${whereOp}" needs a number field; "${name}" is a category field (use =, != or in)`);
    }
    let values: WhereValue[];
    if (whereOp === 'in') {
      if (!Array.isArray(value)) throw new QueryError(`${at}.value: "in" needs a list of values`);
      values = value.map((v: unknown, j) => readValue(v, `${at}.value[${j}]`, field, schema.name));
    } else {
      if (Array.isArray(value)) throw new QueryError(`${at}.value: "${whereOp}" compares with one value; use "in" for a list`);
      values = [readValue(value, `${at}.value`, field, schema.name)];
    }
    const description = `${at} ${describe(name, whereOp, value)}`;

    let acc = accumulators.get(name);
    if (acc === undefined) {
      acc =
        field.type === 'number'
          ? { field, min: null, max: null, only: null, not: new Set(), conditions: [] }
          : { field, allowed: new Set(field.values), conditions: [] };
      accumulators.set(name, acc);
    }
    acc.conditions.push(description);

    if ('allowed' in acc) {
      const named = new Set(values as string[]);
      if (whereOp === '!=') acc.allowed.delete(values[0] as string);
      else acc.allowed = intersect(acc.allowed, named);
      return;
    }
    const numeric = acc;
    const points = (values as number[]).map((v) => fixedPoint(v, numeric.field));
    const [t] = points;
    const tighten = (lo: bigint | null, hi: bigint | null): void => {
      if (lo !== null && (numeric.min === null || lo > numeric.min)) numeric.min = lo;
      if (hi !== null && (numeric.max === null || hi < numeric.max)) numeric.max = hi;
    };
    switch (whereOp) {
      case '<':
        tighten(null, ceilDiv(t!.n, t!.d) - 1n);
        break;
      case '<=':
        tighten(null, floorDiv(t!.n, t!.d));
        break;
      case '>':
        tighten(floorDiv(t!.n, t!.d) + 1n, null);
        break;
      case '>=':
        tighten(ceilDiv(t!.n, t!.d), null);
        break;
      case '!=':
        if (t!.integer !== null) numeric.not.add(t!.integer);
        break;
      case '=':
      case 'in':
        // A value between two representable ones can never be equal to a record's value.
        numeric.only = intersect(numeric.only, new Set(points.flatMap((p) => (p.integer === null ? [] : [p.integer]))));
        break;
    }
  });
  return [...accumulators.values()].map((acc) => Object.freeze('allowed' in acc ? finishCategory(acc) : finishNumber(acc)));
}
