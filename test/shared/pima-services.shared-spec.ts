import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Cluster } from '../support/cluster';
import { ROOT, singleJson, stderrEvents } from '../support/cli';
import { matchesReference, pima } from '../support/shared';

// The Pima data (four clinics, 532 women) through the real services as a user runs them: the coordinator, one
// participant process per clinic with its own site CSV, and `confide query`, checked against R's reference.
describe.each(['sqlite', 'postgres'] as const)('secure mean of glucose over the Pima clinics end to end on %s, against R', (database) => {
  const { files, reference } = pima();
  let cluster: Cluster;
  let researcher: string;
  let keyFile: string;
  let identityFile: string;

  beforeAll(async () => {
    cluster = await Cluster.start({ database });
    const study = await cluster.createStudy(JSON.parse(readFileSync(join(ROOT, 'examples/pima/study.json'), 'utf8')) as { name: string });
    const sites = await Promise.all(files.map((file, i) => cluster.enroll(study, `clinic-${i + 1}`, file)));
    await Promise.all(sites.map((p) => cluster.run(p)));
    ({ token: researcher, identityFile } = await cluster.researcher());
    keyFile = join(cluster.dir, 'researcher-paillier.json');
    await cluster.cliJson(['keys', 'paillier', '--out', keyFile, '--bits', '2048'], null);
  }, 120_000);
  afterAll(() => cluster?.stop(), 60_000);

  it('gives mean_glu and n as R does, and the exact sum', async () => {
    const r = await cluster.cli(
      ['query', '--study', 'pima', '--protocol', 'shamir', '--stat', 'mean', '--field', 'glu', '--stat', 'sum', '--field', 'glu', '--stat', 'count', '--field', 'glu', '--wait', '--json'],
      researcher,
    );
    expect(r.code).toBe(0);
    const out = singleJson(r.stdout) as { id: string; status: string; participants: number; results: { stat: string; field: string; value: number; count: number }[] };
    // Nothing on stderr but --wait's events, the query's id first.
    expect(stderrEvents(r.stderr)[0]).toEqual({ event: 'submitted', id: out.id });
    expect(out.status).toBe('succeeded');
    expect(out.participants).toBe(files.length);
    const [mean, sum, count] = out.results;
    expect(mean).toMatchObject({ stat: 'mean', field: 'glu', count: reference.n });
    expect(matchesReference(mean!.value, reference.mean_glu)).toBe(true);
    // Glucose is a whole number per woman, so the sum is exact: R's mean times n, 64388.
    expect(Math.round(reference.mean_glu * reference.n)).toBe(64388);
    expect(sum).toEqual({ stat: 'sum', field: 'glu', group: null, value: 64388, count: reference.n, suppressed: false });
    expect(count).toEqual({ stat: 'count', field: 'glu', group: null, value: reference.n, count: reference.n, suppressed: false });
  }, 90_000);

  type Row = { stat: string; field?: string; x?: string; y?: string; group: string | null; value: unknown; count: number };
  const run = async (protocol: 'shamir' | 'paillier', args: string[]): Promise<Row[]> => {
    const r = await cluster.cli(['query', ...args, ...(protocol === 'paillier' ? ['--protocol', 'paillier', '--key', keyFile, '--identity', identityFile] : []), '--wait', '--json'], researcher);
    expect(r.code).toBe(0);
    const out = singleJson(r.stdout) as { id: string; status: string; participants: number; results: Row[] };
    expect(stderrEvents(r.stderr)[0]).toEqual({ event: 'submitted', id: out.id });
    expect(out).toMatchObject({ status: 'succeeded', participants: files.length });
    return out.results;
  };
  const value = (rows: Row[], match: Partial<Row>): number => {
    const row = rows.find((r) => Object.entries(match).every(([k, v]) => r[k as keyof Row] === v));
    if (!row) throw new Error(`no result row ${JSON.stringify(match)}`);
    return row.value as number;
  };
  const expectReference = (actual: number, name: string): void => {
    const expected = reference[name] as number;
    expect([name, matchesReference(actual, expected) ? expected : actual]).toEqual([name, expected]);
  };

  it.each(['shamir', 'paillier'] as const)('reproduces every statistic of R’s reference with %s: spread, correlation, regression, groups and a filter', async (protocol) => {
    // The whole query as a JSON file, as `confide query --file` sends it.
    const file = join(cluster.dir, `spread-${protocol}.json`);
    writeFileSync(
      file,
      JSON.stringify({
        study: 'pima',
        select: [
          { stat: 'mean', field: 'glu' },
          { stat: 'variance', field: 'glu' },
          { stat: 'mean', field: 'bmi' },
          { stat: 'stddev', field: 'bmi' },
          { stat: 'correlation', x: 'bmi', y: 'glu' },
          { stat: 'regression', x: 'bmi', y: 'glu' },
        ],
      }),
    );
    const spread = await run(protocol, ['--file', file]);
    expectReference(value(spread, { stat: 'mean', field: 'glu' }), 'mean_glu');
    expectReference(value(spread, { stat: 'variance', field: 'glu' }), 'var_glu');
    expectReference(value(spread, { stat: 'mean', field: 'bmi' }), 'mean_bmi');
    expectReference(value(spread, { stat: 'stddev', field: 'bmi' }), 'sd_bmi');
    expectReference(value(spread, { stat: 'correlation' }), 'cor_bmi_glu');
    const fit = value(spread, { stat: 'regression' }) as unknown as { slope: number; intercept: number; r2: number };
    expectReference(fit.slope, 'slope_bmi_glu');
    expectReference(fit.intercept, 'intercept_bmi_glu');
    expect(fit.r2).toBeCloseTo((reference.cor_bmi_glu as number) ** 2, 12);

    // Group-by and a filter, as command-line flags.
    const byType = await run(protocol, ['--study', 'pima', '--stat', 'mean', '--field', 'glu', '--stat', 'count', '--field', 'type', '--group-by', 'type']);
    const meanByType = reference.mean_glu_by_type as Record<string, number>;
    const countByType = reference.count_by_type as Record<string, number>;
    for (const group of ['No', 'Yes']) {
      expect(matchesReference(value(byType, { stat: 'mean', group }), meanByType[group]!)).toBe(true);
      expect(value(byType, { stat: 'count', group })).toBe(countByType[group]);
    }
    const older = await run(protocol, ['--study', 'pima', '--stat', 'mean', '--field', 'bp', '--stat', 'count', '--field', 'bp', '--where', 'age>=40']);
    expectReference(value(older, { stat: 'mean', field: 'bp' }), 'mean_bp_where_age_ge_40');
    expect(value(older, { stat: 'count', field: 'bp' })).toBe(reference.n_age_ge_40);
  }, 180_000);
});
