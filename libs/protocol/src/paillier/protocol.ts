import {
  addCiphertexts,
  canonicalJson,
  ciphertextFromString,
  ciphertextToString,
  decryptFast,
  encryptFast,
  encryptWithProof,
  PaillierError,
  plaintextProofToJson,
  publicKeyFromJson,
  recoverRandomness,
  signMessage,
  verifyDecryption,
  verifyMessage,
  type KeyPair,
  type PaillierPrivateKey,
  type PaillierPublicKey,
  type PublicKey,
} from '@confide/crypto';
import { z } from 'zod';
import { sha256Hex } from '../hashing';
import { memoFrozen } from '../frozen';
import { ProtocolError } from '../errors';
import { coordinateKey, termMagnitudes, type CompiledQuery } from '../query/query';
import { noiseBound } from '../privacy/dp';
import type { DpSettings } from '../privacy/settings';
import { packingLayout, packNoise, packVector, unpackTotals, type PackingLayout } from './packing';
import { noiseProofContext, type EncryptedNoise } from './noise';

/**
 * The `paillier` protocol (DESIGN.md "Protocol paillier"): one asynchronous round. The researcher's public key
 * travels in the plan; each participant packs its aggregate vector ({@link packingLayout}), encrypts every chunk,
 * signs, and may go offline. The coordinator checks and multiplies the ciphertexts (homomorphic addition) without
 * being able to read them, and releases only the product, to the researcher, who decrypts locally and posts the
 * plaintext with the recovered randomness r. Anyone can check c = (1 + n)^m · r^n mod n², so the posted result
 * is verifiable before it is released.
 */

/** Smallest modulus the protocol accepts from a researcher (NIST SP 800-57: 2048-bit factoring ≈ 112-bit security). */
export const PAILLIER_MIN_BITS = 2048;

const id = z.string().min(1).max(200);
const hex64 = z.string().regex(/^[0-9a-f]{64}$/, 'expected 64 hex digits');
const b64u = z.string().regex(/^[A-Za-z0-9_-]+$/, 'expected base64url');
const decimal = z.string().regex(/^(0|[1-9][0-9]{0,2000})$/, 'expected a non-negative decimal integer');

export const paillierPlanSchema = z.strictObject({
  protocol: z.literal('paillier'),
  version: z.literal(1),
  jobId: id,
  /** Hash of the compiled query, so every signature also binds what is being computed. */
  queryHash: hex64,
  vectorLength: z.number().int().min(1).max(1_000_000),
  /** The researcher's public key, `{ n }` (base64url). */
  publicKey: z.strictObject({ n: b64u }),
  participants: z.array(id).min(1).readonly(),
  minParticipants: z.number().int().min(1),
  /** The largest record count any participant declared: with the query it fixes every slot's bias (decimal). */
  maxRecords: decimal,
  deadline: z.number().int(),
  /**
   * Differential privacy, when the query has it: the coordinator adds encrypted noise to the aggregate before the
   * researcher decrypts it, so slots carry headroom for it. ε and δ as decimal strings (plans are canonical JSON).
   */
  dp: z.strictObject({ mechanism: z.enum(['laplace', 'gaussian']), epsilon: z.string().max(40), delta: z.string().max(40).optional() }).nullable(),
});
export type PaillierPlan = z.infer<typeof paillierPlanSchema>;

/** What a participant signs: the plan it answers and its ciphertexts, one per packed chunk. */
export const paillierSignedSchema = z.strictObject({
  jobId: id,
  planHash: hex64,
  sender: id,
  ciphertexts: z.array(b64u).min(1).max(1000),
});
export const paillierContributionSchema = paillierSignedSchema.extend({ signature: b64u });
export type PaillierContribution = z.infer<typeof paillierContributionSchema>;

/** What the researcher posts: per chunk, the plaintext and the randomness r, both decimal. */
export const paillierDecryptionSchema = z.strictObject({
  plaintexts: z.array(decimal).min(1).max(1000),
  randomness: z.array(decimal).min(1).max(1000),
});
export type PaillierDecryption = z.infer<typeof paillierDecryptionSchema>;

/** The signature domain of a participant's contribution (libs/crypto signMessage). */
export const CONTRIBUTION_SIGNATURE_DOMAIN = 'paillier/contribution';

/** SHA-256 (hex) of the plan's canonical JSON: what every contribution signs. */
export function paillierPlanHash(plan: PaillierPlan): string {
  return memoFrozen(paillierPlanHashes, plan, (p) => sha256Hex(canonicalJson(p)));
}

/** Plan hashes of frozen plans (libs/protocol frozen.ts). */
const paillierPlanHashes = new WeakMap<PaillierPlan, string>();

/** SHA-256 (hex) of a signed contribution: what the ledger records for it (never the ciphertexts). */
export function contributionHash(c: PaillierContribution): string {
  return sha256Hex(canonicalJson({ jobId: c.jobId, planHash: c.planHash, sender: c.sender, ciphertexts: c.ciphertexts, signature: c.signature }));
}

/**
 * SHA-256 (hex) of an aggregate's ciphertexts: what `result.released` records, so that every key holder who checked
 * the aggregate (key-holder.ts) can tell that the released result is the decryption of that one.
 */
export function aggregateHash(aggregate: readonly string[]): string {
  return sha256Hex(`confide/paillier/aggregate/v1\n${canonicalJson([...aggregate])}`);
}

/** Inputs to {@link planPaillier}. */
export interface PaillierPlanInput {
  readonly jobId: string;
  readonly queryHash: string;
  readonly compiled: CompiledQuery;
  readonly publicKey: { readonly n: string };
  readonly participants: readonly string[];
  readonly minParticipants: number;
  readonly maxRecords: bigint;
  readonly deadline: number;
  readonly dp?: DpSettings | null;
}

/**
 * Plans a paillier job: checks the researcher's key ({@link PAILLIER_MIN_BITS}, odd, no small factors, not a square)
 * and that the packed vector fits the key, and fixes the participants.
 * @throws ProtocolError INVALID_MESSAGE on a bad key or participant list, MIN_PARTICIPANTS, OVERFLOW when a slot
 *   cannot fit
 */
export function planPaillier(input: PaillierPlanInput): PaillierPlan {
  const participants = [...input.participants].sort();
  if (new Set(participants).size !== participants.length) throw new ProtocolError('INVALID_MESSAGE', 'duplicate participant ids');
  if (participants.length < input.minParticipants) {
    throw new ProtocolError('MIN_PARTICIPANTS', `${participants.length} participant${participants.length === 1 ? '' : 's'} enrolled, the study requires at least ${input.minParticipants}`);
  }
  const plan: PaillierPlan = {
    protocol: 'paillier',
    version: 1,
    jobId: input.jobId,
    queryHash: input.queryHash,
    vectorLength: input.compiled.vectorLength,
    publicKey: { n: input.publicKey.n },
    participants,
    minParticipants: input.minParticipants,
    maxRecords: input.maxRecords.toString(),
    deadline: input.deadline,
    dp: input.dp ? { mechanism: input.dp.mechanism, epsilon: String(input.dp.epsilon), ...(input.dp.delta !== undefined ? { delta: String(input.dp.delta) } : {}) } : null,
  };
  paillierContext(plan, input.compiled);
  return plan;
}

/** The plan's public key (validated) and packing layout, recomputed from the plan by whoever needs them. */
export interface PaillierContext {
  readonly publicKey: PaillierPublicKey;
  readonly layout: PackingLayout;
  /** {@link paillierPlanHash} of the plan, computed once: the plan lists every participant, so it is not small. */
  readonly planHash: string;
}

/**
 * Validates the plan's key and derives the packing layout from the plan and the compiled query. Participants,
 * coordinator and researcher each compute it themselves, so nobody has to trust a layout someone else sent.
 * @throws ProtocolError INVALID_MESSAGE on a bad key or a vector length that does not match the query; OVERFLOW
 *   when a slot cannot fit the key
 */
export function paillierContext(plan: PaillierPlan, compiled: CompiledQuery): PaillierContext {
  let publicKey: PaillierPublicKey;
  try {
    publicKey = publicKeyFromJson(plan.publicKey, { minBits: PAILLIER_MIN_BITS });
  } catch (err) {
    if (err instanceof PaillierError) throw new ProtocolError('INVALID_MESSAGE', `researcher's public key refused: ${err.message}`, { cause: err });
    throw err;
  }
  if (compiled.vectorLength !== plan.vectorLength) throw new ProtocolError('INVALID_MESSAGE', `plan is for ${plan.vectorLength} coordinates, the query has ${compiled.vectorLength}`);
  const biases = termMagnitudes(compiled, BigInt(plan.maxRecords));
  const dp = planDp(plan);
  const layout = packingLayout(biases, plan.participants.length, publicKey.bitLength, Array.from({ length: compiled.vectorLength }, (_, i) => coordinateKey(compiled, i)), dp ? noiseBound(compiled, dp) : undefined);
  return { publicKey, layout, planHash: paillierPlanHash(plan) };
}

/** The plan's differential-privacy settings, or null. @throws ProtocolError on a malformed ε or δ */
export function planDp(plan: PaillierPlan): DpSettings | null {
  if (!plan.dp) return null;
  const epsilon = Number(plan.dp.epsilon);
  const delta = plan.dp.delta === undefined ? undefined : Number(plan.dp.delta);
  if (!(epsilon > 0) || (delta !== undefined && !(delta > 0 && delta < 1))) throw new ProtocolError('INVALID_MESSAGE', 'plan has malformed differential-privacy settings');
  return { mechanism: plan.dp.mechanism, epsilon, ...(delta !== undefined ? { delta } : {}) };
}

/**
 * Adds differential-privacy noise to the aggregate under the researcher's key (homomorphically), so the key holder
 * only ever decrypts noised totals: the noise is packed with its bound as bias ({@link packNoise}), encrypted with
 * fresh randomness and a proof that the coordinator knows what each noise ciphertext encrypts (libs/crypto
 * encryptWithProof, bound to the query and chunk), and multiplied in, chunk by chunk. The proofs let the key holder
 * tell noise from a ciphertext built out of other contributions (key-holder.ts). The caller draws the noise and
 * forgets it afterwards.
 * @returns the noised aggregate, and the noise ciphertexts with their proofs, which travel with it
 * @throws ProtocolError on a noise vector that does not fit the layout
 */
export function addEncryptedNoise(context: PaillierContext, queryId: string, aggregate: readonly string[], noise: readonly bigint[]): { aggregate: string[]; noise: EncryptedNoise } {
  const packed = packNoise(context.layout, noise);
  const ciphertexts: string[] = [];
  const proofs: unknown[] = [];
  const noised = aggregate.map((text, i) => {
    const c = ciphertextFromString(context.publicKey, text);
    const { ciphertext, proof } = encryptWithProof(context.publicKey, packed[i]!, noiseProofContext(queryId, i));
    ciphertexts.push(ciphertextToString(context.publicKey, ciphertext));
    proofs.push(plaintextProofToJson(proof));
    return ciphertextToString(context.publicKey, addCiphertexts(context.publicKey, [c, ciphertext]));
  });
  packed.fill(0n);
  return { aggregate: noised, noise: { ciphertexts, proofs } };
}

/** Inputs to {@link paillierContribute}. */
export interface ContributeInput {
  readonly plan: PaillierPlan;
  readonly context: PaillierContext;
  readonly self: string;
  readonly signing: KeyPair;
  /** This participant's local aggregate vector (secret). */
  readonly aggregate: readonly bigint[];
  /** r^n mod n² for each ciphertext: from a precomputed pool, or fresh. */
  readonly randomnessPower: () => bigint;
}

/**
 * A participant's one-round answer: its vector packed, each chunk encrypted under the researcher's key with fresh
 * randomness, and the whole signed over the plan hash (so the ciphertexts cannot be replayed into another query).
 * @throws ProtocolError UNKNOWN_SENDER when this participant is not in the plan; OVERFLOW when a coordinate is
 *   outside the bound the layout was sized for
 */
export function paillierContribute(input: ContributeInput): PaillierContribution {
  const { plan, context } = input;
  if (!plan.participants.includes(input.self)) throw new ProtocolError('UNKNOWN_SENDER', `${input.self} is not a participant of job ${plan.jobId}`);
  const plaintexts = packVector(context.layout, input.aggregate);
  const ciphertexts = plaintexts.map((m) => ciphertextToString(context.publicKey, encryptFast(context.publicKey, m, input.randomnessPower())));
  plaintexts.fill(0n);
  const signed = { jobId: plan.jobId, planHash: context.planHash, sender: input.self, ciphertexts };
  return { ...signed, signature: signMessage(input.signing.privateKey, CONTRIBUTION_SIGNATURE_DOMAIN, signed) };
}

/**
 * Checks one contribution as the coordinator's aggregation worker receives it: shape, job and plan hash, a sender
 * of the plan, its signature with the sender's registered key, one ciphertext per chunk, each in (0, n²) and a
 * unit mod n² ({@link assertValidCiphertext}).
 * @returns the parsed ciphertexts and the contribution's hash
 * @throws ProtocolError naming what is wrong (INVALID_MESSAGE, WRONG_JOB, UNKNOWN_SENDER, BAD_SIGNATURE)
 */
export function verifyContribution(plan: PaillierPlan, context: PaillierContext, signingKeys: ReadonlyMap<string, PublicKey>, raw: unknown): { sender: string; ciphertexts: bigint[]; hash: string } {
  const parsed = paillierContributionSchema.safeParse(raw);
  if (!parsed.success) throw new ProtocolError('INVALID_MESSAGE', `malformed contribution: ${parsed.error.issues[0]?.message ?? ''}`);
  const c = parsed.data;
  if (c.jobId !== plan.jobId || c.planHash !== context.planHash) throw new ProtocolError('WRONG_JOB', 'contribution is for another query or plan');
  const key = plan.participants.includes(c.sender) ? signingKeys.get(c.sender) : undefined;
  if (!key) throw new ProtocolError('UNKNOWN_SENDER', `${c.sender} is not a participant of job ${plan.jobId}`);
  const { signature, ...signed } = c;
  if (!verifyMessage(key, CONTRIBUTION_SIGNATURE_DOMAIN, signed, signature)) throw new ProtocolError('BAD_SIGNATURE', `contribution signature of ${c.sender} does not verify`);
  if (c.ciphertexts.length !== context.layout.chunks) throw new ProtocolError('INVALID_MESSAGE', `expected ${context.layout.chunks} ciphertexts, got ${c.ciphertexts.length}`);
  let ciphertexts: bigint[];
  try {
    ciphertexts = c.ciphertexts.map((text) => ciphertextFromString(context.publicKey, text));
  } catch (err) {
    if (err instanceof PaillierError) throw new ProtocolError('INVALID_MESSAGE', `ciphertext from ${c.sender} refused: ${err.message}`, { cause: err });
    throw err;
  }
  return { sender: c.sender, ciphertexts, hash: contributionHash(c) };
}

/**
 * Homomorphic addition of the accepted contributions, chunk by chunk: the aggregate ciphertexts, which decrypt to
 * the packed sum of every contributor's vector.
 * @throws ProtocolError INVALID_MESSAGE when there is nothing to add or the chunk counts differ
 */
export function aggregateContributions(context: PaillierContext, contributions: readonly { ciphertexts: readonly bigint[] }[]): string[] {
  if (contributions.length === 0) throw new ProtocolError('INVALID_MESSAGE', 'no contributions to aggregate');
  return Array.from({ length: context.layout.chunks }, (_, chunk) => {
    const column = contributions.map((c) => {
      const ct = c.ciphertexts[chunk];
      if (ct === undefined) throw new ProtocolError('INVALID_MESSAGE', 'contributions have different numbers of ciphertexts');
      return ct;
    });
    return ciphertextToString(context.publicKey, addCiphertexts(context.publicKey, column));
  });
}

/**
 * The researcher's side: decrypts each aggregate ciphertext with the private key (CRT, natively) and recovers its
 * randomness r, so that anyone can re-encrypt and compare.
 * @throws PaillierError when a ciphertext does not belong to the key
 */
export function decryptAggregate(privateKey: PaillierPrivateKey, aggregate: readonly string[]): PaillierDecryption {
  const ciphertexts = aggregate.map((text) => ciphertextFromString(privateKey.publicKey, text));
  return {
    plaintexts: ciphertexts.map((c) => decryptFast(privateKey, c).toString()),
    randomness: ciphertexts.map((c) => recoverRandomness(privateKey, c).toString()),
  };
}

/**
 * Verifies a posted decryption against the aggregate ciphertexts (c = (1 + n)^m · r^n mod n² for every chunk) and
 * reads the exact signed totals out of the packed plaintexts.
 * @param contributors how many contributions the aggregate multiplies
 * @throws ProtocolError BAD_SIGNATURE when a posted plaintext or randomness does not re-encrypt to its ciphertext
 *   (a forged result); INVALID_MESSAGE on the wrong number of chunks or slots no honest sum can hold
 */
export function verifyPostedDecryption(context: PaillierContext, aggregate: readonly string[], posted: PaillierDecryption, contributors: number): bigint[] {
  if (posted.plaintexts.length !== aggregate.length || posted.randomness.length !== aggregate.length) {
    throw new ProtocolError('INVALID_MESSAGE', `expected ${aggregate.length} plaintexts and as many randomness values`);
  }
  const plaintexts = aggregate.map((text, i) => {
    const c = ciphertextFromString(context.publicKey, text);
    const m = BigInt(posted.plaintexts[i]!);
    const r = BigInt(posted.randomness[i]!);
    if (!verifyDecryption(context.publicKey, c, m, r)) throw new ProtocolError('BAD_SIGNATURE', `posted decryption of chunk ${i} does not re-encrypt to the aggregate ciphertext`);
    return m;
  });
  return unpackTotals(context.layout, plaintexts, contributors);
}
