#!/usr/bin/env node
import { Output } from './output';
import { UsageError } from './args';
import { simulateCommand, SIMULATE_USAGE } from './commands/simulate';

const USAGE = `Usage: confide <command> [options]

Commands:
  simulate     run the shamir protocol in memory over CSV files (one participant per file)
  demo         a secure aggregation with generated data (needs the coordinator services: not yet built)

Run 'confide <command> --help' for a command's options.`;

type Command = { run: (argv: readonly string[], out: Output) => Promise<void>; usage: string };

const COMMANDS: Record<string, Command> = {
  simulate: { run: simulateCommand, usage: SIMULATE_USAGE },
  demo: {
    usage: 'Usage: confide demo [--participants N]',
    run: () =>
      Promise.reject(
        new Error('not yet: the demo needs the coordinator, workers and queue (the services issue). Meanwhile `npm run simulate` runs the protocol in memory.'),
      ),
  },
};

/** Maps an error to the CLI's stable error codes. */
function errorCode(err: Error): string {
  if (err instanceof UsageError) return 'usage';
  const code = (err as Error & { code?: unknown }).code;
  return typeof code === 'string' ? code : err.name;
}

async function main(argv: readonly string[]): Promise<number> {
  const out = new Output();
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h') {
    process.stdout.write(`${USAGE}\n`);
    return name ? 0 : 2;
  }
  const command = COMMANDS[name];
  if (!command) {
    process.stderr.write(`confide: unknown command ${JSON.stringify(name)}\n\n${USAGE}\n`);
    return 2;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(`${command.usage}\n`);
    return 0;
  }
  out.json = rest.includes('--json');
  try {
    await command.run(rest, out);
    return 0;
  } catch (err) {
    const e = err instanceof Error ? err : new Error(String(err));
    out.error(e, errorCode(e));
    if (e instanceof UsageError) process.stderr.write(`\n${command.usage}\n`);
    return e instanceof UsageError ? 2 : 1;
  }
}

void main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
