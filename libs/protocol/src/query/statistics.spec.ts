import fc from 'fast-check';
import { aggregateLocal } from './aggregate';
import type { DataRecord } from './csv';
import { ratioToNumber, sqrtRatioToNumber } from '../exact';
import { compileQuery, deriveResults, type QuerySpec, type StatResult, type StatResultOf, type WhereCondition } from './query';
import { parseStudySchema } from './schema';

/**
 * Every statistic end to end (compile → local aggregation at several participants → summed totals → derive),
 * on generated records with missing values, against a plain computation in doubles and against the exact
 * rational computed another way (two-pass, from the raw values) and rounded once.
 */

const schema = parseStudySchema({
  name: 'stats',
  fields: [
    { name: 'x', type: 'number', min: -1000, max: 1000, decimals: 2 },
    { name: 'y', type: 'number', min: 0, max: 500, decimals: 1 },
    { name: 'k', type: 'number', min: 0, max: 10, decimals: 0 },
    { name: 'g', type: 'category', values: ['a', 'b', 'c'] },
  ],
});
const X = 0;
const Y = 1;
const K = 2;
const G = 3;
const SCALE = [100n, 10n, 1n];

type Row = [bigint | null, bigint | null, bigint | null, string | null];

const maybe = <T>(arb: fc.Arbitrary<T>): fc.Arbitrary<T | null> => fc.option(arb, { nil: null, freq: 6 });
const rowArb: fc.Arbitrary<Row> = fc.tuple(
  maybe(fc.bigInt({ min: -100000n, max: 100000n })),
  maybe(fc.bigInt({ min: 0n, max: 5000n })),
  maybe(fc.bigInt({ min: 0n, max: 10n })),
  maybe(fc.constantFrom('a', 'b', 'c')),
);
const rowsArb = fc.array(rowArb, { maxLength: 60 });

/** Runs the query as three participants would, each over a third of the records, and derives the results. */
async function run(query: QuerySpec, rows: readonly DataRecord[]): Promise<StatResult[]> {
  const compiled = compileQuery(schema, query);
  const third = Math.ceil(rows.length / 3);
  const parts = [rows.slice(0, third), rows.slice(third, 2 * third), rows.slice(2 * third)];
  const locals = await Promise.all(parts.map((p) => aggregateLocal(compiled, p)));
  const totals = locals.reduce((acc, l) => acc.map((v, i) => v + l.vector[i]!), new Array<bigint>(compiled.vectorLength).fill(0n));
  return deriveResults(compiled, totals);
}

async function one<S extends StatResult['stat']>(stat: S, query: QuerySpec, rows: readonly DataRecord[]): Promise<StatResultOf<S>> {
  const [result] = await run(query, rows);
  expect(result?.stat).toBe(stat);
  return result as unknown as StatResultOf<S>;
}

const present = (rows: readonly Row[], f: number): bigint[] => rows.flatMap((r) => (r[f] === null ? [] : [r[f] as bigint]));
const pairs = (rows: readonly Row[], fx: number, fy: number): [bigint, bigint][] =>
  rows.flatMap((r) => (r[fx] === null || r[fy] === null ? [] : [[r[fx] as bigint, r[fy] as bigint] as [bigint, bigint]]));
const sum = (vs: readonly bigint[]): bigint => vs.reduce((a, b) => a + b, 0n);

/** Plain double statistics, two-pass, the way one would write them without this library. */
const plain = {
  mean: (xs: number[]): number | null => (xs.length === 0 ? null : xs.reduce((a, b) => a + b, 0) / xs.length),
  variance(xs: number[]): number | null {
    if (xs.length < 2) return null;
    const m = plain.mean(xs)!;
    return xs.reduce((a, x) => a + (x - m) ** 2, 0) / (xs.length - 1);
  },
  cov(xs: number[], ys: number[]): number {
    const mx = plain.mean(xs)!;
    const my = plain.mean(ys)!;
    return xs.reduce((a, x, i) => a + (x - mx) * (ys[i]! - my), 0) / (xs.length - 1);
  },
};

function expectClose(actual: number | null, expected: number | null, relative: number): void {
  if (expected === null) {
    expect(actual).toBeNull();
    return;
  }
  expect(actual).not.toBeNull();
  expect(Math.abs(actual! - expected)).toBeLessThanOrEqual(relative * Math.max(1, Math.abs(expected)));
}

/** Two-pass exact moments of fixed-point values: n·Σ over (n·u − Σu)(n·v − Σv), which is n³ times the co-spread. */
function centered(us: readonly bigint[], vs: readonly bigint[]): bigint {
  const n = BigInt(us.length);
  const su = sum(us);
  const sv = sum(vs);
  return us.reduce((a, u, i) => a + (n * u - su) * (n * vs[i]! - sv), 0n);
}

describe('statistics against plaintext and exact references', () => {
  it('count, sum and mean', async () => {
    await fc.assert(
      fc.asyncProperty(rowsArb, async (rows) => {
        const vs = present(rows, X);
        const [count, total, mean] = await run({ select: [{ stat: 'count', field: 'x' }, { stat: 'sum', field: 'x' }, { stat: 'mean', field: 'x' }] }, rows);
        expect(count).toEqual({ stat: 'count', field: 'x', group: null, value: vs.length, count: vs.length });
        expect(total).toEqual({ stat: 'sum', field: 'x', group: null, value: ratioToNumber(sum(vs), 100n), count: vs.length });
        expect(mean?.value).toBe(vs.length === 0 ? null : ratioToNumber(sum(vs), BigInt(vs.length) * 100n));
        expectClose(mean!.value as number | null, plain.mean(vs.map((v) => Number(v) / 100)), 1e-12);
      }),
    );
  });

  it('variance and stddev (sample, n − 1)', async () => {
    await fc.assert(
      fc.asyncProperty(rowsArb, fc.constantFrom(X, Y, K), async (rows, f) => {
        const name = schema.fields[f]!.name;
        const vs = present(rows, f);
        const scale = SCALE[f]!;
        const variance = await one('variance', { select: [{ stat: 'variance', field: name }] }, rows);
        const stddev = await one('stddev', { select: [{ stat: 'stddev', field: name }] }, rows);
        expect(variance.count).toBe(vs.length);
        expect(stddev.count).toBe(vs.length);
        if (vs.length < 2) {
          expect(variance.value).toBeNull();
          expect(stddev.value).toBeNull();
          return;
        }
        const n = BigInt(vs.length);
        // Σ(n·v − Σv)² / (n²·(n − 1)·scale²), the two-pass form of the exact sample variance.
        const num = centered(vs, vs);
        const den = n * n * (n - 1n) * scale * scale;
        expect(variance.value).toBe(ratioToNumber(num, den));
        expect(stddev.value).toBe(sqrtRatioToNumber(num, den));
        const doubles = vs.map((v) => Number(v) / Number(scale));
        expectClose(variance.value, plain.variance(doubles), 1e-9);
        expectClose(stddev.value, Math.sqrt(plain.variance(doubles)!), 1e-9);
      }),
    );
  });

  it('variance of no value and of one value is null, of two equal values zero', async () => {
    const q: QuerySpec = { select: [{ stat: 'variance', field: 'y' }, { stat: 'stddev', field: 'y' }] };
    expect((await run(q, [])).map((r) => [r.value, r.count])).toEqual([[null, 0], [null, 0]]);
    expect((await run(q, [[null, 5n, null, null]])).map((r) => [r.value, r.count])).toEqual([[null, 1], [null, 1]]);
    expect((await run(q, [[null, 5n, null, null], [1n, 5n, null, null], [null, null, null, null]])).map((r) => [r.value, r.count])).toEqual([[0, 2], [0, 2]]);
  });

  it('matches R on a small example: var(c(2.5, 3, 4.5)) and sd', async () => {
    const rows: Row[] = [[null, 25n, null, null], [null, 30n, null, null], [null, 45n, null, null]];
    const [v, s] = await run({ select: [{ stat: 'variance', field: 'y' }, { stat: 'stddev', field: 'y' }] }, rows);
    expect(v?.value).toBe(1.0833333333333333);
    expect(s?.value).toBe(1.0408329997330663);
  });

  it('correlation and regression over the pairwise-complete records', async () => {
    await fc.assert(
      fc.asyncProperty(rowsArb, async (rows) => {
        const ps = pairs(rows, X, Y);
        const us = ps.map((p) => p[0]);
        const vs = ps.map((p) => p[1]);
        const cor = await one('correlation', { select: [{ stat: 'correlation', x: 'x', y: 'y' }] }, rows);
        const reg = await one('regression', { select: [{ stat: 'regression', x: 'x', y: 'y' }] }, rows);
        expect(cor).toMatchObject({ x: 'x', y: 'y', group: null, count: ps.length });
        expect(reg).toMatchObject({ x: 'x', y: 'y', group: null, count: ps.length });
        const cxy = centered(us, vs);
        const cxx = centered(us, us);
        const cyy = centered(vs, vs);
        if (ps.length < 2 || cxx === 0n) {
          expect(reg.value).toBeNull();
          expect(cor.value).toBeNull();
          return;
        }
        const slope = { n: cxy * 100n, d: cxx * 10n };
        expect(reg.value?.slope).toBe(ratioToNumber(slope.n, slope.d));
        // intercept = ȳ − slope·x̄ = Σv/(n·10) − (slope.n/slope.d)·Σu/(n·100).
        const n = BigInt(ps.length);
        expect(reg.value?.intercept).toBe(ratioToNumber(sum(vs) * 100n * slope.d - slope.n * sum(us) * 10n, n * 1000n * slope.d));
        const xs = us.map((u) => Number(u) / 100);
        const ys = vs.map((v) => Number(v) / 10);
        expectClose(reg.value!.slope, plain.cov(xs, ys) / plain.variance(xs)!, 1e-6);
        expectClose(reg.value!.intercept, plain.mean(ys)! - (plain.cov(xs, ys) / plain.variance(xs)!) * plain.mean(xs)!, 1e-6);
        if (cyy === 0n) {
          expect(cor.value).toBeNull();
          expect(reg.value?.r2).toBeNull();
          return;
        }
        const r = sqrtRatioToNumber(cxy * cxy, cxx * cyy);
        expect(cor.value).toBe(cxy < 0n ? -r : r);
        expect(Math.abs(cor.value!)).toBeLessThanOrEqual(1);
        expect(reg.value?.r2).toBe(ratioToNumber(cxy * cxy, cxx * cyy));
        expectClose(cor.value, plain.cov(xs, ys) / Math.sqrt(plain.variance(xs)! * plain.variance(ys)!), 1e-6);
      }),
    );
  });

  it('matches R on a small example: cor and lm(y ~ x)', async () => {
    // R: x <- c(1, 2, 3, 4, 5); y <- c(2.1, 3.9, 6.2, 7.8, 10.1); cor(x, y); coef(lm(y ~ x)); summary(lm(y ~ x))$r.squared
    const rows: Row[] = [100n, 200n, 300n, 400n, 500n].map((x, i): Row => [x, [21n, 39n, 62n, 78n, 101n][i]!, null, null]);
    rows.push([600n, null, null, null], [null, 70n, null, null]);
    const [cor, reg] = await run({ select: [{ stat: 'correlation', x: 'x', y: 'y' }, { stat: 'regression', x: 'x', y: 'y' }] }, rows);
    expect(cor?.count).toBe(5);
    expect(cor?.value).toBeCloseTo(0.9986517555689657, 14);
    expect(reg?.value).toEqual({ slope: expect.closeTo(1.99, 14) as number, intercept: expect.closeTo(0.05, 14) as number, r2: expect.closeTo(0.9973053289009771, 14) as number });
  });

  it('correlation is symmetric and shares its terms with regression, and of a field with itself is 1', async () => {
    const compiled = compileQuery(schema, {
      select: [
        { stat: 'correlation', x: 'x', y: 'y' },
        { stat: 'correlation', x: 'y', y: 'x' },
        { stat: 'regression', x: 'y', y: 'x' },
      ],
    });
    expect(compiled.vectorLength).toBe(6);
    const rows: Row[] = [[100n, 20n, null, null], [250n, 10n, null, null], [-300n, 70n, null, null]];
    const [a, b, self] = await run({ select: [{ stat: 'correlation', x: 'x', y: 'y' }, { stat: 'correlation', x: 'y', y: 'x' }, { stat: 'correlation', x: 'k', y: 'k' }] }, [...rows, [null, null, 3n, null], [null, null, 4n, null]]);
    expect(a?.value).toBe(b?.value);
    expect(self).toEqual({ stat: 'correlation', x: 'k', y: 'k', group: null, value: 1, count: 2 });
  });

  it('regression with a constant y has slope 0 and no r²; with a constant x none at all', async () => {
    const rows: Row[] = [[100n, 20n, null, null], [200n, 20n, null, null], [300n, 20n, null, null]];
    expect((await one('regression', { select: [{ stat: 'regression', x: 'x', y: 'y' }] }, rows)).value).toEqual({ slope: 0, intercept: 2, r2: null });
    expect((await one('regression', { select: [{ stat: 'regression', x: 'y', y: 'x' }] }, rows)).value).toBeNull();
    expect((await one('correlation', { select: [{ stat: 'correlation', x: 'y', y: 'x' }] }, rows)).value).toBeNull();
  });
});

describe('histograms', () => {
  /** The bins of sorted edges counted directly, in doubles (exact here: two decimals on both sides). */
  function plainHistogram(values: readonly bigint[], edges: readonly number[]): { counts: number[]; underflow: number; overflow: number } {
    const xs = values.map((v) => Number(v) / 100);
    return {
      counts: edges.slice(1).map((hi, i) => xs.filter((x) => x >= edges[i]! && x < hi).length),
      underflow: xs.filter((x) => x < edges[0]!).length,
      overflow: xs.filter((x) => x >= edges[edges.length - 1]!).length,
    };
  }

  it('counts each value in its left-closed bin [a, b), as a plain count does', async () => {
    const edgesArb = fc
      .uniqueArray(fc.integer({ min: -120000, max: 120000 }), { minLength: 2, maxLength: 12 })
      .map((cs) => cs.sort((a, b) => a - b).map((c) => c / 100));
    await fc.assert(
      fc.asyncProperty(rowsArb, edgesArb, async (rows, edges) => {
        const h = await one('histogram', { select: [{ stat: 'histogram', field: 'x', edges }] }, rows);
        const vs = present(rows, X);
        const expected = plainHistogram(vs, edges);
        expect(h.value.bins).toEqual(edges.slice(1).map((max, i) => ({ min: edges[i], max, count: expected.counts[i] })));
        expect(h.value.underflow).toBe(expected.underflow);
        expect(h.value.overflow).toBe(expected.overflow);
        expect(h.count).toBe(vs.length);
      }),
    );
  });

  it('puts a value equal to min in the first bin and a value equal to max in the overflow', async () => {
    const rows: Row[] = [[null, 0n, null, null], [null, 99n, null, null], [null, 100n, null, null], [null, 500n, null, null], [null, 4999n, null, null], [null, 5000n, null, null]];
    const h = await one('histogram', { select: [{ stat: 'histogram', field: 'y', bins: { min: 10, max: 500, width: 245 } }] }, rows);
    expect(h).toEqual({
      stat: 'histogram',
      field: 'y',
      group: null,
      value: { bins: [{ min: 10, max: 255, count: 2 }, { min: 255, max: 500, count: 1 }], underflow: 2, overflow: 1 },
      count: 6,
    });
  });

  it('ends equal-width bins at max, the last one narrower, with exact decimal edges', async () => {
    const h = await one('histogram', { select: [{ stat: 'histogram', field: 'x', bins: { min: 0.1, max: 0.75, width: 0.1 } }] }, [[30n, null, null, null], [74n, null, null, null], [75n, null, null, null]]);
    expect(h.value.bins.map((b) => [b.min, b.max, b.count])).toEqual([
      [0.1, 0.2, 0],
      [0.2, 0.3, 0],
      [0.3, 0.4, 1],
      [0.4, 0.5, 0],
      [0.5, 0.6, 0],
      [0.6, 0.7, 0],
      [0.7, 0.75, 1],
    ]);
    expect(h.value.overflow).toBe(1);
  });

  it('places edges finer than the field exactly: on an integer field, [2.5, 5) holds 3 and 4', async () => {
    const rows: Row[] = [2n, 3n, 4n, 5n].map((k): Row => [null, null, k, null]);
    const h = await one('histogram', { select: [{ stat: 'histogram', field: 'k', edges: [2.5, 5, 5.2, 5.9] }] }, rows);
    expect(h.value).toEqual({ bins: [{ min: 2.5, max: 5, count: 2 }, { min: 5, max: 5.2, count: 1 }, { min: 5.2, max: 5.9, count: 0 }], underflow: 1, overflow: 0 });
  });

  it('handles overlapping histograms on one field and equal-width ones that agree with explicit edges', async () => {
    await fc.assert(
      fc.asyncProperty(rowsArb, async (rows) => {
        const results = await run(
          {
            select: [
              { stat: 'histogram', field: 'y', bins: { min: 0, max: 500, width: 50 } },
              { stat: 'histogram', field: 'y', edges: [0, 50, 100, 150, 200, 250, 300, 350, 400, 450, 500] },
              { stat: 'histogram', field: 'y', edges: [25, 125, 480] },
            ],
          },
          rows,
        );
        expect(results[0]?.value).toEqual(results[1]?.value);
        const expected = plainHistogram(present(rows, Y).map((v) => v * 10n), [25, 125, 480]);
        expect((results[2] as StatResultOf<'histogram'>).value.bins.map((b) => b.count)).toEqual(expected.counts);
      }),
    );
  });
});

describe('where and groupBy', () => {
  const select: QuerySpec['select'] = [
    { stat: 'count', field: 'x' },
    { stat: 'mean', field: 'y' },
    { stat: 'stddev', field: 'x' },
    { stat: 'histogram', field: 'k', bins: { min: 0, max: 10, width: 3 } },
    { stat: 'correlation', x: 'x', y: 'k' },
    { stat: 'regression', x: 'k', y: 'y' },
    { stat: 'count', field: 'g' },
  ];

  it('gives per group exactly what the ungrouped query gives on that group alone, in group order', async () => {
    const whereArb = fc.constantFrom<WhereCondition[]>([], [{ field: 'k', op: '>=', value: 3 }], [{ field: 'y', op: '<', value: 250.05 }, { field: 'x', op: '!=', value: 0 }]);
    await fc.assert(
      fc.asyncProperty(rowsArb, whereArb, async (rows, where) => {
        const grouped = await run({ select, where, groupBy: 'g' }, rows);
        expect(grouped).toHaveLength(select.length * 3);
        expect(grouped.map((r) => r.group)).toEqual(['a', 'b', 'c'].flatMap((g) => select.map(() => g)));
        for (const [i, g] of ['a', 'b', 'c'].entries()) {
          const alone = await run({ select, where }, rows.filter((r) => r[G] === g));
          const viaWhere = await run({ select, where: [...where, { field: 'g', op: '=', value: g }] }, rows);
          const mine = grouped.slice(i * select.length, (i + 1) * select.length);
          expect(mine).toEqual(alone.map((r) => ({ ...r, group: g })));
          expect(mine).toEqual(viaWhere.map((r) => ({ ...r, group: g })));
        }
      }),
      { numRuns: 50 },
    );
  });

  it('skips records whose group value is missing', async () => {
    const rows: Row[] = [[100n, null, null, 'a'], [200n, null, null, null], [300n, null, null, 'c']];
    const results = await run({ select: [{ stat: 'count', field: 'x' }], groupBy: 'g' }, rows);
    expect(results).toEqual([
      { stat: 'count', field: 'x', group: 'a', value: 1, count: 1 },
      { stat: 'count', field: 'x', group: 'b', value: 0, count: 0 },
      { stat: 'count', field: 'x', group: 'c', value: 1, count: 1 },
    ]);
  });

  it('applies where to every statistic, and the missing value of a where field drops the record', async () => {
    await fc.assert(
      fc.asyncProperty(rowsArb, async (rows) => {
        const kept = rows.filter((r) => r[K] !== null && r[K] >= 4n && r[K] < 8n && r[G] !== 'b' && r[G] !== null);
        const where: WhereCondition[] = [
          { field: 'k', op: '>', value: 3.5 },
          { field: 'k', op: '<', value: 8 },
          { field: 'g', op: 'in', value: ['a', 'c'] },
        ];
        expect(await run({ select, where }, rows)).toEqual(await run({ select }, kept));
      }),
    );
  });
});
