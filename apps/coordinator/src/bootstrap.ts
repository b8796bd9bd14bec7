import 'reflect-metadata';
import { fork, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { extname, join } from 'node:path';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { DocumentBuilder, SwaggerModule } from '@nestjs/swagger';
import type { NextFunction, Request, Response } from 'express';
import { keyFingerprint, publicKeyBase64Url, type PublicKey } from '@confide/crypto';
import { formatVerifierKey, ledgerOrigin } from '@confide/ledger';
import { ENTRY, entryKey } from '@confide/protocol';
import { createRedis, redactRedisUrl, secureDefaultUser } from '@confide/queue';
import type { Redis } from 'ioredis';
import { AppModule } from './app.module';
import type { CoordinatorConfig } from './config';
import { loadOrCreateCoordinatorKey } from './coordinator-key';
import { openDatabase } from './db/database';
import { createLogger, type Logger } from './logging';
import { Repositories } from './storage';

/** How long a stop waits for BullMQ to drain before it drops its connections (Redis may be down). */
const SHUTDOWN_GRACE_MS = 10_000;

const delay = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms).unref());

/** A running coordinator: its URL and how to stop it. */
export interface RunningCoordinator {
  readonly url: string;
  readonly app: INestApplication;
  /** The public key that signs the ledger's checkpoints. */
  readonly coordinatorKey: PublicKey;
  close(): Promise<void>;
}

/**
 * Boots the coordinator: key, database (migrations run), Redis, then the Nest app with OpenAPI at /docs.
 * Used by `confide coordinator start`, the demo and the tests alike.
 */
export async function startCoordinator(config: CoordinatorConfig): Promise<RunningCoordinator> {
  const logger = createLogger(config.logLevel);
  const { key, encryption, fingerprint, created } = loadOrCreateCoordinatorKey(config.dataDir);
  logger.info({ fingerprint, created, verifierKey: formatVerifierKey(ledgerOrigin(key.publicKey), key.publicKey) }, 'coordinator signing key (ledger verifier key)');
  const producer = createRedis(config.redisUrl, { role: 'producer' });
  // A connection's errors are reported where it is used (the orchestrator's OutageMonitor: one line per outage, the
  // HTTP layer: 503); without a listener ioredis would print every reconnection attempt to stderr.
  const quiet = (): void => undefined;
  producer.on('error', quiet);
  try {
    await lockDownRedis(producer, config.redisUrl, logger);
  } catch (err) {
    producer.disconnect();
    throw err;
  }
  const database = await openDatabase({ url: config.databaseUrl, dataDir: config.dataDir });
  logger.info({ dialect: database.dialect }, 'database ready');
  const blocking: ReturnType<typeof createRedis>[] = [];
  const redis = {
    producer,
    blocking: () => {
      const c = createRedis(config.redisUrl, { role: 'worker' });
      c.on('error', quiet);
      blocking.push(c);
      return c;
    },
    all: () => [producer, ...blocking],
  };
  const app = await NestFactory.create(AppModule.register({ config, logger, database, redis, key, encryptionKey: encryption }), { logger: ['error', 'warn'] });
  // Both public keys in the ledger: auditors see which keys signed checkpoints and read the committee's share sums.
  const keysBody = { signingKeyFingerprint: keyFingerprint(key.publicKey), encryptionKeyFingerprint: keyFingerprint(encryption.publicKey), encryptionKey: publicKeyBase64Url(encryption.publicKey) };
  await app.get(Repositories).events.append(ENTRY.coordinatorKeys, keysBody, entryKey(ENTRY.coordinatorKeys, keysBody.signingKeyFingerprint, keysBody.encryptionKeyFingerprint), Date.now());
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
  const aggregators = forkAggregators(config, logger);
  let closed = false;
  return {
    url,
    app,
    coordinatorKey: key.publicKey,
    async close() {
      if (closed) return;
      closed = true;
      // A clean stop drains BullMQ's workers and queues, which needs Redis. When Redis (or the database) is down
      // that would wait for its return: after the grace period, connections are dropped and the stop goes on.
      const drained = (async () => {
        await aggregators.stop();
        await app.close();
      })();
      const timedOut = await Promise.race([drained.then(() => false), delay(SHUTDOWN_GRACE_MS).then(() => true)]);
      if (timedOut) {
        logger.warn({ graceMs: SHUTDOWN_GRACE_MS }, 'stopping without draining: Redis or the database did not answer in time');
        for (const c of [producer, ...blocking]) c.disconnect();
        await Promise.race([drained.catch(() => undefined), delay(2_000)]);
      } else {
        await Promise.allSettled([producer.quit(), ...blocking.map((c) => c.quit())]);
      }
      await database.close();
    },
  };
}

/**
 * Waits for Redis (up to 30 s) and makes sure no client can use it without credentials (libs/queue
 * secureDefaultUser), then keeps it so: Redis keeps ACLs in memory, so a restarted Redis may come back with its
 * `default` user open, and every reconnection checks again.
 * @throws RedisSecurityError when the default user is open and the coordinator itself runs as it; Error when Redis
 *   does not answer in time
 */
async function lockDownRedis(producer: Redis, url: string, logger: Logger): Promise<void> {
  const check = async (): Promise<void> => {
    const { switchedOff } = await secureDefaultUser(producer);
    if (switchedOff) logger.warn("Redis's default user had no password: switched it off (ACL SETUSER default off), so every client must log in as its own user");
  };
  if (producer.status !== 'ready') {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`Redis at ${redactRedisUrl(url)} did not answer within 30 s`)), 30_000);
      producer.once('ready', () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
  await check();
  producer.on('ready', () => void check().catch((err: unknown) => logger.error({ err }, 'Redis came back with an open default user that could not be switched off')));
}

/**
 * Forks the Paillier aggregation workers (CONFIDE_AGGREGATORS processes, apps/coordinator/src/aggregation): the
 * CPU-heavy ciphertext checks and products run there, never in this HTTP process. A worker that dies is
 * restarted after a second; stop() ends them all with SIGTERM.
 */
function forkAggregators(config: CoordinatorConfig, logger: ReturnType<typeof createLogger>): { stop(): Promise<void> } {
  const entry = join(__dirname, 'aggregation', `main${extname(__filename)}`);
  const children = new Set<ChildProcess>();
  let stopping = false;
  const spawn = (): void => {
    const child = fork(entry, [], {
      env: { ...process.env, REDIS_URL: config.redisUrl, CONFIDE_DATA_DIR: config.dataDir, CONFIDE_QUEUE_PREFIX: config.queuePrefix, LOG_LEVEL: config.logLevel },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    children.add(child);
    child.once('exit', (code, signal) => {
      children.delete(child);
      if (stopping) return;
      logger.error({ code, signal }, 'aggregation worker exited; restarting it');
      setTimeout(() => !stopping && spawn(), 1000).unref();
    });
  };
  for (let i = 0; i < config.aggregators; i++) spawn();
  return {
    async stop() {
      stopping = true;
      await Promise.all(
        [...children].map(
          (child) =>
            new Promise<void>((resolve) => {
              if (child.exitCode !== null || child.signalCode !== null) return resolve();
              child.once('exit', () => resolve());
              child.kill('SIGTERM');
            }),
        ),
      );
    },
  };
}
