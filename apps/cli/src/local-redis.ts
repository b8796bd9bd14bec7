import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';

/** A private redis-server on loopback, locked down as Confide expects a production Redis to be. */
export interface LocalRedis {
  /** The administrator's URL, with its credentials: the coordinator's REDIS_URL. */
  readonly adminUrl: string;
  /** The same server without credentials: what participants are given (they log in as their own users). */
  readonly publicUrl: string;
  readonly port: number;
  stop(): Promise<void>;
  /** Kills the server (SIGKILL: a crash, nothing flushed) and waits for it to be gone. For fault tests. */
  kill(): Promise<void>;
  /** Starts it again on the same port with the same configuration (and, with `appendOnly`, the same data). */
  restart(): Promise<void>;
}

/** True when a `redis-server` binary is on the PATH. */
export function hasRedisServer(): boolean {
  return spawnSync('redis-server', ['--version']).status === 0;
}

/** A TCP port on loopback that nothing listens on right now (the OS picks it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (addr && typeof addr === 'object' ? resolve(addr.port) : reject(new Error('no free port'))));
    });
  });
}

/**
 * Starts a temporary redis-server on a free loopback port, in memory only (no RDB, no AOF), whose `default` user is
 * off: every client must log in, as Confide's coordinator requires (libs/queue secureDefaultUser). One administrator
 * user, `confide-admin`, gets a fresh random password, written only to a 0600 config file in a private temp dir.
 * For the demo, the tests and the benchmarks: nothing is shared with another Redis on the machine. `openDefaultUser`
 * leaves `default` as a fresh Redis has it (on, no password), for the tests of what the coordinator does then.
 * @throws Error when redis-server is missing or does not answer within 10 s
 */
export async function startLocalRedis(options: { openDefaultUser?: boolean; appendOnly?: boolean } = {}): Promise<LocalRedis> {
  if (!hasRedisServer()) throw new Error('redis-server is not installed (Debian/Ubuntu: apt-get install redis-server)');
  const port = await freePort();
  const password = randomBytes(24).toString('base64url');
  const dir = mkdtempSync(join(tmpdir(), 'confide-redis-'));
  const config = join(dir, 'redis.conf');
  writeFileSync(
    config,
    [
      `port ${port}`,
      'bind 127.0.0.1',
      'save ""',
      // Fault tests restart it with and without an append-only file (fsync every write: nothing acknowledged is lost).
      options.appendOnly ? 'appendonly yes' : 'appendonly no',
      'appendfsync always',
      `dir ${dir}`,
      // Open only for tests of the coordinator's refusal: a Redis as it comes out of the box.
      options.openDefaultUser ? 'user default on nopass ~* &* +@all' : 'user default off',
      `user confide-admin on >${password} ~* &* +@all`,
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
  let child: ChildProcess = spawn('redis-server', [config], { stdio: 'ignore' });
  const adminUrl = `redis://confide-admin:${password}@127.0.0.1:${port}`;
  const kill = async (signal: NodeJS.Signals = 'SIGKILL'): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill(signal);
    await exited;
  };
  const stop = async (): Promise<void> => {
    await kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  };
  const waitUp = async (): Promise<void> => {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const r = new Redis(adminUrl, { lazyConnect: true, maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => null, connectTimeout: 1000 });
      r.on('error', () => undefined);
      try {
        await r.connect();
        if ((await r.ping()) === 'PONG') return;
      } catch {
        // not up yet
      } finally {
        r.disconnect();
      }
      if (child.exitCode !== null || Date.now() > deadline) {
        await stop();
        throw new Error(`the temporary redis-server on port ${port} did not start`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  await waitUp();
  const restart = async (): Promise<void> => {
    await kill();
    child = spawn('redis-server', [config], { stdio: 'ignore' });
    await waitUp();
  };
  return { adminUrl, publicUrl: `redis://127.0.0.1:${port}`, port, stop, kill: () => kill(), restart };
}
