import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import { CompiledQuery, Kysely, Migrator, PostgresDialect, sql, SqliteDialect, type SqliteDatabase as KyselySqlite, type SqliteStatement } from 'kysely';
import { Pool, types as pgTypes, type CustomTypesConfig } from 'pg';
import { migrationProvider, type Dialect } from './migrations';
import type { Tables } from './schema';

/**
 * Opens the coordinator's database (DESIGN.md "Storage and services"): PostgreSQL when a URL is
 * configured, otherwise an embedded SQLite file. Both go through one Kysely query layer and one set of
 * migrations, run at open.
 */

export type { Dialect } from './migrations';

/** Where the database lives. */
export interface DatabaseConfig {
  /** A postgres:// or postgresql:// URL; when unset, SQLite is used. */
  readonly url?: string;
  /** The directory holding `confide.sqlite` (created with mode 0700 if missing). Unused with PostgreSQL. */
  readonly dataDir: string;
  /**
   * PostgreSQL only: a schema to create if missing and use as the whole search_path, so that tests can
   * run in isolation. Lower-case letters, digits and _ only.
   */
  readonly schema?: string;
  /**
   * PostgreSQL only: called when an idle pooled connection fails (say the server restarted). The pool
   * has already discarded the connection and the next query opens a new one; without a listener Node
   * would treat the pool's `error` event as an uncaught exception and exit.
   */
  readonly onIdleConnectionError?: (error: Error) => void;
}

/** An open database. */
export interface Database {
  readonly db: Kysely<Tables>;
  readonly dialect: Dialect;
  /** Closes the pool or the SQLite file; safe to call more than once. */
  close(): Promise<void>;
}

/** The SQLite file's name inside the data directory. */
export const SQLITE_FILE = 'confide.sqlite';

const POSTGRES_URL = /^postgres(ql)?:\/\//;
const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/**
 * node-postgres returns int8 (bigint) as a string, because not every int8 fits a JS number. Every int8
 * here is a ms timestamp, an event index or a count, so parse it to a number, and refuse (rather than
 * round) one beyond 2^53. Passed to this pool only: the process-wide `pg.types` stays untouched.
 */
function parseInt8(text: string): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n)) throw new RangeError(`int8 value ${text} does not fit a JavaScript number exactly`);
  return n;
}

const getTypeParser: CustomTypesConfig['getTypeParser'] = (oid, format): ((value: string) => unknown) | ((value: Buffer) => unknown) =>
  oid === pgTypes.builtins.INT8 && format !== 'binary' ? parseInt8 : (pgTypes.getTypeParser(oid, format) as (value: string) => unknown);

/**
 * Opens the database and brings its schema up to date.
 * @param config `url` selects PostgreSQL (a pg Pool, int8 read as numbers); without it SQLite opens
 *   `<dataDir>/confide.sqlite` with WAL, foreign keys and a 5 s busy timeout
 * @throws Error when the URL is not a postgres:// URL (the URL is not repeated: it may hold a password),
 *   when `schema` is malformed or given for SQLite, or when connecting or migrating fails (as `cause`)
 */
export async function openDatabase(config: DatabaseConfig): Promise<Database> {
  const dialect: Dialect = config.url === undefined ? 'sqlite' : 'postgres';
  if (config.url !== undefined && !POSTGRES_URL.test(config.url)) {
    throw new Error('the database URL must start with postgres:// or postgresql://');
  }
  if (config.schema !== undefined) {
    if (dialect === 'sqlite') throw new Error('a database schema can only be set for PostgreSQL');
    if (!SCHEMA_NAME.test(config.schema)) throw new Error('the database schema name must match [a-z_][a-z0-9_]{0,62}');
  }
  const db = dialect === 'postgres' ? openPostgres(config) : openSqlite(config.dataDir);
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => (closing ??= db.destroy());
  try {
    await migrate(db, dialect, config.schema);
  } catch (error) {
    await close();
    throw new Error('could not open and migrate the database', { cause: error });
  }
  return { db, dialect, close };
}

function openPostgres(config: DatabaseConfig): Kysely<Tables> {
  const pool = new Pool({ connectionString: config.url, types: { getTypeParser } });
  pool.on('error', (error) => config.onIdleConnectionError?.(error));
  // A connection lost while checked out (PostgreSQL restarted mid-query) emits 'error' on its client, where pg-pool
  // listens only while it is idle: without this, the process would die of an unhandled 'error' event. The query in
  // flight fails on its own (the request gets 503, a transition retries), and the pool drops the client.
  pool.on('connect', (client) => client.on('error', (error) => config.onIdleConnectionError?.(error)));
  const schema = config.schema;
  return new Kysely<Tables>({
    dialect: new PostgresDialect({
      pool,
      // Per connection, before its first query: every later statement resolves table names in the schema.
      onCreateConnection:
        schema === undefined
          ? undefined
          : async (connection) => {
              await connection.executeQuery(CompiledQuery.raw(`create schema if not exists "${schema}"`));
              await connection.executeQuery(CompiledQuery.raw(`set search_path to "${schema}"`));
            },
    }),
  });
}

function openSqlite(dataDir: string): Kysely<Tables> {
  // The directory holds the coordinator's secrets-adjacent state (key fingerprints, API key hashes).
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const database = new SqliteDatabase(join(dataDir, SQLITE_FILE));
  try {
    database.pragma('journal_mode = WAL');
    database.pragma('foreign_keys = ON');
    database.pragma('busy_timeout = 5000');
  } catch (error) {
    database.close();
    throw error;
  }
  return new Kysely<Tables>({ dialect: new SqliteDialect({ database: withStatementCache(database) }) });
}

/** How many SQL texts keep their prepared statement: the coordinator runs a few hundred shapes. */
const STATEMENT_CACHE_SIZE = 1000;

/**
 * The SQLite database as Kysely's SQLite driver takes it, with prepared statements kept by SQL text. The driver
 * prepares every statement it runs, and preparing costs about three times what running a small indexed query does:
 * under load it was 7% of the coordinator's CPU (bench/soak.bench.ts, docs/BENCHMARKS.md "Soak"). A statement is
 * only reused by all() and run(), which finish before they return, so no two uses overlap; SQLite re-prepares a
 * statement by itself when the schema changes. iterate() (Kysely's stream()) gets a statement of its own, so that an
 * iterator left open never makes a cached statement busy. At most `size` statements are kept, the least recently
 * used dropped first.
 */
export function withStatementCache(database: KyselySqlite, size = STATEMENT_CACHE_SIZE): KyselySqlite {
  const cache = new Map<string, SqliteStatement>();
  return {
    close() {
      cache.clear();
      database.close();
    },
    prepare(text: string): SqliteStatement {
      const cached = cache.get(text) ?? database.prepare(text);
      // Map keeps insertion order: re-inserting makes this the most recently used, the first key the least.
      cache.delete(text);
      if (cache.size >= size) cache.delete(cache.keys().next().value!);
      cache.set(text, cached);
      return {
        reader: cached.reader,
        all: (parameters) => cached.all(parameters),
        run: (parameters) => cached.run(parameters),
        iterate: (parameters) => database.prepare(text).iterate(parameters),
      };
    },
  };
}

async function migrate(db: Kysely<Tables>, dialect: Dialect, schema: string | undefined): Promise<void> {
  // Kysely's Migrator, given no schema, looks for its bookkeeping tables in every schema it can see, so a
  // kysely_migration table in another schema of the same database would fool it. Pin it to ours.
  let migrationTableSchema: string | undefined;
  if (dialect === 'postgres') {
    const { rows } = await sql<{ schema: string | null }>`select current_schema() as schema`.execute(db);
    migrationTableSchema = rows[0]?.schema ?? undefined;
    if (migrationTableSchema === undefined) throw new Error('no schema on the PostgreSQL search_path exists');
    if (schema !== undefined && migrationTableSchema !== schema) throw new Error(`search_path resolved to ${migrationTableSchema}, not ${schema}`);
  }
  const migrator = new Migrator({ db, provider: migrationProvider(dialect), migrationTableSchema });
  const { error, results } = await migrator.migrateToLatest();
  if (error !== undefined) {
    const failed = results?.find((r) => r.status === 'Error')?.migrationName;
    throw new Error(failed === undefined ? 'migration failed' : `migration ${failed} failed`, { cause: error });
  }
}

/** PostgreSQL SQLSTATEs of a server going away or not accepting connections yet (class 08, and 57P01–57P03). */
const PG_OUTAGE_CODES = new Set(['08000', '08001', '08003', '08004', '08006', '57P01', '57P02', '57P03']);

/**
 * Whether an error means the database cannot be reached for now (so a request should get 503 and be retried): a
 * refused or dropped connection, a server shutting down or starting up, SQLite's busy lock outlasting its timeout.
 */
export function isDatabaseOutage(err: unknown): boolean {
  // Read by shape, not instanceof: socket errors come from Node's own realm, which is not every caller's.
  if (typeof err !== 'object' || err === null) return false;
  const { code, message } = err as { code?: unknown; message?: unknown };
  if (typeof code === 'string' && (PG_OUTAGE_CODES.has(code) || code === 'SQLITE_BUSY' || code === 'ECONNREFUSED' || code === 'ECONNRESET')) return true;
  return typeof message === 'string' && /Connection terminated|terminating connection|Client has encountered a connection error and is not queryable|the database system is (starting up|shutting down)|connect ECONNREFUSED/.test(message);
}
