import { createReadStream } from 'node:fs';
import { TextDecoder } from 'node:util';
import { formatFixed, parseFixed } from '@confide/crypto';
import type { StudySchema } from './schema';

/**
 * Streaming CSV reader for a participant's local data (DESIGN.md "Queries": values outside the study's
 * bounds are rejected with their row named, or clamped where the study says `outOfRange: "clamp"`;
 * missing cells are skipped per field). The grammar is RFC 4180 with the usual leniencies: LF as well as
 * CRLF line ends, an optional UTF-8 byte order mark, an optional final line end, and blank trailing lines.
 */

/**
 * One validated row, aligned with `schema.fields` (not with the CSV's column order): a numeric cell is its
 * fixed-point integer scaled by 10^decimals, a category cell is its string, and an empty cell is null
 * (missing, never zero).
 */
export type DataRecord = readonly (bigint | string | null)[];

/** One problem in a data file. `line` is the 1-based physical line on which the row starts. */
export interface DataIssue {
  readonly line: number;
  readonly column?: string;
  readonly message: string;
  /** How to fix it, for the person editing the file (`confide participant check` prints it). */
  readonly fix?: string;
}

/** The participant's data does not match the study schema. The message lists every problem found. */
export class DataValidationError extends Error {
  override readonly name = 'DataValidationError';

  /**
   * @param source name of the data (file path) the message starts with
   * @param issues the problems, in file order
   * @param truncated true when reading stopped at `maxErrors` problems, so there may be more
   */
  constructor(
    readonly source: string,
    readonly issues: readonly DataIssue[],
    readonly truncated = false,
  ) {
    const count = `${issues.length} problem${issues.length === 1 ? '' : 's'}`;
    const head = truncated ? `${source}: stopped after ${count} in the data` : `${source}: ${count} in the data`;
    const lines = issues.map((i) => `  line ${i.line}${i.column === undefined ? '' : `, column "${i.column}"`}: ${i.message}`);
    super([head, ...lines].join('\n'));
  }
}

/** Options of {@link readRecords}. */
export interface ReadRecordsOptions {
  /** Name of the input for error messages (a file path); default "input". */
  readonly source?: string;
  /** Stop reading and throw once this many problems are collected; default 20. */
  readonly maxErrors?: number;
}

const DEFAULT_MAX_ERRORS = 20;
/** Longest cell kept in memory. A stray quote would otherwise pull the rest of a large file into one string. */
const MAX_CELL_CHARS = 1 << 20;
const MAX_ECHO_CHARS = 40;

/** A cell echoed in an error message: JSON-quoted so blanks and line ends show, and cut to 40 characters. */
function echo(text: string): string {
  return JSON.stringify(text.length > MAX_ECHO_CHARS ? `${text.slice(0, MAX_ECHO_CHARS)}…` : text);
}

// ---------------------------------------------------------------------------------------------------------
// Tokenizer: a state machine over chunks that turns text into rows of cells and counts physical lines.

interface RawRow {
  readonly cells: string[];
  /** Physical line the row starts on. */
  readonly line: number;
  /** A row that is a single empty unquoted cell, i.e. an empty line. */
  readonly blank: boolean;
  /** The first syntax problem in the row, with the index of the cell it was found in. */
  readonly problem: { readonly cell: number; readonly message: string; readonly fix: string } | undefined;
}

const ROW_START = 0; // before the first cell of a row
const FIELD_START = 1; // after a comma
const UNQUOTED = 2;
const QUOTED = 3;
const QUOTE_SEEN = 4; // a quote inside a quoted cell: the closing quote, or the first of a doubled one
const AFTER_CR = 5; // a row ended at CR; swallow one LF

const COMMA = 0x2c;
const QUOTE = 0x22;
const LF = 0x0a;
const CR = 0x0d;
const BOM = 0xfeff;

class CsvTokenizer {
  private state = ROW_START;
  private cells: string[] = [];
  private field = '';
  private fieldTooLong = false;
  /** Physical line of the character being read (CRLF, LF and a lone CR each end one line). */
  line = 1;
  private rowLine = 1;
  private quoteLine = 1;
  private rowQuoted = false;
  private crInQuote = false;
  private started = false;
  private problem: { cell: number; message: string; fix: string } | undefined;

  /** Tokenizes one chunk, appending every row it completes to `out`. */
  feed(text: string, out: RawRow[]): void {
    const n = text.length;
    let i = 0;
    if (!this.started && n > 0) {
      this.started = true;
      if (text.charCodeAt(0) === BOM) i = 1;
    }
    let state = this.state;
    let seg = i; // start of the not-yet-copied part of the current cell within `text`
    while (i < n) {
      const c = text.charCodeAt(i);
      switch (state) {
        case ROW_START:
        case FIELD_START:
          if (c === QUOTE) {
            state = QUOTED;
            this.rowQuoted = true;
            this.quoteLine = this.line;
            seg = i + 1;
          } else if (c === COMMA) {
            this.cells.push('');
            state = FIELD_START;
          } else if (c === LF || c === CR) {
            this.cells.push('');
            this.endRow(out);
            state = c === CR ? AFTER_CR : ROW_START;
          } else {
            state = UNQUOTED;
            seg = i;
          }
          i++;
          break;
        case UNQUOTED: {
          let d = c;
          while (d !== COMMA && d !== LF && d !== CR && d !== QUOTE) {
            if (++i === n) break;
            d = text.charCodeAt(i);
          }
          if (i === n) break;
          if (d === QUOTE) {
            // Kept as text so the row can still be counted, but RFC 4180 allows quotes only around a whole cell.
            this.fail('a quote inside an unquoted cell (quote the whole cell and double the quote)', 'write the cell as "…""…" (the whole cell in quotes, each quote inside doubled), or remove the quote');
            i++;
            break;
          }
          this.append(text, seg, i);
          this.endCell();
          if (d === COMMA) {
            state = FIELD_START;
          } else {
            this.endRow(out);
            state = d === CR ? AFTER_CR : ROW_START;
          }
          i++;
          break;
        }
        case QUOTED: {
          let d = c;
          while (d !== QUOTE) {
            // Line ends inside a quoted cell are data, but still physical lines for error messages.
            if (d === LF) {
              if (!this.crInQuote) this.line++;
              this.crInQuote = false;
            } else if (d === CR) {
              this.line++;
              this.crInQuote = true;
            } else {
              this.crInQuote = false;
            }
            if (++i === n) break;
            d = text.charCodeAt(i);
          }
          if (i === n) break;
          this.crInQuote = false;
          this.append(text, seg, i);
          state = QUOTE_SEEN;
          i++;
          break;
        }
        case QUOTE_SEEN:
          if (c === QUOTE) {
            // A doubled quote: the second one starts the next segment, so it is kept as one literal quote.
            state = QUOTED;
            seg = i;
            i++;
          } else if (c === COMMA) {
            this.endCell();
            state = FIELD_START;
            i++;
          } else if (c === LF || c === CR) {
            this.endCell();
            this.endRow(out);
            state = c === CR ? AFTER_CR : ROW_START;
            i++;
          } else {
            this.fail('text after the closing quote of a cell', 'move the text inside the quotes, or end the cell with a comma after the closing quote');
            state = UNQUOTED;
            seg = i;
          }
          break;
        case AFTER_CR:
          state = ROW_START;
          if (c === LF) i++;
          break;
      }
    }
    if (state === UNQUOTED || state === QUOTED) this.append(text, seg, n);
    this.state = state;
  }

  /** Completes the last row at the end of the input. */
  end(out: RawRow[]): void {
    switch (this.state) {
      case ROW_START:
      case AFTER_CR:
        return;
      case QUOTED:
        this.fail(`the quote opened on line ${this.quoteLine} is never closed`, `close the quote opened on line ${this.quoteLine}, or remove it`);
        break;
      default:
        break;
    }
    this.endCell();
    this.endRow(out, false);
    this.state = ROW_START;
  }

  private append(text: string, from: number, to: number): void {
    if (to <= from || this.fieldTooLong) return;
    if (this.field.length + (to - from) > MAX_CELL_CHARS) {
      this.fieldTooLong = true;
      this.fail(`a cell longer than ${MAX_CELL_CHARS} characters (is a quote left open on line ${this.quoteLine}?)`, `close the quote opened on line ${this.quoteLine}`);
      return;
    }
    this.field += text.slice(from, to);
  }

  private endCell(): void {
    this.cells.push(this.field);
    this.field = '';
    this.fieldTooLong = false;
  }

  private fail(message: string, fix: string): void {
    this.problem ??= { cell: this.cells.length, message, fix };
  }

  private endRow(out: RawRow[], lineEnd = true): void {
    const cells = this.cells;
    out.push({
      cells,
      line: this.rowLine,
      blank: cells.length === 1 && cells[0] === '' && !this.rowQuoted && this.problem === undefined,
      problem: this.problem,
    });
    this.cells = [];
    this.rowQuoted = false;
    this.problem = undefined;
    if (lineEnd) this.line++;
    this.rowLine = this.line;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Validation: header mapping, then each row into a DataRecord in schema order.

/** A column name that is probably a misspelt field name: equal ignoring case, or one edit apart. */
function similar(field: string, column: string): boolean {
  const a = field.toLowerCase();
  const b = column.toLowerCase();
  if (a === b) return true;
  if (Math.abs(a.length - b.length) > 1) return false;
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  // One substitution, insertion or deletion at the first difference leaves the rest equal.
  return a.slice(i + 1) === b.slice(i + 1) || a.slice(i) === b.slice(i + 1) || a.slice(i + 1) === b.slice(i);
}

const NUMBER = /^\s*[+-]?\d+(?:\.\d+)?\s*$/;
const MISSING_MARKERS = /^\s*(?:na|n\/a|nan|null|none|missing|\?|\.|-)\s*$/i;

/** A field as the row validator needs it, precomputed once per file. */
type FieldCheck =
  | {
      readonly type: 'number';
      readonly name: string;
      readonly decimals: number;
      readonly min: bigint;
      readonly max: bigint;
      readonly range: string;
    }
  | { readonly type: 'category'; readonly name: string; readonly values: ReadonlySet<string>; readonly list: string };

class StopReading extends Error {}

class RecordValidator {
  readonly issues: DataIssue[] = [];
  /** Reading stopped at `maxErrors` problems. */
  truncated = false;
  private readonly checks: readonly FieldCheck[];
  private readonly clamp: boolean;
  /** For each CSV column, the schema field it fills. Set once the header is read. */
  private columnField: Int32Array | undefined;
  private columnNames: readonly string[] = [];
  private pendingBlankLines: number[] = [];
  private cellError: string | undefined;
  private cellFix: string | undefined;

  constructor(
    private readonly schema: StudySchema,
    private readonly maxErrors: number,
  ) {
    this.clamp = schema.outOfRange === 'clamp';
    this.checks = schema.fields.map((f): FieldCheck => {
      if (f.type === 'category') {
        const shown = f.values.slice(0, 10).map(echo).join(', ');
        return {
          type: 'category',
          name: f.name,
          values: new Set(f.values),
          list: f.values.length > 10 ? `${shown}, … (${f.values.length} values)` : shown,
        };
      }
      return {
        type: 'number',
        name: f.name,
        decimals: f.decimals,
        min: f.bounds.min,
        max: f.bounds.max,
        range: `[${formatFixed(f.bounds.min, f.decimals)}, ${formatFixed(f.bounds.max, f.decimals)}]`,
      };
    });
  }

  get failed(): boolean {
    return this.issues.length > 0;
  }

  /** Records a problem; throws StopReading once `maxErrors` are collected. */
  private report(line: number, column: string | undefined, message: string, fix: string): void {
    this.issues.push(column === undefined ? { line, message, fix } : { line, column, message, fix });
    if (this.issues.length >= this.maxErrors) {
      this.truncated = true;
      throw new StopReading();
    }
  }

  /**
   * Validates a row, appending its record to `out` unless it is the header, a blank line held back (blank
   * lines at the end are ignored; a later data row shows they were in the middle), or a bad row.
   * Once a problem has been found nothing more is appended: the read will fail anyway.
   */
  accept(row: RawRow, out: DataRecord[]): void {
    if (this.columnField === undefined) {
      this.header(row);
      return;
    }
    if (row.blank) {
      this.pendingBlankLines.push(row.line);
      return;
    }
    if (this.pendingBlankLines.length > 0) this.flushBlankLines(out);
    this.record(row.cells, row.line, row.problem, out);
  }

  /** Reports the end of the input. */
  end(sawHeader: boolean): void {
    if (!sawHeader) this.report(1, undefined, 'no header row (the input is empty)', `start the file with a header row naming the study's fields: ${this.schema.fields.map((f) => f.name).join(',')}`);
  }

  private flushBlankLines(out: DataRecord[]): void {
    const lines = this.pendingBlankLines;
    this.pendingBlankLines = [];
    for (const line of lines) {
      // A one-column file's empty line is a row with one missing cell; with more columns it is a stray line.
      if (this.columnNames.length === 1) this.record([''], line, undefined, out);
      else this.report(line, undefined, `empty line (expected ${this.columnNames.length} cells)`, 'delete the empty line');
    }
  }

  private header(row: RawRow): void {
    const names = row.cells.map((c) => c.trim());
    this.columnNames = names;
    const mapping = new Int32Array(names.length).fill(-1);
    const fieldByName = new Map(this.schema.fields.map((f, i) => [f.name, i]));
    const columnByName = new Map<string, number>();
    const problems: { column: string | undefined; message: string; fix: string }[] = [];
    if (row.problem !== undefined) problems.push({ column: names[row.problem.cell], message: row.problem.message, fix: row.problem.fix });
    const fieldList = this.schema.fields.map((f) => f.name).join(',');
    names.forEach((name, col) => {
      if (name === '') {
        problems.push({ column: undefined, message: `column ${col + 1} has no name`, fix: `name column ${col + 1} after a study field (${fieldList}) or delete it` });
        return;
      }
      const first = columnByName.get(name);
      if (first !== undefined) {
        problems.push({ column: name, message: `duplicate column (columns ${first + 1} and ${col + 1})`, fix: `keep one of columns ${first + 1} and ${col + 1}` });
        return;
      }
      columnByName.set(name, col);
      const field = fieldByName.get(name);
      if (field === undefined) {
        const known = this.schema.fields.map((f) => f.name).join(', ');
        const near = this.schema.fields.map((f) => f.name).find((f) => !names.includes(f) && similar(f, name));
        problems.push({
          column: name,
          message: `unknown column; the study "${this.schema.name}" has ${known}`,
          fix: near !== undefined ? `rename the column to "${near}" (names are case-sensitive) or delete it` : `rename the column to one of the study's fields (${known}) or delete it`,
        });
        return;
      }
      mapping[col] = field;
    });
    for (const f of this.schema.fields) {
      if (!columnByName.has(f.name)) problems.push({ column: f.name, message: 'no column for this study field', fix: `add a column named "${f.name}" (its cells may be left empty for missing values)` });
    }
    this.columnField = mapping;
    // Rows cannot be read against a header that does not match, so header problems end the read.
    if (problems.length > 0) {
      for (const p of problems) this.issues.push(p.column === undefined ? { line: row.line, message: p.message, fix: p.fix } : { line: row.line, column: p.column, message: p.message, fix: p.fix });
      throw new StopReading();
    }
  }

  private record(cells: readonly string[], line: number, problem: RawRow['problem'], out: DataRecord[]): void {
    const names = this.columnNames;
    if (problem !== undefined) {
      this.report(line, names[problem.cell], problem.message, problem.fix);
      return;
    }
    if (cells.length !== names.length) {
      this.report(
        line,
        undefined,
        `expected ${names.length} cells, found ${cells.length}`,
        `give the row exactly ${names.length} comma-separated cells, in the header's order (${names.join(',')}); quote a cell that contains a comma`,
      );
      return;
    }
    const mapping = this.columnField!;
    const record = new Array<bigint | string | null>(this.checks.length);
    let ok = true;
    for (let col = 0; col < cells.length; col++) {
      const f = mapping[col]!;
      const value = this.cell(this.checks[f]!, cells[col]!);
      if (this.cellError !== undefined) {
        ok = false;
        this.report(line, names[col], this.cellError, this.cellFix!);
        this.cellError = undefined;
        this.cellFix = undefined;
      }
      record[f] = value;
    }
    if (ok && this.issues.length === 0) out.push(record);
  }

  /** Parses one cell; on a problem sets `cellError` and returns null. */
  private cell(check: FieldCheck, text: string): bigint | string | null {
    if (text === '') return null;
    if (check.type === 'category') {
      if (check.values.has(text)) return text;
      this.cellError = `unknown category ${echo(text)} (expected one of ${check.list})`;
      this.cellFix = `use one of ${check.list} exactly as written (case-sensitive), or leave the cell empty if unknown`;
      return null;
    }
    if (!NUMBER.test(text)) {
      this.cellError = MISSING_MARKERS.test(text)
        ? `not a number: ${echo(text)} (leave the cell empty for a missing value)`
        : `not a number: ${echo(text)}`;
      this.cellFix = MISSING_MARKERS.test(text)
        ? 'leave the cell empty'
        : `write a plain number in ${check.range}${check.decimals > 0 ? ` with at most ${check.decimals} decimals` : ''} and a "." decimal point (no units, currency or thousands separators), or leave the cell empty if unknown`;
      return null;
    }
    let value: bigint;
    try {
      value = parseFixed(text, check.decimals);
    } catch {
      this.cellError = `${echo(text)} has more decimal places than the ${check.decimals} the study allows`;
      this.cellFix = `round it to ${check.decimals} decimal place${check.decimals === 1 ? '' : 's'}`;
      return null;
    }
    if (value < check.min) {
      if (this.clamp) return check.min;
      this.cellError = `${echo(text)} is below the study's range ${check.range}`;
      this.cellFix = `correct it to a value in ${check.range}, or leave the cell empty if unknown`;
      return null;
    }
    if (value > check.max) {
      if (this.clamp) return check.max;
      this.cellError = `${echo(text)} is above the study's range ${check.range}`;
      this.cellFix = `correct it to a value in ${check.range}, or leave the cell empty if unknown`;
      return null;
    }
    return value;
  }
}

/**
 * Reads CSV data and validates it against a study schema: one {@link DataRecord} per data row, in schema field
 * order, read with `for await` or chunk by chunk with `batches()` ({@link RecordSource}). The input is consumed
 * chunk by chunk (a state machine; the file is never held whole).
 *
 * The first row is the header; every schema field needs exactly one column and no other column is
 * allowed (order is free; names are trimmed). Cells: numbers are exact decimals with at most the field's
 * `decimals`, inside [min, max] (or clamped to it when the study sets `outOfRange: "clamp"`); categories
 * must be one of the field's values; an empty cell is missing (null). Quoted cells follow RFC 4180
 * section 2 (commas, doubled quotes and line ends inside quotes).
 *
 * Problems are collected with the 1-based physical line the row starts on and the column name; after the
 * first problem no more records are yielded, and at the end of the input (or after `maxErrors` problems,
 * or on a header problem) one DataValidationError is thrown instead of finishing.
 *
 * @param input a Node.js stream or any (async) iterable of string or byte chunks (bytes are UTF-8)
 * @param schema the validated study schema
 * @param options `source` names the input in messages (default "input"); `maxErrors` (default 20)
 * @throws DataValidationError listing the problems; TypeError for a chunk that is neither string nor bytes
 */
export function readRecords(input: RecordInput, schema: StudySchema, options: ReadRecordsOptions = {}): RecordSource {
  return {
    batches: () => recordBatches(input, schema, options),
    async *[Symbol.asyncIterator]() {
      for await (const batch of recordBatches(input, schema, options)) yield* batch;
    },
  };
}

/** The chunks {@link readRecords} reads: a Node.js stream or any (async) iterable of strings or UTF-8 bytes. */
export type RecordInput = NodeJS.ReadableStream | AsyncIterable<string | Uint8Array> | Iterable<string | Uint8Array>;

/**
 * Validated records, readable one at a time (`for await`) or one input chunk at a time ({@link RecordSource.batches}).
 * Like the stream under it, it can be read once.
 */
export interface RecordSource extends AsyncIterable<DataRecord> {
  /**
   * The same records, one array per input chunk (thousands of records), for consumers that need no await per
   * record: the local aggregation reads these, which spares it one promise per record.
   */
  batches(): AsyncIterable<readonly DataRecord[]>;
}

async function* recordBatches(input: RecordInput, schema: StudySchema, options: ReadRecordsOptions): AsyncGenerator<readonly DataRecord[], void, undefined> {
  const source = options.source ?? 'input';
  const maxErrors = options.maxErrors ?? DEFAULT_MAX_ERRORS;
  if (!Number.isSafeInteger(maxErrors) || maxErrors < 1) throw new RangeError(`maxErrors must be a positive integer, got ${maxErrors}`);

  const tokenizer = new CsvTokenizer();
  const validator = new RecordValidator(schema, maxErrors);
  const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  const rows: RawRow[] = [];
  const records: DataRecord[] = [];
  let sawHeader = false;
  const validate = (): void => {
    for (const row of rows) {
      sawHeader = true;
      validator.accept(row, records);
    }
    rows.length = 0;
  };

  const chunks = typeof input === 'string' ? [input] : input;
  try {
    for await (const chunk of chunks) {
      tokenizer.feed(decode(decoder, chunk, tokenizer, validator), rows);
      validate();
      if (records.length > 0) yield records.splice(0);
    }
    tokenizer.feed(decode(decoder, undefined, tokenizer, validator), rows);
    tokenizer.end(rows);
    validate();
    if (records.length > 0) yield records.splice(0);
    validator.end(sawHeader);
  } catch (err) {
    if (!(err instanceof StopReading)) throw err;
  }
  if (validator.failed) throw new DataValidationError(source, validator.issues, validator.truncated);
}

/** Decodes a chunk (undefined: the end of the input); invalid UTF-8 is a data problem that ends the read. */
function decode(decoder: TextDecoder, chunk: unknown, tokenizer: CsvTokenizer, validator: RecordValidator): string {
  try {
    if (chunk === undefined) return decoder.decode();
    if (typeof chunk === 'string') return decoder.decode() + chunk;
    // isView rather than instanceof Uint8Array: a Buffer from another realm (a vm context) is still bytes.
    if (ArrayBuffer.isView(chunk)) return decoder.decode(chunk as Uint8Array, { stream: true });
  } catch (err) {
    // Matched by code: `instanceof TypeError` fails across realms (Node's internals vs a vm context such as Jest's).
    if ((err as { code?: unknown } | null)?.code !== 'ERR_ENCODING_INVALID_ENCODED_DATA') throw err;
    validator.issues.push({ line: tokenizer.line, message: 'the input is not valid UTF-8 text (at or after this line)', fix: 'save the file as UTF-8 text' });
    throw new StopReading('invalid UTF-8', { cause: err });
  }
  throw new TypeError(`readRecords: expected string or byte chunks, got ${typeof chunk}`);
}

/**
 * {@link readRecords} over a file, streamed with `fs.createReadStream`; messages name the file by its path.
 *
 * @throws DataValidationError for invalid data; the file system's error (ENOENT, EACCES) when it cannot be read
 */
export function readRecordsFromFile(path: string, schema: StudySchema, options: ReadRecordsOptions = {}): RecordSource {
  // Opened on the first read, so a source that is never consumed holds no file descriptor.
  const opened = (): RecordSource => readRecords(createReadStream(path), schema, { ...options, source: options.source ?? path });
  return {
    batches: () => opened().batches(),
    [Symbol.asyncIterator]: () => opened()[Symbol.asyncIterator](),
  };
}
