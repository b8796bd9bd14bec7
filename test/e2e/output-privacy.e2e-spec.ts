import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { Cluster, type ParticipantProcess } from '../support/cluster';
import { laplaceMagnitudeInterval } from '../support/distributions';
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

/** A site's records: its departments' counts, scores in hundredths (the field's fixed-point units) from a seeded LCG. */
function records(counts: Record<string, number>, seed: number): { dept: string; hundredths: number }[] {
  const out: { dept: string; hundredths: number }[] = [];
  let x = seed;
  for (const [dept, n] of Object.entries(counts)) {
    for (let i = 0; i < n; i++) {
      x = (x * 1103515245 + 12345) % 2147483648;
      out.push({ dept, hundredths: x % 10000 });
    }
  }
  return out;
}

function csv(counts: Record<string, number>, seed: number): string {
  return `${['dept,score', ...records(counts, seed).map((r) => `${r.dept},${r.hundredths / 100}`)].join('\n')}\n`;
}

/** The exact count and sum of score over every site, the sum in hundredths. */
const EXACT = SITES.flatMap((counts, i) => records(counts, 17 + i)).reduce((t, r) => ({ count: t.count + 1, sum: t.sum + r.hundredths }), { count: 0, sum: 0 });

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
    const jobKeys = async (): Promise<number> => (await redis.keys(`${cluster.prefix}:{participant.*}:q*`)).length;
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

  // Released DP results against the exact ones, K identical queries per protocol: the sum of score at ε = 2 (laplace),
  // in the study without a budget so that nothing is spent. A sum query has two families, count (Δ 1) and sum
  // (Δ 100.00 = 10⁴ hundredths), each given ε/2: noise of scale b = 2Δ/ε, 1 for the count and 10⁴ hundredths for
  // the sum. Without noise every difference is 0. With it, Σ|difference| over the K sums, and over the K counts, stay
  // inside the Chernoff interval (test/support/distributions.ts) that correct noise leaves with probability ≤ 5·10⁻¹⁰,
  // so a test fails correct noise with probability < 10⁻⁹: for the sums (0.056b, 39.4b), which noise 1000× too small
  // or 100× too large leaves; for the counts below 38.9b (at b = 1 most draws are 0, so there is no lower end).
  // Clamping (dp.ts clampNoisyTotals) cannot interfere: the exact sum is more than 41b inside [0, n·100.00].
  const K = 6;
  const EPSILON = 2;

  /** Runs the DP sum query K times and returns each released count's and sum's difference from the exact one (sum in hundredths). */
  async function noisedSums(protocol: 'shamir' | 'paillier', key?: string): Promise<{ count: number; sum: number }[]> {
    const file = join(cluster.dir, 'dp-sum.json');
    writeFileSync(file, JSON.stringify({ study: 'depts', select: [{ stat: 'sum', field: 'score' }], privacy: { dp: { mechanism: 'laplace', epsilon: EPSILON } } }));
    const differences: { count: number; sum: number }[] = [];
    for (let i = 0; i < K; i++) {
      const r = await cluster.cli(['query', '--file', file, ...(protocol === 'paillier' ? ['--protocol', 'paillier', '--key', key!, '--identity', identityFile] : []), '--wait', '--json'], researcher);
      const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as Result & { message?: string };
      expect([r.code, out.message]).toEqual([0, undefined]);
      expect(out.privacy.dp).toEqual({ mechanism: 'laplace', epsilon: EPSILON, delta: 0 });
      const row = out.results[0]!;
      differences.push({ count: row.count! - EXACT.count, sum: Math.round(row.value! * 100) - EXACT.sum });
    }
    return differences;
  }

  function expectLaplaceNoise(differences: readonly { count: number; sum: number }[]): void {
    expect(differences).not.toEqual(differences.map(() => ({ count: 0, sum: 0 })));
    const magnitude = (xs: readonly number[]): number => xs.reduce((total, x) => total + Math.abs(x), 0);
    const sums = laplaceMagnitudeInterval((2 * 10_000) / EPSILON, K, 5e-10);
    const sumNoise = magnitude(differences.map((d) => d.sum));
    expect(sumNoise).toBeGreaterThan(sums.low);
    expect(sumNoise).toBeLessThan(sums.high);
    expect(magnitude(differences.map((d) => d.count))).toBeLessThan(laplaceMagnitudeInterval((2 * 1) / EPSILON, K, 5e-10).high);
  }

  it('shamir: six DP releases differ from the exact count and sum by Laplace noise of the scale ε gives, and not all by nothing', async () => {
    expectLaplaceNoise(await noisedSums('shamir'));
  }, 120_000);

  it('paillier: six DP releases, noised under the researcher’s key, differ from the exact count and sum by Laplace noise of the scale ε gives', async () => {
    const keyFile = join(cluster.dir, 'researcher-paillier-dp.json');
    await cluster.cliJson(['keys', 'paillier', '--out', keyFile, '--bits', '2048'], null);
    expectLaplaceNoise(await noisedSums('paillier', keyFile));
  }, 120_000);
});
