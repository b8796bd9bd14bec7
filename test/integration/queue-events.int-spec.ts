import { Queue, QueueEvents, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import {
  AGGREGATION_QUEUE,
  aggregationJobId,
  createRedis,
  eventsKey,
  newParticipantId,
  newQueryId,
  participantQueue,
  scrubCompletedEvents,
  TASK,
  taskJobId,
} from '@confide/queue';
import { closeConnection, deleteKeysWithPrefix, TEST_REDIS_URL, uniqueTestPrefix } from '../support/redis';

// A decided query's answers leave Redis with their jobs: its `completed` entries are scrubbed from each queue's
// events stream, found under the key BullMQ itself names (never one built by hand).
jest.setTimeout(30_000);

const prefix = uniqueTestPrefix();
const connections: Redis[] = [];
const closers: (() => Promise<unknown>)[] = [];
let admin: Redis;

function connect(): Redis {
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

  it("lose a decided query's completed entries, in every round, and keep every other query's and every other event", async () => {
    const member = newParticipantId();
    const { queue, finish } = await answeringQueue(participantQueue(member));
    for (const id of [taskJobId(decided, 1, member), taskJobId(decided, 2, member), taskJobId(running, 1, member)]) await finish(id);
    const key = eventsKey(queue);
    const before = await streamOf(key);

    expect(await scrubCompletedEvents(admin, queue, decided)).toBe(2);

    const after = await streamOf(key);
    expect(after.filter(([, jobId]) => jobId?.startsWith(decided))).toEqual(before.filter(([event, jobId]) => jobId?.startsWith(decided) && event !== 'completed'));
    expect(after).toContainEqual(['completed', taskJobId(running, 1, member)]);
    expect(after.length).toBe(before.length - 2);
    expect(JSON.stringify(await admin.xrange(key, '-', '+'))).not.toContain(`secret of ${decided}`);
    // Nothing left to scrub: a second cleanup (the timer's retry) deletes nothing.
    expect(await scrubCompletedEvents(admin, queue, decided)).toBe(0);
  });

  it("lose a decided query's aggregation result from the aggregation queue's stream", async () => {
    const { queue, finish } = await answeringQueue(AGGREGATION_QUEUE);
    await finish(aggregationJobId(decided));
    await finish(aggregationJobId(running));
    expect(await scrubCompletedEvents(admin, queue, decided)).toBe(1);
    const after = await streamOf(eventsKey(queue));
    expect(after).not.toContainEqual(['completed', aggregationJobId(decided)]);
    expect(after).toContainEqual(['completed', aggregationJobId(running)]);
  });

  it('keep the entries of jobs whose ids Confide did not make', async () => {
    const { queue, finish } = await answeringQueue(participantQueue('hospital-1'));
    await finish(`${decided}-replayed`);
    expect(await scrubCompletedEvents(admin, queue, decided)).toBe(0);
    expect(await streamOf(eventsKey(queue))).toContainEqual(['completed', `${decided}-replayed`]);
  });
});
