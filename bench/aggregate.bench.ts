import { spawnSync } from 'node:child_process';
import { closeSync, createReadStream, mkdtempSync, openSync, rmSync, statSync, writeSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createPrng } from '../apps/cli/src/demo-data';
import {
  aggregateLocal,
  compileQuery,
  parseStudySchema,
  readRecordsFromFile,
  type CompiledQuery,
  type DataRecord,
  type QuerySpec,
} from '@confide/protocol';
import { fmt, measure, type BenchSection } from './harness';

/**
 * Local aggregation throughput (DESIGN.md "Queries": each participant sums the compiled query's linear terms
 * over its own records): `readRecordsFromFile` + `aggregateLocal` over generated CSV files of 10^5, 10^6 and
 * 3·10^6 rows, beside a plain single-pass parse-and-sum of the same file in the same process (the floor), and
 * the peak memory of each pipeline in a fresh process as the file grows.
 */

/** Rows of the generated files; the largest is only there to show memory stays flat. */
const SIZES = [100_000, 1_000_000, 3_000_000] as const;
/** In-process timing passes per file size (each in a fresh process, the floor and every pipeline in it, rotated). */
const TIMING_REPS: Record<number, number> = { 100_000: 3, 1_000_000: 3, 3_000_000: 1 };
const SEED = 0x5eed_2025;
/** Memory is sampled this often during a pass (the kernel's high-water mark is read as well). */
const SAMPLE_MS = 5;
/** Set in the environment of the child processes this file spawns: the JSON of a {@link ChildTask}. */
const CHILD_ENV = 'CONFIDE_AGGREGATE_BENCH_CHILD';
const MIB = 2 ** 20;

const SCHEMA_JSON = {
  name: 'bench-payroll',
  fields: [
    { name: 'salary', type: 'number', min: 0, max: 500_000, decimals: 2 },
    { name: 'age', type: 'number', min: 18, max: 90, decimals: 0 },
    { name: 'dept', type: 'category', values: Array.from({ length: 10 }, (_, i) => `D${String(i + 1).padStart(2, '0')}`) },
    { name: 'sex', type: 'category', values: ['F', 'M'] },
  ],
} as const;
const SCHEMA = parseStudySchema(SCHEMA_JSON);
const DEPTS = SCHEMA_JSON.fields[2].values;
/** The CSV's column order differs from the schema's, as a participant's export may. */
const HEADER = 'dept,sex,age,salary';

/** The query: a where clause, 10 groups, mean, stddev, a 20-bin histogram and a count. */
const COMBINED: QuerySpec = {
  select: [
    { stat: 'count', field: 'salary' },
    { stat: 'mean', field: 'salary' },
    { stat: 'stddev', field: 'salary' },
    { stat: 'histogram', field: 'salary', bins: { min: 0, max: 500_000, width: 25_000 } },
  ],
  where: [
    { field: 'age', op: '>=', value: 30 },
    { field: 'sex', op: '=', value: 'F' },
  ],
  groupBy: 'dept',
};
const MEAN: QuerySpec = { select: [{ stat: 'mean', field: 'salary' }] };

type Pipeline = 'floor' | 'read' | 'mean' | 'combined';
const PIPELINES: readonly Pipeline[] = ['floor', 'read', 'mean', 'combined'];
const QUERIES: Partial<Record<Pipeline, QuerySpec>> = { mean: MEAN, combined: COMBINED };

// ---------------------------------------------------------------------------------------------------------
// Data: a seeded generator, and the exact figures the pipelines must reproduce.

/** The demo's seeded PRNG (mulberry32), so every run reads the same bytes (Math.random is not seedable). */
const prng = createPrng;

/** What the generator wrote: the salary count and sum (in cents) overall, and the salary count per dept under the where. */
interface Expected {
  readonly rows: number;
  readonly salaryCount: number;
  readonly salaryCents: bigint;
  readonly combinedCounts: readonly number[];
}

interface DataFile {
  readonly path: string;
  readonly rows: number;
  readonly bytes: number;
  readonly expected: Expected;
}

/**
 * Writes `rows` rows of payroll-shaped data: dept uniform over 10 values (0.5 % missing), sex F/M (1 % missing),
 * age 18–90 (1 % missing), salary rising with dept and age plus noise, 1 % up to the 500,000 bound, 2 decimals
 * (2 % missing). Missing cells are empty.
 */
function writeData(path: string, rows: number): DataFile {
  const rand = prng(SEED ^ rows);
  const fd = openSync(path, 'w');
  let salaryCount = 0;
  let cents = 0; // exact in a double: at most 3·10^6 × 5·10^7 < 2^53
  const combinedCounts = new Array<number>(DEPTS.length).fill(0);
  let buffer = `${HEADER}\n`;
  try {
    for (let i = 0; i < rows; i++) {
      const d = Math.floor(rand() * DEPTS.length);
      const hasDept = rand() >= 0.005;
      const sexRoll = rand();
      const sex = sexRoll < 0.01 ? '' : sexRoll < 0.505 ? 'F' : 'M';
      const age = 18 + Math.floor(rand() * 73);
      const hasAge = rand() >= 0.01;
      const tail = rand() < 0.01;
      const noise = (rand() - 0.5) * 5_000_000;
      const c = tail ? Math.floor(rand() * 50_000_001) : Math.max(0, Math.round(3_000_000 + d * 800_000 + (age - 18) * 90_000 + noise));
      const hasSalary = rand() >= 0.02;
      const salary = hasSalary ? `${Math.floor(c / 100)}.${String(c % 100).padStart(2, '0')}` : '';
      buffer += `${hasDept ? DEPTS[d] : ''},${sex},${hasAge ? age : ''},${salary}\n`;
      if (hasSalary) {
        salaryCount++;
        cents += c;
        if (hasDept && hasAge && age >= 30 && sex === 'F') combinedCounts[d]!++;
      }
      if (buffer.length > 1 << 16) {
        writeSync(fd, buffer);
        buffer = '';
      }
    }
    writeSync(fd, buffer);
  } finally {
    closeSync(fd);
  }
  return { path, rows, bytes: statSync(path).size, expected: { rows, salaryCount, salaryCents: BigInt(cents), combinedCounts } };
}

// ---------------------------------------------------------------------------------------------------------
// The pipelines, as a child process runs them.

interface PassResult {
  readonly ms: number;
  readonly records: number;
  /** floor: [count, sum as a double]; read: []; queries: the aggregate vector as decimal strings. */
  readonly output: readonly string[];
}

/**
 * The floor: the least work that reads every salary of the file. Streamed in the same 64 KiB chunks as
 * readRecordsFromFile, split on LF and on commas (no quoting rules, no validation, no exact arithmetic), the
 * salary cell parseFloat-ed and summed.
 */
async function floorPass(path: string): Promise<PassResult> {
  const start = performance.now();
  let rest = '';
  let column = -1;
  let records = 0;
  let count = 0;
  let sum = 0;
  const line = (text: string): void => {
    if (column < 0) {
      column = text.split(',').indexOf('salary');
      return;
    }
    if (text === '') return;
    records++;
    const cell = text.split(',')[column];
    if (cell === undefined || cell === '') return;
    sum += parseFloat(cell);
    count++;
  };
  for await (const chunk of createReadStream(path, { encoding: 'utf8' }) as AsyncIterable<string>) {
    const lines = (rest + chunk).split('\n');
    rest = lines.pop()!;
    for (const text of lines) line(text);
  }
  line(rest);
  return { ms: performance.now() - start, records, output: [String(count), String(sum)] };
}

/** readRecordsFromFile alone, every record drained and dropped: Confide's CSV parsing and validation. */
async function readPass(path: string): Promise<PassResult> {
  const start = performance.now();
  let records = 0;
  for await (const _record of readRecordsFromFile(path, SCHEMA)) records++;
  return { ms: performance.now() - start, records, output: [] };
}

/** What a participant runs for a query: readRecordsFromFile streamed into aggregateLocal. */
async function queryPass(path: string, compiled: CompiledQuery): Promise<PassResult> {
  const start = performance.now();
  const { vector, records } = await aggregateLocal(compiled, readRecordsFromFile(path, SCHEMA));
  return { ms: performance.now() - start, records, output: vector.map(String) };
}

function runPass(pipeline: Pipeline, path: string): Promise<PassResult> {
  if (pipeline === 'floor') return floorPass(path);
  if (pipeline === 'read') return readPass(path);
  return queryPass(path, compileQuery(SCHEMA, QUERIES[pipeline]!));
}

interface MemoryReport {
  /** RSS and JS heap used just before the pass, after a full GC. */
  readonly rssBefore: number;
  readonly heapBefore: number;
  /** Highest sampled RSS and JS heap used during the pass. */
  readonly rssPeak: number;
  readonly heapPeak: number;
  /** The kernel's high-water mark of the process's RSS (getrusage ru_maxrss), whole process life. */
  readonly maxRss: number;
}

type ChildTask =
  | { readonly kind: 'timing'; readonly file: string; readonly warmFile: string; readonly order: readonly Pipeline[] }
  | { readonly kind: 'memory'; readonly file: string; readonly pipeline: Pipeline };

type ChildReport =
  | { readonly kind: 'timing'; readonly passes: Partial<Record<Pipeline, PassResult>> }
  | { readonly kind: 'memory'; readonly pass: PassResult; readonly memory: MemoryReport };

function collectGarbage(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

async function runChild(task: ChildTask): Promise<ChildReport> {
  if (task.kind === 'timing') {
    // Warm the JIT on every pipeline with the small file, then time each pipeline once over the target file.
    for (const p of task.order) await runPass(p, task.warmFile);
    const passes: Partial<Record<Pipeline, PassResult>> = {};
    for (const p of task.order) {
      collectGarbage();
      passes[p] = await runPass(p, task.file);
    }
    return { kind: 'timing', passes };
  }
  collectGarbage();
  const before = process.memoryUsage();
  let rssPeak = before.rss;
  let heapPeak = before.heapUsed;
  const sample = (): void => {
    const m = process.memoryUsage();
    rssPeak = Math.max(rssPeak, m.rss);
    heapPeak = Math.max(heapPeak, m.heapUsed);
  };
  const timer = setInterval(sample, SAMPLE_MS);
  let pass: PassResult;
  try {
    pass = await runPass(task.pipeline, task.file);
  } finally {
    clearInterval(timer);
  }
  sample();
  const memory = { rssBefore: before.rss, heapBefore: before.heapUsed, rssPeak, heapPeak, maxRss: process.resourceUsage().maxRSS * 1024 };
  return { kind: 'memory', pass, memory };
}

/**
 * Runs a task in a fresh Node process (this file under tsx, with --expose-gc), so each memory figure starts
 * from the same clean process and no earlier pass's heap growth, JIT code or retained garbage counts in it.
 */
function spawnChild(task: ChildTask): ChildReport {
  const run = spawnSync(process.execPath, ['--expose-gc', '--import', 'tsx', __filename], {
    env: { ...process.env, [CHILD_ENV]: JSON.stringify(task) },
    encoding: 'utf8',
    maxBuffer: 16 * MIB,
  });
  if (run.status !== 0) throw new Error(`aggregate bench child (${JSON.stringify(task)}) exited with ${run.status ?? run.signal}: ${run.stderr}`);
  const last = run.stdout.trim().split('\n').pop() ?? '';
  return JSON.parse(last) as ChildReport;
}

// ---------------------------------------------------------------------------------------------------------
// Checks: every pass must have read the whole file and found what the generator wrote.

function coordinate(compiled: CompiledQuery, group: number, kind: 'count' | 'sum'): number {
  const t = compiled.terms.findIndex((term) => term.kind === kind && term.field === 'salary');
  if (t < 0) throw new Error(`the compiled query has no ${kind}(salary) term`);
  return group * compiled.terms.length + t;
}

function check(pipeline: Pipeline, file: DataFile, pass: PassResult): void {
  const e = file.expected;
  const fail = (what: string): never => {
    throw new Error(`${pipeline} over ${file.rows} rows: ${what}`);
  };
  if (pass.records !== e.rows) fail(`read ${pass.records} records, expected ${e.rows}`);
  if (pipeline === 'floor') {
    const [count, sum] = pass.output.map(Number);
    if (count !== e.salaryCount) fail(`counted ${count} salaries, expected ${e.salaryCount}`);
    const exact = Number(e.salaryCents) / 100;
    if (Math.abs(sum! - exact) > exact * 1e-9) fail(`summed ${sum}, expected ${exact}`);
  } else if (pipeline === 'mean') {
    const compiled = compileQuery(SCHEMA, MEAN);
    if (pass.output[coordinate(compiled, 0, 'count')] !== String(e.salaryCount)) fail('wrong count(salary)');
    if (pass.output[coordinate(compiled, 0, 'sum')] !== String(e.salaryCents)) fail('wrong sum(salary)');
  } else if (pipeline === 'combined') {
    const compiled = compileQuery(SCHEMA, COMBINED);
    e.combinedCounts.forEach((n, g) => {
      if (pass.output[coordinate(compiled, g, 'count')] !== String(n)) fail(`wrong count(salary) in group ${DEPTS[g]}`);
    });
  }
}

// ---------------------------------------------------------------------------------------------------------
// In-process breakdown: aggregateLocal without the CSV.

/** Records of a file held in memory, to time aggregateLocal alone. */
async function loadRecords(path: string): Promise<DataRecord[]> {
  const records: DataRecord[] = [];
  for await (const r of readRecordsFromFile(path, SCHEMA)) records.push(r);
  return records;
}

/** The records as readRecords hands them out: `yield*` of an array inside an async generator, one promise per record. */
// eslint-disable-next-line @typescript-eslint/require-await -- no I/O to await: this isolates the per-record async hop
async function* asAsync(records: readonly DataRecord[]): AsyncGenerator<DataRecord> {
  yield* records;
}

async function breakdownRows(file: DataFile): Promise<Row[]> {
  const records = await loadRecords(file.path);
  const n = records.length;
  const rate = (ms: number): string => `${fmt((n * 1000) / ms)} records/s`;
  const rows: Row[] = [];
  for (const [name, spec] of [
    ['mean(salary)', MEAN],
    ['issue query', COMBINED],
  ] as const) {
    const compiled = compileQuery(SCHEMA, spec);
    const sync = await measure(() => aggregateLocal(compiled, records), { minIterations: 5, minMs: 1000 });
    const async = await measure(() => aggregateLocal(compiled, asAsync(records)), { minIterations: 5, minMs: 1000 });
    rows.push([`\`aggregateLocal\` alone, ${name}, records in an array`, fmt(n), rate(sync.medianMs), '—', '—', '—', '—', '—']);
    rows.push([`\`aggregateLocal\` alone, ${name}, records through an async generator`, fmt(n), rate(async.medianMs), '—', '—', '—', '—', '—']);
  }
  const hop = await measure(
    async () => {
      let k = 0;
      for await (const _r of asAsync(records)) k++;
      return k;
    },
    { minIterations: 5, minMs: 1000 },
  );
  rows.push(['async generator over the array, drained (no work per record)', fmt(n), rate(hop.medianMs), '—', '—', '—', '—', '—']);
  return rows;
}

// ---------------------------------------------------------------------------------------------------------

type Row = (string | number)[];

const LABELS: Record<Pipeline, string> = {
  floor: 'Floor: stream, split, `parseFloat(salary)`, sum',
  read: '`readRecordsFromFile` alone (parse + validate, records dropped)',
  mean: '`readRecordsFromFile` → `aggregateLocal`, mean(salary)',
  combined: '`readRecordsFromFile` → `aggregateLocal`, issue query',
};

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function mib(bytes: number): string {
  return fmt(bytes / MIB);
}

function rotate<T>(xs: readonly T[], k: number): T[] {
  return xs.map((_, i) => xs[(i + k) % xs.length]!);
}

export async function aggregateBench(): Promise<BenchSection> {
  const loadBefore = loadavg();
  const dir = mkdtempSync(join(tmpdir(), 'confide-aggregate-bench-'));
  try {
    process.stderr.write('  local-aggregation: generating CSV files…\n');
    const files = SIZES.map((rows) => writeData(join(dir, `payroll-${rows}.csv`), rows));
    const small = files[0]!;
    const rows: Row[] = [];
    for (const file of files) {
      const label = file.rows.toLocaleString('en-US');
      process.stderr.write(`  local-aggregation: ${label} rows, timing…\n`);
      const times = new Map<Pipeline, number[]>(PIPELINES.map((p) => [p, []]));
      for (let rep = 0; rep < TIMING_REPS[file.rows]!; rep++) {
        const report = spawnChild({ kind: 'timing', file: file.path, warmFile: small.path, order: rotate(PIPELINES, rep) });
        if (report.kind !== 'timing') throw new Error('expected a timing report');
        for (const p of PIPELINES) {
          const pass = report.passes[p]!;
          check(p, file, pass);
          times.get(p)!.push(pass.ms);
        }
      }
      process.stderr.write(`  local-aggregation: ${label} rows, memory…\n`);
      const floorMs = median(times.get('floor')!);
      for (const p of PIPELINES) {
        const report = spawnChild({ kind: 'memory', file: file.path, pipeline: p });
        if (report.kind !== 'memory') throw new Error('expected a memory report');
        check(p, file, report.pass);
        const ms = median(times.get(p)!);
        const m = report.memory;
        rows.push([
          LABELS[p],
          label,
          `${fmt((file.rows * 1000) / ms)} records/s`,
          `${fmt((file.rows * 1000) / floorMs)} records/s`,
          p === 'floor' ? '1×' : `${fmt(ms / floorMs)}×`,
          mib(m.maxRss),
          mib(m.rssPeak - m.rssBefore),
          mib(m.heapPeak),
        ]);
      }
    }
    process.stderr.write('  local-aggregation: aggregateLocal alone…\n');
    rows.push(...(await breakdownRows(small)));
    const loadAfter = loadavg();
    const mb = files.map((f) => `${fmt(f.bytes / 1e6)} MB`).join(', ');
    const reps = SIZES.map((s) => `${TIMING_REPS[s]} at ${s.toLocaleString('en-US')}`).join(', ');
    return {
      id: 'local-aggregation',
      title: 'Local aggregation: a participant’s CSV into its aggregate vector',
      method: [
        `What a participant does for a query before any cryptography: \`readRecordsFromFile\` streams its CSV (RFC 4180 tokenizer, then validation against the study schema into exact fixed-point bigints) into \`aggregateLocal\`, which sums the compiled query's linear terms. The data are generated (seeded, the same bytes every run) in a temp directory: ${SIZES.map((s) => s.toLocaleString('en-US')).join(', ')} rows (${mb}) of \`${HEADER}\`, with salary 0–500,000 (2 decimals), age 18–90, 10 depts, sex F/M, and 0.5–2 % empty cells per column. The **issue query** is \`where age >= 30 and sex = "F"\`, \`groupBy dept\` (10 groups), \`count\`, \`mean\`, \`stddev\` and a 20-bin \`histogram\` of salary (bins of 25,000 from 0 to 500,000): 25 terms × 10 groups. **mean(salary)** is the same file ungrouped and unfiltered (2 terms). **Floor**: the least honest work that reads every salary, in plain TypeScript: the same \`createReadStream\` 64 KiB chunks, split on LF and commas (no quoting, no validation, no exact arithmetic), \`parseFloat\` of the salary cell, summed as a double.`,
        `**Records/s** is rows ÷ the median wall time of one pass over the whole file. Timing passes run in fresh child processes (\`node --expose-gc --import tsx\`, ${reps}); each child first warms every pipeline on the 10^5-row file, then times the floor and the three Confide pipelines once each over the target file, in an order rotated between children, with a full GC before each pass: so every ratio is between the floor and Confide **in the same process**. **÷ floor** is Confide's time ÷ the floor's. Every pass is checked: all rows read, the floor's count and sum, mean(salary)'s exact count and sum in cents, and the issue query's count per dept, against what the generator wrote.`,
        `**Memory** comes from one more fresh child per pipeline and file that makes exactly one pass, so no earlier pass's heap growth, JIT code or garbage is counted: **peak RSS** is the kernel's high-water mark for the whole process (getrusage ru_maxrss, including Node, tsx and the loaded modules; the floor's row is the bare process plus a stream); **RSS growth** is the highest RSS sampled every ${SAMPLE_MS} ms during the pass minus RSS just before it (after a full GC); **peak heap** is the highest sampled V8 heap used. Flat across 10^5 → 3·10^6 rows means the file is streamed, not held. The last rows time \`aggregateLocal\` alone on the 10^5 records parsed into an array first, in this process with the harness's \`measure\` (median of ≥ 5 runs), to split the pipeline's time between CSV parsing and aggregation.`,
      ].join('\n\n'),
      columns: ['Pipeline', 'Rows', 'Records/s (median)', 'Floor, same process', '÷ floor (time)', 'Peak RSS (MiB)', 'RSS growth in pass (MiB)', 'Peak heap used (MiB)'],
      rows,
      notes:
        `Load average (1/5/15 min) on this 2-vCPU VM was ${loadBefore.map((l) => l.toFixed(2)).join(' / ')} at the start and ${loadAfter.map((l) => l.toFixed(2)).join(' / ')} at the end: other work was running, ` +
        'so absolute rates vary from run to run (see "Reading these numbers"); the ratios to the floor, measured in the same process moments apart, are the figures to compare.',
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const childTask = process.env[CHILD_ENV];
if (childTask !== undefined) {
  runChild(JSON.parse(childTask) as ChildTask).then(
    (report) => process.stdout.write(`${JSON.stringify(report)}\n`),
    (err: unknown) => {
      process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exitCode = 1;
    },
  );
}
