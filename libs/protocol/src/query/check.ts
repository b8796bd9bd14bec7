import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { formatFixed } from '@confide/crypto';
import { aggregateLocal } from './aggregate';
import { DataValidationError, readRecords, type DataIssue, type DataRecord, type RecordInput, type RecordSource } from './csv';
import { compileQuery, type QuerySpec, type StatSpec } from './query';
import type { StudySchema } from './schema';

/**
 * A participant's dry run over its own data (`confide participant check`, and enrollment before it uses an
 * invitation): every problem the CSV reader finds against the study schema, each with its line, column and a fix,
 * plus a separator check the reader cannot make (a `;` or tab separated file reads as one odd column); and, for a
 * valid file, the per-field local aggregates a query would contribute, computed by {@link aggregateLocal} itself.
 * Nothing here does network I/O: the report is for the machine that holds the data.
 */

/** One problem with a data file: `line` is the 1-based line the row starts on, null for the file as a whole. */
export interface DataProblem {
  readonly line: number | null;
  readonly column: string | null;
  readonly message: string;
  readonly fix: string;
}

/** One field's local aggregates over the valid file: values present, their sum, min and max (numbers only). */
export interface FieldSummary {
  readonly field: string;
  readonly type: 'number' | 'category';
  readonly count: number;
  /** Decimal text at the field's precision; null for a category field or a field with no values. */
  readonly sum: string | null;
  readonly min: string | null;
  readonly max: string | null;
}

/** What {@link checkData} found. */
export interface DataCheck {
  readonly ok: boolean;
  readonly problems: readonly DataProblem[];
  /** True when reading stopped at the problem limit, so there may be more. */
  readonly truncated: boolean;
  /** Data rows read; null when the file is invalid. */
  readonly records: number | null;
  /** Per-field aggregates in schema order; null when the file is invalid. */
  readonly fields: readonly FieldSummary[] | null;
}

/** How many problems a check collects before it stops (the worker's task read stops at 20). */
export const CHECK_MAX_PROBLEMS = 200;

const SEPARATORS = [
  { char: ';', name: 'semicolons (";")' },
  { char: '\t', name: 'tabs' },
] as const;

/** The header's cell names split at `separator`, trimmed and unquoted. */
function headerNames(header: string, separator: string): string[] {
  return header.split(separator).map((c) => c.trim().replace(/^"(.*)"$/, '$1'));
}

/**
 * The problem with a file whose header is separated by `;` or tabs rather than commas: the separator is named
 * when splitting the header at it finds more of the study's fields than splitting at commas.
 * @param header the first line of the file (without its line end)
 */
export function separatorProblem(header: string, schema: StudySchema): DataProblem | undefined {
  const fields = new Set(schema.fields.map((f) => f.name));
  const matches = (separator: string): number => headerNames(header.replace(/^\uFEFF/, ''), separator).filter((n) => fields.has(n)).length;
  const byComma = matches(',');
  for (const { char, name } of SEPARATORS) {
    if (header.includes(char) && matches(char) > byComma) {
      return {
        line: 1,
        column: null,
        message: `the file is separated by ${name}, not commas: Confide reads comma-separated CSV`,
        fix: `save it as comma-separated CSV (in a spreadsheet: "CSV (comma delimited)"), or replace each ${char === '\t' ? 'tab' : '";"'} between cells with ","; if "," is your decimal mark, write decimals with "." (41.5)`,
      };
    }
  }
  return undefined;
}

function problemOf(issue: DataIssue): DataProblem {
  return { line: issue.line, column: issue.column ?? null, message: issue.message, fix: issue.fix ?? 'correct the row' };
}

/** Records passed on unchanged, with each numeric field's min and max noted on the way (aggregateLocal has no min/max term). */
function observed(source: RecordSource, schema: StudySchema): { records: RecordSource; min: (bigint | null)[]; max: (bigint | null)[] } {
  const numeric = schema.fields.flatMap((f, i) => (f.type === 'number' ? [i] : []));
  const min: (bigint | null)[] = schema.fields.map(() => null);
  const max: (bigint | null)[] = schema.fields.map(() => null);
  const note = (record: DataRecord): void => {
    for (const i of numeric) {
      const v = record[i];
      if (typeof v !== 'bigint') continue;
      if (min[i] === null || v < min[i]!) min[i] = v;
      if (max[i] === null || v > max[i]!) max[i] = v;
    }
  };
  const records: RecordSource = {
    async *batches() {
      for await (const batch of source.batches()) {
        for (const record of batch) note(record);
        yield batch;
      }
    },
    async *[Symbol.asyncIterator]() {
      for await (const batch of this.batches()) yield* batch;
    },
  };
  return { records, min, max };
}

/**
 * Checks CSV data against a study schema and, when it is valid, computes what a query would contribute per field:
 * the local aggregate of `count(f)` for every field and `sum(f)` for every numeric one (compiled and summed by the
 * same code a task runs), with each numeric field's min and max.
 *
 * @param input the data, as {@link readRecords} takes it
 * @param schema the study schema pinned at enrollment
 * @param header the file's first line, for the separator check (the caller has it; a stream cannot be re-read)
 * @returns every problem found (up to {@link CHECK_MAX_PROBLEMS}), and the aggregates when there is none
 * @throws whatever reading `input` throws other than a DataValidationError (a file system error, say)
 */
export async function checkData(input: RecordInput, schema: StudySchema, header?: string): Promise<DataCheck> {
  const separator = header === undefined ? undefined : separatorProblem(header, schema);
  // A wrong separator makes every later problem a consequence of it: it is the one problem worth fixing first.
  if (separator) return { ok: false, problems: [separator], truncated: false, records: null, fields: null };
  const select: StatSpec[] = schema.fields.flatMap((f): StatSpec[] => (f.type === 'number' ? [{ stat: 'count', field: f.name }, { stat: 'sum', field: f.name }] : [{ stat: 'count', field: f.name }]));
  const compiled = compileQuery(schema, { select } satisfies QuerySpec);
  const { records, min, max } = observed(readRecords(input, schema, { maxErrors: CHECK_MAX_PROBLEMS }), schema);
  let local;
  try {
    local = await aggregateLocal(compiled, records);
  } catch (err) {
    if (!(err instanceof DataValidationError)) throw err;
    return { ok: false, problems: err.issues.map(problemOf), truncated: err.truncated, records: null, fields: null };
  }
  let term = 0;
  const fields = schema.fields.map((f, i): FieldSummary => {
    const count = Number(local.vector[term++]!);
    if (f.type !== 'number') return { field: f.name, type: f.type, count, sum: null, min: null, max: null };
    const sum = local.vector[term++]!;
    const text = (v: bigint | null): string | null => (v === null ? null : formatFixed(v, f.decimals));
    return { field: f.name, type: f.type, count, sum: count ? formatFixed(sum, f.decimals) : null, min: text(min[i]!), max: text(max[i]!) };
  });
  local.vector.fill(0n);
  return { ok: true, problems: [], truncated: false, records: local.records, fields };
}

/** The first line of a file, read from its first 64 KiB (enough for any header). */
async function firstLine(path: string): Promise<string> {
  const handle = await open(path, 'r');
  try {
    const buffer = Buffer.alloc(64 * 1024);
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
    return buffer.subarray(0, bytesRead).toString('utf8').split(/\r\n|\r|\n/, 1)[0] ?? '';
  } finally {
    await handle.close();
  }
}

/**
 * {@link checkData} over a file. A file that cannot be read (missing, a directory, no permission) is one problem
 * naming the file system's reason, not an exception: the report is for the person who can fix it.
 */
export async function checkDataFile(path: string, schema: StudySchema): Promise<DataCheck> {
  try {
    // The header first: it opens the file, so a missing one fails here rather than in the stream.
    const header = await firstLine(path);
    return await checkData(createReadStream(path), schema, header);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException | null)?.code;
    if (typeof code !== 'string' || !code.startsWith('E')) throw err;
    return { ok: false, problems: [unreadable(path, err as NodeJS.ErrnoException)], truncated: false, records: null, fields: null };
  }
}

function unreadable(path: string, err: NodeJS.ErrnoException): DataProblem {
  const why: Record<string, [string, string]> = {
    ENOENT: ['no such file', 'check the path, or give the right file with --data'],
    EACCES: ['permission denied', 'let the user running the worker read the file'],
    EPERM: ['permission denied', 'let the user running the worker read the file'],
    EISDIR: ['it is a directory, not a file', 'give the CSV file itself, not its directory'],
  };
  const [reason, fix] = why[err.code ?? ''] ?? [`${err.code ?? 'error'}: ${err.message}`, 'check that the file exists and can be read'];
  return { line: null, column: null, message: `cannot read ${path}: ${reason}`, fix };
}

/** A check's problems as lines for people: `line 3, column "age": message — fix: …`. */
export function describeProblems(check: DataCheck): string[] {
  const lines = check.problems.map((p) => `${p.line === null ? 'file' : `line ${p.line}`}${p.column === null ? '' : `, column "${p.column}"`}: ${p.message} — fix: ${p.fix}`);
  if (check.truncated) lines.push(`stopped after ${check.problems.length} problems; fix these and check again`);
  return lines;
}
