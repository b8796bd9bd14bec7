import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { ParticipantModule } from './participant.module';

async function bootstrap(): Promise<void> {
  const app = await NestFactory.createApplicationContext(ParticipantModule, { logger: ['error', 'warn'] });
  app.enableShutdownHooks();
  await app.close();
}

void bootstrap();
