import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { parseStudySchema, ProtocolError, readRecordsFromFile, simulateShamir, type StudySchema } from '@confide/protocol';
import { generateSalaryCsv, plainStats, syntheticSalaryStudy } from '../support/synthetic';

// The whole pipeline over files on disk: streaming CSV -> validation -> local aggregation -> shamir rounds
// (real keys, envelopes, signatures) -> reconstruction -> statistics, checked against a plaintext reader.
describe('shamir simulation over generated CSV files', () => {
  let dir: string;
  let schema: StudySchema;
  const files: string[] = [];
  const texts: string[] = [];

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'confide-int-'));
    schema = parseStudySchema(syntheticSalaryStudy());
    for (let i = 0; i < 12; i++) {
      texts.push(generateSalaryCsv(1000 + i, 40 + 7 * i));
      files.push(join(dir, `site-${i}.csv`));
      writeFileSync(files[i]!, texts[i]!);
    }
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const run = (n: number, opts: { committee?: number; threshold?: number; drop1?: number; drop2?: number; seed: string }) =>
    simulateShamir({
      schema,
      query: { select: [{ stat: 'sum', field: 'salary' }, { stat: 'count', field: 'yrs_since_phd' }] },
      participants: files.slice(0, n).map((f, i) => ({ id: `site-${i}`, records: readRecordsFromFile(f, schema) })),
      committeeSize: opts.committee,
      threshold: opts.threshold,
      dropRound1: opts.drop1,
      dropRound2: opts.drop2,
      seed: opts.seed,
    });

  it('gives the plaintext totals for any committee, threshold from a majority up, and tolerable dropouts, and fails beyond them', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 3, max: 12 }).chain((n) =>
          fc.integer({ min: 1, max: Math.min(n, 10) }).chain((k) =>
            fc.record({
              n: fc.constant(n),
              k: fc.constant(k),
              t: fc.integer({ min: Math.floor(k / 2) + 1, max: k }),
              drop1: fc.integer({ min: 0, max: n - 3 }),
              drop2: fc.integer({ min: 0, max: k }),
              seed: fc.stringMatching(/^[0-9a-f]{32}$/),
            }),
          ),
        ),
        async ({ n, k, t, drop1, drop2, seed }) => {
          if (drop2 > k - t) {
            await expect(run(n, { committee: k, threshold: t, drop1, drop2, seed })).rejects.toMatchObject({
              code: 'QUORUM',
              message: expect.stringContaining(`${k - drop2} of ${k} committee members answered, ${t} needed`) as string,
            });
            return;
          }
          const report = await run(n, { committee: k, threshold: t, drop1, drop2, seed });
          const kept = texts.slice(0, n).filter((_, i) => !report.droppedRound1.includes(`site-${i}`));
          const plain = plainStats(kept);
          expect(report.contributors).toBe(n - drop1);
          expect(report.results[0]!.value).toBe(Number(plain.get('salary')!.sumText));
          expect(report.results[0]!.count).toBe(plain.get('salary')!.count);
          expect(report.results[1]!.value).toBe(plain.get('yrs_since_phd')!.count);
        },
      ),
      { numRuns: 25 },
    );
  }, 120_000);

  it('refuses a threshold below a majority of the committee, whatever the committee', async () => {
    for (let k = 1; k <= 5; k++) {
      const t = Math.floor(k / 2);
      if (t < 1) continue;
      const err = await run(5, { committee: k, threshold: t, seed: 'c'.repeat(32) }).catch((e: unknown) => e);
      expect([k, (err as ProtocolError).message]).toEqual([k, `threshold ${t} is below the floor: a majority of the committee of ${k} (⌊k/2⌋ + 1) is ${t + 1}`]);
    }
  });

  it('refuses to run below the study minimum after round-1 dropouts', async () => {
    const err = await run(4, { drop1: 2, seed: 'b'.repeat(32) }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProtocolError);
    expect((err as ProtocolError).message).toMatch(/round 1: 2 of 4 participants answered, at least 3 needed/);
  });

  it('stops before any share is made when one participant’s file is bad, and names the line', async () => {
    const bad = join(dir, 'bad.csv');
    writeFileSync(bad, 'salary,yrs_since_phd,rank,sex\n50000,3,Prof,Female\n50000,999,Prof,Male\n');
    const err = await simulateShamir({
      schema,
      query: { select: [{ stat: 'mean', field: 'salary' }] },
      participants: [...files.slice(0, 3).map((f, i) => ({ id: `site-${i}`, records: readRecordsFromFile(f, schema) })), { id: 'bad', records: readRecordsFromFile(bad, schema) }],
    }).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/line 3/);
    expect((err as Error).message).toMatch(/yrs_since_phd/);
  });
});
