import type { PaillierPlan } from '../paillier/protocol';
import type { ShamirPlan } from '../shamir/plan';
import type { RoundNumber, RoundSpec } from './machine';

/** Shamir round 0: the researcher's committee nonce, its one answer; nobody else is asked. */
export const NONCE_ROUND: RoundSpec = { protocol: 'shamir', round: 0, expected: [], quorum: 0 };

/**
 * What round `round` of a planned query is, from its plan alone: who is asked and how many answers it needs.
 * - shamir round 1: every planned participant, at least the study's minimum;
 * - shamir round 2: the committee, at least the threshold t;
 * - paillier round 1: every planned participant, at least the study's minimum;
 * - paillier round 2: the key holder's decryption, or `custodians.threshold` custodians' partials.
 * @throws RangeError for a round the protocol does not have
 */
export function roundSpec(plan: ShamirPlan | PaillierPlan, round: RoundNumber, custodians?: { readonly threshold: number } | null): RoundSpec {
  if (round === 1) return { protocol: plan.protocol, round, expected: plan.participants, quorum: plan.minParticipants };
  if (round === 2 && plan.protocol === 'shamir') return { protocol: 'shamir', round, expected: plan.committee, quorum: plan.threshold };
  if (round === 2) return { protocol: 'paillier', round, expected: [], quorum: 0, custodians: custodians ?? null };
  throw new RangeError(`a planned ${plan.protocol} query has no round ${round}`);
}
