import { once } from 'node:events';
import { Queue, QueueEvents, Worker } from 'bullmq';
import { assertRedisReady, createRedis, isRedisOutage, participantQueue, pingRedis, redisReady, RedisUnavailableError, taskJobId, withRedis, type RedisClient } from '@confide/queue';
import { closeConnection, deleteKeysWithPrefix, RedisOutageProxy, TEST_REDIS_URL, uniqueTestPrefix } from '../support/redis';

// STYLE.md "Queues": worker connections wait out a Redis outage, the HTTP side fails fast (503). The outage is a
// relay to the real Redis that the test takes down and brings back; the shared Redis itself keeps running.
jest.setTimeout(30_000);

const prefix = uniqueTestPrefix();
const queue = participantQueue('hospital-1');
const proxy = new RedisOutageProxy();
const connections: RedisClient[] = [];
const closers: (() => Promise<unknown>)[] = [];
let admin: RedisClient;

function connect(url: string, role: 'worker' | 'producer'): RedisClient {
  const conn = createRedis(url, { role });
  conn.on('error', () => undefined);
  connections.push(conn);
  return conn;
}

async function ready(conn: RedisClient): Promise<void> {
  if (conn.status !== 'ready') await once(conn, 'ready');
}

beforeAll(async () => {
  admin = connect(TEST_REDIS_URL, 'worker');
  await proxy.up();
});

afterAll(async () => {
  await proxy.up().catch(() => undefined);
  for (const close of closers) await close();
  await deleteKeysWithPrefix(admin, prefix);
  await Promise.all(connections.map(closeConnection));
  await proxy.down();
});

describe('Redis connections', () => {
  it('answer PING through pingRedis when Redis is up', async () => {
    const producer = connect(proxy.url, 'producer');
    await ready(producer);
    await expect(pingRedis(producer, 1000)).resolves.toBe(true);
    expect(() => assertRedisReady(producer)).not.toThrow();
  });

  it('let the producer side fail fast while Redis is down, so HTTP can answer 503, and recover after', async () => {
    const producer = connect(proxy.url, 'producer');
    await ready(producer);
    const tasks = new Queue(queue, { connection: producer, prefix });
    tasks.on('error', () => undefined);
    closers.push(() => tasks.close());
    await tasks.add('shamir.round1', { n: 1 }, { jobId: taskJobId('q-1', 1, 'hospital-1') });

    await proxy.down();
    await once(producer, 'close');
    expect(() => assertRedisReady(producer)).toThrow(RedisUnavailableError);
    await expect(pingRedis(producer, 1000)).resolves.toBe(false);
    const refused = await tasks.add('shamir.round1', { n: 2 }, { jobId: taskJobId('q-2', 1, 'hospital-1') }).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(refused).toMatchObject({ message: expect.stringMatching(/enableOfflineQueue/) as string });
    // What the HTTP layer turns into 503 with Retry-After, not 500: the outage, whatever form ioredis gives it.
    expect(isRedisOutage(refused)).toBe(true);
    expect(isRedisOutage(await producer.ping().catch((err: unknown) => err))).toBe(true);
    expect(isRedisOutage(new Error('ERR unknown command'))).toBe(false);

    await proxy.up();
    await ready(producer);
    await expect(pingRedis(producer, 1000)).resolves.toBe(true);
    await tasks.add('shamir.round1', { n: 3 }, { jobId: taskJobId('q-3', 1, 'hospital-1') });
    expect(await tasks.getJobCounts('waiting')).toEqual({ waiting: 2 });
  });

  it('let a worker wait out an outage and take the job added meanwhile', async () => {
    const workerConn = connect(proxy.url, 'worker');
    const seen: number[] = [];
    const worker = new Worker<{ n: number }>(
      `${queue}-outage`,
      (job) => {
        seen.push(job.data.n);
        return Promise.resolve({ doubled: job.data.n * 2 });
      },
      { connection: workerConn, prefix },
    );
    worker.on('error', () => undefined);
    closers.unshift(() => worker.close());
    const producer = new Queue(`${queue}-outage`, { connection: admin, prefix });
    producer.on('error', () => undefined);
    const events = new QueueEvents(`${queue}-outage`, { connection: admin, prefix });
    closers.push(() => producer.close(), () => events.close());
    await Promise.all([worker.waitUntilReady(), events.waitUntilReady()]);

    await proxy.down();
    // A worker-role connection keeps PING in its offline queue: pingRedis gives up at its timeout.
    await expect(pingRedis(workerConn, 200)).resolves.toBe(false);
    const job = await producer.add('shamir.round1', { n: 21 }, { jobId: taskJobId('q-4', 1, 'hospital-1') });
    await proxy.up();
    await expect(job.waitUntilFinished(events, 20_000)).resolves.toEqual({ doubled: 42 });
    expect(seen).toEqual([21]);
  });

  it('let a request wait briefly for a connection that is coming back (redisReady, withRedis), and 503 when it is not', async () => {
    // A relay of its own: the connections of the tests above stay out of this outage.
    const relay = new RedisOutageProxy();
    await relay.up();
    closers.push(() => relay.down());
    const producer = connect(relay.url, 'producer');
    await ready(producer);
    await relay.down();
    await once(producer, 'close');
    // Down for longer than the wait: RedisUnavailableError, which the HTTP layer answers with 503.
    const started = Date.now();
    await expect(redisReady(producer, 300)).rejects.toThrow(RedisUnavailableError);
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
    const refused = await withRedis(producer, () => producer.set(`${prefix}:probe`, '1'), 300).catch((err: unknown) => err);
    expect(isRedisOutage(refused)).toBe(true);
    // Back within the wait: the same command goes through instead of failing the request.
    const command = withRedis(producer, () => producer.set(`${prefix}:probe`, '2'), 8000);
    await relay.up();
    await expect(command).resolves.toBe('OK');
    expect(await admin.get(`${prefix}:probe`)).toBe('2');
  });
});
