import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { formatFixed } from '@confide/crypto';
import fc from 'fast-check';
import { DataValidationError, readRecords, readRecordsFromFile, type DataIssue, type DataRecord, type ReadRecordsOptions } from './csv';
import { parseStudySchema, type StudySchema, type StudySchemaJson } from './schema';

const peopleJson: StudySchemaJson = {
  name: 'people',
  fields: [
    { name: 'age', type: 'number', min: 18, max: 120, decimals: 0 },
    { name: 'bmi', type: 'number', min: 10, max: 80, decimals: 1 },
    { name: 'type', type: 'category', values: ['No', 'Yes', 'a,b', 'say "hi"', 'two\nlines'] },
  ],
};
const people = parseStudySchema(peopleJson);
const clamping = parseStudySchema({ ...peopleJson, outOfRange: 'clamp' });

type Input = Parameters<typeof readRecords>[0];

async function read(input: Input, schema: StudySchema = people, options?: ReadRecordsOptions): Promise<DataRecord[]> {
  const out: DataRecord[] = [];
  for await (const record of readRecords(input, schema, options)) out.push(record);
  return out;
}

/** The DataValidationError that reading `input` ends with, plus the records yielded before it. */
async function failure(
  input: Input,
  schema: StudySchema = people,
  options?: ReadRecordsOptions,
): Promise<DataValidationError & { yielded: DataRecord[] }> {
  const yielded: DataRecord[] = [];
  try {
    for await (const record of readRecords(input, schema, options)) yielded.push(record);
  } catch (err) {
    if (err instanceof DataValidationError) return Object.assign(err, { yielded });
    throw err;
  }
  throw new Error('expected readRecords to throw a DataValidationError');
}

/** An issue without its suggested fix (the fixes are checked in libs/protocol/src/query/check.spec.ts). */
const withoutFix = ({ fix: _fix, ...issue }: DataIssue): Omit<DataIssue, 'fix'> => issue;
const issueOf = async (text: string, schema: StudySchema = people): Promise<unknown> => (await failure(text, schema)).issues.map(withoutFix);

describe('readRecords: parsing', () => {
  it('yields records in schema field order, whatever the column order', async () => {
    const text = 'type,bmi,age\nNo,30.2,24\nYes,25,59\n';
    expect(await read(text)).toEqual([
      [24n, 302n, 'No'],
      [59n, 250n, 'Yes'],
    ]);
  });

  it('reads LF, CRLF, lone CR and mixed line ends, with or without a final line end', async () => {
    const expected = [
      [24n, 302n, 'No'],
      [59n, 250n, 'Yes'],
    ];
    for (const text of [
      'age,bmi,type\n24,30.2,No\n59,25,Yes\n',
      'age,bmi,type\r\n24,30.2,No\r\n59,25,Yes\r\n',
      'age,bmi,type\r24,30.2,No\r59,25,Yes',
      'age,bmi,type\r\n24,30.2,No\n59,25,Yes',
    ]) {
      expect(await read(text)).toEqual(expected);
    }
  });

  it('ignores a UTF-8 byte order mark, as text or as bytes', async () => {
    const text = '\uFEFF"age","bmi","type"\n24,30.2,"No"\n';
    expect(await read(text)).toEqual([[24n, 302n, 'No']]);
    expect(await read([Buffer.from(text, 'utf8')])).toEqual([[24n, 302n, 'No']]);
    expect(await read([Buffer.from([0xef]), Buffer.from([0xbb, 0xbf]), Buffer.from(text.slice(1))])).toEqual([[24n, 302n, 'No']]);
  });

  it('ignores blank lines at the end', async () => {
    expect(await read('age,bmi,type\n24,30.2,No\n\n\r\n\n')).toEqual([[24n, 302n, 'No']]);
  });

  it('reads quoted cells with commas, doubled quotes and line ends', async () => {
    const text = 'age,type,bmi\n20,"a,b",20\n21,"say ""hi""",21\n22,"two\nlines",22\n"23","No","23.5"\n';
    expect(await read(text)).toEqual([
      [20n, 200n, 'a,b'],
      [21n, 210n, 'say "hi"'],
      [22n, 220n, 'two\nlines'],
      [23n, 235n, 'No'],
    ]);
  });

  it('reads an empty cell, quoted or not, as missing (null), never zero', async () => {
    expect(await read('age,bmi,type\n,30.2,No\n24,"",\n,,\n')).toEqual([
      [null, 302n, 'No'],
      [24n, null, null],
      [null, null, null],
    ]);
  });

  it('accepts trailing zeros, a sign and surrounding blanks in numbers', async () => {
    expect(await read('age,bmi,type\n24.000,+30.20,No\n')).toEqual([[24n, 302n, 'No']]);
    expect(await read('age,bmi,type\n 24 ,30.2,No\n')).toEqual([[24n, 302n, 'No']]);
  });

  it('trims header names', async () => {
    expect(await read(' age , bmi ,type\n24,30.2,No\n')).toEqual([[24n, 302n, 'No']]);
  });

  it('yields nothing for a header-only file', async () => {
    expect(await read('age,bmi,type')).toEqual([]);
    expect(await read('age,bmi,type\r\n')).toEqual([]);
  });

  it('reads from a Node.js stream of byte chunks', async () => {
    const text = 'age,bmi,type\n24,30.2,No\n59,25,Yes\n';
    const stream = Readable.from([Buffer.from(text.slice(0, 7)), Buffer.from(text.slice(7, 20)), Buffer.from(text.slice(20))]);
    expect(await read(stream)).toEqual([
      [24n, 302n, 'No'],
      [59n, 250n, 'Yes'],
    ]);
  });

  it('decodes a multi-byte character split across byte chunks', async () => {
    const schema = parseStudySchema({ name: 'x', fields: [{ name: 'city', type: 'category', values: ['Zürich', 'Kraków'] }] });
    const bytes = Buffer.from('city\nZürich\nKraków\n', 'utf8');
    const chunks = Array.from(bytes, (b) => Uint8Array.of(b));
    expect(await read(chunks, schema)).toEqual([['Zürich'], ['Kraków']]);
  });

  it('reads a one-column file: an empty line in the middle is a missing value, trailing ones are ignored', async () => {
    const schema = parseStudySchema({ name: 'x', fields: [{ name: 'age', type: 'number', min: 0, max: 120, decimals: 0 }] });
    expect(await read('age\n1\n\n2\n\n\n', schema)).toEqual([[1n], [null], [2n]]);
  });
});

describe('readRecords: out-of-range values', () => {
  const text = 'age,bmi,type\n17,9.9,No\n121,80.1,Yes\n18,80,No\n';

  it('rejects them by default, naming line and column', async () => {
    expect(await issueOf(text)).toEqual([
      { line: 2, column: 'age', message: `"17" is below the study's range [18, 120]` },
      { line: 2, column: 'bmi', message: `"9.9" is below the study's range [10, 80]` },
      { line: 3, column: 'age', message: `"121" is above the study's range [18, 120]` },
      { line: 3, column: 'bmi', message: `"80.1" is above the study's range [10, 80]` },
    ]);
  });

  it('clamps them to the bounds when the study says outOfRange: "clamp"', async () => {
    expect(await read(text, clamping)).toEqual([
      [18n, 100n, 'No'],
      [120n, 800n, 'Yes'],
      [18n, 800n, 'No'],
    ]);
  });

  it('still rejects malformed numbers and unknown categories when clamping', async () => {
    expect(await issueOf('age,bmi,type\nold,30.25,Maybe\n', clamping)).toEqual([
      { line: 2, column: 'age', message: 'not a number: "old"' },
      { line: 2, column: 'bmi', message: '"30.25" has more decimal places than the 1 the study allows' },
      { line: 2, column: 'type', message: 'unknown category "Maybe" (expected one of "No", "Yes", "a,b", "say \\"hi\\"", "two\\nlines")' },
    ]);
  });
});

describe('readRecords: malformed data', () => {
  it.each<[string, string, object]>([
    ['a non-numeric cell', 'age,bmi,type\n24,30.2,No\n24,abc,No\n', { line: 3, column: 'bmi', message: 'not a number: "abc"' }],
    ['NA for missing', 'age,bmi,type\nNA,30.2,No\n', { line: 2, column: 'age', message: 'not a number: "NA" (leave the cell empty for a missing value)' }],
    ['an exponent', 'age,bmi,type\n2e1,30.2,No\n', { line: 2, column: 'age', message: 'not a number: "2e1"' }],
    ['a lone decimal point', 'age,bmi,type\n24,30.,No\n', { line: 2, column: 'bmi', message: 'not a number: "30."' }],
    ['a whitespace-only cell', 'age,bmi,type\n24, ,No\n', { line: 2, column: 'bmi', message: 'not a number: " "' }],
    ['too many decimals', 'age,bmi,type\n24.5,30.2,No\n', { line: 2, column: 'age', message: '"24.5" has more decimal places than the 0 the study allows' }],
    ['an unknown category', 'age,bmi,type\n24,30.2,no\n', { line: 2, column: 'type', message: expect.stringContaining('unknown category "no"') as unknown }],
    ['a padded category', 'age,bmi,type\n24,30.2,No \n', { line: 2, column: 'type', message: expect.stringContaining('unknown category "No "') as unknown }],
    ['too few cells', 'age,bmi,type\n24,30.2,No\n24,30.2\n', { line: 3, message: 'expected 3 cells, found 2' }],
    ['too many cells', 'age,bmi,type\n24,30.2,No,extra\n', { line: 2, message: 'expected 3 cells, found 4' }],
    ['an empty line in the middle', 'age,bmi,type\n24,30.2,No\n\n25,30.2,No\n', { line: 3, message: 'empty line (expected 3 cells)' }],
    ['an unterminated quote', 'age,bmi,type\n24,30.2,No\n25,30.2,"No\n26,1,No\n', { line: 3, column: 'type', message: 'the quote opened on line 3 is never closed' }],
    ['a quote inside an unquoted cell', 'age,bmi,type\n24,30"2,No\n', { line: 2, column: 'bmi', message: 'a quote inside an unquoted cell (quote the whole cell and double the quote)' }],
    ['text after a closing quote', 'age,bmi,type\n"24"x,30.2,No\n', { line: 2, column: 'age', message: 'text after the closing quote of a cell' }],
  ])('reports %s with its line and column', async (_what, text, issue) => {
    expect(await issueOf(text)).toEqual([issue]);
  });

  it('counts the physical lines of quoted line ends when naming a row', async () => {
    const notes = parseStudySchema({
      name: 'notes',
      fields: [
        { name: 'n', type: 'number', min: 0, max: 9, decimals: 0 },
        { name: 'note', type: 'category', values: ['two\nlines', 'two\r\nlines', 'a\rb', 'x\n\ny'] },
      ],
    });
    // Lines: header 1; LF in quotes 2-3; CRLF in quotes 4-5; lone CR in quotes 6-7; two LFs 8-10; then 11.
    const text = 'n,note\n1,"two\nlines"\r\n2,"two\r\nlines"\n3,"a\rb"\r4,"x\n\ny"\n12,"a\rb"\n';
    expect(await issueOf(text, notes)).toEqual([{ line: 11, column: 'n', message: `"12" is above the study's range [0, 9]` }]);
  });

  it('names the line a multi-line row starts on, and the line of an unclosed quote', async () => {
    const text = 'age,bmi,type\n20,20,"two\nlines"\n21,"2\n\n1",No\n22,22,"oops\n23,23,No\n';
    expect(await issueOf(text)).toEqual([
      { line: 4, column: 'bmi', message: 'not a number: "2\\n\\n1"' },
      { line: 7, column: 'type', message: 'the quote opened on line 7 is never closed' },
    ]);
  });

  it('truncates an echoed cell to 40 characters', async () => {
    const long = 'x'.repeat(100);
    expect(await issueOf(`age,bmi,type\n24,${long},No\n`)).toEqual([{ line: 2, column: 'bmi', message: `not a number: "${'x'.repeat(40)}…"` }]);
  });

  it('keeps reading after a problem and reports all of them, in order, but yields no record after the first', async () => {
    const err = await failure('age,bmi,type\n24,30.2,No\n200,30.2,No\n25,30.2,No\n26,30.2,Maybe\n27,30.2,No\n');
    expect(err.issues.map((i) => [i.line, i.column])).toEqual([
      [3, 'age'],
      [5, 'type'],
    ]);
    expect(err.yielded).toEqual([[24n, 302n, 'No']]);
    expect(err.truncated).toBe(false);
  });

  it('writes a readable multi-line message that starts with the source', async () => {
    const err = await failure('age,bmi,type\n200,30.2,No\n25,30.2\n', people, { source: 'site-1.csv' });
    expect(err.source).toBe('site-1.csv');
    expect(err.message).toBe(
      [
        'site-1.csv: 2 problems in the data',
        `  line 2, column "age": "200" is above the study's range [18, 120]`,
        '  line 3: expected 3 cells, found 2',
      ].join('\n'),
    );
    expect(err.name).toBe('DataValidationError');
  });

  it('uses "input" as the default source', async () => {
    expect((await failure('age,bmi,type\n200,30.2,No\n')).message).toMatch(/^input: 1 problem in the data\n/);
  });

  it('stops after maxErrors problems and says so', async () => {
    const rows = Array.from({ length: 50 }, (_, i) => `${200 + i},30.2,No`).join('\n');
    const err = await failure(`age,bmi,type\n${rows}\n`, people, { maxErrors: 5 });
    expect(err.issues.map((i) => i.line)).toEqual([2, 3, 4, 5, 6]);
    expect(err.truncated).toBe(true);
    expect(err.message).toMatch(/^input: stopped after 5 problems in the data\n/);
    const byDefault = await failure(`age,bmi,type\n${rows}\n`);
    expect(byDefault.issues).toHaveLength(20);
    expect(byDefault.truncated).toBe(true);
  });

  it('rejects a maxErrors that is not a positive integer', async () => {
    await expect(read('age,bmi,type\n', people, { maxErrors: 0 })).rejects.toThrow(RangeError);
    await expect(read('age,bmi,type\n', people, { maxErrors: 1.5 })).rejects.toThrow(RangeError);
  });

  it('reports invalid UTF-8', async () => {
    const bytes = Buffer.concat([Buffer.from('age,bmi,type\n24,30.2,No\n'), Buffer.from([0xff, 0xfe]), Buffer.from(',30.2,No\n')]);
    const err = await failure([bytes]);
    expect(err.issues.map(withoutFix)).toEqual([{ line: 1, message: 'the input is not valid UTF-8 text (at or after this line)' }]);
    const split = await failure([bytes.subarray(0, 24), bytes.subarray(24)]);
    expect(split.issues.map(withoutFix)).toEqual([{ line: 3, message: 'the input is not valid UTF-8 text (at or after this line)' }]);
  });

  it('reports a UTF-8 sequence cut off at the end of the input', async () => {
    const err = await failure([Buffer.from('age,bmi,type\n24,30.2,No\n'), Buffer.from([0xc3])]);
    expect(err.issues.map(withoutFix)).toEqual([{ line: 3, message: 'the input is not valid UTF-8 text (at or after this line)' }]);
  });

  it('caps the memory a stray quote can take', async () => {
    const rest = 'x'.repeat(1 << 16);
    const chunks = ['age,bmi,type\n24,30.2,"No\n', ...Array.from({ length: 20 }, () => rest)];
    expect((await failure(chunks)).issues.map(withoutFix)).toEqual([
      { line: 2, column: 'type', message: 'a cell longer than 1048576 characters (is a quote left open on line 2?)' },
    ]);
  });

  it('rejects chunks that are neither text nor bytes', async () => {
    await expect(read([42 as unknown as string])).rejects.toThrow(TypeError);
  });

  it('passes on an error from the input stream', async () => {
    async function* broken(): AsyncGenerator<string> {
      yield await Promise.resolve('age,bmi,type\n24,30.2,No\n');
      throw new Error('disk on fire');
    }
    await expect(read(broken())).rejects.toThrow('disk on fire');
  });
});

describe('readRecords: header', () => {
  it.each<[string, string, object[]]>([
    ['an unknown column', 'age,bmi,type,weight\n', [{ line: 1, column: 'weight', message: 'unknown column; the study "people" has age, bmi, type' }]],
    ['a missing field', 'age,type\n', [{ line: 1, column: 'bmi', message: 'no column for this study field' }]],
    ['a duplicate column', 'age,bmi,age,type\n', [{ line: 1, column: 'age', message: 'duplicate column (columns 1 and 3)' }]],
    ['an unnamed column', 'age,,bmi,type\n', [{ line: 1, message: 'column 2 has no name' }]],
    [
      'a blank first line',
      '\nage,bmi,type\n',
      [
        { line: 1, message: 'column 1 has no name' },
        { line: 1, column: 'age', message: 'no column for this study field' },
        { line: 1, column: 'bmi', message: 'no column for this study field' },
        { line: 1, column: 'type', message: 'no column for this study field' },
      ],
    ],
    ['an empty input', '', [{ line: 1, message: 'no header row (the input is empty)' }]],
    ['only a byte order mark', '\uFEFF', [{ line: 1, message: 'no header row (the input is empty)' }]],
    ['a case mismatch', 'Age,bmi,type\n', [
      { line: 1, column: 'Age', message: 'unknown column; the study "people" has age, bmi, type' },
      { line: 1, column: 'age', message: 'no column for this study field' },
    ]],
  ])('rejects %s', async (_what, text, issues) => {
    expect(await issueOf(text)).toEqual(issues);
  });

  it('stops at a bad header without reading the rows', async () => {
    const err = await failure('age,bmi,kind\n999,999,Maybe\n', people, { maxErrors: 100 });
    expect(err.issues.map((i) => i.line)).toEqual([1, 1]);
    expect(err.yielded).toEqual([]);
  });
});

describe('readRecordsFromFile', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'confide-csv-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('streams a file', async () => {
    const path = join(dir, 'ok.csv');
    await writeFile(path, 'age,bmi,type\n24,30.2,No\n');
    const out: DataRecord[] = [];
    for await (const r of readRecordsFromFile(path, people)) out.push(r);
    expect(out).toEqual([[24n, 302n, 'No']]);
  });

  it('names the file in errors', async () => {
    const path = join(dir, 'bad.csv');
    await writeFile(path, 'age,bmi,type\n24,30.2,Maybe\n');
    const consume = async (): Promise<void> => {
      for await (const _ of readRecordsFromFile(path, people)) {
        // drain
      }
    };
    await expect(consume()).rejects.toThrow(new RegExp(`^${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: 1 problem in the data\n  line 2, column "type"`));
  });

  it('passes on the file system error for a missing file', async () => {
    const consume = async (): Promise<void> => {
      for await (const _ of readRecordsFromFile(join(dir, 'absent.csv'), people)) {
        // drain
      }
    };
    await expect(consume()).rejects.toMatchObject({ code: 'ENOENT' });
  });
});

// ---------------------------------------------------------------------------------------------------------
// Properties over generated files.

const tricky = parseStudySchema({
  name: 'tricky',
  fields: [
    { name: 'x', type: 'number', min: -1000, max: 1000, decimals: 2 },
    { name: 'label', type: 'category', values: ['plain', 'with,comma', 'say "hi"', 'multi\nline', 'crlf\r\nline', 'cr\ronly', 'café ☕', ' spaced ', '"'] },
    { name: 'n', type: 'number', min: 0, max: 10, decimals: 0 },
  ],
});
const labels = (tricky.fields[1] as { values: readonly string[] }).values;

interface GeneratedFile {
  text: string;
  records: DataRecord[];
  /** Physical line on which each data row starts. */
  lines: number[];
}

const cellArb = fc.record({
  x: fc.option(fc.integer({ min: -100000, max: 100000 }), { nil: null }),
  label: fc.option(fc.constantFrom(...labels), { nil: null }),
  n: fc.option(fc.integer({ min: 0, max: 10 }), { nil: null }),
  quoteAll: fc.boolean(),
  quotedEmpty: fc.boolean(),
  eol: fc.constantFrom('\n', '\r\n', '\r'),
});

const fileArb = fc
  .record({
    rows: fc.array(cellArb, { maxLength: 25 }),
    order: fc.shuffledSubarray(['x', 'label', 'n'], { minLength: 3, maxLength: 3 }),
    bom: fc.boolean(),
    finalEol: fc.boolean(),
    trailingBlank: fc.integer({ min: 0, max: 2 }),
  })
  .map(({ rows, order, bom, finalEol, trailingBlank }): GeneratedFile => {
    const quote = (s: string): string => `"${s.replace(/"/g, '""')}"`;
    const needsQuotes = (s: string): boolean => /[",\r\n]/.test(s);
    let text = (bom ? '\uFEFF' : '') + order.join(',');
    const records: DataRecord[] = [];
    const lines: number[] = [];
    rows.forEach((row, i) => {
      text += rows[i - 1]?.eol ?? '\n';
      lines.push(1 + (text.replace(/^\uFEFF/, '').match(/\r\n|\r|\n/g) ?? []).length);
      const cells: Record<string, string> = {
        x: row.x === null ? '' : formatFixed(BigInt(row.x), 2),
        label: row.label ?? '',
        n: row.n === null ? '' : String(row.n),
      };
      text += order
        .map((c) => {
          const s = cells[c]!;
          if (s === '') return row.quotedEmpty ? '""' : '';
          return row.quoteAll || needsQuotes(s) ? quote(s) : s;
        })
        .join(',');
      records.push([row.x === null ? null : BigInt(row.x), row.label, row.n === null ? null : BigInt(row.n)]);
    });
    if (finalEol || trailingBlank > 0) text += rows[rows.length - 1]?.eol ?? '\n';
    text += '\n'.repeat(trailingBlank);
    return { text, records, lines };
  });

/** Splits `s` at the given cut points (taken modulo its length). */
function splitAt<T extends string | Buffer>(s: T, cuts: number[]): T[] {
  const points = [...new Set(cuts.map((c) => (s.length === 0 ? 0 : c % (s.length + 1))))].sort((a, b) => a - b);
  const out: T[] = [];
  let from = 0;
  for (const p of points) {
    out.push(s.slice(from, p) as T);
    from = p;
  }
  out.push(s.slice(from) as T);
  return out;
}

describe('readRecords: properties', () => {
  it('reads generated files back exactly, including quoted separators, quotes and line ends', async () => {
    await fc.assert(
      fc.asyncProperty(fileArb, async (file) => {
        expect(await read(file.text, tricky)).toEqual(file.records);
      }),
    );
  });

  it('yields identical records however the text is split into chunks', async () => {
    await fc.assert(
      fc.asyncProperty(fileArb, fc.array(fc.nat(), { maxLength: 30 }), async (file, cuts) => {
        expect(await read(splitAt(file.text, cuts), tricky)).toEqual(file.records);
      }),
    );
  });

  it('yields identical records however the bytes are split into chunks, even inside a character', async () => {
    await fc.assert(
      fc.asyncProperty(fileArb, fc.array(fc.nat(), { maxLength: 30 }), async (file, cuts) => {
        const chunks = splitAt(Buffer.from(file.text, 'utf8'), cuts);
        expect(await read(Readable.from(chunks), tricky)).toEqual(file.records);
      }),
    );
  });

  it('names the physical line of a bad row, whatever line ends and quoted line ends come before it', async () => {
    await fc.assert(
      fc.asyncProperty(
        fileArb.filter((f) => f.records.length > 0),
        fc.nat(),
        fc.array(fc.nat(), { maxLength: 10 }),
        async (file, pick, cuts) => {
          const row = pick % file.records.length;
          const expectedLine = file.lines[row]!;
          // Put an out-of-range n on the chosen row's first line: replace the whole row by a known-bad one.
          const rows = file.text.replace(/^\uFEFF/, '');
          const startOffsets = rowStartOffsets(rows, file.lines);
          const start = startOffsets[row]!;
          const end = startOffsets[row + 1] ?? rows.length;
          const eol = /(\r\n|\r|\n)+$/.exec(rows.slice(start, end))?.[0] ?? '';
          const header = rows.slice(0, rows.search(/\r\n|\r|\n/));
          const bad = header.split(',').map((c) => (c === 'n' ? '11' : '')).join(',');
          const text = rows.slice(0, start) + bad + eol + rows.slice(end);
          const err = await failure(splitAt(text, cuts), tricky);
          expect(err.issues.map(withoutFix)).toEqual([{ line: expectedLine, column: 'n', message: `"11" is above the study's range [0, 10]` }]);
        },
      ),
    );
  });
});

/** Offsets at which each data row starts, from the physical line numbers the generator recorded. */
function rowStartOffsets(text: string, lines: number[]): number[] {
  const lineStarts = [0];
  const re = /\r\n|\r|\n/g;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) lineStarts.push(m.index + m[0].length);
  return lines.map((line) => lineStarts[line - 1]!);
}
