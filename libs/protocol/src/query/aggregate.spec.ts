import fc from 'fast-check';
import { aggregateLocal } from './aggregate';
import { readRecords, type DataRecord } from './csv';
import { compileQuery, termKey } from './query';
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
    expect(await aggregateLocal(compiled, records)).toEqual({ vector: [3n, 482n, 3n, 12n, 3n], records: 5, matched: 5 });
  });

  it('counts the records that met the query: a where or a grouping leaves the others read but unused', async () => {
    const filtered = compileQuery(schema, { select: [{ stat: 'sum', field: 'n' }], where: [{ field: 'group', op: '=', value: 'a' }] });
    expect(await aggregateLocal(filtered, records)).toMatchObject({ records: 5, matched: 2 });
    const grouped = compileQuery(schema, { select: [{ stat: 'sum', field: 'n' }], groupBy: 'group' });
    // Grouped by a field: a record without a value for it is in no group.
    expect(await aggregateLocal(grouped, records)).toMatchObject({ records: 5, matched: 3 });
  });

  it('reads async iterables the same as sync ones', async () => {
    expect(await aggregateLocal(compiled, asAsync(records))).toEqual(await aggregateLocal(compiled, records));
  });

  it('gives a zero vector of the compiled length for no records', async () => {
    expect(await aggregateLocal(compiled, [])).toEqual({ vector: [0n, 0n, 0n, 0n, 0n], records: 0, matched: 0 });
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
    expect(await aggregateLocal(compiled, readRecords(csv, schema))).toEqual({ vector: [3n, 482n, 3n, 12n, 3n], records: 5, matched: 5 });
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
        expect(await aggregateLocal(compiled, rs)).toEqual({ vector: expected, records: rs.length, matched: rs.length });
      }),
    );
  });

  it('sums squares and pairwise-complete products, and counts bins [from, to), per group', async () => {
    const grouped = compileQuery(schema, {
      select: [
        { stat: 'variance', field: 'n' },
        { stat: 'correlation', x: 'temp', y: 'n' },
        { stat: 'histogram', field: 'temp', edges: [-1, 1.2, 50] },
      ],
      groupBy: 'group',
    });
    expect(grouped.terms.map(termKey)).toEqual([
      'count(n)',
      'sum(n)',
      'sumsq(n)',
      'count(n, temp)',
      'sum(temp | n)',
      'sum(n | temp)',
      'sumsq(temp | n)',
      'sumsq(n | temp)',
      'sumxy(n, temp)',
      'bin(temp, (-∞, -1))',
      'bin(temp, [-1, 1.2))',
      'bin(temp, [1.2, 50))',
      'bin(temp, [50, ∞))',
    ]);
    const rows: DataRecord[] = [
      [12n, 'a', 5n], // temp 1.2 is in [1.2, 50)
      [-30n, 'b', 7n],
      [null, 'b', 3n], // n without temp: in count(n) but not in the pair terms
      [500n, 'a', null], // temp 50 is in the overflow
      [-10n, 'a', 2n], // temp −1 is in [−1, 1.2)
      [11n, null, 4n], // no group: skipped entirely
    ];
    const { vector, records } = await aggregateLocal(grouped, rows);
    expect(records).toBe(6);
    expect(vector).toEqual([
      // group a: n = 5, 2; pairs (1.2, 5), (−1, 2)
      ...[2n, 7n, 29n, 2n, 2n, 7n, 244n, 29n, 40n, 0n, 1n, 1n, 1n],
      // group b: n = 7, 3; pair (−3, 7)
      ...[2n, 10n, 58n, 1n, -30n, 7n, 900n, 49n, -210n, 1n, 0n, 0n, 0n],
    ]);
  });

  it('matches a naive computation of every term kind on random records', async () => {
    const query = compileQuery(schema, {
      select: [
        { stat: 'stddev', field: 'temp' },
        { stat: 'regression', x: 'n', y: 'temp' },
        { stat: 'histogram', field: 'n', bins: { min: 100, max: 900, width: 200 } },
      ],
      where: [{ field: 'n', op: '!=', value: 500 }],
    });
    const record = fc.tuple(
      fc.option(fc.bigInt({ min: -500n, max: 500n }), { nil: null }),
      fc.option(fc.constantFrom('a', 'b'), { nil: null }),
      fc.option(fc.bigInt({ min: 0n, max: 1000n }), { nil: null }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(record, { maxLength: 100 }), async (all) => {
        const rs = all.filter((r) => r[2] !== null && r[2] !== 500n);
        const both = rs.filter((r) => r[0] !== null);
        const t = (r: (typeof rs)[number]): bigint => r[0]!;
        const n = (r: (typeof rs)[number]): bigint => r[2]!;
        const total = (xs: typeof rs, f: (r: (typeof rs)[number]) => bigint): bigint => xs.reduce((a, r) => a + f(r), 0n);
        const bin = (lo: bigint | null, hi: bigint | null): bigint => BigInt(rs.filter((r) => (lo === null || n(r) >= lo) && (hi === null || n(r) < hi)).length);
        const expected = [
          BigInt(both.length),
          total(both, t),
          total(both, (r) => t(r) * t(r)),
          total(both, n),
          total(both, (r) => n(r) * n(r)),
          total(both, (r) => n(r) * t(r)),
          bin(null, 100n),
          bin(100n, 300n),
          bin(300n, 500n),
          bin(500n, 700n),
          bin(700n, 900n),
          bin(900n, null),
        ];
        // Records without n fail the where, so the one-field temp terms and the pair terms agree here.
        const { vector } = await aggregateLocal(query, all);
        const byKey = new Map(query.terms.map((term, i) => [termKey(term), vector[i]]));
        expect(byKey.get('count(n, temp)')).toBe(expected[0]);
        expect(byKey.get('sum(temp | n)')).toBe(expected[1]);
        expect(byKey.get('sumsq(temp | n)')).toBe(expected[2]);
        expect(byKey.get('sum(n | temp)')).toBe(expected[3]);
        expect(byKey.get('sumsq(n | temp)')).toBe(expected[4]);
        expect(byKey.get('sumxy(n, temp)')).toBe(expected[5]);
        expect(['(-∞, 100)', '[100, 300)', '[300, 500)', '[500, 700)', '[700, 900)', '[900, ∞)'].map((b) => byKey.get(`bin(n, ${b})`))).toEqual(expected.slice(6));
        expect(byKey.get('count(temp)')).toBe(BigInt(both.length));
      }),
    );
  });

  it('refuses binned and group values that were not read against the schema', async () => {
    const binned = compileQuery(schema, { select: [{ stat: 'histogram', field: 'n', edges: [0, 1] }] });
    await expect(aggregateLocal(binned, [[null, 'a', '1']])).rejects.toThrow(new TypeError('record 1: a binned value is not a fixed-point integer'));
    const grouped = compileQuery(schema, { select: [{ stat: 'count', field: 'n' }], groupBy: 'group' });
    await expect(aggregateLocal(grouped, [[null, 'a', 1n], [null, 'c', 1n]])).rejects.toThrow(
      new TypeError('record 2: the group value is not one of the declared values of "group"'),
    );
  });
});

describe('aggregateLocal over a record source read in batches', () => {
  it('gives the same vector and record count as reading record by record, over many small chunks', async () => {
    const schema = parseStudySchema({
      name: 'batched',
      fields: [
        { name: 'x', type: 'number', min: -100, max: 100, decimals: 1 },
        { name: 'g', type: 'category', values: ['a', 'b'] },
      ],
    });
    const compiled = compileQuery(schema, { select: [{ stat: 'variance', field: 'x' }, { stat: 'count', field: 'g' }], groupBy: 'g' });
    const lines = ['x,g', ...Array.from({ length: 500 }, (_, i) => `${(((i * 37) % 2001) - 1000) / 10},${i % 3 === 0 ? 'a' : 'b'}`)];
    // Chunks that cut rows in the middle, so batches and rows do not line up.
    const text = `${lines.join('\n')}\n`;
    const chunks = Array.from({ length: Math.ceil(text.length / 97) }, (_, i) => text.slice(i * 97, (i + 1) * 97));
    const source = readRecords(chunks, schema);
    let batches = 0;
    const seen: DataRecord[] = [];
    for await (const batch of readRecords(chunks, schema).batches()) {
      batches++;
      seen.push(...batch);
    }
    expect(batches).toBeGreaterThan(10);
    expect(seen).toHaveLength(500);
    const perRecord = await aggregateLocal(compiled, (async function* () {
      for await (const record of readRecords(chunks, schema)) yield record;
    })());
    expect(await aggregateLocal(compiled, source)).toEqual(perRecord);
    expect(await aggregateLocal(compiled, seen)).toEqual(perRecord);
  });
});

