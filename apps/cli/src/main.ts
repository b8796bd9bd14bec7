#!/usr/bin/env node
import { UsageError } from './args';
import { ApiCallError } from './client';
import { ADMIN_USAGE, adminCommand } from './commands/admin';
import { COORDINATOR_USAGE, coordinatorCommand } from './commands/coordinator';
import { DEMO_USAGE, demoCommand } from './commands/demo';
import { KEYS_USAGE, keysCommand } from './commands/keys';
import { LEDGER_USAGE, ledgerCommand } from './commands/ledger';
import { PARTICIPANT_USAGE, participantCommand } from './commands/participant';
import { QUERY_USAGE, queryCommand } from './commands/query';
import { SIMULATE_USAGE, simulateCommand } from './commands/simulate';
import { Output } from './output';

const USAGE = `Usage: confide <command> [options]

Commands:
  demo                       a real secure aggregation on this machine, nothing to set up
  coordinator start          run the coordinator service
  admin study create|invite|keys create|participants list|participants remove
                             define studies, invite, list and remove participants, issue API keys
  participant enroll|update|run|log|receipts|check
                             enroll this machine as a participant, run its worker, see what it
                             computed and for whom, check its data file and its contributions
  query                      submit a query (--wait for the result), or 'query status|decrypt|decrypt-share ID'
  keys researcher|paillier   generate a researcher's identity key, or a Paillier key pair (whole, or split
                             among custodians); private keys stay on this machine
  ledger verify|show|proof   check the audit ledger: signatures, RFC 6962 root, consistency, proofs
  simulate                   run the shamir protocol in memory over CSV files

Global options: --coordinator URL (CONFIDE_URL), --token TOKEN (CONFIDE_TOKEN), --json.
Run 'confide <command> --help' for a command's options.`;

type Command = { run: (argv: readonly string[], out: Output) => Promise<void>; usage: string };

const COMMANDS: Record<string, Command> = {
  demo: { run: demoCommand, usage: DEMO_USAGE },
  coordinator: { run: coordinatorCommand, usage: COORDINATOR_USAGE },
  admin: { run: adminCommand, usage: ADMIN_USAGE },
  participant: { run: participantCommand, usage: PARTICIPANT_USAGE },
  query: { run: queryCommand, usage: QUERY_USAGE },
  keys: { run: keysCommand, usage: KEYS_USAGE },
  ledger: { run: ledgerCommand, usage: LEDGER_USAGE },
  simulate: { run: simulateCommand, usage: SIMULATE_USAGE },
};

/** Maps an error to the CLI's stable error codes. */
function errorCode(err: Error): string {
  if (err instanceof UsageError) return 'usage';
  if (err instanceof ApiCallError) return err.code;
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
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (err) {
    const e = err instanceof Error ? err : new Error(String(err));
    out.error(e, errorCode(e));
    if (e instanceof UsageError) process.stderr.write(`\n${command.usage}\n`);
    return e instanceof UsageError ? 2 : 1;
  }
}

void main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
  // Long-running commands return only after their own shutdown; anything left (a stray timer) must not hold the CLI.
  setImmediate(() => process.exit(code));
});
