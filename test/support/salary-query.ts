import { isDeepStrictEqual } from 'node:util';
import { plainStats } from './synthetic';

/** The statistics the end-to-end salary queries ask for, as `confide query` flags. */
export const SALARY_SELECT = ['--stat', 'mean', '--field', 'salary', '--stat', 'sum', '--field', 'salary', '--stat', 'count', '--field', 'yrs_since_phd'] as const;

/** A query's `results` as GET /v1/queries/:id and `confide query --json` give them. */
export type StatResult = { stat: string; field: string; group: string | null; value: number | null; count: number; suppressed?: boolean };

/** How many decimals of the mean must match: the rest is the float rounding of a division the plaintext also does. */
const MEAN_DIGITS = 9;

/** The results {@link SALARY_SELECT} must give over exactly these participants' CSV texts, the mean as a plain number. */
function plainSalaryResults(texts: readonly string[]): StatResult[] {
  const plain = plainStats(texts);
  const salary = plain.get('salary')!;
  const years = plain.get('yrs_since_phd')!;
  return [
    { stat: 'mean', field: 'salary', group: null, value: salary.mean, count: salary.count, suppressed: false },
    { stat: 'sum', field: 'salary', group: null, value: Number(salary.sumText), count: salary.count, suppressed: false },
    { stat: 'count', field: 'yrs_since_phd', group: null, value: years.count, count: years.count, suppressed: false },
  ];
}

/**
 * The results {@link SALARY_SELECT} must give over exactly these participants' CSV texts, from the plaintext
 * (the mean to 9 decimals, the sum and counts exactly), as an `expect(...).toEqual` pattern.
 */
export function expectedSalaryResults(texts: readonly string[]): StatResult[] {
  const [mean, ...rest] = plainSalaryResults(texts);
  return [{ ...mean!, value: expect.closeTo(mean!.value!, MEAN_DIGITS) as number }, ...rest];
}

/**
 * The same check as {@link expectedSalaryResults} without Jest, for bench/: why `results` are not exactly what
 * {@link SALARY_SELECT} gives over these texts, or undefined when they are.
 */
export function salaryResultsMismatch(results: unknown, texts: readonly string[]): string | undefined {
  const expected = plainSalaryResults(texts);
  const got = Array.isArray(results) ? (results as StatResult[]) : [];
  if (got.length !== expected.length) return `expected ${expected.length} results, got ${JSON.stringify(results)}`;
  for (const [i, want] of expected.entries()) {
    const have = got[i]!;
    // Jest's closeTo(x, 9): |x - y| < 10^-9 / 2.
    const sameValue = i === 0 ? typeof have.value === 'number' && Math.abs(have.value - want.value!) < 10 ** -MEAN_DIGITS / 2 : have.value === want.value;
    if (!sameValue || !isDeepStrictEqual({ ...have, value: null }, { ...want, value: null })) return `${want.stat}(${want.field}): got ${JSON.stringify(have)}, the plaintext gives ${JSON.stringify(want)}`;
  }
  return undefined;
}
