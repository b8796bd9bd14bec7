import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, type WriteStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRedis, redisNodes, type RedisClient } from '@confide/queue';
import { Client } from 'pg';
import Database from 'better-sqlite3';
import { freePort, startLocalRedis, type LocalRedis } from '../../apps/cli/src/local-redis';

export { freePort };
import { CLI, ROOT, assertBuilt, runCli, singleJson, type RunResult } from './cli';
import { OutageProxy } from './redis';
import { startLocalRedisCluster, type LocalRedisCluster } from './redis-cluster';

/**
 * A whole Confide deployment for end-to-end tests, made of real processes as a user runs them: the
 * coordinator (`confide coordinator start`), participant workers (`confide participant run`), and the CLI
 * for every other step. A real Redis of its own, locked down as in production (a private redis-server whose
 * `default` user is off; the coordinator logs in as an administrator, each participant as its own user), and a
 * real database: embedded SQLite in a temp dir, or a fresh PostgreSQL database created for the run and dropped after.
 */

/** The machine's shared Redis, for tests that do not start a coordinator. */
export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
export const PG_ADMIN_URL = process.env.CONFIDE_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

export interface ClusterOptions {
  readonly database: 'sqlite' | 'postgres';
  readonly round1Seconds?: number;
  readonly round2Seconds?: number;
  /** Extra coordinator environment (e.g. CONFIDE_INVITE_TTL_SECONDS for expiry tests). */
  readonly env?: Readonly<Record<string, string>>;
  /** The cluster's Redis keeps an append-only file, so it comes back from {@link Cluster.restartRedis} with its data. */
  readonly appendOnly?: boolean;
  /** PostgreSQL only: the coordinator reaches it through a relay that {@link Cluster.restartDatabase} takes down. */
  readonly databaseProxy?: boolean;
  /** Run on a local 3-primary Redis Cluster (test/support/redis-cluster.ts) instead of one redis-server. */
  readonly redisCluster?: boolean;
}

/** A coordinator replica beside the cluster's own coordinator (issue 15): same database, Redis, prefix and keys. */
export interface ReplicaProcess {
  readonly name: string;
  readonly url: string;
  readonly process: ChildProcess;
}

export interface ParticipantProcess {
  readonly name: string;
  readonly home: string;
  readonly participantId: string;
  process: ChildProcess | undefined;
}

/** A TCP port free on loopback right now. */

/**
 * Polls `probe` until it returns a value, or fails after `timeoutMs` naming what it waited for (STYLE.md: poll
 * with a deadline, never a fixed long sleep). A probe that throws counts as "not yet" when `tolerant`.
 */
export async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>, opts: { intervalMs?: number; tolerant?: boolean } = {}): Promise<T> {
  const { intervalMs = 100, tolerant = true } = opts;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = tolerant ? await probe().catch(() => undefined) : await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export class Cluster {
  readonly dir: string;
  readonly prefix: string;
  readonly adminToken = `e2e-admin-${randomBytes(18).toString('base64url')}`;
  url = '';
  private port = 0;
  databaseUrl: string | undefined;
  private coordinator: ChildProcess | undefined;
  private readonly logs: WriteStream[] = [];
  readonly participants: ParticipantProcess[] = [];
  readonly replicas: ReplicaProcess[] = [];
  private pgDatabase: string | undefined;
  private redis!: LocalRedis;
  private databaseRelay: OutageProxy | undefined;

  private constructor(readonly options: ClusterOptions) {
    this.dir = mkdtempSync(join(tmpdir(), 'confide-e2e-'));
    this.prefix = `confide-e2e-${randomBytes(5).toString('hex')}`;
  }

  /** Starts a coordinator on a fresh database and waits for /health. */
  static async start(options: ClusterOptions): Promise<Cluster> {
    assertBuilt();
    const c = new Cluster(options);
    c.redis = options.redisCluster ? await startLocalRedisCluster() : await startLocalRedis({ appendOnly: options.appendOnly });
    if (options.database === 'postgres') {
      c.pgDatabase = `confide_e2e_${randomBytes(5).toString('hex')}`;
      const admin = new Client({ connectionString: PG_ADMIN_URL });
      await admin.connect();
      await admin.query(`CREATE DATABASE ${c.pgDatabase}`);
      await admin.end();
      const u = new URL(PG_ADMIN_URL);
      u.pathname = `/${c.pgDatabase}`;
      if (options.databaseProxy) {
        c.databaseRelay = new OutageProxy(u.hostname, Number(u.port || 5432));
        await c.databaseRelay.up();
        u.hostname = '127.0.0.1';
        u.port = String(c.databaseRelay.port);
      }
      c.databaseUrl = u.toString();
    }
    await c.startCoordinator();
    return c;
  }

  /** This cluster's Redis as its administrator (the coordinator's REDIS_URL): for tests that inspect or tamper with it. */
  get redisUrl(): string {
    return this.redis.adminUrl;
  }

  /** The local Redis Cluster this deployment runs on (started with `redisCluster: true`). */
  get redisNodes(): LocalRedisCluster {
    if (!('ports' in this.redis)) throw new Error('this deployment runs on one redis-server, not a Redis Cluster');
    return this.redis as LocalRedisCluster;
  }

  /** This cluster's Redis without credentials, as participants are given it. */
  get publicRedisUrl(): string {
    return this.redis.publicUrl;
  }

  /** The environment the coordinator runs with. */
  coordinatorEnv(port: number): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      PORT: String(port),
      REDIS_URL: this.redis.adminUrl,
      CONFIDE_PUBLIC_REDIS_URL: this.redis.publicUrl,
      CONFIDE_ADMIN_TOKEN: this.adminToken,
      CONFIDE_DATA_DIR: join(this.dir, 'coordinator'),
      CONFIDE_QUEUE_PREFIX: this.prefix,
      CONFIDE_ROUND1_SECONDS: String(this.options.round1Seconds ?? 30),
      CONFIDE_ROUND2_SECONDS: String(this.options.round2Seconds ?? 30),
      LOG_LEVEL: 'debug',
      ...this.options.env,
    };
    delete env.DATABASE_URL;
    if (this.databaseUrl) env.DATABASE_URL = this.databaseUrl;
    return env;
  }

  private logFile(name: string): WriteStream {
    const s = createWriteStream(join(this.dir, `${name}.log`), { flags: 'a' });
    this.logs.push(s);
    return s;
  }

  /** (Re)starts the coordinator process, with `env` added to its environment for this run (a failpoint, say). */
  async startCoordinator(env: Readonly<Record<string, string>> = {}): Promise<void> {
    // A restarted coordinator comes back at the same address, as behind a load balancer: clients keep their URL.
    const port = this.port || (await freePort());
    this.port = port;
    const child = spawn(process.execPath, [CLI, 'coordinator', 'start', '--port', String(port)], { cwd: ROOT, env: { ...this.coordinatorEnv(port), ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    const log = this.logFile('coordinator');
    child.stdout.pipe(log, { end: false });
    child.stderr.pipe(log, { end: false });
    this.coordinator = child;
    this.url = `http://127.0.0.1:${port}`;
    await until('coordinator /health', 30_000, async () => ((await fetch(`${this.url}/health`)).ok ? true : undefined));
  }

  /**
   * Starts another `confide coordinator start` over the same PostgreSQL database, Redis, queue prefix and data
   * directory (the coordinator's keys, which every replica signs with), on its own port, logging to
   * `coordinator-<name>.log`. Start it after the cluster's coordinator, which creates the keys.
   */
  async startReplica(name: string, env: Readonly<Record<string, string>> = {}): Promise<ReplicaProcess> {
    if (!this.databaseUrl) throw new Error('replicas share one PostgreSQL: start the cluster with database: postgres');
    const port = await freePort();
    const child = spawn(process.execPath, [CLI, 'coordinator', 'start', '--port', String(port)], { cwd: ROOT, env: { ...this.coordinatorEnv(port), ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    const log = this.logFile(`coordinator-${name}`);
    child.stdout.pipe(log, { end: false });
    child.stderr.pipe(log, { end: false });
    const replica: ReplicaProcess = { name, url: `http://127.0.0.1:${port}`, process: child };
    this.replicas.push(replica);
    await until(`replica ${name} /health`, 30_000, async () => ((await fetch(`${replica.url}/health`)).ok ? true : undefined));
    return replica;
  }

  /** Stops a replica (SIGKILL by default, as a crash) and waits for it to be gone. */
  async stopReplica(replica: ReplicaProcess, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = replica.process;
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill(signal);
    await exited;
  }

  /** What one process logged so far, by its log file's name (`coordinator`, `coordinator-<replica>`). */
  logOf(name: string): string {
    try {
      return readFileSync(join(this.dir, `${name}.log`), 'utf8');
    } catch {
      return '';
    }
  }

  /** Waits for the coordinator to exit by itself (a failpoint's crash): its exit signal, or code. */
  coordinatorExit(timeoutMs: number): Promise<string> {
    const child = this.coordinator;
    if (!child) return Promise.resolve('not running');
    if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(String(child.signalCode ?? child.exitCode));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the coordinator did not exit within ${timeoutMs} ms`)), timeoutMs);
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        resolve(String(signal ?? code));
      });
    });
  }

  /** Kills the cluster's Redis (SIGKILL), as a crash. */
  killRedis(): Promise<void> {
    return this.redis.kill();
  }

  /** Starts the cluster's Redis again, same port and configuration; with `appendOnly`, with the data it had. */
  restartRedis(): Promise<void> {
    return this.redis.restart();
  }

  /** Takes the database away for `downMs` (every connection dropped, new ones refused), then brings it back. */
  async restartDatabase(downMs: number): Promise<void> {
    if (!this.databaseRelay) throw new Error('restartDatabase needs a cluster started with database: postgres and databaseProxy: true');
    await this.databaseRelay.down();
    await new Promise((r) => setTimeout(r, downMs));
    await this.databaseRelay.up();
  }

  /** Takes the database away (every connection dropped, new ones refused) until {@link databaseUp}. */
  async databaseDown(): Promise<void> {
    if (!this.databaseRelay) throw new Error('databaseDown needs a cluster started with database: postgres and databaseProxy: true');
    await this.databaseRelay.down();
  }

  /** Brings the database back after {@link databaseDown}. */
  async databaseUp(): Promise<void> {
    await this.databaseRelay?.up();
  }

  /** Stops the coordinator (SIGTERM, or SIGKILL) and waits for it to exit. */
  async stopCoordinator(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    const child = this.coordinator;
    if (!child || child.exitCode !== null) return child?.exitCode ?? null;
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    child.kill(signal);
    return exited;
  }

  /** Runs the built CLI against this coordinator (or the replica at `url`) with the given token (admin by default). */
  cli(args: readonly string[], token: string | null = this.adminToken, timeoutMs = 90_000, url = this.url): Promise<RunResult> {
    const env: NodeJS.ProcessEnv = { CONFIDE_URL: url, REDIS_URL: this.redis.adminUrl };
    if (token) env.CONFIDE_TOKEN = token;
    return runCli(args, { env, timeoutMs });
  }

  /** Runs a CLI command with --json that must succeed, and returns its one JSON object. */
  async cliJson(args: readonly string[], token: string | null = this.adminToken): Promise<Record<string, unknown>> {
    const r = await this.cli([...args, '--json'], token);
    if (r.code !== 0) throw new Error(`confide ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
    return singleJson(r.stdout);
  }

  /** Creates a study from a schema object; returns its name. */
  async createStudy(schema: { name: string }): Promise<string> {
    const file = join(this.dir, `study-${schema.name}.json`);
    writeFileSync(file, JSON.stringify(schema));
    await this.cliJson(['admin', 'study', 'create', '--file', file]);
    return schema.name;
  }

  /** A one-time invitation token for a participant name. */
  async invite(study: string, participant: string): Promise<string> {
    return String((await this.cliJson(['admin', 'invite', '--study', study, '--participant', participant])).token);
  }

  /** A new API key with this role. */
  async apiKey(role: 'researcher' | 'auditor' | 'admin'): Promise<string> {
    return String((await this.cliJson(['admin', 'keys', 'create', '--role', role])).token);
  }

  /**
   * A researcher as a paillier user is set up: an identity key made by `confide keys researcher` in its own file,
   * bound by the admin to a new researcher API key (`admin keys create --identity`).
   */
  async researcher(name = 'researcher'): Promise<{ token: string; keyId: string; identityFile: string; fingerprint: string }> {
    const identityFile = join(this.dir, `${name}-identity.pem`);
    const made = await this.cliJson(['keys', 'researcher', '--out', identityFile], null);
    // With '=': a base64url key may begin with '-', which a separate argument would read as an option.
    const key = await this.cliJson(['admin', 'keys', 'create', '--role', 'researcher', `--identity=${String(made.publicKey)}`]);
    return { token: String(key.token), keyId: String(key.id), identityFile, fingerprint: String(made.fingerprint) };
  }

  /** Invites and enrolls a participant with its CSV (keys generated in its own home), without starting it. */
  async enroll(study: string, name: string, csvFile: string): Promise<ParticipantProcess> {
    const home = join(this.dir, 'homes', name);
    const token = await this.invite(study, name);
    const out = await this.cliJson(['participant', 'enroll', '--invite', token, '--home', home, '--data', csvFile, '--accept-settings'], null);
    const p: ParticipantProcess = { name, home, participantId: String(out.participantId), process: undefined };
    this.participants.push(p);
    return p;
  }

  /**
   * Takes on a participant enrolled outside this harness (by docker/participant.sh, say) from its home, so that
   * stop() removes its Redis user like the others'. Its worker process stays the caller's to stop.
   */
  adopt(name: string, home: string): ParticipantProcess {
    const identity = JSON.parse(readFileSync(join(home, 'identity.json'), 'utf8')) as { participantId: string };
    const p: ParticipantProcess = { name, home, participantId: identity.participantId, process: undefined };
    this.participants.push(p);
    return p;
  }

  /** Starts a participant's worker process (`confide participant run`) and waits until it is connected. */
  async run(p: ParticipantProcess, env: Readonly<Record<string, string>> = {}): Promise<void> {
    const child = spawn(process.execPath, [CLI, 'participant', 'run', '--home', p.home], { cwd: ROOT, env: { ...process.env, LOG_LEVEL: 'debug', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    const log = this.logFile(`participant-${p.name}`);
    child.stdout.pipe(log, { end: false });
    let ready = false;
    child.stderr.on('data', (d: Buffer) => {
      log.write(d);
      if (d.toString().includes('worker ready')) ready = true;
    });
    p.process = child;
    await until(`participant ${p.name} to be ready`, 20_000, () => Promise.resolve(ready ? true : child.exitCode !== null ? Promise.reject(new Error(`participant ${p.name} exited`)) : undefined));
  }

  /** Kills a participant's worker (SIGKILL by default, as a crash) and waits for it to be gone. */
  async kill(p: ParticipantProcess, signal: NodeJS.Signals = 'SIGKILL'): Promise<number | null> {
    const child = p.process;
    if (!child || child.exitCode !== null || child.signalCode !== null) return child?.exitCode ?? null;
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    child.kill(signal);
    const code = await exited;
    p.process = undefined;
    return code;
  }

  /** GET a coordinator route with a token. */
  async get<T>(path: string, token: string = this.adminToken): Promise<T> {
    const res = await fetch(`${this.url}${path}`, { headers: { authorization: `Bearer ${token}` } });
    if (!res.ok) throw new Error(`GET ${path}: HTTP ${res.status} ${await res.text()}`);
    return (await res.json()) as T;
  }

  /** Polls a query until it leaves "running". */
  waitForQuery(id: string, token: string, timeoutMs = 60_000): Promise<Record<string, unknown>> {
    return until(`query ${id} to finish`, timeoutMs, async () => {
      const q = await this.get<Record<string, unknown>>(`/v1/queries/${id}`, token);
      return q.status === 'running' ? undefined : q;
    });
  }

  /** Polls a query until it reaches a round (e.g. round 2 means round 1 closed). */
  waitForRound(id: string, token: string, round: number, timeoutMs = 60_000): Promise<Record<string, unknown>> {
    return until(`query ${id} to reach round ${round}`, timeoutMs, async () => {
      const q = await this.get<Record<string, unknown>>(`/v1/queries/${id}`, token);
      return Number(q.round) >= round || q.status !== 'running' ? q : undefined;
    });
  }

  /** Every Redis key under this cluster's prefix with its value(s), as text, for confidentiality scans. */
  async redisDump(): Promise<string> {
    const conn = await this.adminConnection();
    const parts: string[] = [];
    try {
      // On a Redis Cluster each primary holds some of the keys: every one is scanned.
      for (const r of await redisNodes(conn, 'master')) {
        let cursor = '0';
        do {
          const [next, keys] = await r.scan(cursor, 'MATCH', `${this.prefix}:*`, 'COUNT', 1000);
          cursor = next;
          for (const key of keys) {
            const type = await r.type(key);
            let value: unknown;
            if (type === 'string') value = await r.get(key);
            else if (type === 'hash') value = await r.hgetall(key);
            else if (type === 'list') value = await r.lrange(key, 0, -1);
            else if (type === 'set') value = await r.smembers(key);
            else if (type === 'zset') value = await r.zrange(key, 0, -1, 'WITHSCORES');
            else if (type === 'stream') value = await r.xrange(key, '-', '+');
            parts.push(`${key} ${JSON.stringify(value)}`);
          }
        } while (cursor !== '0');
      }
    } finally {
      conn.disconnect();
    }
    return parts.join('\n');
  }

  /**
   * The job ids of the `completed` entries (each with its job's return value) in every BullMQ events stream under
   * this cluster's prefix.
   */
  async completedInStreams(): Promise<string[]> {
    const conn = await this.adminConnection();
    const jobIds: string[] = [];
    try {
      for (const r of await redisNodes(conn, 'master')) {
        let cursor = '0';
        do {
          const [next, keys] = await r.scan(cursor, 'MATCH', `${this.prefix}:*:events`, 'COUNT', 1000);
          cursor = next;
          for (const key of keys) {
            if ((await r.type(key)) !== 'stream') continue;
            for (const [, fields] of await r.xrange(key, '-', '+')) {
              const at = (name: string): string | undefined => fields[fields.indexOf(name) + 1];
              if (at('event') === 'completed' && at('jobId') !== undefined) jobIds.push(at('jobId')!);
            }
          }
        } while (cursor !== '0');
      }
    } finally {
      conn.disconnect();
    }
    return jobIds;
  }

  /** A connection to this deployment's Redis (or Redis Cluster) as its administrator, ready; the caller disconnects it. */
  private async adminConnection(): Promise<RedisClient> {
    const conn = createRedis(this.redis.adminUrl, { role: 'worker' });
    conn.on('error', () => undefined);
    if (conn.status !== 'ready') await new Promise((resolve) => conn.once('ready', resolve));
    return conn;
  }

  /** Every row of every table of the coordinator's database, as text. */
  async databaseDump(): Promise<string> {
    const tables = ['studies', 'participants', 'invitations', 'api_keys', 'queries', 'rounds', 'contributions', 'partial_decryptions', 'dispatches', 'events'];
    if (this.databaseUrl) {
      const client = new Client({ connectionString: this.databaseUrl });
      await client.connect();
      try {
        const out: string[] = [];
        for (const t of tables) out.push(`${t} ${JSON.stringify((await client.query(`SELECT * FROM ${t}`)).rows)}`);
        return out.join('\n');
      } finally {
        await client.end();
      }
    }
    const db = new Database(join(this.dir, 'coordinator', 'confide.sqlite'), { readonly: true });
    try {
      return tables.map((t) => `${t} ${JSON.stringify(db.prepare(`SELECT * FROM ${t}`).all())}`).join('\n');
    } finally {
      db.close();
    }
  }

  /** Everything every process of the cluster logged so far. */
  logText(): string {
    return readdirSync(this.dir)
      .filter((f) => f.endsWith('.log'))
      .map((f) => readFileSync(join(this.dir, f), 'utf8'))
      .join('\n');
  }

  /** Stops every process and removes the Redis keys and users, the database and the temp dir. */
  async stop(): Promise<void> {
    await Promise.allSettled(this.participants.map((p) => this.kill(p, 'SIGTERM')));
    await Promise.allSettled(this.replicas.map((r) => this.stopReplica(r, 'SIGTERM')));
    await this.stopCoordinator('SIGTERM').catch(() => undefined);
    for (const s of this.logs) s.end();
    // The Redis is this cluster's own: stopping it removes every key and user.
    await this.redis?.stop();
    await this.databaseRelay?.down();
    if (this.pgDatabase) {
      const admin = new Client({ connectionString: PG_ADMIN_URL });
      await admin.connect();
      await admin.query(`DROP DATABASE IF EXISTS ${this.pgDatabase} WITH (FORCE)`);
      await admin.end();
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
