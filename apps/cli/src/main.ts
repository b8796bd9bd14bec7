#!/usr/bin/env node
import { UsageError } from './args';
import { ApiCallError } from './client';
import { COMMANDS, completionScript, USAGE, VERSION } from './command-table';
import { Output } from './output';

/** Maps an error to the CLI's stable error codes. */
function errorCode(err: Error): string {
  if (err instanceof UsageError) return 'usage';
  if (err instanceof ApiCallError) return err.code;
  const code = (err as Error & { code?: unknown }).code;
  return typeof code === 'string' ? code : err.name;
}

/** `confide help [COMMAND]` and `confide completion bash|zsh`: answered without running anything. */
function builtin(name: string, rest: readonly string[]): number | undefined {
  if (name === '--version' || name === '-V' || name === 'version') {
    process.stdout.write(`confide ${VERSION}\n`);
    return 0;
  }
  if (name === 'help') {
    const topic = rest[0];
    if (topic === undefined) {
      process.stdout.write(`${USAGE}\n`);
      return 0;
    }
    const command = COMMANDS[topic];
    if (!command) {
      process.stderr.write(`confide: no help for ${JSON.stringify(topic)}: not a command\n\n${USAGE}\n`);
      return 2;
    }
    process.stdout.write(`${command.usage}\n`);
    return 0;
  }
  if (name === 'completion') {
    const shell = rest[0];
    if (shell !== 'bash' && shell !== 'zsh') {
      process.stderr.write(`confide: completion takes bash or zsh, got ${JSON.stringify(shell ?? '')}\nUsage: confide completion bash|zsh   (e.g. source <(confide completion bash))\n`);
      return 2;
    }
    process.stdout.write(completionScript(shell));
    return 0;
  }
  return undefined;
}

async function main(argv: readonly string[]): Promise<number> {
  const out = new Output();
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h') {
    process.stdout.write(`${USAGE}\n`);
    return name ? 0 : 2;
  }
  const answered = builtin(name, rest);
  if (answered !== undefined) return answered;
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
