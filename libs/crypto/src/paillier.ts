import { checkPrimeSync, generatePrime } from 'node:crypto';
import { gcd, modInv } from 'bigint-crypto-utils';
import { PrivateKey, PublicKey } from 'paillier-bigint';
import { fromBase64Url, toBase64Url } from './encoding';
import { bigIntToBuffer, bitLength, bufferToBigInt, prepareModPow, type PreparedModPow } from './modpow';
import { secureRandom, type RandomSource } from './random';

/**
 * Paillier's cryptosystem (P. Paillier, "Public-Key Cryptosystems Based on Composite Degree Residuosity Classes",
 * EUROCRYPT 1999) in its simple variant g = n + 1, with paillier-bigint's `PublicKey` and `PrivateKey` as the key
 * types, and the hot paths native: key generation through OpenSSL's prime generator, r^n and decryption through
 * OpenSSL's Montgomery exponentiation ({@link prepareModPow}), decryption by the Chinese remainder theorem (§7).
 * Every fast path returns exactly what paillier-bigint returns for the same inputs (paillier.spec.ts checks it).
 *
 * Encryption: c = g^m · r^n mod n² = (1 + m·n) · r^n mod n², m ∈ [0, n), r ∈ Z*_n. The r^n factor does not depend
 * on m, so participants precompute it while idle ({@link RnPool}) and encryption online is two multiplications.
 */
export { PublicKey as PaillierPublicKey, PrivateKey as PaillierPrivateKey } from 'paillier-bigint';

/** A Paillier key pair with paillier-bigint's classes. */
export interface PaillierKeyPair {
  readonly publicKey: PublicKey;
  readonly privateKey: PrivateKey;
}

/** The JSON form of a public key: n as base64url of its minimal big-endian bytes (RFC 4648 §5, no padding). */
export interface PaillierPublicKeyJson {
  readonly n: string;
}

/** The JSON form of a private key: n and its prime factors p and q, each as in {@link PaillierPublicKeyJson}. */
export interface PaillierPrivateKeyJson {
  readonly version: 1;
  readonly n: string;
  readonly p: string;
  readonly q: string;
}

/** Thrown for an invalid Paillier key, ciphertext, plaintext or encoding; the message names what is wrong. */
export class PaillierError extends Error {
  override readonly name = 'PaillierError';
}

/** Default modulus size, DESIGN.md "Protocol paillier" (3072 bits, about 128-bit security). */
export const PAILLIER_DEFAULT_BITS = 3072;
/** Smallest modulus {@link generatePaillierKeyPair} makes: below this a key is only good for tests. */
export const PAILLIER_MIN_GENERATE_BITS = 512;
/** Largest modulus accepted anywhere: bounds the work a hostile public key can cause (n² within OpenSSL's 10,000-bit DH limit). */
export const PAILLIER_MAX_BITS = 4096;

// ---------------------------------------------------------------------------------------------------------------
// Per-key contexts. The native exponentiation contexts cost about two exponentiations to build (OpenSSL's DH_check),
// so they are built once per key and kept: public ones per key object and for the last 16 moduli by value, private
// ones (which hold secret exponents) per key object only, dropped with it.

interface PublicContext {
  readonly n: bigint;
  readonly n2: bigint;
  /** r ↦ r^n mod n². */
  readonly powN: PreparedModPow;
  /** Bytes of a fixed-width ciphertext encoding. */
  readonly ciphertextBytes: number;
}

const publicContexts = new WeakMap<PublicKey, PublicContext>();
/** Contexts of recently used moduli, by value, so a key parsed again from JSON does not rebuild them (n is public). */
const recentModuli = new Map<bigint, PublicContext>();
const RECENT_MODULI = 16;

function publicContext(publicKey: PublicKey): PublicContext {
  let ctx = publicContexts.get(publicKey);
  if (ctx) return ctx;
  if (typeof publicKey !== 'object' || publicKey === null) throw new PaillierError('public key must be a paillier-bigint PublicKey');
  const { n, g } = publicKey;
  if (typeof n !== 'bigint' || typeof g !== 'bigint') throw new PaillierError('public key: n and g must be bigints');
  if (n < 3n || bitLength(n) > PAILLIER_MAX_BITS) throw new PaillierError(`public key: n must have 2 to ${PAILLIER_MAX_BITS} bits`);
  if (g !== n + 1n) throw new PaillierError('public key: g ≠ n + 1 (only the simple variant is supported)');
  ctx = recentModuli.get(n);
  if (ctx) {
    recentModuli.delete(n);
  } else {
    // n² computed here, not read from the key's _n2: an object from elsewhere could carry an inconsistent one.
    const n2 = n * n;
    ctx = { n, n2, powN: prepareModPow(n, n2), ciphertextBytes: Math.ceil(bitLength(n2) / 8) };
    if (recentModuli.size >= RECENT_MODULI) recentModuli.delete(recentModuli.keys().next().value!);
  }
  recentModuli.set(n, ctx);
  publicContexts.set(publicKey, ctx);
  return ctx;
}

/** Decryption by CRT (Paillier §7), for private keys that know p and q. */
interface CrtContext {
  readonly kind: 'crt';
  readonly pub: PublicContext;
  readonly p: bigint;
  readonly q: bigint;
  readonly p2: bigint;
  readonly q2: bigint;
  /** x ↦ x^(p−1) mod p², and the same for q. */
  readonly powP: PreparedModPow;
  readonly powQ: PreparedModPow;
  /** h_p = L_p(g^(p−1) mod p²)^(−1) mod p, and the same for q. */
  readonly hp: bigint;
  readonly hq: bigint;
  /** q^(−1) mod p, for the recombination. */
  readonly qInvP: bigint;
  /** x ↦ x^(n^(−1) mod (p−1)) mod p, and the same for q: the n-th roots that recover r. */
  readonly rootP: PreparedModPow;
  readonly rootQ: PreparedModPow;
}

/** Decryption as paillier-bigint does it without p and q: m = L(c^λ mod n²) · μ mod n. */
interface LambdaContext {
  readonly kind: 'lambda';
  readonly pub: PublicContext;
  readonly powLambda: PreparedModPow;
  readonly mu: bigint;
}

type PrivateContext = CrtContext | LambdaContext;

const privateContexts = new WeakMap<PrivateKey, PrivateContext>();

function privateContext(privateKey: PrivateKey): PrivateContext {
  let ctx = privateContexts.get(privateKey);
  if (ctx) return ctx;
  if (typeof privateKey !== 'object' || privateKey === null) throw new PaillierError('private key must be a paillier-bigint PrivateKey');
  const pub = publicContext(privateKey.publicKey);
  const { n } = pub;
  // paillier-bigint keeps p and q in fields that are private to TypeScript only.
  const { _p: p, _q: q } = privateKey as unknown as { _p?: unknown; _q?: unknown };
  if (typeof p === 'bigint' && typeof q === 'bigint') {
    if (p * q !== n || p < 2n || q < 2n || p === q) throw new PaillierError('private key: p and q are not two distinct factors of n');
    if (gcd(n, (p - 1n) * (q - 1n)) !== 1n) throw new PaillierError('private key: gcd(n, φ(n)) ≠ 1');
    const [p2, q2] = [p * p, q * q];
    ctx = {
      kind: 'crt',
      pub,
      p,
      q,
      p2,
      q2,
      powP: prepareModPow(p - 1n, p2),
      powQ: prepareModPow(q - 1n, q2),
      // g^(p−1) mod p² = (1 + n)^(p−1) mod p² = 1 + (p−1)·n mod p², by the binomial theorem (n² ≡ 0 mod p²).
      hp: modInv(lFunction((1n + (p - 1n) * n) % p2, p), p),
      hq: modInv(lFunction((1n + (q - 1n) * n) % q2, q), q),
      qInvP: modInv(q, p),
      rootP: prepareModPow(modInv(n % (p - 1n), p - 1n), p),
      rootQ: prepareModPow(modInv(n % (q - 1n), q - 1n), q),
    };
  } else {
    const { lambda, mu } = privateKey;
    if (typeof lambda !== 'bigint' || typeof mu !== 'bigint' || lambda < 1n) throw new PaillierError('private key: λ and μ must be bigints');
    ctx = { kind: 'lambda', pub, powLambda: prepareModPow(lambda, pub.n2), mu };
  }
  privateContexts.set(privateKey, ctx);
  return ctx;
}

/** Paillier's L function, L(x) = (x − 1) / d, for x ≡ 1 mod d. */
function lFunction(x: bigint, d: bigint): bigint {
  return (x - 1n) / d;
}

/** The x ∈ [0, pq) with x ≡ xp mod p and x ≡ xq mod q (Garner's recombination). */
function crt(ctx: CrtContext, xp: bigint, xq: bigint): bigint {
  let h = ((xp - xq) * ctx.qInvP) % ctx.p;
  if (h < 0n) h += ctx.p;
  return xq + ctx.q * h;
}

// ---------------------------------------------------------------------------------------------------------------
// Keys

function randomPrime(bits: number): Promise<bigint> {
  // OpenSSL's generator on the libuv thread pool, off the main thread. It sets the top two bits, so the
  // product of two such primes has exactly twice their bits (checked anyway by the caller).
  return new Promise((resolve, reject) => generatePrime(bits, { bigint: true }, (err, prime) => (err ? reject(err) : resolve(prime))));
}

function keyPairFromPrimes(p: bigint, q: bigint): PaillierKeyPair {
  const n = p * q;
  const phi = (p - 1n) * (q - 1n);
  if (p === q) throw new PaillierError('private key: p = q');
  if (gcd(n, phi) !== 1n) throw new PaillierError('private key: gcd(n, φ(n)) ≠ 1');
  const publicKey = new PublicKey(n, n + 1n);
  // paillier-bigint's simple variant: λ = φ(n), μ = φ(n)^(−1) mod n, so its own decrypt works with this key too.
  return { publicKey, privateKey: new PrivateKey(phi, modInv(phi, n), publicKey, p, q) };
}

/**
 * Generates a Paillier key pair (Paillier §3, simple variant g = n + 1, λ = φ(n), μ = φ(n)^(−1) mod n): two
 * distinct primes of bits/2 bits each from OpenSSL's generator, generated in parallel off the main thread, with n
 * exactly `bits` bits and gcd(n, φ(n)) = 1. The private key carries p and q, so both {@link decryptFast} (CRT) and
 * paillier-bigint's own `decrypt` work with it.
 * @param bits modulus size, even, from 512 (tests only) to 4096; 3072 by default (DESIGN.md "Protocol paillier")
 * @throws RangeError on another size
 */
export async function generatePaillierKeyPair(bits = PAILLIER_DEFAULT_BITS): Promise<PaillierKeyPair> {
  if (!Number.isInteger(bits) || bits % 2 !== 0 || bits < PAILLIER_MIN_GENERATE_BITS || bits > PAILLIER_MAX_BITS) {
    throw new RangeError(`Paillier modulus size must be an even number of bits from ${PAILLIER_MIN_GENERATE_BITS} to ${PAILLIER_MAX_BITS}, got ${bits}`);
  }
  for (;;) {
    const [p, q] = await Promise.all([randomPrime(bits / 2), randomPrime(bits / 2)]);
    // Equal-size primes make gcd(n, φ(n)) = 1 automatically (neither divides the other's p − 1); keyPairFromPrimes checks.
    if (p !== q && bitLength(p * q) === bits) return keyPairFromPrimes(p, q);
  }
}

let smallPrimeProduct: bigint | undefined;

/** The product of all primes below 2^16, built once (about 94,000 bits) by a product tree. */
function primesBelow65536Product(): bigint {
  if (smallPrimeProduct !== undefined) return smallPrimeProduct;
  const limit = 1 << 16;
  const composite = new Uint8Array(limit);
  let level: bigint[] = [];
  for (let i = 2; i < limit; i++) {
    if (composite[i]) continue;
    level.push(BigInt(i));
    for (let j = i * i; j < limit; j += i) composite[j] = 1;
  }
  while (level.length > 1) {
    const next: bigint[] = [];
    for (let i = 0; i < level.length; i += 2) next.push(i + 1 < level.length ? level[i]! * level[i + 1]! : level[i]!);
    level = next;
  }
  return (smallPrimeProduct = level[0]!);
}

/** ⌊x^(1/k)⌋ for x ≥ 1, k ≥ 2, by Newton's method from above (it decreases until it reaches the root). */
function integerRoot(x: bigint, k: bigint): bigint {
  let r = 1n << BigInt(Math.ceil(bitLength(x) / Number(k)));
  for (;;) {
    const next = ((k - 1n) * r + x / r ** (k - 1n)) / k;
    if (next >= r) return r;
    r = next;
  }
}

function isPrimeNumber(k: number): boolean {
  for (let d = 2; d * d <= k; d++) if (k % d === 0) return false;
  return k >= 2;
}

/**
 * Checks a public key received from someone else before encrypting anything under it. A key someone else can
 * factor would let the coordinator decrypt individual contributions (DESIGN.md "Trust model"), so this rejects
 * moduli that are trivially factored: undersized, even, with a prime factor below 2^16 (one gcd with the product of
 * all such primes), a perfect power (perfect square included), or prime (then φ(n) = n − 1 is public). It does not
 * prove that n is a product of two large primes; that needs a zero-knowledge proof from the key holder.
 * @param options.minBits smallest modulus accepted, 2048 by default (NIST SP 800-57 §5.6.1: 112-bit security)
 * @throws PaillierError naming the first check that fails
 */
export function assertValidPublicKey(publicKey: PublicKey, { minBits = 2048 }: { minBits?: number } = {}): void {
  if (typeof publicKey !== 'object' || publicKey === null) throw new PaillierError('public key must be a paillier-bigint PublicKey');
  const { n, g } = publicKey;
  if (typeof n !== 'bigint' || typeof g !== 'bigint') throw new PaillierError('public key: n and g must be bigints');
  const bits = bitLength(n);
  if (bits < minBits) throw new PaillierError(`public key: n has ${bits} bits, fewer than the ${minBits} required`);
  if (bits > PAILLIER_MAX_BITS) throw new PaillierError(`public key: n has ${bits} bits, more than the ${PAILLIER_MAX_BITS} supported`);
  if ((n & 1n) === 0n) throw new PaillierError('public key: n is even');
  if (g !== n + 1n) throw new PaillierError('public key: g ≠ n + 1');
  if (gcd(primesBelow65536Product() % n, n) !== 1n) throw new PaillierError('public key: n has a prime factor below 2^16');
  // With no factor below 2^16, n = a^k needs a ≥ 2^16, so k ≤ bits/16; it suffices to try prime k.
  for (let k = 2; k <= bits / 16; k++) {
    if (!isPrimeNumber(k)) continue;
    const K = BigInt(k);
    if (integerRoot(n, K) ** K === n) throw new PaillierError(k === 2 ? 'public key: n is a perfect square' : `public key: n is a perfect power (n = a^${k})`);
  }
  if (checkPrimeSync(n)) throw new PaillierError('public key: n is prime');
}

// ---------------------------------------------------------------------------------------------------------------
// Encryption

/**
 * r drawn uniformly from Z*_n: rejection sampling of bitLength(n)-bit integers, so no modulo bias.
 * @param rng byte source; the CSPRNG unless a test injects one
 * @throws PaillierError on a public key with g ≠ n + 1
 */
export function sampleRandomness(publicKey: PublicKey, rng: RandomSource = secureRandom): bigint {
  return sample(publicContext(publicKey), rng);
}

function sample({ n }: PublicContext, rng: RandomSource): bigint {
  const bits = bitLength(n);
  const bytes = Math.ceil(bits / 8);
  const mask = (1n << BigInt(bits)) - 1n;
  for (;;) {
    const raw = rng(bytes);
    if (raw.length !== bytes) throw new RangeError('random source returned the wrong number of bytes');
    const r = bufferToBigInt(raw) & mask;
    if (r > 0n && r < n && gcd(r, n) === 1n) return r;
  }
}

/**
 * r^n mod n², the part of a Paillier ciphertext that does not depend on the message (Paillier §3), natively.
 * @param r in [1, n) and coprime to n
 * @throws PaillierError when r is out of range or not a unit, or the key has g ≠ n + 1
 */
export function randomnessPower(publicKey: PublicKey, r: bigint): bigint {
  const ctx = publicContext(publicKey);
  if (typeof r !== 'bigint' || r < 1n || r >= ctx.n || gcd(r, ctx.n) !== 1n) throw new PaillierError('randomness r must be in [1, n) and coprime to n');
  return ctx.powN(r);
}

function encryptWith({ n, n2 }: PublicContext, m: bigint, rn: bigint): bigint {
  // (1 + m·n)·rn mod n² = rn + n·(m·rn mod n) mod n²: two multiplications of half the size, about 1.7× faster
  // than the product and reduction at full size; the sum is below 2n², so one subtraction reduces it.
  const c = rn + n * ((m * (rn % n)) % n);
  return c >= n2 ? c - n2 : c;
}

/**
 * Paillier encryption with g = n + 1 (Paillier §3): c = (1 + m·n) · r^n mod n², equal bit for bit to
 * paillier-bigint's `publicKey.encrypt(m, r)`. With `rn` (from {@link RnPool} or {@link randomnessPower}) this is
 * the online part only, two multiplications; without it, r is drawn from the CSPRNG and r^n computed natively.
 * @param m plaintext in [0, n)
 * @param rn r^n mod n² for a fresh r ∈ Z*_n, used once; its range is checked, not that it is an n-th power
 * @throws PaillierError when m or rn is out of range, or the key has g ≠ n + 1
 */
export function encryptFast(publicKey: PublicKey, m: bigint, rn?: bigint): bigint {
  const ctx = publicContext(publicKey);
  if (typeof m !== 'bigint' || m < 0n || m >= ctx.n) throw new PaillierError('plaintext must be an integer in [0, n)');
  if (rn === undefined) rn = ctx.powN(sample(ctx, secureRandom));
  else if (typeof rn !== 'bigint' || rn <= 0n || rn >= ctx.n2) throw new PaillierError('r^n must be in (0, n²)');
  return encryptWith(ctx, m, rn);
}

function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * A pool of precomputed r^n mod n² values for one public key (DESIGN.md "Protocol paillier": workers precompute
 * r^n while idle), so that encrypting online is {@link encryptFast} with a pooled value: two multiplications.
 * Each value is handed out once and r itself is not kept. Pooled values are as sensitive as the plaintexts they
 * will hide (c / r^n reveals m): they live in memory only.
 */
export class RnPool {
  readonly #ctx: PublicContext;
  readonly #rng: RandomSource;
  readonly #values: bigint[] = [];

  /**
   * @param publicKey the key the values are for (g = n + 1)
   * @param options.rng byte source for r; the CSPRNG unless a test injects one
   * @throws PaillierError on a public key with g ≠ n + 1
   */
  constructor(
    readonly publicKey: PublicKey,
    { rng = secureRandom }: { rng?: RandomSource } = {},
  ) {
    this.#ctx = publicContext(publicKey);
    this.#rng = rng;
  }

  /** Number of values ready. */
  get size(): number {
    return this.#values.length;
  }

  /**
   * Adds up to `count` values, one exponentiation per event-loop turn (setImmediate between them, so timers such
   * as a BullMQ worker's lock renewal keep running: each turn blocks for one r^n, about 30 ms at 3072 bits).
   * @param options.signal stops filling early when aborted; the values made so far stay in the pool
   * @returns how many values were added
   * @throws RangeError on a count that is not a non-negative integer
   */
  async fill(count: number, { signal }: { signal?: AbortSignal } = {}): Promise<number> {
    if (!Number.isSafeInteger(count) || count < 0) throw new RangeError(`count must be a non-negative integer, got ${count}`);
    let added = 0;
    while (added < count && !signal?.aborted) {
      this.#values.push(this.#compute());
      added++;
      await yieldToEventLoop();
    }
    return added;
  }

  /** A fresh r^n mod n², from the pool when it has one, otherwise computed now (natively). Never returns a value twice. */
  take(): bigint {
    return this.#values.pop() ?? this.#compute();
  }

  /** Drops every pooled value, e.g. when the key's query is over. */
  clear(): void {
    this.#values.length = 0;
  }

  #compute(): bigint {
    return this.#ctx.powN(sample(this.#ctx, this.#rng));
  }
}

/**
 * Homomorphic addition (Paillier §3, "homomorphic properties"): the product of ciphertexts mod n² encrypts the sum
 * of their plaintexts mod n. Equal to paillier-bigint's `publicKey.addition(...)`. Checks ranges only: ciphertexts
 * received from others go through {@link assertValidCiphertext} first, which also checks they are units.
 * @throws PaillierError on an empty list, a ciphertext outside (0, n²), or a key with g ≠ n + 1
 */
export function addCiphertexts(publicKey: PublicKey, ciphertexts: readonly bigint[]): bigint {
  const { n2 } = publicContext(publicKey);
  if (ciphertexts.length === 0) throw new PaillierError('no ciphertexts to add');
  let acc = 1n;
  for (const [i, c] of ciphertexts.entries()) {
    if (typeof c !== 'bigint' || c <= 0n || c >= n2) throw new PaillierError(`ciphertext ${i} is outside (0, n²)`);
    acc = (acc * c) % n2;
  }
  return acc;
}

/**
 * Checks that c is a Paillier ciphertext under the key: 0 < c < n² and gcd(c, n) = 1, i.e. c is a unit mod n²
 * (Paillier §3: encryption maps Z_n × Z*_n onto Z*_{n²}). A non-unit would poison a homomorphic sum.
 * @throws PaillierError naming the failed check
 */
export function assertValidCiphertext(publicKey: PublicKey, c: bigint): void {
  const { n, n2 } = publicContext(publicKey);
  if (typeof c !== 'bigint') throw new PaillierError('ciphertext must be a bigint');
  if (c <= 0n || c >= n2) throw new PaillierError('ciphertext is outside (0, n²)');
  if (gcd(c % n, n) !== 1n) throw new PaillierError('ciphertext is not a unit mod n² (it shares a factor with n)');
}

// ---------------------------------------------------------------------------------------------------------------
// Decryption and verifiable decryption

function checkCiphertextFor(ctx: PrivateContext, c: bigint): void {
  const { n, n2 } = ctx.pub;
  if (typeof c !== 'bigint') throw new PaillierError('ciphertext must be a bigint');
  if (c <= 0n || c >= n2) throw new PaillierError('ciphertext is outside (0, n²)');
  const unit = ctx.kind === 'crt' ? c % ctx.p !== 0n && c % ctx.q !== 0n : gcd(c % n, n) === 1n;
  if (!unit) throw new PaillierError('ciphertext is not a unit mod n² (it shares a factor with n)');
}

/**
 * Paillier decryption by the Chinese remainder theorem (Paillier §7): m_p = L_p(c^(p−1) mod p²)·h_p mod p, the same
 * mod q, recombined; each exponentiation native and constant-time in OpenSSL. Equal to paillier-bigint's
 * `privateKey.decrypt(c)` for every valid ciphertext. A private key without p and q decrypts as paillier-bigint
 * does, L(c^λ mod n²)·μ mod n, still natively.
 * @param c a ciphertext under privateKey.publicKey
 * @returns m ∈ [0, n)
 * @throws PaillierError when c is not a unit in (0, n²), or the key is inconsistent
 */
export function decryptFast(privateKey: PrivateKey, c: bigint): bigint {
  const ctx = privateContext(privateKey);
  checkCiphertextFor(ctx, c);
  if (ctx.kind === 'lambda') return (lFunction(ctx.powLambda(c), ctx.pub.n) * ctx.mu) % ctx.pub.n;
  const mp = (lFunction(ctx.powP(c % ctx.p2), ctx.p) * ctx.hp) % ctx.p;
  const mq = (lFunction(ctx.powQ(c % ctx.q2), ctx.q) * ctx.hq) % ctx.q;
  return crt(ctx, mp, mq);
}

/**
 * The randomness of a ciphertext: the r ∈ Z*_n with c = (1 + n)^m · r^n mod n². Since c ≡ r^n mod n,
 * r = (c mod n)^(n^(−1) mod φ(n)) mod n, computed mod p and mod q natively and recombined. Equal to
 * paillier-bigint's `privateKey.getRandomFactor(c)`. The key holder publishes (m, r) so that anyone can check the
 * decryption with {@link verifyDecryption} (DESIGN.md "Protocol paillier").
 * @throws PaillierError when c is not a unit in (0, n²), or the key lacks p and q
 */
export function recoverRandomness(privateKey: PrivateKey, c: bigint): bigint {
  const ctx = privateContext(privateKey);
  if (ctx.kind !== 'crt') throw new PaillierError('recovering r needs a private key that knows p and q');
  checkCiphertextFor(ctx, c);
  return crt(ctx, ctx.rootP(c % ctx.p), ctx.rootQ(c % ctx.q));
}

/**
 * Checks a published decryption (DESIGN.md "Protocol paillier"): 0 ≤ m < n, 1 ≤ r < n, gcd(r, n) = 1, and
 * c = (1 + m·n) · r^n mod n². r must be a unit: with r sharing the factor p with n, both sides vanish mod p² and any
 * m' ≡ m mod q would pass. Public values only, so the comparison need not be constant-time.
 * @returns false for any claim that does not check out, including non-bigint values
 * @throws PaillierError only for a public key with g ≠ n + 1
 */
export function verifyDecryption(publicKey: PublicKey, c: bigint, m: bigint, r: bigint): boolean {
  const ctx = publicContext(publicKey);
  if (typeof c !== 'bigint' || typeof m !== 'bigint' || typeof r !== 'bigint') return false;
  if (m < 0n || m >= ctx.n || r < 1n || r >= ctx.n || c <= 0n || c >= ctx.n2) return false;
  if (gcd(r, ctx.n) !== 1n) return false;
  return encryptWith(ctx, m, ctx.powN(r)) === c;
}

// ---------------------------------------------------------------------------------------------------------------
// Serialization: integers as base64url (RFC 4648 §5) of their minimal big-endian bytes, the byte encoding Confide
// uses at every boundary; one encoding per value, so keys hash and sign consistently.

/** A non-negative integer as base64url of its minimal big-endian bytes, the form of every integer in Paillier JSON. */
export function encodeInteger(x: bigint): string {
  return toBase64Url(bigIntToBuffer(x));
}

/**
 * Parses an integer written by {@link encodeInteger}: canonical base64url of non-empty minimal big-endian bytes, so
 * each integer has one text. 0 (written "AA") is refused: no value encoded this way may be 0.
 * @param what names the value in the error message
 * @throws PaillierError on a non-string, non-canonical base64url, or a leading zero byte
 */
export function decodeInteger(text: unknown, what: string): bigint {
  if (typeof text !== 'string') throw new PaillierError(`${what} must be a base64url string`);
  let bytes: Uint8Array;
  try {
    bytes = fromBase64Url(text, undefined, what);
  } catch (err) {
    throw new PaillierError(`${what} is not canonical base64url`, { cause: err });
  }
  if (bytes.length === 0 || bytes[0] === 0) throw new PaillierError(`${what} must be minimal big-endian bytes (non-empty, no leading zero byte)`);
  return bufferToBigInt(bytes);
}

function assertShape(json: unknown, keys: readonly string[], what: string): asserts json is Record<string, unknown> {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new PaillierError(`${what} must be an object`);
  const extra = Object.keys(json).filter((k) => !keys.includes(k));
  if (extra.length) throw new PaillierError(`${what} has unexpected fields: ${extra.join(', ')}`);
}

/** The JSON form of a public key, `{ n }` with n as base64url of its minimal big-endian bytes. */
export function publicKeyToJson(publicKey: PublicKey): PaillierPublicKeyJson {
  return { n: encodeInteger(publicContext(publicKey).n) };
}

/**
 * Parses and validates a public key received from someone else: the shape `{ n }`, canonical base64url, then
 * {@link assertValidPublicKey}. g is n + 1 by construction.
 * @param options.minBits as in {@link assertValidPublicKey} (2048 by default)
 * @throws PaillierError naming what is wrong
 */
export function publicKeyFromJson(json: unknown, options: { minBits?: number } = {}): PublicKey {
  assertShape(json, ['n'], 'public key');
  const n = decodeInteger(json.n, 'public key n');
  const publicKey = new PublicKey(n, n + 1n);
  assertValidPublicKey(publicKey, options);
  return publicKey;
}

/**
 * The JSON form of a private key, `{ version: 1, n, p, q }` (base64url integers). λ and μ are recomputed on load.
 * It holds the factorization: store it like any private key, never in a log or on the coordinator.
 * @throws PaillierError for a private key that does not know p and q
 */
export function privateKeyToJson(privateKey: PrivateKey): PaillierPrivateKeyJson {
  const ctx = privateContext(privateKey);
  if (ctx.kind !== 'crt') throw new PaillierError('only a private key that knows p and q can be serialized');
  return { version: 1, n: encodeInteger(ctx.pub.n), p: encodeInteger(ctx.p), q: encodeInteger(ctx.q) };
}

/**
 * Parses a private key written by {@link privateKeyToJson}: checks the shape and version, that p·q = n with p ≠ q and
 * gcd(n, φ(n)) = 1, and the public part with {@link assertValidPublicKey}; recomputes λ = φ(n) and μ = λ^(−1) mod n.
 * @param options.minBits as in {@link assertValidPublicKey} (2048 by default)
 * @throws PaillierError naming what is wrong
 */
export function privateKeyFromJson(json: unknown, options: { minBits?: number } = {}): PaillierKeyPair {
  assertShape(json, ['version', 'n', 'p', 'q'], 'private key');
  if (json.version !== 1) throw new PaillierError('private key: unsupported version (expected 1)');
  const n = decodeInteger(json.n, 'private key n');
  const p = decodeInteger(json.p, 'private key p');
  const q = decodeInteger(json.q, 'private key q');
  if (p * q !== n) throw new PaillierError('private key: p·q ≠ n');
  if (p < 2n || q < 2n) throw new PaillierError('private key: p and q must be greater than 1');
  const keys = keyPairFromPrimes(p, q);
  assertValidPublicKey(keys.publicKey, options);
  return keys;
}

/** A ciphertext as base64url of its fixed-width big-endian bytes (the byte length of n²), so every ciphertext under a key has the same length. */
export function ciphertextToString(publicKey: PublicKey, c: bigint): string {
  const { n2, ciphertextBytes } = publicContext(publicKey);
  if (typeof c !== 'bigint' || c <= 0n || c >= n2) throw new PaillierError('ciphertext is outside (0, n²)');
  return toBase64Url(Buffer.from(c.toString(16).padStart(ciphertextBytes * 2, '0'), 'hex'));
}

/**
 * Parses a ciphertext written by {@link ciphertextToString} and checks it with {@link assertValidCiphertext}.
 * @throws PaillierError on another encoding or length, or an invalid ciphertext
 */
export function ciphertextFromString(publicKey: PublicKey, text: string): bigint {
  const { ciphertextBytes } = publicContext(publicKey);
  let bytes: Uint8Array;
  try {
    bytes = fromBase64Url(text, ciphertextBytes, 'ciphertext');
  } catch (err) {
    throw new PaillierError(`ciphertext must be canonical base64url of ${ciphertextBytes} bytes`, { cause: err });
  }
  const c = bufferToBigInt(bytes);
  assertValidCiphertext(publicKey, c);
  return c;
}
