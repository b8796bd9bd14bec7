import fc from 'fast-check';
import { aggregateLocal } from './aggregate';
import { readRecords, type DataRecord } from './csv';
import { compileQuery } from './query';
import { parseStudySchema } from './schema';

const schema = parseStudySchema({
  name: 'aggregate',
  fields: [
    { name: 'temp', type: 'number', min: -50, max: 50, decimals: 1 },
    { name: 'group', type: 'category', values: ['a', 'b'] },
    { name: 'n', type: 'number', min: 0, max: 1000, decimals: 0 },
  ],
});
const compiled = compileQuery(schema, {
  select: [
    { stat: 'mean', field: 'temp' },
    { stat: 'sum', field: 'n' },
    { stat: 'count', field: 'group' },
  ],
});
// Terms: count(temp), sum(temp), count(n), sum(n), count(group).

const records: DataRecord[] = [
  [12n, 'a', 5n],
  [-30n, null, 7n],
  [null, 'b', null],
  [null, null, null],
  [500n, 'a', 0n],
];

async function* asAsync<T>(items: Iterable<T>): AsyncGenerator<T> {
  for (const item of items) yield await Promise.resolve(item);
}

describe('aggregateLocal', () => {
  it('sums each term over the records where its field is present, missing values skipped', async () => {
    expect(await aggregateLocal(compiled, records)).toEqual({ vector: [3n, 482n, 3n, 12n, 3n], records: 5 });
  });

  it('reads async iterables the same as sync ones', async () => {
    expect(await aggregateLocal(compiled, asAsync(records))).toEqual(await aggregateLocal(compiled, records));
  });

  it('gives a zero vector of the compiled length for no records', async () => {
    expect(await aggregateLocal(compiled, [])).toEqual({ vector: [0n, 0n, 0n, 0n, 0n], records: 0 });
    expect(compiled.vectorLength).toBe(5);
  });

  it('treats a missing value as absent, not as zero: the mean moves when a zero is present', async () => {
    const withZero = await aggregateLocal(compiled, [[10n, null, null], [0n, null, null]]);
    const withMissing = await aggregateLocal(compiled, [[10n, null, null], [null, null, null]]);
    expect(withZero.vector.slice(0, 2)).toEqual([2n, 10n]);
    expect(withMissing.vector.slice(0, 2)).toEqual([1n, 10n]);
  });

  it('aggregates records streamed from CSV', async () => {
    const csv = 'n,temp,group\n5,1.2,a\n7,-3,\n,,b\n,,\n0,50,"a"\n';
    expect(await aggregateLocal(compiled, readRecords(csv, schema))).toEqual({ vector: [3n, 482n, 3n, 12n, 3n], records: 5 });
  });

  it('passes on a data error from the record stream', async () => {
    await expect(aggregateLocal(compiled, readRecords('n,temp,group\n5,99,a\n', schema))).rejects.toThrow(/above the study's range/);
  });

  it('refuses records that were not read against the schema', async () => {
    await expect(aggregateLocal(compiled, [[1n, 'a']])).rejects.toThrow(new TypeError('record 1 has 2 values, expected 3'));
    await expect(aggregateLocal(compiled, [[12n, 'a', 1n], ['12', 'a', 1n]])).rejects.toThrow(
      new TypeError('record 2: a summed value is not a fixed-point integer'),
    );
  });

  it('equals a naive sum over random records', async () => {
    const record = fc.tuple(
      fc.option(fc.bigInt({ min: -500n, max: 500n }), { nil: null }),
      fc.option(fc.constantFrom('a', 'b'), { nil: null }),
      fc.option(fc.bigInt({ min: 0n, max: 1000n }), { nil: null }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(record, { maxLength: 200 }), async (rs) => {
        const present = (i: number): number => rs.filter((r) => r[i] !== null).length;
        const total = (i: number): bigint => rs.reduce((s, r) => s + ((r[i] as bigint | null) ?? 0n), 0n);
        const expected = [BigInt(present(0)), total(0), BigInt(present(2)), total(2), BigInt(present(1))];
        expect(await aggregateLocal(compiled, rs)).toEqual({ vector: expected, records: rs.length });
      }),
    );
  });
});
