import { createHash, createPublicKey, diffieHellman, generateKeyPairSync, sign, verify } from 'node:crypto';
import fc from 'fast-check';
import {
  assertSafeEd25519PublicKey,
  assertSafeX25519PublicKey,
  exportPrivateKeyPem,
  generateKeyPair,
  importPrivateKeyPem,
  importPublicKey,
  importPublicKeyBase64Url,
  keyFingerprint,
  keyPairFromPrivate,
  publicKeyBase64Url,
  rawPublicKey,
  type KeyAlgorithm,
} from './keys';

const hex = (h: string): Uint8Array => Uint8Array.from(Buffer.from(h, 'hex'));
const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const P25519 = 2n ** 255n - 19n;

/** 32-byte little-endian encoding (RFC 7748 §5 for u, RFC 8032 §5.1.2 for y). */
function le32(n: bigint): Uint8Array {
  const out = new Uint8Array(32);
  for (let i = 0; i < 32; i++) out[i] = Number((n >> BigInt(8 * i)) & 0xffn);
  return out;
}

/** A node:crypto public key straight from raw bytes, bypassing Confide's checks (what an attacker can build). */
function rawKeyObject(algorithm: KeyAlgorithm, raw: Uint8Array) {
  const prefix = algorithm === 'x25519' ? '302a300506032b656e032100' : '302a300506032b6570032100';
  return createPublicKey({ key: Buffer.concat([Buffer.from(prefix, 'hex'), raw]), format: 'der', type: 'spki' });
}

// RFC 7748 §6.1.
const ALICE_X25519 = {
  priv: '77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a',
  pub: '8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a',
};
const BOB_X25519 = {
  priv: '5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb',
  pub: 'de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f',
};
const X25519_SHARED = '4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742';

// RFC 8032 §7.1, TEST 1 (empty message) and TEST 2 (one byte 0x72).
const ED25519_VECTORS = [
  {
    secret: '9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60',
    pub: 'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a',
    message: '',
    signature:
      'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b',
  },
  {
    secret: '4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb',
    pub: '3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c',
    message: '72',
    signature:
      '92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00',
  },
];

// X25519 u-coordinates of small order, as libsodium's blocklist spells them (little-endian hex).
const X25519_SMALL_ORDER: [string, string][] = [
  ['u = 0', '00'.repeat(32)],
  ['u = 1', '01' + '00'.repeat(31)],
  ['u = p − 1', 'ec' + 'ff'.repeat(30) + '7f'],
  ['order-8 point 3256…3504', 'e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800'],
  ['order-8 point 3938…5823', '5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157'],
];

// Ed25519 encodings of the eight points of small order: y as above, with sign bit 0 or 1 choosing ±x.
const ED25519_SMALL_ORDER_Y: [string, bigint][] = [
  ['identity (y = 1)', 1n],
  ['order 2 (y = −1)', P25519 - 1n],
  ['order 4 (y = 0)', 0n],
  ['order 8 (y = 2707…2022)', 2707385501144840649318225287225658788936804267575313519463743609750303402022n],
  ['order 8 (y = 5518…7927)', 55188659117513257062467267217118295137698188065244968500265048394206261417927n],
];
const withSign = (y: bigint, sign: 0 | 1): Uint8Array => {
  const b = le32(y);
  b[31]! |= sign << 7;
  return b;
};

describe('key pairs', () => {
  it('derives the RFC 7748 §6.1 X25519 public keys and shared secret from raw private bytes', () => {
    const alice = keyPairFromPrivate('x25519', hex(ALICE_X25519.priv));
    const bob = keyPairFromPrivate('x25519', hex(BOB_X25519.priv));
    expect(toHex(alice.publicKey.raw)).toBe(ALICE_X25519.pub);
    expect(toHex(bob.publicKey.raw)).toBe(BOB_X25519.pub);
    expect(diffieHellman({ privateKey: alice.privateKey, publicKey: bob.publicKey.key }).toString('hex')).toBe(X25519_SHARED);
    expect(diffieHellman({ privateKey: bob.privateKey, publicKey: alice.publicKey.key }).toString('hex')).toBe(X25519_SHARED);
  });

  it.each(ED25519_VECTORS.map((v, i) => [i + 1, v] as const))('derives the RFC 8032 §7.1 TEST %p Ed25519 key and signature', (_n, v) => {
    const pair = keyPairFromPrivate('ed25519', hex(v.secret));
    expect(pair.algorithm).toBe('ed25519');
    expect(toHex(pair.publicKey.raw)).toBe(v.pub);
    expect(sign(null, Buffer.from(v.message, 'hex'), pair.privateKey).toString('hex')).toBe(v.signature);
  });

  it('keyPairFromPrivate is deterministic in its 32 bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.constantFrom<KeyAlgorithm>('x25519', 'ed25519'), (raw, algorithm) => {
        const a = keyPairFromPrivate(algorithm, raw);
        const b = keyPairFromPrivate(algorithm, Uint8Array.from(raw));
        expect(toHex(a.publicKey.raw)).toBe(toHex(b.publicKey.raw));
        expect(exportPrivateKeyPem(a.privateKey)).toBe(exportPrivateKeyPem(b.privateKey));
        expect(toHex(rawPublicKey(a.privateKey))).toBe(toHex(a.publicKey.raw));
      }),
      { numRuns: 50 },
    );
    expect(toHex(keyPairFromPrivate('x25519', new Uint8Array(32).fill(1)).publicKey.raw)).not.toBe(
      toHex(keyPairFromPrivate('x25519', new Uint8Array(32).fill(2)).publicKey.raw),
    );
  });

  it('generateKeyPair takes its private bytes from an injected source, and the CSPRNG otherwise', () => {
    const fixed = () => new Uint8Array(32).fill(9);
    for (const algorithm of ['x25519', 'ed25519'] as const) {
      expect(toHex(generateKeyPair(algorithm, fixed).publicKey.raw)).toBe(toHex(keyPairFromPrivate(algorithm, fixed()).publicKey.raw));
      const a = generateKeyPair(algorithm);
      const b = generateKeyPair(algorithm);
      expect(a.privateKey.asymmetricKeyType).toBe(algorithm);
      expect(a.publicKey.raw).toHaveLength(32);
      expect(toHex(a.publicKey.raw)).not.toBe(toHex(b.publicKey.raw));
    }
  });

  it('rejects private keys that are not 32 bytes', () => {
    expect(() => keyPairFromPrivate('x25519', new Uint8Array(31))).toThrow(RangeError);
    expect(() => keyPairFromPrivate('ed25519', new Uint8Array(33))).toThrow(RangeError);
    expect(() => generateKeyPair('ed25519', () => new Uint8Array(16))).toThrow(RangeError);
  });
});

describe('importPublicKey', () => {
  it('round-trips generated keys, raw and as base64url', () => {
    for (const algorithm of ['x25519', 'ed25519'] as const) {
      for (let i = 0; i < 20; i++) {
        const pair = generateKeyPair(algorithm);
        const imported = importPublicKeyBase64Url(algorithm, publicKeyBase64Url(pair.publicKey));
        expect(imported.algorithm).toBe(algorithm);
        expect(toHex(imported.raw)).toBe(toHex(pair.publicKey.raw));
        expect(imported.key.equals(pair.publicKey.key)).toBe(true);
        expect(toHex(importPublicKey(algorithm, pair.publicKey.raw).raw)).toBe(toHex(pair.publicKey.raw));
      }
    }
  });

  it('copies the raw bytes, so later changes to the caller buffer do not alter the key', () => {
    const raw = Uint8Array.from(hex(BOB_X25519.pub));
    const key = importPublicKey('x25519', raw);
    raw.fill(0);
    expect(toHex(key.raw)).toBe(BOB_X25519.pub);
  });

  it('rejects a key that is not 32 bytes, or not base64url', () => {
    expect(() => importPublicKey('x25519', new Uint8Array(31))).toThrow(RangeError);
    expect(() => importPublicKey('ed25519', new Uint8Array(33))).toThrow(RangeError);
    expect(() => importPublicKeyBase64Url('x25519', 'AAAA')).toThrow(RangeError);
    expect(() => importPublicKeyBase64Url('x25519', `${publicKeyBase64Url(generateKeyPair('x25519').publicKey)}=`)).toThrow(TypeError);
  });

  describe('rejects registering a small-order or non-canonical X25519 key', () => {
    it.each(X25519_SMALL_ORDER)('%s is really of small order: X25519 with it yields the all-zero secret', (_what, h) => {
      // OpenSSL refuses to return the all-zero output, so the derivation fails for any private key; with an honest
      // peer the same call derives a secret (so the refusal is the point's, not the call's).
      const { privateKey } = generateKeyPairSync('x25519');
      expect(diffieHellman({ privateKey, publicKey: generateKeyPairSync('x25519').publicKey })).toHaveLength(32);
      const peer = rawKeyObject('x25519', hex(h));
      expect(() => diffieHellman({ privateKey, publicKey: peer })).toThrow(expect.objectContaining({ code: 'ERR_OSSL_FAILED_DURING_DERIVATION' }) as Error);
    });

    it.each(X25519_SMALL_ORDER)('rejects %s', (_what, h) => {
      expect(() => importPublicKey('x25519', hex(h))).toThrow(/small order/);
      expect(() => assertSafeX25519PublicKey(hex(h))).toThrow(RangeError);
    });

    it.each<[string, bigint]>([
      ['u = p (≡ 0)', P25519],
      ['u = p + 1 (≡ 1)', P25519 + 1n],
      ['u = 2^255 − 1', 2n ** 255n - 1n],
    ])('rejects the non-canonical %s', (_what, u) => {
      expect(() => importPublicKey('x25519', le32(u))).toThrow(/non-canonical/);
    });

    it('rejects a valid key with the unused top bit set', () => {
      const raw = hex(BOB_X25519.pub);
      expect(() => importPublicKey('x25519', raw)).not.toThrow();
      raw[31]! |= 0x80;
      expect(() => importPublicKey('x25519', raw)).toThrow(/top bit/);
      // The top bit is also set on every small-order point's twin: 0 with bit 255 set is 2^255.
      expect(() => importPublicKey('x25519', withSign(0n, 1))).toThrow(RangeError);
    });

    it('accepts the largest canonical u that is not of small order', () => {
      expect(() => importPublicKey('x25519', le32(P25519 - 2n))).not.toThrow();
    });
  });

  describe('rejects registering a small-order or non-canonical Ed25519 key (anyone could sign as it)', () => {
    const identityR = le32(1n);
    /** Tries R = identity, S = 0 on successive messages: succeeds for 1 in 8 when A has small order. */
    function forgeable(raw: Uint8Array): boolean {
      const key = rawKeyObject('ed25519', raw);
      const forged = Buffer.concat([identityR, new Uint8Array(32)]);
      for (let i = 0; i < 200; i++) if (verify(null, Buffer.from(`pay mallory ${i}`), key, forged)) return true;
      return false;
    }

    it.each(ED25519_SMALL_ORDER_Y)('%s: OpenSSL accepts forged signatures under it, importPublicKey refuses it', (_what, y) => {
      expect(forgeable(withSign(y, 0))).toBe(true);
      for (const sign of [0, 1] as const) {
        expect(() => importPublicKey('ed25519', withSign(y, sign))).toThrow(/small order/);
        expect(() => assertSafeEd25519PublicKey(withSign(y, sign))).toThrow(RangeError);
      }
    });

    it('the forgery does not work against an honest key', () => {
      expect(forgeable(hex(ED25519_VECTORS[0]!.pub))).toBe(false);
    });

    it.each<[string, bigint]>([
      ['y = p (≡ 0)', P25519],
      ['y = p + 1 (≡ 1)', P25519 + 1n],
      ['y = p + 2', P25519 + 2n],
      ['y = 2^255 − 1', 2n ** 255n - 1n],
    ])('rejects the non-canonical %s', (_what, y) => {
      expect(() => importPublicKey('ed25519', withSign(y, 0))).toThrow(/non-canonical/);
    });
  });
});

describe('PEM private keys', () => {
  it.each(['x25519', 'ed25519'] as const)('round-trips an %s key through PKCS#8 PEM', (algorithm) => {
    const pair = generateKeyPair(algorithm);
    const pem = exportPrivateKeyPem(pair.privateKey);
    expect(pem).toMatch(/^-----BEGIN PRIVATE KEY-----\n[\s\S]+\n-----END PRIVATE KEY-----\n$/);
    const back = importPrivateKeyPem(algorithm, pem);
    expect(back.algorithm).toBe(algorithm);
    expect(toHex(back.publicKey.raw)).toBe(toHex(pair.publicKey.raw));
    expect(back.privateKey.equals(pair.privateKey)).toBe(true);
  });

  it('rejects a PEM key of the wrong algorithm', () => {
    const ed = exportPrivateKeyPem(generateKeyPair('ed25519').privateKey);
    const x = exportPrivateKeyPem(generateKeyPair('x25519').privateKey);
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
    expect(() => importPrivateKeyPem('x25519', ed)).toThrow(TypeError);
    expect(() => importPrivateKeyPem('ed25519', x)).toThrow(/expected an ed25519 private key, got x25519/);
    expect(() => importPrivateKeyPem('ed25519', ec)).toThrow(/got ec/);
  });

  it('rejects text that is not a PEM key', () => {
    expect(() => importPrivateKeyPem('ed25519', '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n')).toThrow();
    expect(() => importPrivateKeyPem('ed25519', 'not a key')).toThrow();
  });
});

describe('keyFingerprint', () => {
  const expected = (algorithm: string, raw: Uint8Array) =>
    createHash('sha256').update(Buffer.concat([Buffer.from(`confide-key-v1:${algorithm}:`), raw])).digest('hex');

  it('is SHA-256 over "confide-key-v1:<algorithm>:" ‖ raw key, stable across imports and exports', () => {
    const pair = keyPairFromPrivate('ed25519', hex(ED25519_VECTORS[0]!.secret));
    const fp = keyFingerprint(pair.publicKey);
    expect(fp).toMatch(/^[0-9a-f]{64}$/);
    expect(fp).toBe(expected('ed25519', hex(ED25519_VECTORS[0]!.pub)));
    expect(keyFingerprint(importPublicKeyBase64Url('ed25519', publicKeyBase64Url(pair.publicKey)))).toBe(fp);
    expect(keyFingerprint(importPrivateKeyPem('ed25519', exportPrivateKeyPem(pair.privateKey)).publicKey)).toBe(fp);
    expect(keyFingerprint(pair.publicKey)).toBe(fp);
  });

  it('differs per algorithm for the same 32 bytes, and per key', () => {
    // These bytes are a valid X25519 u-coordinate and a valid Ed25519 point.
    const raw = hex(ED25519_VECTORS[0]!.pub);
    const asX = keyFingerprint(importPublicKey('x25519', raw));
    const asEd = keyFingerprint(importPublicKey('ed25519', raw));
    expect(asX).toBe(expected('x25519', raw));
    expect(asX).not.toBe(asEd);
    expect(keyFingerprint(generateKeyPair('ed25519').publicKey)).not.toBe(asEd);
  });
});
