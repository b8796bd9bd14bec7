import { CompletionReader, COMPLETIONS_MAX_LEN, completionsKey, createRedis, groupFinished, newParticipantId, newQueryId, noteFinished, taskJobId, type RedisClient } from '@confide/queue';
import { closeConnection, deleteKeysWithPrefix, RedisOutageProxy, TEST_REDIS_URL, uniqueTestPrefix } from '../support/redis';

// How the coordinator hears that tasks finished (libs/queue completions.ts): workers append job ids to one stream,
// which the coordinator reads with one blocking XREAD, a batch at a time, whatever the number of participants.
jest.setTimeout(30_000);

const prefix = uniqueTestPrefix();
const key = completionsKey(prefix);
const connections: RedisClient[] = [];
let admin: RedisClient;

function connect(url = TEST_REDIS_URL): RedisClient {
  const conn = createRedis(url, { role: 'worker' });
  conn.on('error', () => undefined);
  connections.push(conn);
  return conn;
}

/** Waits until `ready()` holds, checking every 20 ms. @throws naming `what` after `ms` */
async function until(what: string, ms: number, ready: () => boolean): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ready()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A reader that collects every batch it is handed, and the errors it reports. */
function collecting(redis: RedisClient, opts: { blockMs?: number; retryMs?: number } = {}) {
  const batches: string[][] = [];
  const errors: unknown[] = [];
  const reader = new CompletionReader(
    redis,
    key,
    (ids) => {
      batches.push(ids);
      return Promise.resolve();
    },
    (err) => errors.push(err),
    opts,
  );
  return { reader, batches, errors, ids: () => batches.flat() };
}

beforeAll(() => {
  admin = connect();
});

afterEach(async () => {
  await admin.del(key);
});

afterAll(async () => {
  await deleteKeysWithPrefix(admin, prefix);
  await Promise.all(connections.map(closeConnection));
});

describe('completion notices', () => {
  it('hands a reader every notice appended after its start, in order, and none from before it', async () => {
    const q = newQueryId();
    const [a, b, c] = [newParticipantId(), newParticipantId(), newParticipantId()];
    await noteFinished(admin, key, taskJobId(q, 1, a));
    const [seconds, micros] = await admin.time();
    const { reader, ids } = collecting(connect(), { blockMs: 100 });
    reader.start(`${Number(seconds) * 1000 + Math.floor(Number(micros) / 1000)}-0`);
    for (const p of [b, c]) await noteFinished(admin, key, taskJobId(q, 1, p));
    await until('both notices read', 5000, () => ids().length >= 2);
    expect(ids()).toEqual([taskJobId(q, 1, b), taskJobId(q, 1, c)]);
    await reader.stop();
  });

  it('reads a thousand notices appended at once in one or two batches, not one read each', async () => {
    const q = newQueryId();
    const jobIds = Array.from({ length: 1000 }, () => taskJobId(q, 1, newParticipantId()));
    const { reader, batches, ids } = collecting(connect(), { blockMs: 100 });
    reader.start('now');
    // Let the reader block first, so that every notice lands while it waits.
    await new Promise((r) => setTimeout(r, 200));
    const pipeline = admin.pipeline();
    for (const id of jobIds) pipeline.xadd(key, '*', 'job', id);
    await pipeline.exec();
    await until('every notice read', 5000, () => ids().length === 1000);
    expect(ids()).toEqual(jobIds);
    expect(batches.length).toBeLessThanOrEqual(3);
    await reader.stop();
  });

  it('keeps its place through a Redis outage and reads what was appended meanwhile once Redis answers again', async () => {
    const proxy = new RedisOutageProxy();
    await proxy.up();
    try {
      const q = newQueryId();
      const { reader, ids } = collecting(connect(proxy.url), { blockMs: 100, retryMs: 50 });
      reader.start('now');
      await new Promise((r) => setTimeout(r, 200));
      await noteFinished(admin, key, taskJobId(q, 1, newParticipantId()));
      await until('the first notice read', 5000, () => ids().length === 1);
      await proxy.down();
      const during = [taskJobId(q, 1, newParticipantId()), taskJobId(q, 2, newParticipantId())];
      for (const id of during) await noteFinished(admin, key, id);
      // A worker connection (the coordinator's blocking ones) holds the read while it reconnects: no error, no loss.
      await new Promise((r) => setTimeout(r, 500));
      expect(ids()).toHaveLength(1);
      await proxy.up();
      await until('the notices of the outage read', 10_000, () => ids().length === 3);
      expect(ids().slice(1)).toEqual(during);
      await reader.stop();
    } finally {
      await proxy.down();
    }
  });

  it('stops at once, although its read is blocked', async () => {
    const { reader } = collecting(connect(), { blockMs: 10_000 });
    reader.start('now');
    await new Promise((r) => setTimeout(r, 100));
    const t = Date.now();
    await reader.stop();
    expect(Date.now() - t).toBeLessThan(1000);
  });

  it('bounds the stream: appends trim it to about COMPLETIONS_MAX_LEN notices', async () => {
    const id = taskJobId(newQueryId(), 1, newParticipantId());
    const pipeline = admin.pipeline();
    for (let i = 0; i < COMPLETIONS_MAX_LEN + 500; i++) pipeline.xadd(key, '*', 'job', id);
    await pipeline.exec();
    await noteFinished(admin, key, id);
    const length = await admin.xlen(key);
    // Approximate trimming (MAXLEN ~) removes whole stream nodes of 100 entries.
    expect(length).toBeLessThanOrEqual(COMPLETIONS_MAX_LEN + 200);
    expect(length).toBeGreaterThanOrEqual(COMPLETIONS_MAX_LEN);
  });
});

describe('groupFinished', () => {
  it('groups job ids by query and round, once each, and leaves out ids Confide did not make', () => {
    const [q1, q2] = [newQueryId(), newQueryId()];
    const [a, b] = [newParticipantId(), newParticipantId()];
    const grouped = groupFinished([taskJobId(q1, 1, a), taskJobId(q1, 1, b), taskJobId(q1, 1, a), taskJobId(q1, 2, a), taskJobId(q2, 1, b), 'garbage', `${q1}-aggregate`, `${q1}-r3-${a}`]);
    expect([...grouped.keys()]).toEqual([q1, q2]);
    expect([...grouped.get(q1)!.entries()].map(([round, ids]) => [round, [...ids]])).toEqual([
      [1, [a, b]],
      [2, [a]],
    ]);
    expect([...grouped.get(q2)!.get(1)!]).toEqual([b]);
  });
});
