import { startBaselineWorker } from './baseline-pipeline';
import { loadBuilt } from './e2e-support';

/**
 * BENCH-ONLY: one participant of the plaintext baseline (bench/baseline-pipeline.ts) in a process of its own, as
 * bench/soak.bench.ts runs ten of them beside ten real participant processes: `node --import tsx
 * bench/baseline-worker.ts`, configured by CONFIDE_BASELINE_WORKER (JSON: redisUrl, prefix, participant {id,
 * dataFile}, username, password, and the study's schema JSON), an environment variable rather than arguments so
 * that the password does not show in the process list. It runs the built libs/protocol and libs/queue, prints
 * `ready` once it takes jobs, and stops on SIGTERM.
 */
async function main(): Promise<void> {
  const raw = process.env.CONFIDE_BASELINE_WORKER;
  if (!raw) throw new Error('CONFIDE_BASELINE_WORKER is not set');
  const config = JSON.parse(raw) as { redisUrl: string; prefix: string; participant: { id: string; dataFile: string }; username: string; password: string; study: unknown };
  const b = loadBuilt({ quiet: true });
  const worker = await startBaselineWorker({ ...config, schema: b.protocol.parseStudySchema(config.study), libs: { protocol: b.protocol, queue: b.queue } });
  process.once('SIGTERM', () => {
    void worker.close().finally(() => process.exit(0));
  });
  process.stdout.write('ready\n');
}

main().catch((err: unknown) => {
  process.stderr.write(`baseline worker: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
