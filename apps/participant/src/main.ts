import { stopSignal, stopWithin } from '@confide/queue';
import { ParticipantWorker } from './worker';

/**
 * Entry point of a participant worker process: `node main.js --home DIR`. `confide participant run` is the
 * same with a friendlier command line.
 */
async function main(argv: string[]): Promise<void> {
  const i = argv.indexOf('--home');
  const home = i >= 0 ? argv[i + 1] : process.env.CONFIDE_HOME;
  if (!home) throw new Error('usage: participant --home DIR (or CONFIDE_HOME)');
  const worker = new ParticipantWorker({ home, redisUrl: process.env.CONFIDE_REDIS_URL });
  // Listening before start(): a worker waiting for an unreachable Redis stops on SIGTERM too.
  const signalled = stopSignal();
  await Promise.race([worker.start(), signalled]);
  await signalled;
  // SIGTERM ends the process within 10 s, whatever Redis does (README "Operations").
  await stopWithin(() => worker.stop(), { logger: worker.log, stillOpen: () => worker.stillOpen() });
}

main(process.argv.slice(2)).then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`participant: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
