import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

/**
 * The shared/ folder with the real data set and published vectors. It lives outside the repository and is
 * passed in by .ci/run as CONFIDE_SHARED_DIR; a run without it fails loudly instead of passing vacuously.
 */
export function sharedDir(...parts: string[]): string {
  const base = process.env.CONFIDE_SHARED_DIR;
  if (!base) throw new Error('CONFIDE_SHARED_DIR is not set: the shared tier needs the path to shared/ (see .ci/run)');
  const path = resolve(base, ...parts);
  if (!existsSync(path)) throw new Error(`${path} does not exist: CONFIDE_SHARED_DIR must point at shared/`);
  return path;
}

/** The Pima data set: four site CSVs and R's reference statistics. */
export function pima(): { files: string[]; reference: Record<string, unknown> & { n: number; mean_glu: number; mean_bmi: number } } {
  const dir = sharedDir('data', 'pima');
  const files = [1, 2, 3, 4].map((i) => join(dir, `site-${i}.csv`));
  for (const f of files) if (!existsSync(f)) throw new Error(`${f} is missing`);
  const reference = (JSON.parse(readFileSync(join(dir, 'reference.json'), 'utf8')) as { pima: Record<string, unknown> & { n: number; mean_glu: number; mean_bmi: number } }).pima;
  return { files, reference };
}

/** True when `actual` equals R's printed `expected` to the precision R printed (about 12 significant digits). */
export function matchesReference(actual: number | null, expected: number): boolean {
  return actual !== null && Math.abs(actual - expected) <= 1e-9 * Math.max(1, Math.abs(expected));
}
