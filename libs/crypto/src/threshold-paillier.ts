import { createHash, generatePrime } from 'node:crypto';
import { gcd, modInv, modPow as bigintModPow } from 'bigint-crypto-utils';
import { PrivateKey, PublicKey } from 'paillier-bigint';
import { fromBase64Url, toBase64Url } from './encoding';
import { bitLength, bufferToBigInt, prepareModPow, prepareModulus, type PreparedModPow } from './modpow';
import {
  PAILLIER_MAX_BITS,
  PAILLIER_MIN_GENERATE_BITS,
  PaillierError,
  decodeInteger,
  encodeInteger,
  encryptFast,
  publicKeyFromJson,
  randomnessPower,
  sampleRandomness,
  type PaillierKeyPair,
} from './paillier';
import { bigIntToBytes, secureRandom, type RandomSource } from './random';
import { signingBytes } from './signature';

/**
 * Threshold Paillier decryption with a trusted dealer, and a proof of plaintext knowledge for Paillier ciphertexts.
 *
 * Threshold decryption is V. Shoup's threshold RSA ("Practical Threshold Signatures", EUROCRYPT 2000) carried over
 * to Paillier by P.-A. Fouque, G. Poupard and J. Stern ("Sharing Decryption in the Context of Voting or Lotteries",
 * FC 2000) and by I. Damgård and M. Jurik ("A Generalisation, a Simplification and Some Applications of Paillier's
 * Probabilistic Public-Key System", PKC 2001, §4, the threshold variant), here with s = 1 and g = n + 1:
 * - the dealer makes n = pq from safe primes p = 2p' + 1, q = 2q' + 1, sets m = p'q' and the decryption exponent d
 *   with d ≡ 0 mod m and d ≡ 1 mod n, and gives custodian i ∈ 1..l the share s_i = f(i) of a random polynomial f of
 *   degree t − 1 over Z_{nm} with f(0) = d. It publishes a random square v and v_i = v^(Δ·s_i) mod n², Δ = l!, and
 *   keeps nothing else;
 * - custodian i decrypts c partially as c_i = c^(2Δ·s_i) mod n², with a non-interactive proof that
 *   log_{c⁴}(c_i²) = log_v(v_i), i.e. that it used the exponent v_i commits to (Shoup's proof of correctness of a
 *   signature share, made non-interactive by Fiat–Shamir);
 * - any t partials combine: with the integers μ_i = Δ·λ_{0,i} (Lagrange coefficients at 0 times Δ),
 *   Π c_i^(2μ_i) = c^(4Δ²·d) = (1 + n)^(4Δ²·M) mod n² for the plaintext M, so M = L(·)·(4Δ²)^(−1) mod n.
 * Fewer than t shares say nothing about d beyond what the public values do (Shoup's simulation argument).
 *
 * The proof of plaintext knowledge is the Σ-protocol for "I know M and r with c = (1 + n)^M·r^n" (Damgård–Jurik
 * §4's auxiliary protocols; R. Cramer, I. Damgård, J. B. Nielsen, "Multiparty Computation from Threshold
 * Homomorphic Encryption", EUROCRYPT 2001, its Paillier instantiation), made non-interactive by Fiat–Shamir. It lets
 * a key holder tell a freshly made ciphertext (the coordinator's encrypted noise) from one assembled out of other
 * people's ciphertexts, whose plaintexts its maker does not know.
 *
 * Every exponentiation with a large exponent mod n² runs natively ({@link prepareModPow}); short ones (the 128-bit
 * challenges, the Lagrange factors) in bigint arithmetic, because building a native context costs about one full
 * exponentiation mod n² (OpenSSL's DH_check; 1.1 exponentiations at n = 3072 bits), far more than they do.
 */

/** Most custodians a key can have: Δ = l! lengthens every proof exponent by log₂(l!) bits (525 at 100). */
export const THRESHOLD_MAX_CUSTODIANS = 100;

/**
 * Fiat–Shamir challenges are 128-bit. Both proofs need them below every prime factor of the group order (n·p'q',
 * resp. n): true for two balanced primes of 256 bits or more.
 */
const CHALLENGE_BITS = 128;
/** How far the proof nonce hides e·Δ·s_i: statistical distance at most 2^−128. */
const STATISTICAL_BITS = 128;

const DECRYPTION_DOMAIN = 'threshold-paillier/partial-decryption';
const PLAINTEXT_DOMAIN = 'paillier/plaintext-knowledge';

// ---------------------------------------------------------------------------------------------------------------
// Types: what the dealer publishes, what a custodian keeps, what a custodian sends.

/** The public verification key of a threshold Paillier key (Shoup's verification keys), published by the dealer. */
export interface ThresholdVerificationKey {
  /** The Paillier public key (g = n + 1); encrypt under it as under any other. */
  readonly publicKey: PublicKey;
  /** A random square mod n²: with overwhelming probability a generator of the squares, a cyclic group of order n·p'q'. */
  readonly v: bigint;
  /** vi[i − 1] = v^(Δ·s_i) mod n², custodian i's verification value. */
  readonly vi: readonly bigint[];
  /** l, the number of custodians, 1..{@link THRESHOLD_MAX_CUSTODIANS}. */
  readonly custodians: number;
  /** t, how many custodians decrypt together, 1..l. */
  readonly threshold: number;
  /** Δ = l!. */
  readonly delta: bigint;
}

/** What custodian i keeps: its share s_i of d, with the verification key it proves against. Secret: never logged. */
export interface CustodianShare {
  /** i, 1..l. */
  readonly index: number;
  /** s_i = f(i) mod n·p'q'. */
  readonly si: bigint;
  readonly verification: ThresholdVerificationKey;
}

/** The dealer's output. */
export interface ThresholdPaillierKey {
  /** The same object as `verification.publicKey`. */
  readonly publicKey: PublicKey;
  readonly verification: ThresholdVerificationKey;
  /** One per custodian, index 1..l in order; hand each to its custodian only. */
  readonly shares: readonly CustodianShare[];
  /** The whole private key, only when asked for (`keepFullKey`): a dealer that keeps it defeats the threshold. */
  readonly fullKey?: PaillierKeyPair;
}

/** A Fiat–Shamir proof that log_{c⁴}(c_i²) = log_v(v_i): challenge e < 2^128 and response z = r + e·Δ·s_i. */
export interface PartialDecryptionProof {
  readonly e: bigint;
  readonly z: bigint;
}

/** What custodian i sends for a ciphertext c: c_i = c^(2Δ·s_i) mod n² and the proof that it is right. */
export interface PartialDecryption {
  readonly index: number;
  readonly ci: bigint;
  readonly proof: PartialDecryptionProof;
}

/** A Fiat–Shamir proof of knowledge of the plaintext of c: challenge e < 2^128, w = (x + e·M) mod n, u = s·r^e mod n. */
export interface PlaintextKnowledgeProof {
  readonly e: bigint;
  readonly w: bigint;
  readonly u: bigint;
}

// ---------------------------------------------------------------------------------------------------------------
// Checked contexts, per verification key and per share (public values by key object; the share's exponent is
// secret and lives exactly as long as the share object).

interface VerificationContext {
  readonly n: bigint;
  readonly n2: bigint;
  readonly v: bigint;
  readonly vi: readonly bigint[];
  readonly custodians: number;
  readonly threshold: number;
  readonly delta: bigint;
  /** Bits of the proof nonce r: e·Δ·s_i < 2^(128 + |Δ| + |n²|), and r is 2^128 times larger. */
  readonly nonceBits: number;
  /** (4Δ²)^(−1) mod n. */
  readonly combineFactor: bigint;
  /** exp ↦ (x ↦ x^exp mod n²) on one native object for n², for the proofs' fresh exponents (modpow.ts prepareModulus). */
  readonly powMod: (exp: bigint) => PreparedModPow;
}

const verificationContexts = new WeakMap<ThresholdVerificationKey, VerificationContext>();

function factorial(l: number): bigint {
  let f = 1n;
  for (let k = 2n; k <= BigInt(l); k++) f *= k;
  return f;
}

/** Why (custodians, threshold) is not acceptable, or undefined when it is. */
function countsProblem(custodians: unknown, threshold: unknown): string | undefined {
  if (!Number.isInteger(custodians) || (custodians as number) < 1 || (custodians as number) > THRESHOLD_MAX_CUSTODIANS) {
    return `custodians must be an integer from 1 to ${THRESHOLD_MAX_CUSTODIANS}, got ${String(custodians)}`;
  }
  if (!Number.isInteger(threshold) || (threshold as number) < 1 || (threshold as number) > (custodians as number)) {
    return `threshold must be an integer from 1 to ${custodians as number}, got ${String(threshold)}`;
  }
  return undefined;
}

/** 0 < x < n² and gcd(x, n) = 1: x is a unit mod n². False for non-bigints. */
function isUnit(x: unknown, n: bigint, n2: bigint): x is bigint {
  return typeof x === 'bigint' && x > 0n && x < n2 && gcd(x % n, n) === 1n;
}

/** Array.isArray without its `any[]`, so a typed array stays typed. */
function isList(x: unknown): x is readonly unknown[] {
  return Array.isArray(x);
}

function verificationContext(key: ThresholdVerificationKey): VerificationContext {
  let ctx = verificationContexts.get(key);
  if (ctx) return ctx;
  if (typeof key !== 'object' || key === null) throw new PaillierError('threshold verification key must be an object');
  const { publicKey, v, vi, custodians, threshold, delta } = key;
  if (typeof publicKey !== 'object' || publicKey === null || typeof publicKey.n !== 'bigint' || publicKey.g !== publicKey.n + 1n) {
    throw new PaillierError('threshold verification key: publicKey must be a Paillier public key with g = n + 1');
  }
  const { n } = publicKey;
  const bits = bitLength(n);
  if ((n & 1n) === 0n || bits < PAILLIER_MIN_GENERATE_BITS || bits > PAILLIER_MAX_BITS) {
    throw new PaillierError(`threshold verification key: n must be odd, of ${PAILLIER_MIN_GENERATE_BITS} to ${PAILLIER_MAX_BITS} bits`);
  }
  const problem = countsProblem(custodians, threshold);
  if (problem) throw new PaillierError(`threshold verification key: ${problem}`);
  const exactDelta = factorial(custodians);
  if (delta !== exactDelta) throw new PaillierError('threshold verification key: delta must be custodians!');
  if (!isList(vi) || vi.length !== custodians) throw new PaillierError(`threshold verification key: vi must list ${custodians} values`);
  const n2 = n * n;
  if (!isUnit(v, n, n2)) throw new PaillierError('threshold verification key: v must be a unit in (0, n²)');
  vi.forEach((x, k) => {
    if (!isUnit(x, n, n2)) throw new PaillierError(`threshold verification key: vi[${k}] must be a unit in (0, n²)`);
  });
  // Δ's prime factors are at most 100, so this holds for every n that is not trivially factored.
  const fourDeltaSquared = 4n * exactDelta * exactDelta;
  if (gcd(fourDeltaSquared, n) !== 1n) throw new PaillierError('threshold verification key: n shares a factor with 4Δ²');
  ctx = {
    n,
    n2,
    v,
    vi: [...vi],
    custodians,
    threshold,
    delta: exactDelta,
    nonceBits: bitLength(n2) + bitLength(exactDelta) + CHALLENGE_BITS + STATISTICAL_BITS,
    combineFactor: modInv(fourDeltaSquared % n, n),
    powMod: prepareModulus(n2),
  };
  verificationContexts.set(key, ctx);
  return ctx;
}

interface ShareContext {
  readonly ctx: VerificationContext;
  /** x ↦ x^(2Δ·s_i) mod n². */
  readonly power: PreparedModPow;
}

const shareContexts = new WeakMap<CustodianShare, ShareContext>();

function shareContext(share: CustodianShare): ShareContext {
  let sc = shareContexts.get(share);
  if (sc) return sc;
  if (typeof share !== 'object' || share === null) throw new PaillierError('custodian share must be an object');
  const ctx = verificationContext(share.verification);
  const { index, si } = share;
  if (!isIndex(ctx, index)) throw new PaillierError(`custodian share: index must be an integer from 1 to ${ctx.custodians}`);
  if (typeof si !== 'bigint' || si < 0n || si >= ctx.n2) throw new PaillierError('custodian share: si must be an integer in [0, n²)');
  sc = { ctx, power: prepareModPow(2n * ctx.delta * si, ctx.n2) };
  shareContexts.set(share, sc);
  return sc;
}

function isIndex(ctx: VerificationContext, index: unknown): index is number {
  return Number.isInteger(index) && (index as number) >= 1 && (index as number) <= ctx.custodians;
}

function assertContext(context: unknown): asserts context is string {
  if (typeof context !== 'string') throw new PaillierError('proof context must be a string');
}

// ---------------------------------------------------------------------------------------------------------------
// Randomness and challenges

/** Uniform in [0, bound), bound ≥ 1, by rejection sampling (no modulo bias). */
function randomBelow(bound: bigint, rng: RandomSource): bigint {
  const bits = bitLength(bound - 1n);
  if (bits === 0) return 0n;
  const bytes = Math.ceil(bits / 8);
  const mask = (1n << BigInt(bits)) - 1n;
  for (;;) {
    const raw = rng(bytes);
    if (raw.length !== bytes) throw new RangeError('random source returned the wrong number of bytes');
    const x = bufferToBigInt(raw) & mask;
    if (x < bound) return x;
  }
}

/**
 * The Fiat–Shamir challenge: the first 128 bits of SHA-256 over Confide's domain-separated canonical encoding
 * (signature.ts `signingBytes`: "confide/v1/<domain>\n" and canonical JSON), integers as base64url. The statement,
 * the commitments and the caller's context are all in it, so a proof answers for this statement only.
 */
function challenge(domain: string, payload: Record<string, string | number>): bigint {
  const digest = createHash('sha256').update(signingBytes(domain, payload)).digest();
  return bufferToBigInt(digest.subarray(0, CHALLENGE_BITS / 8));
}

function decryptionChallenge(ctx: VerificationContext, index: number, c: bigint, ci: bigint, a: bigint, b: bigint, context: string): bigint {
  return challenge(DECRYPTION_DOMAIN, {
    n: encodeInteger(ctx.n),
    v: encodeInteger(ctx.v),
    vi: encodeInteger(ctx.vi[index - 1]!),
    index,
    c: encodeInteger(c),
    ci: encodeInteger(ci),
    a: encodeInteger(a),
    b: encodeInteger(b),
    context,
  });
}

function plaintextChallenge(n: bigint, c: bigint, a: bigint, context: string): bigint {
  return challenge(PLAINTEXT_DOMAIN, { n: encodeInteger(n), c: encodeInteger(c), a: encodeInteger(a), context });
}

// ---------------------------------------------------------------------------------------------------------------
// Dealer

function safePrime(bits: number): Promise<bigint> {
  // OpenSSL's safe-prime generator on the libuv thread pool: p and (p − 1)/2 both prime.
  return new Promise((resolve, reject) => generatePrime(bits, { safe: true, bigint: true }, (err, prime) => (err ? reject(err) : resolve(prime))));
}

/** Two distinct safe primes of bits/2 bits, generated in parallel, whose product has exactly `bits` bits. */
async function safePrimePair(bits: number): Promise<[bigint, bigint]> {
  for (;;) {
    const [p, q] = await Promise.all([safePrime(bits / 2), safePrime(bits / 2)]);
    if (p !== q && bitLength(p * q) === bits) return [p, q];
  }
}

/** Uniform in Z*_{n²}. */
function randomUnit(n: bigint, n2: bigint, rng: RandomSource): bigint {
  for (;;) {
    const r = randomBelow(n2, rng);
    if (r !== 0n && gcd(r % n, n) === 1n) return r;
  }
}

/**
 * The trusted dealer (Shoup 2000, the dealer; Damgård–Jurik 2001 §4, key generation with s = 1): safe primes
 * p = 2p' + 1 and q = 2q' + 1 of bits/2 bits each from OpenSSL, generated in parallel off the main thread, with
 * n = pq of exactly `bits` bits; m = p'q'; d = m·(m^(−1) mod n), so d ≡ 0 mod m and d ≡ 1 mod n; shares
 * s_i = f(i) mod nm of f(X) = d + a_1·X + … + a_{t−1}·X^(t−1), a_k uniform in [0, nm); v = r² mod n² for a uniform
 * unit r; v_i = v^(Δ·s_i) mod n². p, q, m, d and f are dropped before returning (unless `keepFullKey`), though
 * JavaScript cannot wipe them from memory: run the dealer in a short-lived process.
 * Safe primes take longer than ordinary ones, with a long tail: on two cores, about 0.1 s at 1024 bits, 1–2 s at
 * 2048, and at 3072 a median of 7 s, from 3 to 42 s over ten samples.
 * @param bits modulus size, even, 512 (tests only) to 4096
 * @param custodians l, 1..{@link THRESHOLD_MAX_CUSTODIANS}
 * @param threshold t, 1..l: any t custodians decrypt, t − 1 learn nothing
 * @param options.rng byte source for the polynomial and v (the primes always come from OpenSSL); the CSPRNG by default
 * @param options.keepFullKey also return the whole key as a {@link PaillierKeyPair} (tests, or a deliberate escrow)
 * @throws RangeError on a size, custodian count or threshold out of range
 */
export async function generateThresholdPaillierKey(
  bits: number,
  custodians: number,
  threshold: number,
  { rng = secureRandom, keepFullKey = false }: { rng?: RandomSource; keepFullKey?: boolean } = {},
): Promise<ThresholdPaillierKey> {
  if (!Number.isInteger(bits) || bits % 2 !== 0 || bits < PAILLIER_MIN_GENERATE_BITS || bits > PAILLIER_MAX_BITS) {
    throw new RangeError(`Paillier modulus size must be an even number of bits from ${PAILLIER_MIN_GENERATE_BITS} to ${PAILLIER_MAX_BITS}, got ${bits}`);
  }
  const problem = countsProblem(custodians, threshold);
  if (problem) throw new RangeError(problem);
  const [p, q] = await safePrimePair(bits);
  const n = p * q;
  const n2 = n * n;
  // p and q have bits/2 bits, p' and q' one fewer: n and m share no factor, so m is invertible mod n.
  const m = ((p - 1n) / 2n) * ((q - 1n) / 2n);
  const nm = n * m;
  const coefficients = [m * modInv(m, n)];
  for (let k = 1; k < threshold; k++) coefficients.push(randomBelow(nm, rng));
  const shares: bigint[] = [];
  for (let i = 1; i <= custodians; i++) {
    // Horner's rule at X = i.
    let acc = 0n;
    for (let k = coefficients.length - 1; k >= 0; k--) acc = (acc * BigInt(i) + coefficients[k]!) % nm;
    shares.push(acc);
  }
  coefficients.fill(0n);
  const delta = factorial(custodians);
  const r = randomUnit(n, n2, rng);
  const v = (r * r) % n2;
  const publicKey = new PublicKey(n, n + 1n);
  const verification: ThresholdVerificationKey = {
    publicKey,
    v,
    vi: shares.map((si) => prepareModPow(delta * si, n2)(v)),
    custodians,
    threshold,
    delta,
  };
  const key = { publicKey, verification, shares: shares.map((si, k) => ({ index: k + 1, si, verification })) };
  if (!keepFullKey) return key;
  const phi = (p - 1n) * (q - 1n);
  return { ...key, fullKey: { publicKey, privateKey: new PrivateKey(phi, modInv(phi, n), publicKey, p, q) } };
}

// ---------------------------------------------------------------------------------------------------------------
// Custodians

/**
 * Custodian i's partial decryption of c (Damgård–Jurik 2001 §4, share decryption with s = 1): c_i = c^(2Δ·s_i) mod n²,
 * with a Fiat–Shamir proof of equality of discrete logs log_{c⁴}(c_i²) = log_v(v_i) (Shoup 2000, the proof of
 * correctness of a share): nonce r uniform below 2^(|n²| + |Δ| + 256), commitments a = (c⁴)^r and b = v^r mod n²,
 * e = H(n, v, v_i, i, c, c_i, a, b, context), z = r + e·Δ·s_i over the integers. The exponentiation by 2Δ·s_i is
 * prepared once per share object; a and b share one prepared exponentiation by r. The nonce is not kept.
 * @param context what the proof is bound to (e.g. the query id): a verifier must pass the same string
 * @param options.rng byte source for the nonce; the CSPRNG unless a test injects one
 * @throws PaillierError on an inconsistent share or verification key, a c that is not a unit in (0, n²), or a
 *   non-string context
 */
export function partialDecrypt(share: CustodianShare, c: bigint, context: string, { rng = secureRandom }: { rng?: RandomSource } = {}): PartialDecryption {
  const { ctx, power } = shareContext(share);
  if (!isUnit(c, ctx.n, ctx.n2)) throw new PaillierError('ciphertext must be a unit in (0, n²)');
  assertContext(context);
  const ci = power(c);
  const c2 = (c * c) % ctx.n2;
  const r = randomBelow(1n << BigInt(ctx.nonceBits), rng);
  const powR = ctx.powMod(r);
  const a = powR((c2 * c2) % ctx.n2);
  const b = powR(ctx.v);
  const e = decryptionChallenge(ctx, share.index, c, ci, a, b, context);
  return { index: share.index, ci, proof: { e, z: r + e * ctx.delta * share.si } };
}

/**
 * Checks a partial decryption's proof (Shoup 2000, share verification, non-interactive): recomputes
 * a = c^(4z)·(c_i²)^(−e) and b = v^z·v_i^(−e) mod n² and compares H(n, v, v_i, i, c, c_i, a, b, context) with e.
 * Also checks that c and c_i are units in (0, n²), that i is in 1..l, e < 2^128 and z no longer than an honest one.
 * @returns false for any partial that does not check out, malformed shapes and non-bigints included
 * @throws PaillierError only for an inconsistent verification key (the caller's own configuration)
 */
export function verifyPartialDecryption(verification: ThresholdVerificationKey, c: bigint, partial: PartialDecryption, context: string): boolean {
  const ctx = verificationContext(verification);
  const { n, n2 } = ctx;
  if (typeof context !== 'string' || !isUnit(c, n, n2) || typeof partial !== 'object' || partial === null) return false;
  const { index, ci, proof } = partial;
  if (!isIndex(ctx, index) || !isUnit(ci, n, n2) || typeof proof !== 'object' || proof === null) return false;
  const { e, z } = proof;
  if (typeof e !== 'bigint' || e < 0n || bitLength(e) > CHALLENGE_BITS) return false;
  // An honest z is below 2^nonceBits + 2^(nonceBits − 128); the bound also caps the work a hostile z can cause.
  if (typeof z !== 'bigint' || z < 0n || bitLength(z) > ctx.nonceBits + 1) return false;
  const vi = ctx.vi[index - 1]!;
  const c2 = (c * c) % n2;
  const powZ = ctx.powMod(z);
  // The challenge is short (128 bits), but at |n²| = 6144 bits even a short exponentiation is cheaper natively.
  const powE = ctx.powMod(e);
  const x = powE((ci * ci) % n2);
  const y = powE(vi);
  // One inversion for both: x^(−1) = y·(xy)^(−1) and y^(−1) = x·(xy)^(−1).
  const inverse = modInv((x * y) % n2, n2);
  const a = (((powZ((c2 * c2) % n2) * y) % n2) * inverse) % n2;
  const b = (((powZ(ctx.v) * x) % n2) * inverse) % n2;
  return decryptionChallenge(ctx, index, c, ci, a, b, context) === e;
}

/** μ_i = Δ·λ_{0,i} = Δ·Π_{j ∈ S∖{i}} j/(j − i), an integer because Δ = l! (Shoup 2000's lemma on Δ·λ), exactly. */
function deltaLagrangeAtZero(delta: bigint, indices: readonly bigint[], i: bigint): bigint {
  let numerator = delta;
  let denominator = 1n;
  for (const j of indices) {
    if (j === i) continue;
    numerator *= j;
    denominator *= j - i;
  }
  if (numerator % denominator !== 0n) throw new PaillierError('Δ·λ_{0,i} is not an integer: custodian indices must be distinct and in 1..l');
  return numerator / denominator;
}

/**
 * Combines t partial decryptions of c into the plaintext (Damgård–Jurik 2001 §4, share combining with s = 1):
 * c' = Π c_i^(2μ_i) mod n² with μ_i = Δ·λ_{0,i}, then M = L(c')·(4Δ²)^(−1) mod n, L(x) = (x − 1)/n. Uses the first
 * t partials of the list, after checking all of them for indices in 1..l, no index twice, and c_i a unit in (0, n²).
 * It does not check the proofs unless given the context: verify each partial with {@link verifyPartialDecryption}
 * as it arrives and pass only those that pass, or pass `options.context` to have the t used ones verified here.
 * A wrong c_i that slipped through gives a wrong plaintext, or is caught as c' ≢ 1 mod n.
 * @param options.context when given, each of the t partials used must verify for (c, context)
 * @returns the plaintext M ∈ [0, n), equal to what the whole key decrypts
 * @throws PaillierError on fewer than t partials, a bad or repeated index, a c_i or c that is not a unit, a partial
 *   whose proof fails (with `context`), or partials that do not combine to a power of 1 + n
 */
export function combinePartialDecryptions(
  verification: ThresholdVerificationKey,
  c: bigint,
  partials: readonly PartialDecryption[],
  { context }: { context?: string } = {},
): bigint {
  const ctx = verificationContext(verification);
  const { n, n2, threshold } = ctx;
  if (!isUnit(c, n, n2)) throw new PaillierError('ciphertext must be a unit in (0, n²)');
  if (!isList(partials)) throw new PaillierError('partial decryptions must be an array');
  if (partials.length < threshold) throw new PaillierError(`need ${threshold} partial decryptions from distinct custodians, got ${partials.length}`);
  const seen = new Set<number>();
  partials.forEach((partial, k) => {
    if (typeof partial !== 'object' || partial === null) throw new PaillierError(`partial decryption ${k} must be an object`);
    const { index, ci } = partial;
    if (!isIndex(ctx, index)) throw new PaillierError(`partial decryption ${k}: index must be an integer from 1 to ${ctx.custodians}`);
    if (seen.has(index)) throw new PaillierError(`partial decryption ${k}: custodian ${index} appears twice`);
    seen.add(index);
    if (!isUnit(ci, n, n2)) throw new PaillierError(`partial decryption ${k} (custodian ${index}): ci must be a unit in (0, n²)`);
  });
  const used = partials.slice(0, threshold);
  if (context !== undefined) {
    for (const partial of used) {
      if (!verifyPartialDecryption(verification, c, partial, context)) throw new PaillierError(`the partial decryption of custodian ${partial.index} does not verify`);
    }
  }
  const indices = used.map((partial) => BigInt(partial.index));
  // Negative μ_i go into one denominator, inverted once. The exponents are short (|μ_i| ≤ l!·l^t), so bigint
  // square-and-multiply beats building a native context per exponent.
  let numerator = 1n;
  let denominator = 1n;
  used.forEach((partial, k) => {
    const mu = deltaLagrangeAtZero(ctx.delta, indices, indices[k]!);
    const power = bigintModPow(partial.ci, 2n * (mu < 0n ? -mu : mu), n2);
    if (mu < 0n) denominator = (denominator * power) % n2;
    else numerator = (numerator * power) % n2;
  });
  const combined = (numerator * modInv(denominator, n2)) % n2;
  if (combined % n !== 1n) throw new PaillierError('the partial decryptions do not combine to a power of 1 + n: at least one is wrong');
  return (((combined - 1n) / n) * ctx.combineFactor) % n;
}

// ---------------------------------------------------------------------------------------------------------------
// Proof of plaintext knowledge

/**
 * Encrypts m under the key, with a Fiat–Shamir proof that the encryptor knows the plaintext (the Σ-protocol of
 * Damgård–Jurik 2001 §4 and Cramer–Damgård–Nielsen 2001 for c = (1 + n)^m·r^n mod n²): x uniform in Z_n, s uniform
 * in Z*_n, a = (1 + n)^x·s^n mod n², e = H(n, c, a, context), w = (x + e·m) mod n, u = s·r^e mod n. With g = n + 1
 * the carry ⌊(x + e·m)/n⌋ needs no correction, as (1 + n)^n ≡ 1 mod n². r is drawn here and not returned or kept.
 * @param m plaintext in [0, n)
 * @param context what the proof is bound to (e.g. the query and chunk): a verifier must pass the same string
 * @param options.rng byte source for r, x and s; the CSPRNG unless a test injects one
 * @returns the ciphertext and the proof
 * @throws PaillierError when m is out of range, the key has g ≠ n + 1, or the context is not a string
 */
export function encryptWithProof(
  publicKey: PublicKey,
  m: bigint,
  context: string,
  { rng = secureRandom }: { rng?: RandomSource } = {},
): { ciphertext: bigint; proof: PlaintextKnowledgeProof } {
  assertContext(context);
  const r = sampleRandomness(publicKey, rng);
  const ciphertext = encryptFast(publicKey, m, randomnessPower(publicKey, r));
  const { n } = publicKey;
  const x = randomBelow(n, rng);
  const s = sampleRandomness(publicKey, rng);
  const a = encryptFast(publicKey, x, randomnessPower(publicKey, s));
  const e = plaintextChallenge(n, ciphertext, a, context);
  return { ciphertext, proof: { e, w: (x + e * m) % n, u: (s * bigintModPow(r, e, n)) % n } };
}

const squareModuli = new WeakMap<PublicKey, (exp: bigint) => PreparedModPow>();

/** One native object for n² per public key, for the short challenge exponentiations of {@link verifyPlaintextKnowledge}. */
function squareModulus(publicKey: PublicKey, n2: bigint): (exp: bigint) => PreparedModPow {
  let pow = squareModuli.get(publicKey);
  if (!pow) {
    pow = prepareModulus(n2);
    squareModuli.set(publicKey, pow);
  }
  return pow;
}

/**
 * Checks a proof of plaintext knowledge made by {@link encryptWithProof}: 0 ≤ w < n, u a unit in [1, n), c a unit
 * in (0, n²), e < 2^128, and that H(n, c, a, context) = e for a = (1 + n)^w·u^n·c^(−e) mod n². Sound when every
 * prime factor of n exceeds 2^128, so that two answers to one commitment reveal m and r: true of the verifier's own
 * key (two primes of half its size), which is the intended use.
 * @returns false for any proof that does not check out, malformed shapes and non-bigints included
 * @throws PaillierError only for a public key with g ≠ n + 1
 */
export function verifyPlaintextKnowledge(publicKey: PublicKey, c: bigint, proof: PlaintextKnowledgeProof, context: string): boolean {
  if (typeof publicKey !== 'object' || publicKey === null || typeof publicKey.n !== 'bigint' || publicKey.g !== publicKey.n + 1n) {
    throw new PaillierError('public key must be a Paillier public key with g = n + 1');
  }
  const { n } = publicKey;
  const n2 = n * n;
  if (typeof context !== 'string' || !isUnit(c, n, n2) || typeof proof !== 'object' || proof === null) return false;
  const { e, w, u } = proof;
  if (typeof e !== 'bigint' || e < 0n || bitLength(e) > CHALLENGE_BITS) return false;
  if (typeof w !== 'bigint' || w < 0n || w >= n) return false;
  if (typeof u !== 'bigint' || u < 1n || u >= n || gcd(u, n) !== 1n) return false;
  const lhs = encryptFast(publicKey, w, randomnessPower(publicKey, u));
  const a = (lhs * modInv(squareModulus(publicKey, n2)(e)(c), n2)) % n2;
  return plaintextChallenge(n, c, a, context) === e;
}

// ---------------------------------------------------------------------------------------------------------------
// JSON forms. Integers as in paillier.ts (base64url of minimal big-endian bytes, {@link encodeInteger}); challenges
// as base64url of exactly 16 bytes. A share, a response or w that is 0 has no such encoding: probability below
// 1/n for each, so it is not worth a second form.

/** The JSON form of a {@link ThresholdVerificationKey}; Δ is recomputed on load. */
export interface ThresholdVerificationKeyJson {
  readonly version: 1;
  readonly n: string;
  readonly v: string;
  readonly vi: readonly string[];
  readonly custodians: number;
  readonly threshold: number;
}

/** The JSON form of a {@link CustodianShare}: self-contained, it carries its verification key. Secret, like the share. */
export interface CustodianShareJson {
  readonly version: 1;
  readonly index: number;
  readonly si: string;
  readonly verification: ThresholdVerificationKeyJson;
}

/** The JSON form of a {@link PartialDecryptionProof}. */
export interface PartialDecryptionProofJson {
  readonly e: string;
  readonly z: string;
}

/** The JSON form of a {@link PartialDecryption}. */
export interface PartialDecryptionJson {
  readonly index: number;
  readonly ci: string;
  readonly proof: PartialDecryptionProofJson;
}

/** The JSON form of a {@link PlaintextKnowledgeProof}. */
export interface PlaintextKnowledgeProofJson {
  readonly e: string;
  readonly w: string;
  readonly u: string;
}

function assertFields(json: unknown, fields: readonly string[], what: string): asserts json is Record<string, unknown> {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new PaillierError(`${what} must be an object`);
  const extra = Object.keys(json).filter((k) => !fields.includes(k));
  if (extra.length) throw new PaillierError(`${what} has unexpected fields: ${extra.join(', ')}`);
  const missing = fields.filter((k) => !Object.hasOwn(json, k));
  if (missing.length) throw new PaillierError(`${what} lacks fields: ${missing.join(', ')}`);
}

function encodeChallenge(e: bigint): string {
  return toBase64Url(bigIntToBytes(e, CHALLENGE_BITS / 8));
}

function decodeChallenge(text: unknown, what: string): bigint {
  if (typeof text !== 'string') throw new PaillierError(`${what} must be a base64url string`);
  try {
    return bufferToBigInt(fromBase64Url(text, CHALLENGE_BITS / 8, what));
  } catch (err) {
    throw new PaillierError(`${what} must be canonical base64url of ${CHALLENGE_BITS / 8} bytes`, { cause: err });
  }
}

function decodeIndex(value: unknown, custodians: number, what: string): number {
  if (!Number.isInteger(value) || (value as number) < 1 || (value as number) > custodians) throw new PaillierError(`${what} must be an integer from 1 to ${custodians}`);
  return value as number;
}

/**
 * The JSON form of a verification key: `{ version: 1, n, v, vi, custodians, threshold }`, integers base64url.
 * @throws PaillierError on an inconsistent key
 */
export function thresholdVerificationToJson(verification: ThresholdVerificationKey): ThresholdVerificationKeyJson {
  const ctx = verificationContext(verification);
  return {
    version: 1,
    n: encodeInteger(ctx.n),
    v: encodeInteger(ctx.v),
    vi: ctx.vi.map(encodeInteger),
    custodians: ctx.custodians,
    threshold: ctx.threshold,
  };
}

/**
 * Parses a verification key written by {@link thresholdVerificationToJson}: exact shape, version 1, canonical
 * base64url, n checked by paillier.ts `publicKeyFromJson` (`assertValidPublicKey`), 1 ≤ threshold ≤ custodians ≤ 100, one
 * v_i per custodian, v and every v_i units in (0, n²); Δ = custodians! recomputed.
 * @param options.minBits smallest n accepted, 2048 by default (as `publicKeyFromJson`)
 * @throws PaillierError naming what is wrong
 */
export function thresholdVerificationFromJson(json: unknown, { minBits = 2048 }: { minBits?: number } = {}): ThresholdVerificationKey {
  const what = 'threshold verification key';
  assertFields(json, ['version', 'n', 'v', 'vi', 'custodians', 'threshold'], what);
  if (json.version !== 1) throw new PaillierError(`${what}: unsupported version (expected 1)`);
  const publicKey = publicKeyFromJson({ n: json.n }, { minBits: Math.max(minBits, PAILLIER_MIN_GENERATE_BITS) });
  const problem = countsProblem(json.custodians, json.threshold);
  if (problem) throw new PaillierError(`${what}: ${problem}`);
  const custodians = json.custodians as number;
  const { vi } = json;
  if (!Array.isArray(vi) || vi.length !== custodians) throw new PaillierError(`${what}: vi must be an array of ${custodians} values`);
  const key: ThresholdVerificationKey = {
    publicKey,
    v: decodeInteger(json.v, `${what} v`),
    vi: vi.map((text, k) => decodeInteger(text, `${what} vi[${k}]`)),
    custodians,
    threshold: json.threshold as number,
    delta: factorial(custodians),
  };
  verificationContext(key);
  return key;
}

/**
 * The JSON form of a custodian's share: `{ version: 1, index, si, verification }`, the verification key in its own
 * JSON form so the file is self-contained. It holds a secret share: store it like a private key.
 * @throws PaillierError on an inconsistent share
 */
export function custodianShareToJson(share: CustodianShare): CustodianShareJson {
  shareContext(share);
  return { version: 1, index: share.index, si: encodeInteger(share.si), verification: thresholdVerificationToJson(share.verification) };
}

/**
 * Parses a share written by {@link custodianShareToJson}: exact shape, version 1, the verification key as in
 * {@link thresholdVerificationFromJson}, 1 ≤ index ≤ custodians, and that the share matches its verification value,
 * v^(2Δ·s_i) = v_i² mod n² (one exponentiation, whose prepared context later partial decryptions reuse).
 * @param options.minBits as in {@link thresholdVerificationFromJson}
 * @throws PaillierError naming what is wrong
 */
export function custodianShareFromJson(json: unknown, options: { minBits?: number } = {}): CustodianShare {
  const what = 'custodian share';
  assertFields(json, ['version', 'index', 'si', 'verification'], what);
  if (json.version !== 1) throw new PaillierError(`${what}: unsupported version (expected 1)`);
  const verification = thresholdVerificationFromJson(json.verification, options);
  const index = decodeIndex(json.index, verification.custodians, `${what} index`);
  const share: CustodianShare = { index, si: decodeInteger(json.si, `${what} si`), verification };
  const { ctx, power } = shareContext(share);
  const vi = ctx.vi[index - 1]!;
  if (power(ctx.v) !== (vi * vi) % ctx.n2) throw new PaillierError(`${what}: si does not match the verification value of custodian ${index}`);
  return share;
}

/**
 * The JSON form of a partial decryption: `{ index, ci, proof: { e, z } }`, e as 16 bytes, the others minimal.
 * @throws PaillierError on values that no partial decryption has (checked against no key: ranges only)
 */
export function partialDecryptionToJson(partial: PartialDecryption): PartialDecryptionJson {
  const { index, ci, proof } = partial;
  if (!Number.isInteger(index) || index < 1 || typeof ci !== 'bigint' || ci < 1n) throw new PaillierError('partial decryption: index or ci out of range');
  if (typeof proof?.e !== 'bigint' || proof.e < 0n || bitLength(proof.e) > CHALLENGE_BITS || typeof proof.z !== 'bigint' || proof.z < 1n) {
    throw new PaillierError('partial decryption: proof out of range');
  }
  return { index, ci: encodeInteger(ci), proof: { e: encodeChallenge(proof.e), z: encodeInteger(proof.z) } };
}

/**
 * Parses a partial decryption written by {@link partialDecryptionToJson} for a given verification key: exact shape,
 * canonical base64url, 1 ≤ index ≤ l, 0 < c_i < n², and z no longer than an honest response. The proof itself is
 * checked by {@link verifyPartialDecryption}.
 * @throws PaillierError naming what is wrong
 */
export function partialDecryptionFromJson(verification: ThresholdVerificationKey, json: unknown): PartialDecryption {
  const ctx = verificationContext(verification);
  const what = 'partial decryption';
  assertFields(json, ['index', 'ci', 'proof'], what);
  const index = decodeIndex(json.index, ctx.custodians, `${what} index`);
  const ci = decodeInteger(json.ci, `${what} ci`);
  if (ci >= ctx.n2) throw new PaillierError(`${what} ci must be below n²`);
  const { proof } = json;
  assertFields(proof, ['e', 'z'], `${what} proof`);
  const e = decodeChallenge(proof.e, `${what} proof e`);
  const z = decodeInteger(proof.z, `${what} proof z`);
  if (bitLength(z) > ctx.nonceBits + 1) throw new PaillierError(`${what} proof z is longer than an honest response`);
  return { index, ci, proof: { e, z } };
}

/**
 * The JSON form of a proof of plaintext knowledge: `{ e, w, u }`, e as 16 bytes, w and u minimal.
 * @throws PaillierError on values that no proof has (checked against no key: ranges only)
 */
export function plaintextProofToJson(proof: PlaintextKnowledgeProof): PlaintextKnowledgeProofJson {
  const { e, w, u } = proof;
  if (typeof e !== 'bigint' || e < 0n || bitLength(e) > CHALLENGE_BITS || typeof w !== 'bigint' || w < 1n || typeof u !== 'bigint' || u < 1n) {
    throw new PaillierError('plaintext proof: e, w or u out of range');
  }
  return { e: encodeChallenge(e), w: encodeInteger(w), u: encodeInteger(u) };
}

/**
 * Parses a proof written by {@link plaintextProofToJson}: exact shape and canonical base64url. The ranges that
 * depend on the key, and the proof itself, are checked by {@link verifyPlaintextKnowledge}.
 * @throws PaillierError naming what is wrong
 */
export function plaintextProofFromJson(json: unknown): PlaintextKnowledgeProof {
  const what = 'plaintext proof';
  assertFields(json, ['e', 'w', 'u'], what);
  return { e: decodeChallenge(json.e, `${what} e`), w: decodeInteger(json.w, `${what} w`), u: decodeInteger(json.u, `${what} u`) };
}
