import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { keyPairFromPrivate, type KeyPair } from '@confide/crypto';
import {
  CheckpointError,
  formatCheckpoint,
  formatVerifierKey,
  noteKeyId,
  openNote,
  parseCheckpoint,
  parseVerifierKey,
  signCheckpoint,
  signNote,
  verifyCheckpoint,
  type Checkpoint,
  type CheckpointErrorReason,
} from './checkpoint';
import { emptyRoot, leafHash } from './hash';
import { merkleTreeHash } from './tree';

const seed = (label: string) => new Uint8Array(createHash('sha256').update(label).digest());
const coordinator = keyPairFromPrivate('ed25519', seed('coordinator'));
const witness = keyPairFromPrivate('ed25519', seed('witness'));
const mallory = keyPairFromPrivate('ed25519', seed('mallory'));
const NAME = 'confide.example/ledger';
const root = merkleTreeHash(Array.from({ length: 5 }, (_, i) => leafHash(Uint8Array.of(i))));
const checkpoint: Checkpoint = { origin: NAME, size: 5, root };
const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64');

function reasonOf(f: () => unknown): CheckpointErrorReason | 'none' {
  try {
    f();
    return 'none';
  } catch (error) {
    if (error instanceof CheckpointError) return error.reason;
    throw error;
  }
}

/** The signature line's base64 blob decoded, changed by `edit`, and put back. */
function editSignature(note: string, edit: (blob: Uint8Array) => Uint8Array): string {
  const [text, line] = note.split('\n\n') as [string, string];
  const [dash, name, encoded] = line.trimEnd().split(' ') as [string, string, string];
  return `${text}\n\n${dash} ${name} ${b64(edit(new Uint8Array(Buffer.from(encoded, 'base64'))))}\n`;
}

// golang.org/x/mod/sumdb/note's documented example (note.go, note_test.go): a key, its verifier key, a text, and
// the note Go's Sign writes for it. Ed25519 is deterministic, so ours must be the same bytes.
const GO_SKEY = 'PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz';
const GO_VKEY = 'PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW';
const GO_TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
const GO_NOTE = `${GO_TEXT}\n\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n`;
// The Go checksum database's verifier key, pinned in every Go toolchain; its base64 contains '+'.
const SUMDB_VKEY = 'sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8';

describe('interoperability with golang.org/x/mod/sumdb/note', () => {
  const typedSeed = new Uint8Array(Buffer.from(GO_SKEY.split('+').slice(4).join('+'), 'base64'));
  const peter: KeyPair = keyPairFromPrivate('ed25519', typedSeed.subarray(1));

  it('computes the published key ID and verifier key', () => {
    expect(Buffer.from(noteKeyId('PeterNeumann', peter.publicKey)).toString('hex')).toBe('c74f20a3');
    expect(formatVerifierKey('PeterNeumann', peter.publicKey)).toBe(GO_VKEY);
  });

  it('signs the example text byte for byte as Go does, and opens Go\'s note', () => {
    expect(signNote(peter, 'PeterNeumann', GO_TEXT)).toBe(GO_NOTE);
    const vkey = parseVerifierKey(GO_VKEY);
    expect(openNote(GO_NOTE, vkey.publicKey, vkey.name)).toBe(GO_TEXT);
  });

  it('parses verifier keys whose base64 contains "+"', () => {
    const key = parseVerifierKey(SUMDB_VKEY);
    expect(key.name).toBe('sum.golang.org');
    expect(Buffer.from(key.keyId).toString('hex')).toBe('033de0ae');
    expect(formatVerifierKey(key.name, key.publicKey)).toBe(SUMDB_VKEY);
  });
});

describe('formatCheckpoint / parseCheckpoint (C2SP tlog-checkpoint)', () => {
  it('writes origin, decimal size and base64 root, one per line', () => {
    expect(formatCheckpoint(checkpoint)).toBe(`${NAME}\n5\n${b64(root)}\n`);
    expect(formatCheckpoint({ origin: NAME, size: 0, root: emptyRoot() })).toBe(`${NAME}\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n`);
    expect(parseCheckpoint(formatCheckpoint(checkpoint))).toEqual(checkpoint);
  });

  it.each([
    ['an empty origin', { ...checkpoint, origin: '' }],
    ['an origin with a space', { ...checkpoint, origin: 'confide ledger' }],
    ['an origin with a plus', { ...checkpoint, origin: 'confide+ledger' }],
    ['an origin with a newline', { ...checkpoint, origin: 'a\nb' }],
    ['a negative size', { ...checkpoint, size: -1 }],
    ['a size beyond 2^53', { ...checkpoint, size: 2 ** 53 }],
    ['a 31-byte root', { ...checkpoint, root: root.subarray(1) }],
  ])('refuses to write a checkpoint with %s', (_what, bad) => {
    expect(reasonOf(() => formatCheckpoint(bad))).toBe('malformed');
  });

  const rootText = b64(root);
  const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
  it.each([
    ['an extension line', `${NAME}\n5\n${rootText}\nextra\n`],
    ['no final newline', `${NAME}\n5\n${rootText}`],
    ['a missing root', `${NAME}\n5\n`],
    ['a size with a leading zero', `${NAME}\n05\n${rootText}\n`],
    ['a signed size', `${NAME}\n+5\n${rootText}\n`],
    ['a hex size', `${NAME}\n0x5\n${rootText}\n`],
    ['a size beyond 2^53', `${NAME}\n9007199254740993\n${rootText}\n`],
    ['a root in base64url', `${NAME}\n5\n${Buffer.from(root).toString('base64url')}\n`],
    ['a root without padding', `${NAME}\n5\n${rootText.replace('=', '')}\n`],
    // 32 bytes are 43 base64 digits and padding; the last digit's 2 low bits are unused and must be zero.
    ['a non-canonical root encoding (unused low bits set)', `${NAME}\n5\n${rootText.slice(0, 42)}${B64[B64.indexOf(rootText[42]!) | 1]}=\n`],
    ['a 33-byte root', `${NAME}\n5\n${b64(Uint8Array.from([...root, 0]))}\n`],
  ])('rejects a checkpoint text with %s', (_what, text) => {
    expect(reasonOf(() => parseCheckpoint(text))).toBe('malformed');
  });
});

describe('signCheckpoint / verifyCheckpoint (C2SP signed-note, Ed25519)', () => {
  const note = signCheckpoint(coordinator, NAME, checkpoint);

  it('signs as text, blank line, "— <name> <base64(key ID ‖ signature)>"', () => {
    const lines = note.split('\n');
    expect(lines.slice(0, 4)).toEqual([NAME, '5', b64(root), '']);
    expect(lines[5]).toBe('');
    expect(lines).toHaveLength(6);
    const [dash, name, blob] = lines[4]!.split(' ') as [string, string, string];
    expect(dash).toBe('\u2014');
    expect(name).toBe(NAME);
    const bytes = Buffer.from(blob, 'base64');
    expect(bytes).toHaveLength(68);
    const id = createHash('sha256').update(NAME).update(Uint8Array.of(0x0a, 0x01)).update(coordinator.publicKey.raw).digest().subarray(0, 4);
    expect(bytes.subarray(0, 4).equals(id)).toBe(true);
  });

  it('round-trips for any origin, size and root', () => {
    const name = fc.stringMatching(/^[a-z0-9.\-/]{1,40}$/);
    fc.assert(
      fc.property(name, fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), fc.uint8Array({ minLength: 32, maxLength: 32 }), (origin, size, hash) => {
        const cp = { origin, size, root: hash };
        expect(verifyCheckpoint(signCheckpoint(coordinator, origin, cp), coordinator.publicKey, origin)).toEqual(cp);
      }),
      { numRuns: 50 },
    );
  });

  it('verifies with the key taken from its verifier-key string', () => {
    const vkey = parseVerifierKey(formatVerifierKey(NAME, coordinator.publicKey));
    expect(vkey.name).toBe(NAME);
    expect(verifyCheckpoint(note, vkey.publicKey, vkey.name)).toEqual(checkpoint);
  });

  it('rejects any single changed character of the note', () => {
    const alphabet = [...'abz09+/=\n \u2014AZé'];
    fc.assert(
      fc.property(fc.nat({ max: note.length - 1 }), fc.constantFrom(...alphabet), (at, char) => {
        fc.pre(note[at] !== char);
        const tampered = note.slice(0, at) + char + note.slice(at + 1);
        expect(() => verifyCheckpoint(tampered, coordinator.publicKey, NAME)).toThrow(CheckpointError);
      }),
      { numRuns: 500 },
    );
  });

  it.each([
    ['origin line', (n: string) => n.replace(NAME, 'confide.example/ledgeR'), 'bad-signature'],
    ['size', (n: string) => n.replace('\n5\n', '\n6\n'), 'bad-signature'],
    ['root', (n: string) => n.replace(b64(root), b64(merkleTreeHash([leafHash(new Uint8Array(0))]))), 'bad-signature'],
    ['key name', (n: string) => n.replace(`\u2014 ${NAME} `, '\u2014 confide.example/other '), 'unknown-key'],
    ['key ID', (n: string) => editSignature(n, (blob) => Uint8Array.from(blob, (b, i) => (i === 0 ? b ^ 1 : b))), 'unknown-key'],
    ['first signature byte', (n: string) => editSignature(n, (blob) => Uint8Array.from(blob, (b, i) => (i === 4 ? b ^ 1 : b))), 'bad-signature'],
    ['last signature byte', (n: string) => editSignature(n, (blob) => Uint8Array.from(blob, (b, i) => (i === 67 ? b ^ 0x80 : b))), 'bad-signature'],
    ['signature length (truncated)', (n: string) => editSignature(n, (blob) => blob.subarray(0, 67)), 'bad-signature'],
    ['signature length (extended)', (n: string) => editSignature(n, (blob) => Uint8Array.from([...blob, 0])), 'bad-signature'],
    ['signature to a bare key ID', (n: string) => editSignature(n, (blob) => blob.subarray(0, 4)), 'malformed'],
    ['line after the signatures', (n: string) => `${n}trailing\n`, 'malformed'],
    ['final newline', (n: string) => n.slice(0, -1), 'malformed'],
    ['blank line', (n: string) => n.replace('\n\n', '\n'), 'malformed'],
    ['line endings (CRLF)', (n: string) => n.replaceAll('\n', '\r\n'), 'malformed'],
    ['dash (ASCII hyphen)', (n: string) => n.replace('\u2014', '-'), 'malformed'],
    ['signature encoding (base64url)', (n: string) => editSignature(n, (blob) => blob).replace(/ (\S+)\n$/, (_m, s: string) => ` ${Buffer.from(s, 'base64').toString('base64url')}\n`), 'malformed'],
  ] as const)('rejects a changed %s', (_what, tamper, reason) => {
    const tampered = tamper(note);
    expect(tampered).not.toBe(note);
    expect(reasonOf(() => verifyCheckpoint(tampered, coordinator.publicKey, NAME))).toBe(reason);
  });

  it('rejects a checkpoint signed by another key under the same name (a forged tree head)', () => {
    const forged = signCheckpoint(mallory, NAME, { ...checkpoint, size: 4 });
    expect(reasonOf(() => verifyCheckpoint(forged, coordinator.publicKey, NAME))).toBe('unknown-key');
    // Even with the coordinator's key ID copied in, the signature does not verify.
    const id = noteKeyId(NAME, coordinator.publicKey);
    const relabelled = editSignature(forged, (blob) => Uint8Array.from([...id, ...blob.subarray(4)]));
    expect(reasonOf(() => verifyCheckpoint(relabelled, coordinator.publicKey, NAME))).toBe('bad-signature');
  });

  it('rejects a checkpoint verified under another name than it was signed with', () => {
    expect(reasonOf(() => verifyCheckpoint(note, coordinator.publicKey, 'confide.example/other'))).toBe('unknown-key');
  });

  it('ignores a witness cosignature beside the log signature, as C2SP signed-note requires', () => {
    const cosigned = note + signNote(witness, 'witness.example', formatCheckpoint(checkpoint)).split('\n\n')[1]!;
    expect(verifyCheckpoint(cosigned, coordinator.publicKey, NAME)).toEqual(checkpoint);
    expect(verifyCheckpoint(cosigned, witness.publicKey, 'witness.example', { origin: NAME })).toEqual(checkpoint);
  });

  it('rejects the note when a second signature by the same key fails, even beside a good one', () => {
    const line = note.split('\n\n')[1]!;
    const bad = editSignature(note, (blob) => Uint8Array.from(blob, (b, i) => (i === 10 ? b ^ 1 : b))).split('\n\n')[1]!;
    expect(reasonOf(() => verifyCheckpoint(note + bad, coordinator.publicKey, NAME))).toBe('bad-signature');
    expect(verifyCheckpoint(note + line, coordinator.publicKey, NAME)).toEqual(checkpoint);
  });

  it('rejects a signed extension line (Confide writes none)', () => {
    const text = `${formatCheckpoint(checkpoint)}extension\n`;
    expect(reasonOf(() => verifyCheckpoint(signNote(coordinator, NAME, text), coordinator.publicKey, NAME))).toBe('malformed');
  });

  it('rejects a signed body with a size in another notation', () => {
    const text = formatCheckpoint(checkpoint).replace('\n5\n', '\n05\n');
    expect(reasonOf(() => verifyCheckpoint(signNote(coordinator, NAME, text), coordinator.publicKey, NAME))).toBe('malformed');
  });

  it('rejects a checkpoint of another log signed with the same key (origin ≠ key name)', () => {
    const other = signCheckpoint(coordinator, NAME, { ...checkpoint, origin: 'confide.example/staging' });
    expect(reasonOf(() => verifyCheckpoint(other, coordinator.publicKey, NAME))).toBe('origin-mismatch');
    expect(verifyCheckpoint(other, coordinator.publicKey, NAME, { origin: 'confide.example/staging' }).origin).toBe('confide.example/staging');
  });

  it('rejects notes with more than 100 signature lines, control characters or lone surrogates', () => {
    const line = note.split('\n\n')[1]!;
    expect(reasonOf(() => verifyCheckpoint(note + line.repeat(100), coordinator.publicKey, NAME))).toBe('malformed');
    expect(verifyCheckpoint(note + line.repeat(15), coordinator.publicKey, NAME)).toEqual(checkpoint);
    expect(reasonOf(() => verifyCheckpoint(note.replace('\n5\n', '\n5\t\n'), coordinator.publicKey, NAME))).toBe('malformed');
    expect(reasonOf(() => verifyCheckpoint(`\uD800${note}`, coordinator.publicKey, NAME))).toBe('malformed');
  });

  it('refuses to sign with an X25519 key, or under an invalid key name', () => {
    const x = keyPairFromPrivate('x25519', seed('x'));
    expect(() => signCheckpoint(x, NAME, checkpoint)).toThrow(TypeError);
    expect(reasonOf(() => signCheckpoint(coordinator, 'two words', checkpoint))).toBe('malformed');
    expect(reasonOf(() => signCheckpoint(coordinator, 'a+b', checkpoint))).toBe('malformed');
    expect(reasonOf(() => signNote(coordinator, NAME, 'no final newline'))).toBe('malformed');
  });
});

describe('verifier keys', () => {
  const vkey = formatVerifierKey(NAME, coordinator.publicKey);

  it('is <name>+<hex key ID>+<base64(0x01 ‖ key)>', () => {
    const [name, id, ...rest] = vkey.split('+') as [string, string, ...string[]];
    const key = rest.join('+'); // base64 may itself contain '+'
    expect(name).toBe(NAME);
    expect(id).toBe(Buffer.from(noteKeyId(NAME, coordinator.publicKey)).toString('hex'));
    expect(Buffer.from(key, 'base64').equals(Buffer.from([1, ...coordinator.publicKey.raw]))).toBe(true);
    expect(parseVerifierKey(vkey).publicKey.raw).toEqual(coordinator.publicKey.raw);
  });

  const [name, id] = vkey.split('+') as [string, string];
  const typedKey = (bytes: number[]) => `${name}+${id}+${Buffer.from(bytes).toString('base64')}`;
  const smallOrder = [1, ...new Array<number>(31).fill(0)]; // the identity point: y = 1
  it.each([
    ['a key ID that does not match', vkey.replace(`+${id}+`, `+${id.slice(0, 7)}${id[7] === '0' ? '1' : '0'}+`)],
    ['an upper-case key ID', vkey.replace(`+${id}+`, `+${id.toUpperCase()}+`)],
    ['a short key ID', vkey.replace(`+${id}+`, `+${id.slice(1)}+`)],
    ['another name', vkey.replace(NAME, 'confide.example/other')],
    ['a name with a space', vkey.replace(NAME, 'confide ledger')],
    ['an empty name', vkey.slice(NAME.length)],
    ['no key', `${name}+${id}`],
    ['another signature type', typedKey([2, ...coordinator.publicKey.raw])],
    ['a 31-byte key', typedKey([1, ...coordinator.publicKey.raw.subarray(1)])],
    ['a key of small order', typedKey([1, ...smallOrder])],
    ['base64 that is not canonical', `${vkey.slice(0, -1)}!`],
  ])('rejects %s', (_what, text) => {
    expect(text).not.toBe(vkey);
    expect(reasonOf(() => parseVerifierKey(text))).toBe('malformed');
  });
});
