import { createDecipheriv, createPublicKey, diffieHellman, hkdfSync } from 'node:crypto';
import fc from 'fast-check';
import { canonicalBytes, fromBase64Url, toBase64Url } from './encoding';
import { EnvelopeError, hkdfSha256, openEnvelope, sealEnvelope, type Envelope, type EnvelopeContext } from './envelope';
import { generateKeyPair, importPublicKey, keyPairFromPrivate, type PublicKey } from './keys';
import { seededRandom } from '../../../test/support/randomness';

const bob = keyPairFromPrivate('x25519', seededRandom('bob')(32));
const mallory = keyPairFromPrivate('x25519', seededRandom('mallory')(32));
const context: EnvelopeContext = { jobId: 'job-7f3a', round: 2, sender: 'alice', recipient: 'bob' };
const share = Buffer.from('{"x":3,"y":["1267650600228229401496703205375"]}', 'utf8');

/** Applies `change` to the decoded bytes of one envelope field and re-encodes it. */
function tamper(envelope: Envelope, field: 'epk' | 'iv' | 'ct', change: (bytes: Uint8Array) => void): Envelope {
  const bytes = fromBase64Url(envelope[field]);
  change(bytes);
  return { ...envelope, [field]: toBase64Url(bytes) };
}

/** Expects opening to fail with EnvelopeError, the only error an attacker-controlled envelope may cause. */
function expectRejected(open: () => unknown): void {
  expect(open).toThrow(EnvelopeError);
}

describe('hkdfSha256', () => {
  const hex = (h: string) => Uint8Array.from(Buffer.from(h, 'hex'));

  it.each([
    // RFC 5869 Appendix A.1 and A.3 (first 32 bytes of OKM).
    ['A.1', '0b'.repeat(22), '000102030405060708090a0b0c', 'f0f1f2f3f4f5f6f7f8f9', '3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf'],
    ['A.3 (empty salt and info)', '0b'.repeat(22), '', '', '8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d'],
  ])('matches the RFC 5869 test case %s', (_case, ikm, salt, info, okm) => {
    expect(hkdfSha256(hex(ikm), hex(salt), hex(info)).toString('hex')).toBe(okm);
    expect(Buffer.from(hkdfSync('sha256', hex(ikm), hex(salt), hex(info), 32)).toString('hex')).toBe(okm);
  });

  it("agrees with node's hkdfSync for 32-byte outputs", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), fc.uint8Array({ maxLength: 100 }), fc.uint8Array({ maxLength: 80 }), (ikm, salt, info) => {
        expect(hkdfSha256(ikm, salt, info)).toEqual(Buffer.from(hkdfSync('sha256', ikm, salt, info, 32)));
      }),
      { numRuns: 200 },
    );
  });
});

describe('sealEnvelope / openEnvelope', () => {
  it('round-trips random plaintexts, including the empty one', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (plaintext) => {
        const envelope = sealEnvelope(bob.publicKey, plaintext, context);
        expect(envelope.v).toBe(1);
        expect(fromBase64Url(envelope.epk)).toHaveLength(32);
        expect(fromBase64Url(envelope.iv)).toHaveLength(12);
        expect(fromBase64Url(envelope.ct)).toHaveLength(plaintext.length + 16);
        expect(openEnvelope(bob, envelope, context)).toEqual(plaintext);
      }),
      { numRuns: 100 },
    );
  });

  it('is deterministic under an injected source: same bytes, same envelope', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 100 }), fc.string(), (plaintext, seed) => {
        const a = sealEnvelope(bob.publicKey, plaintext, context, seededRandom(seed));
        const b = sealEnvelope(bob.publicKey, plaintext, context, seededRandom(seed));
        expect(a).toEqual(b);
        expect(sealEnvelope(bob.publicKey, plaintext, context, seededRandom(`${seed}'`))).not.toEqual(a);
      }),
      { numRuns: 30 },
    );
  });

  it('uses a fresh ephemeral key and nonce each time with the CSPRNG', () => {
    const seen = { epk: new Set<string>(), iv: new Set<string>(), ct: new Set<string>() };
    for (let i = 0; i < 50; i++) {
      const e = sealEnvelope(bob.publicKey, share, context);
      seen.epk.add(e.epk);
      seen.iv.add(e.iv);
      seen.ct.add(e.ct);
    }
    expect([seen.epk.size, seen.iv.size, seen.ct.size]).toEqual([50, 50, 50]);
  });

  it('follows the documented construction: X25519, HKDF-SHA256(salt = epk ‖ rpk), AES-256-GCM with the context as AAD', () => {
    const envelope = sealEnvelope(bob.publicKey, share, context, seededRandom('construction'));
    const epk = fromBase64Url(envelope.epk, 32);
    const ct = fromBase64Url(envelope.ct);
    const shared = diffieHellman({ privateKey: bob.privateKey, publicKey: importPublicKey('x25519', epk).key });
    const key = Buffer.from(
      hkdfSync('sha256', shared, Buffer.concat([epk, bob.publicKey.raw]), 'confide/envelope/v1 X25519-HKDF-SHA256-AES256GCM', 32),
    );
    const decipher = createDecipheriv('aes-256-gcm', key, fromBase64Url(envelope.iv, 12));
    decipher.setAAD(canonicalBytes({ domain: 'confide/envelope/v1', ...context }));
    decipher.setAuthTag(ct.subarray(ct.length - 16));
    expect(Buffer.concat([decipher.update(ct.subarray(0, ct.length - 16)), decipher.final()])).toEqual(share);
  });

  it('rejects a share decrypted by the wrong recipient', () => {
    const envelope = sealEnvelope(bob.publicKey, share, context);
    expectRejected(() => openEnvelope(mallory, envelope, context));
    expectRejected(() => openEnvelope(mallory, envelope, { ...context, recipient: 'mallory' }));
  });

  it('rejects a share re-encrypted to the wrong recipient (context names someone else)', () => {
    const envelope = sealEnvelope(mallory.publicKey, share, context);
    expectRejected(() => openEnvelope(mallory, envelope, { ...context, recipient: 'mallory' }));
  });

  describe('rejects a ciphertext with one bit flipped', () => {
    const envelope = sealEnvelope(bob.publicKey, share, context, seededRandom('flip'));
    const ctLength = fromBase64Url(envelope.ct).length;
    const positions = (field: 'epk' | 'iv' | 'ct', from: number, to: number) =>
      Array.from({ length: to - from }, (_, i) => from + i).flatMap((byte) => Array.from({ length: 8 }, (_, bit) => [field, byte, bit] as const));

    it.each([
      ['the ephemeral public key (epk)', positions('epk', 0, 32)],
      ['the nonce (iv)', positions('iv', 0, 12)],
      ['the ciphertext body', positions('ct', 0, ctLength - 16)],
      ['the GCM tag', positions('ct', ctLength - 16, ctLength)],
    ])('in %s, at every bit', (_what, flips) => {
      expect(openEnvelope(bob, envelope, context)).toEqual(new Uint8Array(share));
      for (const [field, byte, bit] of flips) {
        const flipped = tamper(envelope, field, (b) => {
          b[byte]! ^= 1 << bit;
        });
        expectRejected(() => openEnvelope(bob, flipped, context));
      }
    });
  });

  it('rejects a truncated, extended or emptied ciphertext', () => {
    const envelope = sealEnvelope(bob.publicKey, share, context);
    const ct = fromBase64Url(envelope.ct);
    for (const cut of [ct.subarray(0, ct.length - 1), ct.subarray(1), ct.subarray(0, 16), ct.subarray(0, 15), new Uint8Array(0)]) {
      expectRejected(() => openEnvelope(bob, { ...envelope, ct: toBase64Url(cut) }, context));
    }
    expectRejected(() => openEnvelope(bob, { ...envelope, ct: toBase64Url(Buffer.concat([ct, Uint8Array.of(0)])) }, context));
  });

  it.each<[string, Partial<EnvelopeContext>]>([
    ['another job', { jobId: 'job-other' }],
    ['another round', { round: 3 }],
    ['another sender', { sender: 'carol' }],
    ['another recipient', { recipient: 'dave' }],
  ])('rejects associated data from %s', (_what, change) => {
    const envelope = sealEnvelope(bob.publicKey, share, context);
    expect(openEnvelope(bob, envelope, context)).toEqual(new Uint8Array(share));
    expectRejected(() => openEnvelope(bob, envelope, { ...context, ...change }));
  });

  it('rejects a sender/recipient swap', () => {
    const envelope = sealEnvelope(bob.publicKey, share, context);
    expectRejected(() => openEnvelope(bob, envelope, { ...context, sender: context.recipient, recipient: context.sender }));
  });

  describe('rejects a small-order ephemeral key', () => {
    const P25519 = 2n ** 255n - 19n;
    const le32 = (n: bigint) => Uint8Array.from({ length: 32 }, (_, i) => Number((n >> BigInt(8 * i)) & 0xffn));
    const lowOrder: [string, Uint8Array][] = [
      ['u = 0', le32(0n)],
      ['u = 1', le32(1n)],
      ['u = p − 1', le32(P25519 - 1n)],
      ['order-8 point e0eb…b800', Uint8Array.from(Buffer.from('e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800', 'hex'))],
      ['order-8 point 5f9c…1157', Uint8Array.from(Buffer.from('5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157', 'hex'))],
      ['u = p (non-canonical 0)', le32(P25519)],
      ['u = p + 1 (non-canonical 1)', le32(P25519 + 1n)],
      ['u = 1 with the top bit set', le32(1n | (1n << 255n))],
    ];

    it.each(lowOrder)('%s', (_what, epk) => {
      const envelope = sealEnvelope(bob.publicKey, share, context);
      const open = () => openEnvelope(bob, { ...envelope, epk: toBase64Url(epk) }, context);
      expectRejected(open);
      // Refused before any key is derived from it, not merely by the GCM tag.
      expect(open).toThrow(/ephemeral key rejected/);
    });

    it('and refuses to seal to a small-order recipient key that bypassed importPublicKey', () => {
      for (const [, raw] of lowOrder) {
        const key = createPublicKey({ key: Buffer.concat([Buffer.from('302a300506032b656e032100', 'hex'), raw]), format: 'der', type: 'spki' });
        const forged: PublicKey = { algorithm: 'x25519', key, raw };
        expect(() => sealEnvelope(forged, share, context)).toThrow(RangeError);
      }
    });
  });

  it('rejects malformed envelopes with EnvelopeError', () => {
    const envelope = sealEnvelope(bob.publicKey, share, context);
    const malformed: Envelope[] = [
      { ...envelope, v: 2 as unknown as 1 },
      { ...envelope, epk: `${envelope.epk}=` },
      { ...envelope, epk: toBase64Url(new Uint8Array(31)) },
      { ...envelope, iv: toBase64Url(new Uint8Array(16)) },
      { ...envelope, iv: envelope.iv.replace(/.$/, '+') },
      { ...envelope, ct: `${envelope.ct} ` },
      { ...envelope, ct: 42 as unknown as string },
    ];
    for (const bad of malformed) expectRejected(() => openEnvelope(bob, bad, context));
  });

  it('rejects invalid contexts and non-X25519 keys before any cryptography', () => {
    expect(() => sealEnvelope(bob.publicKey, share, { ...context, round: -1 })).toThrow(RangeError);
    expect(() => sealEnvelope(bob.publicKey, share, { ...context, round: 1.5 })).toThrow(RangeError);
    expect(() => sealEnvelope(bob.publicKey, share, { ...context, jobId: '' })).toThrow(TypeError);
    expect(() => sealEnvelope(bob.publicKey, share, { ...context, sender: 7 as unknown as string })).toThrow(TypeError);
    const ed = generateKeyPair('ed25519');
    expect(() => sealEnvelope(ed.publicKey, share, context)).toThrow(TypeError);
    const envelope = sealEnvelope(bob.publicKey, share, context);
    expect(() => openEnvelope(ed, envelope, context)).toThrow(TypeError);
    expect(() => openEnvelope(bob, envelope, { ...context, recipient: '' })).toThrow(TypeError);
  });

  it('leaves the plaintext buffer untouched', () => {
    const plaintext = Uint8Array.from(share);
    sealEnvelope(bob.publicKey, plaintext, context);
    expect(Buffer.from(plaintext).equals(share)).toBe(true);
  });
});
