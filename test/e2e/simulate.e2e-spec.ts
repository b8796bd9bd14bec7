import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assertBuilt, runCli, singleJson } from '../support/cli';
import { generateSalaryCsv, plainStats, syntheticSalaryStudy } from '../support/synthetic';

// `confide simulate` as a user runs it: the built binary, CSV files on disk, one participant per file.
describe('confide simulate (built CLI, generated salary data)', () => {
  let dir: string;
  let files: string[];
  let schemaFile: string;
  let texts: string[];

  beforeAll(() => {
    assertBuilt();
    dir = mkdtempSync(join(tmpdir(), 'confide-sim-'));
    schemaFile = join(dir, 'study.json');
    writeFileSync(schemaFile, JSON.stringify(syntheticSalaryStudy()));
    texts = [11, 12, 13, 14, 15].map((seed) => generateSalaryCsv(seed, 120));
    files = texts.map((text, i) => {
      const f = join(dir, `hospital-${i + 1}.csv`);
      writeFileSync(f, text);
      return f;
    });
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const dataArgs = () => files.flatMap((f) => ['--data', f]);

  it('prints one JSON object whose results match a plaintext computation of the same files', async () => {
    const { code, stdout, stderr } = await runCli([
      'simulate', '--study-schema', schemaFile, ...dataArgs(),
      '--stat', 'mean', '--field', 'salary', '--stat', 'count', '--field', 'salary', '--stat', 'sum', '--field', 'yrs_since_phd', '--json',
    ]);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const out = singleJson(stdout) as { results: { stat: string; field: string; value: number; count: number }[]; contributors: number; threshold: number };
    const plain = plainStats(texts);
    const salary = plain.get('salary')!;
    const years = plain.get('yrs_since_phd')!;
    expect(out.contributors).toBe(5);
    expect(out.threshold).toBe(3);
    expect(out.results).toEqual([
      { stat: 'mean', field: 'salary', group: null, value: expect.closeTo(salary.mean!, 9) as number, count: salary.count },
      { stat: 'count', field: 'salary', group: null, value: salary.count, count: salary.count },
      { stat: 'sum', field: 'yrs_since_phd', group: null, value: Number(years.sumText), count: years.count },
    ]);
  });

  it('tolerates k − t committee dropouts and says who dropped', async () => {
    const { code, stdout } = await runCli(['simulate', '--study-schema', schemaFile, ...dataArgs(), '--stat', 'mean', '--field', 'salary', '--drop-round2', '2', '--json']);
    expect(code).toBe(0);
    const out = singleJson(stdout) as { droppedRound2: string[]; results: { value: number }[] };
    expect(out.droppedRound2).toHaveLength(2);
    expect(out.results[0]!.value).toBeCloseTo(plainStats(texts).get('salary')!.mean!, 9);
  });

  it('fails clearly when more than k − t committee members drop out', async () => {
    const { code, stdout, stderr } = await runCli(['simulate', '--study-schema', schemaFile, ...dataArgs(), '--stat', 'mean', '--field', 'salary', '--drop-round2', '3', '--json']);
    expect(code).toBe(1);
    expect(stderr).toMatch(/round 2: 2 of 5 committee members answered, 3 needed/);
    expect(singleJson(stdout)).toMatchObject({ error: 'QUORUM' });
  });

  it('leaves out participants that miss round 1 and reports how many contributed', async () => {
    const { code, stdout } = await runCli(['simulate', '--study-schema', schemaFile, ...dataArgs(), '--stat', 'count', '--field', 'salary', '--drop-round1', '1', '--json']);
    expect(code).toBe(0);
    const out = singleJson(stdout) as { contributors: number; droppedRound1: string[]; results: { value: number }[] };
    expect(out.contributors).toBe(4);
    const kept = files.filter((f) => !f.endsWith(`${out.droppedRound1[0]}.csv`)).map((f) => texts[files.indexOf(f)]!);
    expect(out.results[0]!.value).toBe(plainStats(kept).get('salary')!.count);
  });

  it('names the row and column of a bad CSV cell and exits non-zero', async () => {
    const bad = join(dir, 'bad.csv');
    writeFileSync(bad, 'salary,yrs_since_phd,rank,sex\n50000,3,Prof,Female\nlots,4,Prof,Male\n');
    const { code, stderr } = await runCli(['simulate', '--study-schema', schemaFile, ...dataArgs(), '--data', bad, '--stat', 'mean', '--field', 'salary']);
    expect(code).toBe(1);
    expect(stderr).toMatch(/line 3/);
    expect(stderr).toMatch(/salary/);
  });

  it('rejects an unknown field, a statistic without its field, and a --field before any --stat', async () => {
    const unknown = await runCli(['simulate', '--study-schema', schemaFile, ...dataArgs(), '--stat', 'mean', '--field', 'height']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/height/);
    const unpaired = await runCli(['simulate', '--study-schema', schemaFile, ...dataArgs(), '--stat', 'mean']);
    expect(unpaired.code).toBe(1);
    expect(unpaired.stderr).toMatch(/select\[0\]\.field: must name a field of study/);
    const stray = await runCli(['simulate', '--study-schema', schemaFile, ...dataArgs(), '--field', 'salary']);
    expect(stray.code).toBe(2);
    expect(stray.stderr).toMatch(/--field must follow a --stat/);
  });

  it('takes several files after one --data, as a shell expands --data hospital-{1..5}.csv, and refuses a stray argument', async () => {
    const { code, stdout } = await runCli(['simulate', '--study-schema', schemaFile, '--data', ...files, '--stat', 'count', '--field', 'salary', '--json']);
    expect(code).toBe(0);
    const out = singleJson(stdout) as { contributors: number; results: { value: number }[] };
    expect(out.contributors).toBe(5);
    expect(out.results[0]!.value).toBe(plainStats(texts).get('salary')!.count);
    const stray = await runCli(['simulate', files[0]!, '--study-schema', schemaFile, '--data', files[1]!, '--stat', 'count', '--field', 'salary']);
    expect(stray.code).toBe(2);
    expect(stray.stderr).toMatch(/unexpected argument .*CSV files follow --data/);
  });

  it('refuses a threshold below a majority of the committee', async () => {
    const { code, stderr } = await runCli(['simulate', '--study-schema', schemaFile, ...dataArgs(), '--stat', 'count', '--field', 'salary', '--threshold', '2']);
    expect(code).toBe(1);
    expect(stderr).toMatch(/threshold 2 is below the floor: a majority of the committee of 5 \(⌊k\/2⌋ \+ 1\) is 3/);
  });
});
