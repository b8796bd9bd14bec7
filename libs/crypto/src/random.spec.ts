import nodeCrypto from 'node:crypto';
import fc from 'fast-check';
import { bigIntToBytes, bytesToBigInt, secureRandom } from './random';

const realRandomFill = nodeCrypto.randomFillSync;

describe('secureRandom', () => {
  it('returns exactly the requested number of bytes, from the pool and past it', () => {
    for (const n of [0, 1, 16, 4095, 4096, 4097, 10_000]) expect(secureRandom(n)).toHaveLength(n);
  });

  it('never hands out the same bytes twice', () => {
    const seen = new Set<string>();
    // 2,000 draws of 16 bytes cross the 4 KiB pool boundary several times.
    for (let i = 0; i < 2000; i++) seen.add(Buffer.from(secureRandom(16)).toString('hex'));
    expect(seen.size).toBe(2000);
  });

  it('does not keep a copy of what it returned in the pool', () => {
    // The pool is module-private: catch it where it is made, as the buffer the CSPRNG fills, and read its memory.
    const fills: Uint8Array[] = [];
    const spy = jest.spyOn(nodeCrypto, 'randomFillSync').mockImplementation(((buffer: Uint8Array) => {
      fills.push(buffer);
      return realRandomFill(buffer);
    }) as typeof nodeCrypto.randomFillSync);
    try {
      secureRandom(4096); // empties whatever pool there was, so the next draw refills it
      fills.length = 0;
      const a = secureRandom(32);
      const b = secureRandom(32);
      expect(fills.map((f) => f.length)).toEqual([4096]);
      const pool = fills[0]!;
      // What was handed out is zero in the pool; the rest is still random (so this is the pool that served them).
      expect(Buffer.from(pool.subarray(0, 64)).toString('hex')).toBe('00'.repeat(64));
      expect(pool.subarray(64).some((byte) => byte !== 0)).toBe(true);
      expect(Buffer.from(pool).indexOf(Buffer.from(a))).toBe(-1);
      expect(Buffer.from(pool).indexOf(Buffer.from(b))).toBe(-1);
      expect(Buffer.from(a).equals(Buffer.alloc(32))).toBe(false);
    } finally {
      spy.mockRestore();
    }
  });

  it.each([-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY])('rejects the length %p', (n) => {
    expect(() => secureRandom(n)).toThrow(RangeError);
  });
});

describe('bytesToBigInt / bigIntToBytes', () => {
  it('reads big-endian', () => {
    expect(bytesToBigInt(Uint8Array.of(0x01, 0x02))).toBe(0x0102n);
    expect(bytesToBigInt(new Uint8Array(0))).toBe(0n);
    expect(Buffer.from(bigIntToBytes(0x0102n, 4)).toString('hex')).toBe('00000102');
  });

  it('round-trips any value through its fixed-width encoding', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 40 }), (bytes) => {
        const back = bigIntToBytes(bytesToBigInt(bytes), bytes.length);
        expect(Buffer.from(back).equals(Buffer.from(bytes))).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it('rejects negatives and values wider than the requested length', () => {
    expect(() => bigIntToBytes(-1n, 4)).toThrow(RangeError);
    expect(() => bigIntToBytes(1n << 32n, 4)).toThrow(RangeError);
    expect(bigIntToBytes((1n << 32n) - 1n, 4)).toEqual(Uint8Array.of(255, 255, 255, 255));
  });
});
