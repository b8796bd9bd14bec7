import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { AppModule } from './app.module';

async function bootstrap(): Promise<void> {
  const app = await NestFactory.create(AppModule, { logger: ['error', 'warn', 'log'] });
  const port = Number(process.env.PORT ?? 8080);
  await app.listen(port, '127.0.0.1');
  Logger.log(`coordinator listening on 127.0.0.1:${port}`, 'Bootstrap');
  // Close the app (HTTP server, and later queues and database) on SIGTERM/SIGINT, then exit 0, so an
  // orchestrator sees a clean stop rather than a death by signal.
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.once(signal, () => {
      void app.close().then(
        () => process.exit(0),
        () => process.exit(1),
      );
    });
  }
}

void bootstrap();
