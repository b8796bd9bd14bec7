import { randomBytes } from 'node:crypto';

/**
 * Queue and job names, and the ids Confide gives queries, participants and jobs: built and read back here only
 * (STYLE.md "Every wire convention has one owner"). NEVER RENAME: a renamed queue strands every job already in
 * Redis, and the names are also baked into each participant's Redis ACL (STYLE.md "Queues").
 *
 * Every queue name is a Redis Cluster hash tag, `{…}` (README "Redis Cluster"): BullMQ's keys are
 * `<prefix>:<queue>:<suffix>` and its Lua scripts touch several keys of one queue at once, which a cluster allows only
 * within one hash slot. Redis hashes only the text inside the first `{…}` of a key, so each queue's keys share one
 * slot while different participants' queues spread over the cluster's slots. (The one rename so far, from
 * `participant.<id>` to `{participant.<id>}`: the coordinator re-provisions every ACL user and re-sends every open
 * round's tasks at boot, and a participant worker derives its queue from its id, so an upgrade in place carries
 * in-flight queries over; the old keys can be deleted.)
 */

/** Default key prefix; every Redis key Confide writes starts with `<prefix>:`. Tests use a unique one. */
export const DEFAULT_PREFIX = 'confide';

/**
 * Checks a BullMQ key prefix. It becomes part of every key and of each participant's ACL key pattern
 * (`~<prefix>:<queue>:*`), so it may hold no ':' (prefix "confide:participant.a" would put its keys inside
 * participant a's pattern) and no glob character (`*?[]\`), which would widen the pattern. Nor `{` or `}`: Redis
 * Cluster hashes the first `{…}` of a key, so a hash tag in the prefix would put every queue in one slot.
 * @throws TypeError naming the rule
 */
export function assertKeyPrefix(prefix: string): void {
  if (!/^[A-Za-z0-9_.-]{1,100}$/.test(prefix)) throw new TypeError(`key prefix must be 1–100 of [A-Za-z0-9_.-], got ${JSON.stringify(prefix)}`);
}

/**
 * Checks a queue name for the same reasons as {@link assertKeyPrefix} (BullMQ itself only forbids ':'): 1–200 of
 * [A-Za-z0-9_.-], optionally wrapped whole in one hash tag `{…}` as {@link participantQueue} makes them. Braces
 * anywhere else are refused: `a{b}` or `{a}{b}` would still parse as a tag, but two names that hash alike by accident
 * are better ruled out than reasoned about. `{` and `}` are not glob characters in Redis patterns (only `*?[]\` are),
 * so a tagged name in an ACL pattern matches itself only.
 * @throws TypeError naming the rule
 */
export function assertQueueName(queue: string): void {
  if (!/^(\{[A-Za-z0-9_.-]{1,198}\}|[A-Za-z0-9_.-]{1,200})$/.test(queue)) {
    throw new TypeError(`queue name must be 1–200 of [A-Za-z0-9_.-], optionally as one {hash tag}, got ${JSON.stringify(queue)}`);
  }
}

/**
 * The Redis Cluster hash tag of a key: the text inside its first `{…}` when that is not empty, else the whole key (the
 * Redis Cluster specification, "Hash tags"). Keys with the same tag are in the same slot.
 */
export function hashTagOf(key: string): string {
  const open = key.indexOf('{');
  if (open === -1) return key;
  const close = key.indexOf('}', open + 1);
  return close === -1 || close === open + 1 ? key : key.slice(open + 1, close);
}

/** Query ids: "q" + 24 hex digits, safe inside Redis keys, job ids and ACL patterns. */
export const newQueryId = (): string => `q${randomBytes(12).toString('hex')}`;
/** Participant ids: "p" + 24 hex digits. */
export const newParticipantId = (): string => `p${randomBytes(12).toString('hex')}`;

/**
 * The participant id of an enrolling signing key: "p" + the first 24 hex digits of its fingerprint (libs/crypto
 * keyFingerprint), the same form as {@link newParticipantId}. A participant knows its id before it enrolls, so it
 * writes its whole home before the coordinator commits anything, and a retry with the same keys is the same
 * participant.
 * @throws TypeError when the fingerprint is not 64 lowercase hex digits
 */
export function participantIdOf(signingKeyFingerprint: string): string {
  if (!/^[0-9a-f]{64}$/.test(signingKeyFingerprint)) throw new TypeError('a signing key fingerprint is 64 lowercase hex digits');
  return `p${signingKeyFingerprint.slice(0, 24)}`;
}

// The ids above, as job ids embed them. Only these make a job id readable back: `<query>-r<round>-<participant>`
// with any id parts is ambiguous once a query id holds "-r1-" (taskJobId accepts such ids, which tests use).
const QUERY_ID = 'q[0-9a-f]{24}';
const PARTICIPANT_ID = 'p[0-9a-f]{24}';

/**
 * One task queue per participant: the coordinator adds tasks, only that participant's worker takes them. A hash tag
 * of its own, so its keys stay in one Redis Cluster slot and participants spread over the slots.
 */
export function participantQueue(participantId: string): string {
  assertIdPart(participantId, 'participant id');
  return `{participant.${participantId}}`;
}

/**
 * The stream through which workers say "a task of mine finished" (libs/queue completions.ts): one key for every
 * participant, which each may append to and none may read (the ACL's write-only pattern, acl.ts), and which the
 * coordinator reads with one blocking XREAD, whatever the number of participants.
 */
export const COMPLETIONS_STREAM = 'coordinator.completions';

/** The Redis key of {@link COMPLETIONS_STREAM} under a key prefix. */
export function completionsKey(prefix: string): string {
  assertKeyPrefix(prefix);
  return `${prefix}:${COMPLETIONS_STREAM}`;
}

/**
 * Where a study's shared task parts live (task-refs.ts): one key per part, named by its SHA-256, under the study's own
 * hash tag, so a participant's ACL can let it read its study's parts and no other study's (acl.ts partsSelector).
 */
export function taskPartKey(prefix: string, studyId: string, hash: string): string {
  assertKeyPrefix(prefix);
  assertIdPart(studyId, 'study id');
  if (!/^[0-9a-f]{64}$/.test(hash)) throw new TypeError(`a task part's hash must be 64 lowercase hex digits, got ${JSON.stringify(hash)}`);
  return `${prefix}:{study.${studyId}}:part:${hash}`;
}

/** The key pattern of a study's task parts, as a participant's ACL lets it read them (acl.ts). */
export function taskPartPattern(prefix: string, studyId: string): string {
  assertKeyPrefix(prefix);
  assertIdPart(studyId, 'study id');
  return `${prefix}:{study.${studyId}}:part:*`;
}

/** The coordinator's own queue of round deadlines (delayed jobs) and "check this round now" nudges. */
export const CONTROL_QUEUE = '{coordinator.control}';

/** Job names on a participant queue. */
export const TASK = {
  shamirRound1: 'shamir.round1',
  shamirRound2: 'shamir.round2',
  paillierContribute: 'paillier.contribute',
} as const;
export type TaskName = (typeof TASK)[keyof typeof TASK];

/**
 * The round each task kind answers: shamir's two rounds, paillier's one contribution round. The round is part of
 * the task's job id (taskJobId) and of the participant's stored answer, so it must never change for a kind.
 */
export const TASK_ROUND = {
  [TASK.shamirRound1]: 1,
  [TASK.shamirRound2]: 2,
  [TASK.paillierContribute]: 1,
} as const satisfies Record<TaskName, number>;
export type TaskRound = (typeof TASK_ROUND)[TaskName];

/** The round a task of this kind belongs to ({@link TASK_ROUND}). */
export function roundOf(kind: TaskName): TaskRound {
  return TASK_ROUND[kind];
}

const TASK_ROUNDS: ReadonlySet<number> = new Set(Object.values(TASK_ROUND));

/**
 * The coordinator's Paillier aggregation queue: CPU-heavy checking and multiplying of ciphertexts, taken by
 * aggregation workers in processes of their own (never the HTTP process), one job per query.
 */
export const AGGREGATION_QUEUE = '{coordinator.aggregation}';

/** Job name on the aggregation queue. */
export const AGGREGATE = 'paillier.aggregate';

/** Deterministic id of a query's aggregation job. */
export function aggregationJobId(queryId: string): string {
  assertIdPart(queryId, 'query id');
  return `${queryId}-aggregate`;
}

const AGGREGATION_JOB_ID = new RegExp(`^(${QUERY_ID})-aggregate$`);

/**
 * Reads an aggregation job id ({@link aggregationJobId}) back.
 * @returns its query, or undefined for an id Confide did not make (a query id not made by {@link newQueryId})
 */
export function parseAggregationJobId(jobId: string): { queryId: string } | undefined {
  const m = AGGREGATION_JOB_ID.exec(jobId);
  return m ? { queryId: m[1]! } : undefined;
}

/** Job names on the control queue. */
export const CONTROL = {
  deadline: 'round.deadline',
} as const;

/**
 * Deterministic job ids (`<query>-r<round>-<participant>`), so a retried dispatch never doubles work and the
 * coordinator can always find an answer by id. BullMQ forbids ':' in custom ids and all-digit ids.
 */
export function taskJobId(queryId: string, round: number, participantId: string): string {
  assertIdPart(queryId, 'query id');
  assertRound(round);
  assertIdPart(participantId, 'participant id');
  return `${queryId}-r${round}-${participantId}`;
}

const TASK_JOB_ID = new RegExp(`^(${QUERY_ID})-r([0-9]+)-(${PARTICIPANT_ID})$`);

/**
 * Reads a task job id ({@link taskJobId}) back into its parts.
 * @returns undefined for an id Confide did not make: ids not made by {@link newQueryId} and {@link newParticipantId},
 *   or a round no task kind has ({@link TASK_ROUND})
 */
export function parseTaskJobId(jobId: string): { queryId: string; round: TaskRound; participantId: string } | undefined {
  const m = TASK_JOB_ID.exec(jobId);
  const round = Number(m?.[2]);
  return m && TASK_ROUNDS.has(round) && m[2] === String(round) ? { queryId: m[1]!, round: round as TaskRound, participantId: m[3]! } : undefined;
}

/**
 * The query a task or aggregation job belongs to, read from its id (an entry of a queue's events stream names only
 * its job).
 * @returns undefined for an id Confide did not make (as {@link parseTaskJobId} and {@link parseAggregationJobId})
 */
export function queryOfJob(jobId: string): string | undefined {
  return (parseTaskJobId(jobId) ?? parseAggregationJobId(jobId))?.queryId;
}

/** Deterministic id of a round's deadline job (round 0: the wait for a shamir query's committee nonce). */
export function deadlineJobId(queryId: string, round: number): string {
  assertIdPart(queryId, 'query id');
  if (round !== 0) assertRound(round);
  return `${queryId}-r${round}-deadline`;
}

// A round that is not a positive integer ("NaN", "1.5", "-1") would still make an id, but not one a retry of the
// same dispatch reproduces, and "-1" makes the id ambiguous.
function assertRound(round: number): void {
  if (!Number.isSafeInteger(round) || round < 1) throw new TypeError(`round must be a positive integer, got ${round}`);
}

/** Ids that become part of Redis keys and ACL patterns: letters, digits, '-' and '_' only. */
export function assertIdPart(value: string, what: string): void {
  if (!/^[A-Za-z0-9_-]{1,100}$/.test(value)) throw new TypeError(`${what} must be 1–100 of [A-Za-z0-9_-], got ${JSON.stringify(value)}`);
}
