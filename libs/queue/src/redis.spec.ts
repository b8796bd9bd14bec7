import { Cluster } from 'ioredis';
import {
  assertRedisReady,
  createRedis,
  isRedisClusterUrl,
  isRedisOutage,
  pingRedis,
  reconnectBackoff,
  redactRedisUrl,
  redisClusterFromUrl,
  redisClusterOptions,
  redisConnectionOptions,
  redisOptionsFromUrl,
  RedisUnavailableError,
  REDIS_URL_SCHEMES,
} from './redis';

const SECRET = 'Zx9-s3cr3t_pw';

describe('redisOptionsFromUrl', () => {
  it.each<[string, object]>([
    ['redis://127.0.0.1:6379', { host: '127.0.0.1', port: 6379 }],
    ['redis://redis', { host: 'redis', port: 6379 }],
    ['redis://redis:6380/3', { host: 'redis', port: 6380, db: 3 }],
    ['redis://redis:6380/', { host: 'redis', port: 6380 }],
    ['redis://:pw@redis', { host: 'redis', port: 6379, password: 'pw' }],
    ['redis://confide-hospital-1:pw@redis:6379/0', { host: 'redis', port: 6379, db: 0, username: 'confide-hospital-1', password: 'pw' }],
    ['redis://user@redis', { host: 'redis', port: 6379, username: 'user' }],
    ['redis://u%40x:p%3Aw%2F%23@redis', { host: 'redis', port: 6379, username: 'u@x', password: 'p:w/#' }],
    ['redis://[::1]:6379', { host: '::1', port: 6379 }],
    ['rediss://cache.example.org', { host: 'cache.example.org', port: 6379, tls: { servername: 'cache.example.org' } }],
  ])('parses %s', (url, expected) => {
    expect(redisOptionsFromUrl(url)).toEqual(expected);
  });

  it('applies overrides last', () => {
    expect(redisOptionsFromUrl('redis://u:pw@redis:6379/1', { db: 2, password: 'other' })).toEqual({ host: 'redis', port: 6379, db: 2, username: 'u', password: 'other' });
  });

  it.each([
    `http://u:${SECRET}@redis:6379`,
    `redis://u:${SECRET}@redis:6379/db`,
    `redis://u:${SECRET}@redis:6379/0?family=6`,
    `redis://u:${SECRET}@:6379`,
    `redis://u:${SECRET}@redis:99999`,
    `redis://u:${SECRET}@redis:port`,
    `redis://u:${SECRET.slice(0, 4)}/${SECRET.slice(4)}@redis:6379`,
    `redis://u:${SECRET}%zz@redis`,
    `u:${SECRET}@redis:6379`,
  ])('rejects %s without the password in the message', (url) => {
    let message = '';
    try {
      redisOptionsFromUrl(url);
    } catch (err) {
      expect(err).toBeInstanceOf(TypeError);
      expect((err as Error).cause).toBeUndefined();
      message = (err as Error).message;
    }
    expect(message).toMatch(/^invalid Redis URL/);
    for (const part of [SECRET, SECRET.slice(0, 4) + '/', '/' + SECRET.slice(4)]) expect(message).not.toContain(part);
  });
});

describe('redactRedisUrl', () => {
  it.each([
    [`redis://u:${SECRET}@redis:6379/0`, 'redis://u:***@redis:6379/0'],
    [`redis://:${SECRET}@redis`, 'redis://:***@redis'],
    [`rediss://u:${SECRET}@redis`, 'rediss://u:***@redis'],
    // Unencoded '@', '/' and '#' in the password: the last '@' ends the password.
    ['redis://u:p@ss/w#rd@redis:6379', 'redis://u:***@redis:6379'],
    ['u:pw@redis:6379', 'u:***@redis:6379'],
    ['redis://redis:6379/0', 'redis://redis:6379/0'],
    ['redis://user@redis', 'redis://user@redis'],
    ['not a url', 'not a url'],
  ])('redacts %s', (url, expected) => {
    expect(redactRedisUrl(url)).toBe(expected);
  });
});

describe('redisConnectionOptions', () => {
  const url = 'redis://url-user:url-pw@redis:6379/2';

  it('makes worker connections wait out an outage (BullMQ requires maxRetriesPerRequest: null)', () => {
    const options = redisConnectionOptions(url, { role: 'worker' });
    expect(options.maxRetriesPerRequest).toBeNull();
    expect(options.enableOfflineQueue).toBeUndefined();
  });

  it('makes producer connections fail fast', () => {
    const options = redisConnectionOptions(url, { role: 'producer' });
    expect(options).toMatchObject({ maxRetriesPerRequest: 1, enableOfflineQueue: false });
  });

  it('lets explicit credentials replace the URL\'s', () => {
    expect(redisConnectionOptions(url, { role: 'worker', username: 'confide-hospital-1', password: SECRET })).toMatchObject({
      host: 'redis',
      db: 2,
      username: 'confide-hospital-1',
      password: SECRET,
    });
  });

  it('turns off INFO and CLIENT for a restricted participant user, and names no connection', () => {
    const options = redisConnectionOptions(url, { role: 'worker', restricted: true, connectionName: 'ignored' });
    expect(options).toMatchObject({ enableReadyCheck: false, disableClientInfo: true, skipVersionCheck: true });
    expect(options.connectionName).toBeUndefined();
    expect(redisConnectionOptions(url, { role: 'producer', connectionName: 'coordinator-http' }).connectionName).toBe('coordinator-http');
  });

  it('treats a connection with explicit credentials as a participant\'s unless told otherwise', () => {
    expect(redisConnectionOptions(url, { role: 'worker', username: 'confide-hospital-1', password: SECRET }).skipVersionCheck).toBe(true);
    expect(redisConnectionOptions(url, { role: 'worker', username: 'ops', password: SECRET, restricted: false }).skipVersionCheck).toBeUndefined();
    expect(redisConnectionOptions(url, { role: 'worker' }).skipVersionCheck).toBeUndefined();
  });
});

describe('pingRedis', () => {
  it('is true on PONG', async () => {
    await expect(pingRedis({ ping: () => Promise.resolve('PONG') }, 50)).resolves.toBe(true);
  });

  it('is false when PING fails', async () => {
    await expect(pingRedis({ ping: () => Promise.reject(new Error('Connection is closed.')) }, 50)).resolves.toBe(false);
  });

  it('is false when PING does not answer within the timeout', async () => {
    await expect(pingRedis({ ping: () => new Promise<string>(() => undefined) }, 20)).resolves.toBe(false);
  });
});

describe('assertRedisReady', () => {
  it('passes a ready connection and throws RedisUnavailableError otherwise', () => {
    expect(() => assertRedisReady({ status: 'ready' })).not.toThrow();
    for (const status of ['wait', 'connecting', 'connect', 'reconnecting', 'close', 'end'] as const) {
      expect(() => assertRedisReady({ status })).toThrow(RedisUnavailableError);
    }
  });
});

describe('reconnectBackoff', () => {
  it('grows exponentially to its cap across attempts of one outage, with jitter between half and all of each step', () => {
    let now = 0;
    const low = reconnectBackoff({ baseMs: 100, maxMs: 5000, random: () => 0, now: () => now });
    const high = reconnectBackoff({ baseMs: 100, maxMs: 5000, random: () => 1, now: () => now });
    const lows: number[] = [];
    const highs: number[] = [];
    for (let i = 0; i < 9; i++) {
      now += 50; // a connection that opens and is dropped at once: ioredis would restart its count each time
      lows.push(low());
      highs.push(high());
    }
    expect(highs).toEqual([100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000]);
    expect(lows).toEqual(highs.map((h) => h / 2));
  });

  it('starts again from the base once attempts stop coming (a new outage)', () => {
    let now = 0;
    const next = reconnectBackoff({ baseMs: 100, maxMs: 5000, resetAfterMs: 15_000, random: () => 1, now: () => now });
    expect([next(), next(), next()]).toEqual([100, 200, 400]);
    now += 15_001;
    expect(next()).toBe(100);
  });

  it('is what every connection retries with', () => {
    expect(typeof redisConnectionOptions('redis://127.0.0.1:6379', { role: 'worker' }).retryStrategy).toBe('function');
    expect(typeof redisConnectionOptions('redis://127.0.0.1:6379', { role: 'producer' }).retryStrategy).toBe('function');
  });
});

describe('Redis Cluster URLs', () => {
  it.each<[string, object]>([
    ['redis+cluster://127.0.0.1:7000', { nodes: [{ host: '127.0.0.1', port: 7000 }], options: {} }],
    ['redis+cluster://a:7000,b:7001,c/', { nodes: [{ host: 'a', port: 7000 }, { host: 'b', port: 7001 }, { host: 'c', port: 6379 }], options: {} }],
    ['redis+cluster://confide-admin:p%40w,d@a:7000,[::1]:7001', { nodes: [{ host: 'a', port: 7000 }, { host: '::1', port: 7001 }], options: { username: 'confide-admin', password: 'p@w,d' } }],
    ['redis+cluster://:pw@a', { nodes: [{ host: 'a', port: 6379 }], options: { password: 'pw' } }],
    ['rediss+cluster://u@cache.example.org:6380', { nodes: [{ host: 'cache.example.org', port: 6380 }], options: { username: 'u', tls: {} } }],
  ])('parses %s', (url, expected) => {
    expect(isRedisClusterUrl(url)).toBe(true);
    expect(redisClusterFromUrl(url)).toEqual(expected);
  });

  it('tells cluster URLs from one-server URLs, and accepts all four schemes in configuration', () => {
    for (const url of ['redis://a', 'rediss://a', 'a:7000']) expect(isRedisClusterUrl(url)).toBe(false);
    for (const url of ['redis://a', 'rediss://a', 'redis+cluster://a', 'rediss+cluster://a']) expect(REDIS_URL_SCHEMES.test(url)).toBe(true);
    for (const url of ['http://a', 'redis+sentinel://a', 'cluster://a']) expect(REDIS_URL_SCHEMES.test(url)).toBe(false);
  });

  it.each([
    `redis+cluster://u:${SECRET}@a:7000/0`,
    `redis+cluster://u:${SECRET}@a:7000?x=1`,
    `redis+cluster://u:${SECRET}@a:7000,,b:7001`,
    `redis+cluster://u:${SECRET}@`,
    `redis+cluster://u:${SECRET}@a:port`,
    `redis+cluster://u:${SECRET}%zz@a`,
    `redis+cluster://u:${SECRET.slice(0, 4)}/${SECRET.slice(4)}@a:7000`,
    `http+cluster://u:${SECRET}@a`,
  ])('rejects %s without the password in the message', (url) => {
    let message = '';
    try {
      redisClusterFromUrl(url);
    } catch (err) {
      expect(err).toBeInstanceOf(TypeError);
      expect((err as Error).cause).toBeUndefined();
      message = (err as Error).message;
    }
    expect(message).toMatch(/^invalid Redis URL/);
    for (const part of [SECRET, SECRET.slice(0, 4) + '/', '/' + SECRET.slice(4)]) expect(message).not.toContain(part);
  });

  it('redacts the password of a cluster URL', () => {
    expect(redactRedisUrl(`redis+cluster://u:${SECRET}@a:7000,b:7001`)).toBe('redis+cluster://u:***@a:7000,b:7001');
  });
});

describe('redisClusterOptions', () => {
  const url = `redis+cluster://url-user:${SECRET}@a:7000,b:7001`;

  it('puts credentials and per-command retries on the nodes, and reconnection and the offline queue on the cluster', () => {
    const worker = redisClusterOptions(url, { role: 'worker' });
    expect(worker.nodes).toEqual([{ host: 'a', port: 7000 }, { host: 'b', port: 7001 }]);
    expect(worker.options).toMatchObject({ enableOfflineQueue: true, enableReadyCheck: true, redisOptions: { username: 'url-user', password: SECRET, maxRetriesPerRequest: null } });
    expect(typeof worker.options.clusterRetryStrategy).toBe('function');
    const producer = redisClusterOptions(url, { role: 'producer' }).options;
    expect(producer).toMatchObject({ enableOfflineQueue: false, redisOptions: { maxRetriesPerRequest: 1 } });
    // ioredis opens each node lazily on its first command: a node without an offline queue would refuse that command.
    const nodeOptions = producer.redisOptions as Record<string, unknown>;
    expect(nodeOptions.enableOfflineQueue).toBeUndefined();
    expect(nodeOptions.retryStrategy).toBeUndefined();
  });

  it('turns off INFO, CLIENT and CLUSTER INFO for a restricted participant user, where BullMQ reads skipVersionCheck for a cluster', () => {
    const { options } = redisClusterOptions(url, { role: 'worker', username: 'confide-p1', password: SECRET });
    expect(options.enableReadyCheck).toBe(false);
    expect(options.redisOptions).toMatchObject({ username: 'confide-p1', password: SECRET, enableReadyCheck: false, disableClientInfo: true, skipVersionCheck: true });
    expect(options.redisOptions?.connectionName).toBeUndefined();
  });

  it('opens an ioredis Cluster for a cluster URL, and one server\'s connection otherwise', () => {
    const cluster = createRedis('redis+cluster://127.0.0.1:1', { role: 'producer' });
    const single = createRedis('redis://127.0.0.1:1', { role: 'producer' });
    try {
      expect(cluster).toBeInstanceOf(Cluster);
      expect(single).not.toBeInstanceOf(Cluster);
    } finally {
      cluster.on('error', () => undefined).disconnect();
      single.on('error', () => undefined).disconnect();
    }
  });

  it('counts a cluster that is down or has lost slots as an outage, so HTTP answers 503', () => {
    for (const message of ["Cluster isn't ready and enableOfflineQueue options is false", 'None of startup nodes is available', 'CLUSTERDOWN The cluster is down', 'TRYAGAIN Multiple keys request during rehashing of slot']) {
      expect(isRedisOutage(new Error(message))).toBe(true);
    }
    expect(isRedisOutage(new Error("CROSSSLOT Keys in request don't hash to the same slot"))).toBe(false);
  });
});
