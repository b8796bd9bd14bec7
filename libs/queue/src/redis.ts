import { Cluster, Redis, type ClusterNode, type ClusterOptions, type RedisOptions } from 'ioredis';
import { assertKeyPrefix, hashTagOf } from './names';

/**
 * Redis connections for BullMQ (DESIGN.md "Storage and services", STYLE.md "Queues"): a worker connection
 * that waits out outages, a producer connection that fails fast so HTTP can answer 503, and URL handling
 * that never lets a password reach an error message or a log. A `redis+cluster://` URL opens an ioredis `Cluster`
 * instead of one server's connection (README "Redis Cluster").
 */

/** A connection {@link createRedis} opens: one Redis server's, or a Redis Cluster's, as its URL says. */
export type RedisClient = Redis | Cluster;

/**
 * `worker`: a BullMQ Worker or QueueEvents connection, whose blocking commands must wait out a Redis restart.
 * `producer`: the HTTP side (Queue.add, health checks), which must fail at once when Redis is down.
 */
export type RedisRole = 'worker' | 'producer';

/** ioredis options plus the connection option BullMQ reads from a client it is given (BullMQ `BaseOptions`). */
export type ConfideRedisOptions = RedisOptions & { skipVersionCheck?: boolean };

export interface CreateRedisOptions {
  readonly role: RedisRole;
  /** Override the URL's credentials (e.g. from a secret file rather than the environment). */
  readonly username?: string;
  readonly password?: string;
  /**
   * The connection authenticates as a participant ACL user ({@link participantAclRules}), which may not run
   * INFO or CLIENT: BullMQ's INFO-based version check and ioredis's INFO ready check and CLIENT SETINFO are
   * turned off instead of failing (BullMQ) or filling the server's ACL log (ioredis). Defaults to true when a
   * `username` is passed here, as a participant does with the credentials enrolment gave it (the coordinator
   * takes its own from REDIS_URL); skipping the checks on a user that could run them costs nothing but
   * BullMQ's eviction-policy warning.
   */
  readonly restricted?: boolean;
  /** CLIENT SETNAME on connect (not for restricted users, who may not name connections). */
  readonly connectionName?: string;
}

const DEFAULT_PORT = 6379;

/**
 * Parses `redis://[user[:password]@]host[:port][/db]` (or `rediss://` for TLS) into ioredis options, then
 * applies `overrides`. User and password are percent-decoded; a user without a ':' is a username, as in
 * ioredis. Query strings and fragments are refused rather than silently ignored.
 * @throws TypeError naming the problem, with the URL's password redacted ({@link redactRedisUrl})
 */
export function redisOptionsFromUrl(url: string, overrides: RedisOptions = {}): RedisOptions {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    // Not chained as the cause: Node's ERR_INVALID_URL carries the whole input, password included.
    throw new TypeError(`invalid Redis URL ${redactRedisUrl(url)}`);
  }
  const fail = (what: string): never => {
    throw new TypeError(`invalid Redis URL ${redactRedisUrl(url)}: ${what}`);
  };
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') fail('the scheme must be redis:// or rediss://');
  if (parsed.search !== '' || parsed.hash !== '') fail('query strings and fragments are not supported');
  const host = parsed.hostname.replace(/^\[(.*)\]$/, '$1');
  if (host === '') fail('no host');
  const port = parsed.port === '' ? DEFAULT_PORT : Number(parsed.port);
  const dbText = parsed.pathname.replace(/^\//, '');
  if (!/^(\d{1,5})?$/.test(dbText)) fail('the path must be empty or a database number');
  const options: RedisOptions = { host, port };
  if (dbText !== '') options.db = Number(dbText);
  const decode = (part: string, what: string): string => {
    try {
      return decodeURIComponent(part);
    } catch {
      return fail(`the ${what} is not valid percent-encoding`);
    }
  };
  if (parsed.username !== '') options.username = decode(parsed.username, 'user name');
  if (parsed.password !== '') options.password = decode(parsed.password, 'password');
  if (parsed.protocol === 'rediss:') options.tls = { servername: host };
  return { ...options, ...overrides };
}

/**
 * The schemes a Redis URL may have: `redis://` and `rediss://` (TLS) for one server, `redis+cluster://` and
 * `rediss+cluster://` for a Redis Cluster ({@link redisClusterFromUrl}). For validating configuration.
 */
export const REDIS_URL_SCHEMES = /^rediss?(\+cluster)?:\/\//i;

/** Whether a Redis URL names a cluster: `redis+cluster://` or `rediss+cluster://` ({@link redisClusterFromUrl}). */
export function isRedisClusterUrl(url: string): boolean {
  return /^rediss?\+cluster:\/\//i.test(url);
}

/**
 * Parses a Redis Cluster URL, `redis+cluster://[user[:password]@]host[:port][,host[:port]…]` (`rediss+cluster://`
 * for TLS): one or more seed nodes, from which ioredis learns every node and slot (CLUSTER SLOTS), and the
 * credentials every node is logged in to with. No database number (a cluster has only database 0), query string or
 * fragment.
 * @throws TypeError naming the problem, with the URL's password redacted ({@link redactRedisUrl})
 */
export function redisClusterFromUrl(url: string): { nodes: { host: string; port: number }[]; options: RedisOptions } {
  const fail = (what: string): never => {
    throw new TypeError(`invalid Redis URL ${redactRedisUrl(url)}: ${what}`);
  };
  const match = /^(rediss?)\+cluster:\/\/(.*)$/is.exec(url);
  if (!match) return fail('the scheme must be redis+cluster:// or rediss+cluster://');
  const tls = match[1]!.toLowerCase() === 'rediss';
  const rest = match[2]!;
  // The last '@' ends the credentials, as in redactRedisUrl: a password may hold '@', ',' or ':'.
  const at = rest.lastIndexOf('@');
  const seeds = (at === -1 ? rest : rest.slice(at + 1)).replace(/\/$/, '');
  if (/[/?#]/.test(seeds)) fail('a cluster URL has no database number, query string or fragment');
  // Each seed and the credentials are read as the parts of a one-server URL, errors worded here: the one-server
  // parser's message would show a part of this URL that redactRedisUrl cannot find the password in.
  const nodes = seeds.split(',').map((seed) => {
    if (seed === '' || seed.includes('@')) return fail('each seed node is host[:port], separated by commas');
    let node: RedisOptions;
    try {
      node = redisOptionsFromUrl(`redis://${seed}`);
    } catch {
      return fail(`the seed node ${JSON.stringify(seed)} is not host[:port]`);
    }
    return { host: node.host!, port: node.port! };
  });
  const options: RedisOptions = {};
  if (at !== -1) {
    let credentials: RedisOptions;
    try {
      credentials = redisOptionsFromUrl(`redis://${rest.slice(0, at)}@seed`);
    } catch {
      return fail('the user name or password is not valid percent-encoding');
    }
    if (credentials.username !== undefined) options.username = credentials.username;
    if (credentials.password !== undefined) options.password = credentials.password;
  }
  // Each node's name is checked against its own certificate (Node's default servername is the host it connects to).
  if (tls) options.tls = {};
  return { nodes, options };
}

/**
 * The URL with its password replaced by `***`, for error messages and logs. Works on strings that are not
 * valid URLs too (a password holding '/' or '#' breaks URL parsing, and those are exactly the strings that end
 * up in an error): everything between the first ':' after the scheme and the last '@' is the password.
 */
export function redactRedisUrl(url: string): string {
  const match = /^([A-Za-z][A-Za-z0-9+.-]*:\/\/)?(.*)@(.*)$/s.exec(url);
  if (!match) return url;
  const [, scheme = '', userinfo = '', rest = ''] = match;
  const colon = userinfo.indexOf(':');
  return colon === -1 ? url : `${scheme}${userinfo.slice(0, colon)}:***@${rest}`;
}

/**
 * The ioredis options {@link createRedis} uses: the URL's, the role's retry behaviour, credentials, and the
 * restricted-user switches. Pure, so the policy can be tested without a server.
 * @throws TypeError on an invalid URL (password redacted)
 */
export function redisConnectionOptions(url: string, opts: CreateRedisOptions): ConfideRedisOptions {
  const options: ConfideRedisOptions = redisOptionsFromUrl(url);
  // Capped low: a worker that retried just before the coordinator re-created its ACL user waits one more step, and
  // the whole recovery after a Redis restart should take seconds. The coordinator's own connection retries fastest.
  options.retryStrategy = reconnectBackoff({ maxMs: opts.role === 'producer' ? 1000 : 2000 });
  applyRole(options, opts);
  if (opts.role === 'producer') {
    // Fail fast: no command waits in the offline queue while Redis is down, so the HTTP layer can answer 503.
    options.enableOfflineQueue = false;
  }
  return options;
}

/**
 * The ioredis `Cluster` options {@link createRedis} uses for a `redis+cluster://` URL ({@link redisClusterFromUrl}):
 * the same policy as {@link redisConnectionOptions}, split between the cluster, which reconnects and queues (or, for
 * a producer, refuses) commands while no slot map is known, and its node connections (`redisOptions`: credentials,
 * retries per request, the restricted-user switches, and BullMQ's `skipVersionCheck`, which BullMQ reads there for a
 * cluster). A node connection keeps its offline queue: ioredis opens each one lazily on its first command. A
 * restricted user also skips the cluster's ready check, CLUSTER INFO, which participants are not granted (only
 * CLUSTER SLOTS is, libs/queue acl.ts).
 * @throws TypeError on an invalid URL (password redacted)
 */
export function redisClusterOptions(url: string, opts: CreateRedisOptions): { nodes: ClusterNode[]; options: ClusterOptions } {
  const { nodes, options: redisOptions } = redisClusterFromUrl(url);
  const restricted = applyRole(redisOptions, opts);
  return {
    nodes,
    options: {
      redisOptions,
      clusterRetryStrategy: reconnectBackoff({ maxMs: opts.role === 'producer' ? 1000 : 2000 }),
      enableOfflineQueue: opts.role === 'worker',
      enableReadyCheck: !restricted,
    },
  };
}

/**
 * Credentials, retries per request and the restricted-user switches, on one connection's options.
 * @returns whether the connection is restricted (a participant user)
 */
function applyRole(options: ConfideRedisOptions, opts: CreateRedisOptions): boolean {
  if (opts.username !== undefined) options.username = opts.username;
  if (opts.password !== undefined) options.password = opts.password;
  // Worker: BullMQ requires it for blocking connections: a command in flight during a reconnect waits for it
  // instead of failing after 20 retries and stalling the worker's fetch loop. Producer: a command sent just before a
  // disconnect is retried once, then fails, so the HTTP layer can answer 503 promptly.
  options.maxRetriesPerRequest = opts.role === 'worker' ? null : 1;
  const restricted = opts.restricted ?? opts.username !== undefined;
  if (restricted) {
    // INFO and CLIENT are not granted to participants. BullMQ's version check would fail on NOPERM; ioredis
    // shrugs it off on its INFO ready check (with a console warning) and on CLIENT SETINFO, but every refusal
    // lands in the server's ACL log, where real probing should stand out.
    options.enableReadyCheck = false;
    options.disableClientInfo = true;
    options.skipVersionCheck = true;
  } else if (opts.connectionName !== undefined) {
    options.connectionName = opts.connectionName;
  }
  return restricted;
}

/**
 * The delay before each reconnection attempt: exponential from `baseMs` to `maxMs`, with jitter (half to all of it),
 * so a fleet of workers does not hammer a Redis that is coming back. ioredis counts attempts only until a connection
 * opens, and a connection that opens and is dropped at once (its ACL user is gone until the coordinator re-creates
 * it) would then retry every 50 ms forever: attempts are counted here instead, as one outage while each comes
 * within `resetAfterMs` of the one before.
 */
export function reconnectBackoff({ baseMs = 100, maxMs = 2000, resetAfterMs = 15_000, random = Math.random, now = Date.now } = {}): () => number {
  let attempt = 0;
  let last = -Infinity;
  return () => {
    const at = now();
    attempt = at - last > resetAfterMs ? 1 : attempt + 1;
    last = at;
    const delay = Math.min(maxMs, baseMs * 2 ** Math.min(attempt - 1, 30));
    return Math.round(delay / 2 + (random() * delay) / 2);
  };
}

/**
 * Opens an ioredis connection for one role (see {@link RedisRole}): a `Cluster` for a `redis+cluster://` URL
 * ({@link redisClusterOptions}), else one server's `Redis` ({@link redisConnectionOptions}). Pass it to BullMQ as
 * `connection`, with the key prefix as BullMQ's `prefix` option, never as ioredis `keyPrefix` (BullMQ refuses that).
 * The caller owns the connection: attach an 'error' listener and `quit()` it on shutdown.
 * @throws TypeError on an invalid URL (password redacted)
 */
export function createRedis(url: string, opts: CreateRedisOptions): RedisClient {
  if (isRedisClusterUrl(url)) {
    const { nodes, options } = redisClusterOptions(url, opts);
    return new Cluster(nodes, options);
  }
  return new Redis(redisConnectionOptions(url, opts));
}

/** Whether a connection is an ioredis `Cluster`: read by shape (`isCluster`), so a copy of ioredis from another realm counts. */
export function isCluster(conn: RedisClient): conn is Cluster {
  return (conn as { isCluster?: unknown }).isCluster === true;
}

/**
 * The servers behind a connection, one connection to each: itself for one server; for a cluster, every node its slot
 * map names (`nodes('all')`: primaries and replicas, since ACL users and the `default` user's state are per node and a
 * replica becomes a primary at failover), or only the primaries (`'master'`), which hold the keys. Waits for the
 * cluster's slot map (up to `timeoutMs`) and opens each node's lazy connection.
 * @throws RedisUnavailableError when the cluster is not ready in time or knows no node
 */
export async function redisNodes(conn: RedisClient, role: 'all' | 'master' = 'all', timeoutMs = 5000): Promise<Redis[]> {
  if (!isCluster(conn)) return [conn];
  await redisReady(conn, timeoutMs);
  const nodes = conn.nodes(role);
  if (nodes.length === 0) throw new RedisUnavailableError('Redis Cluster: no node known');
  // A node connection another command is opening already is waited for by its offline queue.
  await Promise.all(nodes.map((node) => (node.status === 'wait' ? node.connect().catch(() => undefined) : Promise.resolve())));
  return nodes;
}

/**
 * True when PING answers PONG within `timeoutMs`; false on any error or timeout, never throws. Use a producer
 * connection: on a worker connection a PING sent while Redis is down waits in the offline queue (it is
 * settled later and ignored).
 */
export async function pingRedis(conn: { ping(): Promise<string> }, timeoutMs = 1000): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(resolve, timeoutMs, false);
  });
  try {
    const reply = conn.ping().then(
      (answer) => answer === 'PONG',
      () => false,
    );
    return await Promise.race([reply, timeout]);
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}

/** Redis cannot take a command now; the HTTP layer maps it to 503. */
export class RedisUnavailableError extends Error {
  override readonly name = 'RedisUnavailableError';
}

/** What ioredis and the sockets under it throw when Redis cannot be reached, as opposed to a command Redis refused. */
const OUTAGE_MESSAGES =
  /Stream isn't writeable|Connection is closed|connect ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|Reached the max retries per request limit|Cluster isn't ready|None of startup nodes is available|Failed to refresh slots cache|^CLUSTERDOWN|^TRYAGAIN/;

/**
 * Whether an error means Redis is unreachable for now (so a request should get 503 and be retried), rather than a
 * bug or a refused command: {@link RedisUnavailableError}, ioredis's MaxRetriesPerRequestError, an offline queue
 * that is off (`enableOfflineQueue: false` on the producer), a closed connection, or a socket error.
 */
export function isRedisOutage(err: unknown): boolean {
  if (err instanceof RedisUnavailableError) return true;
  // Read by shape, not instanceof: socket errors come from Node's own realm, which is not every caller's.
  if (typeof err !== 'object' || err === null) return false;
  const { name, message } = err as { name?: unknown; message?: unknown };
  return name === 'MaxRetriesPerRequestError' || name === 'RedisUnavailableError' || (typeof message === 'string' && OUTAGE_MESSAGES.test(message));
}

/**
 * Throws unless the connection is ready. Call it before `Queue.add` on a producer connection:
 * `enableOfflineQueue: false` makes commands fail fast once a connection has been up, but a BullMQ Queue whose
 * connection has not yet come up waits for it without a timeout (checked with bullmq 6.7), so an HTTP request
 * would hang instead of getting its 503.
 * @throws RedisUnavailableError with the connection's status
 */
export function assertRedisReady(conn: Pick<RedisClient, 'status'>): void {
  if (conn.status !== 'ready') throw new RedisUnavailableError(`Redis is not available (connection ${conn.status})`);
}

/** The ioredis statuses from which a connection comes up by itself, without a new connect(). */
const COMING_UP = new Set(['wait', 'connecting', 'connect', 'reconnecting']);

/**
 * Waits until the connection is ready, for at most `timeoutMs`: a request that arrives while its connection is
 * reconnecting (a blip, a Redis restart that is almost over) then goes through instead of failing the user.
 * @throws RedisUnavailableError when it is not ready in time, or closed for good
 */
export async function redisReady(conn: Pick<RedisClient, 'status' | 'once' | 'off'>, timeoutMs = 2000): Promise<void> {
  if (conn.status === 'ready') return;
  if (!COMING_UP.has(conn.status)) throw new RedisUnavailableError(`Redis is not available (connection ${conn.status})`);
  await new Promise<void>((resolve, reject) => {
    const onReady = (): void => {
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => {
      conn.off('ready', onReady);
      reject(new RedisUnavailableError(`Redis is not available (connection ${conn.status} for ${timeoutMs} ms)`));
    }, timeoutMs);
    conn.once('ready', onReady);
  });
}

/**
 * Runs a command on a producer connection, riding out a reconnection: when it fails because the connection is down
 * (it may have dropped between a readiness check and the write), waits up to `timeoutMs` for it and tries once more.
 * @throws RedisUnavailableError when Redis stays down; the command's own error otherwise
 */
export async function withRedis<T>(conn: Pick<RedisClient, 'status' | 'once' | 'off'>, command: () => Promise<T>, timeoutMs = 2000): Promise<T> {
  await redisReady(conn, timeoutMs);
  try {
    return await command();
  } catch (err) {
    if (!isRedisOutage(err)) throw err;
    await redisReady(conn, timeoutMs);
    return command();
  }
}

/**
 * Removes what one run left in Redis: every key under `<prefix>:` (SCAN + UNLINK in batches) and the given
 * ACL users. For the demo, benchmarks and tests, which share a Redis with others: nothing outside the
 * prefix and the list is touched. On a cluster, each primary is scanned for its own keys, each UNLINK names keys of
 * one hash tag only (a multi-key command must stay within one slot), and the users are deleted on every node.
 * @returns how many keys were removed
 */
export async function removeRunKeys(conn: RedisClient, prefix: string, users: readonly string[] = []): Promise<number> {
  assertKeyPrefix(prefix);
  let removed = 0;
  for (const node of await redisNodes(conn, 'master')) {
    let cursor = '0';
    do {
      const [next, keys] = await node.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      cursor = next;
      const bySlot = new Map<string, string[]>();
      for (const key of keys) bySlot.set(hashTagOf(key), [...(bySlot.get(hashTagOf(key)) ?? []), key]);
      for (const group of isCluster(conn) ? bySlot.values() : [keys]) if (group.length) removed += await node.unlink(...group);
    } while (cursor !== '0');
  }
  if (users.length) for (const node of await redisNodes(conn)) await node.call('ACL', 'DELUSER', ...users);
  return removed;
}
