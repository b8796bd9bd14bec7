import { cpus, totalmem } from 'node:os';
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { execSync } from 'node:child_process';

/** One benchmark section of docs/BENCHMARKS.md: a title, a paragraph on method, and a table. */
export interface BenchSection {
  readonly id: string;
  readonly title: string;
  readonly method: string;
  readonly columns: readonly string[];
  readonly rows: readonly (readonly (string | number)[])[];
  readonly notes?: string;
}

/** Timing of a repeated operation: iterations run, total ms, and the per-iteration median when sampled. */
export interface Timing {
  readonly iterations: number;
  readonly totalMs: number;
  readonly opsPerSec: number;
  readonly medianMs: number;
}

/**
 * Runs `fn` repeatedly after a warm-up until both `minIterations` and `minMs` are reached, timing each
 * call; reports throughput and the median call time (robust to a stray GC pause).
 */
export async function measure(fn: () => unknown, opts: { minIterations?: number; minMs?: number; warmup?: number } = {}): Promise<Timing> {
  const { minIterations = 5, minMs = 1000, warmup = 2 } = opts;
  for (let i = 0; i < warmup; i++) await fn();
  const samples: number[] = [];
  const start = performance.now();
  while (samples.length < minIterations || performance.now() - start < minMs) {
    const t = performance.now();
    await fn();
    samples.push(performance.now() - t);
  }
  const totalMs = samples.reduce((a, b) => a + b, 0);
  const sorted = [...samples].sort((a, b) => a - b);
  return { iterations: samples.length, totalMs, opsPerSec: (samples.length * 1000) / totalMs, medianMs: sorted[Math.floor(sorted.length / 2)]! };
}

/** A short description of this machine, for the top of docs/BENCHMARKS.md. */
export function describeMachine(): string {
  const cpu = cpus();
  let kernel: string;
  try {
    kernel = execSync('uname -sr', { encoding: 'utf8' }).trim();
  } catch {
    kernel = process.platform;
  }
  return `${cpu.length} × ${cpu[0]?.model.trim() ?? 'unknown CPU'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM, ${kernel}, Node ${process.version}`;
}

/** Formats a number for a table: 3 significant digits below 100, thousands separators above. */
export function fmt(n: number, digits = 3): string {
  if (!Number.isFinite(n)) return String(n);
  if (Math.abs(n) >= 100) return Math.round(n).toLocaleString('en-US');
  return Number(n.toPrecision(digits)).toString();
}

function renderSection(s: BenchSection, machine: string, date: string): string {
  const head = `| ${s.columns.join(' | ')} |\n| ${s.columns.map(() => '---').join(' | ')} |`;
  const body = s.rows.map((r) => `| ${r.map(String).join(' | ')} |`).join('\n');
  return [
    `<!-- bench:${s.id} -->`,
    `## ${s.title}`,
    '',
    `Measured ${date} on ${machine}. Command: \`npm run bench -- ${s.id}\`.`,
    '',
    s.method,
    '',
    head,
    body,
    ...(s.notes ? ['', s.notes] : []),
    `<!-- /bench:${s.id} -->`,
  ].join('\n');
}

const HEADER = `# Benchmarks

Every table here is written by \`npm run bench\` (bench/), never by hand. Each section says which machine
it ran on and how to run it again; ratios are against a plaintext baseline run in the same process.
`;

/** Prints a section and writes it into docs/BENCHMARKS.md, replacing the section's previous figures. */
export function publish(section: BenchSection, file = 'docs/BENCHMARKS.md'): void {
  const machine = describeMachine();
  const date = new Date().toISOString().slice(0, 10);
  const text = renderSection(section, machine, date);
  process.stdout.write(`\n${text}\n`);
  let doc = existsSync(file) ? readFileSync(file, 'utf8') : HEADER;
  const re = new RegExp(`<!-- bench:${section.id} -->[\\s\\S]*?<!-- /bench:${section.id} -->`);
  doc = re.test(doc) ? doc.replace(re, () => text) : `${doc.trimEnd()}\n\n${text}\n`;
  writeFileSync(file, doc);
}
