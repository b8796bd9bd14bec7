import { Queue, QueueEvents, UnrecoverableError, Worker } from 'bullmq';
import IORedis from 'ioredis';
import {
  AGGREGATION_QUEUE,
  aggregationJobId,
  createRedis,
  eventsKey,
  newParticipantId,
  newQueryId,
  participantQueue,
  readOutcome,
  CompletedEntries,
  completedEntries,
  TASK,
  taskJobId,
  type RedisClient,
} from '@confide/queue';
import { closeConnection, deleteKeysWithPrefix, TEST_REDIS_URL, uniqueTestPrefix } from '../support/redis';

// A decided query's answers leave Redis with their jobs: its `completed` entries are scrubbed from each queue's
// events stream, found under the key BullMQ itself names (never one built by hand).
jest.setTimeout(30_000);

const prefix = uniqueTestPrefix();
const connections: RedisClient[] = [];
const closers: (() => Promise<unknown>)[] = [];
let admin: RedisClient;

function connect(): RedisClient {
  const conn = createRedis(TEST_REDIS_URL, { role: 'worker' });
  connections.push(conn);
  return conn;
}

/** A queue whose worker answers every job with its id, and a way to wait for a job to finish. */
async function answeringQueue(name: string): Promise<{ queue: Queue; finish: (jobId: string) => Promise<void> }> {
  const queue = new Queue(name, { connection: admin, prefix });
  const events = new QueueEvents(name, { connection: connect(), prefix });
  const worker = new Worker(name, (job) => Promise.resolve({ answer: `secret of ${job.id}` }), { connection: connect(), prefix });
  closers.push(() => worker.close(), () => events.close(), () => queue.close());
  await Promise.all([events.waitUntilReady(), worker.waitUntilReady()]);
  return {
    queue,
    finish: async (jobId) => {
      const job = await queue.add(TASK.shamirRound1, { n: 1 }, { jobId });
      await job.waitUntilFinished(events, 10_000);
    },
  };
}

/** The stream's entries as [event, jobId] pairs. */
async function streamOf(key: string): Promise<[string | undefined, string | undefined][]> {
  return (await admin.xrange(key, '-', '+')).map(([, fields]) => {
    const field = (name: string): string | undefined => fields[fields.indexOf(name) + 1];
    return [field('event'), field('jobId')];
  });
}

beforeAll(() => {
  admin = connect();
});

afterAll(async () => {
  for (const close of closers.reverse()) await close();
  await deleteKeysWithPrefix(admin, prefix);
  await Promise.all(connections.map(closeConnection));
});

describe('BullMQ events streams', () => {
  const decided = newQueryId();
  const running = newQueryId();
  const participant = newParticipantId();

  it('are found under the key BullMQ names, which holds each completed job and its return value', async () => {
    const { queue, finish } = await answeringQueue(participantQueue(participant));
    await finish(taskJobId(decided, 1, participant));
    const key = eventsKey(queue);
    expect(key).toBe(queue.keys.events);
    expect(key.startsWith(`${prefix}:`)).toBe(true);
    expect(await streamOf(key)).toContainEqual(['completed', taskJobId(decided, 1, participant)]);
    expect(JSON.stringify(await admin.xrange(key, '-', '+'))).toContain(`secret of ${taskJobId(decided, 1, participant)}`);
  });

  it("are read whole into each query's completed entries, leaving out other events and jobs Confide did not make", async () => {
    const member = newParticipantId();
    const { queue, finish } = await answeringQueue(participantQueue(member));
    for (const id of [taskJobId(decided, 1, member), taskJobId(decided, 2, member), taskJobId(running, 1, member), `${decided}-replayed`]) await finish(id);
    const key = eventsKey(queue);
    const entries = await admin.xrange(key, '-', '+');
    const idOf = (jobId: string): string | undefined => entries.find(([, f]) => f.includes('completed') && f.includes(jobId))?.[0];

    const byQuery = await completedEntries(admin, queue);

    expect([...byQuery.keys()].sort()).toEqual([decided, running].sort());
    expect(byQuery.get(decided)).toEqual([idOf(taskJobId(decided, 1, member)), idOf(taskJobId(decided, 2, member))]);
    expect(byQuery.get(running)).toEqual([idOf(taskJobId(running, 1, member))]);
  });

  it("lose a decided query's completed entries by the ids its listener read, in every round and after the scrub too, and keep every other", async () => {
    const member = newParticipantId();
    const { queue, finish } = await answeringQueue(participantQueue(member));
    const key = eventsKey(queue);
    const listener = new QueueEvents(participantQueue(member), { connection: connect(), prefix });
    closers.push(() => listener.close());
    const entries = new CompletedEntries(admin);
    const seen: Promise<number>[] = [];
    listener.on('completed', ({ jobId }, id) => seen.push(entries.saw(key, jobId, id)));
    await listener.waitUntilReady();
    for (const id of [taskJobId(decided, 1, member), taskJobId(running, 1, member)]) await finish(id);
    await until(() => seen.length === 2);
    const before = await streamOf(key);

    expect(await entries.scrub(decided)).toBe(1);
    // Round 2 finishes after the scrub: its entry goes as the listener reads it.
    await finish(taskJobId(decided, 2, member));
    await until(() => seen.length === 3);
    expect(await seen[2]).toBe(1);

    const after = await streamOf(key);
    expect(after).not.toContainEqual(['completed', taskJobId(decided, 1, member)]);
    expect(after).not.toContainEqual(['completed', taskJobId(decided, 2, member)]);
    expect(after).toContainEqual(['completed', taskJobId(running, 1, member)]);
    expect(after.filter(([event]) => event !== 'completed').length).toBeGreaterThan(before.filter(([event]) => event !== 'completed').length);
    expect(JSON.stringify(await admin.xrange(key, '-', '+'))).not.toContain(`secret of ${decided}`);
    expect(entries.size).toBe(1);
    // Nothing left to scrub: a second cleanup (the timer's retry) deletes nothing.
    expect(await entries.scrub(decided)).toBe(0);
  });

  it("lose a decided query's aggregation result from the aggregation queue's stream", async () => {
    const { queue, finish } = await answeringQueue(AGGREGATION_QUEUE);
    await finish(aggregationJobId(decided));
    await finish(aggregationJobId(running));
    const byQuery = await completedEntries(admin, queue);
    expect(byQuery.get(decided)).toHaveLength(1);
    await admin.xdel(eventsKey(queue), ...byQuery.get(decided)!);
    const after = await streamOf(eventsKey(queue));
    expect(after).not.toContainEqual(['completed', aggregationJobId(decided)]);
    expect(after).toContainEqual(['completed', aggregationJobId(running)]);
  });

  it('keep what Redis did not delete for the next scrub', async () => {
    const member = newParticipantId();
    const { queue, finish } = await answeringQueue(participantQueue(member));
    const key = eventsKey(queue);
    await finish(taskJobId(decided, 1, member));
    const [entryId] = (await completedEntries(admin, queue)).get(decided)!;
    // A connection not yet connected, that queues nothing: a command fails as during an outage (and starts it connecting).
    const conn = new IORedis(TEST_REDIS_URL, { lazyConnect: true, enableOfflineQueue: false });
    connections.push(conn);
    const entries = new CompletedEntries(conn);
    await entries.saw(key, taskJobId(decided, 1, member), entryId!);

    await expect(entries.scrub(decided)).rejects.toThrow(/enableOfflineQueue/);
    expect(entries.size).toBe(1);
    expect(await streamOf(key)).toContainEqual(['completed', taskJobId(decided, 1, member)]);

    if (conn.status !== 'ready') await new Promise((ready) => conn.once('ready', ready));
    expect(await entries.scrub(decided)).toBe(1);
    expect(entries.size).toBe(0);
    expect(await streamOf(key)).not.toContainEqual(['completed', taskJobId(decided, 1, member)]);
  });
});

describe('readOutcome', () => {
  it("reads a job's answer or refusal once it ended for good, nothing before, and nothing for a job not there", async () => {
    const name = participantQueue(newParticipantId());
    const queue = new Queue(name, { connection: admin, prefix });
    const events = new QueueEvents(name, { connection: connect(), prefix });
    closers.push(() => events.close(), () => queue.close());
    await events.waitUntilReady();
    const q = newQueryId();
    const [answered, refused, waiting] = ['a', 'b', 'c'].map((p) => taskJobId(q, 1, `p${p.repeat(24)}`));
    for (const jobId of [answered!, refused!, waiting!]) await queue.add(TASK.shamirRound1, { big: 'x'.repeat(1000) }, { jobId, attempts: 3 });
    expect(await readOutcome(admin, queue, waiting!)).toBeUndefined();
    const worker = new Worker(
      name,
      (job) => {
        if (job.id === refused) throw new UnrecoverableError('task past its deadline');
        if (job.id === answered) return Promise.resolve({ sum: '42' });
        return new Promise(() => undefined);
      },
      { connection: connect(), prefix, concurrency: 3 },
    );
    closers.unshift(() => worker.close(true));
    const end = Date.now() + 10_000;
    while ((await readOutcome(admin, queue, answered!)) === undefined || (await readOutcome(admin, queue, refused!)) === undefined) {
      if (Date.now() > end) throw new Error('jobs did not finish');
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(await readOutcome(admin, queue, answered!)).toEqual({ answer: { sum: '42' } });
    // Refused with attempts left: ended for good all the same.
    expect(await readOutcome(admin, queue, refused!)).toEqual({ failedReason: 'task past its deadline' });
    expect(await readOutcome(admin, queue, waiting!)).toBeUndefined();
    expect(await readOutcome(admin, queue, taskJobId(q, 2, 'p'.repeat(25)))).toBeUndefined();
  });
});

async function until(done: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!done()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}
