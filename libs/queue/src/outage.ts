import { isRedisOutage } from './redis';

/**
 * What a process says when a server it depends on (Redis, the database) cannot be reached: one line when the outage
 * starts, naming the server, its URL without credentials and what to check; a reminder while it lasts; one line when
 * it is back. The coordinator, its aggregation workers and the participant worker all report through this, so an
 * operator reads the same three lines wherever they look, and never a reconnect storm.
 */

/**
 * The URL without its credentials: no `user:password@`, no `password=` query parameter (libpq accepts one), for logs
 * and messages: everything between the scheme and the last '@' goes. Works on strings that are not valid URLs too (a
 * password holding '/' or '#' breaks URL parsing, and those are exactly the strings that end up in an error). A string
 * with no scheme is returned as it is.
 */
export function withoutCredentials(url: string): string {
  // The last '@' ends the credentials whether or not the string parses: a URL parser would split an unescaped
  // password at its first '/' and keep the rest as a path.
  const match = /^([A-Za-z][A-Za-z0-9+.-]*:\/\/)(.*)@([^@]*)$/s.exec(url);
  const stripped = match ? `${match[1]}${match[3]}` : url;
  try {
    const parsed = new URL(stripped);
    if (!parsed.searchParams.has('password')) return stripped;
    parsed.searchParams.delete('password');
    return parsed.toString();
  } catch {
    return stripped;
  }
}

/** The logger an outage is reported with (pino's signature). */
export interface OutageLogger {
  warn(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  debug?(obj: object, msg: string): void;
}

/** Options of {@link OutageReporter}. */
export interface OutageReporterOptions {
  /** What is down, as the first word of its lines: `Redis`, `database`. */
  readonly dependency: string;
  /** Which part of this process depends on it (`coordinator`, `task queue`), in parentheses. */
  readonly what: string;
  /** Where it was looked for; shown without credentials ({@link withoutCredentials}). */
  readonly url: string;
  /** What the operator should check, e.g. `is redis-server running at …? is REDIS_URL right?` */
  readonly checks: string;
  /** How often a reminder is logged while the outage lasts. */
  readonly remindEveryMs?: number;
  /** How long it must stay up to count as back (a login refused at once is not "back"). */
  readonly settleMs?: number;
  /** Log at debug only: another process reports the same outage (a coordinator for the aggregators it forked). */
  readonly quiet?: boolean;
  readonly now?: () => number;
}

/** One outage of one dependency, as {@link OutageReporter.state} describes it. */
export interface OutageState {
  readonly state: 'up' | 'down';
  /** When the outage started (ms since the epoch), when down. */
  readonly since?: number;
}

/** The first line of an error's message, short: what failed, never a stack. */
function describe(cause: unknown): string {
  if (cause === undefined) return 'the connection closed';
  const message = cause instanceof Error ? cause.message || ((cause as { code?: string }).code ?? '') : typeof cause === 'string' ? cause : '';
  const line = message.split('\n', 1)[0]!.trim();
  return line.length > 200 ? `${line.slice(0, 200)}…` : line || 'the connection closed';
}

/** `42 s`, `3 min`, `2 h 5 min`. */
export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  const min = Math.floor(s / 60);
  if (min < 60) return `${min} min`;
  return `${Math.floor(min / 60)} h ${min % 60} min`;
}

/**
 * Reports the outages of one dependency of one process: {@link lost} as often as failures come (every retry), and
 * {@link restored} when it answers again; the lines are one per outage (plus a reminder every `remindEveryMs`).
 */
export class OutageReporter {
  private downSince: number | null = null;
  private cause = '';
  private reminder?: NodeJS.Timeout;
  private settle?: NodeJS.Timeout;
  private stopped = false;
  private readonly backListeners: (() => void)[] = [];
  readonly url: string;
  private readonly now: () => number;

  constructor(
    private readonly logger: OutageLogger,
    private readonly options: OutageReporterOptions,
  ) {
    this.url = withoutCredentials(options.url);
    this.now = options.now ?? Date.now;
  }

  /** Whether an outage is under way. */
  get down(): boolean {
    return this.downSince !== null;
  }

  get state(): OutageState {
    return this.downSince === null ? { state: 'up' } : { state: 'down', since: this.downSince };
  }

  /** A failure to reach the dependency: starts an outage (one line) unless one is under way; cancels a pending "back". */
  lost(cause?: unknown): void {
    clearTimeout(this.settle);
    this.settle = undefined;
    if (this.stopped || this.downSince !== null) return;
    this.downSince = this.now();
    this.cause = describe(cause);
    const { dependency, what, checks } = this.options;
    this.log('warn', { cause: this.cause }, `${dependency} unreachable at ${this.url} (${what}): ${this.cause}. Check: ${checks} Retrying with backoff.`);
    const every = this.options.remindEveryMs ?? 60_000;
    this.reminder = setInterval(() => {
      const downMs = this.now() - (this.downSince ?? this.now());
      this.log('warn', { cause: this.cause, downMs }, `${dependency} still unreachable at ${this.url} (${what}) after ${formatDuration(downMs)}: ${this.cause}. Check: ${checks}`);
    }, every);
    this.reminder.unref();
  }

  /** The dependency answered: the outage ends (one line) once it has stayed up for `settleMs` without a new failure. */
  restored(): void {
    if (this.stopped || this.downSince === null || this.settle) return;
    const settleMs = this.options.settleMs ?? 1000;
    this.settle = setTimeout(() => {
      this.settle = undefined;
      if (this.stopped || this.downSince === null) return;
      const downMs = this.now() - this.downSince - settleMs;
      this.downSince = null;
      clearInterval(this.reminder);
      this.log('info', { downMs }, `${this.options.dependency} is back at ${this.url} (${this.options.what}) after ${formatDuration(downMs)}`);
      for (const listener of this.backListeners) listener();
    }, settleMs);
    this.settle.unref();
  }

  /**
   * Calls `listener` each time an outage ends (when "is back" is said): what waited for the dependency can go on at
   * once instead of at its next timer.
   */
  whenBack(listener: () => void): void {
    this.backListeners.push(listener);
  }

  /** No more lines: the process is stopping and closes its connections on purpose. */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.settle);
    clearInterval(this.reminder);
  }

  private log(level: 'warn' | 'info', fields: object, msg: string): void {
    const obj = { dependency: this.options.dependency.toLowerCase(), url: this.url, what: this.options.what, ...fields };
    if (this.options.quiet) this.logger.debug?.(obj, msg);
    else this.logger[level](obj, msg);
  }
}

/** An ioredis connection as an {@link OutageMonitor} follows it. */
export interface WatchedConnection {
  readonly status: string;
  on(event: 'error', listener: (err: Error) => void): unknown;
  on(event: 'close' | 'ready' | 'end', listener: () => void): unknown;
}

/** Anything with an 'error' event: a BullMQ Queue, Worker or QueueEvents. */
export interface ErrorEmitter {
  on(event: 'error', listener: (err: Error) => void): unknown;
}

/** Options of {@link OutageMonitor}: the {@link OutageReporterOptions} but the dependency (Redis) and the checks. */
export type OutageMonitorOptions = Omit<OutageReporterOptions, 'dependency' | 'checks'> & { readonly checks?: string };

/** Errors a Redis login gets while its user is being re-created after a restart: part of the outage, not news. */
const LOGIN_REFUSED = /NOAUTH|WRONGPASS|NOPERM/;

/**
 * Every Redis connection of one process, reported as one dependency: the connections it opens ({@link watch}) and
 * the BullMQ objects over them ({@link listen}: a Worker's or QueueEvents' own duplicated connections report through
 * their object). Each gets an 'error' listener, so ioredis never prints `[ioredis] Unhandled error event` stacks;
 * errors that belong to an outage go to debug and start the outage's one line; Redis is back when every watched
 * connection is ready again and stays so.
 */
export class OutageMonitor {
  readonly reporter: OutageReporter;
  private readonly connections = new Map<WatchedConnection, string>();
  private lastError: unknown;

  constructor(
    private readonly logger: OutageLogger,
    options: OutageMonitorOptions,
  ) {
    const url = withoutCredentials(options.url);
    this.reporter = new OutageReporter(logger, { checks: `is redis-server running at ${url}? is REDIS_URL right?`, ...options, dependency: 'Redis' });
  }

  /** Follows one connection: its errors, and when it is lost, ready, or closed for good. */
  watch(conn: WatchedConnection, name = 'connection'): this {
    this.connections.set(conn, name);
    conn.on('error', (err) => {
      // The cause of the outage line, if the connection closes next (a refused connect: 'error', then 'close').
      this.lastError = err;
      this.error(err, name);
    });
    conn.on('close', () => this.reporter.lost(this.lastError));
    conn.on('ready', () => {
      this.lastError = undefined;
      if ([...this.connections.keys()].every((c) => c.status === 'ready')) this.reporter.restored();
    });
    conn.on('end', () => this.connections.delete(conn));
    return this;
  }

  /** Routes a BullMQ object's errors here. */
  listen(emitter: ErrorEmitter, name: string): this {
    emitter.on('error', (err) => this.error(err, name));
    return this;
  }

  /**
   * One error from a connection, a BullMQ object or a caller: an outage's go to debug, others are logged. An outage
   * itself starts only when a watched connection closes: a socket error from elsewhere (a refused database
   * connection looks the same) is no proof that Redis is down.
   */
  error(err: unknown, name: string): void {
    const message = err instanceof Error ? err.message : String(err);
    if (this.quiet(err)) this.logger.debug?.({ connection: name, err: message }, 'Redis error during an outage');
    else this.logger.warn({ connection: name, err: message }, `Redis error (${name}): ${message}`);
  }

  /** Whether an outage is under way. */
  get down(): boolean {
    return this.reporter.down;
  }

  /** True for an error that belongs to an outage (already reported once), so it need not be logged again. */
  quiet(err: unknown): boolean {
    const message = err instanceof Error ? err.message : String(err);
    return this.down || isRedisOutage(err) || LOGIN_REFUSED.test(message);
  }

  /** Each watched connection by name with its ioredis status (`ready`, `reconnecting`, …), for /health. */
  states(): { name: string; state: string }[] {
    return [...this.connections].map(([conn, name]) => ({ name, state: conn.status }));
  }

  /** No more lines: the connections are being closed on purpose. */
  stop(): void {
    this.reporter.stop();
  }
}
