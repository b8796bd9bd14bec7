import type { DataRecord, RecordSource } from './csv';
import { fieldIndex, type StudySchema } from './schema';
import type { AggregateTerm, CompiledQuery, RecordFilter } from './query';

/**
 * Local aggregation (DESIGN.md "Queries"): a participant sums the compiled query's linear terms over its own
 * records, so MPC runs once per participant rather than once per record. The result is secret: it leaves
 * the participant only as shares or ciphertexts and is never logged.
 */

/** A participant's aggregate vector (exact signed integers, one per coordinate) and how many records it read. */
export interface LocalAggregate {
  readonly vector: bigint[];
  /** Records read, filtered ones included. */
  readonly records: number;
  /** Records that met the query's conditions (and, grouped, have a group value): the ones the vector is over. */
  readonly matched: number;
}

const COUNT = 0;
const SUM = 1;
const SUM_OF_SQUARES = 2;
const SUM_OF_PRODUCTS = 3;
const BIN = 4;

/** The per-record step of each term kind, as a small code for the hot loop. Add a case for a new kind. */
function opcode(term: AggregateTerm): number {
  switch (term.kind) {
    case 'count':
      return COUNT;
    case 'sum':
      return SUM;
    case 'sumOfSquares':
      return SUM_OF_SQUARES;
    case 'sumOfProducts':
      return SUM_OF_PRODUCTS;
    case 'bin':
      return BIN;
    default: {
      const unknown: never = term;
      throw new TypeError(`no aggregation step for term ${JSON.stringify(unknown)}`);
    }
  }
}

function indexOf(schema: StudySchema, name: string): number {
  const f = fieldIndex(schema, name);
  if (f === undefined) throw new TypeError(`the compiled query names "${name}", which is no field of the schema`);
  return f;
}

/** A where filter in the form the loop tests: sets for membership, bigints for limits. */
interface FilterStep {
  readonly field: number;
  readonly category: ReadonlySet<string> | null;
  readonly only: ReadonlySet<bigint> | null;
  readonly not: ReadonlySet<bigint> | null;
  readonly min: bigint | null;
  readonly max: bigint | null;
}

function filterStep(schema: StudySchema, filter: RecordFilter): FilterStep {
  const field = indexOf(schema, filter.field);
  if (filter.type === 'category') return { field, category: new Set(filter.values), only: null, not: null, min: null, max: null };
  return {
    field,
    category: null,
    only: filter.only === null ? null : new Set(filter.only),
    not: filter.not.length === 0 ? null : new Set(filter.not),
    min: filter.min,
    max: filter.max,
  };
}

/**
 * The bins of one field, however many histograms asked for them: the distinct thresholds of all its bin
 * terms, sorted, split the line into cells (cell c holds the values with exactly c thresholds ≤ v). A record
 * costs one binary search and one increment; each bin term is a run of cells, summed once at the end.
 */
interface BinnedField {
  readonly field: number;
  readonly thresholds: readonly bigint[];
  /** Offset of this field's cells in the per-group cell block. */
  readonly offset: number;
}

function cellOf(thresholds: readonly bigint[], v: bigint): number {
  let lo = 0;
  let hi = thresholds.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (thresholds[mid]! <= v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * Computes the participant's local aggregate vector for a compiled query, streaming: each record is read
 * once and dropped. A record that fails the query's where, or (grouped) has no group value, adds nothing.
 * Otherwise, in its group's block of the vector (coordinate g·T + t), each term adds over the records where
 * its field (and `pairedWith`) is present: count 1, sum the fixed-point value v, sumOfSquares v², sumOfProducts
 * v·w, bin 1 when from ≤ v < to.
 *
 * The plan (opcodes, field positions, filter sets, bin thresholds) is built once before the loop; counts are
 * kept as doubles (exact below 2^53) and sums as bigints, so the loop allocates nothing per record beyond the
 * bigint arithmetic itself.
 *
 * @param compiled the compiled query (its schema fixes the record layout)
 * @param records records in schema field order, e.g. from {@link readRecords}
 * @returns the vector (length `compiled.vectorLength`), the number of records read (filtered ones included) and
 *   the number that met the query's conditions
 * @throws TypeError when a record has the wrong length, a summed, binned or compared number is not a bigint,
 *   or a category value used by where or groupBy is not a string of the field (the records were not
 *   produced against this schema)
 */
export async function aggregateLocal(
  compiled: CompiledQuery,
  records: AsyncIterable<DataRecord> | Iterable<DataRecord>,
): Promise<LocalAggregate> {
  const { schema } = compiled;
  const width = schema.fields.length;
  const termCount = compiled.terms.length;
  const groupCount = compiled.groups.length;

  // Linear terms (everything but bins) in the loop's form.
  const linear: number[] = [];
  const ops = new Uint8Array(termCount);
  const fields = new Int32Array(termCount);
  const paired = new Int32Array(termCount).fill(-1);
  // Bins: one BinnedField per field, and for each bin term its run of cells [cellFrom, cellTo).
  const binned = new Map<number, { thresholds: Set<bigint>; terms: number[] }>();
  compiled.terms.forEach((term, t) => {
    const field = indexOf(schema, term.field);
    ops[t] = opcode(term);
    fields[t] = field;
    if (term.kind === 'bin') {
      let entry = binned.get(field);
      if (entry === undefined) binned.set(field, (entry = { thresholds: new Set(), terms: [] }));
      if (term.from !== null) entry.thresholds.add(term.from);
      if (term.to !== null) entry.thresholds.add(term.to);
      entry.terms.push(t);
      return;
    }
    if (term.pairedWith !== undefined) paired[t] = indexOf(schema, term.pairedWith);
    linear.push(t);
  });
  const linearTerms = Int32Array.from(linear);
  const binnedFields: BinnedField[] = [];
  const cellFrom = new Int32Array(termCount);
  const cellTo = new Int32Array(termCount);
  let cellsPerGroup = 0;
  for (const [field, entry] of binned) {
    const thresholds = [...entry.thresholds].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    const cell = (threshold: bigint): number => thresholds.indexOf(threshold) + 1;
    for (const t of entry.terms) {
      const term = compiled.terms[t] as AggregateTerm<'bin'>;
      cellFrom[t] = cellsPerGroup + (term.from === null ? 0 : cell(term.from));
      cellTo[t] = cellsPerGroup + (term.to === null ? thresholds.length + 1 : cell(term.to));
    }
    binnedFields.push({ field, thresholds, offset: cellsPerGroup });
    cellsPerGroup += thresholds.length + 1;
  }

  const filters = compiled.where.map((f) => filterStep(schema, f));
  const groupField = compiled.groupBy === null ? -1 : indexOf(schema, compiled.groupBy);
  const groupOf = new Map(compiled.groups.map((g, i) => [g, i]));

  const counts = new Float64Array(termCount * groupCount);
  const sums = new Array<bigint>(termCount * groupCount).fill(0n);
  const cells = new Float64Array(cellsPerGroup * groupCount);
  let n = 0;
  let matched = 0;

  const passes = (record: DataRecord): boolean => {
    for (const f of filters) {
      const v = record[f.field];
      if (v === null || v === undefined) return false;
      if (f.category !== null) {
        if (typeof v !== 'string') throw new TypeError(`record ${n + 1}: a filtered category value is not a string`);
        if (!f.category.has(v)) return false;
        continue;
      }
      if (typeof v !== 'bigint') throw new TypeError(`record ${n + 1}: a filtered value is not a fixed-point integer`);
      if (f.only !== null) {
        if (!f.only.has(v)) return false;
        continue;
      }
      if ((f.min !== null && v < f.min) || (f.max !== null && v > f.max) || (f.not !== null && f.not.has(v))) return false;
    }
    return true;
  };

  const add = (record: DataRecord): void => {
    if (record.length !== width) throw new TypeError(`record ${n + 1} has ${record.length} values, expected ${width}`);
    if (filters.length > 0 && !passes(record)) {
      n++;
      return;
    }
    let g = 0;
    if (groupField >= 0) {
      const value = record[groupField];
      if (value === null || value === undefined) {
        n++;
        return;
      }
      const index = typeof value === 'string' ? groupOf.get(value) : undefined;
      if (index === undefined) throw new TypeError(`record ${n + 1}: the group value is not one of the declared values of "${compiled.groupBy}"`);
      g = index;
    }
    matched++;
    const base = g * termCount;
    for (let k = 0; k < linearTerms.length; k++) {
      const t = linearTerms[k]!;
      const v = record[fields[t]!];
      if (v === null || v === undefined) continue;
      const p = paired[t]!;
      const w = p < 0 ? undefined : record[p];
      if (w === null) continue;
      const op = ops[t];
      if (op === COUNT) {
        counts[base + t]!++;
        continue;
      }
      if (typeof v !== 'bigint') throw new TypeError(`record ${n + 1}: a summed value is not a fixed-point integer`);
      if (op === SUM) {
        sums[base + t]! += v;
      } else if (op === SUM_OF_SQUARES) {
        sums[base + t]! += v * v;
      } else {
        if (typeof w !== 'bigint') throw new TypeError(`record ${n + 1}: a summed value is not a fixed-point integer`);
        sums[base + t]! += v * w;
      }
    }
    const cellBase = g * cellsPerGroup;
    for (const b of binnedFields) {
      const v = record[b.field];
      if (v === null || v === undefined) continue;
      if (typeof v !== 'bigint') throw new TypeError(`record ${n + 1}: a binned value is not a fixed-point integer`);
      cells[cellBase + b.offset + cellOf(b.thresholds, v)]!++;
    }
    n++;
  };

  if (isRecordSource(records)) {
    // One await per input chunk rather than per record: the await was ~15% of a large query's time.
    for await (const batch of records.batches()) for (const record of batch) add(record);
  } else if (Symbol.asyncIterator in records) {
    for await (const record of records) add(record);
  } else {
    for (const record of records) add(record);
  }

  const vector = new Array<bigint>(termCount * groupCount);
  for (let g = 0; g < groupCount; g++) {
    for (let t = 0; t < termCount; t++) {
      const i = g * termCount + t;
      if (ops[t] === COUNT) {
        vector[i] = BigInt(counts[i]!);
      } else if (ops[t] === BIN) {
        let total = 0;
        for (let c = cellFrom[t]!; c < cellTo[t]!; c++) total += cells[g * cellsPerGroup + c]!;
        vector[i] = BigInt(total);
      } else {
        vector[i] = sums[i]!;
      }
    }
  }
  return { vector, records: n, matched };
}

function isRecordSource(records: object): records is RecordSource {
  return typeof (records as Partial<RecordSource>).batches === 'function';
}
