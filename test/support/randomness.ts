import { createCipheriv, createHash } from 'node:crypto';
import type { RandomSource } from '@confide/crypto';

/** Deterministic test randomness: the AES-256-CTR keystream under SHA-256(seed). Same seed, same bytes. */
export function seededRandom(seed: string | number): RandomSource {
  const cipher = createCipheriv('aes-256-ctr', createHash('sha256').update(`confide-test:${seed}`).digest(), Buffer.alloc(16));
  return (length) => new Uint8Array(cipher.update(Buffer.alloc(length)));
}

/** Pearson's χ² statistic of observed counts against equal expected counts. */
export function chiSquare(counts: readonly number[]): number {
  const total = counts.reduce((a, b) => a + b, 0);
  const expected = total / counts.length;
  return counts.reduce((sum, c) => sum + (c - expected) ** 2 / expected, 0);
}
