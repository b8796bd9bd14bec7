/**
 * Human-readable rendering of result rows, shared by `confide query`, `simulate` and the demo. Rows are read
 * loosely (as the coordinator's JSON gives them): scalar values, histograms and regressions alike.
 */

/** A result row as GET /v1/queries/:id returns it. */
export interface ResultRow {
  readonly stat: string;
  readonly field?: string;
  readonly x?: string;
  readonly y?: string;
  readonly group?: string | null;
  readonly value: unknown;
  readonly count: number | null;
  readonly suppressed?: boolean;
}

interface Bin {
  readonly min: number;
  readonly max: number;
  readonly count: number | null;
}

function subject(r: ResultRow): string {
  if (r.field !== undefined) return r.field;
  if (r.stat === 'regression') return `${r.y ?? '?'} ~ ${r.x ?? '?'}`;
  return `${r.x ?? '?'}, ${r.y ?? '?'}`;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null;
}

/** One row as text: `mean(salary) [rank=Prof] = 123   (n = 40)`, with histograms and regressions spelled out. */
export function renderRow(r: ResultRow): string {
  const head = `${r.stat}(${subject(r)})${r.group !== null && r.group !== undefined ? ` [${r.group}]` : ''}`;
  const n = `(n = ${r.count ?? 'suppressed'})`;
  const v = r.value;
  if (v === null || v === undefined) return `${head} = ${r.suppressed ? 'suppressed' : 'n/a'}   ${n}`;
  if (isObject(v) && Array.isArray(v.bins)) {
    const bins = (v.bins as Bin[]).map((b) => `  [${b.min}, ${b.max})  ${b.count ?? 'suppressed'}`);
    const edge = (x: unknown): string => (typeof x === 'number' ? String(x) : 'suppressed');
    return [`${head}   ${n}`, ...bins, `  underflow ${edge(v.underflow)}, overflow ${edge(v.overflow)}`].join('\n');
  }
  if (isObject(v) && 'slope' in v) {
    const num = (x: unknown): string => (typeof x === 'number' ? String(x) : 'n/a');
    return `${head}: slope ${num(v.slope)}, intercept ${num(v.intercept)}, r² ${num(v.r2)}   ${n}`;
  }
  return `${head} = ${typeof v === 'number' ? v : JSON.stringify(v)}   ${n}`;
}
