import { createDiffieHellman, type DiffieHellman } from 'node:crypto';
import { modPow as bigintModPow } from 'bigint-crypto-utils';

/**
 * Native modular exponentiation through node:crypto's Diffie–Hellman object, i.e. OpenSSL's Montgomery
 * `BN_mod_exp_mont_consttime`, about 6–8× faster than bigint arithmetic at Paillier sizes (bench/paillier.bench.ts).
 *
 * The trick: a DH object whose "prime" is the modulus and whose private key is the exponent computes
 * `computeSecret(base)` = base^exponent mod modulus. OpenSSL accepts odd composite moduli (`verifyError` only
 * reports "not prime", a warning we ignore), but has quirks that this module works around and that the tests pin:
 * - moduli under 512 bits yield a buffer of zeros instead of an error, over 10,000 bits it throws, and even moduli
 *   are refused, so those go to the bigint fallback;
 * - bases 0, 1 and modulus − 1 are refused as weak public keys, exponent 0 as an invalid private key, and a result
 *   of 0 comes back as an error, so those are answered here (the first are trivial, the last is recomputed);
 * - a base ≥ modulus − 1 is refused, so bases are reduced first;
 * - building the object runs `DH_check`, a Miller–Rabin round on the modulus that costs about two exponentiations,
 *   so a prepared exponentiation builds it once, lazily, and callers keep it per key.
 * Exponents are marked constant-time by OpenSSL's DH code, which suits the secret exponents of decryption; the
 * bigint reduction and recombination around it are not constant-time.
 */

/** Smallest and largest modulus (in bits) for which OpenSSL's DH computes correctly; outside, bigint arithmetic. */
export const NATIVE_MODULUS_BITS = { min: 512, max: 10_000 } as const;

/** base ↦ base^e mod m for an exponent and modulus fixed when it was made by {@link prepareModPow}. */
export type PreparedModPow = (base: bigint) => bigint;

/** Number of bits of a non-negative bigint (0 for 0). */
export function bitLength(x: bigint): number {
  if (x === 0n) return 0;
  const hex = x.toString(16);
  return (hex.length - 1) * 4 + parseInt(hex[0]!, 16).toString(2).length;
}

/** Minimal big-endian bytes of a non-negative bigint (one zero byte for 0). */
export function bigIntToBuffer(x: bigint): Buffer {
  const hex = x.toString(16);
  return Buffer.from(hex.length % 2 ? `0${hex}` : hex, 'hex');
}

/** Big-endian unsigned integer from bytes; leading zero bytes are ignored. */
export function bufferToBigInt(bytes: Uint8Array): bigint {
  return bytes.length === 0 ? 0n : BigInt(`0x${Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex')}`);
}

function checkArguments(exp: bigint, mod: bigint): void {
  if (typeof exp !== 'bigint' || typeof mod !== 'bigint') throw new TypeError('exponent and modulus must be bigints');
  if (mod <= 0n) throw new RangeError('modulus must be positive');
  if (exp < 0n) throw new RangeError('exponent must be non-negative');
}

/** True when OpenSSL's DH code computes x^e mod `mod` correctly (see the module comment). */
export function isNativeModulus(mod: bigint): boolean {
  const bits = bitLength(mod);
  return (mod & 1n) === 1n && bits >= NATIVE_MODULUS_BITS.min && bits <= NATIVE_MODULUS_BITS.max;
}

/**
 * Prepares x ↦ x^exp mod mod with a fixed exponent and modulus: the shape of every Paillier hot path
 * (r^n mod n², c^(p−1) mod p², …). Natively through OpenSSL when the modulus allows it (odd, 512–10,000 bits),
 * otherwise bigint-crypto-utils' square-and-multiply; both give the same value for every input.
 * The OpenSSL object is built on the first call that needs it and kept by the returned closure, which holds
 * the exponent: drop the closure when the exponent is secret and no longer needed.
 * @param exp non-negative exponent
 * @param mod positive modulus
 * @returns a function of the base (any bigint, negative included, reduced mod `mod` first)
 * @throws TypeError on non-bigint arguments; RangeError on a non-positive modulus or negative exponent
 */
export function prepareModPow(exp: bigint, mod: bigint): PreparedModPow {
  checkArguments(exp, mod);
  if (mod === 1n) return () => 0n;
  if (exp === 0n) return () => 1n;
  if (exp === 1n) return (base) => reduce(base, mod);
  if (!isNativeModulus(mod)) return (base) => bigintModPow(reduce(base, mod), exp, mod);
  let dh: DiffieHellman | undefined;
  return (base) =>
    nativePow(base, exp, mod, () => {
      if (!dh) {
        dh = createDiffieHellman(bigIntToBuffer(mod), Buffer.of(2));
        dh.setPrivateKey(bigIntToBuffer(exp));
      }
      return dh;
    });
}

/**
 * Prepares exponentiations with a fixed modulus and exponents that change: one OpenSSL object for the modulus, whose
 * exponent is swapped per call (about 0.2 ms at 6144 bits, against about one whole exponentiation to build an object).
 * For proofs, whose nonce and response exponents are fresh each time: `ctx(r)` gives x ↦ x^r mod `mod`, for as many
 * bases as needed. Each closure sets its own exponent before it computes, so closures for different exponents may be
 * used in any order. The object holds the last exponent used until the next call replaces it.
 * @param mod positive modulus
 * @returns exp ↦ (base ↦ base^exp mod mod), natively where the modulus allows, bit-identical to {@link modPow}
 * @throws RangeError on a non-positive modulus (and, from the returned function, on a negative exponent)
 */
export function prepareModulus(mod: bigint): (exp: bigint) => PreparedModPow {
  checkArguments(0n, mod);
  if (!isNativeModulus(mod)) return (exp) => prepareModPow(exp, mod);
  let dh: DiffieHellman | undefined;
  let current: bigint | undefined;
  return (exp) => {
    checkArguments(exp, mod);
    if (exp < 2n) return prepareModPow(exp, mod);
    const key = bigIntToBuffer(exp);
    return (base) =>
      nativePow(base, exp, mod, () => {
        dh ??= createDiffieHellman(bigIntToBuffer(mod), Buffer.of(2));
        if (current !== exp) {
          dh.setPrivateKey(key);
          current = exp;
        }
        return dh;
      });
  };
}

/** base^exp mod mod through an OpenSSL DH object holding exp as its private key, with the module comment's workarounds. */
function nativePow(base: bigint, exp: bigint, mod: bigint, object: () => DiffieHellman): bigint {
  const b = reduce(base, mod);
  // OpenSSL refuses these as weak DH public values; their powers are trivial.
  if (b === 0n || b === 1n) return b;
  if (b === mod - 1n) return (exp & 1n) === 1n ? b : 1n;
  let out: bigint;
  try {
    out = bufferToBigInt(object().computeSecret(bigIntToBuffer(b)));
  } catch {
    // A result of 0 (b shares every prime factor of mod: rare, and impossible for units) comes back as an empty
    // secret, which node reports as an error.
    return bigintModPow(b, exp, mod);
  }
  // A zero buffer is also how OpenSSL fails silently: recompute rather than trust it.
  return out === 0n || out >= mod ? bigintModPow(b, exp, mod) : out;
}

function reduce(base: bigint, mod: bigint): bigint {
  if (typeof base !== 'bigint') throw new TypeError('base must be a bigint');
  const r = base % mod;
  return r < 0n ? r + mod : r;
}

const CACHE_SIZE = 8;
const cache = new Map<string, PreparedModPow>();

/**
 * base^exp mod mod, natively (OpenSSL Montgomery exponentiation) where the modulus allows, bit-identical to
 * bigint-crypto-utils' `modPow` for non-negative exponents. Keeps the last 8 (modulus, exponent) pairs prepared,
 * since building the native context costs about two exponentiations; code with a secret exponent should hold a
 * {@link prepareModPow} closure instead, so the exponent is not retained here.
 * @throws TypeError on non-bigint arguments; RangeError on a non-positive modulus or negative exponent
 */
export function modPow(base: bigint, exp: bigint, mod: bigint): bigint {
  checkArguments(exp, mod);
  if (!isNativeModulus(mod) || exp < 2n) return prepareModPow(exp, mod)(base);
  const key = `${mod.toString(36)}^${exp.toString(36)}`;
  let pow = cache.get(key);
  if (pow) {
    cache.delete(key);
  } else {
    pow = prepareModPow(exp, mod);
    if (cache.size >= CACHE_SIZE) cache.delete(cache.keys().next().value!);
  }
  cache.set(key, pow);
  return pow(base);
}
