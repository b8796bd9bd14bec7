import { Readable } from 'node:stream';
import { generateSalaryCsv, plainCategoryCounts, plainStats, syntheticSalaryStudy } from '../../../../test/support/synthetic';
import { aggregateLocal } from './aggregate';
import { readRecords } from './csv';
import { assertNoOverflow, compileQuery, deriveResults, termKey } from './query';
import { parseStudySchema } from './schema';

/**
 * The participant's whole local path on synthetic data (CSV stream -> records -> local aggregate), summed over
 * several participants as the MPC would, and checked against a plain-JS reference computed without this library.
 */
describe('local pipeline on synthetic salary data', () => {
  const schema = parseStudySchema(syntheticSalaryStudy());
  const compiled = compileQuery(schema, {
    select: [
      { stat: 'count', field: 'salary' },
      { stat: 'sum', field: 'salary' },
      { stat: 'mean', field: 'salary' },
      { stat: 'mean', field: 'yrs_since_phd' },
      { stat: 'count', field: 'rank' },
    ],
  });

  it('generates the same data for the same seed, and different data for another', () => {
    expect(generateSalaryCsv(7, 50)).toBe(generateSalaryCsv(7, 50));
    expect(generateSalaryCsv(7, 50)).not.toBe(generateSalaryCsv(8, 50));
  });

  it.each([
    [[1, 2, 3], 200, 0.03],
    [[11, 12, 13, 14, 15], 97, 0.2],
    [[21, 22, 23], 1, 0],
    [[31, 32, 33, 34], 0, 0.05],
  ])('participants with seeds %p, %p rows each, missing rate %p: totals match the plain reference', async (seeds, rows, missingRate) => {
    const texts = seeds.map((seed) => generateSalaryCsv(seed, rows, { missingRate }));
    const vectors = await Promise.all(
      texts.map(async (text, i) => {
        // Stream bytes in uneven chunks, as a file read would.
        const bytes = Buffer.from(text, 'utf8');
        const size = 17 + 31 * i;
        const chunks = Array.from({ length: Math.ceil(bytes.length / size) }, (_, k) => bytes.subarray(k * size, (k + 1) * size));
        const local = await aggregateLocal(compiled, readRecords(Readable.from(chunks), schema, { source: `site-${i + 1}.csv` }));
        expect(local.records).toBe(rows);
        return local.vector;
      }),
    );
    const totals = vectors.reduce((acc, v) => acc.map((x, j) => x + v[j]!));
    assertNoOverflow(compiled, BigInt(rows * seeds.length));

    const plain = plainStats(texts);
    const salary = plain.get('salary')!;
    const years = plain.get('yrs_since_phd')!;
    const rank = plainCategoryCounts(texts).get('rank')!;
    const byTerm = new Map(compiled.terms.map((t, i) => [termKey(t), totals[i]]));
    expect(byTerm.get('count(salary)')).toBe(BigInt(salary.count));
    expect(byTerm.get('sum(salary)')).toBe(salary.sumScaled);
    expect(byTerm.get('count(yrs_since_phd)')).toBe(BigInt(years.count));
    expect(byTerm.get('sum(yrs_since_phd)')).toBe(years.sumScaled);

    const [count, sum, mean, meanYears, ranks] = deriveResults(compiled, totals);
    expect(count).toEqual({ stat: 'count', field: 'salary', group: null, value: salary.count, count: salary.count });
    expect(sum).toEqual({ stat: 'sum', field: 'salary', group: null, value: Number(salary.sumText), count: salary.count });
    if (salary.mean === null) {
      expect(mean?.value).toBeNull();
    } else {
      expect(mean?.value).toBeCloseTo(salary.mean, 6);
    }
    if (years.mean === null) expect(meanYears?.value).toBeNull();
    else expect(meanYears?.value).toBeCloseTo(years.mean, 9);
    expect(ranks).toEqual({ stat: 'count', field: 'rank', group: null, value: rank.count, count: rank.count });
    expect([...rank.byValue.values()].reduce((a, b) => a + b, 0)).toBe(rank.count);
    if (missingRate === 0) expect(rank.count).toBe(rows * seeds.length);
    else if (rows * seeds.length > 100) expect(rank.count).toBeLessThan(rows * seeds.length);
  });

  it('has missing cells and quoted cells in the generated data', () => {
    const text = generateSalaryCsv(1, 300, { missingRate: 0.05 });
    expect(text).toMatch(/(^|,)(""|)(,|\r?\n)/m);
    expect(text).toMatch(/"(AsstProf|AssocProf|Prof|Female|Male)"/);
  });
});
