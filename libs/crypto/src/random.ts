import { randomFillSync } from 'node:crypto';

/**
 * A source of uniformly random bytes. Every function in libs/crypto that needs randomness takes one,
 * so tests can inject a deterministic source; production uses {@link secureRandom}.
 */
export type RandomSource = (length: number) => Uint8Array;

const POOL_SIZE = 4096;
let pool = new Uint8Array(0);
let poolOffset = 0;

/**
 * Bytes from the operating system's CSPRNG (node:crypto `randomFillSync`, i.e. OpenSSL's DRBG).
 * Small requests are served from a 4 KiB pool that is refilled from the CSPRNG and never reused:
 * each byte is handed out once. Requests larger than the pool bypass it.
 */
export const secureRandom: RandomSource = (length: number): Uint8Array => {
  if (!Number.isSafeInteger(length) || length < 0) throw new RangeError(`random length must be a non-negative integer, got ${length}`);
  if (length > POOL_SIZE) return randomFillSync(new Uint8Array(length));
  if (poolOffset + length > pool.length) {
    pool = randomFillSync(new Uint8Array(POOL_SIZE));
    poolOffset = 0;
  }
  const out = pool.slice(poolOffset, poolOffset + length);
  pool.fill(0, poolOffset, poolOffset + length);
  poolOffset += length;
  return out;
};

/** Big-endian unsigned integer from bytes. */
export function bytesToBigInt(bytes: Uint8Array): bigint {
  let hex = '';
  for (const b of bytes) hex += b.toString(16).padStart(2, '0');
  return hex.length === 0 ? 0n : BigInt(`0x${hex}`);
}

/** Big-endian fixed-width encoding of a non-negative integer; throws if it does not fit in `length` bytes. */
export function bigIntToBytes(value: bigint, length: number): Uint8Array {
  if (value < 0n) throw new RangeError('cannot encode a negative integer');
  const hex = value.toString(16);
  if (hex.length > length * 2) throw new RangeError(`integer does not fit in ${length} bytes`);
  return Uint8Array.from(Buffer.from(hex.padStart(length * 2, '0'), 'hex'));
}
