import type { z } from 'zod';
import { importPublicKeyBase64Url, keyFingerprint } from '@confide/crypto';
import { appendLeaves, emptyFrontier, frontierRoot, type LedgerEntry } from '@confide/ledger';
import { ENTRY, ENTRY_BODIES, type CheckedEntryType, type EntryBody } from './ledger-entries';
import { updateSignatureValid } from './participant-statements';
import { checkResearcherBinding, researcherStatementOf } from '../paillier/researcher';
import { queryHash } from '../hashing';
import { committeeSeed, committeeSize, drawCommittee, nonceCommitment, thresholdBelowFloor, thresholdFloor } from '../shamir/plan';

/**
 * The auditor's whole-ledger counterpart of authorize.ts (DESIGN.md "Trust model", "Ledger"): a participant checks
 * the entries one task rests on; `confide ledger verify` checks every entry against every other, so a coordinator
 * that closes a round twice, draws a committee it chose, lowers a threshold or counts a contributor nobody enrolled
 * is caught even where no honest participant was asked. Each rule has a stable id (the keys below, never renamed:
 * auditors' scripts match on them), and a violation is reported at the entry that breaks the rule.
 */
export const LEDGER_RULES = {
  'entry.key': 'an entry the rules read names what it is about: its study, participant, query or round',
  'study.once': 'one study.created per study',
  'query.once': 'one query.submitted per query',
  'query.hash': 'a query.submitted records queryHash(query) of the query it shows',
  'query.study': 'a query is submitted to a study created before it',
  'enrollment.study': 'a participant enrolls in a study created before it',
  'removal.enrolled': 'a participant.removed names a participant enrolled in its study before it, and removes it once',
  'update.signed': "a participant.updated is signed by the participant's enrolled signing key (the key's fingerprint is the one participant.enrolled records), for a participant of its study not removed before it",
  'plan.once': 'one plan (committee.drawn or paillier.planned) per query',
  'plan.after-query': "a plan comes after its query's query.submitted",
  'plan.matches-query': "a plan is in its query's study and is the query protocol's plan: committee.drawn for shamir, paillier.planned for paillier",
  'plan.participants': "a plan's participants are distinct, enrolled in the query's study before the plan, and not removed before it",
  'plan.roster': 'a plan leaves out no participant enrolled in the study before the query was submitted, unless it was removed before the plan',
  'draw.seed-size': "a committee.drawn records seedTreeSize = its query.submitted's index + 1",
  'draw.nonce': 'a committee.drawn reveals the nonce the researcher committed to in query.submitted',
  'draw.seed': 'the committee seed is committeeSeed(ledger root right after query.submitted, nonce)',
  'draw.size': 'a committee has committeeSize(participants) = min(n, 10) members',
  'draw.threshold': "a threshold is from thresholdFloor(k, the study's minThreshold) to k, and the one the researcher asked for, if any",
  'draw.committee': 'a committee is drawCommittee(participants, k, seed), in draw order',
  'round.once': 'one round.closed per query and round',
  'round.plan': "a round closes after its query's plan",
  'round.contributors': "a round's contributors are distinct, participants of the plan, and enrolled in the query's study before it closed",
  'query.researcher':
    "a paillier query records its public key and the researcher's signature over study, query hash, key and custodians, made with the identity key bound to the submitting API key (apikey.created) before it",
  'plan.key': "a paillier.planned carries the public key its query.submitted records",
  'result.decryption': "a paillier result names the aggregate's hash and who decrypted it: the researcher's key, or at least t distinct custodians of the query's key",
} as const;

/** The id of a rule of {@link LEDGER_RULES}. */
export type LedgerRule = keyof typeof LEDGER_RULES;

/** An entry that breaks a rule: its index, the rule, and a sentence naming the query or participant and any other entry involved. */
export interface LedgerRuleViolation {
  readonly index: number;
  readonly rule: LedgerRule;
  readonly message: string;
}

/**
 * The ledger sizes whose roots {@link checkLedgerRules} reads: the size right after each `query.submitted`, the root a
 * committee seed is drawn from (plan.ts committeeSeed). Pass them to {@link prefixRoots}.
 */
export function seedRootSizes(entries: readonly LedgerEntry[]): number[] {
  return entries.filter((e) => e.type === ENTRY.querySubmitted).map((e) => e.index + 1);
}

/**
 * The roots MTH(D[0:size]) of the ledger's prefixes of the given sizes (RFC 9162 §2.1.1), in one pass over the leaf
 * hashes: each leaf is appended to a frontier once, and each root folds O(log n) subtree hashes, so the whole is
 * O(n + sizes·log n) hashing however many queries the ledger holds.
 * @param leafHashes the ledger's leaf hashes (ledger hash.ts leafHash of each entry's bytes), in index order
 * @returns `rootAt(size)` for {@link checkLedgerRules}; it throws RangeError for a size that was not asked for
 * @throws RangeError for a size that is not an integer from 0 to leafHashes.length, or a leaf hash not of 32 bytes
 */
export function prefixRoots(leafHashes: readonly Uint8Array[], sizes: Iterable<number>): (size: number) => Uint8Array {
  const wanted = [...new Set(sizes)].sort((a, b) => a - b);
  for (const size of wanted) {
    if (!Number.isSafeInteger(size) || size < 0 || size > leafHashes.length) throw new RangeError(`prefix size must be an integer from 0 to ${leafHashes.length}, got ${size}`);
  }
  const roots = new Map<number, Uint8Array>();
  let frontier = emptyFrontier();
  for (const size of wanted) {
    frontier = appendLeaves(frontier, leafHashes.slice(frontier.size, size)).frontier;
    roots.set(size, frontierRoot(frontier));
  }
  return (size) => {
    const root = roots.get(size);
    if (root === undefined) throw new RangeError(`no root computed for ledger size ${size}`);
    return root;
  };
}

type Fields<T extends CheckedEntryType> = Partial<EntryBody<T>>;

/**
 * An entry's body read field by field with its ledger-entries.ts schema: the whole body when it parses, else each
 * field that parses on its own (an entry written before the ledger recorded studyId or queryHash keeps the fields it has).
 */
function read<T extends CheckedEntryType>(type: T, body: LedgerEntry['body']): Fields<T> {
  const schema = ENTRY_BODIES[type] as unknown as z.ZodObject<Record<string, z.ZodType>>;
  const whole = schema.safeParse(body);
  if (whole.success) return whole.data as Fields<T>;
  const fields: Record<string, unknown> = {};
  for (const [name, field] of Object.entries(schema.shape)) {
    const parsed = field.safeParse(body[name]);
    if (parsed.success && parsed.data !== undefined) fields[name] = parsed.data;
  }
  return fields as Fields<T>;
}

interface Study {
  readonly index: number;
  /** The study schema's minThreshold: a number, undefined when it sets none, null when it is not a positive integer. */
  readonly minThreshold: number | undefined | null;
}

interface Query {
  readonly index: number;
  readonly label: string;
  readonly body: Fields<typeof ENTRY.querySubmitted>;
  /** How many participants had enrolled in the query's study when it was submitted (a prefix of the study's roster). */
  readonly rosterLength: number;
}

interface Plan {
  readonly index: number;
  readonly type: string;
  /** The plan's participants, when it records them. */
  readonly participants?: ReadonlySet<string>;
}

const s = (n: number): string => (n === 1 ? '' : 's');
const short = (hex: string): string => `${hex.slice(0, 12)}…`;
const text = (value: unknown): string | undefined => (typeof value === 'string' ? value : undefined);
const errorText = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/** Where each key is first recorded, over the whole ledger: lets a message name an entry that comes too late. */
class FirstIndex {
  private readonly first = new Map<string, number>();
  constructor(entries: readonly LedgerEntry[], keys: Readonly<Record<string, string>>) {
    for (const e of entries) {
      const field = keys[e.type];
      const key = field === undefined ? undefined : text(e.body[field]);
      if (key !== undefined && !this.first.has(`${e.type}\n${key}`)) this.first.set(`${e.type}\n${key}`, e.index);
    }
  }
  of(type: string, key: string): number | undefined {
    return this.first.get(`${type}\n${key}`);
  }
}

/** The violations of one entry: each missing field is reported once, by the first rule that needs it. */
class EntryCheck {
  private readonly reported = new Set<string>();
  constructor(
    readonly entry: LedgerEntry,
    readonly label: string,
    private readonly out: LedgerRuleViolation[],
  ) {}

  fail(rule: LedgerRule, message: string): void {
    this.out.push({ index: this.entry.index, rule, message });
  }

  /** Whether `value` (field `field` of the entry `holder`, by default this one) is there; reports it once when not. */
  has<T>(rule: LedgerRule, field: string, value: T | undefined, holder = this.label): value is T {
    if (value !== undefined) return true;
    const key = `${holder}\n${field}`;
    if (!this.reported.has(key)) {
      this.reported.add(key);
      this.fail(rule, `${holder} records no valid ${field}${holder === this.label ? '' : `, which ${this.label} relies on`}`);
    }
    return false;
  }
}

/**
 * Checks the ledger's meaning (DESIGN.md "Ledger"; the rules of {@link LEDGER_RULES}), the whole-ledger counterpart
 * of the checks a participant makes on one task (authorize.ts): one `study.created` per study, and enrollments only
 * in a study created before them; one `query.submitted` per query, with the hash of the query it shows, in a study
 * created before it; one plan per query after it, in its study, over participants enrolled in it, leaving none out;
 * for shamir, a committee seed from the ledger root right after `query.submitted` and the nonce the researcher
 * committed to (plan.ts committeeSeed), a committee of min(n, 10) that is the draw from that seed (plan.ts
 * drawCommittee), a threshold from the floor (plan.ts thresholdFloor with the study's minThreshold) to k; one
 * `round.closed` per query and round, after the plan, counting only the plan's participants enrolled in the study.
 * Other entry types are not read.
 *
 * Older entries. Entries written before the ledger recorded studyId, queryHash, seedCommitment, nonce and
 * seedTreeSize do not parse with the body schemas of ledger-entries.ts, so entries are read field by field: every
 * rule still applies to them, and a rule that needs a field its entry lacks is broken at that entry, with a message
 * naming the field (the ledger cannot show the rule holds). Each missing field is reported once, by the first rule
 * that needs it: a query whose `query.submitted` has no studyId is reported there (query.study), and the rules of
 * its plan and rounds that need its study skip that part (the threshold is then held to the majority floor). An
 * entry of a checked type without its key (studyId; participantId and studyId; queryId; queryId and round) is
 * reported under entry.key and read no further. Entries whose bodies parse are checked strictly.
 *
 * @param entries the whole ledger from index 0, as ledger hash.ts parseEntry reads it; the hashes already verified
 * @param rootAt the ledger root at a size, for the sizes of {@link seedRootSizes} ({@link prefixRoots})
 * @returns every violation, in entry order (rules of one entry in the order above); empty when the ledger keeps them all
 * @throws RangeError when an entry's index is not its position; whatever `rootAt` throws
 */
export function checkLedgerRules(entries: readonly LedgerEntry[], rootAt: (size: number) => Uint8Array): LedgerRuleViolation[] {
  entries.forEach((e, i) => {
    if (e.index !== i) throw new RangeError(`entry ${i} says it is entry ${e.index}: the rules read a whole ledger from index 0`);
  });
  const first = new FirstIndex(entries, {
    [ENTRY.studyCreated]: 'studyId',
    [ENTRY.participantEnrolled]: 'participantId',
    [ENTRY.querySubmitted]: 'queryId',
    [ENTRY.committeeDrawn]: 'queryId',
    [ENTRY.paillierPlanned]: 'queryId',
  });
  const out: LedgerRuleViolation[] = [];
  const studies = new Map<string, Study>();
  /** Per study, who enrolled in it and at which entry (the first time). */
  const enrolled = new Map<string, Map<string, number>>();
  /** Per study, its participants in enrollment order. */
  const rosters = new Map<string, string[]>();
  /** Where each participant was removed (the first time), and the signing key fingerprint it enrolled with. */
  const removed = new Map<string, number>();
  const signingKeys = new Map<string, string>();
  const removedBefore = (id: string, at: number): boolean => (removed.get(id) ?? Number.POSITIVE_INFINITY) < at;
  const queries = new Map<string, Query>();
  const plans = new Map<string, Plan>();
  const closings = new Map<string, number>();
  /** API keys by id: where each was created, and the identity key's fingerprint bound to a researcher key. */
  const apiKeys = new Map<string, { index: number; role?: string; fingerprint?: string }>();

  const enrolledIn = (studyId: string): Map<string, number> => enrolled.get(studyId) ?? new Map<string, number>();
  const firstPlan = (queryId: string): number | undefined => {
    const drawn = first.of(ENTRY.committeeDrawn, queryId);
    const planned = first.of(ENTRY.paillierPlanned, queryId);
    return drawn === undefined ? planned : planned === undefined ? drawn : Math.min(drawn, planned);
  };
  /** Why `id` is not enrolled in `studyId` before entry `at`, the entry checked. */
  const notEnrolled = (id: string, studyId: string, at: number): string => {
    const found = first.of(ENTRY.participantEnrolled, id);
    if (found === undefined) return 'never enrolled';
    const other = text(entries[found]!.body.studyId);
    if (other !== studyId) return `enrolled in study ${other ?? '?'}, entry ${found}`;
    return `enrolled only at entry ${found}, after entry ${at}`;
  };
  /** Reports `rule` at `check` unless study `studyId` was created before it. */
  const studyBefore = (check: EntryCheck, rule: LedgerRule, what: string, studyId: string): void => {
    if (studies.has(studyId)) return;
    const later = first.of(ENTRY.studyCreated, studyId);
    check.fail(rule, `${what} study ${studyId}, which has no study.created before it${later === undefined ? '' : `; it is created only at entry ${later}`}`);
  };

  for (const entry of entries) {
    const { index } = entry;
    switch (entry.type) {
      case ENTRY.studyCreated: {
        const body = read(ENTRY.studyCreated, entry.body);
        if (body.studyId === undefined) {
          out.push({ index, rule: 'entry.key', message: `study.created (entry ${index}) records no valid studyId` });
          break;
        }
        const earlier = studies.get(body.studyId);
        if (earlier) {
          // A second study.created could carry other settings (a lower minThreshold); the first one stands.
          out.push({ index, rule: 'study.once', message: `study ${body.studyId} is created twice: study.created at entries ${earlier.index} and ${index}` });
          break;
        }
        const minThreshold = body.schema?.minThreshold;
        studies.set(body.studyId, {
          index,
          minThreshold: minThreshold === undefined ? undefined : typeof minThreshold === 'number' && Number.isSafeInteger(minThreshold) && minThreshold >= 1 ? minThreshold : null,
        });
        break;
      }

      case ENTRY.participantEnrolled: {
        const body = read(ENTRY.participantEnrolled, entry.body);
        if (body.participantId === undefined || body.studyId === undefined) {
          out.push({ index, rule: 'entry.key', message: `participant.enrolled (entry ${index}) records no valid ${body.participantId === undefined ? 'participantId' : 'studyId'}` });
          break;
        }
        const check = new EntryCheck(entry, `participant.enrolled of ${body.participantId} (entry ${index})`, out);
        studyBefore(check, 'enrollment.study', `${body.participantId} (entry ${index}) enrolls in`, body.studyId);
        const members = enrolled.get(body.studyId) ?? new Map<string, number>();
        enrolled.set(body.studyId, members);
        if (!members.has(body.participantId)) {
          members.set(body.participantId, index);
          if (body.signingKeyFingerprint !== undefined) signingKeys.set(body.participantId, body.signingKeyFingerprint);
          const roster = rosters.get(body.studyId) ?? [];
          rosters.set(body.studyId, roster);
          roster.push(body.participantId);
        }
        break;
      }

      case ENTRY.participantRemoved:
      case ENTRY.participantUpdated: {
        const body = entry.type === ENTRY.participantRemoved ? read(ENTRY.participantRemoved, entry.body) : read(ENTRY.participantUpdated, entry.body);
        if (body.participantId === undefined || body.studyId === undefined) {
          out.push({ index, rule: 'entry.key', message: `${entry.type} (entry ${index}) records no valid ${body.participantId === undefined ? 'participantId' : 'studyId'}` });
          break;
        }
        const { participantId, studyId } = body;
        const rule: LedgerRule = entry.type === ENTRY.participantRemoved ? 'removal.enrolled' : 'update.signed';
        const check = new EntryCheck(entry, `${entry.type} of ${participantId} (entry ${index})`, out);
        if (!enrolledIn(studyId).has(participantId)) check.fail(rule, `${check.label} names a participant not enrolled in study ${studyId} before it (${notEnrolled(participantId, studyId, index)})`);
        else if (removed.has(participantId)) check.fail(rule, `${check.label}: ${participantId} was already removed at entry ${removed.get(participantId)!}`);
        if (entry.type === ENTRY.participantRemoved) {
          if (!removed.has(participantId)) removed.set(participantId, index);
          break;
        }
        checkUpdateSignature(check, read(ENTRY.participantUpdated, entry.body), signingKeys.get(participantId));
        break;
      }

      case ENTRY.querySubmitted: {
        const body = read(ENTRY.querySubmitted, entry.body);
        if (body.queryId === undefined) {
          out.push({ index, rule: 'entry.key', message: `query.submitted (entry ${index}) records no valid queryId` });
          break;
        }
        const label = `query.submitted of query ${body.queryId} (entry ${index})`;
        const check = new EntryCheck(entry, label, out);
        const earlier = queries.get(body.queryId);
        if (earlier) check.fail('query.once', `query ${body.queryId} is submitted twice: query.submitted at entries ${earlier.index} and ${index}`);
        if (check.has('query.hash', 'query', body.query) && check.has('query.hash', 'queryHash', body.queryHash)) {
          let hash: string | undefined;
          try {
            hash = queryHash(body.query);
          } catch (err) {
            check.fail('query.hash', `${label} shows a query that cannot be hashed: ${errorText(err)}`);
          }
          if (hash !== undefined && hash !== body.queryHash) {
            check.fail('query.hash', `${label} records queryHash ${short(body.queryHash)} but the query it shows hashes to ${short(hash)}: the ledger shows another query than the one it commits to`);
          }
        }
        if (check.has('query.study', 'studyId', body.studyId)) studyBefore(check, 'query.study', `query ${body.queryId} (entry ${index}) is submitted to`, body.studyId);
        if (body.protocol === 'paillier') checkResearcher(check, body, apiKeys);
        if (!earlier) queries.set(body.queryId, { index, label, body, rosterLength: body.studyId === undefined ? 0 : (rosters.get(body.studyId)?.length ?? 0) });
        break;
      }

      case ENTRY.committeeDrawn:
      case ENTRY.paillierPlanned: {
        const drawBody = entry.type === ENTRY.committeeDrawn ? read(ENTRY.committeeDrawn, entry.body) : undefined;
        const body = drawBody ?? read(ENTRY.paillierPlanned, entry.body);
        if (body.queryId === undefined) {
          out.push({ index, rule: 'entry.key', message: `${entry.type} (entry ${index}) records no valid queryId` });
          break;
        }
        const { queryId } = body;
        const label = `${entry.type} of query ${queryId} (entry ${index})`;
        const check = new EntryCheck(entry, label, out);
        const earlier = plans.get(queryId);
        if (earlier) check.fail('plan.once', `query ${queryId} is planned twice: ${earlier.type} at entry ${earlier.index} and ${entry.type} at entry ${index}`);
        else plans.set(queryId, { index, type: entry.type, participants: body.participants && new Set(body.participants) });
        const query = queries.get(queryId);
        if (!query) {
          const later = first.of(ENTRY.querySubmitted, queryId);
          check.fail('plan.after-query', `${label} comes before the query was submitted${later === undefined ? ': the ledger has no query.submitted for it' : ` (query.submitted at entry ${later})`}`);
          // The checks below compare the plan with its query; without one, this violation stands for them.
          break;
        }
        const studyId = query.body.studyId;
        if (check.has('plan.matches-query', 'protocol', query.body.protocol, query.label)) {
          const expected = query.body.protocol === 'shamir' ? ENTRY.committeeDrawn : ENTRY.paillierPlanned;
          if (entry.type !== expected) check.fail('plan.matches-query', `${label} plans a query submitted for the ${query.body.protocol} protocol (entry ${query.index}), whose plan is ${expected}`);
        }
        if (check.has('plan.matches-query', 'studyId', body.studyId) && studyId !== undefined && body.studyId !== studyId) {
          check.fail('plan.matches-query', `${label} is in study ${body.studyId}, but the query was submitted to study ${studyId} (entry ${query.index})`);
        }
        if (check.has('plan.participants', 'participants', body.participants) && studyId !== undefined) {
          const members = enrolledIn(studyId);
          const seen = new Set<string>();
          const problems: string[] = [];
          for (const id of body.participants) {
            if (seen.has(id)) problems.push(`${id} (listed twice)`);
            else if (!members.has(id)) problems.push(`${id} (${notEnrolled(id, studyId, index)})`);
            else if (removedBefore(id, index)) problems.push(`${id} (removed at entry ${removed.get(id)!})`);
            seen.add(id);
          }
          if (problems.length) check.fail('plan.participants', `${label} lists ${problems.length} participant${s(problems.length)} not enrolled in study ${studyId} before it: ${problems.join(', ')}`);
          const left = (rosters.get(studyId) ?? []).slice(0, query.rosterLength).filter((id) => !seen.has(id) && !removedBefore(id, index));
          if (left.length) {
            check.fail(
              'plan.roster',
              `${label} leaves out ${left.length} participant${s(left.length)} enrolled in study ${studyId} before the query was submitted (entry ${query.index}): ${left.map((id) => `${id} (entry ${members.get(id)!})`).join(', ')}`,
            );
          }
        }
        if (drawBody) checkDraw(check, drawBody, query, studyId === undefined ? undefined : studies.get(studyId), rootAt);
        else if (query.body.protocol === 'paillier') {
          const planned = body as Fields<typeof ENTRY.paillierPlanned>;
          if (check.has('plan.key', 'publicKey', planned.publicKey) && planned.publicKey.n !== query.body.publicKey?.n) {
            check.fail('plan.key', `${label} plans with another public key than the one query ${queryId} was submitted with (entry ${query.index}): participants would encrypt to a key the researcher did not sign`);
          }
        }
        break;
      }

      case ENTRY.apiKeyCreated: {
        const body = read(ENTRY.apiKeyCreated, entry.body);
        if (body.keyId !== undefined && !apiKeys.has(body.keyId)) apiKeys.set(body.keyId, { index, role: body.role, fingerprint: body.identityKeyFingerprint });
        break;
      }

      case ENTRY.resultReleased: {
        const queryId = text(entry.body.queryId);
        const query = queryId === undefined ? undefined : queries.get(queryId);
        if (!query || query.body.protocol !== 'paillier') break;
        const check = new EntryCheck(entry, `result.released of query ${queryId} (entry ${index})`, out);
        checkDecryption(check, entry.body.paillier, query);
        break;
      }

      case ENTRY.roundClosed: {
        const body = read(ENTRY.roundClosed, entry.body);
        if (body.queryId === undefined || body.round === undefined) {
          out.push({ index, rule: 'entry.key', message: `round.closed (entry ${index}) records no valid ${body.queryId === undefined ? 'queryId' : 'round'}` });
          break;
        }
        const { queryId, round } = body;
        const label = `round.closed of round ${round} of query ${queryId} (entry ${index})`;
        const check = new EntryCheck(entry, label, out);
        const key = `${queryId}\n${round}`;
        const earlier = closings.get(key);
        if (earlier !== undefined) check.fail('round.once', `round ${round} of query ${queryId} is closed twice: round.closed at entries ${earlier} and ${index}`);
        else closings.set(key, index);
        const plan = plans.get(queryId);
        if (!plan) {
          const later = firstPlan(queryId);
          check.fail('round.plan', `${label} closes a round of a query with no plan before it${later === undefined ? ': the ledger has no committee.drawn or paillier.planned for it' : ` (its plan is at entry ${later})`}`);
          break;
        }
        const studyId = queries.get(queryId)?.body.studyId;
        if (!check.has('round.contributors', 'contributors', body.contributors) || plan.participants === undefined || studyId === undefined) break;
        const members = enrolledIn(studyId);
        const seen = new Set<string>();
        const problems: string[] = [];
        for (const { id } of body.contributors) {
          const reasons: string[] = [];
          if (seen.has(id)) reasons.push('listed twice');
          else {
            if (!plan.participants.has(id)) reasons.push(`not a participant of the ${plan.type} at entry ${plan.index}`);
            if (!members.has(id)) reasons.push(notEnrolled(id, studyId, index));
          }
          if (reasons.length) problems.push(`${id} (${reasons.join('; ')})`);
          seen.add(id);
        }
        if (problems.length) check.fail('round.contributors', `${label} counts ${problems.length} contributor${s(problems.length)} outside the plan or study ${studyId}: ${problems.join(', ')}`);
        break;
      }

      default:
        break;
    }
  }
  return out;
}

/** A `participant.updated` carries the statement the participant signed, with the key it enrolled. */
function checkUpdateSignature(check: EntryCheck, body: Fields<typeof ENTRY.participantUpdated>, enrolledFingerprint: string | undefined): void {
  const { participantId, studyId, maxRecords, previousMaxRecords, time, signingKey, signature } = body;
  if (
    !check.has('update.signed', 'signingKey', signingKey) ||
    !check.has('update.signed', 'signature', signature) ||
    !check.has('update.signed', 'maxRecords', maxRecords) ||
    !check.has('update.signed', 'previousMaxRecords', previousMaxRecords) ||
    !check.has('update.signed', 'time', time) ||
    participantId === undefined ||
    studyId === undefined ||
    enrolledFingerprint === undefined
  ) {
    return;
  }
  let key;
  try {
    key = importPublicKeyBase64Url('ed25519', signingKey);
  } catch (err) {
    check.fail('update.signed', `${check.label} carries a signing key that is not an Ed25519 key: ${errorText(err)}`);
    return;
  }
  if (keyFingerprint(key) !== enrolledFingerprint) {
    check.fail('update.signed', `${check.label} is signed with key ${short(keyFingerprint(key))}, not the key ${short(enrolledFingerprint)} the participant enrolled with`);
  } else if (!updateSignatureValid(key, { participantId, studyId, maxRecords, previousMaxRecords, time }, signature)) {
    check.fail('update.signed', `${check.label}: the signature does not verify: the participant did not sign this update`);
  }
}

/** A paillier query's key binding: the researcher signed this key for this query, with the identity bound to its API key. */
function checkResearcher(check: EntryCheck, body: Fields<typeof ENTRY.querySubmitted>, apiKeys: ReadonlyMap<string, { index: number; role?: string; fingerprint?: string }>): void {
  if (!check.has('query.researcher', 'publicKey', body.publicKey) || !check.has('query.researcher', 'researcher', body.researcher)) return;
  const submittedBy = body.submittedBy ?? undefined;
  if (!check.has('query.researcher', 'submittedBy', submittedBy) || body.study === undefined || body.queryHash === undefined) return;
  const key = apiKeys.get(submittedBy);
  if (!key) {
    check.fail('query.researcher', `${check.label} was submitted with API key ${submittedBy}, which has no apikey.created before it`);
    return;
  }
  if (key.role !== 'researcher' || key.fingerprint === undefined) {
    check.fail('query.researcher', `${check.label} was submitted with API key ${submittedBy}, which is not a researcher key bound to an identity key (entry ${key.index})`);
    return;
  }
  const problem = checkResearcherBinding(body.researcher, researcherStatementOf({ study: body.study, queryHash: body.queryHash, publicKey: body.publicKey, custodians: body.custodians }, body.researcher.nonce), key.fingerprint);
  if (problem) check.fail('query.researcher', `${check.label}: ${problem}`);
}

/** A paillier result names the aggregate it decrypts and who decrypted it. */
function checkDecryption(check: EntryCheck, paillier: unknown, query: Query): void {
  const fields = (typeof paillier === 'object' && paillier !== null ? paillier : {}) as { aggregateHash?: unknown; custodians?: unknown };
  if (typeof fields.aggregateHash !== 'string' || !/^[0-9a-f]{64}$/.test(fields.aggregateHash)) {
    check.fail('result.decryption', `${check.label} names no aggregate hash: nobody who checked the aggregate can tell this result is its decryption`);
    return;
  }
  const custodians = query.body.custodians as { custodians?: unknown; threshold?: unknown } | undefined;
  if (!custodians) {
    if (fields.custodians !== null) check.fail('result.decryption', `${check.label} names custodians, but query ${text(query.body.queryId) ?? '?'} was submitted for one researcher's key (entry ${query.index})`);
    return;
  }
  const l = typeof custodians.custodians === 'number' ? custodians.custodians : 0;
  const t = typeof custodians.threshold === 'number' ? custodians.threshold : Number.POSITIVE_INFINITY;
  const used = Array.isArray(fields.custodians) ? fields.custodians : [];
  const valid = new Set(used.filter((i): i is number => Number.isSafeInteger(i) && (i as number) >= 1 && (i as number) <= l));
  if (valid.size !== used.length || valid.size < t) {
    check.fail('result.decryption', `${check.label} is decrypted by custodians ${JSON.stringify(fields.custodians)}, not ${t} distinct custodians of the ${l} its query's key is split among (entry ${query.index})`);
  }
}

/** The rules of a `committee.drawn` entry of its own: seed, nonce, committee size, threshold and the draw. */
function checkDraw(check: EntryCheck, body: Fields<typeof ENTRY.committeeDrawn>, query: Query, study: Study | undefined, rootAt: (size: number) => Uint8Array): void {
  const { label } = check;
  const seedSize = query.index + 1;
  if (check.has('draw.seed-size', 'seedTreeSize', body.seedTreeSize) && body.seedTreeSize !== seedSize) {
    check.fail('draw.seed-size', `${label} records seedTreeSize ${body.seedTreeSize}, but the seed's root is the one right after query.submitted (entry ${query.index}): size ${seedSize}`);
  }
  let nonceOk = false;
  if (check.has('draw.nonce', 'nonce', body.nonce) && check.has('draw.nonce', 'seedCommitment', query.body.seedCommitment, query.label)) {
    let commitment: string | undefined;
    try {
      commitment = nonceCommitment(body.nonce);
    } catch (err) {
      check.fail('draw.nonce', `${label} reveals a malformed nonce: ${errorText(err)}`);
    }
    if (commitment !== undefined && commitment !== query.body.seedCommitment) {
      check.fail('draw.nonce', `${label} reveals a nonce the researcher did not commit to in query.submitted (entry ${query.index})`);
    }
    nonceOk = commitment !== undefined;
  }
  // The root right after query.submitted, whatever seedTreeSize says: a wrong size is draw.seed-size's violation.
  if (check.has('draw.seed', 'seed', body.seed) && nonceOk && body.nonce !== undefined) {
    const expected = committeeSeed(rootAt(seedSize), body.nonce);
    if (body.seed !== expected) {
      check.fail('draw.seed', `${label} records seed ${short(body.seed)}, not the seed ${short(expected)} from the ledger root right after query.submitted (entry ${query.index}) and the nonce: the coordinator chose it`);
    }
  }
  const { committee, participants } = body;
  if (!check.has('draw.size', 'committee', committee) || participants === undefined) return;
  const k = committee.length;
  const n = participants.length;
  if (n === 0 || k !== committeeSize(n)) {
    check.fail('draw.size', `${label} has a committee of ${k} for ${n} participant${s(n)}; the rule is min(n, 10) = ${n === 0 ? 'no committee' : committeeSize(n)}`);
  }
  if (check.has('draw.threshold', 'threshold', body.threshold) && k >= 1) {
    const t = body.threshold;
    if (study?.minThreshold === null) {
      check.fail('draw.threshold', `${label} has a threshold whose floor cannot be read: study.created (entry ${study.index}) records a minThreshold that is not a positive integer`);
    } else {
      // A query submitted to a study that does not exist yet is query.study's violation; its floor is the majority.
      const floor = thresholdFloor(k, study?.minThreshold ?? 1);
      const asked = query.body.threshold;
      if (t < floor) check.fail('draw.threshold', `${label}: ${thresholdBelowFloor(t, floor, k)}`);
      else if (t > k) check.fail('draw.threshold', `${label}: threshold ${t} is above the committee of ${k}`);
      else if (asked !== undefined && t !== asked) check.fail('draw.threshold', `${label}: threshold ${t} is not the ${asked} the researcher asked for in query.submitted (entry ${query.index})`);
    }
  }
  if (body.seed === undefined || new Set(participants).size !== n) return;
  const draw = drawCommittee(participants, k, body.seed);
  if (draw.some((id, i) => committee[i] !== id)) {
    const picked = committee.filter((id) => !draw.includes(id));
    const dropped = draw.filter((id) => !committee.includes(id));
    const why = [...picked.map((id) => `${id} is not drawn`), ...dropped.map((id) => `${id} is drawn but left out`)];
    check.fail('draw.committee', `${label} lists a committee that is not the draw from its seed (${why.length ? why.join(', ') : 'the members are out of draw order'}): the draw is ${draw.join(', ')}`);
  }
}
