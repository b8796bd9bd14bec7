import fc from 'fast-check';
import {
  generateKeyPair,
  generatePaillierKeyPair,
  privateKeyToJson,
  publicKeyToJson,
  randomnessPower,
  sampleRandomness,
  signMessage,
  toBase64Url,
  type KeyPair,
  type PaillierKeyPair,
  type PublicKey,
} from '@confide/crypto';
import { compileQuery, type CompiledQuery } from '../query/query';
import { parseStudySchema } from '../query/schema';
import { ProtocolError } from '../errors';
import { packingLayout, packVector, unpackTotals } from './packing';
import {
  aggregateContributions,
  decryptAggregate,
  paillierContext,
  paillierContribute,
  planPaillier,
  verifyContribution,
  verifyPostedDecryption,
  type PaillierContext,
  type PaillierPlan,
} from './protocol';

describe('Paillier plaintext packing', () => {
  /** Biases, a participant count, and that many vectors within ±bias, for a small modulus that forces several chunks. */
  const scenario = fc
    .record({
      biases: fc.array(fc.bigInt({ min: 0n, max: (1n << 40n) - 1n }), { minLength: 1, maxLength: 12 }),
      participants: fc.integer({ min: 1, max: 20 }),
      modulusBits: fc.integer({ min: 64, max: 300 }),
    })
    .chain(({ biases, participants, modulusBits }) =>
      fc.record({
        biases: fc.constant(biases),
        participants: fc.constant(participants),
        modulusBits: fc.constant(modulusBits),
        vectors: fc.array(fc.tuple(...biases.map((b) => fc.bigInt({ min: -b, max: b }))), { minLength: 1, maxLength: participants }),
      }),
    );

  it('reads back the exact signed totals of up to N packed vectors, whatever the signs and chunking', () => {
    fc.assert(
      fc.property(scenario, ({ biases, participants, modulusBits, vectors }) => {
        const layout = packingLayout(biases, participants, modulusBits);
        const packed = vectors.map((v) => packVector(layout, v));
        const summed = Array.from({ length: layout.chunks }, (_, c) => packed.reduce((s, p) => s + p[c]!, 0n));
        for (const m of summed) expect(m < 1n << BigInt(modulusBits - 1)).toBe(true);
        const expected = biases.map((_, i) => vectors.reduce((s, v) => s + v[i]!, 0n));
        expect(unpackTotals(layout, summed, vectors.length)).toEqual(expected);
      }),
      { numRuns: 300 },
    );
  });

  it('gives each slot exactly the bits 2Nβ needs, so the largest honest sum fits and one more would carry', () => {
    const layout = packingLayout([100n], 3, 64);
    expect(layout.slots[0]!.bits).toBe((2 * 3 * 100).toString(2).length);
    const max = packVector(layout, [100n])[0]! * 3n;
    expect(unpackTotals(layout, [max], 3)).toEqual([300n]);
    expect(() => unpackTotals(layout, [max + 1n], 3)).toThrow(/more than 3 contributions can sum to/);
  });

  it('refuses a coordinate outside the bound its slot was sized for', () => {
    const layout = packingLayout([10n, 10n], 2, 64);
    expect(() => packVector(layout, [11n, 0n])).toThrow(ProtocolError);
    expect(() => packVector(layout, [0n, -11n])).toThrow(/outside the bound ±10/);
  });

  it('refuses a layout whose single slot cannot fit the key, naming the term', () => {
    expect(() => packingLayout([1n << 100n], 1000, 100, ['sum(salary)'])).toThrow(/sum\(salary\) needs 111 bits over 1000 participants/);
  });

  it('refuses plaintexts with bits outside their slots, a wrong chunk count, or an impossible contributor count', () => {
    const layout = packingLayout([5n], 2, 64);
    expect(() => unpackTotals(layout, [1n << 40n], 1)).toThrow(/bits outside its slots/);
    expect(() => unpackTotals(layout, [0n, 0n], 1)).toThrow(/expected 1 plaintexts/);
    expect(() => unpackTotals(layout, [0n], 3)).toThrow(/contributors must be from 1 to 2/);
  });
});

describe('the paillier protocol', () => {
  const schema = parseStudySchema({
    name: 'pay',
    fields: [
      { name: 'salary', type: 'number', min: -1000, max: 250000, decimals: 2 },
      { name: 'rank', type: 'category', values: ['a', 'b'] },
    ],
  });
  const compiled: CompiledQuery = compileQuery(schema, {
    select: [
      { stat: 'mean', field: 'salary' },
      { stat: 'count', field: 'rank' },
    ],
  });
  const parties = ['p1', 'p2', 'p3', 'p4'].map((id) => ({ id, signing: generateKeyPair('ed25519') }));
  const signingKeys = new Map<string, PublicKey>(parties.map((p) => [p.id, p.signing.publicKey]));
  let researcher: PaillierKeyPair;
  let plan: PaillierPlan;
  let context: PaillierContext;

  const planFor = (jobId: string, keys: PaillierKeyPair = researcher): PaillierPlan =>
    planPaillier({
      jobId,
      queryHash: 'ab'.repeat(32),
      compiled,
      publicKey: publicKeyToJson(keys.publicKey),
      participants: parties.map((p) => p.id),
      minParticipants: 3,
      maxRecords: 1000n,
      deadline: 1_800_000_000_000,
    });

  const contribute = (party: { id: string; signing: KeyPair }, vector: bigint[], p: PaillierPlan = plan, ctx: PaillierContext = context) =>
    paillierContribute({ plan: p, context: ctx, self: party.id, signing: party.signing, aggregate: vector, randomnessPower: () => randomnessPower(ctx.publicKey, sampleRandomness(ctx.publicKey)) });

  // Vectors are [count(salary), sum(salary), count(rank)] in fixed point: any values within the bounds.
  const vectors = [
    [3n, 15_000_000n, 3n],
    [2n, -150_000n, 1n],
    [1000n, 25_000_000_000n, 1000n],
  ];

  beforeAll(async () => {
    researcher = await generatePaillierKeyPair(2048);
    plan = planFor('job-1');
    context = paillierContext(plan, compiled);
  }, 60_000);

  it('sums contributions it cannot read, and the researcher’s verified decryption gives the exact totals', () => {
    const contributions = parties.slice(0, 3).map((p, i) => verifyContribution(plan, context, signingKeys, contribute(p, vectors[i]!)));
    const aggregate = aggregateContributions(context, contributions);
    const posted = decryptAggregate(researcher.privateKey, aggregate);
    const totals = verifyPostedDecryption(context, aggregate, posted, contributions.length);
    expect(totals).toEqual([1005n, 25_014_850_000n, 1004n]);
  });

  it('encrypts with fresh randomness: the same vector twice gives different ciphertexts', () => {
    const a = contribute(parties[0]!, vectors[0]!);
    const b = contribute(parties[0]!, vectors[0]!);
    expect(a.ciphertexts).not.toEqual(b.ciphertexts);
  });

  it('rejects a forged decryption: a changed plaintext or another randomness does not re-encrypt', () => {
    const aggregate = aggregateContributions(context, [verifyContribution(plan, context, signingKeys, contribute(parties[0]!, vectors[0]!))]);
    const posted = decryptAggregate(researcher.privateKey, aggregate);
    const plusOne = { ...posted, plaintexts: posted.plaintexts.map((m, i) => (i === 0 ? (BigInt(m) + 1n).toString() : m)) };
    expect(() => verifyPostedDecryption(context, aggregate, plusOne, 1)).toThrow(/does not re-encrypt/);
    const otherR = { ...posted, randomness: posted.randomness.map((r, i) => (i === 0 ? (BigInt(r) + 1n).toString() : r)) };
    expect(() => verifyPostedDecryption(context, aggregate, otherR, 1)).toThrow(/does not re-encrypt/);
  });

  it('rejects a contribution replayed from another query', () => {
    const otherPlan = planFor('job-2');
    const replayed = contribute(parties[0]!, vectors[0]!, otherPlan, paillierContext(otherPlan, compiled));
    expect(() => verifyContribution(plan, context, signingKeys, replayed)).toThrow(expect.objectContaining({ code: 'WRONG_JOB' }) as Error);
    // Relabelled with this job's id and plan hash, its signature no longer verifies.
    const relabelled = { ...replayed, jobId: plan.jobId, planHash: contribute(parties[0]!, vectors[0]!).planHash };
    expect(() => verifyContribution(plan, context, signingKeys, relabelled)).toThrow(expect.objectContaining({ code: 'BAD_SIGNATURE' }) as Error);
  });

  it('rejects a contribution signed by another participant’s key, or from a sender outside the plan', () => {
    const forged = contribute({ id: 'p1', signing: parties[1]!.signing }, vectors[0]!);
    expect(() => verifyContribution(plan, context, signingKeys, forged)).toThrow(expect.objectContaining({ code: 'BAD_SIGNATURE' }) as Error);
    const outsider = { id: 'p9', signing: generateKeyPair('ed25519') };
    expect(() => contribute(outsider, vectors[0]!)).toThrow(expect.objectContaining({ code: 'UNKNOWN_SENDER' }) as Error);
  });

  it('rejects ciphertexts out of range or not units mod n², even when properly signed', () => {
    const n = researcher.publicKey.n;
    const n2 = n * n;
    const width = (n2.toString(16).length + 1) >> 1;
    const encode = (c: bigint) => toBase64Url(Buffer.from(c.toString(16).padStart(width * 2, '0'), 'hex'));
    const p = BigInt(`0x${Buffer.from(privateKeyToJson(researcher.privateKey).p, 'base64url').toString('hex')}`);
    const signedWith = (ciphertext: string) => {
      const honest = contribute(parties[0]!, vectors[0]!);
      const resigned = { jobId: honest.jobId, planHash: honest.planHash, sender: honest.sender, ciphertexts: [ciphertext] };
      return paillierContributeRaw(resigned, parties[0]!.signing);
    };
    for (const [what, c] of [
      ['zero', 0n],
      ['n²', n2],
      ['a multiple of p (not a unit)', p * 12345n],
    ] as const) {
      const refusal = (() => {
        try {
          verifyContribution(plan, context, signingKeys, signedWith(encode(c)));
          return 'accepted';
        } catch (err) {
          return (err as Error).message;
        }
      })();
      expect([what, refusal]).toEqual([what, expect.stringMatching(/ciphertext from p1 refused/)]);
    }
  });

  it('refuses to plan with an undersized, even or small-factor public key', async () => {
    const small = await generatePaillierKeyPair(1024);
    expect(() => planFor('job-3', small)).toThrow(/researcher's public key refused/);
    const n = researcher.publicKey.n;
    for (const bad of [n + 1n, n * 3n]) {
      const json = { n: toBase64Url(Buffer.from(bad.toString(16).padStart(bad.toString(16).length + (bad.toString(16).length % 2), '0'), 'hex')) };
      expect(() =>
        planPaillier({ jobId: 'job-4', queryHash: 'ab'.repeat(32), compiled, publicKey: json, participants: ['p1', 'p2', 'p3'], minParticipants: 3, maxRecords: 10n, deadline: 1 }),
      ).toThrow(/researcher's public key refused/);
    }
  }, 30_000);

  it('refuses a plan below the study’s minimum participant count', () => {
    expect(() =>
      planPaillier({ jobId: 'job-5', queryHash: 'ab'.repeat(32), compiled, publicKey: publicKeyToJson(researcher.publicKey), participants: ['p1', 'p2'], minParticipants: 3, maxRecords: 10n, deadline: 1 }),
    ).toThrow(expect.objectContaining({ code: 'MIN_PARTICIPANTS' }) as Error);
  });
});

/** Signs arbitrary contribution contents as a participant would (to build properly signed malformed contributions). */
function paillierContributeRaw(signed: { jobId: string; planHash: string; sender: string; ciphertexts: string[] }, signing: KeyPair) {
  return { ...signed, signature: signMessage(signing.privateKey, 'paillier/contribution', signed) };
}
