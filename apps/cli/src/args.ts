import { parseArgs, type ParseArgsConfig } from 'node:util';

/** A usage error: the command line itself is wrong. The CLI prints it with the command's usage and exits 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

type Options = NonNullable<ParseArgsConfig['options']>;

/**
 * Parses a command's arguments strictly (unknown flags and stray positionals are usage errors), keeping
 * the order of repeated flags so pairs like `--stat mean --field glu` can be read back in sequence.
 */
export function parseCommandArgs<O extends Options>(argv: readonly string[], options: O, allowPositionals = false) {
  try {
    return parseArgs({ args: [...argv], options, strict: true, allowPositionals, tokens: true });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/** The values of the named flags in command-line order, as [flag, value] pairs. */
export function orderedOptions(tokens: ReturnType<typeof parseCommandArgs>['tokens'], names: readonly string[]): [string, string][] {
  const out: [string, string][] = [];
  for (const t of tokens ?? []) {
    if (t.kind === 'option' && names.includes(t.name) && typeof t.value === 'string') out.push([t.name, t.value]);
  }
  return out;
}

/** Reads a non-negative integer flag, or throws a UsageError naming it. */
export function intOption(value: string | undefined, name: string, min = 0): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value) || Number(value) < min) throw new UsageError(`--${name} must be an integer ≥ ${min}, got ${JSON.stringify(value)}`);
  return Number(value);
}
