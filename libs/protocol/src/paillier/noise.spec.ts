import {
  ciphertextFromString,
  ciphertextToString,
  decryptFast,
  encryptFast,
  generatePaillierKeyPair,
  plaintextProofFromJson,
  publicKeyToJson,
  verifyPlaintextKnowledge,
  type PaillierKeyPair,
} from '@confide/crypto';
import { discreteLaplaceCdf, dkwRadius, ksDistance } from '../../../../test/support/distributions';
import { dpNoise } from '../privacy/dp';
import type { DpSettings } from '../privacy/settings';
import { compileQuery, type CompiledQuery, type QuerySpec } from '../query/query';
import { parseStudySchema } from '../query/schema';
import { noiseProofContext } from './noise';
import { packVector, unpackTotals, type PackingLayout } from './packing';
import { addEncryptedNoise, aggregateContributions, decryptAggregate, paillierContext, planPaillier, verifyPostedDecryption, type PaillierContext } from './protocol';

// The coordinator's differential-privacy noise for a paillier aggregate (protocol.ts addEncryptedNoise), added under
// the researcher's key. What the researcher decrypts must be the exact totals plus exactly the noise drawn for them,
// and the proofs that travel with the noise ciphertexts must check out for that query and chunk only (key-holder.ts).

const QUERY_ID = 'q-noise-1';
const PARTICIPANTS = ['p1', 'p2', 'p3'];
const schema = parseStudySchema({
  name: 'noise',
  fields: [
    { name: 'salary', type: 'number', min: -1_000_000, max: 1_000_000, decimals: 2 },
    { name: 'score', type: 'number', min: 0, max: 100, decimals: 0 },
    { name: 'site', type: 'category', values: Array.from({ length: 24 }, (_, i) => `site-${i}`) },
  ],
});
/** Count, Σx and Σx² of a wide field in 24 groups: more slots than one 2047-bit plaintext holds. */
const WIDE: QuerySpec = { select: [{ stat: 'variance', field: 'salary' }], groupBy: 'site' };
/** 102 histogram bins of one family (Δ₁ = 1, so b = 1/ε), all in one plaintext. */
const BINS: QuerySpec = { select: [{ stat: 'histogram', field: 'score', bins: { min: 0, max: 100, width: 1 } }] };

let keys: PaillierKeyPair;

beforeAll(async () => {
  // 2048 bits: the smallest key paillierContext accepts (PAILLIER_MIN_BITS).
  keys = await generatePaillierKeyPair(2048);
}, 30_000);

interface Setup {
  readonly compiled: CompiledQuery;
  readonly context: PaillierContext;
  /** The aggregate ciphertexts of three participants' vectors, and the exact sum they decrypt to. */
  readonly aggregate: string[];
  readonly exact: bigint[];
}

/** A DP query planned under the test key, and an aggregate of three participants' vectors (any values within their slots' bounds). */
function setup(spec: QuerySpec, dp: DpSettings): Setup {
  const compiled = compileQuery(schema, spec);
  const plan = planPaillier({ jobId: QUERY_ID, queryHash: 'ab'.repeat(32), compiled, publicKey: publicKeyToJson(keys.publicKey), participants: PARTICIPANTS, minParticipants: 3, maxRecords: 1000n, deadline: 1_800_000_000_000, dp });
  const context = paillierContext(plan, compiled);
  const vectors = PARTICIPANTS.map((_, p) => context.layout.slots.map((slot, j) => (BigInt((p + j) % 5) - 2n) * (slot.bias / 3n)));
  const contributions = vectors.map((v) => ({ ciphertexts: packVector(context.layout, v).map((m) => encryptFast(keys.publicKey, m)) }));
  const exact = context.layout.slots.map((_, j) => vectors.reduce((sum, v) => sum + v[j]!, 0n));
  return { compiled, context, aggregate: aggregateContributions(context, contributions), exact };
}

/** The noise in decrypted noise ciphertexts: each slot holds noise + B, B the slot's noise bound (packing.ts packNoise). */
function unpackNoise(layout: PackingLayout, plaintexts: readonly bigint[]): bigint[] {
  return layout.slots.map((slot) => ((plaintexts[slot.chunk]! >> BigInt(slot.offset)) & ((1n << BigInt(slot.bits)) - 1n)) - slot.noise);
}

const decrypt = (ciphertexts: readonly string[]): bigint[] => ciphertexts.map((c) => decryptFast(keys.privateKey, ciphertextFromString(keys.publicKey, c)));

describe('addEncryptedNoise', () => {
  const dp: DpSettings = { mechanism: 'laplace', epsilon: 1 };

  it('makes the researcher read the exact totals plus exactly the noise drawn, in every chunk, as the product of aggregate and noise ciphertexts', () => {
    const { compiled, context, aggregate, exact } = setup(WIDE, dp);
    expect(context.layout.chunks).toBeGreaterThanOrEqual(2);
    const noise = dpNoise(compiled, dp);
    const { aggregate: noised, noise: encrypted } = addEncryptedNoise(context, QUERY_ID, aggregate, noise);

    const read = verifyPostedDecryption(context, noised, decryptAggregate(keys.privateKey, noised), PARTICIPANTS.length);
    expect(read.map((total, i) => total - exact[i]!)).toEqual(noise);
    expect(unpackNoise(context.layout, decrypt(encrypted.ciphertexts))).toEqual(noise);
    // The key holder recomputes the noised aggregate as this product (key-holder.ts checkAggregate).
    const n2 = keys.publicKey.n * keys.publicKey.n;
    const product = aggregate.map((c, i) => (ciphertextFromString(keys.publicKey, c) * ciphertextFromString(keys.publicKey, encrypted.ciphertexts[i]!)) % n2);
    expect(noised).toEqual(product.map((c) => ciphertextToString(keys.publicKey, c)));
  });

  it('over 25 noisings, what the researcher reads minus the exact totals is discrete Laplace of scale 1/ε (Kolmogorov–Smirnov)', () => {
    const epsilon = 0.5;
    const { compiled, context, aggregate, exact } = setup(BINS, { mechanism: 'laplace', epsilon });
    const differences: number[] = [];
    for (let run = 0; run < 25; run++) {
      const { aggregate: noised } = addEncryptedNoise(context, QUERY_ID, aggregate, dpNoise(compiled, { mechanism: 'laplace', epsilon }));
      unpackTotals(context.layout, decrypt(noised), PARTICIPANTS.length).forEach((total, i) => differences.push(Number(total - exact[i]!)));
    }
    expect(differences).toHaveLength(25 * 102);
    // The OS CSPRNG draws this noise, so the bound matters: correct noise fails with probability ≤ 10⁻⁹ (DKW, 0.065
    // at 2,550 draws); zero noise is at distance 0.38.
    expect(ksDistance(differences, discreteLaplaceCdf(1 / epsilon))).toBeLessThan(dkwRadius(differences.length, 1e-9));
  });

  it('proves knowledge of each noise plaintext for this query and chunk only: a proof moved to another chunk or query, or tampered with, fails', () => {
    const { compiled, context, aggregate } = setup(WIDE, dp);
    const { aggregate: noised, noise } = addEncryptedNoise(context, QUERY_ID, aggregate, dpNoise(compiled, dp));
    const verify = (ciphertext: string, proof: unknown, bound: string): boolean => verifyPlaintextKnowledge(keys.publicKey, ciphertextFromString(keys.publicKey, ciphertext), plaintextProofFromJson(proof), bound);
    const [c0, c1] = noise.ciphertexts as [string, string];
    const [proof0, proof1] = noise.proofs;

    expect(verify(c0, proof0, noiseProofContext(QUERY_ID, 0))).toBe(true);
    expect(verify(c1, proof1, noiseProofContext(QUERY_ID, 1))).toBe(true);
    expect(verify(c0, proof0, noiseProofContext('q-other', 0))).toBe(false);
    expect(verify(c0, proof0, noiseProofContext(QUERY_ID, 1))).toBe(false);
    expect(verify(c1, proof0, noiseProofContext(QUERY_ID, 1))).toBe(false);
    // A ciphertext the coordinator did not make, such as the noised aggregate, does not inherit the proof.
    expect(verify(noised[0]!, proof0, noiseProofContext(QUERY_ID, 0))).toBe(false);
    const honest = plaintextProofFromJson(proof0);
    const tampered = { ...honest, w: (honest.w + 1n) % keys.publicKey.n };
    expect(verifyPlaintextKnowledge(keys.publicKey, ciphertextFromString(keys.publicKey, c0), tampered, noiseProofContext(QUERY_ID, 0))).toBe(false);
  });

  it('encrypts the same noise differently each time, so small noise cannot be found by trial encryption', () => {
    const { compiled, context, aggregate } = setup(BINS, dp);
    const noise = dpNoise(compiled, dp);
    const first = addEncryptedNoise(context, QUERY_ID, aggregate, noise);
    const second = addEncryptedNoise(context, QUERY_ID, aggregate, noise);
    expect(second.noise.ciphertexts[0]).not.toBe(first.noise.ciphertexts[0]);
    expect(second.aggregate[0]).not.toBe(first.aggregate[0]);
  });

  it('refuses noise beyond the bound its slot was sized for, which would carry into the next coordinate', () => {
    const { context, aggregate } = setup(BINS, dp);
    const bound = context.layout.slots[0]!.noise;
    const noise = context.layout.slots.map(() => 0n);
    expect(() => addEncryptedNoise(context, QUERY_ID, aggregate, [bound, ...noise.slice(1)])).not.toThrow();
    expect(() => addEncryptedNoise(context, QUERY_ID, aggregate, [bound + 1n, ...noise.slice(1)])).toThrow(/noise of coordinate 0 is outside its bound/);
    expect(() => addEncryptedNoise(context, QUERY_ID, aggregate, noise.slice(1))).toThrow(/expected 102 noise values/);
  });
});
