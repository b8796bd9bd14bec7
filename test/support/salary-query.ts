import { plainStats } from './synthetic';

/** The statistics the end-to-end salary queries ask for, as `confide query` flags. */
export const SALARY_SELECT = ['--stat', 'mean', '--field', 'salary', '--stat', 'sum', '--field', 'salary', '--stat', 'count', '--field', 'yrs_since_phd'] as const;

/** A query's `results` as GET /v1/queries/:id and `confide query --json` give them. */
export type StatResult = { stat: string; field: string; group: string | null; value: number | null; count: number; suppressed?: boolean };

/**
 * The results {@link SALARY_SELECT} must give over exactly these participants' CSV texts, from the plaintext
 * (the mean to 9 decimals, the sum and counts exactly), as an `expect(...).toEqual` pattern.
 */
export function expectedSalaryResults(texts: readonly string[]): StatResult[] {
  const plain = plainStats(texts);
  const salary = plain.get('salary')!;
  const years = plain.get('yrs_since_phd')!;
  return [
    { stat: 'mean', field: 'salary', group: null, value: expect.closeTo(salary.mean!, 9) as number, count: salary.count, suppressed: false },
    { stat: 'sum', field: 'salary', group: null, value: Number(salary.sumText), count: salary.count, suppressed: false },
    { stat: 'count', field: 'yrs_since_phd', group: null, value: years.count, count: years.count, suppressed: false },
  ];
}
