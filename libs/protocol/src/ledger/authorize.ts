import { z } from 'zod';
import { canonicalJson, importPublicKeyBase64Url, keyFingerprint, type PublicKey } from '@confide/crypto';
import { ledgerOrigin, leafHash, parseEntry, verifyCheckpoint, verifyConsistency, verifyInclusion, type Checkpoint, type LedgerEntry } from '@confide/ledger';
import { ENTRY, ledgerSchema, parseEntryBody, type CheckedEntryType, type EntryBody, type ParticipantEnrolledBody } from './ledger-entries';
import { paillierPlanHash, type PaillierPlan } from '../paillier/protocol';
import { checkResearcherBinding, researcherStatementOf } from '../paillier/researcher';
import { assertNotLooser, PrivacyError, privacySettingsSchema, type PrivacySettings } from '../privacy/settings';
import { queryHash } from '../hashing';
import { deepFreeze, isDeeplyFrozen } from '../frozen';
import type { StudySchema } from '../query/schema';
import type { Round1Closed } from '../shamir/messages';
import { committeeSeed, committeeSize, drawCommittee, nonceCommitment, planHash, thresholdBelowFloor, thresholdFloor, type ShamirPlan } from '../shamir/plan';

/**
 * What an honest participant checks before it acts on a task (DESIGN.md "Trust model"): the coordinator and Redis
 * may sign, forge and replay anything, so a task's coordinator signature proves only where it came from. A worker
 * computes over its data only when the task agrees with
 *
 * - the settings it pinned at enrollment: the threshold floor, minimum participants, minimum group size and
 *   differential privacy may be stricter in a plan, never looser;
 * - the signed ledger: the query is recorded (`query.submitted`) with the hash of exactly the query in the task,
 *   the committee was drawn (`committee.drawn`) from a seed neither the coordinator nor the researcher chose alone,
 *   every committee member (round 1) or contributor (round 2) is enrolled in this study with exactly the keys the
 *   task gives for it, and round 2 sums only the contributor set the ledger closed (`round.closed`).
 *
 * The ledger facts come as {@link LedgerEvidence}: entries with RFC 9162 inclusion proofs in one checkpoint signed
 * with the coordinator key the participant pinned. That the checkpoint extends the one the participant saved last
 * is checked by the caller, who holds that state. Every function here is pure and throws {@link TaskRefusal}
 * naming the first rule the task breaks.
 */

/** Why a participant refused a task; one code per rule. */
export type RefusalCode =
  | 'CHECKPOINT'
  | 'NOT_IN_LEDGER'
  | 'DUPLICATE'
  | 'WRONG_STUDY'
  | 'STUDY_SETTINGS'
  | 'THRESHOLD'
  | 'COMMITTEE'
  | 'PRIVACY'
  | 'QUERY_HASH'
  | 'PLAN'
  | 'SEED'
  | 'DRAW'
  | 'NOT_IN_STUDY'
  | 'KEY_MISMATCH'
  | 'DIRECTORY'
  | 'SET_MISMATCH'
  | 'ROSTER'
  | 'WRONG_JOB'
  | 'RESEARCHER';

/** A task an honest participant will not act on, and why. Nothing was computed or sent when this is thrown. */
export class TaskRefusal extends Error {
  override readonly name = 'TaskRefusal';
  constructor(
    readonly code: RefusalCode,
    message: string,
  ) {
    super(message);
  }
}

const refuse = (code: RefusalCode, message: string): never => {
  throw new TaskRefusal(code, message);
};

const b64 = z.string().regex(/^[A-Za-z0-9+/]*={0,2}$/);

/** One ledger entry proven in a checkpoint: its index, its bytes (base64) and its inclusion proof. */
export const provenEntrySchema = z.strictObject({ index: z.number().int().min(0), entry: b64.max(1 << 20), proof: z.array(b64.max(64)).max(64) });
export type ProvenEntry = z.infer<typeof provenEntrySchema>;

/**
 * The ledger facts a task carries: a signed checkpoint (C2SP signed note), entries included in it, and for a shamir
 * task the root of the ledger right after `query.submitted` (the committee seed's input), proven consistent with
 * the checkpoint (RFC 9162 §2.1.4).
 */
export const ledgerEvidenceSchema = z.strictObject({
  checkpoint: z.string().max(4096),
  entries: z.array(provenEntrySchema).max(200_000),
  seedRoot: z.strictObject({ size: z.number().int().min(1), root: b64.max(64), proof: z.array(b64.max(64)).max(128) }).optional(),
});
export type LedgerEvidence = z.infer<typeof ledgerEvidenceSchema>;

/**
 * What brings one participant's view of its study's ledger up to a task's checkpoint without asking the coordinator:
 * the consistency proof from the tree size the coordinator believes this participant saved last (`from`, the
 * checkpoint of the last task it sent it) to the task's checkpoint, and the study's entries in between, each with its
 * inclusion proof in that checkpoint. A participant whose saved size is another asks over HTTP instead.
 */
export const viewUpdateSchema = z.strictObject({
  from: z.number().int().min(1),
  consistency: z.array(b64.max(64)).max(128),
  entries: z.array(provenEntrySchema).max(10_000),
});
export type ViewUpdate = z.infer<typeof viewUpdateSchema>;

/** Evidence whose signature and proofs were checked: the checkpoint, the entries it includes, the seed root. */
export interface VerifiedEvidence {
  readonly checkpoint: Checkpoint;
  readonly note: string;
  readonly entries: readonly LedgerEntry[];
  readonly seedRoot?: { readonly size: number; readonly root: Uint8Array };
}

const fromB64 = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'base64'));
const message = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/**
 * Checks a task's ledger evidence (RFC 9162 §2.1.3, §2.1.4; C2SP signed-note): the checkpoint is signed by the
 * coordinator key pinned at enrollment, each entry is included in it at its index, and the seed root is the
 * root of the ledger's prefix of that size.
 * @throws TaskRefusal CHECKPOINT or NOT_IN_LEDGER naming the failing entry
 */
export function openEvidence(raw: LedgerEvidence, coordinatorKey: PublicKey): VerifiedEvidence {
  // Every participant of a round gets the same evidence: when it is a shared, frozen part (libs/queue task-refs.ts),
  // what one participant of this process verified with the same coordinator key is the answer for the others.
  if (!isDeeplyFrozen(raw)) return verifyEvidence(raw, coordinatorKey);
  const known = verifiedEvidence.get(raw);
  if (known && known.key.algorithm === coordinatorKey.algorithm && known.key.key.equals(coordinatorKey.key)) return known.verified;
  const verified = deepFreeze(verifyEvidence(raw, coordinatorKey));
  verifiedEvidence.set(raw, { key: coordinatorKey, verified });
  return verified;
}

/** Frozen evidence already verified in this process, with the key it was verified with ({@link openEvidence}). */
const verifiedEvidence = new WeakMap<LedgerEvidence, { key: PublicKey; verified: VerifiedEvidence }>();

function verifyEvidence(raw: LedgerEvidence, coordinatorKey: PublicKey): VerifiedEvidence {
  let checkpoint: Checkpoint;
  try {
    checkpoint = verifyCheckpoint(raw.checkpoint, coordinatorKey, ledgerOrigin(coordinatorKey));
  } catch (err) {
    return refuse('CHECKPOINT', `the task's checkpoint does not verify with the coordinator key pinned at enrollment: ${message(err)}`);
  }
  const entries = raw.entries.map((e) => {
    const bytes = fromB64(e.entry);
    try {
      verifyInclusion(leafHash(bytes), e.index, checkpoint.size, e.proof.map(fromB64), checkpoint.root);
    } catch (err) {
      return refuse('NOT_IN_LEDGER', `entry ${e.index} is not in the signed ledger of ${checkpoint.size} entries: ${message(err)}`);
    }
    let entry: LedgerEntry;
    try {
      entry = parseEntry(bytes);
    } catch (err) {
      return refuse('NOT_IN_LEDGER', `entry ${e.index} is malformed: ${message(err)}`);
    }
    if (entry.index !== e.index) refuse('NOT_IN_LEDGER', `entry ${e.index} says it is entry ${entry.index}`);
    return entry;
  });
  let seedRoot: VerifiedEvidence['seedRoot'];
  if (raw.seedRoot) {
    const { size } = raw.seedRoot;
    const root = fromB64(raw.seedRoot.root);
    try {
      if (size > checkpoint.size) throw new Error(`size ${size} is beyond the checkpoint's ${checkpoint.size}`);
      verifyConsistency(size, checkpoint.size, raw.seedRoot.proof.map(fromB64), root, checkpoint.root);
    } catch (err) {
      return refuse('NOT_IN_LEDGER', `the committee seed's ledger root is not the signed ledger's root at size ${size}: ${message(err)}`);
    }
    seedRoot = { size, root };
  }
  return { checkpoint, note: raw.checkpoint, entries, seedRoot };
}

/** What a participant pinned at enrollment: who it is, its study's id, and the study's settings (its schema). */
export interface PinnedSettings {
  readonly participantId: string;
  readonly studyId: string;
  readonly study: StudySchema;
}

/** A participant's public keys as a task's key directory gives them (base64url of the raw 32 bytes). */
export interface DirectoryKeys {
  readonly id: string;
  readonly encryptionKey: string;
  readonly signingKey: string;
}

/** The ledger entries a task was authorised by, for the participant's own log. */
export interface LedgerFacts {
  readonly submitted: LedgerEntry;
  readonly submittedBy: string | null;
  readonly plan: LedgerEntry;
  readonly closing?: LedgerEntry;
}

export interface Found<T extends CheckedEntryType> {
  readonly entry: LedgerEntry;
  readonly body: EntryBody<T>;
}

/** Entry bodies parsed once per entry: a task's checks look its entries up many times (each member's enrollment). */
const parsedBodies = new WeakMap<LedgerEntry, unknown>();

function bodyOf<T extends CheckedEntryType>(type: T, entry: LedgerEntry): EntryBody<T> | undefined {
  if (!parsedBodies.has(entry)) parsedBodies.set(entry, parseEntryBody(type, entry.body));
  return parsedBodies.get(entry) as EntryBody<T> | undefined;
}

/** The one entry of `type` whose body matches; refuses when there is none, or more than one. */
export function onlyEntry<T extends CheckedEntryType>(evidence: VerifiedEvidence, type: T, match: (body: EntryBody<T>) => boolean, what: string): Found<T> {
  const found: Found<T>[] = [];
  for (const entry of evidence.entries) {
    if (entry.type !== type) continue;
    const body = bodyOf(type, entry);
    if (body !== undefined && match(body)) found.push({ entry, body });
  }
  return theOne(found, type, what);
}

/** The one entry found; refuses when there is none, or more than one ({@link onlyEntry}'s rule). */
function theOne<T extends CheckedEntryType>(found: readonly Found<T>[], type: T, what: string): Found<T> {
  if (found.length === 0) refuse('NOT_IN_LEDGER', `the signed ledger has no ${type} entry for ${what}`);
  if (found.length > 1) refuse('DUPLICATE', `the ledger holds ${found.length} ${type} entries for ${what} (entries ${found.map((f) => f.entry.index).join(', ')})`);
  return found[0]!;
}

/** The evidence's `participant.enrolled` entries by participant id, in evidence order (made once per evidence). */
function enrollmentsIn(evidence: VerifiedEvidence): Map<string, Found<typeof ENTRY.participantEnrolled>[]> {
  let index = enrollmentIndexes.get(evidence);
  if (!index) {
    index = new Map();
    for (const entry of evidence.entries) {
      if (entry.type !== ENTRY.participantEnrolled) continue;
      const body = bodyOf(ENTRY.participantEnrolled, entry);
      if (body === undefined) continue;
      const list = index.get(body.participantId) ?? [];
      list.push({ entry, body });
      index.set(body.participantId, list);
    }
    enrollmentIndexes.set(evidence, index);
  }
  return index;
}
const enrollmentIndexes = new WeakMap<VerifiedEvidence, Map<string, Found<typeof ENTRY.participantEnrolled>[]>>();

const same = (a: unknown, b: unknown): boolean => canonicalJson(a) === canonicalJson(b);

/** The query's privacy settings, checked against the pinned study; the plan's minimum must be the query's. */
function checkQuery(pinned: PinnedSettings, plan: { readonly queryHash: string; readonly minParticipants: number }, query: unknown): PrivacySettings {
  const carried = privacySettingsSchema.safeParse((query as { privacy?: unknown } | null)?.privacy);
  if (!carried.success) return refuse('PRIVACY', "the task's query carries no valid privacy settings");
  const privacy = carried.data as PrivacySettings;
  try {
    assertNotLooser(pinned.study.privacy, privacy);
  } catch (err) {
    if (err instanceof PrivacyError) refuse('PRIVACY', err.message);
    throw err;
  }
  // With the query's own minimum no lower than the pinned one, the plan's must equal it.
  if (plan.minParticipants !== privacy.minParticipants) refuse('PLAN', `the plan's minParticipants ${plan.minParticipants} is not the query's ${privacy.minParticipants}`);
  let hash: string;
  try {
    hash = queryHash(query);
  } catch (err) {
    return refuse('QUERY_HASH', `the task's query cannot be hashed: ${message(err)}`);
  }
  if (hash !== plan.queryHash) refuse('QUERY_HASH', "the task's query does not hash to its plan's queryHash");
  return privacy;
}

/** The shamir plan's committee and threshold against the rules and the pinned floor; nothing from the ledger yet. */
function checkShamirPlan(pinned: PinnedSettings, plan: ShamirPlan): void {
  const k = plan.committee.length;
  const n = plan.participants.length;
  if (new Set(plan.participants).size !== n) refuse('COMMITTEE', 'the plan lists a participant twice');
  if (new Set(plan.committee).size !== k || !plan.committee.every((m) => plan.participants.includes(m))) refuse('COMMITTEE', "the committee is not a set of the plan's participants");
  if (k !== committeeSize(n)) refuse('COMMITTEE', `a committee of ${k} for ${n} participants; the rule is min(n, 10) = ${committeeSize(n)}`);
  const floor = thresholdFloor(k, pinned.study.minThreshold ?? 1);
  if (floor > k) refuse('THRESHOLD', `the study pinned at enrollment requires a threshold of at least ${floor}, more than the committee of ${k}`);
  if (plan.threshold < floor) refuse('THRESHOLD', thresholdBelowFloor(plan.threshold, floor, k));
  if (plan.threshold > k) refuse('THRESHOLD', `threshold ${plan.threshold} is above the committee of ${k}`);
}

/** The study's `study.created` entry records exactly the settings this participant pinned. */
function checkStudy(pinned: PinnedSettings, evidence: VerifiedEvidence): void {
  const study = onlyEntry(evidence, ENTRY.studyCreated, (b) => b.studyId === pinned.studyId, `study ${pinned.study.name}`);
  if (!same(study.body.schema, ledgerSchema(pinned.study))) {
    refuse('STUDY_SETTINGS', `the study the ledger records (entry ${study.entry.index}) has other settings than the ones pinned at enrollment`);
  }
}

/** The query's `query.submitted` entry: in this study, this protocol, and the hash of exactly this query. */
function checkSubmitted(pinned: PinnedSettings, queryId: string, protocol: 'shamir' | 'paillier', hash: string, evidence: VerifiedEvidence): Found<typeof ENTRY.querySubmitted> {
  const submitted = onlyEntry(evidence, ENTRY.querySubmitted, (b) => b.queryId === queryId, `query ${queryId}`);
  if (submitted.body.studyId !== pinned.studyId) refuse('WRONG_STUDY', `query ${queryId} was submitted to another study (entry ${submitted.entry.index})`);
  if (submitted.body.protocol !== protocol) refuse('PLAN', `query ${queryId} was submitted for the ${submitted.body.protocol} protocol, the task is ${protocol}`);
  if (submitted.body.queryHash !== hash) {
    refuse('QUERY_HASH', `the task's query is not the query the ledger records for ${queryId} at entry ${submitted.entry.index} (hash ${hash.slice(0, 12)}… vs ${submitted.body.queryHash.slice(0, 12)}…)`);
  }
  checkStudy(pinned, evidence);
  return submitted;
}

/** `query.submitted` and `committee.drawn` of a shamir plan, the seed's coin toss, and the draw itself. */
function checkShamirLedger(pinned: PinnedSettings, plan: ShamirPlan, evidence: VerifiedEvidence) {
  const submitted = checkSubmitted(pinned, plan.jobId, 'shamir', plan.queryHash, evidence);
  const drawn = onlyEntry(evidence, ENTRY.committeeDrawn, (b) => b.queryId === plan.jobId, `query ${plan.jobId}`);
  if (drawn.entry.index <= submitted.entry.index) refuse('PLAN', `the committee of ${plan.jobId} (entry ${drawn.entry.index}) was drawn before the query was submitted`);
  if (drawn.body.planHash !== planHash(plan)) refuse('PLAN', `the task's plan is not the plan the ledger records for ${plan.jobId} at entry ${drawn.entry.index}`);
  const { committee, participants, threshold, seed, studyId } = drawn.body;
  if (studyId !== pinned.studyId || !same(committee, plan.committee) || !same(participants, plan.participants) || threshold !== plan.threshold || seed !== plan.seed) {
    refuse('PLAN', `entry ${drawn.entry.index} lists another committee, threshold, seed or study than the plan it hashes`);
  }
  if (submitted.body.threshold !== undefined && plan.threshold < submitted.body.threshold) {
    refuse('THRESHOLD', `threshold ${plan.threshold} is below the ${submitted.body.threshold} the researcher asked for (entry ${submitted.entry.index})`);
  }
  const commitment = submitted.body.seedCommitment;
  if (commitment === undefined) refuse('SEED', `query ${plan.jobId} has no committee nonce commitment in the ledger`);
  const root = evidence.seedRoot;
  if (!root || root.size !== submitted.entry.index + 1 || drawn.body.seedTreeSize !== root.size) {
    refuse('SEED', `the task does not prove the ledger root right after query.submitted (size ${submitted.entry.index + 1}) that the committee seed is drawn from`);
  }
  let expectedSeed: string;
  try {
    if (nonceCommitment(drawn.body.nonce) !== commitment) refuse('SEED', "the committee nonce in the ledger is not the one the researcher committed to in query.submitted");
    expectedSeed = committeeSeed(root!.root, drawn.body.nonce);
  } catch (err) {
    if (err instanceof TaskRefusal) throw err;
    return refuse('SEED', `the committee nonce is malformed: ${message(err)}`);
  }
  if (plan.seed !== expectedSeed) refuse('SEED', "the committee seed is not derived from the ledger's root and the researcher's nonce: the coordinator chose it");
  const draw = drawCommittee(plan.participants, plan.committee.length, plan.seed);
  if (!same(draw, plan.committee)) refuse('DRAW', `the committee is not the draw from the seed: the draw is ${draw.join(', ')}`);
  return { submitted, drawn };
}

/** The enrollment of `participantId` in the pinned study, before entry `before`. */
function enrollmentOf(pinned: PinnedSettings, evidence: VerifiedEvidence, participantId: string, role: string, before: number): Found<typeof ENTRY.participantEnrolled> {
  // onlyEntry's rule, through an index of the evidence's enrollments: a round-2 task proves every contributor's
  // enrollment, and scanning the evidence for each was O(N²) per member.
  const found = theOne(enrollmentsIn(evidence).get(participantId) ?? [], ENTRY.participantEnrolled, `${role} ${participantId}`);
  if (found.body.studyId !== pinned.studyId) refuse('NOT_IN_STUDY', `${role} ${participantId} is enrolled in another study (entry ${found.entry.index}), not in ${pinned.study.name}`);
  if (found.entry.index >= before) refuse('NOT_IN_STUDY', `${role} ${participantId} enrolled at entry ${found.entry.index}, after entry ${before} that relies on it`);
  return found;
}

/** A directory key against the fingerprint the ledger logged at enrollment. */
function checkKey(enrolled: Found<typeof ENTRY.participantEnrolled>, algorithm: 'x25519' | 'ed25519', raw: string, role: string): void {
  const logged: ParticipantEnrolledBody = enrolled.body;
  const expected = algorithm === 'x25519' ? logged.encryptionKeyFingerprint : logged.signingKeyFingerprint;
  let actual: string;
  try {
    actual = keyFingerprint(importPublicKeyBase64Url(algorithm, raw));
  } catch (err) {
    return refuse('KEY_MISMATCH', `${role} ${logged.participantId}'s ${algorithm === 'x25519' ? 'encryption' : 'signing'} key is invalid: ${message(err)}`);
  }
  if (actual !== expected) {
    refuse('KEY_MISMATCH', `${role} ${logged.participantId}'s ${algorithm === 'x25519' ? 'encryption' : 'signing'} key (${actual}) is not the key logged at its enrollment (entry ${enrolled.entry.index}: ${expected})`);
  }
}

function directoryFor(directory: readonly DirectoryKeys[], ids: readonly string[], what: string): Map<string, DirectoryKeys> {
  const byId = new Map(directory.map((d) => [d.id, d]));
  if (byId.size !== directory.length || byId.size !== ids.length || !ids.every((m) => byId.has(m))) refuse('DIRECTORY', `the task's key directory does not list exactly the ${what}`);
  return byId;
}

/** Inputs of {@link authorizeShamirRound1}. */
export interface Round1Authorization {
  readonly pinned: PinnedSettings;
  readonly plan: ShamirPlan;
  readonly query: unknown;
  readonly directory: readonly DirectoryKeys[];
  readonly evidence: VerifiedEvidence;
}

/**
 * Authorises a shamir round-1 task: only then does the participant compute its local aggregate and seal shares to
 * the committee's keys. Pinned settings first (threshold floor, committee size, privacy, minimum participants,
 * query hash), then the ledger (query, study settings, plan, seed, draw), then each committee member's enrollment
 * in this study and keys.
 * @throws TaskRefusal naming the first rule broken
 */
export function authorizeShamirRound1(input: Round1Authorization): LedgerFacts {
  const { pinned, plan, evidence } = input;
  if (!plan.participants.includes(pinned.participantId)) refuse('WRONG_JOB', `${pinned.participantId} is not a participant of ${plan.jobId}`);
  checkShamirPlan(pinned, plan);
  checkQuery(pinned, plan, input.query);
  const { submitted, drawn } = checkShamirLedger(pinned, plan, evidence);
  const directory = directoryFor(input.directory, plan.committee, 'committee');
  for (const member of plan.committee) {
    const enrolled = enrollmentOf(pinned, evidence, member, 'committee member', drawn.entry.index);
    const keys = directory.get(member)!;
    checkKey(enrolled, 'x25519', keys.encryptionKey, 'committee member');
    checkKey(enrolled, 'ed25519', keys.signingKey, 'committee member');
  }
  return { submitted: submitted.entry, submittedBy: submitted.body.submittedBy, plan: drawn.entry };
}

/** Inputs of {@link authorizeShamirRound2}. */
export interface Round2Authorization {
  readonly pinned: PinnedSettings;
  readonly plan: ShamirPlan;
  readonly query: unknown;
  readonly closed: Round1Closed;
  readonly directory: readonly DirectoryKeys[];
  readonly evidence: VerifiedEvidence;
}

/**
 * Authorises a shamir round-2 task for a committee member: the same plan and query checks as round 1, then the
 * ledger's `round.closed` entry must list exactly the task's contributor set, and every contributor must be
 * enrolled in this study with the signing key the task gives for it (a fake contributor the operator invented,
 * without an enrollment in the ledger, is refused).
 * @throws TaskRefusal naming the first rule broken
 */
export function authorizeShamirRound2(input: Round2Authorization): LedgerFacts {
  const { pinned, plan, evidence, closed } = input;
  if (!plan.committee.includes(pinned.participantId)) refuse('WRONG_JOB', `${pinned.participantId} is not on the committee of ${plan.jobId}`);
  checkShamirPlan(pinned, plan);
  checkQuery(pinned, plan, input.query);
  const { submitted, drawn } = checkShamirLedger(pinned, plan, evidence);
  if (closed.jobId !== plan.jobId) refuse('WRONG_JOB', `the closed set is for ${closed.jobId}, not ${plan.jobId}`);
  const closing = onlyEntry(evidence, ENTRY.roundClosed, (b) => b.queryId === plan.jobId && b.round === 1, `round 1 of query ${plan.jobId}`);
  if (closing.entry.index <= drawn.entry.index) refuse('PLAN', `round 1 of ${plan.jobId} closed (entry ${closing.entry.index}) before its committee was drawn`);
  if (!same(closing.body.contributors, closed.contributors)) refuse('SET_MISMATCH', `entry ${closing.entry.index} records another contributor set than the task carries`);
  const ids = closed.contributors.map((c) => c.id);
  const planned = new Set(plan.participants);
  const outside = ids.filter((c) => !planned.has(c));
  if (outside.length) refuse('SET_MISMATCH', `the closed set lists ${outside.join(', ')}, who ${outside.length === 1 ? 'is' : 'are'} not in the plan`);
  const directory = directoryFor(input.directory, ids, 'contributors');
  for (const c of ids) checkKey(enrollmentOf(pinned, evidence, c, 'contributor', drawn.entry.index), 'ed25519', directory.get(c)!.signingKey, 'contributor');
  return { submitted: submitted.entry, submittedBy: submitted.body.submittedBy, plan: drawn.entry, closing: closing.entry };
}

/** Inputs of {@link authorizePaillier}. */
export interface PaillierAuthorization {
  readonly pinned: PinnedSettings;
  readonly plan: PaillierPlan;
  readonly query: unknown;
  readonly evidence: VerifiedEvidence;
}

/**
 * Authorises a paillier contribution task, with the checks both protocols share: pinned privacy and minimum
 * participants, the query recorded with this hash in this study, the study's pinned settings, and the plan
 * recorded in `paillier.planned`. (Whose key the plan carries is the researcher-binding of the paillier issue.)
 * @throws TaskRefusal naming the first rule broken
 */
export function authorizePaillier(input: PaillierAuthorization): LedgerFacts {
  const { pinned, plan, evidence } = input;
  if (!plan.participants.includes(pinned.participantId)) refuse('WRONG_JOB', `${pinned.participantId} is not a participant of ${plan.jobId}`);
  const privacy = checkQuery(pinned, plan, input.query);
  // The plan sizes its slots for the noise the query's privacy asks for; a plan without it would let the aggregate
  // go out unnoised while the query says it is noised.
  const dp = privacy.dp ? { mechanism: privacy.dp.mechanism, epsilon: String(privacy.dp.epsilon), ...(privacy.dp.delta !== undefined ? { delta: String(privacy.dp.delta) } : {}) } : null;
  if (!same(plan.dp, dp)) refuse('PLAN', "the plan's differential privacy is not the query's");
  const submitted = checkSubmitted(pinned, plan.jobId, 'paillier', plan.queryHash, evidence);
  const planned = onlyEntry(evidence, ENTRY.paillierPlanned, (b) => b.queryId === plan.jobId, `query ${plan.jobId}`);
  if (planned.entry.index <= submitted.entry.index) refuse('PLAN', `query ${plan.jobId} was planned (entry ${planned.entry.index}) before it was submitted`);
  if (planned.body.planHash !== paillierPlanHash(plan)) refuse('PLAN', `the task's plan is not the plan the ledger records for ${plan.jobId} at entry ${planned.entry.index}`);
  checkResearcher(plan, submitted, evidence);
  return { submitted: submitted.entry, submittedBy: submitted.body.submittedBy, plan: planned.entry };
}

/**
 * Whose key the plan carries (paillier/researcher.ts): the `query.submitted` entry records the key, the
 * researcher's identity key and its signature over the study, the query's hash, the key and the custodians; the
 * identity key is the one an admin bound to the submitting API key (`apikey.created`, before the query). A
 * coordinator that swaps in its own key, or submits under a researcher key it invented after the fact, is refused.
 */
function checkResearcher(plan: PaillierPlan, submitted: Found<typeof ENTRY.querySubmitted>, evidence: VerifiedEvidence): void {
  const { body, entry } = submitted;
  if (body.publicKey?.n !== plan.publicKey.n) refuse('RESEARCHER', `the plan's public key is not the one the ledger records for query ${plan.jobId} (entry ${entry.index}): the coordinator swapped it`);
  if (!body.researcher || !body.submittedBy) refuse('RESEARCHER', `query ${plan.jobId} carries no researcher signature over its public key (entry ${entry.index})`);
  const keyId = body.submittedBy!;
  const bound = onlyEntry(evidence, ENTRY.apiKeyCreated, (b) => b.keyId === keyId, `API key ${keyId}`);
  if (bound.entry.index >= entry.index) refuse('RESEARCHER', `API key ${keyId} was created (entry ${bound.entry.index}) after the query it submitted`);
  if (bound.body.role !== 'researcher' || !bound.body.identityKeyFingerprint) refuse('RESEARCHER', `API key ${keyId} is not a researcher key bound to an identity key (entry ${bound.entry.index})`);
  const statement = researcherStatementOf(body, body.researcher!.nonce);
  const problem = checkResearcherBinding(body.researcher!, statement, bound.body.identityKeyFingerprint!);
  if (problem) refuse('RESEARCHER', `query ${plan.jobId} (entry ${entry.index}): ${problem}`);
}

/** The ledger indices of one query's entries that a task rests on: each must be the only one of its kind. */
export interface QueryEntries {
  readonly submitted: ReadonlySet<number>;
  /** `committee.drawn` or `paillier.planned`. */
  readonly plans: ReadonlySet<number>;
  /** `round.closed` of round 1. */
  readonly closings: ReadonlySet<number>;
}

const emptyQueryEntries = (): { submitted: Set<number>; plans: Set<number>; closings: Set<number> } => ({ submitted: new Set(), plans: new Set(), closings: new Set() });

/**
 * What {@link checkStudyView} needs of a participant's view of its study, kept up as verified entries arrive, so a
 * worker that runs for months neither holds every entry in memory nor scans them for each task: when each
 * participant was enrolled in and removed from the study, and the entries of the queries still running. A query
 * ends with `result.released` or `query.failed`; its record is then dropped and its id kept, so that a task for a
 * query that ended (a replay, or a second `query.submitted` under the same id) is answered from the whole view
 * instead ({@link query} returns undefined and the caller reads its saved entries). Memory: the roster, the
 * running queries, and one id per ended query.
 */
export class StudyIndex {
  private readonly enrolledAt = new Map<string, number>();
  private readonly removedAt = new Map<string, number>();
  private readonly running = new Map<string, ReturnType<typeof emptyQueryEntries>>();
  private readonly ended = new Set<string>();
  private last = -1;

  constructor(readonly studyId: string) {}

  /** An index of these entries (in any order; an entry seen twice at one index counts once). */
  static of(studyId: string, entries: Iterable<LedgerEntry>): StudyIndex {
    const index = new StudyIndex(studyId);
    for (const e of entries) index.add(e);
    return index;
  }

  /** Where each participant was first enrolled in the study. */
  get enrolled(): ReadonlyMap<string, number> {
    return this.enrolledAt;
  }

  /** Where each participant was first removed from the study. */
  get removed(): ReadonlyMap<string, number> {
    return this.removedAt;
  }

  /** The highest index seen, or -1. */
  get lastIndex(): number {
    return this.last;
  }

  /** The queries running now, by the entries seen: for a bound on memory in tests and benchmarks. */
  get runningQueries(): number {
    return this.running.size;
  }

  /** Takes one verified entry into account. */
  add(e: LedgerEntry): void {
    if (e.index > this.last) this.last = e.index;
    if (e.type === ENTRY.participantEnrolled || e.type === ENTRY.participantRemoved) {
      const body = parseEntryBody(e.type, e.body);
      const at = e.type === ENTRY.participantEnrolled ? this.enrolledAt : this.removedAt;
      if (body && body.studyId === this.studyId && (at.get(body.participantId) ?? Number.POSITIVE_INFINITY) > e.index) at.set(body.participantId, e.index);
      return;
    }
    const queryId = (e.body as { queryId?: unknown }).queryId;
    if (typeof queryId !== 'string') return;
    if (e.type === ENTRY.resultReleased || e.type === ENTRY.queryFailed) {
      this.running.delete(queryId);
      this.ended.add(queryId);
      return;
    }
    const kind =
      e.type === ENTRY.querySubmitted
        ? 'submitted'
        : e.type === ENTRY.committeeDrawn || e.type === ENTRY.paillierPlanned
          ? 'plans'
          : e.type === ENTRY.roundClosed && (e.body as { round?: unknown }).round === 1
            ? 'closings'
            : undefined;
    if (!kind || this.ended.has(queryId)) return;
    let record = this.running.get(queryId);
    if (!record) this.running.set(queryId, (record = emptyQueryEntries()));
    record[kind].add(e.index);
  }

  /** A running (or not yet seen) query's entries; undefined for a query that ended: read the whole view for it. */
  query(queryId: string): QueryEntries | undefined {
    if (this.ended.has(queryId)) return undefined;
    return this.running.get(queryId) ?? emptyQueryEntries();
  }
}

/** One query's entries among these (a query that ended, read back from the saved view). */
export function queryEntriesOf(queryId: string, entries: Iterable<LedgerEntry>): QueryEntries {
  const index = new StudyIndex('');
  for (const e of entries) if ((e.body as { queryId?: unknown }).queryId === queryId && e.type !== ENTRY.resultReleased && e.type !== ENTRY.queryFailed) index.add(e);
  return index.query(queryId)!;
}

/**
 * Checks against the participant's own view of its study's ledger (every entry of the study it has verified and
 * saved, apps/participant ledger-view, through its {@link StudyIndex}): what a task's evidence cannot show, because
 * the coordinator chose which entries to carry.
 *
 * - The plan asks every participant enrolled in the study before the query was submitted and not removed before
 *   the plan (`participant.removed`), and nobody the study does not have or has removed: a coordinator that leaves
 *   honest participants out, or pads the plan with participants the ledger does not know, makes it easier for ones
 *   it controls to fill the committee or the contributor set.
 * - The query has one `query.submitted` and one plan (`committee.drawn` or `paillier.planned`), and round 1 one
 *   `round.closed`, the ones the task rests on: two versions of a query shown to different participants, or two
 *   contributor sets shown to different committee members, are refused by whoever sees both. (Members also answer
 *   once per query, and a majority threshold means two sets cannot both be opened; this makes the attempt a
 *   refusal that names the entries.)
 * @param query the query's entries in the view: `index.query(queryId)`, or for a query that ended, read from the
 *   saved view ({@link queryEntriesOf})
 * @throws TaskRefusal ROSTER or DUPLICATE naming the participants or entries
 */
export function checkStudyView(queryId: string, participants: readonly string[], facts: LedgerFacts, index: StudyIndex, query: QueryEntries): void {
  const { enrolled, removed } = index;
  // A participant removed before the plan is out of it: leaving it out is right, and listing it is refused, so a
  // removed participant never counts toward the minimum number of participants or sits on a committee.
  const removedBeforePlan = (id: string): boolean => (removed.get(id) ?? Number.POSITIVE_INFINITY) < facts.plan.index;
  const planned = new Set(participants);
  const left = [...enrolled].filter(([id, at]) => at < facts.submitted.index && !planned.has(id) && !removedBeforePlan(id)).map(([id]) => id);
  if (left.length) refuse('ROSTER', `the plan leaves out ${left.length} participant${left.length === 1 ? '' : 's'} enrolled in the study before the query: ${left.join(', ')}`);
  const unknown = participants.filter((id) => !(enrolled.get(id)! < facts.plan.index));
  if (unknown.length) refuse('ROSTER', `the plan lists ${unknown.length} participant${unknown.length === 1 ? '' : 's'} not enrolled in the study before it: ${unknown.join(', ')}`);
  const gone = participants.filter(removedBeforePlan);
  if (gone.length) refuse('ROSTER', `the plan lists ${gone.length} participant${gone.length === 1 ? '' : 's'} removed from the study before it: ${gone.map((id) => `${id} (entry ${removed.get(id)!})`).join(', ')}`);
  const single = (what: string, indices: ReadonlySet<number>, expected: number): void => {
    const all = [...new Set([...indices, expected])].sort((a, b) => a - b);
    if (all.length > 1) refuse('DUPLICATE', `the ledger holds ${all.length} ${what} entries for query ${queryId} (entries ${all.join(', ')}): refusing to act on either`);
  };
  single(ENTRY.querySubmitted, query.submitted, facts.submitted.index);
  single('plan', query.plans, facts.plan.index);
  if (facts.closing) single(`${ENTRY.roundClosed} (round 1)`, query.closings, facts.closing.index);
}
