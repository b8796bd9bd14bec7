import { loadConfig } from './config';
import { startCoordinator } from './bootstrap';

/** Entry point of the coordinator process (`node dist/.../main.js`; `confide coordinator start` does the same). */
async function main(): Promise<void> {
  const running = await startCoordinator(loadConfig());
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.once(signal, () => {
      void running.close().then(
        () => process.exit(0),
        () => process.exit(1),
      );
    });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`coordinator: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
