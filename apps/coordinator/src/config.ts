import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { z } from 'zod';
import { REDIS_URL_SCHEMES, withoutCredentials } from '@confide/queue';

/**
 * The coordinator's configuration, validated once at boot (STYLE.md "Config"). Every variable is in the
 * README's configuration table. Errors name the variable, never its value: some are secrets.
 */
const positiveSeconds = (fallback: number) => z.coerce.number().int().min(1).max(7 * 24 * 3600).default(fallback);

const envSchema = z.object({
  PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  HOST: z.string().min(1).default('127.0.0.1'),
  DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\//, 'must be a postgres:// URL')
    .optional(),
  REDIS_URL: z.string().regex(REDIS_URL_SCHEMES, 'must be a redis://, rediss://, redis+cluster:// or rediss+cluster:// URL').default('redis://127.0.0.1:6379'),
  CONFIDE_PUBLIC_REDIS_URL: z.string().regex(REDIS_URL_SCHEMES, 'must be a redis://, rediss://, redis+cluster:// or rediss+cluster:// URL').optional(),
  CONFIDE_ADMIN_TOKEN: z.string().min(24, 'must be at least 24 characters'),
  CONFIDE_DATA_DIR: z.string().min(1).default('./data'),
  CONFIDE_QUEUE_PREFIX: z.string().regex(/^[A-Za-z0-9_-]{1,40}$/, 'letters, digits, - and _ only').default('confide'),
  CONFIDE_ROUND1_SECONDS: positiveSeconds(120),
  CONFIDE_ROUND2_SECONDS: positiveSeconds(120),
  CONFIDE_INVITE_TTL_SECONDS: positiveSeconds(7 * 24 * 3600),
  CONFIDE_DECRYPTION_SECONDS: positiveSeconds(3600),
  CONFIDE_AGGREGATORS: z.coerce.number().int().min(0).max(64).default(1),
  CONFIDE_SWEEP_SECONDS: positiveSeconds(30),
  CONFIDE_ONLINE_SECONDS: positiveSeconds(45),
  /** How long a replica's lease on a query holds without renewal: a replica that dies loses its queries after it. */
  CONFIDE_LEASE_SECONDS: positiveSeconds(10),
  /** How often a replica renews its leases, takes free ones and looks at its queries' deadlines. */
  CONFIDE_LEASE_RENEW_SECONDS: positiveSeconds(1),
  /** This process's name in the leases table and its logs (default: host name, process id and a random suffix). */
  CONFIDE_REPLICA_ID: z.string().regex(/^[A-Za-z0-9_.:-]{1,64}$/, 'letters, digits, ., :, - and _ only, at most 64').optional(),
  /** Test only: crash or fail at named points (orchestration/failpoints.ts). */
  CONFIDE_FAILPOINT: z.string().optional(),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

export interface CoordinatorConfig {
  readonly port: number;
  readonly host: string;
  readonly databaseUrl: string | undefined;
  readonly redisUrl: string;
  /** The Redis address participants are told to use (defaults to REDIS_URL without its credentials). */
  readonly publicRedisUrl: string;
  readonly adminToken: string;
  readonly dataDir: string;
  readonly queuePrefix: string;
  readonly round1Seconds: number;
  readonly round2Seconds: number;
  readonly inviteTtlSeconds: number;
  /** How long a paillier researcher has to post the decryption once the aggregate is ready. */
  readonly decryptionSeconds: number;
  /** Paillier aggregation worker processes this coordinator forks (0: run them with `confide coordinator aggregate`). */
  readonly aggregators: number;
  /** How often the sweep that ends every query by its deadline runs; also its grace past a deadline. */
  readonly sweepSeconds: number;
  /** A participant is online when seen within this many seconds (workers send a heartbeat every 15 s) and not stopped since. */
  readonly onlineSeconds: number;
  /** A query lease's duration (CONFIDE_LEASE_SECONDS), in ms. */
  readonly leaseMs: number;
  /** How often leases are renewed and free ones taken (CONFIDE_LEASE_RENEW_SECONDS), in ms. */
  readonly leaseRenewMs: number;
  /** This replica's id in the leases table (CONFIDE_REPLICA_ID, or a new one per process). */
  readonly replicaId: string;
  /** Test only: CONFIDE_FAILPOINT, the fault points armed (orchestration/failpoints.ts). */
  readonly failpoint: string | undefined;
  readonly logLevel: z.infer<typeof envSchema>['LOG_LEVEL'];
}

/** Thrown at boot for a missing or invalid variable; the message names each variable and the rule. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/** Reads and validates the coordinator's environment. @throws ConfigError naming every bad variable */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): CoordinatorConfig {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
    throw new ConfigError(`invalid configuration:\n  ${problems.join('\n  ')}`);
  }
  const e = parsed.data;
  // A lease renewed less than twice per duration lapses at the first slow renewal, and its queries change hands.
  if (e.CONFIDE_LEASE_RENEW_SECONDS * 2 >= e.CONFIDE_LEASE_SECONDS) {
    throw new ConfigError('invalid configuration:\n  CONFIDE_LEASE_RENEW_SECONDS: must be less than half of CONFIDE_LEASE_SECONDS');
  }
  return {
    port: e.PORT,
    host: e.HOST,
    databaseUrl: e.DATABASE_URL,
    redisUrl: e.REDIS_URL,
    publicRedisUrl: e.CONFIDE_PUBLIC_REDIS_URL ?? withoutCredentials(e.REDIS_URL),
    adminToken: e.CONFIDE_ADMIN_TOKEN,
    dataDir: e.CONFIDE_DATA_DIR,
    queuePrefix: e.CONFIDE_QUEUE_PREFIX,
    round1Seconds: e.CONFIDE_ROUND1_SECONDS,
    round2Seconds: e.CONFIDE_ROUND2_SECONDS,
    inviteTtlSeconds: e.CONFIDE_INVITE_TTL_SECONDS,
    decryptionSeconds: e.CONFIDE_DECRYPTION_SECONDS,
    aggregators: e.CONFIDE_AGGREGATORS,
    sweepSeconds: e.CONFIDE_SWEEP_SECONDS,
    onlineSeconds: e.CONFIDE_ONLINE_SECONDS,
    leaseMs: e.CONFIDE_LEASE_SECONDS * 1000,
    leaseRenewMs: e.CONFIDE_LEASE_RENEW_SECONDS * 1000,
    replicaId: e.CONFIDE_REPLICA_ID ?? `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`,
    failpoint: e.CONFIDE_FAILPOINT,
    logLevel: e.LOG_LEVEL,
  };
}
