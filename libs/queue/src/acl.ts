import { createHash, randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { assertKeyPrefix, assertQueueName, completionsKey, taskPartPattern } from './names';
import { redisNodes, type RedisClient } from './redis';

/**
 * Redis ACL users for participants (DESIGN.md "Storage and services"): each participant's worker
 * authenticates as its own user, which can run a BullMQ Worker on its own queue's keys and nothing else.
 *
 * The rules are an allowlist of commands, not `+@all -@dangerous`. Key patterns only bind commands that name
 * keys; a keyless command reaches the whole keyspace whatever the pattern, and several are outside @dangerous:
 * SCAN and RANDOMKEY list every key (redis/redis#8152, valkey-io/valkey#370), CLIENT TRACKING ... BCAST
 * pushes the name of every key anyone modifies, SCRIPT FLUSH and FUNCTION FLUSH act on every client, and
 * CLIENT SETNAME lets a user pose as another participant's worker in CLIENT LIST (Queue.getWorkers). All of
 * these are allowed by `~<prefix>:<queue>:* +@all -@dangerous +info` (checked on Redis 7.0: SCAN and
 * CLIENT TRACKING handed participant A the key names, i.e. the job ids, of participant B's queue).
 *
 * Redis keeps ACL users in memory only: the coordinator stores each participant's password hash and runs
 * {@link participantAclSetUserArgs} for all of them whenever its admin connection becomes ready.
 *
 * On a Redis Cluster every node keeps its own users (ACL SETUSER is not propagated), so each function here acts on
 * every node the cluster's slot map names, replicas included (a replica becomes a primary at failover).
 */

/**
 * Every command a participant may run. All but the keyless ones below are checked against the key pattern,
 * including when a Lua script calls them.
 *   - called by BullMQ 6.7's Lua scripts (test/integration/queue-acl.int-spec.ts reads the installed scripts
 *     and fails when a BullMQ upgrade calls a command missing here);
 *   - called by BullMQ directly on a queue's keys: `bzpopmin` (the worker's blocking fetch), `xread`
 *     (QueueEvents), hash/list/sorted-set reads for Job and Queue getters;
 *   - keyless: `eval`/`evalsha` (ioredis runs BullMQ's scripts by EVALSHA and falls back to EVAL on NOSCRIPT;
 *     a script's own calls are still checked against these rules), `multi`/`exec` (Queue getters), `time`
 *     (scripts), `ping` (health check), `select` (a REDIS_URL with a database number).
 *   - Redis Cluster, keyless: `cluster|slots`, the one CLUSTER subcommand ioredis's `Cluster` runs, to learn which
 *     node serves which slot (it tells node addresses, which every client is redirected to anyway; no key, no other
 *     client); `asking`, which ioredis sends before retrying a command on the node an ASK redirect names while a
 *     slot migrates (it lets the next command reach a slot being imported; the key pattern still applies). On a
 *     Redis without cluster mode both only answer an error.
 * Not granted, and not needed by a Worker: INFO (skip BullMQ's version check, see `restricted` in createRedis),
 * CLIENT (ioredis ignores a refused CLIENT SETNAME/SETINFO; on a cluster, the connection ioredis opens to read
 * CLUSTER SLOTS always names itself, so each slot-map refresh leaves one CLIENT SETNAME refusal in the ACL log), any
 * pub/sub, CLUSTER INFO (the cluster's ready check, off for restricted users), every other CLUSTER subcommand
 * (CLUSTER NODES and SHARDS would do as SLOTS does but are not used; CLUSTER GETKEYSINSLOT and COUNTKEYSINSLOT would
 * list or count other participants' keys), READONLY/READWRITE (ioredis reads from primaries only; it ignores a
 * refused READWRITE after a failover).
 */
export const PARTICIPANT_COMMANDS: readonly string[] = [
  // keyless
  'eval', 'evalsha', 'exec', 'multi', 'ping', 'select', 'time',
  // keyless, Redis Cluster
  'asking', 'cluster|slots',
  // generic key commands
  'del', 'exists', 'persist', 'pexpire', 'pexpireat', 'pttl', 'rename', 'type', 'unlink',
  // strings
  'get', 'incr', 'incrby', 'set',
  // hashes
  'hdel', 'hexists', 'hget', 'hgetall', 'hincrby', 'hlen', 'hmget', 'hmset', 'hscan', 'hset',
  // lists
  'lindex', 'llen', 'lpop', 'lpos', 'lpush', 'lrange', 'lrem', 'lset', 'ltrim', 'rpop', 'rpoplpush', 'rpush',
  // sets
  'sadd', 'scard', 'sismember', 'smembers', 'srem', 'sscan',
  // sorted sets
  'bzpopmin', 'zadd', 'zcard', 'zcount', 'zlexcount', 'zpopmin', 'zrange', 'zrangebylex', 'zrangebyscore', 'zrem',
  'zremrangebyrank', 'zremrangebyscore', 'zrevrange', 'zrevrangebyscore', 'zscore',
  // streams
  'xadd', 'xdel', 'xlen', 'xrange', 'xread', 'xtrim',
];

/**
 * The only keys a participant's user may touch: its queue's (`<prefix>:<queue>:*`). The queue name is a hash tag,
 * `{participant.<id>}`; Redis patterns treat `{` and `}` as plain characters (only `*`, `?`, `[…]` and `\` are
 * special, and assertKeyPrefix/assertQueueName refuse those), so the pattern covers exactly the keys that begin with
 * `<prefix>:{participant.<id>}:`, which no other queue's keys do.
 */
export function participantKeyPattern(prefix: string, queue: string): string {
  assertKeyPrefix(prefix);
  assertQueueName(queue);
  return `${prefix}:${queue}:*`;
}

/**
 * A participant user's permissions, without its name or password: its queue's keys, no pub/sub channel, and
 * exactly {@link PARTICIPANT_COMMANDS}; then one selector (Redis 7) that allows XADD, and nothing else, on the
 * completion stream where workers say a task finished (completions.ts), write-only (`%W~`). So a participant
 * appends notices and cannot read the stream (other participants' job ids) nor delete or trim it (others'
 * notices): the commands granted on its own queue's keys do not reach this key, as each grant holds only with its
 * own key pattern. A second selector lets it read its study's shared task parts ({@link partsSelector}).
 * `resetchannels` is explicit because `reset` grants every channel when the server's
 * acl-pubsub-default is allchannels (the default before Redis 7).
 * @throws TypeError if the prefix or queue name could widen the key pattern
 */
export function participantAclRules(prefix: string, queue: string, studyId: string): string[] {
  return [`~${participantKeyPattern(prefix, queue)}`, 'resetchannels', '-@all', ...PARTICIPANT_COMMANDS.map((c) => `+${c}`), completionsSelector(prefix), partsSelector(prefix, studyId)];
}

/**
 * The ACL selector that lets a participant GET its study's shared task parts (task-refs.ts) and do nothing else with
 * them, read-only (`%R~`): no write, no delete, no other study's parts (their keys carry the study id).
 */
export function partsSelector(prefix: string, studyId: string): string {
  return `(%R~${taskPartPattern(prefix, studyId)} resetchannels -@all +get)`;
}

/** The ACL selector that lets a participant append to the completion stream and do nothing else with it. */
export function completionsSelector(prefix: string): string {
  return `(%W~${completionsKey(prefix)} resetchannels -@all +xadd)`;
}

/**
 * A fresh Redis password: 32 random bytes (node:crypto) as base64url, 43 characters. Give it to the participant
 * once; keep only {@link hashRedisPassword} of it.
 */
export function generateRedisPassword(): string {
  return randomBytes(32).toString('base64url');
}

/** SHA-256 hex of a password: the form ACL SETUSER accepts as `#<hash>` and ACL GETUSER shows. */
export function hashRedisPassword(password: string): string {
  if (password.length < 32) throw new TypeError('a participant Redis password must have at least 32 characters (use generateRedisPassword)');
  return createHash('sha256').update(password, 'utf8').digest('hex');
}

/** Who a participant user is and what it may reach. */
export interface ParticipantUser {
  readonly username: string;
  readonly prefix: string;
  readonly queue: string;
  /** The participant's study: its user may read that study's shared task parts. */
  readonly studyId: string;
}

/** The credential: the password itself (at enrolment), or its stored hash (re-provisioning at boot). */
export type ParticipantCredential = { readonly password: string } | { readonly passwordHash: string };

/**
 * The arguments of `ACL SETUSER <username> ...` that make the user exactly a participant: `reset` (drop every
 * earlier password, pattern and permission), `on`, `#<sha256 of the password>`, then
 * {@link participantAclRules}. Holds no plaintext password, so the coordinator can keep these (or just the
 * hash) and re-run them for every participant after a Redis restart.
 * @throws TypeError on a reserved or malformed username, a malformed hash, or a prefix/queue that could widen
 *   the key pattern
 */
export function participantAclSetUserArgs(user: ParticipantUser & { readonly passwordHash: string }): string[] {
  assertParticipantUsername(user.username);
  if (!/^[0-9a-f]{64}$/.test(user.passwordHash)) throw new TypeError('passwordHash must be 64 lowercase hex digits (hashRedisPassword)');
  return [user.username, 'reset', 'on', `#${user.passwordHash}`, ...participantAclRules(user.prefix, user.queue, user.studyId)];
}

/**
 * Creates or replaces a participant's Redis user (ACL SETUSER, one atomic command per node; on a cluster, on every
 * node). Replacing resets every earlier rule and password first, so this also rotates a password and moves a user to
 * another queue. Only the SHA-256 of the password is sent to Redis. A failure part way through a cluster leaves some
 * nodes done: calling it again finishes the job (SETUSER with `reset` is idempotent).
 * @throws TypeError on invalid input; Error when Redis refuses (e.g. NOPERM: `admin` is not an admin), with
 *   any password or hash removed from the message and no cause attached (ioredis errors carry the command's
 *   arguments)
 */
export async function provisionParticipantUser(admin: RedisClient, user: ParticipantUser & ParticipantCredential): Promise<void> {
  const passwordHash = 'password' in user ? hashRedisPassword(user.password) : user.passwordHash;
  const args = participantAclSetUserArgs({ username: user.username, prefix: user.prefix, queue: user.queue, studyId: user.studyId, passwordHash });
  try {
    for (const node of await redisNodes(admin)) await node.call('ACL', 'SETUSER', ...args);
  } catch (err) {
    const secrets = 'password' in user ? [user.password, passwordHash] : [passwordHash];
    // eslint-disable-next-line preserve-caught-error -- an ioredis ReplyError carries the command's arguments (the hash)
    throw new Error(`ACL SETUSER for participant user ${user.username} failed: ${scrub(errorMessage(err), secrets)}`);
  }
}

/**
 * Deletes a participant's Redis user (on a cluster, from every node). Redis also closes every connection
 * authenticated as it, so a running worker is cut off at once, not only kept from reconnecting.
 * @returns whether the user existed (on any node)
 * @throws TypeError on a reserved or malformed username; Error when Redis refuses
 */
export async function revokeParticipantUser(admin: RedisClient, username: string): Promise<boolean> {
  assertParticipantUsername(username);
  let existed = false;
  for (const node of await redisNodes(admin)) if ((await node.call('ACL', 'DELUSER', username)) === 1) existed = true;
  return existed;
}

/**
 * Participant usernames: 1–100 of [A-Za-z0-9_.-], never `default` (resetting it would lock every
 * password-less client out, the coordinator's own admin connection included).
 */
export function assertParticipantUsername(username: string): void {
  if (!/^[A-Za-z0-9_.-]{1,100}$/.test(username)) throw new TypeError(`Redis username must be 1–100 of [A-Za-z0-9_.-], got ${JSON.stringify(username)}`);
  if (username === 'default') throw new TypeError('the Redis default user cannot be a participant user');
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function scrub(text: string, secrets: readonly string[]): string {
  return secrets.reduce((out, secret) => out.split(secret).join('***'), text);
}

/**
 * Redis's `default` user is open when it is on, needs no password and may run commands: every connection that
 * does not AUTH runs as it, so a participant could skip its own ACL user (and its key pattern) simply by not
 * authenticating. Parses ACL GETUSER's flat reply (`flags`, `passwords`, `commands`, …).
 */
export function isOpenDefaultUser(getUserReply: unknown): boolean {
  if (!Array.isArray(getUserReply)) return false;
  const fields = new Map<string, unknown>();
  for (let i = 0; i + 1 < getUserReply.length; i += 2) fields.set(String(getUserReply[i]), getUserReply[i + 1]);
  const flags = Array.isArray(fields.get('flags')) ? (fields.get('flags') as unknown[]).map(String) : [];
  const commands = fields.get('commands');
  return flags.includes('on') && flags.includes('nopass') && !(typeof commands === 'string' && commands.trim() === '-@all');
}

/** Why the coordinator will not start on this Redis. */
export class RedisSecurityError extends Error {
  override readonly name = 'RedisSecurityError';
}

/**
 * Makes sure no Redis client can act without credentials (DESIGN.md "Storage and services": each participant is
 * limited to its own queue). When the `default` user is open ({@link isOpenDefaultUser}), a coordinator connected
 * as a named administrator switches it off (`ACL SETUSER default off`) and says so; one that is itself connected as
 * `default` cannot, and refuses to start. On a cluster, on every node: one open node is a way around every ACL user.
 * @returns whether it switched the default user off (on any node)
 * @throws RedisSecurityError when the default user is open and the coordinator runs as it
 */
export async function secureDefaultUser(admin: RedisClient): Promise<{ switchedOff: boolean }> {
  let switchedOff = false;
  for (const node of await redisNodes(admin)) if ((await secureNodeDefaultUser(node)).switchedOff) switchedOff = true;
  return { switchedOff };
}

async function secureNodeDefaultUser(admin: Pick<Redis, 'call'>): Promise<{ switchedOff: boolean }> {
  if (!isOpenDefaultUser(await admin.call('ACL', 'GETUSER', 'default'))) return { switchedOff: false };
  const me = String(await admin.call('ACL', 'WHOAMI'));
  if (me === 'default') {
    throw new RedisSecurityError(
      "Redis's default user has no password, so any participant could skip its own ACL user. Give the coordinator an administrator user " +
        '(REDIS_URL=redis://USER:PASSWORD@host:port, e.g. ACL SETUSER confide-admin on >PASSWORD ~* &* +@all) and it will switch default off, ' +
        'or set a password on default (requirepass) and put it in REDIS_URL.',
    );
  }
  await admin.call('ACL', 'SETUSER', 'default', 'off');
  return { switchedOff: true };
}
