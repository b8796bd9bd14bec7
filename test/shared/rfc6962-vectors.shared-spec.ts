import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { ProofError, verifyConsistency, verifyInclusion } from '@confide/ledger';
import { sharedDir } from '../support/shared';
import { verifyConsistencyProof as consoleConsistency, verifyInclusion as consoleInclusion, VerifyError } from '../../apps/console/src/ledger-verify';

// Every RFC 6962 / RFC 9162 proof vector of transparency-dev/merkle (shared/vectors/rfc6962, format in its
// SOURCE.md): the verifiers must accept exactly the wantErr=false cases and reject every wantErr=true one.

/** Every .json file under dir, recursively, sorted so the test names are stable. */
function jsonFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .flatMap((e) => (e.isDirectory() ? jsonFiles(join(dir, e.name)) : e.isFile() && e.name.endsWith('.json') ? [join(dir, e.name)] : []))
    .sort();
}

/** Decodes a base64 field strictly: a vector that does not decode is a broken vector, not a rejection. */
function bytes(value: unknown, what: string): Uint8Array {
  if (typeof value !== 'string') throw new Error(`${what} is not a base64 string`);
  const decoded = new Uint8Array(Buffer.from(value, 'base64'));
  if (Buffer.from(decoded).toString('base64') !== value) throw new Error(`${what} is not canonical base64: ${value}`);
  return decoded;
}

function proofOf(value: unknown): Uint8Array[] {
  if (value === null) return []; // Go marshals an empty slice as null
  if (!Array.isArray(value)) throw new Error('proof is neither an array nor null');
  return value.map((p, i) => bytes(p, `proof[${i}]`));
}

// Sizes and indices are Go uint64s. A few corrupted cases underflow to 2^64 − 1, which JSON.parse rounds to a
// float: passed through as is, the verifiers reject it as beyond the 2^53 − 1 leaves Confide supports.
function count(value: unknown, what: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) throw new Error(`${what} is not a non-negative integer`);
  return value;
}

interface Case {
  name: string;
  desc: string;
  wantErr: boolean;
  run: () => void;
  /** The same check by the browser console's WebCrypto verifier. */
  runInConsole: () => Promise<void>;
}

function load(kind: 'inclusion' | 'consistency'): Case[] {
  const dir = sharedDir('vectors', 'rfc6962', kind);
  return jsonFiles(dir).map((file) => {
    const v = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    if (typeof v.wantErr !== 'boolean' || typeof v.desc !== 'string') throw new Error(`${file}: no wantErr/desc`);
    const name = relative(dir, file);
    if (kind === 'inclusion') {
      const leaf = bytes(v.leafHash, 'leafHash');
      const index = count(v.leafIdx, 'leafIdx');
      const size = count(v.treeSize, 'treeSize');
      const proof = proofOf(v.proof);
      const root = bytes(v.root, 'root');
      return { name, desc: v.desc, wantErr: v.wantErr, run: () => verifyInclusion(leaf, index, size, proof, root), runInConsole: () => consoleInclusion(leaf, index, size, proof, root) };
    }
    const size1 = count(v.size1, 'size1');
    const size2 = count(v.size2, 'size2');
    const proof = proofOf(v.proof);
    const root1 = bytes(v.root1, 'root1');
    const root2 = bytes(v.root2, 'root2');
    return { name, desc: v.desc, wantErr: v.wantErr, run: () => verifyConsistency(size1, size2, proof, root1, root2), runInConsole: () => consoleConsistency(size1, size2, proof, root1, root2) };
  });
}

describe.each(['inclusion', 'consistency'] as const)('RFC 6962 %s vectors (transparency-dev/merkle)', (kind) => {
  const cases = load(kind);

  it('found the vector files', () => {
    // Fail loudly rather than pass over an empty or misplaced folder.
    expect(cases.length).toBeGreaterThanOrEqual(kind === 'inclusion' ? 90 : 80);
    expect(cases.some((c) => !c.wantErr)).toBe(true);
    expect(cases.some((c) => c.wantErr)).toBe(true);
  });

  it.each(cases.filter((c) => !c.wantErr).map((c) => [c.name, c.desc, c] as const))('accepts %s (%s)', (_name, _desc, c) => {
    expect(c.run).not.toThrow();
  });

  it.each(cases.filter((c) => c.wantErr).map((c) => [c.name, c.desc, c] as const))('rejects %s (%s)', (_name, _desc, c) => {
    expect(c.run).toThrow(ProofError);
  });

  it.each(cases.filter((c) => !c.wantErr).map((c) => [c.name, c.desc, c] as const))('the console accepts %s (%s)', async (_name, _desc, c) => {
    await expect(c.runInConsole()).resolves.toBeUndefined();
  });

  it.each(cases.filter((c) => c.wantErr).map((c) => [c.name, c.desc, c] as const))('the console rejects %s (%s)', async (_name, _desc, c) => {
    await expect(c.runInConsole()).rejects.toBeInstanceOf(VerifyError);
  });
});

it('reads at least 50 vector files in all', () => {
  expect(load('inclusion').length + load('consistency').length).toBeGreaterThanOrEqual(50);
});
