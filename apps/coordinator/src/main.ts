import { loadConfig } from './config';
import { stopSignal, stopWithin } from '@confide/queue';
import { startCoordinator } from './bootstrap';
import { createLogger } from './logging';

/** Entry point of the coordinator process (`node dist/.../main.js`; `confide coordinator start` does the same). */
async function main(): Promise<void> {
  const config = loadConfig();
  const running = await startCoordinator(config);
  await stopSignal();
  // SIGTERM ends the process within 10 s, whatever Redis or the database do (README "Operations").
  await stopWithin(() => running.close(), { logger: createLogger(config.logLevel), stillOpen: () => running.stillOpen() });
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`coordinator: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
