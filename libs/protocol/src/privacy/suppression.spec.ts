import fc from 'fast-check';
import { aggregateLocal } from '../query/aggregate';
import type { DataRecord } from '../query/csv';
import { compileQuery, deriveResults, type QuerySpec } from '../query/query';
import { parseStudySchema } from '../query/schema';
import { suppress, type ReleasedResult } from './suppression';

const schema = parseStudySchema({
  name: 'suppression',
  fields: [
    { name: 'g', type: 'category', values: ['A', 'B', 'C', 'D'] },
    { name: 'x', type: 'number', min: 0, max: 100, decimals: 0 },
    { name: 'y', type: 'number', min: 0, max: 100, decimals: 0 },
  ],
});

/** `n` records of group g with x = first, first + step, … (y = x). */
function group(g: string | null, n: number, first: number, step = 1): DataRecord[] {
  return Array.from({ length: n }, (_, i) => [g, BigInt(first + i * step), BigInt(first + i * step)]);
}

async function release(spec: QuerySpec, records: readonly DataRecord[], minGroupSize: number) {
  const compiled = compileQuery(schema, spec);
  const { vector } = await aggregateLocal(compiled, records);
  const rows = deriveResults(compiled, vector);
  return suppress(compiled, vector, rows, minGroupSize);
}

const released = (rows: readonly ReleasedResult[], stat: string, g: string | null): ReleasedResult => rows.find((r) => r.stat === stat && r.group === g)!;

describe('suppress: groups', () => {
  // A has 4 records, B 7, C 12, D 20.
  const data = [...group('A', 4, 10), ...group('B', 7, 30), ...group('C', 12, 50), ...group('D', 20, 60)];
  const grouped: QuerySpec = { select: [{ stat: 'count', field: 'x' }, { stat: 'sum', field: 'x' }, { stat: 'mean', field: 'x' }], groupBy: 'g' };

  it('withholds every statistic of a group with 4 records at minGroupSize 5 (value and count null, suppressed)', async () => {
    const { rows, suppressedCells } = await release(grouped, data, 5);
    for (const stat of ['count', 'sum', 'mean']) {
      expect(released(rows, stat, 'A')).toMatchObject({ value: null, count: null, suppressed: true });
    }
    expect(released(rows, 'mean', 'C')).toMatchObject({ value: 55.5, count: 12, suppressed: false });
    expect(released(rows, 'sum', 'D')).toMatchObject({ value: 20 * 60 + 190, count: 20, suppressed: false });
    expect(suppressedCells).toBe(6);
  });

  it('cannot be recovered from the released total: the next smallest group (B, 7) is withheld with it', async () => {
    const { rows } = await release(grouped, data, 5);
    expect(released(rows, 'sum', 'B')).toMatchObject({ value: null, count: null, suppressed: true });

    // The researcher also asks the ungrouped total (large enough to be released) and subtracts the released groups.
    const total = await release({ select: [{ stat: 'count', field: 'x' }, { stat: 'sum', field: 'x' }] }, data, 5);
    const totalCount = released(total.rows, 'count', null).value as number;
    const totalSum = released(total.rows, 'sum', null).value as number;
    const shown = rows.filter((r) => r.stat === 'sum' && !r.suppressed);
    const leftCount = totalCount - shown.reduce((n, r) => n + r.count!, 0);
    const leftSum = totalSum - shown.reduce((n, r) => n + (r.value as number), 0);
    // What is left is A and B together (4 + 7 records, 46 + 231), never A alone (4 records summing to 46).
    expect([leftCount, leftSum]).toEqual([11, 46 + 231]);
    expect(leftCount).not.toBe(4);
  });

  it('suppresses nothing when every group is large enough, and says so', async () => {
    const { rows, suppressedCells } = await release(grouped, [...group('A', 5, 1), ...group('B', 6, 1), ...group('C', 5, 1), ...group('D', 9, 1)], 5);
    expect(suppressedCells).toBe(0);
    expect(rows.every((r) => !r.suppressed && r.value !== null)).toBe(true);
  });

  it('releases an empty group (it describes no one) and does not count it as the complement of nothing', async () => {
    const { rows, suppressedCells } = await release(grouped, [...group('A', 6, 1), ...group('B', 6, 1), ...group('C', 6, 1)], 5);
    expect(released(rows, 'mean', 'D')).toMatchObject({ value: null, count: 0, suppressed: false });
    expect(suppressedCells).toBe(0);
  });

  it('withholds a statistic over too few non-missing values in a large group, with its complement, but not the group', async () => {
    // B has 10 records but y only in 3 of them.
    const withMissing: DataRecord[] = [...group('A', 8, 1), ...group('B', 3, 1), ...group('B', 7, 1).map((r) => [r[0]!, r[1]!, null]), ...group('C', 9, 1)];
    const { rows } = await release({ select: [{ stat: 'mean', field: 'x' }, { stat: 'mean', field: 'y' }], groupBy: 'g' }, withMissing, 5);
    const meanY = rows.filter((r) => r.stat === 'mean' && 'field' in r && r.field === 'y');
    const meanX = rows.filter((r) => r.stat === 'mean' && 'field' in r && r.field === 'x');
    expect(meanY.map((r) => r.suppressed)).toEqual([true, true, false, false]); // B (3) and the smallest other, A (8)
    expect(meanX.map((r) => r.suppressed)).toEqual([false, false, false, false]);
  });

  it('suppresses statistics over the same records together, so one cannot be read from another', async () => {
    const { rows } = await release(
      { select: [{ stat: 'mean', field: 'x' }, { stat: 'variance', field: 'x' }, { stat: 'histogram', field: 'x', edges: [0, 50, 100] }], groupBy: 'g' },
      data,
      5,
    );
    for (const g of ['A', 'B']) {
      for (const stat of ['mean', 'variance', 'histogram']) expect(released(rows, stat, g).suppressed).toBe(true);
    }
  });
});

describe('suppress: histograms', () => {
  // [0, 20): 3, [20, 40): 10, [40, 60): 7, [60, 80): 20, [80, 100): 0, overflow (100): 0.
  const data = [...group(null, 3, 1), ...group(null, 10, 20), ...group(null, 7, 40), ...group(null, 20, 60)];
  const histogram: QuerySpec = { select: [{ stat: 'histogram', field: 'x', edges: [0, 20, 40, 60, 80, 100] }] };

  it('withholds a bin below the threshold and the smallest non-empty bin with it, keeping empty bins and the count', async () => {
    const { rows, suppressedCells } = await release(histogram, data, 5);
    const row = released(rows, 'histogram', null);
    expect(row.suppressed).toBe(false);
    expect(row.count).toBe(40);
    expect(row.value).toEqual({
      bins: [
        { min: 0, max: 20, count: null },
        { min: 20, max: 40, count: 10 },
        { min: 40, max: 60, count: null },
        { min: 60, max: 80, count: 20 },
        { min: 80, max: 100, count: 0 },
      ],
      underflow: 0,
      overflow: 0,
    });
    expect(suppressedCells).toBe(2);
    // count − released bins = 10 = 3 + 7: the 3 is not recovered.
  });

  it('releases every bin when none is below the threshold', async () => {
    const { rows, suppressedCells } = await release(histogram, [...data, ...group(null, 2, 1)], 5);
    expect(suppressedCells).toBe(0);
    expect(released(rows, 'histogram', null).value).toMatchObject({ bins: [{ count: 5 }, { count: 10 }, { count: 7 }, { count: 20 }, { count: 0 }] });
  });

  it('withholds the whole row when the histogram itself has too few values', async () => {
    const { rows, suppressedCells } = await release(histogram, group(null, 4, 1), 5);
    expect(released(rows, 'histogram', null)).toMatchObject({ value: null, count: null, suppressed: true });
    expect(suppressedCells).toBe(1);
  });

  it('leaves no table of a grouped histogram with exactly one withheld cell (property)', () => {
    const compiled = compileQuery(schema, {
      select: [{ stat: 'count', field: 'x' }, { stat: 'histogram', field: 'x', edges: [0, 20, 40, 60] }],
      groupBy: 'g',
    });
    // Terms: count(x), then the histogram's underflow, three bins and overflow; 4 groups.
    const cellCounts = fc.array(fc.array(fc.nat({ max: 12 }), { minLength: 5, maxLength: 5 }), { minLength: 4, maxLength: 4 });
    fc.assert(
      fc.property(cellCounts, fc.integer({ min: 1, max: 7 }), (perGroup, k) => {
        const totals = perGroup.flatMap((cells) => [BigInt(cells.reduce((a, b) => a + b, 0)), ...cells.map(BigInt)]);
        const rows = deriveResults(compiled, totals);
        const out = suppress(compiled, totals, rows, k).rows;
        const counts = out.filter((r) => r.stat === 'count');
        const histograms = out.filter((r) => r.stat === 'histogram');
        // One population: the count row and the histogram row of a group stand or fall together.
        counts.forEach((r, g) => expect(r.suppressed).toBe(histograms[g]!.suppressed));
        // cell[g][c], null when withheld (a withheld row withholds all its cells).
        const cell = histograms.map((r) => {
          if (r.value === null) return [null, null, null, null, null];
          const v = r.value;
          return [v.underflow, ...v.bins.map((b) => b.count), v.overflow];
        });
        const exactlyOneWithheld = (line: readonly (number | null)[]): boolean => line.filter((c) => c === null).length === 1;
        // Whatever is released is 0 or at least k, and equals the true value.
        cell.forEach((line, g) => line.forEach((c, i) => c === null || expect(c === perGroup[g]![i]! && (c === 0 || c >= k)).toBe(true)));
        counts.forEach((r) => r.count === null || expect(r.count === 0 || r.count >= k).toBe(true));
        // Tables: the population across groups; each released row; each cell across groups.
        expect(exactlyOneWithheld(counts.map((r) => r.count))).toBe(false);
        histograms.forEach((r, g) => r.suppressed || expect(exactlyOneWithheld(cell[g]!)).toBe(false));
        for (let c = 0; c < 5; c++) expect(exactlyOneWithheld(cell.map((line) => line[c]!))).toBe(false);
      }),
      { numRuns: 500 },
    );
  });
});

describe('suppress: inputs', () => {
  const compiled = compileQuery(schema, { select: [{ stat: 'mean', field: 'x' }], groupBy: 'g' });
  const totals = [5n, 50n, 5n, 50n, 5n, 50n, 5n, 50n];
  const rows = deriveResults(compiled, totals);

  it('rejects rows or totals that do not belong to the query, and a minGroupSize below 1', () => {
    expect(() => suppress(compiled, totals, rows.slice(1), 5)).toThrow(RangeError);
    expect(() => suppress(compiled, totals, [...rows].reverse(), 5)).toThrow(RangeError);
    expect(() => suppress(compiled, totals.slice(1), rows, 5)).toThrow(RangeError);
    expect(() => suppress(compiled, totals, rows, 0)).toThrow(RangeError);
    expect(() => suppress(compiled, totals, rows, 2.5)).toThrow(RangeError);
  });

  it('with minGroupSize 1 releases everything', () => {
    expect(suppress(compiled, totals, rows, 1)).toEqual({ rows: rows.map((r) => ({ ...r, suppressed: false })), suppressedCells: 0 });
  });
});
