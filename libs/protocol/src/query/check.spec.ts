import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkDataFile, describeProblems, type DataCheck } from './check';
import { parseStudySchema } from './schema';

const schema = parseStudySchema({
  name: 'salaries',
  fields: [
    { name: 'salary', type: 'number', min: 0, max: 500000, decimals: 2 },
    { name: 'yrs', type: 'number', min: 0, max: 60, decimals: 0 },
    { name: 'rank', type: 'category', values: ['Prof', 'AsstProf'] },
  ],
});

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'confide-check-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
async function check(text: string): Promise<DataCheck> {
  const file = join(dir, `data-${n++}.csv`);
  writeFileSync(file, text);
  return checkDataFile(file, schema);
}

describe('checkDataFile', () => {
  it('passes a valid file and gives the per-field count, sum, min and max the local aggregation computes', async () => {
    const report = await check('salary,yrs,rank\n100000.50,3,Prof\n80000,,AsstProf\n,10,\n');
    expect(report).toEqual({
      ok: true,
      problems: [],
      truncated: false,
      records: 3,
      fields: [
        { field: 'salary', type: 'number', count: 2, sum: '180000.5', min: '80000', max: '100000.5' },
        { field: 'yrs', type: 'number', count: 2, sum: '13', min: '3', max: '10' },
        { field: 'rank', type: 'category', count: 2, sum: null, min: null, max: null },
      ],
    });
  });

  // The nine broken files users tried at enrollment (issue 13), each with the exact line and column named.
  it.each([
    ['a wrong header (a misspelt field)', 'salary,years,rank\n1,2,Prof\n', [{ line: 1, column: 'years', message: 'unknown column; the study "salaries" has salary, yrs, rank', fix: 'rename the column to one of the study\'s fields (salary, yrs, rank) or delete it' }, { line: 1, column: 'yrs', message: 'no column for this study field', fix: 'add a column named "yrs" (its cells may be left empty for missing values)' }]],
    ['an unknown column', 'salary,yrs,rank,name\n1,2,Prof,ann\n', [{ line: 1, column: 'name', message: 'unknown column; the study "salaries" has salary, yrs, rank', fix: 'rename the column to one of the study\'s fields (salary, yrs, rank) or delete it' }]],
    ['a missing column', 'salary,rank\n1,Prof\n', [{ line: 1, column: 'yrs', message: 'no column for this study field', fix: 'add a column named "yrs" (its cells may be left empty for missing values)' }]],
    ['a non-numeric value', 'salary,yrs,rank\n1,2,Prof\n1,two,Prof\n', [{ line: 3, column: 'yrs', message: 'not a number: "two"', fix: 'write a plain number in [0, 60] and a "." decimal point (no units, currency or thousands separators), or leave the cell empty if unknown' }]],
    ['an out-of-range value', 'salary,yrs,rank\n1,2,Prof\n1,2,Prof\n1,61,Prof\n', [{ line: 4, column: 'yrs', message: '"61" is above the study\'s range [0, 60]', fix: 'correct it to a value in [0, 60], or leave the cell empty if unknown' }]],
    ['a value not in the category list', 'salary,yrs,rank\n1,2,prof\n', [{ line: 2, column: 'rank', message: 'unknown category "prof" (expected one of "Prof", "AsstProf")', fix: 'use one of "Prof", "AsstProf" exactly as written (case-sensitive), or leave the cell empty if unknown' }]],
    ['an empty file', '', [{ line: 1, column: null, message: 'no header row (the input is empty)', fix: "start the file with a header row naming the study's fields: salary,yrs,rank" }]],
    ['a ragged row', 'salary,yrs,rank\n1,2,Prof\n1,2\n', [{ line: 3, column: null, message: 'expected 3 cells, found 2', fix: "give the row exactly 3 comma-separated cells, in the header's order (salary,yrs,rank); quote a cell that contains a comma" }]],
    [
      'a ;-separated file',
      'salary;yrs;rank\n"1";2;Prof\n',
      [
        {
          line: 1,
          column: null,
          message: 'the file is separated by semicolons (";"), not commas: Confide reads comma-separated CSV',
          fix: 'save it as comma-separated CSV (in a spreadsheet: "CSV (comma delimited)"), or replace each ";" between cells with ","; if "," is your decimal mark, write decimals with "." (41.5)',
        },
      ],
    ],
  ])('reports %s with its line, column and fix, and no aggregates', async (_what, text, problems) => {
    expect(await check(text)).toEqual({ ok: false, problems, truncated: false, records: null, fields: null });
  });

  it('names a tab separator', async () => {
    const report = await check('salary\tyrs\trank\n1\t2\tProf\n');
    expect(report.problems.map((p) => p.message)).toEqual(['the file is separated by tabs, not commas: Confide reads comma-separated CSV']);
  });

  it('suggests the field a column name misspells', async () => {
    const report = await check('Salary,yrs,rank\n1,2,Prof\n');
    expect(report.problems[0]).toMatchObject({ line: 1, column: 'Salary', fix: 'rename the column to "salary" (names are case-sensitive) or delete it' });
  });

  it('reports every problem, not the first one only', async () => {
    const report = await check('salary,yrs,rank\n-1,2,Prof\n1,x,Prof\n1,2,Lecturer\n');
    expect(report.problems.map((p) => [p.line, p.column])).toEqual([
      [2, 'salary'],
      [3, 'yrs'],
      [4, 'rank'],
    ]);
  });

  it('reports a missing file as one problem naming it, not an exception', async () => {
    const missing = join(dir, 'nowhere.csv');
    const report = await check('salary,yrs,rank\n').then(() => checkDataFile(missing, schema));
    expect(report.problems).toEqual([{ line: null, column: null, message: `cannot read ${missing}: no such file`, fix: 'check the path, or give the right file with --data' }]);
    expect(describeProblems(report)).toEqual([`file: cannot read ${missing}: no such file — fix: check the path, or give the right file with --data`]);
  });

  it('describes each problem with its line and column', async () => {
    expect(describeProblems(await check('salary,yrs,rank\n1,61,Prof\n'))).toEqual([
      'line 2, column "yrs": "61" is above the study\'s range [0, 60] — fix: correct it to a value in [0, 60], or leave the cell empty if unknown',
    ]);
  });
});
