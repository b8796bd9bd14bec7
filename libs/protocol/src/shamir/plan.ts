import { hash } from 'node:crypto';
import { canonicalJson } from '@confide/crypto';
import { ProtocolError } from '../errors';
import { sha256Hex } from '../hashing';
import { memoFrozen } from '../frozen';

/** DESIGN.md "Protocol shamir": committees larger than this are drawn from the participants. */
export const MAX_COMMITTEE = 10;

/**
 * The committee size for n participants: all of them up to {@link MAX_COMMITTEE}, else MAX_COMMITTEE drawn. Every
 * participant checks that a plan's committee has exactly this size: a coordinator that chose a committee of one
 * (whose threshold floor is one) would hand one member every share.
 */
export function committeeSize(participants: number): number {
  if (!Number.isSafeInteger(participants) || participants < 1) throw new RangeError(`participants must be a positive integer, got ${participants}`);
  return Math.min(participants, MAX_COMMITTEE);
}

/**
 * The lowest reconstruction threshold a committee of k may use: a strict majority, ⌊k/2⌋ + 1, or the study's own
 * higher floor. Below a majority two disjoint quorums could each reconstruct a sum, over two different contributor
 * sets, and subtract one from the other (DESIGN.md "Trust model"); at t = 1 every share is the secret itself.
 * @throws RangeError for k or minThreshold that are not positive integers
 */
export function thresholdFloor(k: number, minThreshold = 1): number {
  if (!Number.isSafeInteger(k) || k < 1) throw new RangeError(`committee size must be a positive integer, got ${k}`);
  if (!Number.isSafeInteger(minThreshold) || minThreshold < 1) throw new RangeError(`minThreshold must be a positive integer, got ${minThreshold}`);
  return Math.max(Math.floor(k / 2) + 1, minThreshold);
}

/** A committee nonce: 32 random bytes as 64 lowercase hex digits, chosen by the researcher. */
export const COMMITTEE_NONCE = /^[0-9a-f]{64}$/;

/**
 * The researcher's commitment to its committee nonce, sent with the query and recorded in `query.submitted`:
 * SHA-256("confide/committee-nonce/v1\n" ‖ nonce), hex.
 * @throws TypeError for a nonce that is not 64 lowercase hex digits
 */
export function nonceCommitment(nonce: string): string {
  if (!COMMITTEE_NONCE.test(nonce)) throw new TypeError('a committee nonce is 64 lowercase hex digits');
  return sha256Hex(`confide/committee-nonce/v1\n${nonce}`);
}

/**
 * The committee seed of a query: SHA-256("confide/committee-seed/v1\n" ‖ hex(root) ‖ "\n" ‖ nonce), hex, where
 * `root` is the ledger's root right after the query's `query.submitted` entry (which holds the researcher's
 * {@link nonceCommitment}) and `nonce` is what the researcher reveals afterwards. A coin toss between two parties:
 * the coordinator signs the root before it learns the nonce, and the researcher fixes the nonce before the root
 * exists, so neither chooses the committee alone. A coordinator and a researcher acting together can (the
 * README's security model says what that leaves).
 * @throws TypeError for a root that is not 32 bytes or a malformed nonce
 */
export function committeeSeed(root: Uint8Array, nonce: string): string {
  if (!(root instanceof Uint8Array) || root.length !== 32) throw new TypeError('the ledger root is 32 bytes');
  if (!COMMITTEE_NONCE.test(nonce)) throw new TypeError('a committee nonce is 64 lowercase hex digits');
  return sha256Hex(`confide/committee-seed/v1\n${Buffer.from(root).toString('hex')}\n${nonce}`);
}

/** The coordinator's plan for one shamir job: who takes part, who holds shares, how many are needed, by when. */
export interface ShamirPlan {
  readonly protocol: 'shamir';
  readonly version: 1;
  readonly jobId: string;
  /** Hash of the compiled query, so every signature also binds what is being computed. */
  readonly queryHash: string;
  readonly vectorLength: number;
  /** Every participant asked to contribute, sorted. */
  readonly participants: readonly string[];
  /** Committee members in evaluation-point order: member i holds the shares at x = i + 1. */
  readonly committee: readonly string[];
  readonly threshold: number;
  readonly minParticipants: number;
  /** Public seed of the committee draw (recorded in the ledger so anyone can redo the draw). */
  readonly seed: string;
  /** Round deadlines as absolute times in ms since the epoch. */
  readonly deadlines: { readonly round1: number; readonly round2: number };
}

/** Inputs to {@link planShamir}. */
export interface PlanInput {
  readonly jobId: string;
  readonly queryHash: string;
  readonly vectorLength: number;
  readonly participants: readonly string[];
  readonly minParticipants: number;
  /** Hex seed for the committee draw; the coordinator takes it from a CSPRNG and records it. */
  readonly seed: string;
  readonly deadlines: { readonly round1: number; readonly round2: number };
  /** Committee size k; defaults to all participants up to MAX_COMMITTEE. */
  readonly committeeSize?: number;
  /** Reconstruction threshold t; defaults to the floor. */
  readonly threshold?: number;
  /** The study's threshold floor, when it sets one above a majority (study schema `minThreshold`). */
  readonly minThreshold?: number;
}

/**
 * Draws the committee: all participants if there are at most `size`, otherwise the `size` whose
 * SHA-256(seed ‖ id) sort first — deterministic from the recorded seed, so an auditor can redo it,
 * and unpredictable before the seed is drawn.
 */
export function drawCommittee(participants: readonly string[], size: number, seed: string): string[] {
  // Every participant redraws the committee for its round-1 and round-2 tasks (and a process may host several
  // participants): N hashes each time. The last few draws are kept, keyed by everything the draw depends on.
  const key = `${size}\n${seed}\n${participants.join('\n')}`;
  const known = recentDraws.get(key);
  if (known) return [...known];
  const score = (id: string): string => hash('sha256', `confide/committee/v1\n${seed}\n${id}`);
  const ranked = participants.map((id) => ({ id, s: score(id) })).sort((a, b) => (a.s < b.s ? -1 : a.s > b.s ? 1 : 0));
  const drawn = ranked.slice(0, size).map((r) => r.id);
  recentDraws.set(key, drawn);
  if (recentDraws.size > RECENT_DRAWS) recentDraws.delete(recentDraws.keys().next().value as string);
  return [...drawn];
}

/** How many draws {@link drawCommittee} keeps (a few queries' worth), oldest dropped first. */
const RECENT_DRAWS = 8;
const recentDraws = new Map<string, readonly string[]>();

/**
 * Plans a shamir job (DESIGN.md "Protocol shamir"): committee of k = min(n, 10) unless set, threshold
 * t = {@link thresholdFloor} unless set, deadlines carried as data. A threshold below the floor is refused: no
 * caller (coordinator, simulation) can plan one.
 * @throws ProtocolError INVALID_MESSAGE on duplicate participants, k or t out of range (t below the floor
 *   included), or a bad seed; MIN_PARTICIPANTS when fewer participants are enrolled than the study requires
 */
export function planShamir(input: PlanInput): ShamirPlan {
  const participants = [...input.participants].sort();
  if (new Set(participants).size !== participants.length) throw new ProtocolError('INVALID_MESSAGE', 'duplicate participant ids');
  if (!/^[0-9a-f]{32,128}$/.test(input.seed)) throw new ProtocolError('INVALID_MESSAGE', 'committee seed must be 32–128 hex digits');
  if (!Number.isInteger(input.minParticipants) || input.minParticipants < 1) {
    throw new ProtocolError('INVALID_MESSAGE', 'minParticipants must be a positive integer');
  }
  if (participants.length < input.minParticipants) {
    throw new ProtocolError(
      'MIN_PARTICIPANTS',
      `${participants.length} participant${participants.length === 1 ? '' : 's'} enrolled, the study requires at least ${input.minParticipants}`,
    );
  }
  const k = input.committeeSize ?? Math.min(participants.length, MAX_COMMITTEE);
  if (!Number.isInteger(k) || k < 1 || k > participants.length) {
    throw new ProtocolError('INVALID_MESSAGE', `committee size must be from 1 to ${participants.length}, got ${k}`);
  }
  const floor = thresholdFloor(k, input.minThreshold ?? 1);
  if (floor > k) throw new ProtocolError('INVALID_MESSAGE', `threshold: the study requires at least ${floor}, more than the committee of ${k}`);
  const t = input.threshold ?? floor;
  if (!Number.isInteger(t) || t < 1 || t > k) throw new ProtocolError('INVALID_MESSAGE', `threshold must be from ${floor} to ${k}, got ${t}`);
  if (t < floor) throw new ProtocolError('INVALID_MESSAGE', thresholdBelowFloor(t, floor, k));
  if (!(input.deadlines.round1 < input.deadlines.round2)) throw new ProtocolError('INVALID_MESSAGE', 'round 1 must end before round 2');
  if (!Number.isInteger(input.vectorLength) || input.vectorLength < 1) throw new ProtocolError('INVALID_MESSAGE', 'empty aggregate vector');
  return {
    protocol: 'shamir',
    version: 1,
    jobId: input.jobId,
    queryHash: input.queryHash,
    vectorLength: input.vectorLength,
    participants,
    committee: drawCommittee(participants, k, input.seed),
    threshold: t,
    minParticipants: input.minParticipants,
    seed: input.seed,
    deadlines: { round1: input.deadlines.round1, round2: input.deadlines.round2 },
  };
}

/** Why threshold t is refused for a committee of k: one sentence, the same from every party. */
export function thresholdBelowFloor(t: number, floor: number, k: number): string {
  const majority = Math.floor(k / 2) + 1;
  const why = floor > majority ? `the study's floor is ${floor}` : `a majority of the committee of ${k} (⌊k/2⌋ + 1) is ${floor}`;
  return `threshold ${t} is below the floor: ${why}`;
}

/** SHA-256 (hex) of the plan's canonical JSON: what every round message signs. */
export function planHash(plan: ShamirPlan): string {
  return memoFrozen(planHashes, plan, (p) => sha256Hex(canonicalJson(p)));
}

/** Plan hashes of frozen plans: every participant of a round hashes the same shared plan (libs/protocol frozen.ts). */
const planHashes = new WeakMap<ShamirPlan, string>();
