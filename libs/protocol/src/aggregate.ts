import type { DataRecord } from './csv';
import { fieldIndex } from './schema';
import type { AggregateTerm, CompiledQuery } from './query';

/**
 * Local aggregation (DESIGN.md "Queries"): a participant sums the compiled query's linear terms over its own
 * records, so MPC runs once per participant rather than once per record. The result is secret: it leaves
 * the participant only as shares or ciphertexts and is never logged.
 */

/** A participant's aggregate vector (exact signed integers, one per compiled term) and how many records it read. */
export interface LocalAggregate {
  readonly vector: bigint[];
  readonly records: number;
}

const COUNT = 0;
const SUM = 1;

/** The per-record step of each term kind, as a small code for the hot loop. Add a case for a new kind. */
function opcode(term: AggregateTerm): number {
  switch (term.kind) {
    case 'count':
      return COUNT;
    case 'sum':
      return SUM;
    default: {
      const unknown: never = term;
      throw new TypeError(`no aggregation step for term ${JSON.stringify(unknown)}`);
    }
  }
}

/**
 * Computes the participant's local aggregate vector for a compiled query: for each term, over every record
 * where the term's field is not missing (null), a count term adds 1 and a sum term adds the fixed-point value.
 * Counts are kept as doubles (exact below 2^53) and sums as bigints, and the term plan is precomputed, so the
 * loop allocates nothing per record beyond the bigint additions themselves.
 *
 * @param compiled the compiled query (its schema fixes the record layout)
 * @param records records in schema field order, e.g. from {@link readRecords}
 * @returns the vector (length `compiled.vectorLength`) and the number of records read
 * @throws TypeError when a record has the wrong length or a summed cell is not a bigint (the records were not
 *   produced against this schema)
 */
export async function aggregateLocal(
  compiled: CompiledQuery,
  records: AsyncIterable<DataRecord> | Iterable<DataRecord>,
): Promise<LocalAggregate> {
  const width = compiled.schema.fields.length;
  const termCount = compiled.terms.length;
  const ops = new Uint8Array(termCount);
  const fields = new Int32Array(termCount);
  compiled.terms.forEach((term, t) => {
    const f = fieldIndex(compiled.schema, term.field);
    if (f === undefined) throw new TypeError(`term ${term.kind}(${term.field}) names no field of the schema`);
    ops[t] = opcode(term);
    fields[t] = f;
  });
  const counts = new Float64Array(termCount);
  const sums = new Array<bigint>(termCount).fill(0n);
  let n = 0;

  const add = (record: DataRecord): void => {
    if (record.length !== width) throw new TypeError(`record ${n + 1} has ${record.length} values, expected ${width}`);
    for (let t = 0; t < termCount; t++) {
      const v = record[fields[t]!];
      if (v === null || v === undefined) continue;
      if (ops[t] === COUNT) {
        counts[t]!++;
      } else {
        if (typeof v !== 'bigint') throw new TypeError(`record ${n + 1}: a summed value is not a fixed-point integer`);
        sums[t]! += v;
      }
    }
    n++;
  };

  if (Symbol.asyncIterator in records) {
    for await (const record of records) add(record);
  } else {
    for (const record of records) add(record);
  }

  const vector = new Array<bigint>(termCount);
  for (let t = 0; t < termCount; t++) vector[t] = ops[t] === COUNT ? BigInt(counts[t]!) : sums[t]!;
  return { vector, records: n };
}
