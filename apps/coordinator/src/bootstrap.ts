import 'reflect-metadata';
import { randomUUID } from 'node:crypto';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { DocumentBuilder, SwaggerModule } from '@nestjs/swagger';
import type { NextFunction, Request, Response } from 'express';
import { createRedis } from '@confide/queue';
import { formatVerifierKey, ledgerOrigin } from '@confide/ledger';
import { AppModule } from './app.module';
import type { CoordinatorConfig } from './config';
import { loadOrCreateCoordinatorKey } from './coordinator-key';
import { openDatabase } from './db/database';
import { createLogger } from './logging';

/** A running coordinator: its URL and how to stop it. */
export interface RunningCoordinator {
  readonly url: string;
  readonly app: INestApplication;
  close(): Promise<void>;
}

/**
 * Boots the coordinator: key, database (migrations run), Redis, then the Nest app with OpenAPI at /docs.
 * Used by `confide coordinator start`, the demo and the tests alike.
 */
export async function startCoordinator(config: CoordinatorConfig): Promise<RunningCoordinator> {
  const logger = createLogger(config.logLevel);
  const { key, fingerprint, created } = loadOrCreateCoordinatorKey(config.dataDir);
  logger.info({ fingerprint, created, verifierKey: formatVerifierKey(ledgerOrigin(key.publicKey), key.publicKey) }, 'coordinator signing key (ledger verifier key)');
  const database = await openDatabase({ url: config.databaseUrl, dataDir: config.dataDir });
  logger.info({ dialect: database.dialect }, 'database ready');
  const producer = createRedis(config.redisUrl, { role: 'producer' });
  const blocking: ReturnType<typeof createRedis>[] = [];
  const redis = {
    producer,
    blocking: () => {
      const c = createRedis(config.redisUrl, { role: 'worker' });
      blocking.push(c);
      return c;
    },
  };
  const app = await NestFactory.create(AppModule.register({ config, logger, database, redis, key }), { logger: ['error', 'warn'] });
  app.use((req: Request & { id?: string }, _res: Response, next: NextFunction) => {
    req.id = randomUUID();
    next();
  });
  const doc = SwaggerModule.createDocument(
    app,
    new DocumentBuilder().setTitle('Confide coordinator').setDescription('Secure multi-party analytics: studies, enrollment, queries, audit log.').setVersion('1').addBearerAuth().build(),
  );
  SwaggerModule.setup('docs', app, doc);
  await app.listen(config.port, config.host);
  const address = (app.getHttpServer() as Server).address() as AddressInfo;
  const url = `http://${config.host}:${address.port}`;
  logger.info({ url }, 'coordinator listening');
  let closed = false;
  return {
    url,
    app,
    async close() {
      if (closed) return;
      closed = true;
      await app.close();
      await Promise.allSettled([producer.quit(), ...blocking.map((c) => c.quit())]);
      await database.close();
    },
  };
}
