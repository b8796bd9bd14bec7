import { stopSignal, stopWithin } from '@confide/queue';
import { loadConfig } from '../../../coordinator/src/config';
import { createLogger } from '../../../coordinator/src/logging';
import { intOption, parseCommandArgs, UsageError } from '../args';
import { CoordinatorClient, GLOBAL_OPTIONS, GLOBAL_USAGE } from '../client';
import type { Output } from '../output';

export const COORDINATOR_USAGE = `Usage: confide coordinator start [--port N]
       confide coordinator aggregate
       confide coordinator info [--json]
start runs the coordinator with the environment described in the README (DATABASE_URL, REDIS_URL,
CONFIDE_ADMIN_TOKEN, CONFIDE_DATA_DIR, ...). SIGTERM stops it cleanly.
aggregate runs one more Paillier aggregation worker (REDIS_URL, CONFIDE_QUEUE_PREFIX, and CONFIDE_DATA_DIR
holding the coordinator's key): add processes to aggregate faster; the coordinator forks CONFIDE_AGGREGATORS.
info shows the coordinator's URL, version and key fingerprint: the fingerprint an admin hands to participants
(participant enroll --coordinator-key) and auditors, out of band.
${GLOBAL_USAGE}`;

/** `confide coordinator start|aggregate|info`: the coordinator in this process, an aggregation worker, or what a remote one says of itself. */
export async function coordinatorCommand(argv: readonly string[], out: Output): Promise<void> {
  const [action, ...args] = argv;
  if (action === 'info') {
    const { values } = parseCommandArgs(args, { ...GLOBAL_OPTIONS });
    out.json = values.json === true;
    const client = CoordinatorClient.from(values);
    const info = await client.get<{ publicKey: string; fingerprint: string; version?: string }>('/v1/coordinator');
    out.result({ url: client.baseUrl, version: info.version ?? null, fingerprint: info.fingerprint, publicKey: info.publicKey }, () =>
      [`coordinator ${client.baseUrl}`, `version ${info.version ?? 'unknown'}`, `key fingerprint ${info.fingerprint}`, `public key ${info.publicKey}`].join('\n'),
    );
    return;
  }
  if (action === 'aggregate') {
    const { runAggregator } = await import('../../../coordinator/src/aggregation/main.js');
    await runAggregator();
    return;
  }
  if (action !== 'start') throw new UsageError(`unknown coordinator command ${JSON.stringify(action ?? '')} (start, aggregate, info)`);
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
