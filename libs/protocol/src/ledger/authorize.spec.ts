import { deepFreeze } from '../frozen';
import fc from 'fast-check';
import {
  generateKeyPair,
  generatePaillierKeyPair,
  keyFingerprint,
  publicKeyBase64Url,
  publicKeyToJson,
  toBase64Url,
  type KeyPair,
  type PaillierPublicKeyJson,
} from '@confide/crypto';
import { ledgerOrigin, type LedgerEntry } from '@confide/ledger';
import { MemoryLedger } from '../../../../test/support/memory-ledger';
import { seededRandom } from '../../../../test/support/randomness';
import {
  authorizePaillier,
  authorizeShamirRound1,
  authorizeShamirRound2,
  checkStudyView,
  StudyIndex,
  queryEntriesOf,
  openEvidence,
  TaskRefusal,
  type DirectoryKeys,
  type LedgerEvidence,
  type LedgerFacts,
  type PinnedSettings,
  type RefusalCode,
} from './authorize';
import { ENTRY, ledgerSchema } from './ledger-entries';
import { paillierPlanHash, planPaillier, type PaillierPlan } from '../paillier/protocol';
import { researcherStatement, signResearcherStatement } from '../paillier/researcher';
import { effectivePrivacy, type PrivacySettings } from '../privacy/settings';
import { compileQuery, type QuerySpec } from '../query/query';
import { canonicalQuery, queryHash, sha256Hex } from '../hashing';
import { parseStudySchema, type StudySchema, type StudySchemaJson } from '../query/schema';
import type { Round1Closed } from '../shamir/messages';
import { committeeSeed, nonceCommitment, planHash, planShamir, type ShamirPlan } from '../shamir/plan';
import type { WhereCondition } from '../query/where';

// The coordinator is the adversary here: every fixture below is a ledger and a task it could sign. Nothing is
// mocked; entries, proofs and checkpoints are made with libs/ledger exactly as the coordinator makes them.

const rng = seededRandom('protocol/authorize');
const coordinator = generateKeyPair('ed25519', rng);
const coordinatorSealing = generateKeyPair('x25519', rng);
/** Keys the coordinator holds itself and swaps in for a participant's. */
const mallory = { signing: generateKeyPair('ed25519', rng), encryption: generateKeyPair('x25519', rng) };
const ORIGIN = ledgerOrigin(coordinator.publicKey);
const TIME = '2030-01-15T12:00:00.000Z';
const NOW = Date.parse(TIME);
const STUDY_ID = 'salaries-2030';
const QUERY_ID = 'q-7f3a';
const RESEARCHER = 'researcher-1';
/** The nonce the researcher committed to in query.submitted and revealed after the ledger root was signed. */
const NONCE = '5e'.repeat(32);

const STUDY: StudySchemaJson = {
  name: 'salaries',
  minParticipants: 3,
  fields: [
    { name: 'salary', type: 'number', min: 30000, max: 400000, decimals: 2 },
    { name: 'rank', type: 'category', values: ['AsstProf', 'AssocProf', 'Prof'] },
  ],
  privacy: { minGroupSize: 5 },
};
/** The same study with differential privacy pinned: laplace, ε 0.5 per query (a number the ledger writes as text). */
const DP_STUDY: Partial<StudySchemaJson> = { privacy: { minGroupSize: 5, dp: { mechanism: 'laplace', epsilon: 0.5, budget: { epsilon: 5 } } } };
const SPEC: QuerySpec = { select: [{ stat: 'sum', field: 'salary' }, { stat: 'count', field: 'salary' }], groupBy: 'rank' };
/** A filter a coordinator adds to one participant's copy of the query to single out its high earners. */
const HIGH_EARNERS: WhereCondition = { field: 'salary', op: '>=', value: 200000 };

/** The query as a task carries it: the spec with its effective privacy settings. */
type Query = QuerySpec & { readonly privacy: PrivacySettings };
type Body = Record<string, unknown>;
interface Keys {
  readonly encryption: KeyPair;
  readonly signing: KeyPair;
}

const site = (i: number): string => `hospital-${String(i).padStart(2, '0')}`;
const b64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64');

const keyCache = new Map<string, Keys>();
/** Each participant's keys, derived from its id so that any test sees the same keys for it. */
function keysOf(id: string): Keys {
  let keys = keyCache.get(id);
  if (!keys) {
    const own = seededRandom(`protocol/authorize/${id}`);
    keys = { encryption: generateKeyPair('x25519', own), signing: generateKeyPair('ed25519', own) };
    keyCache.set(id, keys);
  }
  return keys;
}

const directoryEntry = (id: string): DirectoryKeys => ({
  id,
  encryptionKey: publicKeyBase64Url(keysOf(id).encryption.publicKey),
  signingKey: publicKeyBase64Url(keysOf(id).signing.publicKey),
});

const enrollment = (id: string): Body => ({
  participantId: id,
  studyId: STUDY_ID,
  name: `Site ${id}`,
  encryptionKeyFingerprint: keyFingerprint(keysOf(id).encryption.publicKey),
  signingKeyFingerprint: keyFingerprint(keysOf(id).signing.publicKey),
  maxRecords: 1000,
});

/** The ledger's first entries: the coordinator's keys, the study, and each site's enrollment; returns study.created's index. */
function genesis(ledger: Ledger, recorded: StudySchema, sites: readonly string[], enrolled: (body: Body, id: string) => Body = (b) => b): number {
  ledger.append(ENTRY.coordinatorKeys, {
    signingKeyFingerprint: keyFingerprint(coordinator.publicKey),
    encryptionKeyFingerprint: keyFingerprint(coordinatorSealing.publicKey),
    encryptionKey: publicKeyBase64Url(coordinatorSealing.publicKey),
  });
  const study = ledger.append(ENTRY.studyCreated, { studyId: STUDY_ID, name: recorded.name, schema: ledgerSchema(recorded) }).index;
  for (const id of sites) ledger.append(ENTRY.participantEnrolled, enrolled(enrollment(id), id));
  return study;
}

/** Round-1 contributors as round.closed names them: each with the hash of its signed bundle. */
const contributorsOf = (ids: readonly string[]): Round1Closed['contributors'] => ids.map((id) => ({ id, bundleHash: sha256Hex(`round-1 bundle of ${id}`) }));

/** The round.closed body for round 1 of the query (orchestrator recordRound1Closed). */
const closedBody = (contributors: Round1Closed['contributors'], participants: readonly string[]): Body => ({
  queryId: QUERY_ID,
  round: 1,
  contributors,
  missing: participants.filter((p) => !contributors.some((c) => c.id === p)),
  refusals: [],
});

/** The coordinator's ledger in memory (test/support/memory-ledger.ts), signed with its key, every entry stamped TIME. */
class Ledger extends MemoryLedger {
  constructor() {
    super(coordinator, TIME);
  }
}

/** What a coordinator does differently from an honest one; each option changes one thing. */
interface ShamirOptions {
  /** How many participants enrolled (default 3; 12 makes the draw pick 10). */
  readonly sites?: number;
  /** The study as pinned at enrollment (and, unless `recordedStudy`, as study.created records it). */
  readonly study?: Partial<StudySchemaJson>;
  /** What study.created records on top of the pinned study. */
  readonly recordedStudy?: Partial<StudySchemaJson>;
  /** Overrides of the effective privacy settings the researcher submitted. */
  readonly privacy?: Partial<PrivacySettings>;
  /** A participant's enrollment body as appended. */
  readonly enrolled?: (body: Body, id: string) => Body;
  /** The query.submitted body as appended. */
  readonly submitted?: (body: Body) => Body;
  /** The query the coordinator plans and sends, instead of the one submitted. */
  readonly sent?: (submitted: Query) => Query;
  /** Whom the plan asks, from the enrolled participants. */
  readonly asked?: (enrolled: readonly string[]) => readonly string[];
  /** The nonce committee.drawn reveals and the seed is derived from. */
  readonly nonce?: string;
  /** A seed the coordinator plans with instead of deriving it. */
  readonly seed?: string;
  /** The plan the coordinator makes and records in committee.drawn, from the honest one. */
  readonly plan?: (honest: ShamirPlan) => ShamirPlan;
  /** The committee.drawn body as appended. */
  readonly drawn?: (body: Body) => Body;
  /** Entries appended at these points; the task carries them too. */
  readonly beforeSubmitted?: (ledger: Ledger) => void;
  readonly afterSubmitted?: (ledger: Ledger) => void;
  readonly afterDrawn?: (ledger: Ledger) => void;
  /** Round 2: who contributed (default every participant asked). */
  readonly contributors?: (participants: readonly string[]) => readonly string[];
  /** Round 2: the contributor set round.closed records, from the task's. */
  readonly closedInLedger?: (contributors: Round1Closed['contributors']) => Round1Closed['contributors'];
  /** Whom the task is for (default: the first participant, in round 2 the first enrolled committee member). */
  readonly self?: (plan: ShamirPlan) => string;
}

interface ShamirTask {
  readonly pinned: PinnedSettings;
  readonly plan: ShamirPlan;
  readonly query: unknown;
  readonly directory: readonly DirectoryKeys[];
  readonly evidence: LedgerEvidence;
  readonly ledger: Ledger;
}

interface Round2Task extends ShamirTask {
  readonly closed: Round1Closed;
}

/** The ledger up to committee.drawn, as the coordinator appends it (orchestrator start), and the plan it drew. */
async function draftShamir(options: ShamirOptions) {
  const schema = parseStudySchema({ ...STUDY, ...options.study });
  const recorded = options.recordedStudy ? parseStudySchema({ ...STUDY, ...options.study, ...options.recordedStudy }) : schema;
  const ledger = new Ledger();
  const carried: number[] = [];
  const hook = (append?: (ledger: Ledger) => void): void => {
    const from = ledger.size;
    append?.(ledger);
    for (let i = from; i < ledger.size; i++) carried.push(i);
  };
  const enrolled = Array.from({ length: options.sites ?? 3 }, (_, i) => site(i + 1));
  carried.push(genesis(ledger, recorded, enrolled, options.enrolled));
  hook(options.beforeSubmitted);

  const submittedQuery: Query = { ...SPEC, privacy: { ...effectivePrivacy(schema.privacy, undefined), ...options.privacy } };
  const submittedBody: Body = {
    queryId: QUERY_ID,
    studyId: STUDY_ID,
    study: schema.name,
    protocol: 'shamir',
    query: canonicalQuery(submittedQuery),
    queryHash: queryHash(submittedQuery),
    submittedBy: RESEARCHER,
    seedCommitment: nonceCommitment(NONCE),
  };
  const submitted = ledger.append(ENTRY.querySubmitted, options.submitted?.(submittedBody) ?? submittedBody).index;
  carried.push(submitted);
  hook(options.afterSubmitted);

  const seedTreeSize = submitted + 1;
  const nonce = options.nonce ?? NONCE;
  const query = options.sent?.(submittedQuery) ?? submittedQuery;
  const honest = planShamir({
    jobId: QUERY_ID,
    queryHash: queryHash(query),
    vectorLength: compileQuery(schema, query).vectorLength,
    participants: options.asked?.(enrolled) ?? enrolled,
    minParticipants: query.privacy.minParticipants,
    seed: options.seed ?? committeeSeed(await ledger.rootAt(seedTreeSize), nonce),
    deadlines: { round1: NOW + 60_000, round2: NOW + 120_000 },
    minThreshold: schema.minThreshold ?? undefined,
  });
  const plan = options.plan?.(honest) ?? honest;
  const drawnBody: Body = {
    queryId: QUERY_ID,
    studyId: STUDY_ID,
    seed: plan.seed,
    nonce,
    seedTreeSize,
    committee: plan.committee,
    threshold: plan.threshold,
    participants: plan.participants,
    planHash: planHash(plan),
  };
  carried.push(ledger.append(ENTRY.committeeDrawn, options.drawn?.(drawnBody) ?? drawnBody).index);
  hook(options.afterDrawn);
  return { schema, ledger, enrolled, plan, query, seedTreeSize, carried };
}

/** A round-1 task for one participant with the evidence the coordinator sends with it. */
async function round1Task(options: ShamirOptions = {}): Promise<ShamirTask> {
  const { schema, ledger, plan, query, seedTreeSize, carried } = await draftShamir(options);
  const members = plan.committee.flatMap((m) => ledger.enrollmentsOf(m));
  return {
    pinned: { participantId: options.self?.(plan) ?? plan.participants[0]!, studyId: STUDY_ID, study: schema },
    plan,
    query,
    directory: plan.committee.map(directoryEntry),
    evidence: await ledger.evidence([...carried, ...members], seedTreeSize),
    ledger,
  };
}

/** A round-2 task for a committee member, after round 1 closed (orchestrator: round.closed, then the contributors' enrollments). */
async function round2Task(options: ShamirOptions = {}): Promise<Round2Task> {
  const { schema, ledger, enrolled, plan, query, seedTreeSize, carried } = await draftShamir(options);
  const ids = options.contributors?.(plan.participants) ?? plan.participants;
  const contributors = contributorsOf(ids);
  const closing = ledger.append(ENTRY.roundClosed, closedBody(options.closedInLedger?.(contributors) ?? contributors, plan.participants)).index;
  const enrollments = ids.flatMap((id) => ledger.enrollmentsOf(id));
  return {
    pinned: { participantId: options.self?.(plan) ?? plan.committee.find((m) => enrolled.includes(m))!, studyId: STUDY_ID, study: schema },
    plan,
    query,
    closed: { jobId: QUERY_ID, planHash: planHash(plan), contributors },
    directory: ids.map(directoryEntry),
    evidence: await ledger.evidence([...carried, closing, ...enrollments], seedTreeSize),
    ledger,
  };
}

const open = (evidence: LedgerEvidence) => openEvidence(evidence, coordinator.publicKey);
const round1 = (t: ShamirTask): LedgerFacts => authorizeShamirRound1({ pinned: t.pinned, plan: t.plan, query: t.query, directory: t.directory, evidence: open(t.evidence) });
const round2 = (t: Round2Task): LedgerFacts =>
  authorizeShamirRound2({ pinned: t.pinned, plan: t.plan, query: t.query, closed: t.closed, directory: t.directory, evidence: open(t.evidence) });

/** Runs an authorisation that must refuse, and checks which rule it names. */
function expectRefusal(run: () => unknown, code: RefusalCode, message: RegExp): TaskRefusal {
  let refusal: unknown;
  try {
    run();
  } catch (err) {
    refusal = err;
  }
  expect(refusal).toBeInstanceOf(TaskRefusal);
  const { code: actual, message: text } = refusal as TaskRefusal;
  expect([actual, text]).toEqual([code, expect.stringMatching(message)]);
  return refusal as TaskRefusal;
}

/** Participants the draw of a plan left out. */
const leftOut = (plan: ShamirPlan): string[] => plan.participants.filter((p) => !plan.committee.includes(p));

describe('openEvidence', () => {
  let task: ShamirTask;
  beforeAll(async () => {
    task = await round1Task();
  });

  it('opens evidence signed with the pinned coordinator key: the checkpoint, each entry at its index, the seed root', async () => {
    const evidence = open(task.evidence);
    expect(evidence.checkpoint).toMatchObject({ origin: ORIGIN, size: 7 });
    expect(evidence.entries.map((e) => [e.index, e.type])).toEqual([
      [1, 'study.created'],
      [2, 'participant.enrolled'],
      [3, 'participant.enrolled'],
      [4, 'participant.enrolled'],
      [5, 'query.submitted'],
      [6, 'committee.drawn'],
    ]);
    expect(evidence.seedRoot?.size).toBe(6);
    expect(Buffer.from(evidence.seedRoot!.root)).toEqual(Buffer.from(await task.ledger.rootAt(6)));
  });

  it('verifies frozen evidence (a part shared by a process\'s workers) once per key, and refuses it for another key', () => {
    const shared = deepFreeze(JSON.parse(JSON.stringify(task.evidence)) as LedgerEvidence);
    const first = openEvidence(shared, coordinator.publicKey);
    expect(openEvidence(shared, coordinator.publicKey)).toBe(first);
    expect(openEvidence(shared, { ...coordinator.publicKey })).toBe(first);
    // A participant that pinned another coordinator key gets no answer checked with this one.
    expectRefusal(() => openEvidence(shared, mallory.signing.publicKey), 'CHECKPOINT', /does not verify with the coordinator key pinned at enrollment/);
    // Evidence that is not frozen is checked every time (someone may have changed it since).
    const loose = JSON.parse(JSON.stringify(task.evidence)) as LedgerEvidence;
    expect(openEvidence(loose, coordinator.publicKey)).not.toBe(openEvidence(loose, coordinator.publicKey));
  });

  it('refuses a checkpoint signed by another key (a ledger forged for this task)', () => {
    expectRefusal(() => open({ ...task.evidence, checkpoint: task.ledger.checkpoint(mallory.signing) }), 'CHECKPOINT', /does not verify with the coordinator key pinned at enrollment/);
  });

  it("refuses an entry carried with another entry's inclusion proof", () => {
    const [study, first] = task.evidence.entries;
    const forged = task.evidence.entries.map((e) => (e === study ? { ...e, proof: first!.proof } : e));
    expectRefusal(() => open({ ...task.evidence, entries: forged }), 'NOT_IN_LEDGER', /entry 1 is not in the signed ledger of 7 entries/);
  });

  it('refuses an entry that claims another leaf index than the one its proof is for', () => {
    const forged = task.evidence.entries.map((e) => (e.index === 5 ? { ...e, index: 3 } : e));
    expectRefusal(() => open({ ...task.evidence, entries: forged }), 'NOT_IN_LEDGER', /entry 3 is not in the signed ledger/);
  });

  it('refuses any carried entry with one byte changed', () => {
    fc.assert(
      fc.property(fc.nat(), fc.nat(), fc.integer({ min: 1, max: 255 }), (which, at, mask) => {
        const target = task.evidence.entries[which % task.evidence.entries.length]!;
        const bytes = Buffer.from(target.entry, 'base64');
        bytes[at % bytes.length] = bytes[at % bytes.length]! ^ mask;
        const forged = task.evidence.entries.map((e) => (e === target ? { ...e, entry: bytes.toString('base64') } : e));
        expectRefusal(() => open({ ...task.evidence, entries: forged }), 'NOT_IN_LEDGER', new RegExp(`entry ${target.index} is not in the signed ledger`));
      }),
      { numRuns: 100 },
    );
  });

  it('refuses an entry replayed at another leaf position', async () => {
    const { ledger } = await round1Task();
    ledger.appendLeaf(ledger.bytesAt(5));
    const evidence = await ledger.evidence([1, 6, 7], 6);
    expectRefusal(() => open(evidence), 'NOT_IN_LEDGER', /entry 7 says it is entry 5/);
  });

  it('refuses a leaf that is not a ledger entry', async () => {
    const { ledger } = await round1Task();
    ledger.appendLeaf(new Uint8Array(Buffer.from('{"index":7,"v":1}')));
    const evidence = await ledger.evidence([1, 7]);
    expectRefusal(() => open(evidence), 'NOT_IN_LEDGER', /entry 7 is malformed/);
  });

  it("refuses a committee-seed root that is not the signed ledger's root at that size", async () => {
    const seedRoot = { ...task.evidence.seedRoot!, root: b64(await task.ledger.rootAt(7)) };
    expectRefusal(() => open({ ...task.evidence, seedRoot }), 'NOT_IN_LEDGER', /the committee seed's ledger root is not the signed ledger's root at size 6/);
  });

  it('refuses a committee-seed root from beyond the checkpoint', () => {
    const seedRoot = { ...task.evidence.seedRoot!, size: 8 };
    expectRefusal(() => open({ ...task.evidence, seedRoot }), 'NOT_IN_LEDGER', /size 8 is beyond the checkpoint's 7/);
  });
});

describe('authorizeShamirRound1', () => {
  it('authorises an honest task and returns the ledger entries it rests on', async () => {
    const facts = round1(await round1Task());
    expect(facts).toMatchObject({ submittedBy: RESEARCHER, submitted: { index: 5, type: 'query.submitted' }, plan: { index: 6, type: 'committee.drawn' } });
    expect(facts.closing).toBeUndefined();
  });

  it('authorises an honest task of a study with differential privacy (ε 0.5, written as text in the ledger)', async () => {
    const task = await round1Task({ study: DP_STUDY });
    expect(task.query).toMatchObject({ privacy: { dp: { mechanism: 'laplace', epsilon: 0.5 } } });
    expect(round1(task).plan.index).toBe(6);
  });

  it('authorises an honest committee of 10 drawn from 12 participants', async () => {
    const task = await round1Task({ sites: 12 });
    expect([task.plan.committee.length, task.plan.threshold]).toEqual([10, 6]);
    expect(round1(task).plan.index).toBe(15);
  });

  describe('the plan against the pinned settings', () => {
    it('refuses threshold 1, where every share is the secret itself', async () => {
      const task = await round1Task({ plan: (p) => ({ ...p, threshold: 1 }) });
      expectRefusal(() => round1(task), 'THRESHOLD', /threshold 1 is below the floor: a majority of the committee of 3/);
    });

    it("refuses a majority threshold below the study's minThreshold", async () => {
      const task = await round1Task({ study: { minThreshold: 3 }, plan: (p) => ({ ...p, threshold: 2 }) });
      expectRefusal(() => round1(task), 'THRESHOLD', /threshold 2 is below the floor: the study's floor is 3/);
    });

    it('refuses a committee of 1 for 3 participants, which would hand one member every share', async () => {
      const task = await round1Task({ plan: (p) => ({ ...p, committee: p.committee.slice(0, 1), threshold: 1 }) });
      expectRefusal(() => round1(task), 'COMMITTEE', /a committee of 1 for 3 participants; the rule is min\(n, 10\) = 3/);
    });

    it('refuses a plan that lists a participant twice, to count one site as two', async () => {
      const task = await round1Task({ plan: (p) => ({ ...p, participants: [...p.participants, p.participants[2]!] }) });
      expectRefusal(() => round1(task), 'COMMITTEE', /the plan lists a participant twice/);
    });

    it('refuses a committee member who is not a participant of the plan', async () => {
      const task = await round1Task({ plan: (p) => ({ ...p, committee: [...p.committee.slice(0, 2), 'mallory-node'] }) });
      expectRefusal(() => round1(task), 'COMMITTEE', /the committee is not a set of the plan's participants/);
    });

    it("refuses a committee too small for the study's threshold floor (minThreshold 4, 3 participants)", async () => {
      const task = await round1Task();
      const pinned = { ...task.pinned, study: parseStudySchema({ ...STUDY, minThreshold: 4 }) };
      expectRefusal(() => round1({ ...task, pinned }), 'THRESHOLD', /requires a threshold of at least 4, more than the committee of 3/);
    });

    it('refuses a threshold below the one the researcher asked for in query.submitted', async () => {
      const task = await round1Task({ submitted: (b) => ({ ...b, threshold: 3 }) });
      expectRefusal(() => round1(task), 'THRESHOLD', /threshold 2 is below the 3 the researcher asked for \(entry 5\)/);
    });

    it('refuses a threshold above the committee, which no quorum can meet', async () => {
      const task = await round1Task({ plan: (p) => ({ ...p, threshold: 4 }) });
      expectRefusal(() => round1(task), 'THRESHOLD', /threshold 4 is above the committee of 3/);
    });

    it('refuses a plan that enforces fewer participants than the study pins, under a query that keeps them', async () => {
      const task = await round1Task({ plan: (p) => ({ ...p, minParticipants: 2 }) });
      expectRefusal(() => round1(task), 'PLAN', /the plan's minParticipants 2 is not the query's 3/);
    });

    it('refuses a plan that enforces fewer participants than its query asks (5 asked, 3 enforced)', async () => {
      const task = await round1Task({ sites: 5, privacy: { minParticipants: 5 }, plan: (p) => ({ ...p, minParticipants: 3 }) });
      expectRefusal(() => round1(task), 'PLAN', /the plan's minParticipants 3 is not the query's 5/);
    });

    it.each<[string, ShamirOptions, RegExp]>([
      ['minParticipants 2', { privacy: { minParticipants: 2 } }, /minParticipants 2 is below the 3 pinned at enrollment/],
      ['minGroupSize 1', { privacy: { minGroupSize: 1 } }, /minGroupSize 1 is below the 5 pinned at enrollment/],
      ['differential privacy off when the study pins it', { study: DP_STUDY, privacy: { dp: null } }, /differential privacy is off, the study pinned at enrollment has laplace with ε 0.5/],
      ['ε 1 above the pinned 0.5', { study: DP_STUDY, privacy: { dp: { mechanism: 'laplace', epsilon: 1 } } }, /dp.epsilon 1 is above the 0.5 pinned at enrollment/],
    ])('refuses query privacy looser than pinned, even when the ledger records it: %s', async (_name, options, message) => {
      const task = await round1Task(options);
      expectRefusal(() => round1(task), 'PRIVACY', message);
    });

    it('refuses a query stripped of its privacy settings', async () => {
      const task = await round1Task();
      expectRefusal(() => round1({ ...task, query: SPEC }), 'PRIVACY', /carries no valid privacy settings/);
    });
  });

  describe('the query and the study in the ledger', () => {
    it('refuses a query narrowed for this participant (an extra where) that the ledger does not record', async () => {
      const task = await round1Task({ sent: (q) => ({ ...q, where: [HIGH_EARNERS] }) });
      expectRefusal(() => round1(task), 'QUERY_HASH', /the task's query is not the query the ledger records for q-7f3a at entry 5/);
    });

    it("refuses a query narrowed under the honest plan, which no longer hashes to the plan's queryHash", async () => {
      const task = await round1Task();
      expectRefusal(() => round1({ ...task, query: { ...(task.query as Query), where: [HIGH_EARNERS] } }), 'QUERY_HASH', /does not hash to its plan's queryHash/);
    });

    it('refuses a query with no JSON form (a bigint member), which no two parties could hash alike', async () => {
      const task = await round1Task();
      expectRefusal(() => round1({ ...task, query: { ...(task.query as Query), maxRecords: 1000n } }), 'QUERY_HASH', /the task's query cannot be hashed/);
    });

    it('refuses a query that is not in the ledger', async () => {
      const task = await round1Task();
      const evidence = await task.ledger.evidence([1, 2, 3, 4, 6], 6);
      expectRefusal(() => round1({ ...task, evidence }), 'NOT_IN_LEDGER', /no query.submitted entry for query q-7f3a/);
    });

    it('refuses a query the ledger records twice (two query.submitted entries)', async () => {
      const task = await round1Task({ afterSubmitted: (ledger) => ledger.append(ENTRY.querySubmitted, ledger.last().body) });
      expectRefusal(() => round1(task), 'DUPLICATE', /the ledger holds 2 query.submitted entries for query q-7f3a \(entries 5, 6\)/);
    });

    it('refuses a query submitted to another study', async () => {
      const task = await round1Task({ submitted: (b) => ({ ...b, studyId: 'payroll-2030' }) });
      expectRefusal(() => round1(task), 'WRONG_STUDY', /query q-7f3a was submitted to another study \(entry 5\)/);
    });

    it('refuses a study whose study.created records other settings than the ones pinned (minGroupSize 1)', async () => {
      const task = await round1Task({ recordedStudy: { privacy: { minGroupSize: 1 } } });
      expectRefusal(() => round1(task), 'STUDY_SETTINGS', /the study the ledger records \(entry 1\) has other settings than the ones pinned at enrollment/);
    });
  });

  describe('the plan, the seed and the draw in the ledger', () => {
    it('refuses a plan other than the one committee.drawn hashes (a later round-2 deadline)', async () => {
      const task = await round1Task();
      const plan = { ...task.plan, deadlines: { ...task.plan.deadlines, round2: task.plan.deadlines.round2 + 3_600_000 } };
      expectRefusal(() => round1({ ...task, plan }), 'PLAN', /the task's plan is not the plan the ledger records for q-7f3a at entry 6/);
    });

    it('refuses a committee.drawn entry that lists another committee than the plan it hashes', async () => {
      const task = await round1Task({ drawn: (b) => ({ ...b, committee: [...(b.committee as string[])].reverse() }) });
      expectRefusal(() => round1(task), 'PLAN', /entry 6 lists another committee, threshold, seed or study than the plan it hashes/);
    });

    it('refuses a committee seed the coordinator chose instead of deriving it from the ledger root and the nonce', async () => {
      const task = await round1Task({ seed: 'c0ffee'.repeat(6) });
      expectRefusal(() => round1(task), 'SEED', /the committee seed is not derived from the ledger's root and the researcher's nonce: the coordinator chose it/);
    });

    it('refuses a committee nonce other than the one the researcher committed to (a nonce ground after the root)', async () => {
      const task = await round1Task({ nonce: 'a7'.repeat(32) });
      expectRefusal(() => round1(task), 'SEED', /the committee nonce in the ledger is not the one the researcher committed to/);
    });

    it('refuses a task that does not prove the ledger root the seed was drawn from', async () => {
      const task = await round1Task();
      expectRefusal(() => round1({ ...task, evidence: { ...task.evidence, seedRoot: undefined } }), 'SEED', /does not prove the ledger root right after query.submitted \(size 6\)/);
    });

    it('refuses a query submitted without a nonce commitment, which leaves the seed to the coordinator alone', async () => {
      const task = await round1Task({ submitted: (b) => ({ ...b, seedCommitment: undefined }) });
      expectRefusal(() => round1(task), 'SEED', /query q-7f3a has no committee nonce commitment in the ledger/);
    });

    it('refuses a malformed committee nonce', async () => {
      const task = await round1Task({ drawn: (b) => ({ ...b, nonce: 'not-a-nonce' }) });
      expectRefusal(() => round1(task), 'SEED', /the committee nonce is malformed/);
    });

    it('refuses a committee that is not the draw from the seed (one drawn member of 10 swapped for one left out)', async () => {
      const task = await round1Task({ sites: 12, plan: (p) => ({ ...p, committee: [...p.committee.slice(0, -1), leftOut(p)[0]!] }) });
      expectRefusal(() => round1(task), 'DRAW', /the committee is not the draw from the seed/);
    });
  });

  describe('the committee members in the ledger', () => {
    it('refuses a committee member enrolled in another study', async () => {
      const task = await round1Task({ enrolled: (b, id) => (id === site(2) ? { ...b, studyId: 'payroll-2030' } : b) });
      expectRefusal(() => round1(task), 'NOT_IN_STUDY', /committee member hospital-02 is enrolled in another study \(entry 3\)/);
    });

    it('refuses a committee member enrolled only after the draw', async () => {
      const task = await round1Task({ asked: (ids) => [...ids, 'hospital-99'], afterDrawn: (ledger) => ledger.append(ENTRY.participantEnrolled, enrollment('hospital-99')) });
      expectRefusal(() => round1(task), 'NOT_IN_STUDY', /committee member hospital-99 enrolled at entry 7, after entry 6/);
    });

    it("refuses a committee member's X25519 key swapped for the coordinator's own", async () => {
      const task = await round1Task();
      const directory = task.directory.map((d) => (d.id === site(2) ? { ...d, encryptionKey: publicKeyBase64Url(mallory.encryption.publicKey) } : d));
      expectRefusal(() => round1({ ...task, directory }), 'KEY_MISMATCH', /committee member hospital-02's encryption key \([0-9a-f]+\) is not the key logged at its enrollment \(entry 3/);
    });

    it("refuses a committee member's key that is no usable X25519 key (the all-zero point of small order)", async () => {
      const task = await round1Task();
      const directory = task.directory.map((d) => (d.id === site(2) ? { ...d, encryptionKey: toBase64Url(new Uint8Array(32)) } : d));
      expectRefusal(() => round1({ ...task, directory }), 'KEY_MISMATCH', /committee member hospital-02's encryption key is invalid/);
    });

    it('refuses a key directory that leaves out a committee member', async () => {
      const task = await round1Task();
      expectRefusal(() => round1({ ...task, directory: task.directory.slice(1) }), 'DIRECTORY', /does not list exactly the committee/);
    });

  it('refuses a task for a participant the plan does not ask', async () => {
      const task = await round1Task({ sites: 4, asked: (ids) => ids.slice(0, 3) });
      expectRefusal(() => round1({ ...task, pinned: { ...task.pinned, participantId: site(4) } }), 'WRONG_JOB', /hospital-04 is not a participant of q-7f3a/);
    });
  });
});

describe('authorizeShamirRound2', () => {
  it('authorises an honest task and returns the round.closed entry it sums over', async () => {
    const facts = round2(await round2Task());
    expect(facts).toMatchObject({ submitted: { index: 5 }, plan: { index: 6 }, closing: { index: 7, type: 'round.closed' } });
  });

  it('refuses a contributor set other than the one round.closed records', async () => {
    const task = await round2Task({ closedInLedger: (c) => c.slice(0, 2) });
    expectRefusal(() => round2(task), 'SET_MISMATCH', /entry 7 records another contributor set than the task carries/);
  });

  it('refuses a contributor the coordinator invented, with no enrollment in the ledger', async () => {
    const task = await round2Task({ asked: (ids) => [...ids, 'ghost'] });
    expect(task.closed.contributors.map((c) => c.id)).toContain('ghost');
    expectRefusal(() => round2(task), 'NOT_IN_LEDGER', /no participant.enrolled entry for contributor ghost/);
  });

  it('refuses a contributor who is enrolled but was not asked by the plan', async () => {
    const task = await round2Task({ sites: 4, asked: (ids) => ids.slice(0, 3), contributors: (ps) => [...ps, site(4)] });
    expectRefusal(() => round2(task), 'SET_MISMATCH', /the closed set lists hospital-04, who is not in the plan/);
  });

  it('refuses a round.closed entry appended before the committee was drawn', async () => {
    const early = closedBody(contributorsOf([site(1), site(2), site(3)]), []);
    const task = await round2Task({ afterSubmitted: (ledger) => ledger.append(ENTRY.roundClosed, early) });
    const evidence = await task.ledger.evidence([1, 2, 3, 4, 5, 6, 7], 6);
    expectRefusal(() => round2({ ...task, evidence }), 'PLAN', /round 1 of q-7f3a closed \(entry 6\) before its committee was drawn/);
  });

  it("refuses a contributor's signing key swapped for the coordinator's own", async () => {
    const task = await round2Task();
    const directory = task.directory.map((d) => (d.id === site(2) ? { ...d, signingKey: publicKeyBase64Url(mallory.signing.publicKey) } : d));
    expectRefusal(() => round2({ ...task, directory }), 'KEY_MISMATCH', /contributor hospital-02's signing key \([0-9a-f]+\) is not the key logged at its enrollment/);
  });

  it('refuses a round-2 task for a participant not on the committee', async () => {
    const task = await round2Task({ sites: 12, self: (p) => leftOut(p)[0]! });
    expectRefusal(() => round2(task), 'WRONG_JOB', new RegExp(`${task.pinned.participantId} is not on the committee of q-7f3a`));
  });

  it("refuses a closed set of another query's round 1", async () => {
    const task = await round2Task();
    expectRefusal(() => round2({ ...task, closed: { ...task.closed, jobId: 'q-0b1d' } }), 'WRONG_JOB', /the closed set is for q-0b1d, not q-7f3a/);
  });
});

describe('authorizePaillier', () => {
  let researcherKey: PaillierPublicKeyJson;
  let coordinatorsPaillierKey: PaillierPublicKeyJson;
  /** The researcher's identity key, bound to its API key (apikey.created), and one the coordinator made itself. */
  const identity = generateKeyPair('ed25519');
  const coordinatorsIdentity = generateKeyPair('ed25519');
  beforeAll(async () => {
    researcherKey = publicKeyToJson((await generatePaillierKeyPair(2048)).publicKey);
    coordinatorsPaillierKey = publicKeyToJson((await generatePaillierKeyPair(2048)).publicKey);
  });

  interface PaillierTask {
    readonly pinned: PinnedSettings;
    readonly plan: PaillierPlan;
    readonly query: unknown;
    readonly evidence: LedgerEvidence;
  }

  interface PaillierOptions extends Pick<ShamirOptions, 'submitted' | 'sent'> {
    readonly plannedFirst?: boolean;
    readonly plannedWithoutDp?: boolean;
    /** The key the plan (and paillier.planned) carries; default the researcher's. */
    readonly planKey?: () => PaillierPublicKeyJson;
    /** The key query.submitted records, and the key and identity that sign the binding. */
    readonly submittedKey?: () => PaillierPublicKeyJson;
    readonly signedKey?: () => PaillierPublicKeyJson;
    readonly signer?: KeyPair;
    /** The apikey.created entry; default a researcher key bound to `identity`, appended before the query. */
    readonly apiKey?: (b: Body) => Body;
    readonly apiKeyAfter?: boolean;
  }

  /** A paillier contribution task with its evidence, as the orchestrator's startPaillier sends it. */
  async function paillierTask(options: PaillierOptions = {}): Promise<PaillierTask> {
    const schema = parseStudySchema(STUDY);
    const sites = [site(1), site(2), site(3)];
    const submittedQuery: Query = { ...SPEC, privacy: effectivePrivacy(schema.privacy, undefined) };
    const query = options.sent?.(submittedQuery) ?? submittedQuery;
    const plan = planPaillier({
      jobId: QUERY_ID,
      queryHash: queryHash(query),
      compiled: compileQuery(schema, query),
      publicKey: options.planKey?.() ?? researcherKey,
      participants: sites,
      minParticipants: query.privacy.minParticipants,
      maxRecords: 1000n,
      deadline: NOW + 60_000,
      dp: options.plannedWithoutDp ? null : query.privacy.dp,
    });
    const submittedKey = options.submittedKey?.() ?? researcherKey;
    const binding = signResearcherStatement(options.signer ?? identity, researcherStatement(schema.name, submittedQuery, options.signedKey?.() ?? submittedKey, null, 'ab'.repeat(32)));
    const body: Body = {
      queryId: QUERY_ID,
      studyId: STUDY_ID,
      study: schema.name,
      protocol: 'paillier',
      query: canonicalQuery(submittedQuery),
      queryHash: queryHash(submittedQuery),
      submittedBy: RESEARCHER,
      publicKey: submittedKey,
      researcher: binding,
    };
    const plannedBody: Body = {
      queryId: QUERY_ID,
      studyId: STUDY_ID,
      participants: plan.participants,
      publicKey: plan.publicKey,
      maxRecords: plan.maxRecords,
      deadline: plan.deadline,
      planHash: paillierPlanHash(plan),
    };
    const apiKeyBody: Body = { keyId: RESEARCHER, role: 'researcher', createdBy: 'bootstrap-admin', identityKey: publicKeyBase64Url(identity.publicKey), identityKeyFingerprint: keyFingerprint(identity.publicKey) };
    const ledger = new Ledger();
    const study = genesis(ledger, schema, sites);
    const bind = () => ledger.append(ENTRY.apiKeyCreated, options.apiKey?.(apiKeyBody) ?? apiKeyBody).index;
    const bound = options.apiKeyAfter ? undefined : bind();
    const submit = () => ledger.append(ENTRY.querySubmitted, options.submitted?.(body) ?? body).index;
    const record = () => ledger.append(ENTRY.paillierPlanned, plannedBody).index;
    const indices = options.plannedFirst ? [record(), submit()] : [submit(), record()];
    const evidence = await ledger.evidence([study, bound ?? bind(), ...indices]);
    return { pinned: { participantId: site(1), studyId: STUDY_ID, study: schema }, plan, query, evidence };
  }
  const contribute = (t: PaillierTask): LedgerFacts => authorizePaillier({ pinned: t.pinned, plan: t.plan, query: t.query, evidence: open(t.evidence) });

  it('authorises an honest task and returns the ledger entries it rests on', async () => {
    expect(contribute(await paillierTask())).toMatchObject({ submittedBy: RESEARCHER, submitted: { index: 6, type: 'query.submitted' }, plan: { index: 7, type: 'paillier.planned' } });
  });

  it("refuses a plan other than the one paillier.planned hashes (the coordinator's own key in place of the researcher's)", async () => {
    const task = await paillierTask();
    expectRefusal(() => contribute({ ...task, plan: { ...task.plan, publicKey: coordinatorsPaillierKey } }), 'PLAN', /the task's plan is not the plan the ledger records for q-7f3a at entry 7/);
  });

  describe("whose key it is: the researcher's binding", () => {
    it("refuses the coordinator's key planned and logged in paillier.planned while query.submitted records the researcher's", async () => {
      const task = await paillierTask({ planKey: () => coordinatorsPaillierKey });
      expectRefusal(() => contribute(task), 'RESEARCHER', /the plan's public key is not the one the ledger records for query q-7f3a \(entry 6\): the coordinator swapped it/);
    });

    it("refuses the coordinator's key in query.submitted with the researcher's signature over the researcher's key", async () => {
      const task = await paillierTask({ planKey: () => coordinatorsPaillierKey, submittedKey: () => coordinatorsPaillierKey, signedKey: () => researcherKey });
      expectRefusal(() => contribute(task), 'RESEARCHER', /signature does not cover this study, query, public key and custodians/);
    });

    it("refuses the coordinator's key signed with an identity key of the coordinator's own", async () => {
      const task = await paillierTask({ planKey: () => coordinatorsPaillierKey, submittedKey: () => coordinatorsPaillierKey, signer: coordinatorsIdentity });
      expectRefusal(() => contribute(task), 'RESEARCHER', /identity key \([0-9a-f]{16}…\) is not the one bound to the submitting API key/);
    });

    it('refuses a query whose submitted entry carries no binding', async () => {
      const task = await paillierTask({ submitted: (b) => Object.fromEntries(Object.entries(b).filter(([k]) => k !== 'researcher')) });
      expectRefusal(() => contribute(task), 'RESEARCHER', /carries no researcher signature over its public key \(entry 6\)/);
    });

    it('refuses an API key bound after the query it submitted (a binding made up afterwards)', async () => {
      const task = await paillierTask({ apiKeyAfter: true });
      expectRefusal(() => contribute(task), 'RESEARCHER', /API key researcher-1 was created \(entry 7\) after the query it submitted/);
    });

    it('refuses an API key that is not a researcher key bound to an identity', async () => {
      const task = await paillierTask({ apiKey: (b) => ({ keyId: b.keyId, role: 'admin', createdBy: 'bootstrap-admin' }) });
      expectRefusal(() => contribute(task), 'RESEARCHER', /API key researcher-1 is not a researcher key bound to an identity key \(entry 5\)/);
    });

    it("refuses a task whose evidence leaves out the API key's binding", async () => {
      const task = await paillierTask();
      const evidence = { ...task.evidence, entries: task.evidence.entries.filter((e) => e.index !== 5) };
      expectRefusal(() => contribute({ ...task, evidence }), 'NOT_IN_LEDGER', /the signed ledger has no apikey.created entry for API key researcher-1/);
    });
  });

  it('refuses a query narrowed for this participant (an extra where) that the ledger does not record', async () => {
    const task = await paillierTask({ sent: (q) => ({ ...q, where: [HIGH_EARNERS] }) });
    expectRefusal(() => contribute(task), 'QUERY_HASH', /the task's query is not the query the ledger records for q-7f3a at entry 6/);
  });

  it('refuses a paillier task for a query submitted for the shamir protocol', async () => {
    const task = await paillierTask({ submitted: (b) => ({ ...b, protocol: 'shamir' }) });
    expectRefusal(() => contribute(task), 'PLAN', /query q-7f3a was submitted for the shamir protocol, the task is paillier/);
  });

  it('refuses a plan recorded before the query it runs was submitted', async () => {
    const task = await paillierTask({ plannedFirst: true });
    expectRefusal(() => contribute(task), 'PLAN', /query q-7f3a was planned \(entry 6\) before it was submitted/);
  });

  it("refuses a plan that drops the differential privacy the query asks for (the aggregate would go out unnoised)", async () => {
    const task = await paillierTask({ sent: (q) => ({ ...q, privacy: { ...q.privacy, dp: { mechanism: 'laplace', epsilon: 0.5 } } }), plannedWithoutDp: true });
    expectRefusal(() => contribute(task), 'PLAN', /the plan's differential privacy is not the query's/);
  });

  it('refuses a task for a participant the plan does not ask', async () => {
    const task = await paillierTask();
    expectRefusal(() => contribute({ ...task, pinned: { ...task.pinned, participantId: site(4) } }), 'WRONG_JOB', /hospital-04 is not a participant of q-7f3a/);
  });
});

describe('StudyIndex', () => {
  const entry = (index: number, type: string, body: object): LedgerEntry => ({ v: 1, index, time: '2026-12-07T00:00:00.000Z', type, body }) as LedgerEntry;
  const enrolled = (index: number, participantId: string, studyId = STUDY_ID) => entry(index, ENTRY.participantEnrolled, { ...enrollment(participantId), studyId });

  it('keeps the roster (first enrollment and removal in its own study) and only the running queries', () => {
    const index = new StudyIndex(STUDY_ID);
    index.add(enrolled(0, site(1)));
    index.add(enrolled(1, site(2), 'payroll-2030'));
    index.add(entry(2, ENTRY.participantRemoved, { participantId: site(1), studyId: STUDY_ID, name: site(1), removedBy: 'admin-1' }));
    for (let q = 0; q < 500; q++) {
      const at = 3 + q * 4;
      index.add(entry(at, ENTRY.querySubmitted, { queryId: `q-${q}` }));
      index.add(entry(at + 1, ENTRY.committeeDrawn, { queryId: `q-${q}` }));
      index.add(entry(at + 2, ENTRY.roundClosed, { queryId: `q-${q}`, round: 1 }));
      if (q < 499) index.add(entry(at + 3, ENTRY.resultReleased, { queryId: `q-${q}` }));
    }
    expect([...index.enrolled]).toEqual([[site(1), 0]]);
    expect([...index.removed]).toEqual([[site(1), 2]]);
    expect(index.runningQueries).toBe(1);
    expect(index.lastIndex).toBe(3 + 499 * 4 + 2);
    const last = index.query('q-499')!;
    expect([[...last.submitted], [...last.plans], [...last.closings]]).toEqual([[1999], [2000], [2001]]);
    expect(index.query('q-3')).toBeUndefined();
    expect([...index.query('q-never')!.submitted]).toEqual([]);
  });

  it('counts an entry seen twice at one index once (a view restored from a backup sees it again)', () => {
    const index = new StudyIndex(STUDY_ID);
    index.add(entry(7, ENTRY.roundClosed, { queryId: 'q-1', round: 1 }));
    index.add(entry(7, ENTRY.roundClosed, { queryId: 'q-1', round: 1 }));
    index.add(entry(9, ENTRY.roundClosed, { queryId: 'q-1', round: 2 }));
    expect([...index.query('q-1')!.closings]).toEqual([7]);
  });
});

describe('checkStudyView', () => {
  const view = (t: ShamirTask, facts: LedgerFacts) => () => {
    const index = StudyIndex.of(t.pinned.studyId, t.ledger.entries);
    checkStudyView(QUERY_ID, t.plan.participants, facts, index, index.query(QUERY_ID)!);
  };

  it('accepts a plan that asks exactly the study, with one query, one plan and one closing', async () => {
    const task = await round2Task();
    expect(view(task, round2(task))).not.toThrow();
  });

  it('names a participant enrolled in the study before the query and left out of the plan', async () => {
    const task = await round1Task({ sites: 4, asked: (ids) => ids.filter((id) => id !== site(4)) });
    expectRefusal(view(task, round1(task)), 'ROSTER', /the plan leaves out 1 participant enrolled in the study before the query: hospital-04$/);
  });

  it('ignores participants enrolled after the query, and enrollments in other studies', async () => {
    const task = await round1Task({
      beforeSubmitted: (ledger) => ledger.append(ENTRY.participantEnrolled, { ...enrollment('payroll-site'), studyId: 'payroll-2030' }),
      afterSubmitted: (ledger) => ledger.append(ENTRY.participantEnrolled, enrollment(site(13))),
    });
    expect(view(task, round1(task))).not.toThrow();
    expect(task.plan.participants).toEqual([site(1), site(2), site(3)]);
  });

  it('accepts a plan that leaves out a participant removed from the study before it (issue 13)', async () => {
    const task = await round1Task({
      sites: 4,
      beforeSubmitted: (ledger) => ledger.append(ENTRY.participantRemoved, { participantId: site(4), studyId: STUDY_ID, name: site(4), removedBy: 'admin-1' }),
      asked: (ids) => ids.filter((id) => id !== site(4)),
    });
    expect(view(task, round1(task))).not.toThrow();
  });

  it('names a removed participant the plan still lists, so that it cannot count toward the minimum or sit on the committee', async () => {
    const task = await round1Task({ sites: 4, beforeSubmitted: (ledger) => ledger.append(ENTRY.participantRemoved, { participantId: site(4), studyId: STUDY_ID, name: site(4), removedBy: 'admin-1' }) });
    expectRefusal(view(task, round1(task)), 'ROSTER', /the plan lists 1 participant removed from the study before it: hospital-04 \(entry \d+\)$/);
  });

  it('names a participant the plan pads itself with that the study does not have (a fake the ledger does not know)', async () => {
    const task = await round1Task({ sites: 12, asked: (ids) => [...ids, 'wraith'] });
    // Off the committee (the draw from this seed leaves it out), so round 1's own checks pass: only the view knows
    // that the study has no "wraith".
    expect(task.plan.committee).not.toContain('wraith');
    expectRefusal(view(task, round1(task)), 'ROSTER', /the plan lists 1 participant not enrolled in the study before it: wraith$/);
  });

  it('names both round.closed entries when round 1 of a query was closed twice, over two contributor sets', async () => {
    const task = await round2Task();
    const facts = round2(task);
    const first = task.ledger.last();
    task.ledger.append(ENTRY.roundClosed, { ...first.body, contributors: task.closed.contributors.slice(0, 2), missing: [site(3)] });
    expectRefusal(view(task, facts), 'DUPLICATE', /2 round.closed \(round 1\) entries for query q-7f3a \(entries 7, 8\): refusing to act on either/);
  });

  it('names two versions of one query, the second shown to other participants', async () => {
    const task = await round1Task();
    const facts = round1(task);
    const submitted = task.ledger.entries.find((e) => e.type === ENTRY.querySubmitted)!;
    task.ledger.append(ENTRY.querySubmitted, { ...submitted.body, query: { ...(submitted.body.query as object), where: [HIGH_EARNERS] } });
    expectRefusal(view(task, facts), 'DUPLICATE', /2 query.submitted entries for query q-7f3a \(entries 5, 7\)/);
  });

  it('names a second query.submitted under the id of a query that ended, from the whole view: the index keeps no ended query', async () => {
    const task = await round1Task();
    const submitted = task.ledger.entries.find((e) => e.type === ENTRY.querySubmitted)!;
    task.ledger.append(ENTRY.queryFailed, { queryId: QUERY_ID, round: 1, reason: 'round 1: the deadline passed', refusals: [] });
    task.ledger.append(ENTRY.querySubmitted, submitted.body);
    const again = task.ledger.last();
    const index = StudyIndex.of(STUDY_ID, task.ledger.entries);
    expect(index.query(QUERY_ID)).toBeUndefined();
    const facts = { ...round1(task), submitted: again };
    expectRefusal(
      () => checkStudyView(QUERY_ID, task.plan.participants, facts, index, queryEntriesOf(QUERY_ID, task.ledger.entries)),
      'DUPLICATE',
      new RegExp(`2 query.submitted entries for query q-7f3a \\(entries ${submitted.index}, ${again.index}\\)`),
    );
  });

  it('names two plans of one query', async () => {
    const task = await round1Task();
    const facts = round1(task);
    const drawn = task.ledger.entries.find((e) => e.type === ENTRY.committeeDrawn)!;
    task.ledger.append(ENTRY.committeeDrawn, { ...drawn.body, threshold: 3 });
    expectRefusal(view(task, facts), 'DUPLICATE', /2 plan entries for query q-7f3a \(entries 6, 7\)/);
  });
});
