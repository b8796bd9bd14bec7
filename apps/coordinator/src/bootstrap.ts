import 'reflect-metadata';
import { fork, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { extname, join } from 'node:path';
import type { AddressInfo } from 'node:net';
import type { INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { DocumentBuilder, SwaggerModule } from '@nestjs/swagger';
import type { NextFunction, Request, Response } from 'express';
import { keyFingerprint, publicKeyBase64Url, type PublicKey } from '@confide/crypto';
import { formatVerifierKey, ledgerOrigin } from '@confide/ledger';
import { ENTRY, entryKey } from '@confide/protocol';
import { createRedis, DRAIN_GRACE_MS, secureDefaultUser, settledWithin, withoutCredentials, type RedisClient } from '@confide/queue';
import { AppModule } from './app.module';
import type { CoordinatorConfig } from './config';
import { loadOrCreateCoordinatorKey } from './coordinator-key';
import { isDatabaseOutage, openDatabase } from './db/database';
import { Dependencies } from './health/dependencies';
import { serveConsole } from './http/console-assets';
import { createLogger, type Logger } from './logging';
import { Repositories } from './storage';


/** A running coordinator: its URL and how to stop it. */
export interface RunningCoordinator {
  readonly url: string;
  readonly app: INestApplication;
  /** The public key that signs the ledger's checkpoints. */
  readonly coordinatorKey: PublicKey;
  /** Drains and stops; when Redis or the database does not answer, drops the connections after a grace period. */
  close(): Promise<void>;
  /** What a stop has not closed yet (named steps, connections not ended), for the line logged at the deadline. */
  stillOpen(): string[];
}

/**
 * Boots the coordinator: key, database (migrations run), Redis, then the Nest app with OpenAPI at /docs.
 * Used by `confide coordinator start`, the demo and the tests alike.
 */
export async function startCoordinator(config: CoordinatorConfig): Promise<RunningCoordinator> {
  const logger = createLogger(config.logLevel);
  const { key, encryption, fingerprint, created } = loadOrCreateCoordinatorKey(config.dataDir);
  logger.info({ fingerprint, created, verifierKey: formatVerifierKey(ledgerOrigin(key.publicKey), key.publicKey) }, 'coordinator signing key (ledger verifier key)');
  // Every connection's errors go to one reporter: one line per outage (what is down, where, what to check), not a
  // stack per reconnection attempt, which ioredis prints for a connection without an 'error' listener.
  const dependencies = new Dependencies(config, logger);
  const producer = createRedis(config.redisUrl, { role: 'producer' });
  dependencies.redis.watch(producer, 'producer');
  try {
    await lockDownRedis(producer, config.redisUrl, logger);
  } catch (err) {
    dependencies.stop();
    producer.disconnect();
    throw err;
  }
  let database: Awaited<ReturnType<typeof openDatabase>>;
  try {
    database = await openDatabase({ url: config.databaseUrl, dataDir: config.dataDir, onIdleConnectionError: (err) => dependencies.databaseError(err) });
  } catch (err) {
    dependencies.stop();
    producer.disconnect();
    const cause = (err as Error).cause ?? err;
    if (config.databaseUrl && isDatabaseOutage(cause)) {
      const url = withoutCredentials(config.databaseUrl);
      // A refused connection to a name with several addresses is an AggregateError with an empty message.
      const reason = (cause as Error).message || (cause as { code?: string }).code || 'no answer';
      throw new Error(`database unreachable at ${url}: ${reason}. Check: is PostgreSQL running at ${url}? is DATABASE_URL right?`, { cause: err });
    }
    throw err;
  }
  logger.info({ dialect: database.dialect }, 'database ready');
  dependencies.watchDatabase(database);
  const blocking: ReturnType<typeof createRedis>[] = [];
  const redis = {
    producer,
    blocking: (name: string) => {
      const c = createRedis(config.redisUrl, { role: 'worker' });
      dependencies.redis.watch(c, name);
      blocking.push(c);
      return c;
    },
    all: () => [producer, ...blocking],
    outages: dependencies.redis,
  };
  const app = await NestFactory.create<NestExpressApplication>(AppModule.register({ config, logger, database, redis, dependencies, key, encryptionKey: encryption }), { logger: ['error', 'warn'] });
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
  serveConsole(app);
  await app.listen(config.port, config.host);
  const address = app.getHttpServer().address() as AddressInfo;
  const url = `http://${config.host}:${address.port}`;
  logger.info({ url }, 'coordinator listening');
  const aggregators = forkAggregators(config, logger);
  let closing: Promise<void> | undefined;
  const open = new Set<string>();
  const step = async (name: string, work: () => Promise<unknown>): Promise<void> => {
    open.add(name);
    try {
      await work();
    } finally {
      open.delete(name);
    }
  };
  const stillOpen = (): string[] => [
    ...open,
    ...dependencies.redis.states().flatMap(({ name, state }) => (state === 'end' ? [] : [`Redis connection ${name} (${state})`])),
  ];
  const close = async (): Promise<void> => {
    // A clean stop drains BullMQ's workers and queues, which needs Redis. When Redis (or the database) is down
    // that would wait for its return: after the grace period, connections are dropped and the stop goes on. The
    // aggregation workers are other processes and stop alongside.
    const drained = Promise.all([step('aggregation workers', () => aggregators.stop()), step('queues and HTTP server', () => app.close())]);
    if (await settledWithin(drained, DRAIN_GRACE_MS)) {
      dependencies.stop();
      await Promise.allSettled([producer.quit(), ...blocking.map((c) => c.quit())]);
    } else {
      logger.warn({ graceMs: DRAIN_GRACE_MS, stillOpen: stillOpen() }, `stopping without draining: Redis or the database did not answer in time; dropping ${stillOpen().join(', ')}`);
      dependencies.stop();
      for (const c of [producer, ...blocking]) c.disconnect();
      await settledWithin(drained, 1_500);
    }
    await step('database', () => settledWithin(database.close(), 1_000));
  };
  return {
    url,
    app,
    coordinatorKey: key.publicKey,
    close: () => (closing ??= close()),
    stillOpen,
  };
}

/**
 * Waits for Redis (up to 30 s) and makes sure no client can use it without credentials (libs/queue
 * secureDefaultUser), then keeps it so: Redis keeps ACLs in memory, so a restarted Redis may come back with its
 * `default` user open, and every reconnection checks again.
 * @throws RedisSecurityError when the default user is open and the coordinator itself runs as it; Error when Redis
 *   does not answer in time
 */
async function lockDownRedis(producer: RedisClient, url: string, logger: Logger): Promise<void> {
  const check = async (): Promise<void> => {
    const { switchedOff } = await secureDefaultUser(producer);
    if (switchedOff) logger.warn("Redis's default user had no password: switched it off (ACL SETUSER default off), so every client must log in as its own user");
  };
  if (producer.status !== 'ready') {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`Redis at ${withoutCredentials(url)} did not answer within 30 s. Check: is redis-server running there? is REDIS_URL right?`)), 30_000);
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
