import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Cluster } from '../support/cluster';
import { ROOT, singleJson } from '../support/cli';
import { matchesReference, pima } from '../support/shared';

// The Pima data (four clinics, 532 women) through the real services as a user runs them: the coordinator, one
// participant process per clinic with its own site CSV, and `confide query`, checked against R's reference.
describe.each(['sqlite', 'postgres'] as const)('secure mean of glucose over the Pima clinics end to end on %s, against R', (database) => {
  const { files, reference } = pima();
  let cluster: Cluster;
  let researcher: string;

  beforeAll(async () => {
    cluster = await Cluster.start({ database });
    const study = await cluster.createStudy(JSON.parse(readFileSync(join(ROOT, 'examples/pima/study.json'), 'utf8')) as { name: string });
    const sites = await Promise.all(files.map((file, i) => cluster.enroll(study, `clinic-${i + 1}`, file)));
    await Promise.all(sites.map((p) => cluster.run(p)));
    researcher = await cluster.apiKey('researcher');
  }, 120_000);
  afterAll(() => cluster?.stop(), 60_000);

  it('gives mean_glu and n as R does, and the exact sum', async () => {
    const r = await cluster.cli(
      ['query', '--study', 'pima', '--protocol', 'shamir', '--stat', 'mean', '--field', 'glu', '--stat', 'sum', '--field', 'glu', '--stat', 'count', '--field', 'glu', '--wait', '--json'],
      researcher,
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const out = singleJson(r.stdout) as { status: string; participants: number; results: { stat: string; field: string; value: number; count: number }[] };
    expect(out.status).toBe('succeeded');
    expect(out.participants).toBe(files.length);
    const [mean, sum, count] = out.results;
    expect(mean).toMatchObject({ stat: 'mean', field: 'glu', count: reference.n });
    expect(matchesReference(mean!.value, reference.mean_glu)).toBe(true);
    // Glucose is a whole number per woman, so the sum is exact: R's mean times n, 64388.
    expect(Math.round(reference.mean_glu * reference.n)).toBe(64388);
    expect(sum).toEqual({ stat: 'sum', field: 'glu', value: 64388, count: reference.n });
    expect(count).toEqual({ stat: 'count', field: 'glu', value: reference.n, count: reference.n });
  }, 90_000);
});
