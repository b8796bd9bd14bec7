import { EventEmitter } from 'node:events';
import { OutageMonitor, OutageReporter, withoutCredentials, type OutageLogger } from './outage';
import { settledWithin, stopWithin } from './shutdown';

const SECRET = 'Zx9-s3cr3t_pw';

describe('withoutCredentials', () => {
  it.each<[string, string]>([
    [`redis://confide-admin:${SECRET}@127.0.0.1:6379`, 'redis://127.0.0.1:6379'],
    [`redis://:${SECRET}@redis:6380/2`, 'redis://redis:6380/2'],
    [`rediss://user:${SECRET}@cache.example.org`, 'rediss://cache.example.org'],
    // A Redis Cluster's seeds: what CONFIDE_PUBLIC_REDIS_URL defaults to, and what outage lines show.
    [`redis+cluster://confide-admin:${SECRET}@10.0.0.1:7000,10.0.0.2:7000`, 'redis+cluster://10.0.0.1:7000,10.0.0.2:7000'],
    [`postgres://confide:${SECRET}@db.internal:5432/confide`, 'postgres://db.internal:5432/confide'],
    [`postgresql://confide:${SECRET}@db/confide?sslmode=require`, 'postgresql://db/confide?sslmode=require'],
    // libpq also takes the password as a query parameter.
    [`postgres://db/confide?password=${SECRET}&sslmode=require`, 'postgres://db/confide?sslmode=require'],
    // Not valid URLs: a password with '/', '#', '?' or '@' unescaped. Everything up to the last '@' goes.
    [`redis://admin:${SECRET}/x#y?z@127.0.0.1:6379`, 'redis://127.0.0.1:6379'],
    [`postgres://u:a@b/c@db:5432/x`, 'postgres://db:5432/x'],
    ['redis://127.0.0.1:6379', 'redis://127.0.0.1:6379'],
    ['sqlite:/var/lib/confide/confide.sqlite', 'sqlite:/var/lib/confide/confide.sqlite'],
    ['not a url', 'not a url'],
  ])('%s → %s', (url, expected) => {
    expect(withoutCredentials(url)).toBe(expected);
    expect(withoutCredentials(url)).not.toContain(SECRET);
  });
});

/** A logger that keeps each line's level and message. */
function recorder(): { logger: OutageLogger; lines: { level: string; msg: string; obj: object }[] } {
  const lines: { level: string; msg: string; obj: object }[] = [];
  const at = (level: string) => (obj: object, msg: string) => lines.push({ level, msg, obj });
  return { lines, logger: { warn: at('warn'), info: at('info'), debug: at('debug') } };
}

describe('OutageReporter', () => {
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  const reporter = (logger: OutageLogger, quiet = false) =>
    new OutageReporter(logger, {
      dependency: 'database',
      what: 'coordinator',
      url: `postgres://confide:${SECRET}@db:5432/confide`,
      checks: 'is PostgreSQL running at postgres://db:5432/confide? is DATABASE_URL right?',
      remindEveryMs: 60_000,
      settleMs: 1000,
      now: () => Date.now(),
      quiet,
    });

  it('says once that it is down (where, why, what to check), reminds every minute, and says once that it is back', () => {
    const { logger, lines } = recorder();
    const r = reporter(logger);
    for (let i = 0; i < 100; i++) {
      r.lost(new Error('connect ECONNREFUSED 10.0.0.5:5432\n    at TCPConnectWrap.afterConnect'));
      jest.advanceTimersByTime(250);
    }
    expect(lines.map((l) => l.msg)).toEqual([
      'database unreachable at postgres://db:5432/confide (coordinator): connect ECONNREFUSED 10.0.0.5:5432. Check: is PostgreSQL running at postgres://db:5432/confide? is DATABASE_URL right? Retrying with backoff.',
    ]);
    jest.advanceTimersByTime(3 * 60_000 - 25_000);
    expect(lines.map((l) => l.msg).slice(1)).toEqual([
      expect.stringMatching(/^database still unreachable at postgres:\/\/db:5432\/confide \(coordinator\) after 1 min: connect ECONNREFUSED 10.0.0.5:5432. Check: /),
      expect.stringMatching(/ after 2 min: /),
      expect.stringMatching(/ after 3 min: /),
    ]);
    expect(r.state).toEqual({ state: 'down', since: expect.any(Number) as number });
    r.restored();
    jest.advanceTimersByTime(1000);
    expect(lines.at(-1)).toMatchObject({ level: 'info', msg: 'database is back at postgres://db:5432/confide (coordinator) after 3 min' });
    expect(r.state).toEqual({ state: 'up' });
    // No more reminders once it is back; a new outage is a new line.
    jest.advanceTimersByTime(10 * 60_000);
    expect(lines).toHaveLength(5);
    r.lost(new Error('Connection terminated unexpectedly'));
    expect(lines).toHaveLength(6);
    expect(JSON.stringify(lines)).not.toContain(SECRET);
  });

  it('calls what waits for the dependency once per outage, when it is back, and not while it keeps failing', () => {
    const { logger } = recorder();
    const r = reporter(logger);
    let back = 0;
    r.whenBack(() => (back += 1));
    r.restored();
    jest.advanceTimersByTime(5000);
    expect(back).toBe(0); // it was never down
    r.lost(new Error('connect ECONNREFUSED'));
    r.restored();
    jest.advanceTimersByTime(500);
    r.lost(new Error('connect ECONNREFUSED'));
    jest.advanceTimersByTime(5000);
    expect(back).toBe(0);
    r.restored();
    r.restored();
    jest.advanceTimersByTime(1000);
    expect(back).toBe(1);
    r.lost(new Error('connect ECONNREFUSED'));
    r.restored();
    jest.advanceTimersByTime(1000);
    expect(back).toBe(2);
  });

  it('is not back while it keeps failing within the settle time (a login refused at once)', () => {
    const { logger, lines } = recorder();
    const r = reporter(logger);
    r.lost(new Error('WRONGPASS'));
    for (let i = 0; i < 20; i++) {
      r.restored();
      jest.advanceTimersByTime(100);
      r.lost(new Error('WRONGPASS'));
    }
    jest.advanceTimersByTime(2000);
    expect(lines.map((l) => l.level)).toEqual(['warn']);
    expect(r.down).toBe(true);
  });

  it('logs at debug only when another process reports the same outage', () => {
    const { logger, lines } = recorder();
    const r = reporter(logger, true);
    r.lost(new Error('connect ECONNREFUSED'));
    jest.advanceTimersByTime(61_000);
    expect(lines.map((l) => l.level)).toEqual(['debug', 'debug']);
  });

  it('says nothing once stopped', () => {
    const { logger, lines } = recorder();
    const r = reporter(logger);
    r.stop();
    r.lost(new Error('connect ECONNREFUSED'));
    jest.advanceTimersByTime(120_000);
    expect(lines).toEqual([]);
  });
});

/** A stand-in for an ioredis connection: its status and its events. */
class FakeConnection extends EventEmitter {
  status = 'ready';
  drop(err?: Error): void {
    this.status = 'reconnecting';
    if (err) this.emit('error', err);
    this.emit('close');
  }
  up(): void {
    this.status = 'ready';
    this.emit('ready');
  }
}

describe('OutageMonitor', () => {
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  const setup = () => {
    const { logger, lines } = recorder();
    const monitor = new OutageMonitor(logger, { what: 'task queue', url: `redis://admin:${SECRET}@127.0.0.1:6379`, settleMs: 1000 });
    const a = new FakeConnection();
    const b = new FakeConnection();
    const worker = new EventEmitter();
    monitor.watch(a, 'producer').watch(b, 'control worker').listen(worker, 'worker');
    return { lines, monitor, a, b, worker };
  };

  it('reports every connection of the process as one outage: one line down, one line back, retries at debug', () => {
    const { lines, monitor, a, b, worker } = setup();
    const refused = new Error('connect ECONNREFUSED 127.0.0.1:6379');
    for (let i = 0; i < 40; i++) {
      a.drop(refused);
      b.drop(refused);
      worker.emit('error', refused);
      jest.advanceTimersByTime(250);
    }
    const loud = () => lines.filter((l) => l.level !== 'debug').map((l) => l.msg);
    expect(loud()).toEqual([
      'Redis unreachable at redis://127.0.0.1:6379 (task queue): connect ECONNREFUSED 127.0.0.1:6379. Check: is redis-server running at redis://127.0.0.1:6379? is REDIS_URL right? Retrying with backoff.',
    ]);
    expect(monitor.states()).toEqual([
      { name: 'producer', state: 'reconnecting' },
      { name: 'control worker', state: 'reconnecting' },
    ]);
    // Back only when every connection is.
    a.up();
    jest.advanceTimersByTime(5000);
    expect(loud()).toHaveLength(1);
    b.up();
    jest.advanceTimersByTime(1000);
    expect(loud()[1]).toBe('Redis is back at redis://127.0.0.1:6379 (task queue) after 15 s');
    expect(JSON.stringify(lines)).not.toContain(SECRET);
  });

  it('is not back while a login is refused at once, again and again (the ACL user is not re-created yet)', () => {
    const { lines, monitor, a, b } = setup();
    b.drop();
    a.drop(new Error('connect ECONNREFUSED 127.0.0.1:6379'));
    b.up();
    for (let i = 0; i < 50; i++) {
      a.up();
      jest.advanceTimersByTime(50);
      a.drop(new Error('WRONGPASS invalid username-password pair or user is disabled.'));
    }
    jest.advanceTimersByTime(5000);
    expect(monitor.down).toBe(true);
    expect(lines.filter((l) => l.level !== 'debug')).toHaveLength(1);
  });

  it('keeps errors that are not an outage loud while Redis is up', () => {
    const { lines, monitor, worker } = setup();
    worker.emit('error', new Error('ERR unknown command'));
    expect(monitor.down).toBe(false);
    expect(lines).toEqual([expect.objectContaining({ level: 'warn', msg: 'Redis error (worker): ERR unknown command' })]);
    expect(monitor.quiet(new Error("Stream isn't writeable and enableOfflineQueue options is false"))).toBe(true);
  });

  it('says nothing once stopped (a shutdown closes the connections on purpose)', () => {
    const { lines, monitor, a } = setup();
    monitor.stop();
    a.drop();
    expect(lines).toEqual([]);
  });
});

describe('stopWithin', () => {
  it('returns when the stop finishes in time', async () => {
    const exit = jest.fn();
    await stopWithin(() => new Promise((r) => setTimeout(r, 10)), { logger: { error: jest.fn() }, stillOpen: () => [], deadlineMs: 1000, exit });
    expect(exit).not.toHaveBeenCalled();
  });

  it('exits 1 at the deadline, naming what is still open', async () => {
    const exit = jest.fn();
    const error = jest.fn();
    void stopWithin(() => new Promise(() => undefined), { logger: { error }, stillOpen: () => ['Redis connection producer (reconnecting)'], deadlineMs: 50, exit });
    await new Promise((r) => setTimeout(r, 100));
    expect(exit).toHaveBeenCalledWith(1);
    expect(error).toHaveBeenCalledWith(expect.anything(), 'did not stop within 0.05 s; still open: Redis connection producer (reconnecting); exiting now');
  });

  it('settledWithin tells a late promise from one that settled', async () => {
    expect(await settledWithin(Promise.reject(new Error('x')), 50)).toBe(true);
    expect(await settledWithin(new Promise(() => undefined), 20)).toBe(false);
  });
});
