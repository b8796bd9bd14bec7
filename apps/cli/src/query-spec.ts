import { readFileSync } from 'node:fs';
import { UsageError } from './args';

/**
 * The query language on the command line (DESIGN.md "Queries"), read into the JSON the API takes:
 *
 *   --stat mean --field salary
 *   --stat histogram --field salary --bins 50000:250000:20000      (or --edges 0,10,20,50)
 *   --stat regression --x yrs_since_phd --y salary                  (and correlation)
 *   --where 'age>=40' --where 'type=Yes' --where 'rank in Prof,AsstProf'
 *   --group-by rank
 *
 * Each --stat takes the options that follow it up to the next --stat. The statistics compiler checks the
 * result against the study schema (and names what is wrong); here only the command line's shape is checked.
 */

/** The flags that describe one select item, in the order given. */
export const SELECT_FLAGS = ['stat', 'field', 'x', 'y', 'bins', 'edges'] as const;

/** The parseArgs options of the query language, shared by `confide query` and `confide simulate`. */
export const QUERY_OPTIONS = {
  stat: { type: 'string', multiple: true },
  field: { type: 'string', multiple: true },
  x: { type: 'string', multiple: true },
  y: { type: 'string', multiple: true },
  bins: { type: 'string', multiple: true },
  edges: { type: 'string', multiple: true },
  where: { type: 'string', multiple: true },
  'group-by': { type: 'string' },
} as const;

function finiteNumber(text: string, what: string): number {
  const n = Number(text);
  if (text.trim() === '' || !Number.isFinite(n)) throw new UsageError(`${what}: ${JSON.stringify(text)} is not a number`);
  return n;
}

/**
 * Reads the ordered [flag, value] pairs of SELECT_FLAGS into select items.
 * @throws UsageError for an option before any --stat, a repeated option in one item, or a malformed --bins
 */
export function readSelect(pairs: readonly [string, string][]): Record<string, unknown>[] {
  const items: Record<string, unknown>[] = [];
  for (const [flag, value] of pairs) {
    if (flag === 'stat') {
      items.push({ stat: value });
      continue;
    }
    const item = items[items.length - 1];
    if (!item) throw new UsageError(`--${flag} must follow a --stat`);
    if (flag in item) throw new UsageError(`--stat ${String(item.stat)} has two --${flag} options`);
    if (flag === 'bins') {
      const parts = value.split(':');
      if (parts.length !== 3) throw new UsageError(`--bins must be MIN:MAX:WIDTH, got ${JSON.stringify(value)}`);
      const [min, max, width] = parts.map((p) => finiteNumber(p, '--bins')) as [number, number, number];
      item.bins = { min, max, width };
    } else if (flag === 'edges') {
      item.edges = value.split(',').map((p) => finiteNumber(p, '--edges'));
    } else {
      item[flag] = value;
    }
  }
  if (items.length === 0) throw new UsageError('give at least one --stat, e.g. --stat mean --field salary');
  return items;
}

const CONDITION = /^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(<=|>=|!=|=|<|>|\s+in\s+)\s*(.*?)\s*$/;

/** A value as the query JSON holds it: a number when it reads as one, the text otherwise (category values). */
function conditionValue(text: string): number | string {
  const n = Number(text);
  return text !== '' && Number.isFinite(n) && /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(text) ? n : text;
}

/**
 * Reads one --where condition: `field op value` with op one of = != < <= > >=, or `field in a,b,c`.
 * @throws UsageError when it does not parse
 */
export function readWhere(text: string): { field: string; op: string; value: unknown } {
  const m = CONDITION.exec(text);
  if (!m || m[3] === '') throw new UsageError(`--where ${JSON.stringify(text)}: expected FIELD OP VALUE with OP one of = != < <= > >= in (e.g. 'age>=40', 'rank in Prof,AssocProf')`);
  const op = m[2]!.trim();
  if (op === 'in') return { field: m[1]!, op, value: m[3]!.split(',').map((v) => conditionValue(v.trim())) };
  return { field: m[1]!, op, value: conditionValue(m[3]!) };
}

/**
 * Reads a whole query from a JSON file (`confide query --file q.json`): the same body POST /v1/queries takes.
 * @throws UsageError when the file is missing or not a JSON object
 */
export function readQueryFile(file: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new UsageError(`--file ${file}: ${(err as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new UsageError(`--file ${file}: must hold a JSON object (the query)`);
  return parsed as Record<string, unknown>;
}
