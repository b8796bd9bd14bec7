import { z } from 'zod';

/**
 * The coordinator's encrypted differential-privacy noise for a paillier aggregate (protocol.ts addEncryptedNoise):
 * one ciphertext per chunk, each with a proof that the coordinator knows what it encrypts (libs/crypto
 * encryptWithProof), bound to the query and the chunk by {@link noiseProofContext}. The key holder checks them
 * before it decrypts (key-holder.ts).
 */
export const encryptedNoiseSchema = z.strictObject({
  ciphertexts: z.array(z.string().regex(/^[A-Za-z0-9_-]+$/, 'expected base64url')).min(1).max(1000),
  proofs: z.array(z.unknown()).min(1).max(1000),
});
export type EncryptedNoise = z.infer<typeof encryptedNoiseSchema>;

/** The context a noise chunk's proof is bound to: the query and the chunk. */
export function noiseProofContext(queryId: string, chunk: number): string {
  return `confide/paillier/noise/${queryId}/${chunk}`;
}
