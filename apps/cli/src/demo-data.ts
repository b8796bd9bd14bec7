import type { StudySchemaJson } from '@confide/protocol';

/**
 * Deterministic synthetic study data for tests and the demo: a salary study (in the spirit of the classic
 * "Salaries" data set: rank, years since PhD, sex, nine-month salary), generated from a seed so every run
 * and every machine sees the same files. Not for secrets: the generator is a plain PRNG.
 */

/**
 * mulberry32: a 32-bit seeded PRNG returning floats in [0, 1). Small, fast and good enough for test data;
 * never for keys or shares (those take a RandomSource from libs/crypto).
 */
export function createPrng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The synthetic salary study's schema, as JSON (parse it with `parseStudySchema`). */
export function syntheticSalaryStudy(): StudySchemaJson {
  return {
    name: 'salaries',
    minParticipants: 3,
    outOfRange: 'reject',
    fields: [
      { name: 'salary', type: 'number', min: 30000, max: 400000, decimals: 2 },
      { name: 'yrs_since_phd', type: 'number', min: 0, max: 60, decimals: 0 },
      { name: 'rank', type: 'category', values: ['AsstProf', 'AssocProf', 'Prof'] },
      { name: 'sex', type: 'category', values: ['Female', 'Male'] },
    ],
  };
}

/** Options of {@link generateSalaryCsv}. */
export interface SalaryCsvOptions {
  /** Probability that any one cell is left empty (missing); default 0.03. */
  readonly missingRate?: number;
}

const RANKS = [
  { rank: 'AsstProf', salary: [30000, 120000], years: [0, 12] },
  { rank: 'AssocProf', salary: [60000, 200000], years: [5, 35] },
  { rank: 'Prof', salary: [90000, 400000], years: [10, 60] },
] as const;

/**
 * CSV text for one synthetic participant, deterministic in (seed, rows, options). The seed also picks the
 * column order, LF or CRLF line ends, a byte order mark, whether the last line ends, which cells are quoted
 * (header names and category values), and how many decimals each salary is written with (0, 1 or 2;
 * sometimes with trailing zeros), so a reader sees the variety real exports have.
 */
export function generateSalaryCsv(seed: number, rows: number, options: SalaryCsvOptions = {}): string {
  const missingRate = options.missingRate ?? 0.03;
  const rng = createPrng(seed);
  const int = (lo: number, hi: number): number => lo + Math.floor(rng() * (hi - lo + 1));
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rng() * xs.length)]!;
  const quoteMaybe = (s: string): string => (rng() < 0.5 ? `"${s}"` : s);
  const missingMaybe = (s: string): string => (rng() < missingRate ? (rng() < 0.2 ? '""' : '') : s);

  const columns = ['salary', 'yrs_since_phd', 'rank', 'sex'];
  for (let i = columns.length - 1; i > 0; i--) {
    const j = int(0, i);
    [columns[i], columns[j]] = [columns[j]!, columns[i]!];
  }
  const eol = rng() < 0.5 ? '\r\n' : '\n';
  const bom = rng() < 0.2 ? '\uFEFF' : '';
  const finalEol = rng() < 0.7;

  const lines = [columns.map(quoteMaybe).join(',')];
  for (let r = 0; r < rows; r++) {
    const band = pick(RANKS);
    const cents = int(band.salary[0] * 100, band.salary[1] * 100);
    const style = rng();
    let salary: string;
    if (style < 0.3) salary = String(Math.floor(cents / 100));
    else if (style < 0.5) salary = `${Math.floor(cents / 100)}.${Math.floor((cents % 100) / 10)}`;
    else salary = `${Math.floor(cents / 100)}.${String(cents % 100).padStart(2, '0')}`;
    if (style > 0.9) salary += '0';
    const cells: Record<string, string> = {
      salary,
      yrs_since_phd: String(int(band.years[0], band.years[1])),
      rank: quoteMaybe(band.rank),
      sex: quoteMaybe(rng() < 0.3 ? 'Female' : 'Male'),
    };
    lines.push(columns.map((c) => missingMaybe(cells[c]!)).join(','));
  }
  return bom + lines.join(eol) + (finalEol ? eol : '');
}

/** Plain-JS statistics of one numeric field, for cross-checking the protocol code. */
export interface PlainFieldStats {
  /** Non-missing values. */
  readonly count: number;
  /** Σ values as an exact integer scaled by 10^decimals. */
  readonly sumScaled: bigint;
  readonly decimals: number;
  /** The exact sum written as a decimal string. */
  readonly sumText: string;
  /** Σ / count in ordinary floating point (not correctly rounded: compare approximately); null with no values. */
  readonly mean: number | null;
}

/** Plain-JS counts of one category field: non-missing values, and how often each value occurs. */
export interface PlainCategoryCounts {
  readonly count: number;
  readonly byValue: ReadonlyMap<string, number>;
}

/**
 * The cells of every column over several CSV texts, read by a deliberately naive reader (split lines, split
 * commas, strip quotes) that is enough for {@link generateSalaryCsv}'s output, which never puts a comma,
 * quote or line end inside a cell. Missing (empty) cells are left out.
 */
function naiveColumns(csvTexts: readonly string[]): Map<string, string[]> {
  const columns = new Map<string, string[]>();
  const unquote = (s: string): string => (s.startsWith('"') && s.endsWith('"') && s.length >= 2 ? s.slice(1, -1) : s);
  for (const text of csvTexts) {
    const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
    while (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
    const [headerLine, ...rows] = lines;
    const header = (headerLine ?? '').split(',').map(unquote);
    for (const row of rows) {
      const cells = row.split(',').map(unquote);
      header.forEach((name, col) => {
        const cell = cells[col] ?? '';
        if (cell === '') return;
        let column = columns.get(name);
        if (column === undefined) columns.set(name, (column = []));
        column.push(cell);
      });
    }
  }
  return columns;
}

/**
 * count, exact sum and mean of every numeric field over several CSV texts, computed without libs/protocol or
 * libs/crypto, to cross-check them.
 */
export function plainStats(csvTexts: readonly string[], study: StudySchemaJson = syntheticSalaryStudy()): Map<string, PlainFieldStats> {
  const columns = naiveColumns(csvTexts);
  const out = new Map<string, PlainFieldStats>();
  for (const field of study.fields) {
    if (field.type !== 'number') continue;
    const { decimals } = field;
    const cells = columns.get(field.name) ?? [];
    let sum = 0n;
    for (const cell of cells) {
      const [whole = '', fraction = ''] = cell.split('.');
      sum += BigInt(whole + fraction.padEnd(decimals, '0').slice(0, decimals));
    }
    const digits = (sum < 0n ? -sum : sum).toString().padStart(decimals + 1, '0');
    const sign = sum < 0n ? '-' : '';
    const sumText = decimals === 0 ? sign + digits : `${sign}${digits.slice(0, -decimals)}.${digits.slice(-decimals)}`;
    out.set(field.name, {
      count: cells.length,
      sumScaled: sum,
      decimals,
      sumText,
      mean: cells.length === 0 ? null : Number(sumText) / cells.length,
    });
  }
  return out;
}

/** Counts of every category field over several CSV texts, computed the same naive way as {@link plainStats}. */
export function plainCategoryCounts(
  csvTexts: readonly string[],
  study: StudySchemaJson = syntheticSalaryStudy(),
): Map<string, PlainCategoryCounts> {
  const columns = naiveColumns(csvTexts);
  const out = new Map<string, PlainCategoryCounts>();
  for (const field of study.fields) {
    if (field.type !== 'category') continue;
    const cells = columns.get(field.name) ?? [];
    const byValue = new Map<string, number>();
    for (const cell of cells) byValue.set(cell, (byValue.get(cell) ?? 0) + 1);
    out.set(field.name, { count: cells.length, byValue });
  }
  return out;
}
