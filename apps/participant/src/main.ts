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
  await worker.start();
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.once(signal, () => {
      void worker.stop().then(
        () => process.exit(0),
        () => process.exit(1),
      );
    });
  }
}

main(process.argv.slice(2)).catch((err: unknown) => {
  process.stderr.write(`participant: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
