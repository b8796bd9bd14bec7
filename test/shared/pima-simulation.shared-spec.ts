import { basename, join } from 'node:path';
import { loadStudySchema, readRecordsFromFile, simulateShamir, type QuerySpec, type StatResult, type StudySchema } from '@confide/protocol';
import { ROOT, assertBuilt, runCli, singleJson } from '../support/cli';
import { matchesReference, pima } from '../support/shared';

const SCHEMA = join(ROOT, 'examples/pima/study.json');

describe('shamir simulation on the Pima data (4 clinics, 532 women) against R', () => {
  const { files, reference } = pima();

  /** One secure run of `query` over the four clinics' files. */
  async function simulate(schema: StudySchema, query: QuerySpec): Promise<StatResult[]> {
    const report = await simulateShamir({
      schema,
      query,
      participants: files.map((f) => ({ id: basename(f, '.csv'), records: readRecordsFromFile(f, schema) })),
    });
    expect(report.contributors).toBe(4);
    return report.results;
  }

  /** R's value for `key` in reference.json. */
  function ref(key: string): number {
    const value = reference[key];
    if (typeof value !== 'number') throw new Error(`reference.json has no number ${key}`);
    return value;
  }

  function refByGroup(key: string): Record<string, number> {
    const value = reference[key];
    if (typeof value !== 'object' || value === null) throw new Error(`reference.json has no object ${key}`);
    return value as Record<string, number>;
  }

  it('reproduces mean_glu, mean_bmi and n in process', async () => {
    const schema = await loadStudySchema(SCHEMA);
    const report = await simulateShamir({
      schema,
      query: { select: [{ stat: 'mean', field: 'glu' }, { stat: 'count', field: 'glu' }, { stat: 'mean', field: 'bmi' }] },
      participants: files.map((f) => ({ id: basename(f, '.csv'), records: readRecordsFromFile(f, schema) })),
    });
    const [meanGlu, countGlu, meanBmi] = report.results;
    expect(report.contributors).toBe(4);
    expect(countGlu!.value).toBe(reference.n);
    expect(meanGlu!.count).toBe(reference.n);
    expect(matchesReference(meanGlu!.value as number, reference.mean_glu)).toBe(true);
    expect(matchesReference(meanBmi!.value as number, reference.mean_bmi)).toBe(true);
  });

  it('reproduces var_glu, sd_bmi, cor_bmi_glu and the regression of glu on bmi (slope_bmi_glu, intercept_bmi_glu)', async () => {
    const schema = await loadStudySchema(SCHEMA);
    const [varGlu, sdBmi, cor, reg] = await simulate(schema, {
      select: [
        { stat: 'variance', field: 'glu' },
        { stat: 'stddev', field: 'bmi' },
        { stat: 'correlation', x: 'bmi', y: 'glu' },
        { stat: 'regression', x: 'bmi', y: 'glu' },
      ],
    });
    expect(varGlu).toMatchObject({ stat: 'variance', field: 'glu', group: null, count: reference.n });
    expect(matchesReference(varGlu!.value as number, ref('var_glu'))).toBe(true);
    expect(sdBmi).toMatchObject({ stat: 'stddev', field: 'bmi', group: null, count: reference.n });
    expect(matchesReference(sdBmi!.value as number, ref('sd_bmi'))).toBe(true);
    expect(cor).toMatchObject({ stat: 'correlation', x: 'bmi', y: 'glu', group: null, count: reference.n });
    expect(matchesReference(cor!.value as number, ref('cor_bmi_glu'))).toBe(true);
    expect(reg).toMatchObject({ stat: 'regression', x: 'bmi', y: 'glu', group: null, count: reference.n });
    const line = reg!.value as { slope: number; intercept: number; r2: number };
    expect(matchesReference(line.slope, ref('slope_bmi_glu'))).toBe(true);
    expect(matchesReference(line.intercept, ref('intercept_bmi_glu'))).toBe(true);
    expect(matchesReference(line.r2, ref('cor_bmi_glu') ** 2)).toBe(true);
  });

  it('reproduces mean_glu_by_type and count_by_type grouped by type', async () => {
    const schema = await loadStudySchema(SCHEMA);
    const results = await simulate(schema, { select: [{ stat: 'mean', field: 'glu' }, { stat: 'count', field: 'type' }], groupBy: 'type' });
    const means = refByGroup('mean_glu_by_type');
    const counts = refByGroup('count_by_type');
    expect(results.map((r) => [r.stat, r.group])).toEqual([['mean', 'No'], ['count', 'No'], ['mean', 'Yes'], ['count', 'Yes']]);
    for (const r of results) {
      const group = r.group!;
      if (r.stat === 'count') {
        expect(r.value).toBe(counts[group]);
      } else {
        expect(r.count).toBe(counts[group]);
        expect(matchesReference(r.value as number, means[group]!)).toBe(true);
      }
    }
  });

  it('reproduces mean_bp_where_age_ge_40 and n_age_ge_40 with a where', async () => {
    const schema = await loadStudySchema(SCHEMA);
    const [meanBp, n] = await simulate(schema, {
      select: [{ stat: 'mean', field: 'bp' }, { stat: 'count', field: 'age' }],
      where: [{ field: 'age', op: '>=', value: 40 }],
    });
    expect(n).toEqual({ stat: 'count', field: 'age', group: null, value: ref('n_age_ge_40'), count: ref('n_age_ge_40') });
    expect(meanBp!.count).toBe(ref('n_age_ge_40'));
    expect(matchesReference(meanBp!.value as number, ref('mean_bp_where_age_ge_40'))).toBe(true);
  });

  it('reproduces them through `npm run simulate`’s CLI, with one committee member down', async () => {
    assertBuilt();
    const { code, stdout, stderr } = await runCli([
      'simulate', '--study-schema', SCHEMA, ...files.flatMap((f) => ['--data', f]),
      '--stat', 'mean', '--field', 'glu', '--stat', 'count', '--field', 'glu', '--drop-round2', '1', '--json',
    ]);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const out = singleJson(stdout) as { results: { stat: string; field: string; value: number; count: number }[] };
    expect(out.results[1]).toEqual({ stat: 'count', field: 'glu', group: null, value: reference.n, count: reference.n });
    expect(matchesReference(out.results[0]!.value, reference.mean_glu)).toBe(true);
  });

  it('fails with the counts when more than k − t of the 4 committee members drop out', async () => {
    const { code, stderr } = await runCli([
      'simulate', '--study-schema', SCHEMA, ...files.flatMap((f) => ['--data', f]), '--stat', 'mean', '--field', 'glu', '--drop-round2', '2',
    ]);
    expect(code).toBe(1);
    expect(stderr).toMatch(/round 2: 2 of 4 committee members answered, 3 needed/);
  });
});
