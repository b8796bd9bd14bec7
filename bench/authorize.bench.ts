import { randomBytes } from 'node:crypto';
import { generateKeyPair, keyFingerprint, publicKeyBase64Url, type KeyPair } from '@confide/crypto';
import {
  appendLeaves,
  consistencyProof,
  emptyFrontier,
  entryBytes,
  frontierRoot,
  inclusionProof,
  leafHash,
  ledgerOrigin,
  MemoryNodeStore,
  parseEntry,
  signCheckpoint,
  treeRoot,
  type Frontier,
  type LedgerEntry,
} from '@confide/ledger';
import {
  authorizeShamirRound1,
  canonicalQuery,
  checkStudyView,
  StudyIndex,
  committeeSeed,
  compileQuery,
  effectivePrivacy,
  ENTRY,
  ledgerSchema,
  nonceCommitment,
  openEvidence,
  parseStudySchema,
  participantRound1,
  planHash,
  planShamir,
  queryHash,
  sha256Hex,
  type DirectoryKeys,
  type KeyDirectory,
  type LedgerEvidence,
  type PinnedSettings,
  type PrivacySettings,
  type QuerySpec,
  type ShamirPlan,
  type StudySchema,
} from '@confide/protocol';
import { fmt, measure, type BenchSection, type Timing } from './harness';

/**
 * What a participant's authorisation of a shamir round-1 task costs (libs/protocol authorize.ts), beside the round-1
 * work it guards, in one process. The ledger and the evidence are made with libs/ledger exactly as the coordinator
 * makes them (EventLog.evidence), on a MemoryNodeStore instead of the database.
 */

const LEDGER_SIZES = [1_000, 10_000, 100_000] as const;
const PARTICIPANTS = 12;
/** Earlier queries of the study, four entries each: the participant's view holds a few hundred entries. */
const PAST_QUERIES = 75;
/** Other studies' entries appended between query.submitted and committee.drawn, while the researcher reveals its nonce. */
const GAP = 5;
/** Each other study: study.created, its enrollments, then its queries (submitted, drawn, closed, released). */
const OTHER_SITES = 20;
const OTHER_QUERIES = 20;
const OTHER_BLOCK = 1 + OTHER_SITES + OTHER_QUERIES * 4;
const STUDY_ID = 'bench-salaries';
const QUERY_ID = 'q-bench';
const T0 = Date.UTC(2030, 0, 1);
/** Each step is timed in short `measure` windows taken in turn with the others, so that a busy machine slows all of them alike. */
const WINDOWS = 8;
const WINDOW = { minIterations: 10, minMs: 250 };
/** A 3-value local aggregate shared in round 1 (the values `shamir-round1` splits; the cost does not depend on them). */
const AGGREGATE = [532n, 6438800n, 1749n];

type Body = Record<string, unknown>;

interface Site {
  readonly id: string;
  readonly encryption: KeyPair;
  readonly signing: KeyPair;
}

/** The coordinator's ledger in memory: entry bytes as RFC 9162 leaves, perfect subtrees in a node store. */
class BenchLedger {
  readonly store = new MemoryNodeStore();
  /** The study's entries, as the participant's ledger view holds them. */
  readonly studyView: LedgerEntry[] = [];
  private readonly leaves: Uint8Array[] = [];
  private frontier: Frontier = emptyFrontier();

  get size(): number {
    return this.leaves.length;
  }

  append(type: string, body: Body, inStudy = false): number {
    const index = this.size;
    const bytes = entryBytes({ index, type, body: body as LedgerEntry['body'], time: new Date(T0 + index * 60_000).toISOString() });
    const { frontier, nodes } = appendLeaves(this.frontier, [leafHash(bytes)]);
    this.store.put(nodes);
    this.frontier = frontier;
    this.leaves.push(bytes);
    if (inStudy) this.studyView.push(parseEntry(bytes));
    return index;
  }

  /** As the coordinator's EventLog.evidence: entries with inclusion proofs in the newest checkpoint, the seed root with its consistency proof. */
  async evidence(signer: KeyPair, indices: readonly number[], seedSize: number): Promise<LedgerEvidence> {
    const size = this.size;
    const origin = ledgerOrigin(signer.publicKey);
    const b64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64');
    const wanted = [...new Set(indices)].sort((a, b) => a - b);
    const entries = await Promise.all(wanted.map(async (index) => ({ index, entry: b64(this.leaves[index]!), proof: (await inclusionProof(this.store, index, size)).map(b64) })));
    const proof = seedSize === size ? [] : (await consistencyProof(this.store, seedSize, size)).map(b64);
    return {
      checkpoint: signCheckpoint(signer, origin, { origin, size, root: frontierRoot(this.frontier) }),
      entries,
      seedRoot: { size: seedSize, root: b64(await treeRoot(this.store, seedSize)), proof },
    };
  }
}

/** Everything that does not depend on the ledger size: keys, the study, the query. */
interface Fixture {
  readonly coordinator: KeyPair;
  readonly coordinatorSealing: KeyPair;
  readonly sites: readonly Site[];
  readonly schema: StudySchema;
  readonly spec: QuerySpec & { readonly privacy: PrivacySettings };
  readonly vectorLength: number;
}

function fixture(): Fixture {
  const schema = parseStudySchema({
    name: 'bench-salaries',
    minParticipants: 3,
    fields: [
      { name: 'salary', type: 'number', min: 30000, max: 400000, decimals: 2 },
      { name: 'yrs_since_phd', type: 'number', min: 0, max: 60, decimals: 0 },
    ],
  });
  const spec: Fixture['spec'] = { select: [{ stat: 'variance', field: 'salary' }], privacy: effectivePrivacy(schema.privacy, undefined) };
  const sites = Array.from({ length: PARTICIPANTS }, (_, i) => ({ id: `site-${String(i + 1).padStart(2, '0')}`, encryption: generateKeyPair('x25519'), signing: generateKeyPair('ed25519') }));
  const vectorLength = compileQuery(schema, spec).vectorLength;
  if (vectorLength !== AGGREGATE.length) throw new Error(`the bench query compiles to ${vectorLength} values, expected ${AGGREGATE.length}`);
  return { coordinator: generateKeyPair('ed25519'), coordinatorSealing: generateKeyPair('x25519'), sites, schema, spec, vectorLength };
}

const deadlines = { round1: T0 + 3_600_000, round2: T0 + 7_200_000 };

function submittedBody(f: Fixture, studyId: string, queryId: string, nonce: string): Body {
  return {
    queryId,
    studyId,
    study: studyId,
    protocol: 'shamir',
    query: canonicalQuery(f.spec),
    queryHash: queryHash(f.spec),
    submittedBy: 'researcher-1',
    seedCommitment: nonceCommitment(nonce),
  };
}

function drawnBody(studyId: string, plan: ShamirPlan, nonce: string, seedTreeSize: number): Body {
  const { committee, threshold, participants, seed } = plan;
  return { queryId: plan.jobId, studyId, seed, nonce, seedTreeSize, committee, threshold, participants, planHash: planHash(plan) };
}

/** Median of a sorted copy. */
function median(xs: readonly number[]): number {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

/** Times each step in {@link WINDOWS} rounds of one `measure` window per step; the median window's median ms and ops/s. */
async function interleaved<const T extends readonly (() => unknown)[]>(steps: T): Promise<{ readonly [K in keyof T]: Pick<Timing, 'medianMs' | 'opsPerSec'> }> {
  const windows: Timing[][] = steps.map(() => []);
  for (let w = 0; w < WINDOWS; w++) for (const [i, step] of steps.entries()) windows[i]!.push(await measure(step, WINDOW));
  return windows.map((ts) => ({ medianMs: median(ts.map((t) => t.medianMs)), opsPerSec: median(ts.map((t) => t.opsPerSec)) })) as never;
}

/** One query's four entries, as the coordinator appends them over its life (the view's past queries and the padding). */
function queryEntries(f: Fixture, studyId: string, queryId: string, participants: readonly string[], inStudy: boolean): ((l: BenchLedger) => void)[] {
  const nonce = sha256Hex(`nonce ${queryId}`);
  const plan = planShamir({
    jobId: queryId,
    queryHash: queryHash(f.spec),
    vectorLength: f.vectorLength,
    participants,
    minParticipants: 3,
    seed: sha256Hex(`seed ${queryId}`),
    deadlines,
  });
  let submitted = 0;
  return [
    (l) => void (submitted = l.append(ENTRY.querySubmitted, submittedBody(f, studyId, queryId, nonce), inStudy)),
    (l) => void l.append(ENTRY.committeeDrawn, drawnBody(studyId, plan, nonce, submitted + 1), inStudy),
    (l) => {
      const contributors = plan.participants.map((id) => ({ id, bundleHash: sha256Hex(`bundle ${queryId} ${id}`) }));
      l.append(ENTRY.roundClosed, { queryId, round: 1, contributors, missing: [], refusals: [] }, inStudy);
    },
    (l) =>
      void l.append(
        ENTRY.resultReleased,
        { queryId, contributors: plan.participants.length, statistics: [{ stat: 'variance', field: 'salary', value: '1834420117.61' }] },
        inStudy,
      ),
  ];
}

/** The k-th entry of other studies: padding that gives the proofs the depth of a ledger of this size. */
function appendOther(f: Fixture, ledger: BenchLedger, k: number, last: Map<string, ((l: BenchLedger) => void)[]>): void {
  const studyId = `other-${Math.floor(k / OTHER_BLOCK)}`;
  const r = k % OTHER_BLOCK;
  const sites = Array.from({ length: OTHER_SITES }, (_, i) => `${studyId}-site-${i + 1}`);
  if (r === 0) {
    ledger.append(ENTRY.studyCreated, { studyId, name: studyId, schema: ledgerSchema(f.schema) });
  } else if (r <= OTHER_SITES) {
    const id = sites[r - 1]!;
    // Keys of other studies' participants are never checked here: their fingerprints are digests of the same length.
    ledger.append(ENTRY.participantEnrolled, { participantId: id, studyId, name: `Site ${id}`, encryptionKeyFingerprint: sha256Hex(`x ${id}`), signingKeyFingerprint: sha256Hex(`e ${id}`), maxRecords: 1000 });
  } else {
    const q = Math.floor((r - 1 - OTHER_SITES) / 4);
    const queryId = `${studyId}-q${q}`;
    // A query's four entries are consecutive among the padding: plan it once, at its first.
    if (!last.has(queryId)) last.clear();
    const entries = last.get(queryId) ?? queryEntries(f, studyId, queryId, sites, false);
    last.set(queryId, entries);
    entries[(r - 1 - OTHER_SITES) % 4]!(ledger);
  }
}

/** A round-1 task for one participant of a study in a ledger of `size` entries, with the evidence the coordinator sends. */
async function round1Task(f: Fixture, size: number) {
  const ledger = new BenchLedger();
  const ids = f.sites.map((s) => s.id);
  const enrolledAt = new Map<string, number>();
  let studyAt = 0;
  const study: ((l: BenchLedger) => void)[] = [
    (l) => void (studyAt = l.append(ENTRY.studyCreated, { studyId: STUDY_ID, name: f.schema.name, schema: ledgerSchema(f.schema) }, true)),
    ...f.sites.map((s) => (l: BenchLedger) => {
      const body = { participantId: s.id, studyId: STUDY_ID, name: `Site ${s.id}`, encryptionKeyFingerprint: keyFingerprint(s.encryption.publicKey), signingKeyFingerprint: keyFingerprint(s.signing.publicKey), maxRecords: 1000 };
      enrolledAt.set(s.id, l.append(ENTRY.participantEnrolled, body, true));
    }),
    ...Array.from({ length: PAST_QUERIES }, (_, q) => queryEntries(f, STUDY_ID, `q-past-${q}`, ids, true)).flat(),
  ];
  const padding = size - 1 - study.length - 2 - GAP;
  if (padding < 0) throw new Error(`a ledger of ${size} entries cannot hold the study's ${study.length}`);

  ledger.append(ENTRY.coordinatorKeys, {
    signingKeyFingerprint: keyFingerprint(f.coordinator.publicKey),
    encryptionKeyFingerprint: keyFingerprint(f.coordinatorSealing.publicKey),
    encryptionKey: publicKeyBase64Url(f.coordinatorSealing.publicKey),
  });
  // The study's entries spread evenly among other studies' entries, in their order.
  const spread = study.length + padding;
  let other = 0;
  const planned = new Map<string, ((l: BenchLedger) => void)[]>();
  for (let i = 0, done = 0; i < spread; i++) {
    if (Math.floor(((i + 1) * study.length) / spread) > done) study[done++]!(ledger);
    else appendOther(f, ledger, other++, planned);
  }

  const nonce = randomBytes(32).toString('hex');
  const submitted = ledger.append(ENTRY.querySubmitted, submittedBody(f, STUDY_ID, QUERY_ID, nonce), true);
  for (let i = 0; i < GAP; i++) appendOther(f, ledger, other++, planned);
  const seedTreeSize = submitted + 1;
  const plan = planShamir({
    jobId: QUERY_ID,
    queryHash: queryHash(f.spec),
    vectorLength: f.vectorLength,
    participants: ids,
    minParticipants: f.spec.privacy.minParticipants,
    seed: committeeSeed(await treeRoot(ledger.store, seedTreeSize), nonce),
    deadlines,
  });
  const drawn = ledger.append(ENTRY.committeeDrawn, drawnBody(STUDY_ID, plan, nonce, seedTreeSize), true);
  if (ledger.size !== size || plan.committee.length !== 10) throw new Error(`built ${ledger.size} entries and a committee of ${plan.committee.length}`);

  const evidence = await ledger.evidence(f.coordinator, [submitted, drawn, studyAt, ...plan.committee.map((m) => enrolledAt.get(m)!)], seedTreeSize);
  const json = JSON.stringify(evidence);
  const bySite = new Map(f.sites.map((s) => [s.id, s]));
  const self = bySite.get(plan.participants[0]!)!;
  const pinned: PinnedSettings = { participantId: self.id, studyId: STUDY_ID, study: f.schema };
  const directory: DirectoryKeys[] = plan.committee.map((m) => ({
    id: m,
    encryptionKey: publicKeyBase64Url(bySite.get(m)!.encryption.publicKey),
    signingKey: publicKeyBase64Url(bySite.get(m)!.signing.publicKey),
  }));
  const keys: KeyDirectory = new Map(plan.committee.map((m) => [m, { encryption: bySite.get(m)!.encryption.publicKey, signing: bySite.get(m)!.signing.publicKey }]));
  const { select, privacy } = f.spec;
  return {
    // As a worker reads it from Redis: parsed JSON.
    evidence: JSON.parse(json) as LedgerEvidence,
    evidenceBytes: Buffer.byteLength(json, 'utf8'),
    proofHashes: evidence.entries.reduce((n, e) => n + e.proof.length, 0) + evidence.seedRoot!.proof.length,
    view: ledger.studyView,
    pinned,
    plan,
    query: JSON.parse(JSON.stringify({ select, privacy })) as unknown,
    directory,
    keys,
    self,
  };
}

/** Per round-1 task: openEvidence, authorizeShamirRound1, checkStudyView, their sum, against participantRound1, at 10^3–10^5 ledger entries. */
export async function round1ChecksBench(sizes: readonly number[] = LEDGER_SIZES): Promise<BenchSection> {
  const f = fixture();
  const rows: (string | number)[][] = [];
  let carried = 0;
  let viewSize = 0;
  for (const size of sizes) {
    process.stderr.write(`  shamir-round1-checks: ledger of ${size.toLocaleString('en-US')}…\n`);
    const t = await round1Task(f, size);
    carried = t.evidence.entries.length;
    viewSize = t.view.length;
    const key = f.coordinator.publicKey;
    const authorize = (evidence: ReturnType<typeof openEvidence>) => authorizeShamirRound1({ pinned: t.pinned, plan: t.plan, query: t.query, directory: t.directory, evidence });
    const opened = openEvidence(t.evidence, key);
    const facts = authorize(opened);
    // As a worker keeps it: the index of its view is built once and kept up, not rebuilt per task.
    const index = StudyIndex.of(t.pinned.studyId, t.view);
    const [open, auth, view, checks, round1] = await interleaved([
      () => openEvidence(t.evidence, key),
      () => authorize(opened),
      () => checkStudyView(t.plan.jobId, t.plan.participants, facts, index, index.query(t.plan.jobId)!),
      () => checkStudyView(t.plan.jobId, t.plan.participants, authorize(openEvidence(t.evidence, key)), index, index.query(t.plan.jobId)!),
      () => participantRound1({ plan: t.plan, self: t.self.id, signing: t.self.signing, directory: t.keys, aggregate: AGGREGATE }),
    ]);
    rows.push([
      size.toLocaleString('en-US'),
      `${t.evidence.entries.length} + seed root, ${t.proofHashes} hashes`,
      t.evidenceBytes.toLocaleString('en-US'),
      fmt(open.medianMs),
      fmt(auth.medianMs),
      fmt(view.medianMs),
      fmt(checks.medianMs),
      fmt(checks.opsPerSec),
      fmt(round1.medianMs),
      `${fmt(checks.medianMs / round1.medianMs)}×`,
    ]);
  }
  return {
    id: 'shamir-round1-checks',
    title: 'Shamir round 1: what authorising a task costs, against the round-1 work',
    method: [
      `What a participant's worker checks per round-1 task before it computes (libs/protocol authorize.ts), on a real ledger made in memory with libs/ledger exactly as the coordinator makes it (\`entryBytes\` leaves, \`appendLeaves\` into a \`MemoryNodeStore\`, an Ed25519 checkpoint from \`signCheckpoint\`), at ${sizes.map((s) => s.toLocaleString('en-US')).join(', ')} entries. The study has ${PARTICIPANTS} enrolled participants and ${PAST_QUERIES} earlier queries (query.submitted, committee.drawn, round.closed, result.released each), spread among other studies' entries (per study: study.created, ${OTHER_SITES} enrollments, ${OTHER_QUERIES} queries of the same four entries; their key fingerprints are digests, as no one checks them here). The query's query.submitted (variance of salary: count, sum and sum of squares, 3 values) is followed by ${GAP} other studies' entries, then by its committee.drawn, the ledger's last entry: a committee of 10 drawn from ${PARTICIPANTS} with the seed from the ledger root after query.submitted and the researcher's nonce. The evidence is what the coordinator's \`EventLog.evidence\` puts in every participant's task: the checkpoint, query.submitted, committee.drawn, study.created and the 10 members' enrollments (${carried} entries) with inclusion proofs, and the seed root with its consistency proof; "evidence JSON" is the UTF-8 size of that field, what each task adds to Redis, and it is parsed from JSON before timing as a worker reads it.`,
      `Per task, in one process, each step timed with the harness's \`measure\` in ${WINDOWS} windows of ≥ ${WINDOW.minMs} ms (after warm-up), the windows of all steps taken in turn so that other load on the machine falls on all of them alike; each cell is the median window's median ms per call: (1) \`openEvidence\` (checkpoint signature, the inclusion proofs, the consistency proof, parsing the entries); (2) \`authorizeShamirRound1\` on the opened evidence (pinned settings, query hash, plan hash against committee.drawn, seed, draw, 10 members' two key fingerprints); (3) \`checkStudyView\` over the index of the participant's view of its study (${viewSize} entries; a \`StudyIndex\`, built once as a worker keeps it); (4) 1–3 in sequence, timed as one call, and its calls per second. Baseline (5): today's round-1 work for the same plan, \`participantRound1\` (split 3 values with threshold 6, seal 10 X25519+HKDF+AES-256-GCM envelopes, sign with Ed25519: the \`shamir-round1\` row, through the protocol function); (6) = (4) ÷ (5). Local aggregation of the CSV is in neither.`,
      'Not in this figure: the worker\'s ledger view catching up to the task\'s checkpoint (the view update the task carries: a consistency proof and the study\'s new entries with their inclusion proofs, `LedgerView.catchUp`; an HTTP request only when the update is missing or does not fit), which is in the end-to-end latency bench (`e2e-latency`); nor `openTask` (the task\'s schema parse and coordinator signature, now over a task that also carries the evidence).',
    ].join('\n\n'),
    columns: [
      'ledger entries',
      'evidence: entries, proof hashes',
      'evidence JSON (bytes)',
      '1. openEvidence ms',
      '2. authorizeShamirRound1 ms',
      '3. checkStudyView ms',
      '4. checks 1–3 ms',
      'checks/s',
      '5. round 1 ms',
      '6. checks ÷ round 1',
    ],
    rows,
  };
}
