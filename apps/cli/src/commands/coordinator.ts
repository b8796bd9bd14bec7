import { stopSignal, stopWithin } from '@confide/queue';
import { loadConfig } from '../../../coordinator/src/config';
import { createLogger } from '../../../coordinator/src/logging';
import { intOption, parseCommandArgs, UsageError } from '../args';
import type { Output } from '../output';

export const COORDINATOR_USAGE = `Usage: confide coordinator start [--port N]
       confide coordinator aggregate
start runs the coordinator with the environment described in the README (DATABASE_URL, REDIS_URL,
CONFIDE_ADMIN_TOKEN, CONFIDE_DATA_DIR, ...). SIGTERM stops it cleanly.
aggregate runs one more Paillier aggregation worker (REDIS_URL, CONFIDE_QUEUE_PREFIX, and CONFIDE_DATA_DIR
holding the coordinator's key): add processes to aggregate faster; the coordinator forks CONFIDE_AGGREGATORS.`;

/** `confide coordinator start`: the coordinator in this process. */
export async function coordinatorCommand(argv: readonly string[], _out: Output): Promise<void> {
  const [action, ...args] = argv;
  if (action === 'aggregate') {
    const { runAggregator } = await import('../../../coordinator/src/aggregation/main.js');
    await runAggregator();
    return;
  }
  if (action !== 'start') throw new UsageError(`unknown coordinator command ${JSON.stringify(action ?? '')}`);
  const { values } = parseCommandArgs(args, { port: { type: 'string' } });
  const port = intOption(values.port, 'port');
  const config = loadConfig({ ...process.env, ...(port !== undefined ? { PORT: String(port) } : {}) });
  // Loaded lazily: NestJS is only needed by this command, not by every CLI call.
  const { startCoordinator } = await import('../../../coordinator/src/bootstrap.js');
  const running = await startCoordinator(config);
  process.stderr.write(`coordinator listening on ${running.url} (OpenAPI at ${running.url}/docs)\n`);
  await stopSignal();
  // SIGTERM ends the process within 10 s, whatever Redis or the database do (README "Operations").
  await stopWithin(() => running.close(), { logger: createLogger(config.logLevel), stillOpen: () => running.stillOpen() });
}
