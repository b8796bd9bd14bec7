import { checkPrimeSync } from 'node:crypto';
import { modPow as referenceModPow } from 'bigint-crypto-utils';
import fc from 'fast-check';
import type { PublicKey } from 'paillier-bigint';
import { bitLength } from './modpow';
import { PaillierError, addCiphertexts, decryptFast, encodeInteger, encryptFast } from './paillier';
import {
  THRESHOLD_MAX_CUSTODIANS,
  combinePartialDecryptions,
  custodianShareFromJson,
  custodianShareToJson,
  encryptWithProof,
  generateThresholdPaillierKey,
  partialDecrypt,
  partialDecryptionFromJson,
  partialDecryptionToJson,
  plaintextProofFromJson,
  plaintextProofToJson,
  thresholdVerificationFromJson,
  thresholdVerificationToJson,
  verifyPartialDecryption,
  verifyPlaintextKnowledge,
  type CustodianShare,
  type PartialDecryption,
  type PlaintextKnowledgeProof,
  type ThresholdPaillierKey,
} from './threshold-paillier';
import { seededRandom } from '../../../test/support/randomness';

/** 512-bit keys (256-bit safe primes): generated in milliseconds, and the arithmetic is the same as at 3072 bits. */
const BITS = 512;
const LOOSE = { minBits: BITS };
const CONTEXT = 'query-7f3a';

/** l = 5, t = 3, with the dealer's full key kept for comparison. */
let key: ThresholdPaillierKey;
/** l = 3, t = 1: every custodian decrypts alone. */
let anyOne: ThresholdPaillierKey;
/** l = 3, t = 3: all of them are needed. */
let everyone: ThresholdPaillierKey;

beforeAll(async () => {
  [key, anyOne, everyone] = await Promise.all([
    generateThresholdPaillierKey(BITS, 5, 3, { keepFullKey: true, rng: seededRandom('threshold 5/3') }),
    generateThresholdPaillierKey(BITS, 3, 1, { keepFullKey: true, rng: seededRandom('threshold 3/1') }),
    generateThresholdPaillierKey(BITS, 3, 3, { rng: seededRandom('threshold 3/3') }),
  ]);
});

const share = (k: ThresholdPaillierKey, i: number): CustodianShare => k.shares[i - 1]!;
/** The same integer's base64url with a leading zero byte: not the minimal encoding. */
const withLeadingZero = (text: string): string => Buffer.concat([Buffer.of(0), Buffer.from(text, 'base64url')]).toString('base64url');
const n = () => key.publicKey.n;
const n2 = () => key.publicKey.n * key.publicKey.n;

/** Every k-subset of 1..l. */
function subsets(l: number, k: number): number[][] {
  if (k === 0) return [[]];
  if (l < k) return [];
  return [...subsets(l - 1, k), ...subsets(l - 1, k - 1).map((s) => [...s, l])];
}

/** p and q of the dealer's kept key (paillier-bigint fields private to TypeScript only). */
function factors(k: ThresholdPaillierKey): { p: bigint; q: bigint } {
  const { _p, _q } = k.fullKey!.privateKey as unknown as { _p: bigint; _q: bigint };
  return { p: _p, q: _q };
}

describe('generateThresholdPaillierKey', () => {
  it('makes n = pq of exactly the requested bits from two distinct safe primes, g = n + 1, Δ = l!, one share per custodian', () => {
    const { p, q } = factors(key);
    expect(p * q).toBe(n());
    expect(p).not.toBe(q);
    expect([bitLength(p), bitLength(q), bitLength(n())]).toEqual([BITS / 2, BITS / 2, BITS]);
    expect(checkPrimeSync((p - 1n) / 2n) && checkPrimeSync((q - 1n) / 2n)).toBe(true);
    expect(key.publicKey.g).toBe(n() + 1n);
    expect(key.verification.publicKey).toBe(key.publicKey);
    expect(key.verification).toMatchObject({ custodians: 5, threshold: 3, delta: 120n });
    expect(key.shares.map((s) => s.index)).toEqual([1, 2, 3, 4, 5]);
    expect(key.shares.every((s) => s.verification === key.verification)).toBe(true);
    expect(everyone.fullKey).toBeUndefined();
  });

  it('publishes v_i = v^(Δ·s_i) mod n², and shares whose Δ-weighted interpolation at 0 is Δ·d: 0 mod p′q′, Δ mod n', () => {
    const { p, q } = factors(key);
    const m = ((p - 1n) / 2n) * ((q - 1n) / 2n);
    const { v, vi, delta } = key.verification;
    key.shares.forEach((s, k) => expect(vi[k]).toBe(referenceModPow(v, delta * s.si, n2())));
    for (const set of subsets(5, 3)) {
      let sum = 0n;
      for (const i of set) {
        let num = delta;
        let den = 1n;
        for (const j of set) if (j !== i) [num, den] = [num * BigInt(j), den * BigInt(j - i)];
        sum += (num / den) * share(key, i).si;
      }
      const deltaD = ((sum % (n() * m)) + n() * m) % (n() * m);
      expect([deltaD % m, deltaD % n()]).toEqual([0n, delta]);
    }
  });

  it('refuses odd, tiny and oversized moduli, custodian counts outside 1..100 and thresholds outside 1..l', async () => {
    for (const bits of [511, 256, 1023, 8192]) await expect(generateThresholdPaillierKey(bits, 3, 2)).rejects.toThrow(RangeError);
    for (const l of [0, THRESHOLD_MAX_CUSTODIANS + 1, 2.5, Number.NaN]) await expect(generateThresholdPaillierKey(BITS, l, 1)).rejects.toThrow(/custodians must be/);
    for (const t of [0, 6, 1.5]) await expect(generateThresholdPaillierKey(BITS, 5, t)).rejects.toThrow(/threshold must be/);
  });
});

describe('threshold decryption', () => {
  let m: bigint;
  let c: bigint;
  let partials: PartialDecryption[];

  beforeAll(() => {
    m = 0x5eed_cafe_f00d_1234n;
    c = encryptFast(key.publicKey, m);
    partials = key.shares.map((s) => partialDecrypt(s, c, CONTEXT));
  });

  it('any 3 of 5 custodians decrypt, in either order, and every partial proves correct', () => {
    expect(partials.every((partial) => verifyPartialDecryption(key.verification, c, partial, CONTEXT))).toBe(true);
    const sets = subsets(5, 3);
    expect(sets).toHaveLength(10);
    for (const set of sets) {
      const chosen = set.map((i) => partials[i - 1]!);
      expect(combinePartialDecryptions(key.verification, c, chosen)).toBe(m);
      expect(combinePartialDecryptions(key.verification, c, [...chosen].reverse(), { context: CONTEXT })).toBe(m);
    }
  });

  it('uses the first t partials when given more', () => {
    const wrongLast = { ...partials[4]!, ci: (partials[4]!.ci * (1n + n())) % n2() };
    expect(combinePartialDecryptions(key.verification, c, [partials[0]!, partials[1]!, partials[2]!, partials[3]!, wrongLast])).toBe(m);
  });

  it('decrypts bit-identically to decryptFast with the whole key, for random plaintexts and homomorphic sums', () => {
    const sk = key.fullKey!.privateKey;
    fc.assert(
      fc.property(
        fc.array(fc.oneof(fc.bigInt({ min: 0n, max: n() - 1n }), fc.constantFrom(0n, 1n, n() - 1n)), { minLength: 1, maxLength: 4 }),
        fc.constantFrom(...subsets(5, 3)),
        (plaintexts, set) => {
          const sum = addCiphertexts(
            key.publicKey,
            plaintexts.map((x) => encryptFast(key.publicKey, x)),
          );
          const combined = combinePartialDecryptions(
            key.verification,
            sum,
            set.map((i) => partialDecrypt(share(key, i), sum, CONTEXT)),
          );
          expect(combined).toBe(decryptFast(sk, sum));
          expect(combined).toBe(plaintexts.reduce((a, b) => a + b, 0n) % n());
        },
      ),
      { numRuns: 12 },
    );
  });

  it('refuses t − 1 partials', () => {
    expect(() => combinePartialDecryptions(key.verification, c, partials.slice(0, 2))).toThrow(/need 3 partial decryptions from distinct custodians, got 2/);
    expect(() => combinePartialDecryptions(key.verification, c, [])).toThrow(PaillierError);
  });

  it('two custodians and a made-up third share or partial do not decrypt', () => {
    const rng = seededRandom('made-up share');
    const random = (bound: bigint) => BigInt(`0x${Buffer.from(rng(64)).toString('hex')}`) % bound;
    const outcome = (third: PartialDecryption): bigint | string => {
      try {
        return combinePartialDecryptions(key.verification, c, [partials[0]!, partials[1]!, third]);
      } catch (err) {
        return (err as Error).message;
      }
    };
    expect(outcome(partials[2]!)).toBe(m);
    const forgeries: PartialDecryption[] = [];
    // A made-up s_3, run through the honest algorithm (so its proof is well formed, for the wrong v_3).
    for (let k = 0; k < 3; k++) forgeries.push(partialDecrypt({ index: 3, si: random(n2()), verification: key.verification }, c, CONTEXT));
    // A made-up c_3: a power of 1 + n, a random unit, and c_3 itself raised to a guess.
    for (const ci of [1n + 12345n * n(), random(n2()) | 1n, (partials[2]!.ci * partials[2]!.ci) % n2()]) forgeries.push({ ...forgeries[0]!, ci });
    for (const forged of forgeries) {
      expect(verifyPartialDecryption(key.verification, c, forged, CONTEXT)).toBe(false);
      const result = outcome(forged);
      expect(result).not.toBe(m);
      expect(result).toMatch(/do not combine to a power of 1 \+ n/);
    }
  });

  it('refuses repeated custodians, indices outside 1..l, non-unit c_i and a non-unit ciphertext', () => {
    const [p1, p2, p3] = partials as [PartialDecryption, PartialDecryption, PartialDecryption];
    expect(() => combinePartialDecryptions(key.verification, c, [p1, p2, p1])).toThrow(/custodian 1 appears twice/);
    expect(() => combinePartialDecryptions(key.verification, c, [p1, p2, { ...p3, index: 6 }])).toThrow(/index must be an integer from 1 to 5/);
    expect(() => combinePartialDecryptions(key.verification, c, [p1, p2, { ...p3, index: 0 }])).toThrow(/index must be an integer from 1 to 5/);
    expect(() => combinePartialDecryptions(key.verification, c, [p1, p2, { ...p3, ci: n() }])).toThrow(/ci must be a unit/);
    expect(() => combinePartialDecryptions(key.verification, c, [p1, p2, { ...p3, ci: 0n }])).toThrow(/ci must be a unit/);
    expect(() => combinePartialDecryptions(key.verification, n(), [p1, p2, p3])).toThrow(/ciphertext must be a unit/);
  });

  it('with a context, refuses to combine a partial whose proof fails, naming the custodian', () => {
    const shifted = { ...partials[1]!, ci: (partials[1]!.ci * (1n + n())) % n2() };
    expect(() => combinePartialDecryptions(key.verification, c, [partials[0]!, shifted, partials[2]!], { context: CONTEXT })).toThrow(
      /partial decryption of custodian 2 does not verify/,
    );
    expect(() => combinePartialDecryptions(key.verification, c, partials, { context: 'another query' })).toThrow(/does not verify/);
  });

  it('t = 1: every custodian decrypts alone; l = t = 1 works too', async () => {
    const x = 987654321n;
    const cx = encryptFast(anyOne.publicKey, x);
    for (const s of anyOne.shares) {
      const partial = partialDecrypt(s, cx, CONTEXT);
      expect(verifyPartialDecryption(anyOne.verification, cx, partial, CONTEXT)).toBe(true);
      expect(combinePartialDecryptions(anyOne.verification, cx, [partial])).toBe(x);
    }
    expect(() => combinePartialDecryptions(anyOne.verification, cx, [])).toThrow(/need 1 partial/);
    const single = await generateThresholdPaillierKey(BITS, 1, 1);
    const cs = encryptFast(single.publicKey, x);
    expect(combinePartialDecryptions(single.verification, cs, [partialDecrypt(share(single, 1), cs, CONTEXT)], { context: CONTEXT })).toBe(x);
  });

  it('t = l: all custodians decrypt together, and any l − 1 are refused', () => {
    const x = 42n;
    const cx = encryptFast(everyone.publicKey, x);
    const all = everyone.shares.map((s) => partialDecrypt(s, cx, CONTEXT));
    expect(combinePartialDecryptions(everyone.verification, cx, all, { context: CONTEXT })).toBe(x);
    for (const set of subsets(3, 2)) {
      expect(() => combinePartialDecryptions(everyone.verification, cx, set.map((i) => all[i - 1]!))).toThrow(/need 3/);
    }
  });
});

describe('verifyPartialDecryption', () => {
  let c: bigint;
  let other: bigint;
  let partial: PartialDecryption;

  beforeAll(() => {
    c = encryptFast(key.publicKey, 1000n);
    other = encryptFast(key.publicKey, 1000n);
    partial = partialDecrypt(share(key, 2), c, CONTEXT);
  });

  const verify = (p: unknown, ciphertext = c, context: unknown = CONTEXT) =>
    verifyPartialDecryption(key.verification, ciphertext, p as PartialDecryption, context as string);

  it('accepts an honest partial decryption', () => {
    expect(verify(partial)).toBe(true);
  });

  it('rejects a partial that shifts the plaintext (c_i times a power of 1 + n)', () => {
    const shifted = { ...partial, ci: (partial.ci * (1n + 5n * n())) % n2() };
    expect(verify(shifted)).toBe(false);
  });

  it("rejects a partial computed with another custodian's share", () => {
    const wrong: CustodianShare = { index: 2, si: share(key, 3).si, verification: key.verification };
    expect(verify(partialDecrypt(wrong, c, CONTEXT))).toBe(false);
  });

  it('rejects a proof made for another ciphertext, whole or transplanted', () => {
    const forOther = partialDecrypt(share(key, 2), other, CONTEXT);
    expect(verify(forOther)).toBe(false);
    expect(verify({ ...partial, proof: forOther.proof })).toBe(false);
    expect(verify(partial, other)).toBe(false);
  });

  it('rejects a proof bound to another context', () => {
    expect(verify(partial, c, 'query-other')).toBe(false);
    expect(verify(partialDecrypt(share(key, 2), c, 'query-other'))).toBe(false);
  });

  it("rejects a partial relabelled with another custodian's index", () => {
    for (const index of [1, 3, 4, 5]) expect(verify({ ...partial, index })).toBe(false);
  });

  it('rejects tampered proofs', () => {
    const { e, z } = partial.proof;
    for (const proof of [{ e: e ^ 1n, z }, { e, z: z + 1n }, { e, z: z - 1n }, { e: 0n, z }, { e, z: 1n << 4000n }]) {
      expect(verify({ ...partial, proof })).toBe(false);
    }
  });

  it('returns false, without throwing, on malformed shapes and values', () => {
    const hostile: unknown[] = [
      null,
      undefined,
      'partial',
      {},
      { ...partial, proof: null },
      { ...partial, proof: { e: partial.proof.e } },
      { ...partial, proof: { e: Number(partial.proof.e), z: partial.proof.z } },
      { ...partial, proof: { ...partial.proof, e: -1n } },
      { ...partial, proof: { ...partial.proof, e: 1n << 128n } },
      { ...partial, proof: { ...partial.proof, z: -partial.proof.z } },
      { ...partial, ci: String(partial.ci) },
      { ...partial, ci: 0n },
      { ...partial, ci: n() },
      { ...partial, ci: n2() + partial.ci },
      { ...partial, index: 0 },
      { ...partial, index: 6 },
      { ...partial, index: 2.5 },
      { ...partial, index: '2' },
    ];
    for (const p of hostile) expect(verify(p)).toBe(false);
    expect(verify(partial, 0n)).toBe(false);
    expect(verify(partial, n())).toBe(false);
    expect(verify(partial, c, null)).toBe(false);
    expect(verify(partial, c, 7)).toBe(false);
  });

  it('throws on an inconsistent verification key, which is the caller’s own configuration', () => {
    expect(() => verifyPartialDecryption({ ...key.verification, delta: 24n }, c, partial, CONTEXT)).toThrow(/delta must be custodians!/);
    expect(() => verifyPartialDecryption({ ...key.verification, vi: key.verification.vi.slice(1) }, c, partial, CONTEXT)).toThrow(/vi must list 5 values/);
    expect(() => verifyPartialDecryption({ ...key.verification, threshold: 6 }, c, partial, CONTEXT)).toThrow(/threshold must be/);
  });

  it('partialDecrypt refuses a ciphertext that is not a unit, a non-string context and an inconsistent share', () => {
    expect(() => partialDecrypt(share(key, 1), n(), CONTEXT)).toThrow(/ciphertext must be a unit/);
    expect(() => partialDecrypt(share(key, 1), 0n, CONTEXT)).toThrow(PaillierError);
    expect(() => partialDecrypt(share(key, 1), c, 7 as unknown as string)).toThrow(/context must be a string/);
    expect(() => partialDecrypt({ ...share(key, 1), index: 9 }, c, CONTEXT)).toThrow(/index must be an integer from 1 to 5/);
    expect(() => partialDecrypt({ ...share(key, 1), si: -1n }, c, CONTEXT)).toThrow(/si must be/);
  });

  it('is deterministic under an injected random source', () => {
    const a = partialDecrypt(share(key, 4), c, CONTEXT, { rng: seededRandom('nonce') });
    const b = partialDecrypt(share(key, 4), c, CONTEXT, { rng: seededRandom('nonce') });
    expect(a).toEqual(b);
    expect(partialDecrypt(share(key, 4), c, CONTEXT).proof).not.toEqual(a.proof);
  });
});

describe('JSON forms', () => {
  const roundTrip = <T>(value: T): unknown => JSON.parse(JSON.stringify(value));

  it('round-trips the verification key, a share (which still decrypts) and a partial decryption', () => {
    const json = thresholdVerificationToJson(key.verification);
    expect(Object.keys(json).sort()).toEqual(['custodians', 'n', 'threshold', 'v', 'version', 'vi']);
    const verification = thresholdVerificationFromJson(roundTrip(json), LOOSE);
    expect(verification).toMatchObject({ v: key.verification.v, vi: key.verification.vi, custodians: 5, threshold: 3, delta: 120n });
    expect(verification.publicKey.n).toBe(n());
    expect(thresholdVerificationToJson(verification)).toEqual(json);

    const shares = key.shares.map((s) => custodianShareFromJson(roundTrip(custodianShareToJson(s)), LOOSE));
    expect(shares.map((s) => [s.index, s.si])).toEqual(key.shares.map((s) => [s.index, s.si]));
    expect(custodianShareToJson(shares[0]!)).toEqual(custodianShareToJson(share(key, 1)));

    const c = encryptFast(key.publicKey, 31337n);
    const partials = [shares[4]!, shares[0]!, shares[2]!].map((s) => partialDecryptionFromJson(verification, roundTrip(partialDecryptionToJson(partialDecrypt(s, c, CONTEXT)))));
    expect(partials.every((p) => verifyPartialDecryption(verification, c, p, CONTEXT))).toBe(true);
    expect(combinePartialDecryptions(verification, c, partials)).toBe(31337n);
    expect(partialDecryptionToJson(partials[0]!).proof.e).toMatch(/^[A-Za-z0-9_-]{22}$/);
  });

  it('refuses malformed verification keys with a message naming the problem', () => {
    const good = thresholdVerificationToJson(key.verification);
    const cases: [unknown, RegExp][] = [
      [null, /must be an object/],
      [[good], /must be an object/],
      [{ ...good, extra: 1 }, /unexpected fields: extra/],
      [{ ...good, v: undefined }, /v must be a base64url string/],
      [(({ threshold: _t, ...rest }) => rest)(good), /lacks fields: threshold/],
      [{ ...good, version: 2 }, /unsupported version/],
      [{ ...good, n: withLeadingZero(good.n) }, /public key n must be minimal big-endian bytes/],
      [{ ...good, v: `${good.v}=` }, /not canonical base64url/],
      [{ ...good, vi: good.vi.slice(1) }, /vi must be an array of 5 values/],
      [{ ...good, vi: [...good.vi.slice(1), 'A+B'] }, /vi\[4\] is not canonical base64url/],
      [{ ...good, threshold: 6 }, /threshold must be an integer from 1 to 5/],
      [{ ...good, threshold: '3' }, /threshold must be an integer/],
      [{ ...good, custodians: 101 }, /custodians must be an integer from 1 to 100/],
      [{ ...good, v: encodeInteger(n()) }, /v must be a unit/],
      [{ ...good, vi: [encodeInteger(n2()), ...good.vi.slice(1)] }, /vi\[0\] must be a unit/],
    ];
    for (const [json, message] of cases) {
      expect(() => thresholdVerificationFromJson(json, LOOSE)).toThrow(PaillierError);
      expect(() => thresholdVerificationFromJson(json, LOOSE)).toThrow(message);
    }
    expect(() => thresholdVerificationFromJson(good)).toThrow(/fewer than the 2048 required/);
  });

  it('refuses a share that does not match its verification value, or is malformed', () => {
    const good = custodianShareToJson(share(key, 2));
    const cases: [unknown, RegExp][] = [
      [{ ...good, si: encodeInteger(share(key, 2).si + 1n) }, /si does not match the verification value of custodian 2/],
      [{ ...good, si: custodianShareToJson(share(key, 3)).si }, /does not match/],
      [{ ...good, index: 3 }, /does not match the verification value of custodian 3/],
      [{ ...good, index: 0 }, /index must be an integer from 1 to 5/],
      [{ ...good, version: 0 }, /unsupported version/],
      [{ ...good, secret: 'x' }, /unexpected fields: secret/],
      [{ ...good, verification: { ...good.verification, threshold: 0 } }, /threshold must be/],
      [{ ...good, si: 'AA' }, /minimal big-endian bytes/],
    ];
    for (const [json, message] of cases) expect(() => custodianShareFromJson(json, LOOSE)).toThrow(message);
  });

  it('refuses malformed partial decryptions', () => {
    const c = encryptFast(key.publicKey, 1n);
    const good = partialDecryptionToJson(partialDecrypt(share(key, 1), c, CONTEXT));
    const cases: [unknown, RegExp][] = [
      ['partial', /partial decryption must be an object/],
      [{ ...good, extra: true }, /unexpected fields: extra/],
      [{ ...good, index: 6 }, /index must be an integer from 1 to 5/],
      [{ ...good, ci: encodeInteger(n2()) }, /ci must be below n²/],
      [{ ...good, ci: 12 }, /ci must be a base64url string/],
      [{ ...good, proof: { ...good.proof, e: good.proof.e.slice(0, -2) } }, /proof e must be canonical base64url of 16 bytes/],
      [{ ...good, proof: { ...good.proof, z: encodeInteger(1n << 6000n) } }, /proof z is longer than an honest response/],
      [{ ...good, proof: { ...good.proof, r: 'AQ' } }, /proof has unexpected fields: r/],
      [{ ...good, proof: { e: good.proof.e } }, /proof lacks fields: z/],
    ];
    for (const [json, message] of cases) expect(() => partialDecryptionFromJson(key.verification, json)).toThrow(message);
  });
});

describe('proof of plaintext knowledge', () => {
  const pk = (): PublicKey => key.publicKey;

  it('honest proofs verify, and the ciphertext decrypts to the plaintext', () => {
    for (const m of [0n, 1n, 4242n, n() - 1n]) {
      const { ciphertext, proof } = encryptWithProof(pk(), m, CONTEXT);
      expect(verifyPlaintextKnowledge(pk(), ciphertext, proof, CONTEXT)).toBe(true);
      expect(decryptFast(key.fullKey!.privateKey, ciphertext)).toBe(m);
      expect(verifyPlaintextKnowledge(pk(), ciphertext, plaintextProofFromJson(JSON.parse(JSON.stringify(plaintextProofToJson(proof)))), CONTEXT)).toBe(true);
    }
  });

  it("rejects a ciphertext built from someone else's ciphertext times a fresh encryption with its own proof", () => {
    const contribution = encryptFast(pk(), 50_000n);
    const { ciphertext: fresh, proof } = encryptWithProof(pk(), 7n, CONTEXT);
    expect(verifyPlaintextKnowledge(pk(), fresh, proof, CONTEXT)).toBe(true);
    const assembled = addCiphertexts(pk(), [contribution, fresh]);
    expect(verifyPlaintextKnowledge(pk(), assembled, proof, CONTEXT)).toBe(false);
    expect(verifyPlaintextKnowledge(pk(), contribution, proof, CONTEXT)).toBe(false);
  });

  it('rejects tampered proofs, another context and another key', () => {
    const { ciphertext, proof } = encryptWithProof(pk(), 123n, CONTEXT);
    const tampered: PlaintextKnowledgeProof[] = [
      { ...proof, e: proof.e ^ 1n },
      { ...proof, w: (proof.w + 1n) % n() },
      { ...proof, u: (proof.u * 2n) % n() },
      { ...proof, w: (proof.w + n() - 1n) % n() },
    ];
    for (const t of tampered) expect(verifyPlaintextKnowledge(pk(), ciphertext, t, CONTEXT)).toBe(false);
    expect(verifyPlaintextKnowledge(pk(), ciphertext, proof, `${CONTEXT}/1`)).toBe(false);
    expect(verifyPlaintextKnowledge(pk(), ciphertext, proof, '')).toBe(false);
    expect(verifyPlaintextKnowledge(anyOne.publicKey, ciphertext % (anyOne.publicKey.n * anyOne.publicKey.n), proof, CONTEXT)).toBe(false);
  });

  it('returns false, without throwing, on out-of-range values and malformed shapes', () => {
    const { ciphertext, proof } = encryptWithProof(pk(), 5n, CONTEXT);
    const { p } = factors(key);
    const hostile: unknown[] = [
      null,
      {},
      { ...proof, w: n() },
      { ...proof, w: -1n },
      { ...proof, u: 0n },
      { ...proof, u: n() },
      { ...proof, u: p },
      { ...proof, e: 1n << 128n },
      { ...proof, e: -proof.e - 1n },
      { ...proof, e: Number(proof.e) },
    ];
    for (const h of hostile) expect(verifyPlaintextKnowledge(pk(), ciphertext, h as PlaintextKnowledgeProof, CONTEXT)).toBe(false);
    expect(verifyPlaintextKnowledge(pk(), 0n, proof, CONTEXT)).toBe(false);
    expect(verifyPlaintextKnowledge(pk(), p, proof, CONTEXT)).toBe(false);
    expect(verifyPlaintextKnowledge(pk(), ciphertext, proof, 3 as unknown as string)).toBe(false);
  });

  it('refuses a plaintext outside [0, n) and a non-string context; deterministic under an injected random source', () => {
    expect(() => encryptWithProof(pk(), n(), CONTEXT)).toThrow(/plaintext must be an integer in \[0, n\)/);
    expect(() => encryptWithProof(pk(), -1n, CONTEXT)).toThrow(PaillierError);
    expect(() => encryptWithProof(pk(), 1n, undefined as unknown as string)).toThrow(/context must be a string/);
    const a = encryptWithProof(pk(), 99n, CONTEXT, { rng: seededRandom('noise') });
    expect(encryptWithProof(pk(), 99n, CONTEXT, { rng: seededRandom('noise') })).toEqual(a);
  });

  it('refuses malformed proof JSON with a message naming the field', () => {
    const good = plaintextProofToJson(encryptWithProof(pk(), 8n, CONTEXT).proof);
    const cases: [unknown, RegExp][] = [
      [[], /plaintext proof must be an object/],
      [{ ...good, a: 'AQ' }, /unexpected fields: a/],
      [{ e: good.e, w: good.w }, /lacks fields: u/],
      [{ ...good, e: `${good.e}A` }, /plaintext proof e must be canonical base64url of 16 bytes/],
      [{ ...good, w: `${good.w}=` }, /plaintext proof w is not canonical base64url/],
      [{ ...good, u: withLeadingZero(good.u) }, /plaintext proof u must be minimal big-endian bytes/],
      [{ ...good, u: 5 }, /plaintext proof u must be a base64url string/],
    ];
    for (const [json, message] of cases) expect(() => plaintextProofFromJson(json)).toThrow(message);
  });
});
