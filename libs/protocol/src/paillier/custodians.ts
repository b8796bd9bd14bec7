import {
  ciphertextFromString,
  combinePartialDecryptions,
  PaillierError,
  partialDecrypt,
  partialDecryptionFromJson,
  partialDecryptionToJson,
  verifyPartialDecryption,
  type CustodianShare,
  type PartialDecryption,
  type ThresholdVerificationKey,
} from '@confide/crypto';
import { z } from 'zod';
import { ProtocolError } from '../errors';

/**
 * Threshold decryption of a paillier aggregate by custodians (libs/crypto threshold-paillier.ts: Shoup 2000,
 * Damgård–Jurik 2001, with a trusted dealer). The researcher's key is split among l custodians, any t of whom
 * decrypt: no single file can lose or leak every contribution ever made to the researcher's queries. Each custodian
 * checks the aggregate exactly as a full-key holder does (key-holder.ts), then posts one partial decryption per
 * chunk with a zero-knowledge proof that it used its share; the coordinator verifies every proof and combines any t.
 */

/** What a custodian posts: its index and, per aggregate chunk, its partial decryption with proof (JSON form). */
export const postedPartialsSchema = z.strictObject({
  index: z.number().int().min(1).max(100),
  partials: z.array(z.unknown()).min(1).max(1000),
});
export type PostedPartials = z.infer<typeof postedPartialsSchema>;

/** The context a partial decryption's proof is bound to: the query and the chunk, so no proof is reusable elsewhere. */
export function partialContext(queryId: string, chunk: number): string {
  return `confide/paillier/partial/${queryId}/${chunk}`;
}

/**
 * A custodian's share of the decryption: for each chunk of the (checked) aggregate, c^(2Δ·s_i) mod n² with its proof.
 * @param aggregate the aggregate ciphertexts as {@link checkAggregate} recomputed them
 */
export function custodianPartials(share: CustodianShare, queryId: string, aggregate: readonly bigint[]): PostedPartials {
  return { index: share.index, partials: aggregate.map((c, chunk) => partialDecryptionToJson(partialDecrypt(share, c, partialContext(queryId, chunk)))) };
}

/**
 * Reads a custodian's posted partials, one per chunk, each from the custodian it claims; proofs are not checked
 * here ({@link checkPostedPartials} does): for partials that were checked when they arrived and stored.
 * @throws ProtocolError INVALID_MESSAGE for a malformed post
 */
export function parsePostedPartials(verification: ThresholdVerificationKey, chunks: number, posted: PostedPartials): PartialDecryption[] {
  if (posted.index > verification.custodians) throw new ProtocolError('INVALID_MESSAGE', `custodian ${posted.index}: the key has ${verification.custodians} custodians`);
  if (posted.partials.length !== chunks) throw new ProtocolError('INVALID_MESSAGE', `custodian ${posted.index}: expected ${chunks} partial decryptions, one per chunk, got ${posted.partials.length}`);
  return posted.partials.map((json, chunk) => {
    let partial: PartialDecryption;
    try {
      partial = partialDecryptionFromJson(verification, json);
    } catch (err) {
      if (err instanceof PaillierError) throw new ProtocolError('INVALID_MESSAGE', `custodian ${posted.index}, chunk ${chunk}: ${err.message}`, { cause: err });
      throw err;
    }
    if (partial.index !== posted.index) throw new ProtocolError('INVALID_MESSAGE', `custodian ${posted.index}, chunk ${chunk}: the partial is custodian ${partial.index}'s`);
    return partial;
  });
}

/**
 * Checks a custodian's posted partials against the aggregate: well formed ({@link parsePostedPartials}), and each
 * proof valid for that chunk of this query.
 * @returns the parsed partials, by chunk
 * @throws ProtocolError INVALID_MESSAGE for a malformed post; BAD_SIGNATURE naming the chunk whose proof fails
 */
export function checkPostedPartials(verification: ThresholdVerificationKey, queryId: string, aggregate: readonly string[], posted: PostedPartials): PartialDecryption[] {
  const partials = parsePostedPartials(verification, aggregate.length, posted);
  partials.forEach((partial, chunk) => {
    const c = ciphertextFromString(verification.publicKey, aggregate[chunk]!);
    if (!verifyPartialDecryption(verification, c, partial, partialContext(queryId, chunk))) {
      throw new ProtocolError('BAD_SIGNATURE', `custodian ${posted.index}'s partial decryption of chunk ${chunk} does not prove it used its share`);
    }
  });
  return partials;
}

/**
 * Combines t custodians' checked partials into the aggregate's plaintexts, chunk by chunk.
 * @param byCustodian each custodian's partials, by chunk, as {@link checkPostedPartials} returned them
 * @throws ProtocolError INVALID_MESSAGE with fewer than t custodians or partials that do not combine
 */
export function combineCustodianPartials(verification: ThresholdVerificationKey, aggregate: readonly string[], byCustodian: readonly (readonly PartialDecryption[])[]): bigint[] {
  if (byCustodian.length < verification.threshold) throw new ProtocolError('INVALID_MESSAGE', `${byCustodian.length} of the ${verification.threshold} custodians needed have decrypted`);
  return aggregate.map((text, chunk) => {
    try {
      return combinePartialDecryptions(verification, ciphertextFromString(verification.publicKey, text), byCustodian.map((p) => p[chunk]!));
    } catch (err) {
      if (err instanceof PaillierError) throw new ProtocolError('INVALID_MESSAGE', `chunk ${chunk}: ${err.message}`, { cause: err });
      throw err;
    }
  });
}
