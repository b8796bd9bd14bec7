import { createHash } from 'node:crypto';
import {
  canonicalJson,
  encodeSigned,
  sealEnvelope,
  secureRandom,
  signMessage,
  splitSecret,
  type Envelope,
  type KeyPair,
  type RandomSource,
} from '@confide/crypto';
import { encodeShareVector } from './codec';
import type { KeyDirectory } from './directory';
import { ProtocolError } from '../errors';
import { DOMAIN, type Round1Bundle, type Round1Signed } from './messages';
import { planHash, type ShamirPlan } from './plan';

/** Hex SHA-256 of an envelope's canonical JSON: what a round-1 signature covers for each recipient. */
export function envelopeDigest(envelope: Envelope): string {
  return createHash('sha256').update(canonicalJson(envelope), 'utf8').digest('hex');
}

/** Inputs to {@link participantRound1}. `aggregate` and `signing` are the secret state; they never leave. */
export interface Round1Input {
  readonly plan: ShamirPlan;
  readonly self: string;
  readonly signing: KeyPair;
  readonly directory: KeyDirectory;
  /** The participant's local aggregate vector: exact signed integers (fixed-point scaled). */
  readonly aggregate: readonly bigint[];
  readonly rng?: RandomSource;
}

/**
 * Round 1 of DESIGN.md "Protocol shamir", run by every participant: Shamir-share each coordinate of the
 * local aggregate with a fresh random polynomial of degree t − 1, encrypt member j's share vector to j's
 * registered X25519 key with associated data (job, round 1, sender, j), and sign the list of envelope
 * digests together with the job and plan hash. The aggregate leaves only inside the envelopes.
 * @throws ProtocolError when the participant is not in the plan, a member has no registered key, or the
 *   aggregate has the wrong length or does not fit in the field
 */
export function participantRound1(input: Round1Input): Round1Bundle {
  const { plan, self, directory } = input;
  const rng = input.rng ?? secureRandom;
  if (!plan.participants.includes(self)) throw new ProtocolError('WRONG_JOB', `${self} is not a participant of job ${plan.jobId}`);
  if (input.aggregate.length !== plan.vectorLength) {
    throw new ProtocolError('INVALID_MESSAGE', `aggregate has ${input.aggregate.length} values, the plan expects ${plan.vectorLength}`);
  }
  let secrets;
  try {
    secrets = input.aggregate.map(encodeSigned);
  } catch (cause) {
    throw new ProtocolError('OVERFLOW', 'a local aggregate does not fit in the field', { cause });
  }
  const shares = splitSecret(secrets, plan.threshold, plan.committee.length, rng);
  secrets.fill(0n);
  const envelopes = plan.committee.map((member, i) => {
    const keys = directory.get(member);
    if (!keys) throw new ProtocolError('UNKNOWN_SENDER', `committee member ${member} has no registered key`);
    const plaintext = encodeShareVector(shares[i]!.y);
    const envelope = sealEnvelope(keys.encryption, plaintext, { jobId: plan.jobId, round: 1, sender: self, recipient: member }, rng);
    plaintext.fill(0);
    return envelope;
  });
  const signed: Round1Signed = { jobId: plan.jobId, planHash: planHash(plan), sender: self, digests: envelopes.map(envelopeDigest) };
  return { ...signed, envelopes, signature: signMessage(input.signing.privateKey, DOMAIN.round1, signed) };
}
