import { generatePrimeSync } from 'node:crypto';
import { gcd, modPow as referenceModPow } from 'bigint-crypto-utils';
import fc from 'fast-check';
import { PrivateKey, PublicKey, generateRandomKeysSync } from 'paillier-bigint';
import { bitLength } from './modpow';
import {
  PaillierError,
  RnPool,
  addCiphertexts,
  assertValidCiphertext,
  assertValidPublicKey,
  ciphertextFromString,
  ciphertextToString,
  decryptFast,
  encryptFast,
  generatePaillierKeyPair,
  privateKeyFromJson,
  privateKeyToJson,
  publicKeyFromJson,
  publicKeyToJson,
  randomnessPower,
  recoverRandomness,
  sampleRandomness,
  verifyDecryption,
  type PaillierKeyPair,
} from './paillier';
import { seededRandom } from '../../../test/support/randomness';

const BITS = 1024;
/**
 * Runs per property. A counterexample is printed but not shrunk: shrinking 1024-bit values through paillier-bigint's
 * slow reference takes minutes and yields nothing more readable than the original.
 */
const runs = (numRuns: number) => ({ numRuns, endOnFailure: true });
const LOOSE = { minBits: 512 };
let keys: PaillierKeyPair;
/** A key pair from paillier-bigint's own generator (simple variant; its p has one bit more than q). */
let stock: PaillierKeyPair;

beforeAll(async () => {
  keys = await generatePaillierKeyPair(BITS);
  stock = generateRandomKeysSync(BITS, true);
});

/** p and q of a paillier-bigint private key (fields private to TypeScript only). */
const factors = (sk: PrivateKey): { p: bigint; q: bigint } => {
  const { _p, _q } = sk as unknown as { _p: bigint; _q: bigint };
  return { p: _p, q: _q };
};

/** Arbitraries over the key under test: plaintexts in [0, n), r ∈ Z*_n, units of Z*_{n²} (every unit is a ciphertext). */
const plaintext = (pk: PublicKey) => fc.oneof(fc.bigInt({ min: 0n, max: pk.n - 1n }), fc.constantFrom(0n, 1n, pk.n - 1n));
const unitModN = (pk: PublicKey) => fc.bigInt({ min: 1n, max: pk.n - 1n }).filter((r) => gcd(r, pk.n) === 1n);
const unitModN2 = (pk: PublicKey) => fc.bigInt({ min: 1n, max: pk.n * pk.n - 1n }).filter((c) => gcd(c, pk.n) === 1n);

describe('generatePaillierKeyPair', () => {
  it('makes n of exactly the requested bits from two distinct primes of half the size, g = n + 1, gcd(n, φ) = 1', () => {
    const { publicKey, privateKey } = keys;
    const { p, q } = factors(privateKey);
    expect(bitLength(publicKey.n)).toBe(BITS);
    expect([bitLength(p), bitLength(q)]).toEqual([BITS / 2, BITS / 2]);
    expect(p).not.toBe(q);
    expect(p * q).toBe(publicKey.n);
    expect(publicKey.g).toBe(publicKey.n + 1n);
    const phi = (p - 1n) * (q - 1n);
    expect(gcd(publicKey.n, phi)).toBe(1n);
    expect(privateKey.lambda).toBe(phi);
    expect((privateKey.lambda * privateKey.mu) % publicKey.n).toBe(1n);
    expect(() => assertValidPublicKey(publicKey, LOOSE)).not.toThrow();
  });

  it('refuses odd, tiny and oversized modulus sizes', async () => {
    await expect(generatePaillierKeyPair(1023)).rejects.toThrow(RangeError);
    await expect(generatePaillierKeyPair(256)).rejects.toThrow(RangeError);
    await expect(generatePaillierKeyPair(8192)).rejects.toThrow(RangeError);
  });

  it('at 2048 bits, encrypts and decrypts bit-identically to paillier-bigint', async () => {
    const { publicKey, privateKey } = await generatePaillierKeyPair(2048);
    expect(bitLength(publicKey.n)).toBe(2048);
    expect(() => assertValidPublicKey(publicKey)).not.toThrow();
    const m = publicKey.n - 12345n;
    const r = sampleRandomness(publicKey, seededRandom('2048'));
    const c = encryptFast(publicKey, m, randomnessPower(publicKey, r));
    expect(c).toBe(publicKey.encrypt(m, r));
    expect(decryptFast(privateKey, c)).toBe(m);
    expect(privateKey.decrypt(c)).toBe(m);
    expect(recoverRandomness(privateKey, c)).toBe(r);
  });
});

describe('fast paths are bit-identical to paillier-bigint', () => {
  it('encryptFast(m, r^n) equals publicKey.encrypt(m, r)', () => {
    const pk = keys.publicKey;
    fc.assert(
      fc.property(plaintext(pk), unitModN(pk), (m, r) => {
        expect(encryptFast(pk, m, randomnessPower(pk, r))).toBe(pk.encrypt(m, r));
      }),
      runs(30),
    );
  });

  it('decryptFast (CRT) equals privateKey.decrypt on random units of Z*_{n²}', () => {
    fc.assert(
      fc.property(unitModN2(keys.publicKey), (c) => {
        expect(decryptFast(keys.privateKey, c)).toBe(keys.privateKey.decrypt(c));
      }),
      runs(30),
    );
  });

  it('decryptFast with a private key that lacks p and q (λ, μ only) equals privateKey.decrypt', () => {
    const { lambda, mu, publicKey } = keys.privateKey;
    const bare = new PrivateKey(lambda, mu, publicKey);
    fc.assert(
      fc.property(unitModN2(publicKey), (c) => {
        expect(decryptFast(bare, c)).toBe(bare.decrypt(c));
      }),
      runs(15),
    );
    expect(() => recoverRandomness(bare, publicKey.encrypt(5n))).toThrow(PaillierError);
  });

  it('recoverRandomness equals privateKey.getRandomFactor and returns the r that encrypted', () => {
    const pk = keys.publicKey;
    fc.assert(
      fc.property(plaintext(pk), unitModN(pk), (m, r) => {
        const c = pk.encrypt(m, r);
        const recovered = recoverRandomness(keys.privateKey, c);
        expect(recovered).toBe(r);
        expect(recovered).toBe(keys.privateKey.getRandomFactor(c));
      }),
      runs(30),
    );
  });

  it('addCiphertexts equals publicKey.addition and decrypts to the sum mod n', () => {
    const pk = keys.publicKey;
    fc.assert(
      fc.property(fc.array(plaintext(pk), { minLength: 1, maxLength: 6 }), (ms) => {
        const cs = ms.map((m) => encryptFast(pk, m));
        const sum = addCiphertexts(pk, cs);
        expect(sum).toBe(pk.addition(...cs));
        expect(decryptFast(keys.privateKey, sum)).toBe(ms.reduce((a, b) => a + b, 0n) % pk.n);
      }),
      runs(15),
    );
  });

  it("keys interoperate both ways: paillier-bigint's keys with the fast paths, ours with paillier-bigint", () => {
    fc.assert(
      fc.property(plaintext(stock.publicKey), unitModN(stock.publicKey), (m, r) => {
        // paillier-bigint's key pair through the fast paths.
        const c = stock.publicKey.encrypt(m, r);
        expect(encryptFast(stock.publicKey, m, randomnessPower(stock.publicKey, r))).toBe(c);
        expect(decryptFast(stock.privateKey, c)).toBe(m);
        expect(recoverRandomness(stock.privateKey, c)).toBe(r);
        expect(verifyDecryption(stock.publicKey, c, m, r)).toBe(true);
        // Our key pair through paillier-bigint.
        const mine = keys.publicKey;
        const m2 = m % mine.n;
        const c2 = encryptFast(mine, m2);
        expect(keys.privateKey.decrypt(c2)).toBe(m2);
        expect(decryptFast(keys.privateKey, mine.encrypt(m2))).toBe(m2);
        expect(mine.encrypt(m2, keys.privateKey.getRandomFactor(c2))).toBe(c2);
      }),
      runs(10),
    );
  });

  it('encryptFast without r^n draws a fresh r each time and decrypts', () => {
    const pk = keys.publicKey;
    const a = encryptFast(pk, 42n);
    const b = encryptFast(pk, 42n);
    expect(a).not.toBe(b);
    expect(decryptFast(keys.privateKey, a)).toBe(42n);
    expect(decryptFast(keys.privateKey, b)).toBe(42n);
    expect(() => assertValidCiphertext(pk, a)).not.toThrow();
  });
});

describe('verifiable decryption', () => {
  it('recoverRandomness + verifyDecryption round-trip for any ciphertext', () => {
    const pk = keys.publicKey;
    fc.assert(
      fc.property(unitModN2(pk), (c) => {
        const m = decryptFast(keys.privateKey, c);
        const r = recoverRandomness(keys.privateKey, c);
        expect(verifyDecryption(pk, c, m, r)).toBe(true);
      }),
      runs(20),
    );
  });

  describe('rejects forged openings', () => {
    const m = 1_000_000n;
    let c: bigint;
    let r: bigint;
    beforeAll(() => {
      r = sampleRandomness(keys.publicKey, seededRandom('opening'));
      c = encryptFast(keys.publicKey, m, randomnessPower(keys.publicKey, r));
      expect(verifyDecryption(keys.publicKey, c, m, r)).toBe(true);
    });

    it('rejects a forged decryption claiming m + 1', () => {
      expect(verifyDecryption(keys.publicKey, c, m + 1n, r)).toBe(false);
    });

    it('rejects a forged decryption with the wrong r', () => {
      expect(verifyDecryption(keys.publicKey, c, m, r + 1n)).toBe(false);
      expect(verifyDecryption(keys.publicKey, c, m, sampleRandomness(keys.publicKey))).toBe(false);
    });

    it('rejects the non-canonical opening m + n (it satisfies the equation, but m must be in [0, n))', () => {
      expect(verifyDecryption(keys.publicKey, c, m + keys.publicKey.n, r)).toBe(false);
    });

    it('rejects the non-canonical opening r + n (same r^n mod n²) and r = 0', () => {
      const n = keys.publicKey.n;
      expect(referenceModPow(r + n, n, n * n)).toBe(referenceModPow(r, n, n * n));
      expect(verifyDecryption(keys.publicKey, c, m, r + n)).toBe(false);
      expect(verifyDecryption(keys.publicKey, c, m, 0n)).toBe(false);
    });

    it('rejects an opening with r = p, which would let m be shifted by any multiple of q', () => {
      const { publicKey } = keys;
      const { p, q } = factors(keys.privateKey);
      const n2 = publicKey.n * publicKey.n;
      const forged = publicKey.encrypt(m, p);
      // Without the unit check the equation holds for m + q as well: both sides vanish mod p².
      expect(((1n + (m + q) * publicKey.n) * referenceModPow(p, publicKey.n, n2)) % n2).toBe(forged);
      expect(verifyDecryption(publicKey, forged, m + q, p)).toBe(false);
      expect(verifyDecryption(publicKey, forged, m, p)).toBe(false);
    });

    it('returns false, not an exception, for values that are not bigints or out of range', () => {
      const pk = keys.publicKey;
      expect(verifyDecryption(pk, c, -1n, r)).toBe(false);
      expect(verifyDecryption(pk, 0n, m, r)).toBe(false);
      expect(verifyDecryption(pk, c + pk.n * pk.n, m, r)).toBe(false);
      expect(verifyDecryption(pk, c, Number(m) as unknown as bigint, r)).toBe(false);
    });
  });
});

describe('ciphertext validation', () => {
  it('rejects a ciphertext that is not a unit (a multiple of p), in assertValidCiphertext and decryptFast', () => {
    const { p } = factors(keys.privateKey);
    for (const c of [p, p * 12345n, keys.publicKey.n, factors(keys.privateKey).q * 3n]) {
      expect(() => assertValidCiphertext(keys.publicKey, c)).toThrow(/not a unit/);
      expect(() => decryptFast(keys.privateKey, c)).toThrow(PaillierError);
      expect(() => recoverRandomness(keys.privateKey, c)).toThrow(PaillierError);
    }
    const bare = new PrivateKey(keys.privateKey.lambda, keys.privateKey.mu, keys.publicKey);
    expect(() => decryptFast(bare, p * 7n)).toThrow(/not a unit/);
  });

  it('rejects ciphertexts out of range: 0, n², n² + 1, negative', () => {
    const n2 = keys.publicKey.n * keys.publicKey.n;
    for (const c of [0n, n2, n2 + 1n, -5n]) {
      expect(() => assertValidCiphertext(keys.publicKey, c)).toThrow(/outside/);
      expect(() => decryptFast(keys.privateKey, c)).toThrow(/outside/);
      expect(() => addCiphertexts(keys.publicKey, [encryptFast(keys.publicKey, 1n), c])).toThrow(/ciphertext 1 is outside/);
    }
    expect(() => assertValidCiphertext(keys.publicKey, 5 as unknown as bigint)).toThrow(PaillierError);
  });

  it('refuses to add an empty list of ciphertexts', () => {
    expect(() => addCiphertexts(keys.publicKey, [])).toThrow(PaillierError);
  });
});

describe('encryptFast input checks', () => {
  it('rejects a plaintext outside [0, n) and an r^n outside (0, n²)', () => {
    const pk = keys.publicKey;
    const rn = randomnessPower(pk, 2n);
    expect(() => encryptFast(pk, pk.n, rn)).toThrow(PaillierError);
    expect(() => encryptFast(pk, -1n, rn)).toThrow(PaillierError);
    expect(() => encryptFast(pk, 1n, 0n)).toThrow(PaillierError);
    expect(() => encryptFast(pk, 1n, pk.n * pk.n)).toThrow(PaillierError);
    expect(() => randomnessPower(pk, 0n)).toThrow(PaillierError);
    expect(() => randomnessPower(pk, pk.n)).toThrow(PaillierError);
    expect(() => randomnessPower(pk, factors(keys.privateKey).p)).toThrow(/coprime/);
  });

  it('refuses a key with g ≠ n + 1 (paillier-bigint\u2019s non-simple variant), whose ciphertexts have another form', () => {
    const other = new PublicKey(keys.publicKey.n, keys.publicKey.n + 2n);
    expect(() => encryptFast(other, 1n)).toThrow(/g ≠ n \+ 1/);
    expect(() => new RnPool(other)).toThrow(PaillierError);
  });
});

describe('assertValidPublicKey', () => {
  const p = generatePrimeSync(1024, { bigint: true });
  const q = generatePrimeSync(1024, { bigint: true });
  const key = (n: bigint) => new PublicKey(n, n + 1n);

  it('accepts a proper 2048-bit modulus', () => {
    expect(() => assertValidPublicKey(key(p * q))).not.toThrow();
  });

  it('rejects a public key with a small factor (n = 65521 · prime), which anyone can factor', () => {
    const n = 65521n * generatePrimeSync(2040, { bigint: true });
    expect(() => assertValidPublicKey(key(n))).toThrow(/prime factor below 2\^16/);
    expect(() => assertValidPublicKey(key(3n * p * q))).toThrow(/prime factor below 2\^16/);
  });

  it('rejects an even modulus', () => {
    expect(() => assertValidPublicKey(key(2n * p * q))).toThrow(/even/);
  });

  it('rejects an undersized modulus (1024 bits against the 2048 default)', () => {
    expect(() => assertValidPublicKey(keys.publicKey)).toThrow(/fewer than the 2048 required/);
    expect(() => assertValidPublicKey(keys.publicKey, LOOSE)).not.toThrow();
  });

  it('rejects an oversized modulus (more work than any honest key needs)', () => {
    expect(() => assertValidPublicKey(key((1n << 5000n) + 1n))).toThrow(/more than the 4096 supported/);
  });

  it('rejects g ≠ n + 1', () => {
    expect(() => assertValidPublicKey(new PublicKey(p * q, p * q + 2n))).toThrow(/g ≠ n \+ 1/);
  });

  it('rejects a perfect square n = p², factored by a square root', () => {
    expect(() => assertValidPublicKey(key(p * p))).toThrow(/perfect square/);
  });

  it('rejects a perfect cube n = r³', () => {
    const r = generatePrimeSync(700, { bigint: true });
    expect(() => assertValidPublicKey(key(r ** 3n))).toThrow(/perfect power \(n = a\^3\)/);
  });

  it('rejects a prime n, whose φ(n) = n − 1 is public', () => {
    expect(() => assertValidPublicKey(key(generatePrimeSync(2048, { bigint: true })))).toThrow(/is prime/);
  });

  it('rejects something that is not a key', () => {
    expect(() => assertValidPublicKey(null as unknown as PublicKey)).toThrow(PaillierError);
    expect(() => assertValidPublicKey({ n: 5, g: 6 } as unknown as PublicKey)).toThrow(PaillierError);
  });
});

describe('RnPool', () => {
  it('fill and take give valid r^n values that encrypt and decrypt, each handed out once', async () => {
    const pool = new RnPool(keys.publicKey);
    expect(pool.size).toBe(0);
    await expect(pool.fill(4)).resolves.toBe(4);
    expect(pool.size).toBe(4);
    const values = [pool.take(), pool.take(), pool.take(), pool.take()];
    expect(pool.size).toBe(0);
    expect(new Set(values).size).toBe(4);
    for (const [i, rn] of values.entries()) {
      const c = encryptFast(keys.publicKey, BigInt(i), rn);
      expect(decryptFast(keys.privateKey, c)).toBe(BigInt(i));
      // rn really is r^n for the r the key holder recovers.
      expect(randomnessPower(keys.publicKey, recoverRandomness(keys.privateKey, c))).toBe(rn);
    }
    // An empty pool computes one on demand.
    const extra = pool.take();
    expect(decryptFast(keys.privateKey, encryptFast(keys.publicKey, 9n, extra))).toBe(9n);
  });

  it('is deterministic under an injected random source', async () => {
    const a = new RnPool(keys.publicKey, { rng: seededRandom('pool') });
    const b = new RnPool(keys.publicKey, { rng: seededRandom('pool') });
    await a.fill(2);
    await b.fill(2);
    expect([a.take(), a.take()]).toEqual([b.take(), b.take()]);
  });

  it('yields to the event loop between values, so timers (a worker lock renewal) keep running', async () => {
    const pool = new RnPool(keys.publicKey);
    let ticks = 0;
    const timer = setInterval(() => ticks++, 0);
    try {
      await pool.fill(20);
    } finally {
      clearInterval(timer);
    }
    expect(ticks).toBeGreaterThan(0);
  });

  it('stops early when its signal is aborted and keeps what it made', async () => {
    const pool = new RnPool(keys.publicKey);
    const controller = new AbortController();
    controller.abort();
    await expect(pool.fill(5, { signal: controller.signal })).resolves.toBe(0);
    const later = new AbortController();
    const filling = pool.fill(1000, { signal: later.signal });
    setImmediate(() => later.abort());
    const added = await filling;
    expect(added).toBeGreaterThan(0);
    expect(added).toBeLessThan(1000);
    expect(pool.size).toBe(added);
    pool.clear();
    expect(pool.size).toBe(0);
    await expect(pool.fill(-1)).rejects.toThrow(RangeError);
  });
});

describe('serialization', () => {
  it('public key round-trips through { n } as canonical base64url', () => {
    const json = publicKeyToJson(keys.publicKey);
    expect(Object.keys(json)).toEqual(['n']);
    expect(json.n).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(Buffer.from(json.n, 'base64url')).toHaveLength(BITS / 8);
    const back = publicKeyFromJson(JSON.parse(JSON.stringify(json)), LOOSE);
    expect(back.n).toBe(keys.publicKey.n);
    expect(back.g).toBe(keys.publicKey.n + 1n);
  });

  it('publicKeyFromJson rejects a weak key, a leading zero byte, padding, extra fields and wrong types', () => {
    const n = Buffer.from(publicKeyToJson(keys.publicKey).n, 'base64url');
    expect(() => publicKeyFromJson(publicKeyToJson(keys.publicKey))).toThrow(/fewer than the 2048/);
    expect(() => publicKeyFromJson({ n: Buffer.concat([Buffer.of(0), n]).toString('base64url') }, LOOSE)).toThrow(/leading zero/);
    expect(() => publicKeyFromJson({ n: `${n.toString('base64')}=` }, LOOSE)).toThrow(PaillierError);
    expect(() => publicKeyFromJson({ n: n.toString('base64url'), g: 'AQ' }, LOOSE)).toThrow(/unexpected fields: g/);
    expect(() => publicKeyFromJson({ n: 5 }, LOOSE)).toThrow(PaillierError);
    expect(() => publicKeyFromJson(null, LOOSE)).toThrow(PaillierError);
    expect(() => publicKeyFromJson([], LOOSE)).toThrow(PaillierError);
  });

  it('private key round-trips through { version: 1, n, p, q } and decrypts the same', () => {
    const json = privateKeyToJson(keys.privateKey);
    expect(json.version).toBe(1);
    const back = privateKeyFromJson(JSON.parse(JSON.stringify(json)), LOOSE);
    expect(back.publicKey.n).toBe(keys.publicKey.n);
    expect(back.privateKey.lambda).toBe(keys.privateKey.lambda);
    expect(back.privateKey.mu).toBe(keys.privateKey.mu);
    const c = encryptFast(keys.publicKey, 777n);
    expect(decryptFast(back.privateKey, c)).toBe(777n);
    expect(back.privateKey.decrypt(c)).toBe(777n);
  });

  it('privateKeyFromJson rejects a tampered factor, another version and missing fields', () => {
    const json = privateKeyToJson(keys.privateKey);
    const { p } = factors(keys.privateKey);
    const tampered = { ...json, p: Buffer.from((p + 2n).toString(16), 'hex').toString('base64url') };
    expect(() => privateKeyFromJson(tampered, LOOSE)).toThrow(/p·q ≠ n/);
    expect(() => privateKeyFromJson({ ...json, version: 2 }, LOOSE)).toThrow(/version/);
    expect(() => privateKeyFromJson({ version: 1, n: json.n, p: json.p }, LOOSE)).toThrow(PaillierError);
    const bare = new PrivateKey(keys.privateKey.lambda, keys.privateKey.mu, keys.publicKey);
    expect(() => privateKeyToJson(bare)).toThrow(PaillierError);
  });

  it('ciphertexts round-trip at a fixed width and are validated on the way in', () => {
    const pk = keys.publicKey;
    const width = Math.ceil(bitLength(pk.n * pk.n) / 8);
    for (const c of [encryptFast(pk, 1n), 1n, pk.n * pk.n - 1n]) {
      const text = ciphertextToString(pk, c);
      expect(Buffer.from(text, 'base64url')).toHaveLength(width);
      expect(ciphertextFromString(pk, text)).toBe(c);
    }
    expect(() => ciphertextFromString(pk, Buffer.alloc(width - 1, 1).toString('base64url'))).toThrow(PaillierError);
    expect(() => ciphertextFromString(pk, ciphertextToString(pk, factors(keys.privateKey).p))).toThrow(/not a unit/);
    expect(() => ciphertextToString(pk, 0n)).toThrow(PaillierError);
  });
});
