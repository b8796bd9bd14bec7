import { createHash } from 'node:crypto';
import { canonicalJson } from '@confide/crypto';
import { ProtocolError } from './errors';

/** DESIGN.md "Protocol shamir": committees larger than this are drawn from the participants. */
export const MAX_COMMITTEE = 10;

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
  /** Reconstruction threshold t; defaults to ⌊k/2⌋ + 1. */
  readonly threshold?: number;
}

/**
 * Draws the committee: all participants if there are at most `size`, otherwise the `size` whose
 * SHA-256(seed ‖ id) sort first — deterministic from the recorded seed, so an auditor can redo it,
 * and unpredictable before the seed is drawn.
 */
export function drawCommittee(participants: readonly string[], size: number, seed: string): string[] {
  const score = (id: string): string => createHash('sha256').update(`confide/committee/v1\n${seed}\n${id}`).digest('hex');
  const ranked = [...participants].map((id) => ({ id, s: score(id) })).sort((a, b) => (a.s < b.s ? -1 : a.s > b.s ? 1 : 0));
  return ranked.slice(0, size).map((r) => r.id);
}

/**
 * Plans a shamir job (DESIGN.md "Protocol shamir"): committee of k = min(n, 10) unless set, threshold
 * t = ⌊k/2⌋ + 1 unless set, deadlines carried as data.
 * @throws ProtocolError INVALID_MESSAGE on duplicate participants, k or t out of range, or a bad seed;
 *   MIN_PARTICIPANTS when fewer participants are enrolled than the study requires
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
  const t = input.threshold ?? Math.floor(k / 2) + 1;
  if (!Number.isInteger(t) || t < 1 || t > k) throw new ProtocolError('INVALID_MESSAGE', `threshold must be from 1 to ${k}, got ${t}`);
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

/** SHA-256 (hex) of the plan's canonical JSON: what every round message signs. */
export function planHash(plan: ShamirPlan): string {
  return sha256Hex(canonicalJson(plan));
}

/** Hex SHA-256 of a UTF-8 string. */
export function sha256Hex(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}
