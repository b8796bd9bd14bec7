import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { Cluster, type ParticipantProcess } from '../support/cluster';
import { eventLog } from '../support/task-queues';

// Output privacy end to end (DESIGN.md "Trust model"): small cells are suppressed with their complements, so a
// suppressed group cannot be recovered from the released ones and the total; differential privacy spends a
// per-study budget recorded in the ledger, and a query over budget is refused before any participant is asked.

/** Records per department at each site: department C has 4 records in all, under the minimum group size of 5. */
const SITES: Record<string, number>[] = [
  { A: 20, B: 12, C: 2 },
  { A: 15, B: 9, C: 1 },
  { A: 18, B: 10, C: 1 },
];

function csv(counts: Record<string, number>, seed: number): string {
  const lines = ['dept,score'];
  let x = seed;
  for (const [dept, n] of Object.entries(counts)) {
    for (let i = 0; i < n; i++) {
      x = (x * 1103515245 + 12345) % 2147483648;
      lines.push(`${dept},${(x % 10000) / 100}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

type Row = { stat: string; field: string; group: string | null; value: number | null; count: number | null; suppressed?: boolean };
type Result = { status: string; results: Row[]; privacy: { minGroupSize: number; suppressed: number; dp: { mechanism: string; epsilon: number; delta: number } | null } };

describe('output privacy end to end (SQLite)', () => {
  let cluster: Cluster;
  let researcher: string;
  let identityFile: string;
  const sites: ParticipantProcess[] = [];

  const query = async (study: string, args: string[], protocol: 'shamir' | 'paillier' = 'shamir', key?: string) => {
    const r = await cluster.cli(['query', '--study', study, ...args, ...(protocol === 'paillier' ? ['--protocol', 'paillier', '--key', key!, '--identity', identityFile] : []), '--wait', '--json'], researcher);
    return { code: r.code, out: JSON.parse(r.stdout.trim().split('\n').pop()!) as Result & { error?: string; message?: string } };
  };

  beforeAll(async () => {
    cluster = await Cluster.start({ database: 'sqlite' });
    const fields = [
      { name: 'dept', type: 'category', values: ['A', 'B', 'C'] },
      { name: 'score', type: 'number', min: 0, max: 100, decimals: 2 },
    ];
    await cluster.createStudy({ name: 'depts', minParticipants: 3, fields } as { name: string });
    await cluster.createStudy({ name: 'depts_dp', minParticipants: 3, fields, privacy: { minGroupSize: 5, dp: { mechanism: 'laplace', epsilon: 0.5, budget: { epsilon: 1 } } } } as { name: string });
    for (const [i, counts] of SITES.entries()) {
      const file = join(cluster.dir, `site-${i + 1}.csv`);
      writeFileSync(file, csv(counts, 17 + i));
      for (const study of ['depts', 'depts_dp']) {
        const p = await cluster.enroll(study, `${study}-site-${i + 1}`, file);
        await cluster.run(p);
        sites.push(p);
      }
    }
    ({ token: researcher, identityFile } = await cluster.researcher());
  }, 120_000);
  afterAll(() => cluster?.stop(), 60_000);

  it('suppresses a group of 4 records at minGroupSize 5, and its complement, so the released total cannot give it back', async () => {
    const grouped = await query('depts', ['--stat', 'mean', '--field', 'score', '--stat', 'count', '--field', 'score', '--group-by', 'dept']);
    expect(grouped.code).toBe(0);
    const byGroup = (group: string, stat: string) => grouped.out.results.find((r) => r.group === group && r.stat === stat)!;
    expect(byGroup('C', 'mean')).toMatchObject({ value: null, count: null, suppressed: true });
    expect(byGroup('C', 'count')).toMatchObject({ value: null, suppressed: true });
    // Complementary suppression: B (the next smallest) is withheld too, so total − A = B + C, never C alone.
    expect(byGroup('B', 'count')).toMatchObject({ value: null, suppressed: true });
    expect(byGroup('A', 'count')).toMatchObject({ value: 53, count: 53 });
    expect(grouped.out.privacy).toMatchObject({ minGroupSize: 5, dp: null });
    expect(grouped.out.privacy.suppressed).toBeGreaterThanOrEqual(4);

    const total = await query('depts', ['--stat', 'count', '--field', 'score']);
    expect(total.out.results[0]).toMatchObject({ value: 88, suppressed: false });
    const released = grouped.out.results.filter((r) => r.stat === 'count' && r.value !== null).reduce((s, r) => s + r.value!, 0);
    expect(88 - released).toBe(35); // B + C together; C's 4 is not derivable.
  }, 90_000);

  it('refuses a query that loosens the study’s minimum group size, naming it', async () => {
    const r = await query('depts', ['--stat', 'count', '--field', 'score', '--group-by', 'dept', '--min-group-size', '2']);
    expect(r.code).toBe(1);
    expect(r.out).toMatchObject({ error: 'invalid_privacy', message: expect.stringMatching(/privacy\.minGroupSize: 2 is below the study's minimum 5/) as string });
  });

  it('adds calibrated noise, spends the study’s budget, and refuses the query that would exceed it before any task is sent', async () => {
    const first = await query('depts_dp', ['--stat', 'count', '--field', 'score']);
    expect([first.code, first.out.message]).toEqual([0, undefined]);
    expect(first.out.privacy.dp).toEqual({ mechanism: 'laplace', epsilon: 0.5, delta: 0 });
    expect(Number.isInteger(first.out.results[0]!.value)).toBe(true);
    const second = await query('depts_dp', ['--stat', 'mean', '--field', 'score']);
    expect(second.code).toBe(0);
    const mean = second.out.results[0]!.value!;
    expect(mean).toBeGreaterThanOrEqual(0);
    expect(mean).toBeLessThanOrEqual(100);

    const redis = new Redis(cluster.redisUrl);
    const jobKeys = async (): Promise<number> => (await redis.keys(`${cluster.prefix}:participant.*:q*`)).length;
    try {
      const before = await jobKeys();
      const eventsBefore = (await eventLog(cluster)).length;
      const refused = await query('depts_dp', ['--stat', 'count', '--field', 'score']);
      expect(refused.code).toBe(1);
      expect(refused.out).toMatchObject({ error: 'privacy_budget_exhausted', message: expect.stringMatching(/privacy budget exhausted: this query needs ε = 0\.5, 0 of 1 remains/) as string });
      // Nothing was dispatched and nothing was recorded for the refused query.
      expect(await jobKeys()).toBe(before);
      expect((await eventLog(cluster)).length).toBe(eventsBefore);
    } finally {
      redis.disconnect();
    }
    const spent = (await eventLog(cluster)).filter((e) => e.type === 'privacy.spent');
    expect(spent.map((e) => e.body.epsilon)).toEqual(['0.5', '0.5']);
  }, 120_000);

  it('noises a paillier result under the researcher’s key: the released count differs from the exact one only by noise', async () => {
    const keyFile = join(cluster.dir, 'researcher-paillier.json');
    await cluster.cliJson(['keys', 'paillier', '--out', keyFile, '--bits', '2048'], null);
    const r = await query('depts', ['--stat', 'count', '--field', 'score', '--min-group-size', '5'], 'paillier', keyFile);
    expect(r.code).toBe(0);
    expect(r.out.results[0]).toMatchObject({ value: 88 });
    // A DP query in a study without DP names its own mechanism and ε (tightening): file form.
    const file = join(cluster.dir, 'dp-query.json');
    writeFileSync(file, JSON.stringify({ study: 'depts', select: [{ stat: 'count', field: 'score' }], privacy: { dp: { mechanism: 'laplace', epsilon: 1 } } }));
    const noised = await cluster.cli(['query', '--file', file, '--protocol', 'paillier', '--key', keyFile, '--identity', identityFile, '--wait', '--json'], researcher);
    expect(noised.code).toBe(0);
    const out = JSON.parse(noised.stdout.trim()) as Result;
    expect(out.privacy.dp).toEqual({ mechanism: 'laplace', epsilon: 1, delta: 0 });
    expect(Math.abs(out.results[0]!.value! - 88)).toBeLessThan(60);
    // The study has no DP budget, so opting in charges nothing: the same query runs again (it was refused with
    // "0 of 1 remains" when the query's own ε was taken for the study's budget).
    const again = await cluster.cli(['query', '--file', file, '--protocol', 'paillier', '--key', keyFile, '--identity', identityFile, '--wait', '--json'], researcher);
    expect([again.code, (JSON.parse(again.stdout.trim()) as Result).status]).toEqual([0, 'succeeded']);
  }, 120_000);
});
