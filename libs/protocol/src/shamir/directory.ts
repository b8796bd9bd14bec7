import type { PublicKey } from '@confide/crypto';

/** A participant's registered public keys (ledger-recorded at enrollment). */
export interface ParticipantKeys {
  /** X25519: committee members receive shares encrypted to it. */
  readonly encryption: PublicKey;
  /** Ed25519: every message the participant sends is signed with its private half. */
  readonly signing: PublicKey;
}

/** Lookup of registered keys by participant id. */
export type KeyDirectory = ReadonlyMap<string, ParticipantKeys>;
