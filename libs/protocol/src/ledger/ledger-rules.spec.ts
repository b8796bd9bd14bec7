import fc from 'fast-check';
import { entryBytes, leafHash, merkleTreeHash, parseEntry, type LedgerEntry } from '@confide/ledger';
import { generateKeyPair, keyFingerprint, publicKeyBase64Url, type KeyPair } from '@confide/crypto';
import { ENTRY, ledgerSchema } from './ledger-entries';
import { checkLedgerRules, prefixRoots, seedRootSizes, type LedgerRule, type LedgerRuleViolation } from './ledger-rules';
import { signUpdateStatement } from './participant-statements';
import { custodiansHash, researcherStatement, signResearcherStatement } from '../paillier/researcher';
import { canonicalQuery, queryHash, sha256Hex } from '../hashing';
import { parseStudySchema } from '../query/schema';
import { committeeSeed, drawCommittee, MAX_COMMITTEE, nonceCommitment, thresholdFloor } from '../shamir/plan';

// A synthetic ledger with real entry bytes, leaf hashes, roots, nonce commitments, seeds and draws: the histories
// below are what an honest coordinator appends (apps/coordinator studies, enrollment, queries and orchestrator
// services), and each attack changes one thing in them and rebuilds every entry after it.

type Body = Record<string, unknown>;

/** A ledger built so far: its entries, their leaf hashes, and the root of any prefix (RFC 9162 MTH). */
interface Ledger {
  readonly entries: readonly LedgerEntry[];
  readonly leaves: readonly Uint8Array[];
  readonly rootAt: (size: number) => Uint8Array;
  /** Index of the first entry of `type` about `key` (its queryId, participantId or studyId). */
  readonly at: (type: string, key: string) => number;
}

/** One event of a history: a fixed body, or one derived from the ledger before it (a committee draw's seed). */
interface Event {
  readonly type: string;
  readonly key: string;
  readonly body: Body | ((before: Ledger) => Body);
}

const time = (index: number): string => new Date(Date.UTC(2026, 0, 1) + index * 1000).toISOString();

function ledgerOf(entries: readonly LedgerEntry[], leaves: readonly Uint8Array[]): Ledger {
  return {
    entries,
    leaves,
    rootAt: (size) => merkleTreeHash(leaves.slice(0, size)),
    at: (type, key) => {
      const found = entries.find((e) => e.type === type && [e.body.queryId, e.body.participantId, e.body.studyId].includes(key));
      if (!found) throw new Error(`no ${type} for ${key} in the ledger so far`);
      return found.index;
    },
  };
}

/** Appends the events in order, each at the next index, with real entry bytes (hash.ts entryBytes). */
function build(events: readonly Event[]): Ledger {
  const entries: LedgerEntry[] = [];
  const leaves: Uint8Array[] = [];
  events.forEach((event, index) => {
    const body = typeof event.body === 'function' ? event.body(ledgerOf(entries, leaves)) : event.body;
    const bytes = entryBytes({ index, type: event.type, time: time(index), body: body as LedgerEntry['body'] });
    entries.push(parseEntry(bytes));
    leaves.push(leafHash(bytes));
  });
  return ledgerOf(entries, leaves);
}

const ids = (n: number, prefix = 'p'): string[] => Array.from({ length: n }, (_, i) => `${prefix}${String(i + 1).padStart(2, '0')}`);
const hex64 = (label: string): string => sha256Hex(label);
const NONCE = 'a1'.repeat(32);
const OTHER_NONCE = 'b2'.repeat(32);
const SPEC = { select: [{ stat: 'sum', field: 'salary' }], privacy: { minParticipants: 3, minGroupSize: 5 } };

const study = (studyId: string, minThreshold?: number): Event => ({
  type: ENTRY.studyCreated,
  key: studyId,
  body: {
    studyId,
    name: `study ${studyId}`,
    schema: ledgerSchema(parseStudySchema({ name: `study ${studyId}`, minThreshold, fields: [{ name: 'salary', type: 'number', min: 0, max: 500000, decimals: 0 }] })),
  },
});
const enrolled = (participantId: string, studyId: string): Event => ({
  type: ENTRY.participantEnrolled,
  key: participantId,
  body: { participantId, studyId, name: `site ${participantId}`, encryptionKeyFingerprint: `x25519:${participantId}`, signingKeyFingerprint: `ed25519:${participantId}`, maxRecords: 1000 },
});
/** The researcher's identity key, bound to its API key `researcher` by the ledger's first entry. */
const IDENTITY = generateKeyPair('ed25519');
const PUBLIC_KEY = { n: '1234567' };
/** The researcher's signed binding of a paillier key to a query (paillier/researcher.ts). */
const binding = (studyId: string, n = PUBLIC_KEY, signer = IDENTITY) => signResearcherStatement(signer, researcherStatement(`study ${studyId}`, SPEC, n, null, 'c3'.repeat(32)));
const submitted = (queryId: string, studyId: string, protocol: 'shamir' | 'paillier', extra: Body = {}): Event => ({
  type: ENTRY.querySubmitted,
  key: queryId,
  body: {
    queryId,
    studyId,
    study: `study ${studyId}`,
    protocol,
    query: canonicalQuery(SPEC),
    queryHash: queryHash(SPEC),
    submittedBy: 'researcher',
    ...(protocol === 'shamir' ? { seedCommitment: nonceCommitment(NONCE) } : { publicKey: PUBLIC_KEY, researcher: binding(studyId) }),
    ...extra,
  },
});
/** The committee an honest coordinator draws: seed from the root right after query.submitted and the nonce. */
const drawn = (queryId: string, studyId: string, participants: readonly string[], threshold: number): Event => ({
  type: ENTRY.committeeDrawn,
  key: queryId,
  body: (before) => {
    const seedTreeSize = before.at(ENTRY.querySubmitted, queryId) + 1;
    const seed = committeeSeed(before.rootAt(seedTreeSize), NONCE);
    const k = Math.min(participants.length, MAX_COMMITTEE);
    return { queryId, studyId, seed, nonce: NONCE, seedTreeSize, committee: drawCommittee(participants, k, seed), threshold, participants: [...participants], planHash: hex64(`plan ${queryId}`) };
  },
});
const planned = (queryId: string, studyId: string, participants: readonly string[]): Event => ({
  type: ENTRY.paillierPlanned,
  key: queryId,
  body: { queryId, studyId, participants: [...participants], publicKey: PUBLIC_KEY, maxRecords: '1000', deadline: Date.UTC(2026, 0, 2), planHash: hex64(`plan ${queryId}`) },
});
const closed = (queryId: string, contributors: readonly string[], missing: readonly string[] = []): Event => ({
  type: ENTRY.roundClosed,
  key: queryId,
  body: { queryId, round: 1, contributors: contributors.map((id) => ({ id, bundleHash: hex64(`bundle ${queryId} ${id}`) })), missing: [...missing], refusals: [] },
});
const other = (type: string, key: string, body: Body): Event => ({ type, key, body });

const P = ids(12);
const X01 = 'x01';

/**
 * The honest history: study s1 (threshold floor 7) with 12 participants, study s2 with one; shamir query q1 whose
 * draw picks 10 of the 12 and whose round closes with 11 contributors; paillier query q2 over all 12; paillier
 * query q3 in s2, failed for too few participants.
 */
function honest(): Event[] {
  return [
    other('apikey.created', 'researcher', { keyId: 'researcher', role: 'researcher', createdBy: 'bootstrap-admin', identityKey: publicKeyBase64Url(IDENTITY.publicKey), identityKeyFingerprint: keyFingerprint(IDENTITY.publicKey) }),
    study('s1', 7),
    ...P.map((p) => enrolled(p, 's1')),
    study('s2'),
    enrolled(X01, 's2'),
    submitted('q1', 's1', 'shamir', { threshold: 7 }),
    drawn('q1', 's1', P, 7),
    closed('q1', P.slice(0, 11), ['p12']),
    other('result.released', 'q1', { queryId: 'q1', statistics: [] }),
    submitted('q2', 's1', 'paillier'),
    planned('q2', 's1', P),
    closed('q2', P),
    other('result.released', 'q2', { queryId: 'q2', statistics: [], paillier: { aggregateHash: hex64('aggregate q2'), custodians: null } }),
    submitted('q3', 's2', 'paillier'),
    other('query.failed', 'q3', { queryId: 'q3', round: 1, reason: '1 participant enrolled, the study requires at least 3', refusals: [] }),
  ];
}

// Indices in the honest history.
const I = { s1: 1, p05: 6, p12: 13, s2: 14, x01: 15, q1: 16, q1Drawn: 17, q1Closed: 18, q2: 20, q2Planned: 21, q2Closed: 22, q2Released: 23, q3: 24 } as const;

/** Where the event of `type` about `key` is in a history. */
function find(events: readonly Event[], type: string, key: string): number {
  const i = events.findIndex((e) => e.type === type && e.key === key);
  if (i < 0) throw new Error(`no ${type} for ${key}`);
  return i;
}

/** The history with the body of one event changed (after its derivation from the ledger, for a draw). */
function change(events: readonly Event[], type: string, key: string, edit: (body: Body, before: Ledger) => Body): Event[] {
  const i = find(events, type, key);
  const event = events[i]!;
  const { body } = event;
  const next: Event = { ...event, body: (before) => edit(typeof body === 'function' ? body(before) : { ...body }, before) };
  return events.map((e, j) => (j === i ? next : e));
}

/** The history with the event at `from` moved to position `to` (positions in the history before the move). */
function move(events: readonly Event[], from: number, to: number): Event[] {
  const moved = events[from]!;
  const rest = events.filter((_, i) => i !== from);
  rest.splice(to > from ? to - 1 : to, 0, moved);
  return rest;
}

const violationsOf = (ledger: Ledger): LedgerRuleViolation[] => checkLedgerRules(ledger.entries, ledger.rootAt);

/** Asserts the ledger breaks exactly one rule, at `index`, with a message naming every fragment. */
function expectOnly(ledger: Ledger, rule: LedgerRule, index: number, ...fragments: string[]): void {
  const violations = violationsOf(ledger);
  expect(violations.map((v) => ({ rule: v.rule, index: v.index }))).toEqual([{ rule, index }]);
  for (const fragment of fragments) expect(violations[0]!.message).toContain(fragment);
}

/** A committee.drawn body redrawn over `participants` from `seed` (default: its own), as a consistent plan would be. */
const redraw = (body: Body, participants: readonly string[], seed = body.seed as string, k = Math.min(participants.length, MAX_COMMITTEE)): Body => ({
  ...body,
  seed,
  participants: [...participants],
  committee: drawCommittee(participants, k, seed),
});

describe('checkLedgerRules: the ledger means what an honest coordinator wrote', () => {
  it('finds nothing wrong with an honest ledger of a drawn shamir query, a paillier query and a failed one', () => {
    const ledger = build(honest());
    const where = [
      ledger.at(ENTRY.studyCreated, 's1'),
      ledger.at(ENTRY.participantEnrolled, 'p05'),
      ledger.at(ENTRY.participantEnrolled, 'p12'),
      ledger.at(ENTRY.studyCreated, 's2'),
      ledger.at(ENTRY.participantEnrolled, X01),
      ledger.at(ENTRY.querySubmitted, 'q1'),
      ledger.at(ENTRY.committeeDrawn, 'q1'),
      ledger.at(ENTRY.roundClosed, 'q1'),
      ledger.at(ENTRY.querySubmitted, 'q2'),
      ledger.at(ENTRY.paillierPlanned, 'q2'),
      ledger.at(ENTRY.roundClosed, 'q2'),
      ledger.at('result.released', 'q2'),
      ledger.at(ENTRY.querySubmitted, 'q3'),
    ];
    expect(where).toEqual(Object.values(I));
    expect(ledger.entries[I.q1Drawn]!.body.committee).toHaveLength(10);
    expect(violationsOf(ledger)).toEqual([]);
    // The auditor's way: every root it needs computed in one pass over the leaves.
    expect(seedRootSizes(ledger.entries)).toEqual([I.q1 + 1, I.q2 + 1, I.q3 + 1]);
    expect(checkLedgerRules(ledger.entries, prefixRoots(ledger.leaves, seedRootSizes(ledger.entries)))).toEqual([]);
  });

  it('finds nothing wrong with any honest draw: committees of 1 to 10, with or without a study floor', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 14 }).chain((n) => {
          const k = Math.min(n, MAX_COMMITTEE);
          return fc.option(fc.integer({ min: 1, max: k }), { nil: undefined }).chain((minThreshold) =>
            fc.record({
              n: fc.constant(n),
              minThreshold: fc.constant(minThreshold),
              threshold: fc.integer({ min: thresholdFloor(k, minThreshold ?? 1), max: k }),
              contributors: fc.integer({ min: 0, max: n }),
            }),
          );
        }),
        ({ n, minThreshold, threshold, contributors }) => {
          const participants = ids(n);
          const ledger = build([
            study('s1', minThreshold),
            ...participants.map((p) => enrolled(p, 's1')),
            submitted('q1', 's1', 'shamir'),
            drawn('q1', 's1', participants, threshold),
            closed('q1', participants.slice(0, contributors), participants.slice(contributors)),
          ]);
          expect(violationsOf(ledger)).toEqual([]);
        },
      ),
      { numRuns: 40 },
    );
  });

  it('names a second study.created that could carry a lower threshold floor', () => {
    const events = [...honest(), study('s1')];
    expectOnly(build(events), 'study.once', events.length - 1, 'study s1', `entries ${I.s1} and ${events.length - 1}`);
  });

  it('names a second query.submitted for one query', () => {
    const events = [...honest(), submitted('q1', 's1', 'shamir')];
    expectOnly(build(events), 'query.once', events.length - 1, 'query q1', `entries ${I.q1} and ${events.length - 1}`);
  });

  it('catches a query.submitted that shows another query than the one participants hashed (a narrowed where)', () => {
    const narrowed = canonicalQuery({ ...SPEC, where: [{ field: 'salary', op: 'gte', value: 100000 }] });
    const events = change(honest(), ENTRY.querySubmitted, 'q1', (body) => ({ ...body, query: narrowed }));
    expectOnly(build(events), 'query.hash', I.q1, 'query q1', (queryHash(SPEC)).slice(0, 12), queryHash(narrowed).slice(0, 12));
  });

  it('catches a query submitted to a study created only afterwards', () => {
    const events = [...change(honest(), ENTRY.querySubmitted, 'q3', (body) => ({ ...body, studyId: 's3' })), study('s3')];
    expectOnly(build(events), 'query.study', I.q3, 'query q3', 'study s3', `entry ${events.length - 1}`);
  });

  it('catches an enrollment in a study that did not exist yet', () => {
    const events = move(honest(), I.x01, I.s2);
    expectOnly(build(events), 'enrollment.study', I.s2, 'x01', 'study s2', `entry ${I.s2 + 1}`);
  });

  it('names a second committee.drawn for one query', () => {
    const events = [...honest(), drawn('q1', 's1', P, 7)];
    expectOnly(build(events), 'plan.once', events.length - 1, 'query q1', `committee.drawn at entry ${I.q1Drawn}`, `entry ${events.length - 1}`);
  });

  it('catches a committee drawn before its query was submitted', () => {
    const recorded = build(honest()).entries[I.q1Drawn]!.body;
    const events = honest().filter((_, i) => i !== I.q1Drawn);
    events.splice(I.q1, 0, other(ENTRY.committeeDrawn, 'q1', recorded));
    expectOnly(build(events), 'plan.after-query', I.q1, 'committee.drawn of query q1', `query.submitted at entry ${I.q1 + 1}`);
  });

  it('catches a paillier plan filed under another study than its query', () => {
    const events = change(honest(), ENTRY.paillierPlanned, 'q2', (body) => ({ ...body, studyId: 's2' }));
    expectOnly(build(events), 'plan.matches-query', I.q2Planned, 'query q2', 'study s2', 'study s1');
  });

  it('catches a paillier plan for a query submitted for shamir, which skips the committee draw', () => {
    const events = honest().map((e, i) => (i === I.q1Drawn ? planned('q1', 's1', P) : e));
    expectOnly(build(events), 'plan.matches-query', I.q1Drawn, 'paillier.planned of query q1', 'shamir', 'committee.drawn');
  });

  it('catches a committee drawn over a participant the ledger never enrolled', () => {
    const events = change(honest(), ENTRY.committeeDrawn, 'q1', (body) => redraw(body, [...P, 'p99']));
    expectOnly(build(events), 'plan.participants', I.q1Drawn, 'query q1', 'p99 (never enrolled)');
  });

  it('catches a paillier plan over a participant of another study', () => {
    const events = change(honest(), ENTRY.paillierPlanned, 'q2', (body) => ({ ...body, participants: [...P, X01] }));
    expectOnly(build(events), 'plan.participants', I.q2Planned, 'query q2', `x01 (enrolled in study s2, entry ${I.x01})`);
  });

  it('catches a plan that leaves out a participant enrolled before the query, so the rest fill the committee', () => {
    const events = change(honest(), ENTRY.committeeDrawn, 'q1', (body) => redraw(body, P.filter((p) => p !== 'p12')));
    expectOnly(build(events), 'plan.roster', I.q1Drawn, 'query q1', `p12 (entry ${I.p12})`, `entry ${I.q1}`);
  });

  it('catches a committee.drawn that names another ledger size than the one its seed comes from', () => {
    const events = change(honest(), ENTRY.committeeDrawn, 'q1', (body) => ({ ...body, seedTreeSize: I.q1 }));
    expectOnly(build(events), 'draw.seed-size', I.q1Drawn, 'query q1', `seedTreeSize ${I.q1}`, `size ${I.q1 + 1}`);
  });

  it('catches a nonce the researcher did not commit to (the coordinator re-rolling the draw)', () => {
    const events = change(honest(), ENTRY.committeeDrawn, 'q1', (body, before) => {
      const seed = committeeSeed(before.rootAt(I.q1 + 1), OTHER_NONCE);
      return { ...redraw(body, P, seed), nonce: OTHER_NONCE };
    });
    expectOnly(build(events), 'draw.nonce', I.q1Drawn, 'query q1', `query.submitted (entry ${I.q1})`);
  });

  it('catches a committee seed the coordinator chose instead of deriving it from the root and the nonce', () => {
    const events = change(honest(), ENTRY.committeeDrawn, 'q1', (body) => redraw(body, P, hex64('a seed the coordinator liked')));
    expectOnly(build(events), 'draw.seed', I.q1Drawn, 'query q1', 'the coordinator chose it');
  });

  it('catches a committee smaller than min(n, 10)', () => {
    const events = change(honest(), ENTRY.committeeDrawn, 'q1', (body) => redraw(body, P, undefined, 9));
    expectOnly(build(events), 'draw.size', I.q1Drawn, 'query q1', 'a committee of 9 for 12 participants', 'min(n, 10) = 10');
  });

  it("catches a majority threshold below the study's higher floor", () => {
    const events = change(honest(), ENTRY.committeeDrawn, 'q1', (body) => ({ ...body, threshold: 6 }));
    expectOnly(build(events), 'draw.threshold', I.q1Drawn, 'query q1', "threshold 6 is below the floor: the study's floor is 7");
  });

  it('catches a threshold above the committee, which could never open', () => {
    const events = change(honest(), ENTRY.committeeDrawn, 'q1', (body) => ({ ...body, threshold: 11 }));
    expectOnly(build(events), 'draw.threshold', I.q1Drawn, 'query q1', 'threshold 11 is above the committee of 10');
  });

  it('catches a threshold other than the one the researcher asked for', () => {
    const events = change(honest(), ENTRY.committeeDrawn, 'q1', (body) => ({ ...body, threshold: 8 }));
    expectOnly(build(events), 'draw.threshold', I.q1Drawn, 'query q1', 'threshold 8 is not the 7 the researcher asked for', `entry ${I.q1}`);
  });

  it('catches a committee the coordinator picked instead of drawing', () => {
    const honestDraw = build(honest()).entries[I.q1Drawn]!.body.committee as string[];
    const outsider = P.find((p) => !honestDraw.includes(p))!;
    const replaced = honestDraw[9]!;
    const events = change(honest(), ENTRY.committeeDrawn, 'q1', (body) => ({ ...body, committee: [...honestDraw.slice(0, 9), outsider] }));
    expectOnly(build(events), 'draw.committee', I.q1Drawn, 'query q1', `${outsider} is not drawn`, `${replaced} is drawn but left out`);
  });

  it('catches a drawn committee out of draw order (members hold the evaluation points in that order)', () => {
    const events = change(honest(), ENTRY.committeeDrawn, 'q1', (body) => ({ ...body, committee: [...(body.committee as string[])].reverse() }));
    expectOnly(build(events), 'draw.committee', I.q1Drawn, 'query q1', 'out of draw order');
  });

  it('names a second round.closed for one query', () => {
    const events = [...honest(), closed('q1', P)];
    expectOnly(build(events), 'round.once', events.length - 1, 'round 1 of query q1', `entries ${I.q1Closed} and ${events.length - 1}`);
  });

  it('catches a round closed before its committee was drawn', () => {
    const events = move(honest(), I.q1Closed, I.q1Drawn);
    expectOnly(build(events), 'round.plan', I.q1Drawn, 'query q1', `entry ${I.q1Drawn + 1}`);
  });

  it('catches a contributor the operator invented', () => {
    const events = change(honest(), ENTRY.roundClosed, 'q1', (body) => ({ ...body, contributors: [...(body.contributors as Body[]), { id: 'p99', bundleHash: hex64('forged') }] }));
    expectOnly(build(events), 'round.contributors', I.q1Closed, 'query q1', `p99 (not a participant of the committee.drawn at entry ${I.q1Drawn}; never enrolled)`);
  });

  it('catches a contributor counted twice', () => {
    const events = change(honest(), ENTRY.roundClosed, 'q2', (body) => ({ ...body, contributors: [...(body.contributors as Body[]), { id: 'p01', bundleHash: hex64('again') }] }));
    expectOnly(build(events), 'round.contributors', I.q2Closed, 'query q2', 'p01 (listed twice)');
  });

  it('names a round.closed that does not say which query it closes', () => {
    const events = change(honest(), ENTRY.roundClosed, 'q2', (body) => ({ ...body, queryId: undefined }));
    expectOnly(build(events), 'entry.key', I.q2Closed, 'round.closed', 'queryId');
  });

  describe("a paillier query's key is its researcher's, and its result says who decrypted what", () => {
    it("catches a paillier query whose binding is signed by an identity other than the one bound to its API key (the coordinator's own key)", () => {
      const events = change(honest(), ENTRY.querySubmitted, 'q2', (body) => ({ ...body, publicKey: { n: '7654321' }, researcher: binding('s1', { n: '7654321' }, generateKeyPair('ed25519')) }));
      const violations = violationsOf(build(events));
      expect(violations.map((v) => [v.index, v.rule])).toEqual([
        [I.q2, 'query.researcher'],
        [I.q2Planned, 'plan.key'],
      ]);
      expect(violations[0]!.message).toMatch(/is not the one bound to the submitting API key/);
    });

    it("catches a binding that does not cover the key the query records", () => {
      const events = change(honest(), ENTRY.querySubmitted, 'q2', (body) => ({ ...body, researcher: binding('s1', { n: '7654321' }) }));
      expectOnly(build(events), 'query.researcher', I.q2, 'signature does not cover');
    });

    it('catches a paillier query without a binding, or under a key that is not a bound researcher key', () => {
      expectOnly(build(change(honest(), ENTRY.querySubmitted, 'q2', (body) => ({ ...body, researcher: undefined }))), 'query.researcher', I.q2, 'records no valid researcher');
      expectOnly(build(change(honest(), ENTRY.querySubmitted, 'q2', (body) => ({ ...body, submittedBy: 'k9' }))), 'query.researcher', I.q2, 'API key k9, which has no apikey.created before it');
    });

    it('catches a paillier plan with another key than the query was submitted with', () => {
      const events = change(honest(), ENTRY.paillierPlanned, 'q2', (body) => ({ ...body, publicKey: { n: '7654321' } }));
      expectOnly(build(events), 'plan.key', I.q2Planned, 'another public key');
    });

    it('catches a paillier result that names no aggregate, or fewer custodians than the threshold', () => {
      expectOnly(build(change(honest(), 'result.released', 'q2', (body) => ({ ...body, paillier: undefined }))), 'result.decryption', I.q2Released, 'names no aggregate hash');
      const custodial = change(
        change(honest(), ENTRY.querySubmitted, 'q2', (body) => ({ ...body, custodians: { custodians: 3, threshold: 2 }, researcher: signResearcherStatement(IDENTITY, researcherStatement('study s1', SPEC, PUBLIC_KEY, custodiansHash({ custodians: 3, threshold: 2 }), 'c3'.repeat(32))) })),
        'result.released',
        'q2',
        (body) => ({ ...body, paillier: { aggregateHash: hex64('aggregate q2'), custodians: [1, 1] } }),
      );
      expectOnly(build(custodial), 'result.decryption', I.q2Released, 'not 2 distinct custodians of the 3');
    });
  });

  it('reads a ledger written before studyId and queryHash were recorded, naming once each field a rule needs', () => {
    const legacy = (event: Event, ...drop: string[]): Event => ({
      ...event,
      body: (before) => {
        const body = typeof event.body === 'function' ? event.body(before) : { ...event.body };
        for (const field of drop) delete body[field];
        return body;
      },
    });
    const events = [
      study('s1'),
      ...P.map((p) => enrolled(p, 's1')),
      legacy(submitted('q1', 's1', 'shamir'), 'studyId', 'queryHash', 'seedCommitment'),
      legacy(drawn('q1', 's1', P, 7), 'studyId', 'nonce', 'seedTreeSize', 'planHash'),
      closed('q1', P),
      legacy(submitted('q2', 's1', 'paillier'), 'studyId', 'queryHash', 'publicKey', 'researcher'),
      legacy(planned('q2', 's1', P), 'studyId', 'planHash'),
      closed('q2', P),
    ];
    const violations = violationsOf(build(events));
    expect(violations.map((v) => [v.index, v.rule])).toEqual([
      [13, 'query.hash'],
      [13, 'query.study'],
      [14, 'plan.matches-query'],
      [14, 'draw.seed-size'],
      [14, 'draw.nonce'],
      [16, 'query.hash'],
      [16, 'query.study'],
      [16, 'query.researcher'],
      [17, 'plan.matches-query'],
      [17, 'plan.key'],
    ]);
    expect(violations[0]!.message).toBe('query.submitted of query q1 (entry 13) records no valid queryHash');
    expect(violations[4]!.message).toBe('committee.drawn of query q1 (entry 14) records no valid nonce');
  });

  it('refuses entries that are not a whole ledger from index 0', () => {
    const ledger = build(honest());
    expect(() => checkLedgerRules(ledger.entries.slice(1), ledger.rootAt)).toThrow(RangeError);
  });
});

describe('prefixRoots: the roots the committee seeds come from, in one pass', () => {
  const leaves = Array.from({ length: 40 }, (_, i) => leafHash(Uint8Array.of(i)));
  const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

  it('gives MTH of each prefix asked for (RFC 9162 §2.1.1), whatever the sizes and their order', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: leaves.length }).chain((n) => fc.tuple(fc.constant(n), fc.array(fc.integer({ min: 0, max: n }), { maxLength: 8 }))), ([n, sizes]) => {
        const rootAt = prefixRoots(leaves.slice(0, n), sizes);
        for (const size of sizes) expect(hex(rootAt(size))).toBe(hex(merkleTreeHash(leaves.slice(0, size))));
      }),
    );
  });

  it('refuses a size beyond the ledger, and a root it was not asked for', () => {
    expect(() => prefixRoots(leaves.slice(0, 3), [4])).toThrow(RangeError);
    expect(() => prefixRoots(leaves, [1.5])).toThrow(RangeError);
    expect(() => prefixRoots(leaves, [3])(4)).toThrow(RangeError);
  });
});

describe('checkLedgerRules: removed and updated participants (issue 13)', () => {
  const removed = (participantId: string, studyId: string): Event => ({ type: ENTRY.participantRemoved, key: participantId, body: { participantId, studyId, name: `site ${participantId}`, removedBy: 'bootstrap-admin' } });
  const withoutP12 = P.filter((p) => p !== 'p12');
  /** The honest history, then p12 removed, then shamir query q4 planned over `participants`. */
  const afterRemoval = (participants: readonly string[]): Event[] => [...honest(), removed('p12', 's1'), submitted('q4', 's1', 'shamir', { threshold: 7 }), drawn('q4', 's1', participants, 7)];
  const q4Drawn = honest().length + 2;

  it('finds nothing wrong with a plan that leaves out a participant removed before it', () => {
    expect(violationsOf(build(afterRemoval(withoutP12)))).toEqual([]);
  });

  it('catches a plan that still lists a participant removed before it (it would count toward the minimum)', () => {
    expectOnly(build(afterRemoval(P)), 'plan.participants', q4Drawn, 'query q4', `p12 (removed at entry ${honest().length})`);
  });

  it('catches a plan that leaves out a participant removed only after it', () => {
    const events = [...honest(), submitted('q4', 's1', 'shamir', { threshold: 7 }), drawn('q4', 's1', withoutP12, 7), removed('p12', 's1')];
    expectOnly(build(events), 'plan.roster', honest().length + 1, 'query q4', 'p12');
  });

  it('catches the removal of a participant never enrolled in the study, and a second removal', () => {
    expectOnly(build([...honest(), removed('p99', 's1')]), 'removal.enrolled', honest().length, 'p99', 'never enrolled');
    expectOnly(build([...honest(), removed('p12', 's1'), removed('p12', 's1')]), 'removal.enrolled', honest().length + 1, 'already removed at entry');
  });

  describe('participant.updated', () => {
    const key = generateKeyPair('ed25519');
    const stranger = generateKeyPair('ed25519');
    const withKey: Event = {
      type: ENTRY.participantEnrolled,
      key: 'p13',
      body: { participantId: 'p13', studyId: 's1', name: 'site p13', encryptionKeyFingerprint: 'x25519:p13', signingKeyFingerprint: keyFingerprint(key.publicKey), maxRecords: 100 },
    };
    const statement = { participantId: 'p13', studyId: 's1', maxRecords: 250, previousMaxRecords: 100, time: Date.UTC(2026, 0, 3) };
    const updated = (signer: KeyPair, keyShown = signer, body: Partial<typeof statement> = {}): Event => ({
      type: ENTRY.participantUpdated,
      key: 'p13',
      body: { ...statement, name: 'site p13', signingKey: publicKeyBase64Url(keyShown.publicKey), signature: signUpdateStatement(signer, statement), ...body },
    });
    const at = honest().length + 1;

    it('finds nothing wrong with an update signed by the key the participant enrolled with', () => {
      expect(violationsOf(build([...honest(), withKey, updated(key)]))).toEqual([]);
    });

    it('catches an update signed with another key than the enrolled one (the coordinator forging it)', () => {
      expectOnly(build([...honest(), withKey, updated(stranger)]), 'update.signed', at, 'not the key', 'the participant enrolled with');
    });

    it('catches an update whose value is not the one the participant signed', () => {
      expectOnly(build([...honest(), withKey, updated(key, key, { maxRecords: 100000 })]), 'update.signed', at, 'the participant did not sign this update');
    });

    it('catches an update of a removed participant', () => {
      expectOnly(build([...honest(), withKey, removed('p13', 's1'), updated(key)]), 'update.signed', at + 1, 'already removed');
    });
  });
});
