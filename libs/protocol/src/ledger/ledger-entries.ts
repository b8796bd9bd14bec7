import { z } from 'zod';
import { formatFixed } from '@confide/crypto';
import { ledgerValue } from '../hashing';
import { researcherBindingSchema } from '../paillier/researcher';
import { toStudySchemaJson, type StudySchema } from '../query/schema';

/**
 * The ledger entries the coordinator appends, with one owner for each (STYLE.md "Every wire convention has one
 * owner"): their type names, the body schemas of those parties act on, the builders the coordinator appends with,
 * and their dedup keys ({@link entryKey}). Participants check tasks against these entries and auditors check the
 * ledger's meaning with them (ledger-rules.ts), so a change here is a change of contract: the type names are never
 * renamed, and existing ledgers hold every dedup key built from them.
 */
export const ENTRY = {
  coordinatorKeys: 'coordinator.keys',
  apiKeyCreated: 'apikey.created',
  studyCreated: 'study.created',
  participantEnrolled: 'participant.enrolled',
  /** An admin took a participant out of its study: no plan after this entry may list it. */
  participantRemoved: 'participant.removed',
  /** A participant changed its declared maximum record count, with a request signed by its enrolled key. */
  participantUpdated: 'participant.updated',
  querySubmitted: 'query.submitted',
  committeeDrawn: 'committee.drawn',
  paillierPlanned: 'paillier.planned',
  roundClosed: 'round.closed',
  resultReleased: 'result.released',
  queryFailed: 'query.failed',
  /** Records no rule checks (ledger-rules.ts): why an answer or a decryption was not counted, and what DP spent. */
  contributionLate: 'contribution.late',
  contributionRejected: 'contribution.rejected',
  decryptionRejected: 'decryption.rejected',
  decryptionPartial: 'decryption.partial',
  privacySpent: 'privacy.spent',
} as const;

/**
 * The dedup key under which an entry is appended once (EventLog.append): `<type>:<part>:…`, e.g.
 * `round.closed:<query>:1`. An honest coordinator appends each of these once; a second entry for the same key is
 * what ledger-rules.ts reports.
 */
export function entryKey(type: string, ...parts: readonly (string | number)[]): string {
  return [type, ...parts].join(':');
}

const id = z.string().regex(/^[A-Za-z0-9_-]{1,128}$/);
const hex64 = z.string().regex(/^[0-9a-f]{64}$/);
const fingerprint = z.string().min(1).max(200);

/**
 * The study schema as `study.created` records it. Canonical JSON holds safe integers only, so numeric bounds
 * (0.5, 1e20) are written as their exact fixed-point decimal text, like released statistic values. A participant
 * compares this with the schema it pinned at enrollment.
 */
export function ledgerSchema(schema: StudySchema): Record<string, unknown> {
  const json = toStudySchemaJson(schema);
  return {
    ...json,
    privacy: ledgerValue(json.privacy),
    fields: schema.fields.map((f) =>
      f.type === 'number'
        ? { name: f.name, type: f.type, min: formatFixed(f.bounds.min, f.decimals), max: formatFixed(f.bounds.max, f.decimals), decimals: f.decimals }
        : { name: f.name, type: f.type, values: [...f.values] },
    ),
  };
}

export const coordinatorKeysBody = z.looseObject({ signingKeyFingerprint: fingerprint, encryptionKeyFingerprint: fingerprint, encryptionKey: z.string() });
export type CoordinatorKeysBody = z.infer<typeof coordinatorKeysBody>;

/**
 * An API key's creation. A researcher key may carry the researcher's Ed25519 identity key: its fingerprint is what
 * participants check a paillier query's signature against (paillier/researcher.ts).
 */
export const apiKeyCreatedBody = z.looseObject({
  keyId: z.string().min(1).max(200),
  role: z.enum(['admin', 'researcher', 'auditor']),
  createdBy: z.string(),
  identityKey: z.string().max(64).optional(),
  identityKeyFingerprint: hex64.optional(),
});
export type ApiKeyCreatedBody = z.infer<typeof apiKeyCreatedBody>;

export const studyCreatedBody = z.looseObject({ studyId: id, name: z.string(), schema: z.record(z.string(), z.unknown()) });
export type StudyCreatedBody = z.infer<typeof studyCreatedBody>;

export const participantEnrolledBody = z.looseObject({
  participantId: id,
  studyId: id,
  name: z.string(),
  encryptionKeyFingerprint: fingerprint,
  signingKeyFingerprint: fingerprint,
  maxRecords: z.number().int().min(1),
});
export type ParticipantEnrolledBody = z.infer<typeof participantEnrolledBody>;

export const participantRemovedBody = z.looseObject({
  participantId: id,
  studyId: id,
  /** The participant's invited name, beside its id. */
  name: z.string(),
  /** The API key id of the admin who removed it. */
  removedBy: z.string(),
});
export type ParticipantRemovedBody = z.infer<typeof participantRemovedBody>;

/**
 * A participant's new maximum record count, with the statement it signed (participant-statements.ts): the signing
 * key is in the entry so anyone can check it against the fingerprint its `participant.enrolled` records.
 */
export const participantUpdatedBody = z.looseObject({
  participantId: id,
  studyId: id,
  name: z.string(),
  maxRecords: z.number().int().min(1),
  previousMaxRecords: z.number().int().min(1),
  time: z.number().int().min(0),
  signingKey: z.string().max(64),
  signature: z.string().max(200),
});
export type ParticipantUpdatedBody = z.infer<typeof participantUpdatedBody>;

export const querySubmittedBody = z.looseObject({
  queryId: id,
  studyId: id,
  study: z.string(),
  protocol: z.enum(['shamir', 'paillier']),
  /** The query in its canonical form (hashing.ts canonicalQuery), as auditors read it. */
  query: z.record(z.string(), z.unknown()),
  queryHash: hex64,
  submittedBy: z.string().nullable(),
  /** Shamir: the researcher's commitment to its committee nonce (plan.ts nonceCommitment). */
  seedCommitment: hex64.optional(),
  /** Shamir: the threshold the researcher asked for, if any. */
  threshold: z.number().int().min(1).optional(),
  /** Paillier: the key participants encrypt to, and the researcher's signature binding it to this query. */
  publicKey: z.strictObject({ n: z.string() }).optional(),
  researcher: researcherBindingSchema.optional(),
  /** Paillier with custodians: their verification keys (libs/crypto threshold-paillier JSON form). */
  custodians: z.record(z.string(), z.unknown()).optional(),
});
export type QuerySubmittedBody = z.infer<typeof querySubmittedBody>;

export const committeeDrawnBody = z.looseObject({
  queryId: id,
  studyId: id,
  /** The committee seed (plan.ts committeeSeed) from the root at `seedTreeSize` and the researcher's `nonce`. */
  seed: z.string(),
  nonce: z.string(),
  /** The tree size whose root went into the seed: the `query.submitted` entry's index + 1. */
  seedTreeSize: z.number().int().min(1),
  committee: z.array(id),
  threshold: z.number().int().min(1),
  participants: z.array(id),
  /** Hash of the whole plan (plan.ts planHash): every participant's task must carry exactly this plan. */
  planHash: hex64,
});
export type CommitteeDrawnBody = z.infer<typeof committeeDrawnBody>;

export const paillierPlannedBody = z.looseObject({
  queryId: id,
  studyId: id,
  participants: z.array(id),
  publicKey: z.strictObject({ n: z.string() }),
  maxRecords: z.string(),
  deadline: z.number().int(),
  planHash: hex64,
});
export type PaillierPlannedBody = z.infer<typeof paillierPlannedBody>;

export const roundClosedBody = z.looseObject({
  queryId: id,
  round: z.number().int().min(1),
  contributors: z.array(z.strictObject({ id, bundleHash: hex64 })),
  missing: z.array(id),
  refusals: z.array(z.strictObject({ participantId: id, reason: z.string() })),
});
export type RoundClosedBody = z.infer<typeof roundClosedBody>;

/** The body schema of each entry type above that parties parse, by type. */
export const ENTRY_BODIES = {
  [ENTRY.coordinatorKeys]: coordinatorKeysBody,
  [ENTRY.apiKeyCreated]: apiKeyCreatedBody,
  [ENTRY.studyCreated]: studyCreatedBody,
  [ENTRY.participantEnrolled]: participantEnrolledBody,
  [ENTRY.participantRemoved]: participantRemovedBody,
  [ENTRY.participantUpdated]: participantUpdatedBody,
  [ENTRY.querySubmitted]: querySubmittedBody,
  [ENTRY.committeeDrawn]: committeeDrawnBody,
  [ENTRY.paillierPlanned]: paillierPlannedBody,
  [ENTRY.roundClosed]: roundClosedBody,
} as const;
export type CheckedEntryType = keyof typeof ENTRY_BODIES;
export type EntryBody<T extends CheckedEntryType> = z.infer<(typeof ENTRY_BODIES)[T]>;

/**
 * Parses an entry body of a checked type.
 * @returns the typed body, or undefined when it does not match the schema (a malformed entry is never acted on)
 */
export function parseEntryBody<T extends CheckedEntryType>(type: T, body: unknown): EntryBody<T> | undefined {
  const parsed = ENTRY_BODIES[type].safeParse(body);
  return parsed.success ? (parsed.data as EntryBody<T>) : undefined;
}
