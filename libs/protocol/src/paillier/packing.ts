import { ProtocolError } from '../errors';

/**
 * Plaintext packing for Paillier (DESIGN.md "Protocol paillier": pack the aggregate vector into plaintext slots
 * with headroom for the sum over all participants). One Paillier plaintext holds ~3,000 bits while a coordinate of
 * the aggregate vector needs a few dozen, so each plaintext carries many coordinates side by side, and one
 * homomorphic addition adds them all at once.
 *
 * Coordinates are signed, slots are not. Every participant adds the same public bias β_i to coordinate i, where
 * β_i bounds |a_i| for any participant (the query's term magnitude over the largest record count any participant
 * declared), so each biased value lies in [0, 2β_i]. Over at most N participants a slot's sum is at most 2Nβ_i,
 * and slot i gets exactly the bits that holds: no slot can carry into the next. Decoding subtracts
 * contributors · β_i. Slots are laid out little-endian (coordinate 0 in the lowest bits) and split into as many
 * plaintexts ("chunks") as needed, each below 2^(|n| − 1) ≤ n so the sum never wraps modulo n.
 */

/** Where each coordinate of the aggregate vector sits: chunk, bit offset and width, and its bias. */
export interface PackingLayout {
  /** Bits a chunk may use: |n| − 1, so every packed sum stays below n. */
  readonly capacityBits: number;
  /** Most participants whose values may be summed. */
  readonly participants: number;
  readonly slots: readonly PackingSlot[];
  readonly chunks: number;
}

export interface PackingSlot {
  readonly chunk: number;
  readonly offset: number;
  readonly bits: number;
  readonly bias: bigint;
  /** Bound B on the differential-privacy noise the coordinator adds to this slot (as noise + B ∈ [0, 2B]); 0 without DP. */
  readonly noise: bigint;
}

function bitLength(x: bigint): number {
  return x === 0n ? 0 : x.toString(2).length;
}

/**
 * Lays out a vector's slots for a key with `modulusBits`-bit n.
 *
 * @param biases β_i per coordinate: the largest |a_i| any one participant can have (non-negative)
 * @param participants N, the most participants whose vectors will be summed (≥ 1)
 * @param modulusBits bit length of the Paillier modulus n
 * @param names readable names of the coordinates, for the error message
 * @throws ProtocolError OVERFLOW when one coordinate's slot alone does not fit in a plaintext; INVALID_MESSAGE on
 *   a negative bias or a participant count below 1
 */
export function packingLayout(biases: readonly bigint[], participants: number, modulusBits: number, names?: readonly string[], noiseBounds?: readonly bigint[]): PackingLayout {
  if (noiseBounds !== undefined && noiseBounds.length !== biases.length) throw new ProtocolError('INVALID_MESSAGE', `expected ${biases.length} noise bounds, got ${noiseBounds.length}`);
  if (!Number.isSafeInteger(participants) || participants < 1) throw new ProtocolError('INVALID_MESSAGE', `participants must be a positive integer, got ${participants}`);
  if (!Number.isSafeInteger(modulusBits) || modulusBits < 16) throw new ProtocolError('INVALID_MESSAGE', `modulus of ${modulusBits} bits is too small to pack into`);
  const capacityBits = modulusBits - 1;
  const slots: PackingSlot[] = [];
  let chunk = 0;
  let offset = 0;
  biases.forEach((bias, i) => {
    if (bias < 0n) throw new ProtocolError('INVALID_MESSAGE', `bias of coordinate ${i} is negative`);
    const noise = noiseBounds?.[i] ?? 0n;
    if (noise < 0n) throw new ProtocolError('INVALID_MESSAGE', `noise bound of coordinate ${i} is negative`);
    // The slot holds every sum of N biased values, each in [0, 2β], plus biased noise in [0, 2B]: at most 2Nβ + 2B.
    const bits = Math.max(1, bitLength(2n * BigInt(participants) * bias + 2n * noise));
    if (bits > capacityBits) {
      throw new ProtocolError(
        'OVERFLOW',
        `${names?.[i] ?? `coordinate ${i}`} needs ${bits} bits over ${participants} participants, more than a ${modulusBits}-bit key's plaintext holds (${capacityBits}); narrow the field's bounds or use a larger key`,
      );
    }
    if (offset + bits > capacityBits) {
      chunk++;
      offset = 0;
    }
    slots.push({ chunk, offset, bits, bias, noise });
    offset += bits;
  });
  return { capacityBits, participants, slots, chunks: slots.length === 0 ? 0 : chunk + 1 };
}

/**
 * Packs one participant's aggregate vector into the layout's plaintexts (one bigint per chunk).
 *
 * @throws ProtocolError INVALID_MESSAGE when the vector has the wrong length; OVERFLOW when a coordinate is
 *   outside [−β_i, β_i] (the data exceed the bounds the layout was sized for)
 */
export function packVector(layout: PackingLayout, vector: readonly bigint[]): bigint[] {
  if (vector.length !== layout.slots.length) throw new ProtocolError('INVALID_MESSAGE', `expected ${layout.slots.length} coordinates, got ${vector.length}`);
  const chunks = new Array<bigint>(layout.chunks).fill(0n);
  layout.slots.forEach((slot, i) => {
    const value = vector[i]!;
    if (value < -slot.bias || value > slot.bias) throw new ProtocolError('OVERFLOW', `coordinate ${i} is outside the bound ±${slot.bias} its slot was sized for`);
    chunks[slot.chunk]! |= (value + slot.bias) << BigInt(slot.offset);
  });
  return chunks;
}

/**
 * Packs a differential-privacy noise vector (each |noise_i| ≤ B_i, the layout's noise bounds) as noise_i + B_i per
 * slot, for the coordinator to encrypt and add to the aggregate before the researcher decrypts it.
 * @throws ProtocolError INVALID_MESSAGE on the wrong length or a noise value beyond its slot's bound
 */
export function packNoise(layout: PackingLayout, noise: readonly bigint[]): bigint[] {
  if (noise.length !== layout.slots.length) throw new ProtocolError('INVALID_MESSAGE', `expected ${layout.slots.length} noise values, got ${noise.length}`);
  const chunks = new Array<bigint>(layout.chunks).fill(0n);
  layout.slots.forEach((slot, i) => {
    const value = noise[i]!;
    if (value < -slot.noise || value > slot.noise) throw new ProtocolError('INVALID_MESSAGE', `noise of coordinate ${i} is outside its bound ±${slot.noise}`);
    chunks[slot.chunk]! |= (value + slot.noise) << BigInt(slot.offset);
  });
  return chunks;
}

/**
 * Reads the exact signed totals out of summed plaintexts: each slot minus contributors · β_i.
 *
 * @param contributors how many packed vectors were summed (1 to `layout.participants`); with noise bounds, the
 *   packed noise ({@link packNoise}) must have been added too
 * @throws ProtocolError INVALID_MESSAGE on the wrong number of plaintexts, a contributor count out of range, or a
 *   plaintext with bits beyond its slots or a slot whose value no honest sum can have
 */
export function unpackTotals(layout: PackingLayout, plaintexts: readonly bigint[], contributors: number): bigint[] {
  if (plaintexts.length !== layout.chunks) throw new ProtocolError('INVALID_MESSAGE', `expected ${layout.chunks} plaintexts, got ${plaintexts.length}`);
  if (!Number.isSafeInteger(contributors) || contributors < 1 || contributors > layout.participants) {
    throw new ProtocolError('INVALID_MESSAGE', `contributors must be from 1 to ${layout.participants}, got ${contributors}`);
  }
  const used = new Array<number>(layout.chunks).fill(0);
  const totals = layout.slots.map((slot, i) => {
    used[slot.chunk] = slot.offset + slot.bits;
    const raw = (plaintexts[slot.chunk]! >> BigInt(slot.offset)) & ((1n << BigInt(slot.bits)) - 1n);
    const bias = BigInt(contributors) * slot.bias + slot.noise;
    // The value itself stays out of the message: it is (part of) an aggregate that may be due for suppression.
    if (raw > 2n * bias) throw new ProtocolError('INVALID_MESSAGE', `slot ${i} holds more than ${contributors} contributions can sum to`);
    return raw - bias;
  });
  plaintexts.forEach((m, c) => {
    if (m < 0n || m >> BigInt(used[c]!) !== 0n) throw new ProtocolError('INVALID_MESSAGE', `plaintext ${c} has bits outside its slots`);
  });
  return totals;
}
