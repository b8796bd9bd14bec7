import { UnrecoverableError } from 'bullmq';
import { z } from 'zod';
import { signMessage, verifyMessage, type KeyPair, type PublicKey } from '@confide/crypto';
import {
  ledgerEvidenceSchema,
  ledgerValue,
  paillierContributionSchema,
  paillierPlanSchema,
  planSchema,
  privacySettingsSchema,
  round1BundleSchema,
  round1ClosedSchema,
  round1DeliverySchema,
  round2ResultSchema,
  viewUpdateSchema,
} from '@confide/protocol';
import { TASK } from './names';

/**
 * Payloads of every job Confide puts in Redis: one discriminated union per direction with a lookup type,
 * so producer and processor share one compile-time contract (STYLE.md "Queues"). Every task is signed by
 * the coordinator; every answer carries the participant's own protocol signature.
 */

const id = z.string().regex(/^[A-Za-z0-9_-]{1,100}$/);
const b64u = z.string().regex(/^[A-Za-z0-9_-]+$/);

/** A participant's registered public keys as a task carries them (base64url of the raw 32 bytes). */
export const directoryEntrySchema = z.strictObject({ id, encryptionKey: b64u, signingKey: b64u });
export type DirectoryEntry = z.infer<typeof directoryEntrySchema>;

/**
 * A query as carried to participants: statistics, filters, grouping and the effective privacy settings, exactly
 * what its hash covers (libs/protocol queryHash). Only its outline is checked here; the participant checks the
 * hash against the ledger and the privacy against its pinned settings, and its statistics compiler (libs/protocol
 * compileQuery) validates every part against its own copy of the study schema before it reads a record.
 */
export const querySpecSchema = z.strictObject({
  select: z.array(z.looseObject({ stat: z.string().min(1).max(40) })).min(1).max(100),
  where: z.array(z.looseObject({ field: z.string().min(1).max(100) })).max(50).optional(),
  groupBy: z.string().min(1).max(100).optional(),
  privacy: privacySettingsSchema,
});
export type TaskQuery = z.infer<typeof querySpecSchema>;

const taskBase = {
  queryId: id,
  studyId: id,
  participantId: id,
  /** ms since the epoch; a worker refuses a task past its deadline or issued in the future. */
  issuedAt: z.number().int(),
  deadline: z.number().int(),
  /**
   * Brings this participant's view of its study's ledger up to the task's checkpoint, from where the coordinator
   * believes it stands (libs/protocol ViewUpdate); without it, or when it starts elsewhere, the worker asks over HTTP.
   */
  view: viewUpdateSchema.optional(),
};

/** Round 1: compute the local aggregate for `query`, share it to the committee, sign, answer. */
export const shamirRound1TaskSchema = z.strictObject({
  kind: z.literal(TASK.shamirRound1),
  ...taskBase,
  plan: planSchema,
  query: querySpecSchema,
  /** Keys of the committee members the shares are encrypted to. */
  directory: z.array(directoryEntrySchema).min(1),
  /**
   * Proofs that the query (`query.submitted`), its plan (`committee.drawn`), the study's settings
   * (`study.created`) and every committee member's enrollment (`participant.enrolled`) are in the signed ledger,
   * with the root the committee seed is drawn from (libs/protocol authorizeShamirRound1).
   */
  evidence: ledgerEvidenceSchema,
});

/** Round 2: sum the shares addressed to this member over exactly the closed set, seal the sum, sign, answer. */
export const shamirRound2TaskSchema = z.strictObject({
  kind: z.literal(TASK.shamirRound2),
  ...taskBase,
  plan: planSchema,
  query: querySpecSchema,
  closed: round1ClosedSchema,
  deliveries: z.array(round1DeliverySchema),
  /** Keys of the contributors whose signatures the member checks. */
  directory: z.array(directoryEntrySchema).min(1),
  /**
   * As round 1's, plus the round's `round.closed` entry (members check it records exactly `closed`) and every
   * contributor's enrollment (libs/protocol authorizeShamirRound2).
   */
  evidence: ledgerEvidenceSchema,
});

/** Paillier's one round: compute the local aggregate, pack, encrypt under the researcher's key, sign, answer. */
export const paillierTaskSchema = z.strictObject({
  kind: z.literal(TASK.paillierContribute),
  ...taskBase,
  plan: paillierPlanSchema,
  query: querySpecSchema,
  /** Proofs of `query.submitted`, `study.created` and `paillier.planned` in the signed ledger (authorizePaillier). */
  evidence: ledgerEvidenceSchema,
});

export const taskPayloadSchema = z.discriminatedUnion('kind', [shamirRound1TaskSchema, shamirRound2TaskSchema, paillierTaskSchema]);
export type TaskPayload = z.infer<typeof taskPayloadSchema>;
export type TaskOf<K extends TaskPayload['kind']> = Extract<TaskPayload, { kind: K }>;

/** What goes into Redis as a participant job's data: the task and the coordinator's signature over it. */
export const signedTaskSchema = z.strictObject({ task: taskPayloadSchema, signature: b64u });
export type SignedTask = z.infer<typeof signedTaskSchema>;

/** A participant job's return value, by task kind. */
export const answerSchemas = {
  [TASK.shamirRound1]: z.strictObject({ kind: z.literal(TASK.shamirRound1), bundle: round1BundleSchema }),
  [TASK.shamirRound2]: z.strictObject({ kind: z.literal(TASK.shamirRound2), result: round2ResultSchema }),
  [TASK.paillierContribute]: z.strictObject({ kind: z.literal(TASK.paillierContribute), contribution: paillierContributionSchema }),
} as const;
export type AnswerOf<K extends TaskPayload['kind']> = z.infer<(typeof answerSchemas)[K]>;
export type Answer = AnswerOf<TaskPayload['kind']>;

/**
 * Control-queue job data: check a round (at its deadline, or when an answer arrived). Round 0 is a shamir query's
 * wait for the researcher's committee nonce.
 */
export const controlJobSchema = z.strictObject({ queryId: id, round: z.number().int().min(0).max(2) });
export type ControlJob = z.infer<typeof controlJobSchema>;

const TASK_DOMAIN = 'task';
const AGGREGATION_DOMAIN = 'aggregation';

/**
 * What the coordinator's signature covers: the message with every number that is not a safe integer written as its
 * decimal text (libs/protocol ledgerValue), as in ledger entries. Canonical JSON holds safe integers only (so that a
 * verifier in any language re-encodes it byte for byte), and a task's query may hold an ε of 0.5 or a bin edge of
 * 2.5. A number and the string of its text sign alike; each field's schema fixes which one it is, and the query is
 * compiled and hashed by the participant, so the two can never mean different work.
 */
const signed = (payload: unknown): unknown => ledgerValue(payload);

/**
 * An aggregation job as the orchestrator enqueues it: the query's plan and query (from which the aggregator
 * derives the packing layout itself), the study schema, and the participants whose answers to check and multiply
 * with their registered signing keys. Public data only; signed with the coordinator key like every message.
 */
export const aggregationJobSchema = z.strictObject({
  queryId: id,
  plan: paillierPlanSchema,
  query: querySpecSchema,
  schema: z.unknown(),
  answered: z.array(z.strictObject({ id, signingKey: b64u })).max(100_000),
});
export type AggregationJob = z.infer<typeof aggregationJobSchema>;

/** What an aggregation worker returns: the product ciphertexts and who is in them, or why nothing is. */
export const aggregationResultSchema = z.strictObject({
  queryId: id,
  aggregate: z.array(z.string()).nullable(),
  contributors: z.array(z.strictObject({ id, bundleHash: z.string().regex(/^[0-9a-f]{64}$/) })),
  /** The accepted contributions, signed by their participants: the key holder recomputes the product from them. */
  contributions: z.array(paillierContributionSchema).max(100_000),
  rejected: z.array(z.strictObject({ participantId: id, reason: z.string().max(2000) })),
  failure: z.string().max(2000).nullable(),
});
export type AggregationResult = z.infer<typeof aggregationResultSchema>;

/** Signs an aggregation job or result with the coordinator's key (domain "aggregation"). */
export function signAggregation<T extends AggregationJob | AggregationResult>(coordinatorKey: KeyPair, payload: T): { payload: T; signature: string } {
  return { payload, signature: signMessage(coordinatorKey.privateKey, AGGREGATION_DOMAIN, signed(payload)) };
}

/**
 * Opens a signed aggregation job or result.
 * @throws TaskRejected on a bad shape or signature
 */
export function openAggregation<T>(data: unknown, schema: z.ZodType<T>, coordinatorKey: PublicKey): T {
  const outer = z.strictObject({ payload: z.unknown(), signature: b64u }).safeParse(data);
  if (!outer.success) throw new TaskRejected('malformed aggregation message');
  if (!verifyMessage(coordinatorKey, AGGREGATION_DOMAIN, signed(outer.data.payload), outer.data.signature)) throw new TaskRejected('aggregation message signature does not verify with the coordinator key');
  const parsed = schema.safeParse(outer.data.payload);
  if (!parsed.success) throw new TaskRejected(`malformed aggregation message: ${parsed.error.issues[0]?.path.join('.') ?? ''} ${parsed.error.issues[0]?.message ?? ''}`.trim());
  return parsed.data;
}

/** Signs a task with the coordinator's Ed25519 key (libs/crypto signMessage, domain "task"). */
export function signTask(coordinatorKey: KeyPair, task: TaskPayload): SignedTask {
  return { task, signature: signMessage(coordinatorKey.privateKey, TASK_DOMAIN, signed(task)) };
}

/**
 * Why a task was refused before any work was done. A BullMQ UnrecoverableError, so a processor that lets it
 * propagate fails the job at once instead of retrying a task that can never verify (STYLE.md "Queues").
 */
export class TaskRejected extends UnrecoverableError {
  override readonly name = 'TaskRejected';
}

/**
 * Validates a job's data as a worker receives it: schema, coordinator signature, addressed to this
 * participant and study, not expired and not issued in the future (beyond `skewMs`).
 * @throws TaskRejected naming the first problem
 */
export function openTask(
  data: unknown,
  expect: TaskExpectation & { readonly coordinatorKey: PublicKey },
): TaskPayload {
  const parsed = signedTaskSchema.safeParse(data);
  if (!parsed.success) throw new TaskRejected(`malformed task: ${parsed.error.issues[0]?.path.join('.') ?? ''} ${parsed.error.issues[0]?.message ?? ''}`.trim());
  const { task, signature } = parsed.data;
  if (!verifyMessage(expect.coordinatorKey, TASK_DOMAIN, signed(task), signature)) throw new TaskRejected('task signature does not verify with the coordinator key');
  return checkTask(task, expect);
}

/**
 * The checks of {@link openTask} after the signature, for a task signed whole or put together from a signed reference
 * (task-refs.ts): addressed to this participant and study, not expired, not issued in the future, its plan for its query.
 * @throws TaskRejected naming the first problem
 */
export function checkTask(task: TaskPayload, expect: TaskExpectation): TaskPayload {
  checkAddressed(task, expect);
  if (task.plan.jobId !== task.queryId) throw new TaskRejected('task plan is for another query');
  return task;
}

/** Who a worker is and when it is, for {@link checkTask}: `now` and `skewMs` (60 s) for tests and clock drift. */
export interface TaskExpectation {
  readonly participantId: string;
  readonly studyId: string;
  readonly now?: number;
  readonly skewMs?: number;
}

/**
 * The checks a task's own signed fields settle: addressed to this participant and study, not expired, not issued in
 * the future. A task by reference passes them before any of its parts is fetched (task-refs.ts).
 * @throws TaskRejected naming the first problem
 */
export function checkAddressed(task: Pick<TaskPayload, 'participantId' | 'studyId' | 'issuedAt' | 'deadline'>, expect: TaskExpectation): void {
  if (task.participantId !== expect.participantId) throw new TaskRejected(`task is addressed to participant ${task.participantId}`);
  if (task.studyId !== expect.studyId) throw new TaskRejected(`task is for study ${task.studyId}, this worker serves ${expect.studyId}`);
  const now = expect.now ?? Date.now();
  const skew = expect.skewMs ?? 60_000;
  if (task.issuedAt > now + skew) throw new TaskRejected('task is issued in the future');
  if (now > task.deadline) throw new TaskRejected(`task expired at ${formatTime(task.deadline)}`);
}

// Date#toISOString throws a RangeError beyond ±8.64e15 ms, and the schema allows any safe integer: a rejection
// must stay a TaskRejected whatever the timestamp.
function formatTime(ms: number): string {
  const date = new Date(ms);
  return Number.isNaN(date.getTime()) ? `${ms} ms since the epoch` : date.toISOString();
}
