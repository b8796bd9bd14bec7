import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Cluster } from '../support/cluster';
import { singleJson, stderrEvents } from '../support/cli';
import { generateSalaryCsv, plainStats, syntheticSalaryStudy } from '../support/synthetic';

// A researcher's secure mean as a user runs it: coordinator, four participant processes, the CLI.
describe.each(['sqlite', 'postgres'] as const)('secure mean end to end on %s', (database) => {
  let cluster: Cluster;
  let researcher: string;
  const texts: string[] = [];

  beforeAll(async () => {
    cluster = await Cluster.start({ database });
    const study = await cluster.createStudy(syntheticSalaryStudy());
    for (let i = 1; i <= 4; i++) {
      texts.push(generateSalaryCsv(700 + i, 80));
      const csv = join(cluster.dir, `site-${i}.csv`);
      writeFileSync(csv, texts[i - 1]!);
      await cluster.run(await cluster.enroll(study, `site-${i}`, csv));
    }
    researcher = await cluster.apiKey('researcher');
  }, 120_000);
  afterAll(() => cluster?.stop(), 60_000);

  it('returns mean, sum and count equal to a plaintext computation, with its event-log index', async () => {
    const r = await cluster.cli(
      ['query', '--study', 'salaries', '--protocol', 'shamir', '--stat', 'mean', '--field', 'salary', '--stat', 'sum', '--field', 'salary', '--stat', 'count', '--field', 'yrs_since_phd', '--wait', '--json'],
      researcher,
    );
    expect(r.code).toBe(0);
    const out = singleJson(r.stdout) as { id: string; status: string; participants: number; results: { stat: string; field: string; value: number; count: number }[]; ledgerIndex: number };
    // Nothing on stderr but --wait's events, the query's id first.
    expect(stderrEvents(r.stderr)[0]).toEqual({ event: 'submitted', id: out.id });
    const plain = plainStats(texts);
    expect(out.status).toBe('succeeded');
    expect(out.participants).toBe(4);
    expect(out.results).toEqual([
      { stat: 'mean', field: 'salary', group: null, value: expect.closeTo(plain.get('salary')!.mean!, 9) as number, count: plain.get('salary')!.count, suppressed: false },
      { stat: 'sum', field: 'salary', group: null, value: Number(plain.get('salary')!.sumText), count: plain.get('salary')!.count, suppressed: false },
      { stat: 'count', field: 'yrs_since_phd', group: null, value: plain.get('yrs_since_phd')!.count, count: plain.get('yrs_since_phd')!.count, suppressed: false },
    ]);
    expect(typeof out.ledgerIndex).toBe('number');
  }, 90_000);
});
