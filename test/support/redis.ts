import { randomBytes } from 'node:crypto';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { redisOptionsFromUrl, removeRunKeys, type RedisClient } from '@confide/queue';

/** The Redis the integration tier talks to (.ci/run starts one on the default port). */
export const TEST_REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

/** A key prefix no other test run shares (STYLE.md "Tests": unique queue prefix per test, cleaned up after). */
export function uniqueTestPrefix(): string {
  return `confide-test-${randomBytes(6).toString('hex')}`;
}

/** Deletes every key under `<prefix>:` (SCAN, never KEYS) and returns how many there were. */
export function deleteKeysWithPrefix(admin: RedisClient, prefix: string): Promise<number> {
  return removeRunKeys(admin, prefix);
}

/**
 * Closes a test connection: QUIT when it is up, otherwise stop it reconnecting. (disconnect() on a connection the
 * server already closed leaves a 2-second ioredis timer that keeps Jest from exiting.)
 */
export async function closeConnection(conn: RedisClient): Promise<void> {
  if (conn.status === 'end') return;
  if (conn.status === 'ready') {
    try {
      await conn.quit();
      return;
    } catch {
      // fall through to disconnect
    }
  }
  conn.disconnect();
}

/** The reply of a command that should fail, or undefined if it succeeded. */
export async function errorOf(promise: Promise<unknown>): Promise<string | undefined> {
  try {
    await promise;
    return undefined;
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}

/**
 * A TCP relay to a server that can be taken down and brought back: every relayed connection dropped, new ones
 * refused, as a restarting server looks to its clients. For outage tests that must not stop a server others share.
 */
export class OutageProxy {
  private server?: Server;
  private readonly sockets = new Set<Socket>();
  port = 0;

  constructor(
    private readonly upstreamHost: string,
    private readonly upstreamPort: number,
  ) {}

  /** Starts relaying (on the same port as before, after a {@link down}). */
  async up(): Promise<void> {
    const server = createServer((client) => {
      const upstream = connect(this.upstreamPort, this.upstreamHost);
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('error', () => s.destroy());
        s.on('close', () => {
          this.sockets.delete(s);
          client.destroy();
          upstream.destroy();
        });
      }
      client.pipe(upstream);
      upstream.pipe(client);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    this.server = server;
    const address = server.address();
    if (address && typeof address === 'object') this.port = address.port;
  }

  /** Drops every relayed connection and stops accepting new ones: the server is "down". */
  async down(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

/** An {@link OutageProxy} to the test Redis. */
export class RedisOutageProxy extends OutageProxy {
  constructor(upstreamUrl = TEST_REDIS_URL) {
    const { host = '127.0.0.1', port = 6379 } = redisOptionsFromUrl(upstreamUrl);
    super(host, port);
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }
}
