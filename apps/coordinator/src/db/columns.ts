import { z } from 'zod';
import {
  encryptedNoiseSchema,
  paillierContributionSchema,
  paillierPlanSchema,
  parseStudySchema,
  planSchema,
  postedPartialsSchema,
  round1ClosedSchema,
  roundClosedBody,
  SchemaError,
  type PaillierPlan,
  type QuerySpec,
  type ShamirPlan,
  type StudySchema,
} from '@confide/protocol';
import { dispatchedTaskSchema, querySpecSchema } from '@confide/queue';

/**
 * The JSON text columns of the coordinator's database (schema.ts), read back through one helper and a zod schema
 * per column, so that a corrupt or foreign row fails where it is read, naming its table and column, instead of
 * travelling on as a cast. Each schema is the wire schema of what the column holds wherever one exists.
 */

/**
 * A JSON column whose text does not parse, or whose value does not have the column's shape. The message names the
 * column and, for a wrong shape, where in the value and what kind of problem: never the value itself, which may be
 * next to a secret (a share sum's envelope, a partial decryption).
 */
export class CorruptColumnError extends Error {
  override readonly name = 'CorruptColumnError';
}

/**
 * Parses a JSON column's text and checks it against the column's schema.
 *
 * Returns the parsed JSON itself, never zod's copy of it: a key zod would strip or a default it would fill in
 * would change what hashes and signatures over the value cover. So the schema must not transform (its input and
 * output types are the same, which the signature enforces).
 * @param what the table and column, and the row when it helps: `queries.plan_json of query q…`
 * @throws CorruptColumnError naming `what`, with the path and kind of the first problems only
 */
export function readColumn<T>(schema: z.ZodType<T, T>, text: string, what: string): T {
  const json = parseJson(text, what);
  const parsed = schema.safeParse(json);
  if (!parsed.success) throw new CorruptColumnError(`${what} does not hold what the column stores: ${describeIssues(parsed.error.issues)}`);
  return json as T;
}

/**
 * Reads `studies.schema_json`: the study as toStudySchemaJson wrote it, validated by libs/protocol parseStudySchema
 * (the owner of the study format, which also applies its defaults and computes the bounds).
 * @throws CorruptColumnError naming `what` and the paths of the problems
 */
export function readStudySchema(text: string, what: string): StudySchema {
  const json = parseJson(text, what);
  try {
    return parseStudySchema(json);
  } catch (err) {
    // A stored study is the coordinator's own data: a SchemaError here is corruption (500), not a bad request (400).
    if (err instanceof SchemaError) throw new CorruptColumnError(`${what} does not hold a valid study schema: at ${err.issues.map((i) => i.path).slice(0, 3).join(', ')}`);
    throw err;
  }
}

// JSON.parse's SyntaxError quotes the text around the error: it is not attached as a cause, so no log shows it.
function parseJson(text: string, what: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new CorruptColumnError(`${what} is not valid JSON (${text.length} characters)`);
  }
}

function describeIssues(issues: readonly z.core.$ZodIssue[]): string {
  const described = issues.slice(0, 3).map((issue) => {
    const path = issue.path.length ? issue.path.map(String).join('.') : '(root)';
    return issue.code === 'invalid_type' ? `${path}: ${issue.code}, expected ${issue.expected}` : `${path}: ${issue.code}`;
  });
  return issues.length > 3 ? `${described.join('; ')}; and ${issues.length - 3} more` : described.join('; ');
}

const id = z.string().regex(/^[A-Za-z0-9_-]{1,100}$/);
const hex64 = z.string().regex(/^[0-9a-f]{64}$/);

/**
 * `queries.spec_json`: the query as submitted, planned and hashed (libs/protocol querySpecFor), in the outline a task
 * carries it (libs/queue querySpecSchema). Its statistics and conditions are checked in full against the study by
 * compileQuery wherever it runs. Queries stored before their privacy settings were may lack them.
 */
export const querySpecColumn = querySpecSchema.partial({ privacy: true });

/** Reads `queries.spec_json` ({@link querySpecColumn}). @throws CorruptColumnError */
export function readQuerySpec(text: string, what: string): QuerySpec {
  // The outline is checked here; the statistics' own fields are compileQuery's to check against the study.
  return readColumn(querySpecColumn, text, what) as unknown as QuerySpec;
}

/** `queries.plan_json`: the plan the query runs (libs/protocol planSchema or paillierPlanSchema, by `protocol`). */
export const planColumn: z.ZodType<ShamirPlan | PaillierPlan, ShamirPlan | PaillierPlan> = z.discriminatedUnion('protocol', [planSchema, paillierPlanSchema]);

/** `queries.options_json` of a shamir query: what it keeps until its researcher reveals the committee nonce. */
export const shamirOptionsColumn = z.strictObject({
  threshold: z.number().int().min(1).optional(),
  deadlineSeconds: z.number().positive().optional(),
  seedCommitment: hex64.optional(),
  /** The ledger index of the query's `query.submitted` entry. */
  submittedIndex: z.number().int().min(0),
});
export type ShamirOptions = z.infer<typeof shamirOptionsColumn>;

/** `queries.options_json` of a paillier query decrypted by custodians: their verification keys, as submitted. */
export const paillierOptionsColumn = z.strictObject({ custodians: z.record(z.string(), z.unknown()) });
export type PaillierOptions = z.infer<typeof paillierOptionsColumn>;

/**
 * `queries.result_json`: the released statistics, the privacy report and the `result.released` ledger index, with
 * the protocol's details (contributors, committee, …) beside them.
 */
export const resultColumn = z.looseObject({
  results: z.array(z.unknown()),
  privacy: z.unknown().optional(),
  ledgerIndex: z.number().int().min(0).optional(),
});

/** `rounds.closed_json` of a shamir query's round 1: the closed contributor set (libs/protocol round1ClosedSchema). */
export const shamirRound1ClosedColumn = round1ClosedSchema;

/**
 * `rounds.closed_json` of a paillier query's round 1: the accepted contributors, their signed contributions (the
 * key holder multiplies them again before decrypting), the encrypted DP noise with its proofs, and the aggregate.
 * Once the query is decided, the contributions and the noise are emptied.
 */
export const paillierRound1ClosedColumn = z.strictObject({
  contributors: z.array(z.strictObject({ id, bundleHash: hex64 })),
  contributions: z.array(paillierContributionSchema),
  noise: encryptedNoiseSchema.nullable(),
  aggregate: z.array(z.string()),
});
export type PaillierClosed = z.infer<typeof paillierRound1ClosedColumn>;

/**
 * What any closed round's `rounds.closed_json` says of who is counted: round 1's contributors, shamir round 2's
 * answering members. Rounds that count no one (round 0's nonce, a paillier decryption) have neither.
 */
export const closedMembersColumn = z.looseObject({
  contributors: z.array(z.looseObject({ id: z.string() })).optional(),
  answered: z.array(z.string()).optional(),
});

/** `partial_decryptions.partials_json`: one custodian's posted partials (libs/protocol postedPartialsSchema). */
export const partialsColumn = postedPartialsSchema;

/**
 * `dispatches.payload_json`: the signed task as it goes into the participant's queue, by reference to its shared parts
 * (libs/queue signedTaskRefSchema) or, as an older coordinator stored it, whole (signedTaskSchema).
 */
export const dispatchPayloadColumn = dispatchedTaskSchema;

/** `events.body`: a ledger entry's body, canonical JSON of an object (libs/ledger entryBytes checks every value). */
export const eventBodyColumn = z.record(z.string(), z.unknown());

/** `events.body` of a `round.closed` entry (libs/protocol roundClosedBody). */
export const roundClosedColumn = roundClosedBody;
