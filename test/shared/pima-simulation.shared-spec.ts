import { basename, join } from 'node:path';
import { loadStudySchema, readRecordsFromFile, simulateShamir } from '@confide/protocol';
import { ROOT, assertBuilt, runCli, singleJson } from '../support/cli';
import { matchesReference, pima } from '../support/shared';

const SCHEMA = join(ROOT, 'examples/pima/study.json');

describe('shamir simulation on the Pima data (4 clinics, 532 women) against R', () => {
  const { files, reference } = pima();

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
    expect(matchesReference(meanGlu!.value, reference.mean_glu)).toBe(true);
    expect(matchesReference(meanBmi!.value, reference.mean_bmi)).toBe(true);
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
    expect(out.results[1]).toEqual({ stat: 'count', field: 'glu', value: reference.n, count: reference.n });
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
