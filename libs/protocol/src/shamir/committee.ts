import { add, openEnvelope, sealEnvelope, signMessage, verifyMessage, type KeyPair, type PublicKey, type RandomSource } from '@confide/crypto';
import { decodeShareVector, encodeShareVector } from './codec';
import { bundleHash, closedHash } from './coordinator';
import type { KeyDirectory } from './directory';
import { ProtocolError } from '../errors';
import { DOMAIN, ROUND2_READER, round1ClosedSchema, round1DeliverySchema, type Round1Closed, type Round2Result } from './messages';
import { envelopeDigest } from './participant';
import { planHash, type ShamirPlan } from './plan';

/**
 * What a committee member remembers between jobs (its secret state, kept at home): for each job it
 * answered, the hash of the contributor set it answered for. DESIGN.md: a member answers round 2 once per
 * query, so a coordinator cannot ask for U1 and then U1 minus one participant and subtract.
 */
export interface MemberMemory {
  answeredFor(jobId: string): string | undefined;
}

/** Inputs to {@link committeeRound2}: the public task and the member's own keys and memory. */
export interface Round2Input {
  readonly plan: ShamirPlan;
  readonly self: string;
  readonly encryption: KeyPair;
  readonly signing: KeyPair;
  readonly directory: KeyDirectory;
  /** The round-1 closing record, as the ledger holds it. */
  readonly closed: unknown;
  /** The envelopes addressed to this member, one per contributor. */
  readonly deliveries: readonly unknown[];
  readonly memory: MemberMemory;
  /** The coordinator's X25519 key, pinned at enrollment: the share sum is sealed to it. */
  readonly reader: PublicKey;
  readonly rng?: RandomSource;
}

/**
 * Round 2 of DESIGN.md "Protocol shamir", run by each committee member: check the contributor set
 * against the closing record and the study minimum, verify every sender's signature with its registered
 * key, decrypt the shares addressed to this member, sum them, seal the sum to the coordinator's X25519 key
 * (associated data: job, round 2, this member, "coordinator"), and sign the sealed sum.
 * @returns the signed share sum, and the closed-set hash to remember (the caller persists it before sending)
 * @throws ProtocolError refusing: NOT_IN_COMMITTEE, WRONG_JOB, MIN_PARTICIPANTS, SET_MISMATCH (deliveries
 *   differ from the closed set), ALREADY_ANSWERED (another set for the same job), BAD_SIGNATURE, DECRYPTION_FAILED
 */
export function committeeRound2(input: Round2Input): { result: Round2Result; closedHash: string } {
  const { plan, self, directory } = input;
  const index = plan.committee.indexOf(self);
  if (index < 0) throw new ProtocolError('NOT_IN_COMMITTEE', `${self} is not on the committee of job ${plan.jobId}`);
  const ph = planHash(plan);
  const parsedClosed = round1ClosedSchema.safeParse(input.closed);
  if (!parsedClosed.success) throw new ProtocolError('INVALID_MESSAGE', 'malformed round-1 closing record');
  const closed: Round1Closed = parsedClosed.data;
  if (closed.jobId !== plan.jobId || closed.planHash !== ph) throw new ProtocolError('WRONG_JOB', 'closing record is for another job or plan');

  // Output privacy is enforced by the members themselves, not only by the coordinator.
  if (closed.contributors.length < plan.minParticipants) {
    throw new ProtocolError(
      'MIN_PARTICIPANTS',
      `refusing round 2: ${closed.contributors.length} contributor${closed.contributors.length === 1 ? '' : 's'}, the study requires at least ${plan.minParticipants}`,
    );
  }
  const ch = closedHash(closed);
  const before = input.memory.answeredFor(plan.jobId);
  if (before !== undefined && before !== ch) {
    throw new ProtocolError('ALREADY_ANSWERED', `refusing round 2: already answered job ${plan.jobId} for another contributor set`);
  }

  const expected = new Map(closed.contributors.map((c) => [c.id, c.bundleHash]));
  if (expected.size !== closed.contributors.length) throw new ProtocolError('INVALID_MESSAGE', 'closing record lists a contributor twice');
  const seen = new Set<string>();
  let sum: bigint[] = new Array<bigint>(plan.vectorLength).fill(0n);
  for (const raw of input.deliveries) {
    const parsed = round1DeliverySchema.safeParse(raw);
    if (!parsed.success) throw new ProtocolError('INVALID_MESSAGE', 'malformed round-1 delivery');
    const d = parsed.data;
    if (d.jobId !== plan.jobId || d.planHash !== ph) throw new ProtocolError('WRONG_JOB', `delivery from ${d.sender} is for another job or plan`);
    const recorded = expected.get(d.sender);
    if (recorded === undefined || seen.has(d.sender)) throw new ProtocolError('SET_MISMATCH', `delivery from ${d.sender}, who is not in the closed set once`);
    seen.add(d.sender);
    if (bundleHash(d) !== recorded) throw new ProtocolError('SET_MISMATCH', `delivery from ${d.sender} differs from the bundle the closing record names`);
    if (d.digests.length !== plan.committee.length || envelopeDigest(d.envelope) !== d.digests[index]) {
      throw new ProtocolError('INVALID_MESSAGE', `envelope from ${d.sender} does not match its signed digest`);
    }
    const keys = directory.get(d.sender);
    if (!keys) throw new ProtocolError('UNKNOWN_SENDER', `${d.sender} has no registered key`);
    const { jobId, planHash: dph, sender, digests, signature } = d;
    if (!verifyMessage(keys.signing, DOMAIN.round1, { jobId, planHash: dph, sender, digests }, signature)) {
      throw new ProtocolError('BAD_SIGNATURE', `round-1 signature of ${d.sender} does not verify`);
    }
    let plaintext: Uint8Array;
    try {
      plaintext = openEnvelope(input.encryption, d.envelope, { jobId: plan.jobId, round: 1, sender: d.sender, recipient: self });
    } catch (cause) {
      throw new ProtocolError('DECRYPTION_FAILED', `share from ${d.sender} does not decrypt`, { cause });
    }
    const share = decodeShareVector(plaintext, plan.vectorLength);
    plaintext.fill(0);
    sum = sum.map((s, i) => add(s, share[i]!));
  }
  if (seen.size !== expected.size) {
    throw new ProtocolError('SET_MISMATCH', `received shares from ${seen.size} contributors, the closing record lists ${expected.size}`);
  }
  const plaintext = encodeShareVector(sum);
  sum.fill(0n);
  const sealed = sealEnvelope(input.reader, plaintext, { jobId: plan.jobId, round: 2, sender: self, recipient: ROUND2_READER }, input.rng);
  plaintext.fill(0);
  const signed = { jobId: plan.jobId, planHash: ph, closedHash: ch, sender: self, x: index + 1, sealed };
  return { result: { ...signed, signature: signMessage(input.signing.privateKey, DOMAIN.round2, signed) }, closedHash: ch };
}
