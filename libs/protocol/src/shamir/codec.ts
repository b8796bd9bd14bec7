import { assertFieldElement, type FieldElement } from '@confide/crypto';
import { ProtocolError } from '../errors';

const ELEMENT_BYTES = 16;

/** A share vector as bytes: each element as 16 big-endian bytes. What goes inside an envelope. */
export function encodeShareVector(values: readonly FieldElement[]): Uint8Array {
  const out = Buffer.alloc(values.length * ELEMENT_BYTES);
  values.forEach((v, i) => {
    assertFieldElement(v, `share[${i}]`);
    out.writeBigUInt64BE(v >> 64n, i * ELEMENT_BYTES);
    out.writeBigUInt64BE(v & 0xffffffffffffffffn, i * ELEMENT_BYTES + 8);
  });
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

/** Inverse of {@link encodeShareVector}; checks the length and that every element is below p. */
export function decodeShareVector(bytes: Uint8Array, length: number): FieldElement[] {
  if (bytes.length !== length * ELEMENT_BYTES) {
    throw new ProtocolError('INVALID_MESSAGE', `share vector has ${bytes.length} bytes, expected ${length * ELEMENT_BYTES}`);
  }
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Array<FieldElement>(length);
  for (let i = 0; i < length; i++) {
    const v = (buf.readBigUInt64BE(i * ELEMENT_BYTES) << 64n) | buf.readBigUInt64BE(i * ELEMENT_BYTES + 8);
    try {
      assertFieldElement(v, `share[${i}]`);
    } catch (cause) {
      throw new ProtocolError('INVALID_MESSAGE', `share element ${i} is not a field element`, { cause });
    }
    out[i] = v;
  }
  return out;
}
