import { once } from 'node:events';
import { Queue, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import {
  createRedis,
  generateRedisPassword,
  isOpenDefaultUser,
  participantQueue,
  provisionParticipantUser,
  redisNodes,
  removeRunKeys,
  revokeParticipantUser,
  secureDefaultUser,
  taskJobId,
  type RedisClient,
} from '@confide/queue';
import { startLocalRedisCluster, type LocalRedisCluster } from '../support/redis-cluster';
import { closeConnection, uniqueTestPrefix } from '../support/redis';

// libs/queue on a local 3-primary Redis Cluster (README "Redis Cluster"): what must happen on every node does, and
// what must stay within one slot does. test/e2e/redis-cluster.e2e-spec.ts runs whole queries on one.

let redis: LocalRedisCluster;
let admin: RedisClient;
const prefix = uniqueTestPrefix();
const connections: (RedisClient | Redis)[] = [];
const closers: (() => Promise<unknown>)[] = [];

async function ready(conn: RedisClient): Promise<RedisClient> {
  conn.on('error', () => undefined);
  connections.push(conn);
  if (conn.status !== 'ready') await once(conn, 'ready');
  return conn;
}

/** Each node's answer to one command, by port, as the administrator on that node alone. */
async function onEveryNode<T>(command: (node: Redis) => Promise<T>): Promise<Map<number, T>> {
  const out = new Map<number, T>();
  for (const port of redis.ports) {
    const node = redis.adminNode(port);
    connections.push(node);
    await node.connect();
    out.set(port, await command(node));
  }
  return out;
}

beforeAll(async () => {
  redis = await startLocalRedisCluster();
  admin = await ready(createRedis(redis.adminUrl, { role: 'producer' }));
}, 60_000);

afterAll(async () => {
  for (const close of closers.reverse()) await close().catch(() => undefined);
  await Promise.allSettled(connections.map((c) => closeConnection(c)));
  // Every node stopped, its temp dir removed.
  await redis?.stop();
}, 30_000);

describe('a Redis Cluster', () => {
  it('lists every node of the slot map, each answering on its own', async () => {
    const nodes = await redisNodes(admin);
    expect(nodes.map((n) => n.options.port).sort()).toEqual([...redis.ports].sort());
    for (const node of nodes) expect(await node.ping()).toBe('PONG');
  });

  it("switches an open default user off on every node, not only the one the coordinator's connection lands on", async () => {
    const open = redis.ports[1]!;
    const node = redis.adminNode(open);
    connections.push(node);
    await node.connect();
    await node.call('ACL', 'SETUSER', 'default', 'on', 'nopass', '~*', '&*', '+@all');
    expect(isOpenDefaultUser(await node.call('ACL', 'GETUSER', 'default'))).toBe(true);
    await expect(secureDefaultUser(admin)).resolves.toEqual({ switchedOff: true });
    const states = await onEveryNode(async (n) => isOpenDefaultUser(await n.call('ACL', 'GETUSER', 'default')));
    expect([...states.values()]).toEqual(redis.ports.map(() => false));
    await expect(secureDefaultUser(admin)).resolves.toEqual({ switchedOff: false });
  });

  it('creates a participant user on every node; the worker runs as it through the cluster; revoking deletes it everywhere', async () => {
    const username = `confide-${prefix}-a`;
    const password = generateRedisPassword();
    const queue = participantQueue('hospital-a');
    await provisionParticipantUser(admin, { username, password, prefix, queue, studyId: 'study-1' });
    const found = await onEveryNode(async (n) => Array.isArray(await n.call('ACL', 'GETUSER', username)));
    expect([...found.values()]).toEqual(redis.ports.map(() => true));

    // The participant's side: a restricted cluster connection (no INFO, CLIENT, or CLUSTER INFO) running a BullMQ Worker.
    const conn = await ready(createRedis(redis.publicUrl, { role: 'worker', username, password }));
    const worker = new Worker<{ n: number }>(queue, (job) => Promise.resolve({ doubled: job.data.n * 2 }), { connection: conn, prefix, concurrency: 1 });
    worker.on('error', () => undefined);
    closers.push(() => worker.close());
    const tasks = new Queue(queue, { connection: admin, prefix });
    closers.push(() => tasks.close());
    const job = await tasks.add('shamir.round1', { n: 21 }, { jobId: taskJobId('q-1', 1, 'hospital-a') });
    const deadline = Date.now() + 10_000;
    while ((await job.getState()) !== 'completed') {
      if (Date.now() > deadline) throw new Error(`the job is ${await job.getState()} after 10 s`);
      await new Promise((r) => setTimeout(r, 50));
    }
    expect((await tasks.getJob(job.id!))?.returnvalue).toEqual({ doubled: 42 });
    // The participant's user reaches nothing else, on any node.
    await expect(conn.lrange(`${prefix}:${participantQueue('hospital-b')}:wait`, 0, -1)).rejects.toThrow(/^NOPERM/);
    await worker.close();

    await expect(revokeParticipantUser(admin, username)).resolves.toBe(true);
    const gone = await onEveryNode(async (n) => n.call('ACL', 'GETUSER', username));
    expect([...gone.values()]).toEqual(redis.ports.map(() => null));
    await expect(revokeParticipantUser(admin, username)).resolves.toBe(false);
  }, 30_000);

  it("removes a run's keys from every primary, one hash tag at a time (no CROSSSLOT), and nothing outside the prefix", async () => {
    const run = uniqueTestPrefix();
    const other = uniqueTestPrefix();
    const ids = Array.from({ length: 30 }, (_, i) => `site-${i}`);
    for (const id of ids) {
      await admin.set(`${run}:${participantQueue(id)}:meta`, '1');
      await admin.rpush(`${run}:${participantQueue(id)}:wait`, 'job');
    }
    await admin.set(`${other}:${participantQueue('site-0')}:meta`, 'kept');
    // The keys are spread over every primary: a SCAN of one node alone would miss some.
    const perNode = await onEveryNode(async (n) => (await n.scan('0', 'MATCH', `${run}:*`, 'COUNT', 1000))[1].length);
    expect([...perNode.values()].every((count) => count > 0)).toBe(true);
    await expect(removeRunKeys(admin, run)).resolves.toBe(ids.length * 2);
    expect(await admin.get(`${other}:${participantQueue('site-0')}:meta`)).toBe('kept');
    await expect(removeRunKeys(admin, other)).resolves.toBe(1);
  });
});
