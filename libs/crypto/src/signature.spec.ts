import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { fromBase64Url, toBase64Url } from './encoding';
import { generateKeyPair, importPublicKeyBase64Url, keyPairFromPrivate, publicKeyBase64Url } from './keys';
import { signMessage, signingBytes, verifyMessage } from './signature';
import { canonicalValue } from '../../../test/support/arbitraries';

const seedBytes = (seed: string) => new Uint8Array(createHash('sha256').update(seed).digest());
const alice = keyPairFromPrivate('ed25519', seedBytes('alice'));
const mallory = keyPairFromPrivate('ed25519', seedBytes('mallory'));
const DOMAIN = 'shamir/round1';
const payload = { jobId: 'job-7f3a', round: 1, sender: 'alice', commitments: ['abc', 'def'], count: 1000 };

const anyCanonical = canonicalValue();

describe('signingBytes', () => {
  it('is "confide/v1/<domain>\\n" followed by the canonical JSON of the payload', () => {
    expect(signingBytes('ledger/entry', { b: 2, a: [1, 'x'] }).toString('utf8')).toBe('confide/v1/ledger/entry\n{"a":[1,"x"],"b":2}');
  });

  it.each(['', 'Shamir', 'a b', '/round1', '-x', 'x\ny', 'shamir/round1\n', 'é'])('rejects the domain %p', (domain) => {
    expect(() => signingBytes(domain, {})).toThrow(TypeError);
  });
});

describe('signMessage / verifyMessage', () => {
  it('verifies what was signed, for any canonical payload', () => {
    fc.assert(
      fc.property(anyCanonical, (value) => {
        const signature = signMessage(alice.privateKey, DOMAIN, value);
        expect(fromBase64Url(signature, 64)).toHaveLength(64);
        expect(verifyMessage(alice.publicKey, DOMAIN, value, signature)).toBe(true);
        expect(verifyMessage(alice.publicKey, DOMAIN, JSON.parse(JSON.stringify(value)) as unknown, signature)).toBe(true);
      }),
      { numRuns: 100 },
    );
  });

  it('is deterministic (RFC 8032) and independent of key insertion order', () => {
    const signature = signMessage(alice.privateKey, DOMAIN, payload);
    expect(signMessage(alice.privateKey, DOMAIN, payload)).toBe(signature);
    const reordered = { count: 1000, commitments: ['abc', 'def'], sender: 'alice', round: 1, jobId: 'job-7f3a' };
    expect(signMessage(alice.privateKey, DOMAIN, reordered)).toBe(signature);
    expect(verifyMessage(alice.publicKey, DOMAIN, reordered, signature)).toBe(true);
  });

  it('verifies with the public key as it travels (base64url)', () => {
    const signature = signMessage(alice.privateKey, DOMAIN, payload);
    expect(verifyMessage(importPublicKeyBase64Url('ed25519', publicKeyBase64Url(alice.publicKey)), DOMAIN, payload, signature)).toBe(true);
  });

  it('rejects a signature from another participant', () => {
    const forged = signMessage(mallory.privateKey, DOMAIN, payload);
    expect(verifyMessage(alice.publicKey, DOMAIN, payload, forged)).toBe(false);
    expect(verifyMessage(mallory.publicKey, DOMAIN, payload, forged)).toBe(true);
    const fresh = generateKeyPair('ed25519');
    expect(verifyMessage(fresh.publicKey, DOMAIN, payload, signMessage(alice.privateKey, DOMAIN, payload))).toBe(false);
  });

  it('rejects a signature replayed under another domain', () => {
    const signature = signMessage(alice.privateKey, DOMAIN, payload);
    for (const other of ['shamir/round2', 'shamir/round1x', 'ledger/entry', 'shamir']) {
      expect(verifyMessage(alice.publicKey, other, payload, signature)).toBe(false);
    }
  });

  it.each<[string, unknown]>([
    ['a changed number', { ...payload, count: 1001 }],
    ['a number turned into a string', { ...payload, count: '1000' }],
    ['an added field', { ...payload, extra: true }],
    ['a removed field', { jobId: payload.jobId, round: payload.round, sender: payload.sender, commitments: payload.commitments }],
    ['reordered array items', { ...payload, commitments: ['def', 'abc'] }],
    ['a changed sender', { ...payload, sender: 'mallory' }],
    ['a null in place of a value', { ...payload, jobId: null }],
  ])('rejects a payload changed after signing: %s', (_what, changed) => {
    const signature = signMessage(alice.privateKey, DOMAIN, payload);
    expect(verifyMessage(alice.publicKey, DOMAIN, changed, signature)).toBe(false);
  });

  it('rejects a signature with any single bit flipped', () => {
    const signature = fromBase64Url(signMessage(alice.privateKey, DOMAIN, payload), 64);
    for (let bit = 0; bit < 512; bit++) {
      const flipped = Uint8Array.from(signature);
      flipped[bit >> 3]! ^= 1 << (bit & 7);
      expect(verifyMessage(alice.publicKey, DOMAIN, payload, toBase64Url(flipped))).toBe(false);
    }
  });

  it('rejects a malleated signature (S + ℓ), which encodes the same scalar', () => {
    const L = 2n ** 252n + 27742317777372353535851937790883648493n;
    const sig = fromBase64Url(signMessage(alice.privateKey, DOMAIN, payload), 64);
    let s = 0n;
    for (let i = 63; i >= 32; i--) s = (s << 8n) | BigInt(sig[i]!);
    const malleated = Uint8Array.from(sig);
    for (let i = 0; i < 32; i++) malleated[32 + i] = Number(((s + L) >> BigInt(8 * i)) & 0xffn);
    expect(verifyMessage(alice.publicKey, DOMAIN, payload, toBase64Url(malleated))).toBe(false);
  });

  it('returns false, never throws, for malformed signatures', () => {
    const good = signMessage(alice.privateKey, DOMAIN, payload);
    const malformed: unknown[] = [
      '',
      'abc',
      `${good}=`,
      `${good}==`,
      good.slice(0, -1),
      `${good}A`,
      good.replace(/^./, '+'),
      good.replace(/^./, '/'),
      ` ${good}`,
      toBase64Url(new Uint8Array(63)),
      toBase64Url(new Uint8Array(65)),
      toBase64Url(new Uint8Array(64)),
      toBase64Url(new Uint8Array(64).fill(0xff)),
      Buffer.from(fromBase64Url(good)).toString('base64'),
      null,
      undefined,
      42,
      {},
    ];
    for (const signature of malformed) {
      expect(() => verifyMessage(alice.publicKey, DOMAIN, payload, signature as string)).not.toThrow();
      expect(verifyMessage(alice.publicKey, DOMAIN, payload, signature as string)).toBe(false);
    }
  });

  it('returns false for an invalid domain, a non-canonical payload or an X25519 key', () => {
    const signature = signMessage(alice.privateKey, DOMAIN, payload);
    expect(verifyMessage(alice.publicKey, 'Bad Domain', payload, signature)).toBe(false);
    expect(verifyMessage(alice.publicKey, DOMAIN, { ...payload, count: 1000.5 }, signature)).toBe(false);
    expect(verifyMessage(alice.publicKey, DOMAIN, { ...payload, count: 1000n }, signature)).toBe(false);
    const x = generateKeyPair('x25519');
    expect(verifyMessage(x.publicKey, DOMAIN, payload, signature)).toBe(false);
  });

  it('refuses to sign with an X25519 key, under an invalid domain, or a payload with no canonical form', () => {
    expect(() => signMessage(generateKeyPair('x25519').privateKey, DOMAIN, payload)).toThrow(TypeError);
    expect(() => signMessage(alice.publicKey.key, DOMAIN, payload)).toThrow();
    expect(() => signMessage(alice.privateKey, 'Bad Domain', payload)).toThrow(TypeError);
    expect(() => signMessage(alice.privateKey, DOMAIN, { amount: 0.5 })).toThrow(TypeError);
    expect(() => signMessage(alice.privateKey, DOMAIN, [1, undefined])).toThrow(TypeError);
  });
});
