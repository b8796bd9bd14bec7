import pino from 'pino';
import { loadBuilt } from './e2e-support';

/**
 * BENCH-ONLY: many participants' workers in one process, as bench/scale.bench.ts runs 1,000 of them in a few
 * processes: `node --import tsx bench/scale-host.ts`, given the participants' home directories in
 * CONFIDE_SCALE_HOMES (a JSON array). Each is the product's ParticipantWorker (the built one), with its own Redis
 * connection and ACL user from its home, exactly as `confide participant run --home DIR` runs one; only the process
 * is shared. Prints `ready N` once every worker takes tasks, and stops them all on SIGTERM.
 */
async function main(): Promise<void> {
  const raw = process.env.CONFIDE_SCALE_HOMES;
  if (!raw) throw new Error('CONFIDE_SCALE_HOMES is not set');
  const homes = JSON.parse(raw) as string[];
  const b = loadBuilt({ quiet: true });
  const logger = pino({ level: process.env.LOG_LEVEL ?? 'warn' });
  const workers = homes.map((home) => new b.ParticipantWorker({ home, logger }));
  // A few at a time: each start connects to Redis and checks its data file.
  for (let i = 0; i < workers.length; i += 25) await Promise.all(workers.slice(i, i + 25).map((w) => w.start()));
  // Every view verified up to the ledger's head once, a few at a time, before the first query (after N enrollments,
  // participant i's view lacks the N - i enrollments after its own): what a worker does by itself in the background
  // when a heartbeat shows it far behind, done here up front so that the timed queries do not overlap it.
  const t = performance.now();
  let next = 0;
  const lane = async (): Promise<void> => {
    for (let i = next++; i < workers.length; i = next++) {
      // A coordinator busy with everyone's pages may not answer in time: that worker tries again.
      for (let attempt = 1; ; attempt++) {
        try {
          await workers[i]!.syncLedger();
          break;
        } catch (err) {
          if (attempt === 5) throw err;
          process.stderr.write(`scale host: catching up worker ${i + 1} failed (${(err as Error).message}); trying again\n`);
        }
      }
    }
  };
  await Promise.all(Array.from({ length: 4 }, lane));
  process.stdout.write(`views ${Math.round(performance.now() - t)} ms\n`);
  process.once('SIGTERM', () => {
    void Promise.allSettled(workers.map((w) => w.stop())).finally(() => process.exit(0));
  });
  process.stdout.write(`ready ${workers.length}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`scale host: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
