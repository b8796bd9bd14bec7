/**
 * The round logic of both protocols as a pure state machine: `(state, event) → { state, effects }`, with no clock, no
 * storage and no queue. The coordinator loads a round's state from its database, turns what it observed (answers
 * and refusals in the participants' queues, a deadline, an aggregation job's end, a posted decryption) into events,
 * and carries out the effects, each transition's writes in one transaction (DESIGN.md "Storage and services"); the
 * in-memory `simulate` drives the same machine. What to do with a round is decided here and only here: when it may
 * close, with whom, when it fails and with which reason, and what an answer that comes too late is.
 *
 * The rounds (DESIGN.md "Protocol shamir", "Protocol paillier"):
 * - shamir round 0: the researcher reveals the committee nonce (its one answer), then the query is planned;
 * - round 1, both protocols: every participant contributes (shamir: shares; paillier: ciphertexts, which an
 *   aggregation job multiplies before the round closes);
 * - shamir round 2: the committee members return their share sums, and the result is reconstructed;
 * - paillier round 2: the key holder decrypts the aggregate, either the researcher in one post or t custodians.
 */

/** Which protocol a round belongs to. */
export type RoundProtocol = 'shamir' | 'paillier';

/** A round number: 0 is shamir's wait for the committee nonce. */
export type RoundNumber = 0 | 1 | 2;

/** What a round is: fixed when it opens. */
export interface RoundSpec {
  readonly protocol: RoundProtocol;
  readonly round: RoundNumber;
  /** Who is asked to answer (participants in round 1, committee members in shamir's round 2); empty otherwise. */
  readonly expected: readonly string[];
  /** The fewest answers the round may close with: the study's minimum in round 1, the threshold t in shamir's round 2. */
  readonly quorum: number;
  /** Paillier round 2 with a split key: how many custodians' partial decryptions make the aggregate's plaintext. */
  readonly custodians?: { readonly threshold: number } | null;
}

/** A participant that answered with a refusal, or whose answer failed the coordinator's checks. */
export interface Refusal {
  readonly participantId: string;
  readonly reason: string;
}

/**
 * Where a round stands.
 * - `open`: taking answers;
 * - `aggregating`: paillier round 1, the answered set handed to an aggregation job (fixed once);
 * - `closing`: the machine decided to close (or, in round 0, to plan); the caller's close may still refuse;
 * - `closed`: closed earlier (loaded from storage); only late answers are left to note;
 * - `failed`: the query fails with this round.
 */
export type RoundStatus = 'open' | 'aggregating' | 'closing' | 'closed' | 'failed';

export interface RoundState {
  readonly spec: RoundSpec;
  readonly status: RoundStatus;
  /** Who answered, in the order their answers were seen, each once. */
  readonly answered: readonly string[];
  /** Who refused (or sent an answer that failed the checks), each once, in the order seen. */
  readonly refused: readonly Refusal[];
  /** Paillier round 2 with custodians: whose partial decryptions are in, each once. */
  readonly decrypted: readonly number[];
  /** A closed round's counted participants (an answer from one of them is not late: it is what was counted). */
  readonly counted: readonly string[];
}

/**
 * What the caller observed. Every event names the round it is for: one for another round is ignored, except an
 * answer or refusal to a closed round, which is late.
 */
export type RoundEvent =
  /** A participant's answer that passed the coordinator's checks (shamir round 0: the revealed nonce, `from` the query). */
  | { readonly type: 'answer'; readonly round: RoundNumber; readonly from: string }
  /** A participant's refusal, or an answer that failed the coordinator's checks. */
  | { readonly type: 'refusal'; readonly round: RoundNumber; readonly from: string; readonly reason: string }
  /** The round's deadline passed. */
  | { readonly type: 'deadline'; readonly round: RoundNumber }
  /** Paillier round 1: the aggregation job multiplied the contributions into an aggregate. */
  | { readonly type: 'aggregated'; readonly round: 1 }
  /** Paillier round 2: one custodian's partial decryptions were posted and verified. */
  | { readonly type: 'partial'; readonly round: 2; readonly custodian: number }
  /** Paillier round 2: the researcher's decryption was posted and verified. */
  | { readonly type: 'decryption'; readonly round: 2 }
  /**
   * The caller could not carry out the close the machine decided (round 1's closing checks, shamir's reconstruction,
   * the aggregation job, the custodians' combination refused): the query fails with this reason.
   */
  | { readonly type: 'refused'; readonly round: RoundNumber; readonly reason: string };

/** What the caller must do, in order. */
export type RoundEffect =
  /** Shamir round 0: plan the query with the revealed nonce and open round 1. */
  | { readonly type: 'plan' }
  /** Paillier round 1: hand exactly this answered set to one aggregation job. */
  | { readonly type: 'aggregate'; readonly answered: readonly string[]; readonly refused: readonly Refusal[] }
  /**
   * Close the round over exactly `answered`: round 1 opens round 2 (shamir: the committee's tasks; paillier: the
   * aggregate for its key holder); round 2 releases the result.
   */
  | { readonly type: 'close'; readonly round: RoundNumber; readonly answered: readonly string[]; readonly refused: readonly Refusal[] }
  /** The query fails with this round, for this reason; the refusals go with it to the ledger. */
  | { readonly type: 'fail'; readonly round: RoundNumber; readonly reason: string; readonly refused: readonly Refusal[] }
  /** An answer or refusal to a round already closed, not counted: recorded as late. */
  | { readonly type: 'late'; readonly round: RoundNumber; readonly from: string };

export interface Transition {
  readonly state: RoundState;
  readonly effects: readonly RoundEffect[];
}

/** A round as it opens. */
export function openRound(spec: RoundSpec): RoundState {
  if (!Number.isSafeInteger(spec.quorum) || spec.quorum < 0) throw new RangeError(`quorum must be a non-negative integer, got ${spec.quorum}`);
  if (new Set(spec.expected).size !== spec.expected.length) throw new RangeError('a round expects each participant once');
  if (spec.custodians && (spec.protocol !== 'paillier' || spec.round !== 2)) throw new RangeError('only paillier round 2 is decrypted by custodians');
  return { spec, status: 'open', answered: [], refused: [], decrypted: [], counted: [] };
}

/** A round closed earlier over `counted`: what an answer to it now can only be (late, or the one counted). */
export function closedRound(spec: RoundSpec, counted: readonly string[]): RoundState {
  return { spec, status: 'closed', answered: [], refused: [], decrypted: [], counted };
}

/**
 * Paillier round 1 whose answered set is already with an aggregation job (its job exists), with the answers and
 * refusals seen so far: a refusal goes to the ledger with the query if the aggregation fails.
 */
export function aggregatingRound(spec: RoundSpec, answered: readonly string[] = [], refused: readonly Refusal[] = []): RoundState {
  if (spec.protocol !== 'paillier' || spec.round !== 1) throw new RangeError('only paillier round 1 aggregates');
  return { spec, status: 'aggregating', answered, refused, decrypted: [], counted: [] };
}

const stay = (state: RoundState): Transition => ({ state, effects: [] });

/** One step. Pure: the same state and event always give the same transition, and `state` is never changed. */
export function step(state: RoundState, event: RoundEvent): Transition {
  const { spec } = state;
  if (event.round !== spec.round) return stay(state);
  switch (state.status) {
    case 'closed':
      if ((event.type === 'answer' || event.type === 'refusal') && spec.expected.includes(event.from) && !state.counted.includes(event.from)) {
        return { state, effects: [{ type: 'late', round: spec.round, from: event.from }] };
      }
      return stay(state);
    case 'failed':
      return stay(state);
    case 'closing':
      return event.type === 'refused' ? fail(state, event.reason) : stay(state);
    case 'aggregating':
      if (event.type === 'aggregated') return { state: { ...state, status: 'closing' }, effects: [{ type: 'close', round: 1, answered: state.answered, refused: state.refused }] };
      return event.type === 'refused' ? fail(state, event.reason) : stay(state);
    case 'open':
      return spec.round === 0 ? stepNonce(state, event) : spec.protocol === 'paillier' && spec.round === 2 ? stepDecryption(state, event) : stepAnswers(state, event);
  }
}

/** Folds events over a state, collecting every effect in order. */
export function run(state: RoundState, events: Iterable<RoundEvent>): Transition {
  const effects: RoundEffect[] = [];
  let current = state;
  for (const event of events) {
    const t = step(current, event);
    current = t.state;
    effects.push(...t.effects);
  }
  return { state: current, effects };
}

function stepNonce(state: RoundState, event: RoundEvent): Transition {
  if (event.type === 'answer') return { state: { ...state, status: 'closing', answered: [event.from] }, effects: [{ type: 'plan' }] };
  if (event.type === 'deadline') return fail(state, 'the researcher did not reveal the committee nonce before the deadline');
  return event.type === 'refused' ? fail(state, event.reason) : stay(state);
}

function stepAnswers(state: RoundState, event: RoundEvent): Transition {
  const { spec } = state;
  let next = state;
  if (event.type === 'answer' || event.type === 'refusal') {
    // Only the asked count, and each once: whatever arrives first from a participant is its answer.
    if (!spec.expected.includes(event.from) || state.answered.includes(event.from) || state.refused.some((r) => r.participantId === event.from)) return stay(state);
    next =
      event.type === 'answer'
        ? { ...state, answered: [...state.answered, event.from] }
        : { ...state, refused: [...state.refused, { participantId: event.from, reason: event.reason }] };
    if (next.answered.length + next.refused.length < spec.expected.length) return stay(next);
  } else if (event.type === 'refused') {
    return fail(state, event.reason);
  } else if (event.type !== 'deadline') {
    return stay(state);
  }
  // Everyone asked has answered or refused, or the deadline passed: the round ends now, one way or the other.
  if (next.answered.length < spec.quorum) return fail(next, quorumReason(spec, next.answered.length));
  if (spec.protocol === 'paillier') return { state: { ...next, status: 'aggregating' }, effects: [{ type: 'aggregate', answered: next.answered, refused: next.refused }] };
  return { state: { ...next, status: 'closing' }, effects: [{ type: 'close', round: spec.round, answered: next.answered, refused: next.refused }] };
}

function stepDecryption(state: RoundState, event: RoundEvent): Transition {
  const custodians = state.spec.custodians;
  const closing = (s: RoundState): Transition => ({ state: { ...s, status: 'closing' }, effects: [{ type: 'close', round: 2, answered: [], refused: [] }] });
  switch (event.type) {
    case 'decryption':
      return custodians ? stay(state) : closing(state);
    case 'partial': {
      if (!custodians || state.decrypted.includes(event.custodian)) return stay(state);
      const next = { ...state, decrypted: [...state.decrypted, event.custodian] };
      return next.decrypted.length >= custodians.threshold ? closing(next) : stay(next);
    }
    case 'deadline':
      return fail(state, undecryptedReason(state));
    case 'refused':
      return fail(state, event.reason);
    default:
      return stay(state);
  }
}

function fail(state: RoundState, reason: string): Transition {
  return { state: { ...state, status: 'failed' }, effects: [{ type: 'fail', round: state.spec.round, reason, refused: state.refused }] };
}

/** Why a round without enough answers fails: the counts, in the words the protocols' own checks use. */
export function quorumReason(spec: RoundSpec, answered: number): string {
  if (spec.round === 2 && spec.protocol === 'shamir') {
    const k = spec.expected.length;
    return `round 2: ${answered} of ${k} committee members answered, ${spec.quorum} needed (at most ${k - spec.quorum} may be missing)`;
  }
  return `round ${spec.round}: ${answered} of ${spec.expected.length} participants answered, at least ${spec.quorum} needed`;
}

function undecryptedReason(state: RoundState): string {
  const custodians = state.spec.custodians;
  if (!custodians) return 'the researcher did not post the decryption of the aggregate before the deadline';
  const posted = state.decrypted;
  const which = posted.length ? ` (custodian${posted.length === 1 ? '' : 's'} ${posted.join(', ')})` : '';
  return `${posted.length} of the ${custodians.threshold} custodians needed decrypted the aggregate before the deadline${which}`;
}

/**
 * The kinds of failure reason a query can end with, for counting (the coordinator's /metrics): each is a phrase
 * that only that kind's messages, built in this file and by the coordinator's aggregation step, contain. A SQL
 * `LIKE '%phrase%'` finds the same ones. In order: the first that matches names the kind; anything else is `other`.
 */
export const FAILURE_KINDS = [
  { kind: 'too_few_answers', phrase: 'answered, at least' },
  { kind: 'too_few_answers', phrase: 'committee members answered' },
  { kind: 'not_decrypted', phrase: 'decrypt' },
  { kind: 'deadline', phrase: 'did not end by its deadline' },
  { kind: 'interrupted', phrase: 'stopped between two steps' },
  { kind: 'aggregation', phrase: 'aggregat' },
] as const;

export type FailureKind = (typeof FAILURE_KINDS)[number]['kind'] | 'other';

/** The kind of a query's failure reason ({@link FAILURE_KINDS}), `other` when none matches. */
export function failureKind(reason: string): FailureKind {
  return FAILURE_KINDS.find((k) => reason.includes(k.phrase))?.kind ?? 'other';
}

/** What a query's current round looks like to the deadline sweep. */
export interface SweepInput {
  /** The query's current round, or undefined when it never opened. */
  readonly round?: { readonly round: number; readonly status: 'open' | 'closed' | 'failed'; readonly deadline: number; readonly openedAt: number; readonly closedAt: number | null };
  readonly currentRound: number;
  readonly createdAt: number;
}

/**
 * What the deadline sweep does with a running query (DESIGN.md: a deadline ends every query), from stored state
 * alone, `grace` ms after things should have happened:
 * - `wait`: nothing is late yet;
 * - `force`: the round is open past its deadline and grace: advance it as its deadline would, and if it is still
 *   open after that, fail the query with `reason`;
 * - `fail`: the current round is closed or failed (or never opened) while the query still runs, for longer than the
 *   grace: the coordinator stopped between two steps; fail the query with `reason`.
 */
export function sweepAction(input: SweepInput, now: number, grace: number): { readonly action: 'wait' } | { readonly action: 'force' | 'fail'; readonly reason: string } {
  const { round } = input;
  if (round?.status === 'open') {
    if (now <= round.deadline + grace) return { action: 'wait' };
    return { action: 'force', reason: `round ${round.round} did not end by its deadline (${new Date(round.deadline).toISOString()}); the deadline sweep ended the query` };
  }
  const since = round ? (round.closedAt ?? round.openedAt) : input.createdAt;
  if (now - since <= grace) return { action: 'wait' };
  const state = round ? `round ${round.round} is ${round.status}` : `round ${input.currentRound} never opened`;
  return { action: 'fail', reason: `${state} and the query never moved on: the coordinator stopped between two steps; the deadline sweep ended it` };
}
