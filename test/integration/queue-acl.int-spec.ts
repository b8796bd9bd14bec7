import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Job, Queue, QueueEvents, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import {
  completionsKey,
  CONTROL_QUEUE,
  createRedis,
  noteFinished,
  generateRedisPassword,
  hashRedisPassword,
  participantAclRules,
  participantQueue,
  PARTICIPANT_COMMANDS,
  provisionParticipantUser,
  taskPartKey,
  redisConnectionOptions,
  revokeParticipantUser,
  TaskRejected,
  taskJobId,
  type RedisClient,
} from '@confide/queue';
import { closeConnection, deleteKeysWithPrefix, errorOf, TEST_REDIS_URL, uniqueTestPrefix } from '../support/redis';

// DESIGN.md "Storage and services": each participant's Redis user reaches its own queue and nothing else.
// Everything here runs against the real Redis, under a prefix and user names no other run shares.
jest.setTimeout(30_000);

const url = TEST_REDIS_URL;
const prefix = uniqueTestPrefix();
// B's id extends A's, so a pattern that forgot the ':' after the queue name would give B's keys to A.
const A = 'hospital-1';
const B = 'hospital-10';
const queueA = participantQueue(A);
const queueB = participantQueue(B);
const user = (name: string) => `${prefix}-${name}`;
const passwords = { A: generateRedisPassword(), B: generateRedisPassword() };
const NOPERM = /^NOPERM/;

const createdUsers = new Set<string>();
const connections: RedisClient[] = [];
const closers: (() => Promise<unknown>)[] = [];

let admin: RedisClient;
let asA: RedisClient;
let adminQueueA: Queue;
let adminQueueB: Queue;
let events: QueueEvents;
let worker: Worker;
const workerErrors: Error[] = [];

/** A connection as `username` (restricted: no INFO or CLIENT), closed in afterAll. */
function connectAs(username: string, password: string, role: 'worker' | 'producer' = 'worker'): RedisClient {
  const conn = createRedis(url, { role, username, password });
  conn.on('error', () => undefined);
  connections.push(conn);
  return conn;
}

async function provision(name: string, password: string, queue: string, studyId = `study-${name}`): Promise<string> {
  const username = user(name);
  createdUsers.add(username);
  await provisionParticipantUser(admin, { username, password, prefix, queue, studyId });
  return username;
}

/** The error a fresh connection as `username` gets when it authenticates ('' if it got in). */
async function authenticationError(username: string, password: string): Promise<string> {
  const conn = new Redis({ ...redisConnectionOptions(url, { role: 'producer', username, password }), lazyConnect: true, retryStrategy: () => null });
  const errors: string[] = [];
  conn.on('error', (err: Error) => errors.push(err.message));
  await conn.connect().catch(() => undefined);
  await closeConnection(conn);
  return errors.join('; ');
}

/** ACL LOG entries (RESP2 flat key/value lists) for one user: which commands, keys or channels it was refused. */
async function aclDenials(username: string): Promise<{ reason: string; object: string }[]> {
  const raw = (await admin.call('ACL', 'LOG', '128')) as unknown[][];
  return raw
    .map((entry) => Object.fromEntries(Array.from({ length: entry.length / 2 }, (_, i) => [String(entry[2 * i]), entry[2 * i + 1]])) as Record<string, unknown>)
    .filter((e) => e.username === username)
    .map((e) => ({ reason: String(e.reason), object: String(e.object) }));
}

beforeAll(async () => {
  admin = createRedis(url, { role: 'worker' });
  admin.on('error', () => undefined);
  connections.push(admin);
  await provision('A', passwords.A, queueA);
  await provision('B', passwords.B, queueB);

  adminQueueA = new Queue(queueA, { connection: admin, prefix });
  adminQueueB = new Queue(queueB, { connection: admin, prefix });
  events = new QueueEvents(queueA, { connection: admin, prefix });
  closers.push(() => adminQueueA.close(), () => adminQueueB.close(), () => events.close());
  await events.waitUntilReady();
  // Something in B's queue for A to try to read.
  await adminQueueB.add('shamir.round1', { secret: 'for B only' }, { jobId: taskJobId('q-1', 1, B) });

  asA = connectAs(user('A'), passwords.A);
  worker = new Worker<{ n: number }>(
    queueA,
    async (job) => {
      if (job.name === 'flaky' && job.attemptsMade === 0) throw new Error('transient failure');
      if (job.name === 'refused') throw new TaskRejected('task signature does not verify with the coordinator key');
      await job.updateProgress(50);
      await job.log('halfway');
      return { doubled: job.data.n * 2 };
    },
    { connection: connectAs(user('A'), passwords.A), prefix },
  );
  worker.on('error', (err) => workerErrors.push(err));
  closers.unshift(() => worker.close());
  await worker.waitUntilReady();
});

afterAll(async () => {
  for (const close of closers) await close();
  await Promise.all(connections.filter((c) => c !== admin).map(closeConnection));
  await deleteKeysWithPrefix(admin, prefix);
  if (createdUsers.size > 0) await admin.call('ACL', 'DELUSER', ...createdUsers);
  await admin.quit();
});

describe('participant Redis users', () => {
  it('grant every command the installed BullMQ Lua scripts call', async () => {
    // A BullMQ upgrade that calls a new command from Lua would fail jobs with NOPERM in production; it fails here.
    const commandsDir = join(dirname(require.resolve('bullmq')), 'commands');
    const sources = [commandsDir, join(commandsDir, 'includes')].flatMap((dir) =>
      readdirSync(dir)
        .filter((f) => f.endsWith('.lua'))
        .map((f) => readFileSync(join(dir, f), 'utf8')),
    );
    const tokens = new Set<string>();
    for (const lua of sources) {
      for (const m of lua.matchAll(/(?:rcall|redis\.p?call)\(\s*["']([A-Za-z]+)["']/g)) tokens.add(m[1]!.toLowerCase());
      // Commands chosen at run time (`local pushCmd = 'RPUSH'`, `scanCommand = "SSCAN"`).
      for (const m of lua.matchAll(/["']([A-Z]{3,})["']/g)) tokens.add(m[1]!.toLowerCase());
    }
    const names = [...tokens];
    const info = (await admin.call('COMMAND', 'INFO', ...names)) as (unknown[] | null)[];
    const called = names.filter((_, i) => info[i] !== null);
    expect(called.length).toBeGreaterThan(40);
    expect(called.filter((c) => !PARTICIPANT_COMMANDS.includes(c)).sort()).toEqual([]);
  });

  it('hold exactly the queue key pattern, no channel and the listed commands', async () => {
    const reply = (await admin.call('ACL', 'GETUSER', user('A'))) as unknown[];
    const field = (name: string) => reply[reply.indexOf(name) + 1];
    expect(field('flags')).toContain('on');
    expect(field('passwords')).toEqual([hashRedisPassword(passwords.A)]);
    // Redis 7 answers "~pattern"; 6.2 a list of patterns.
    expect([field('keys')].flat().join(' ')).toBe(`~${prefix}:${queueA}:*`);
    expect([field('channels')].flat().join(' ')).toBe('');
    // Redis describes the grant in its own shortest form ("+@hash -hsetnx ..."): replay it to get the commands.
    const granted = new Set<string>();
    const [first, ...rules] = String(field('commands')).split(' ');
    expect(first).toBe('-@all');
    for (const rule of rules) {
      const [sign, name] = [rule[0], rule.slice(1)];
      const commands = name.startsWith('@') ? ((await admin.call('ACL', 'CAT', name.slice(1))) as string[]) : [name];
      for (const c of commands) {
        if (sign === '+') granted.add(c);
        else granted.delete(c);
      }
    }
    expect([...granted].sort()).toEqual([...PARTICIPANT_COMMANDS].sort());
    expect(participantAclRules(prefix, queueA, 'study-A').slice(0, 3)).toEqual([`~${prefix}:${queueA}:*`, 'resetchannels', '-@all']);
    // Two selectors: XADD, and only XADD, on the completion stream, write-only; GET, and only GET, on its study's parts.
    const selectors = field('selectors') as unknown[][];
    expect(selectors).toHaveLength(2);
    const selector = selectors[0]!;
    expect(selector[selector.indexOf('commands') + 1]).toBe('-@all +xadd');
    expect(selector[selector.indexOf('keys') + 1]).toBe(`%W~${prefix}:coordinator.completions`);
    const parts = selectors[1]!;
    expect(parts[parts.indexOf('commands') + 1]).toBe('-@all +get');
    expect(parts[parts.indexOf('keys') + 1]).toBe(`%R~${prefix}:{study.study-A}:part:*`);
  });

  it('let A run a BullMQ Worker that answers a job the coordinator added, and the coordinator reads the answer', async () => {
    const jobId = taskJobId('q-1', 1, A);
    const job = await adminQueueA.add('shamir.round1', { n: 21 }, { jobId });
    await expect(job.waitUntilFinished(events, 10_000)).resolves.toEqual({ doubled: 42 });
    const stored = await Job.fromId(adminQueueA, jobId);
    expect(stored?.returnvalue).toEqual({ doubled: 42 });
    expect(stored?.progress).toBe(50);
    expect((await adminQueueA.getJobLogs(jobId)).logs).toEqual(['halfway']);
  });

  it('let the worker retry a job with backoff and fail a refused task at once', async () => {
    const flaky = await adminQueueA.add('flaky', { n: 1 }, { jobId: taskJobId('q-2', 1, A), attempts: 3, backoff: { type: 'fixed', delay: 50 } });
    await expect(flaky.waitUntilFinished(events, 10_000)).resolves.toEqual({ doubled: 2 });
    const refused = await adminQueueA.add('refused', { n: 1 }, { jobId: taskJobId('q-3', 1, A), attempts: 3 });
    await expect(refused.waitUntilFinished(events, 10_000)).rejects.toThrow(/signature does not verify/);
    const stored = await Job.fromId(adminQueueA, refused.id!);
    expect([await stored?.getState(), stored?.attemptsMade]).toEqual(['failed', 1]);
  });

  it('needed nothing beyond the rules while the worker ran (no worker error, nothing refused but CLIENT SETNAME)', async () => {
    expect(workerErrors).toEqual([]);
    // BullMQ names its blocking connection; ioredis ignores the refusal. Nothing else may have been refused.
    expect((await aclDenials(user('A'))).filter((d) => d.object !== 'client|setname')).toEqual([]);
  });

  it('let A append a completion notice and refuse it every read of the completion stream (other participants\' job ids)', async () => {
    const key = completionsKey(prefix);
    const mine = taskJobId('q-1', 1, A);
    expect(await noteFinished(asA, key, mine)).toMatch(/^\d+-\d+$/);
    // B's notice lands too: each may append, as a hint only (the coordinator reads the outcome from B's own queue).
    const asB = connectAs(user('B'), passwords.B);
    await noteFinished(asB, key, taskJobId('q-1', 1, B));
    const entries = await admin.xrange(key, '-', '+');
    expect(entries.map(([, fields]) => fields)).toEqual([
      ['job', mine],
      ['job', taskJobId('q-1', 1, B)],
    ]);
    const reads: [string, () => Promise<unknown>][] = [
      ['XRANGE', () => asA.xrange(key, '-', '+')],
      ['XREVRANGE', () => asA.xrevrange(key, '+', '-')],
      ['XREAD', () => asA.xread('COUNT', 10, 'STREAMS', key, '0')],
      ['XDEL (another participant\'s notice)', () => asA.xdel(key, entries[1]![0])],
      ['XLEN', () => asA.xlen(key)],
      ['XTRIM', () => asA.xtrim(key, 'MAXLEN', 0)],
      ['DEL', () => asA.del(key)],
      ['TYPE', () => asA.type(key)],
    ];
    for (const [what, read] of reads) expect([what, await errorOf(read())]).toEqual([what, expect.stringMatching(NOPERM)]);
    expect(await admin.xlen(key)).toBe(2);
    // And nowhere else: another stream's key is out of reach for appending too.
    expect(await errorOf(asA.xadd(`${prefix}:coordinator.completions2`, '*', 'job', mine))).toMatch(NOPERM);
    await admin.del(key);
  });

  it('let A GET its own study\'s shared task parts, and refuse it every write to them and any other study\'s part', async () => {
    const hash = 'a'.repeat(64);
    const mine = taskPartKey(prefix, 'study-A', hash);
    const theirs = taskPartKey(prefix, 'study-B', hash);
    await admin.set(mine, '{"plan":"public to study A"}');
    await admin.set(theirs, '{"plan":"public to study B"}');
    expect(await asA.get(mine)).toBe('{"plan":"public to study A"}');
    const refused: [string, () => Promise<unknown>][] = [
      ['GET another study\'s part', () => asA.get(theirs)],
      ['SET its own study\'s part', () => asA.set(mine, '{"plan":"forged"}')],
      ['DEL its own study\'s part', () => asA.del(mine)],
      ['PEXPIRE its own study\'s part', () => asA.pexpire(mine, 1)],
      ['RENAME its own study\'s part', () => asA.rename(mine, `${prefix}:${queueA}:stolen`)],
      ['EXISTS another study\'s part', () => asA.exists(theirs)],
    ];
    for (const [what, call] of refused) expect([what, await errorOf(call())]).toEqual([what, expect.stringMatching(NOPERM)]);
    expect(await admin.get(mine)).toBe('{"plan":"public to study A"}');
    await admin.del(mine, theirs);
  });

  it('refuse A every read of B\'s queue keys', async () => {
    const b = (suffix: string) => `${prefix}:${queueB}:${suffix}`;
    const jobKey = b(taskJobId('q-1', 1, B));
    expect(await admin.exists(b('wait'), jobKey, b('events'), b('id'), b('meta'))).toBe(5);
    const reads: [string, () => Promise<unknown>][] = [
      ['LRANGE wait', () => asA.lrange(b('wait'), 0, -1)],
      ['HGETALL job', () => asA.hgetall(jobKey)],
      ['HGET job data', () => asA.hget(jobKey, 'data')],
      ['XRANGE events', () => asA.xrange(b('events'), '-', '+')],
      ['XREAD events', () => asA.xread('COUNT', 10, 'STREAMS', b('events'), '0')],
      ['GET id', () => asA.get(b('id'))],
      ['HGETALL meta', () => asA.hgetall(b('meta'))],
      ['ZRANGE completed', () => asA.zrange(b('completed'), 0, -1)],
      ['EXISTS', () => asA.exists(jobKey)],
      ['TYPE', () => asA.type(jobKey)],
      ['LLEN', () => asA.llen(b('wait'))],
      ['the control queue', () => asA.lrange(`${prefix}:${CONTROL_QUEUE}:wait`, 0, -1)],
      ['a key outside every queue', () => asA.get(`${prefix}:anything`)],
    ];
    for (const [what, read] of reads) expect([what, await errorOf(read())]).toEqual([what, expect.stringMatching(NOPERM)]);
  });

  it('refuse A every write to B\'s queue keys, from a Lua script too, whether the script declares the key or not', async () => {
    const wait = `${prefix}:${queueB}:wait`;
    // Inside a script Redis words the refusal differently: "ERR The user executing the script can't access ...".
    const refused = /^NOPERM|can't access at least one of the keys/;
    const writes: [string, () => Promise<unknown>][] = [
      ['LPUSH', () => asA.lpush(wait, 'forged')],
      ['DEL', () => asA.del(wait)],
      ['RENAME into B', () => asA.rename(`${prefix}:${queueA}:scratch`, wait)],
      ['EVAL, key declared', () => asA.eval("return redis.call('LPUSH', KEYS[1], 'forged')", 1, wait)],
      ['EVAL, key not declared', () => asA.eval("return redis.call('LPUSH', ARGV[1], 'forged')", 0, wait)],
      ['EVAL reading B', () => asA.eval("return redis.call('LRANGE', ARGV[1], 0, -1)", 0, wait)],
    ];
    for (const [what, write] of writes) expect([what, await errorOf(write())]).toEqual([what, expect.stringMatching(refused)]);
    expect(await admin.lrange(wait, 0, -1)).toEqual([taskJobId('q-1', 1, B)]);
  });

  it('refuse A a BullMQ Queue on B\'s queue: getJobs, getJobCounts and add fail with NOPERM', async () => {
    const intruder = new Queue(queueB, { connection: connectAs(user('A'), passwords.A), prefix });
    closers.push(() => intruder.close());
    expect(await errorOf(intruder.getJobs(['waiting', 'completed']))).toMatch(NOPERM);
    expect(await errorOf(intruder.getJobCounts())).toMatch(NOPERM);
    expect(await errorOf(intruder.add('shamir.round1', { forged: true }, { jobId: taskJobId('q-9', 1, B) }))).toMatch(NOPERM);
    expect(await adminQueueB.getJobCounts('waiting')).toEqual({ waiting: 1 });
  });

  it('still let A use a BullMQ Queue on its own queue', async () => {
    const own = new Queue(queueA, { connection: connectAs(user('A'), passwords.A), prefix });
    closers.push(() => own.close());
    expect((await own.getJobCounts('completed')).completed).toBeGreaterThanOrEqual(2);
  });

  it('refuse A the keyless commands that reach the whole keyspace (KEYS, SCAN, RANDOMKEY, DBSIZE, SORT)', async () => {
    const probes: [string, () => Promise<unknown>][] = [
      ['KEYS', () => asA.keys(`${prefix}:*`)],
      ['SCAN', () => asA.scan('0', 'MATCH', `${prefix}:*`)],
      ['RANDOMKEY', () => asA.randomkey()],
      ['DBSIZE', () => asA.dbsize()],
      ['SORT ... GET', () => asA.sort(`${prefix}:${queueA}:completed`, 'BY', 'nosort', 'GET', `${prefix}:${queueB}:*`)],
    ];
    for (const [what, probe] of probes) expect([what, await errorOf(probe())]).toEqual([what, expect.stringMatching(NOPERM)]);
  });

  it('would have let A list B\'s job keys with SCAN under `+@all -@dangerous +info` (why the rules are an allowlist)', async () => {
    const loose = user('loose');
    createdUsers.add(loose);
    await admin.call('ACL', 'SETUSER', loose, 'reset', 'on', `#${hashRedisPassword(passwords.A)}`, `~${prefix}:${queueA}:*`, '+@all', '-@dangerous', '+info');
    const conn = connectAs(loose, passwords.A);
    const [, keys] = await conn.scan('0', 'MATCH', `${prefix}:${queueB}:*`, 'COUNT', 1000);
    expect(keys).toContain(`${prefix}:${queueB}:${taskJobId('q-1', 1, B)}`);
    await conn.quit();
    await revokeParticipantUser(admin, loose);
  });

  it('refuse A the admin and server-wide commands (ACL, CONFIG, FLUSHALL, FLUSHDB, SCRIPT, FUNCTION, CLIENT, INFO, ...)', async () => {
    const commands: string[][] = [
      ['ACL', 'SETUSER', user('A'), 'allkeys'],
      ['ACL', 'LIST'],
      ['ACL', 'WHOAMI'],
      ['CONFIG', 'GET', 'requirepass'],
      ['CONFIG', 'SET', 'maxmemory', '1'],
      ['FLUSHALL'],
      ['FLUSHDB'],
      ['SCRIPT', 'FLUSH'],
      ['FUNCTION', 'FLUSH'],
      ['CLIENT', 'LIST'],
      ['CLIENT', 'KILL', 'USER', user('B')],
      ['CLIENT', 'TRACKING', 'on', 'BCAST'],
      ['CLIENT', 'SETNAME', `${prefix}:${Buffer.from(queueB).toString('base64')}`],
      ['INFO'],
      ['SWAPDB', '0', '1'],
      ['MONITOR'],
      ['SLOWLOG', 'GET'],
      ['DEBUG', 'SLEEP', '0'],
      ['SHUTDOWN', 'NOSAVE'],
      ['PUBLISH', 'chan', 'x'],
      ['SUBSCRIBE', 'chan'],
    ];
    for (const command of commands) {
      // Asked of Redis first without running anything: a destructive command is only sent once it is known to be refused.
      const dryRun = (await admin.call('ACL', 'DRYRUN', user('A'), ...command)) as string;
      expect([command.join(' '), dryRun]).toEqual([command.join(' '), expect.stringMatching(/no permissions/)]);
    }
    // MONITOR and SUBSCRIBE change the connection's mode (SUBSCRIBE is tried below on its own connection);
    // DEBUG is refused before the ACL check when enable-debug-command is off (the default).
    for (const command of commands.filter(([c]) => c !== 'MONITOR' && c !== 'SUBSCRIBE' && c !== 'DEBUG')) {
      const [name, ...args] = command as [string, ...string[]];
      expect([command.join(' '), await errorOf(asA.call(name, ...args))]).toEqual([command.join(' '), expect.stringMatching(NOPERM)]);
    }
    const subscriber = connectAs(user('A'), passwords.A);
    expect(await errorOf(subscriber.subscribe('chan'))).toMatch(NOPERM);
  });

  it('keep A inside its own keys in every database', async () => {
    const conn = connectAs(user('A'), passwords.A);
    await conn.select(1);
    expect(await errorOf(conn.lpush(`${prefix}:${queueB}:wait`, 'forged'))).toMatch(NOPERM);
  });

  it('keep the password and its hash out of the error when Redis refuses to provision', async () => {
    const password = generateRedisPassword();
    let caught: unknown;
    try {
      await provisionParticipantUser(asA, { username: user('never'), password, prefix, queue: queueA, studyId: 'study-A' });
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(Error);
    const err = caught as Error & { command?: unknown };
    expect(err.message).toMatch(/NOPERM/);
    const everything = `${err.message} ${err.stack ?? ''} ${JSON.stringify(err)} ${String(err.cause)}`;
    expect(everything).not.toContain(password);
    expect(everything).not.toContain(hashRedisPassword(password));
    expect(err.command).toBeUndefined();
  });

  it('replace every earlier rule and password when a user is provisioned again', async () => {
    const username = user('C');
    createdUsers.add(username);
    const old = generateRedisPassword();
    await admin.call('ACL', 'SETUSER', username, 'on', `>${old}`, 'allkeys', 'allchannels', '+@all');
    const rotated = generateRedisPassword();
    await provisionParticipantUser(admin, { username, passwordHash: hashRedisPassword(rotated), prefix, queue: participantQueue('hospital-3'), studyId: 'study-3' });

    expect(await authenticationError(username, old)).toMatch(/WRONGPASS/);
    expect(await authenticationError(username, rotated)).toBe('');
    const conn = connectAs(username, rotated);
    expect(await conn.ping()).toBe('PONG');
    expect(await errorOf(conn.lrange(`${prefix}:${queueB}:wait`, 0, -1))).toMatch(NOPERM);
    expect(await errorOf(conn.publish('chan', 'x'))).toMatch(NOPERM);
  });

  it('no longer authenticate a revoked user, and close the connections it had open', async () => {
    const username = user('D');
    createdUsers.add(username);
    const password = generateRedisPassword();
    await provisionParticipantUser(admin, { username, password, prefix, queue: participantQueue('hospital-4'), studyId: 'study-4' });
    // No reconnection, so the connection ends when the server drops it (a worker's would retry and get WRONGPASS).
    const open = new Redis({ ...redisConnectionOptions(url, { role: 'worker', username, password }), retryStrategy: () => null });
    open.on('error', () => undefined);
    connections.push(open);
    expect(await open.ping()).toBe('PONG');
    const ended = new Promise<void>((resolve) => open.once('end', () => resolve()));

    await expect(revokeParticipantUser(admin, username)).resolves.toBe(true);
    await ended;
    expect(await authenticationError(username, password)).toMatch(/WRONGPASS/);
    await expect(revokeParticipantUser(admin, username)).resolves.toBe(false);
  });
});
