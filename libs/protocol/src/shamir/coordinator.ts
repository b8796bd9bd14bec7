import { canonicalJson, checkConsistency, decodeSigned, openEnvelope, verifyMessage, type KeyPair } from '@confide/crypto';
import { decodeShareVector } from './codec';
import type { KeyDirectory } from './directory';
import { ProtocolError } from '../errors';
import {
  DOMAIN,
  ROUND2_READER,
  round1BundleSchema,
  round2ResultSchema,
  type Round1Bundle,
  type Round1Closed,
  type Round1Delivery,
} from './messages';
import { envelopeDigest } from './participant';
import { sha256Hex } from '../hashing';
import { planHash, type ShamirPlan } from './plan';

/** Hash of a signed round-1 contribution (its signed fields and signature): what the ledger records. */
export function bundleHash(b: Pick<Round1Bundle, 'jobId' | 'planHash' | 'sender' | 'digests' | 'signature'>): string {
  return sha256Hex(canonicalJson({ jobId: b.jobId, planHash: b.planHash, sender: b.sender, digests: b.digests, signature: b.signature }));
}

/** Hash of the round-1 closing record; round-2 answers sign it so they are tied to one contributor set. */
export function closedHash(closed: Round1Closed): string {
  return sha256Hex(canonicalJson(closed));
}

/**
 * Checks a round-1 bundle as the coordinator receives it: well-formed, for this job and plan, from a
 * planned participant, one envelope per committee member matching the signed digests, signature valid
 * under the sender's registered Ed25519 key.
 * @returns the bundle's hash, to record when round 1 closes
 * @throws ProtocolError (permanent) naming what is wrong
 */
export function verifyRound1Bundle(plan: ShamirPlan, directory: KeyDirectory, raw: unknown): { bundle: Round1Bundle; hash: string } {
  const parsed = round1BundleSchema.safeParse(raw);
  if (!parsed.success) throw new ProtocolError('INVALID_MESSAGE', `malformed round-1 bundle: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
  const bundle = parsed.data;
  if (bundle.jobId !== plan.jobId || bundle.planHash !== planHash(plan)) {
    throw new ProtocolError('WRONG_JOB', `round-1 bundle from ${bundle.sender} is for another job or plan`);
  }
  if (!plan.participants.includes(bundle.sender)) throw new ProtocolError('UNKNOWN_SENDER', `${bundle.sender} is not a participant of this job`);
  const keys = directory.get(bundle.sender);
  if (!keys) throw new ProtocolError('UNKNOWN_SENDER', `${bundle.sender} has no registered key`);
  if (bundle.envelopes.length !== plan.committee.length || bundle.digests.length !== plan.committee.length) {
    throw new ProtocolError('INVALID_MESSAGE', `round-1 bundle from ${bundle.sender} has the wrong number of envelopes`);
  }
  bundle.envelopes.forEach((e, i) => {
    if (envelopeDigest(e) !== bundle.digests[i]) throw new ProtocolError('INVALID_MESSAGE', `envelope ${i} from ${bundle.sender} does not match its signed digest`);
  });
  const { jobId, planHash: ph, sender, digests, signature } = bundle;
  if (!verifyMessage(keys.signing, DOMAIN.round1, { jobId, planHash: ph, sender, digests }, signature)) {
    throw new ProtocolError('BAD_SIGNATURE', `round-1 signature of ${bundle.sender} does not verify`);
  }
  return { bundle, hash: bundleHash(bundle) };
}

/**
 * Closes round 1 over the bundles accepted before the deadline: U1 = their senders.
 * @throws ProtocolError MIN_PARTICIPANTS when |U1| is below the study's minimum (the job fails; the
 *   reason names the counts), or INVALID_MESSAGE on two bundles from one sender
 */
export function closeRound1(plan: ShamirPlan, accepted: readonly { bundle: Round1Bundle; hash: string }[]): Round1Closed {
  const contributors = accepted.map((a) => ({ id: a.bundle.sender, bundleHash: a.hash })).sort((a, b) => (a.id < b.id ? -1 : 1));
  if (new Set(contributors.map((c) => c.id)).size !== contributors.length) throw new ProtocolError('INVALID_MESSAGE', 'two round-1 bundles from one sender');
  if (contributors.length < plan.minParticipants) {
    throw new ProtocolError(
      'MIN_PARTICIPANTS',
      `round 1: ${contributors.length} of ${plan.participants.length} participants answered, at least ${plan.minParticipants} needed`,
    );
  }
  return { jobId: plan.jobId, planHash: planHash(plan), contributors };
}

/** The slice of each accepted bundle addressed to one committee member (its envelope only). */
export function deliveriesFor(plan: ShamirPlan, member: string, bundles: readonly Round1Bundle[]): Round1Delivery[] {
  const index = plan.committee.indexOf(member);
  if (index < 0) throw new ProtocolError('NOT_IN_COMMITTEE', `${member} is not on the committee of job ${plan.jobId}`);
  return bundles.map((b) => ({
    jobId: b.jobId,
    planHash: b.planHash,
    sender: b.sender,
    digests: b.digests,
    envelope: b.envelopes[index]!,
    signature: b.signature,
  }));
}

/** The outcome of a shamir job: exact signed totals of all contributors' aggregate vectors. */
export interface ShamirOutcome {
  readonly totals: bigint[];
  readonly contributors: number;
  /** Committee members whose share sums were used or checked. */
  readonly answered: string[];
  /** Members whose signed share sum was off the polynomial: named, and left out. */
  readonly badMembers: string[];
}

/**
 * Finalize of DESIGN.md "Protocol shamir": verify each member's signed share sum, open it with the coordinator's
 * X25519 key (`reader`, the one recipient members seal to), reconstruct Σ a_i by
 * Lagrange interpolation at 0 from any t of them and, with more than t, check they lie on one polynomial,
 * naming the member whose share does not.
 * @throws ProtocolError QUORUM when fewer than t valid answers arrived (message names answered and
 *   needed counts); INCONSISTENT_SHARES when the answers disagree and the culprit cannot be named
 */
export function finalizeShamir(plan: ShamirPlan, closed: Round1Closed, directory: KeyDirectory, answers: readonly unknown[], reader: KeyPair): ShamirOutcome {
  const expectedClosed = closedHash(closed);
  const ph = planHash(plan);
  const valid = new Map<string, { x: number; y: bigint[] }>();
  for (const raw of answers) {
    const parsed = round2ResultSchema.safeParse(raw);
    if (!parsed.success) continue;
    const r = parsed.data;
    const index = plan.committee.indexOf(r.sender);
    const keys = directory.get(r.sender);
    if (index < 0 || !keys || r.x !== index + 1 || r.jobId !== plan.jobId || r.planHash !== ph || r.closedHash !== expectedClosed) continue;
    const { signature, ...signed } = r;
    if (!verifyMessage(keys.signing, DOMAIN.round2, signed, signature)) continue;
    let y: bigint[];
    try {
      const plaintext = openEnvelope(reader, r.sealed, { jobId: plan.jobId, round: 2, sender: r.sender, recipient: ROUND2_READER });
      y = decodeShareVector(plaintext, plan.vectorLength);
      plaintext.fill(0);
    } catch {
      // Sealed to another key, or not a share vector of this plan: as good as no answer.
      continue;
    }
    valid.set(r.sender, { x: r.x, y });
  }
  const k = plan.committee.length;
  if (valid.size < plan.threshold) {
    throw new ProtocolError(
      'QUORUM',
      `round 2: ${valid.size} of ${k} committee members answered, ${plan.threshold} needed (at most ${k - plan.threshold} may be missing)`,
    );
  }
  const shares = [...valid.values()];
  const check = checkConsistency(shares, plan.threshold);
  const memberAt = (x: number): string => plan.committee[x - 1]!;
  if (!check.consistent && !check.secret) {
    throw new ProtocolError('INCONSISTENT_SHARES', 'round 2: the committee share sums do not lie on one polynomial and the culprit cannot be named');
  }
  const badMembers = check.consistent ? [] : check.badHolders.map(memberAt);
  return {
    totals: check.secret!.map(decodeSigned),
    contributors: closed.contributors.length,
    answered: shares.map((s) => memberAt(s.x)).filter((m) => !badMembers.includes(m)),
    badMembers,
  };
}
