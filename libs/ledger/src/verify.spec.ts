import { emptyRoot, leafHash, nodeHash } from './hash';
import { merkleTreeHash } from './tree';
import { ProofError, rootFromInclusion, verifyConsistency, verifyInclusion, type ProofErrorReason } from './verify';

const leaves = Array.from({ length: 8 }, (_, i) => leafHash(Uint8Array.of(i)));
const [l0, l1, l2, l3, l4] = leaves as [Uint8Array, Uint8Array, Uint8Array, Uint8Array, Uint8Array];
const root = (n: number) => merkleTreeHash(leaves.slice(0, n));

function reasonOf(f: () => void): ProofErrorReason | 'none' {
  try {
    f();
    return 'none';
  } catch (error) {
    if (error instanceof ProofError) return error.reason;
    throw error;
  }
}

describe('verifyInclusion (RFC 9162 §2.1.3.2)', () => {
  it('accepts the audit path of leaf 2 in a 5-leaf tree', () => {
    const proof = [l3, nodeHash(l0, l1), l4];
    expect(reasonOf(() => verifyInclusion(l2, 2, 5, proof, root(5)))).toBe('none');
    expect(Buffer.from(rootFromInclusion(l2, 2, 5, proof)).equals(Buffer.from(root(5)))).toBe(true);
  });

  it('accepts a one-leaf tree whose root is the leaf, with an empty proof', () => {
    expect(reasonOf(() => verifyInclusion(l0, 0, 1, [], l0))).toBe('none');
  });

  it('rejects a 0-byte leaf hash offered as its own 0-byte root (the check a lax verifier misses)', () => {
    expect(reasonOf(() => verifyInclusion(new Uint8Array(0), 0, 1, [], new Uint8Array(0)))).toBe('bad-hash-length');
  });

  it('rejects proof nodes and roots that are not 32 bytes', () => {
    expect(reasonOf(() => verifyInclusion(l0, 0, 2, [l1.subarray(0, 31)], root(2)))).toBe('bad-hash-length');
    expect(reasonOf(() => verifyInclusion(l0, 0, 2, [Uint8Array.from([...l1, 0])], root(2)))).toBe('bad-hash-length');
    expect(reasonOf(() => verifyInclusion(l0, 0, 2, [l1], root(2).subarray(1)))).toBe('bad-hash-length');
  });

  it('rejects an index at or beyond the tree size, and any leaf of the empty tree', () => {
    expect(reasonOf(() => verifyInclusion(l0, 2, 2, [l1], root(2)))).toBe('index-out-of-range');
    expect(reasonOf(() => verifyInclusion(l0, 0, 0, [], emptyRoot()))).toBe('index-out-of-range');
  });

  it('rejects trailing garbage, a missing node, and proof padding in front', () => {
    const proof = [l3, nodeHash(l0, l1), l4];
    expect(reasonOf(() => verifyInclusion(l2, 2, 5, [...proof, l0], root(5)))).toBe('proof-length');
    expect(reasonOf(() => verifyInclusion(l2, 2, 5, proof.slice(0, 2), root(5)))).toBe('proof-length');
    expect(reasonOf(() => verifyInclusion(l2, 2, 5, [l0, ...proof], root(5)))).toBe('proof-length');
  });

  it('rejects a proof that leads to another root', () => {
    expect(reasonOf(() => verifyInclusion(l2, 2, 5, [l3, nodeHash(l1, l0), l4], root(5)))).toBe('root-mismatch');
    expect(reasonOf(() => verifyInclusion(l2, 2, 5, [l3, nodeHash(l0, l1), l4], root(4)))).toBe('root-mismatch');
  });

  it.each([
    ['a negative index', -1, 5],
    ['a fractional size', 0, 2.5],
    ['a size beyond 2^53 (a uint64 underflow read as a float)', 0, 2 ** 64],
    ['NaN', Number.NaN, 5],
  ])('rejects %s', (_what, index, size) => {
    expect(reasonOf(() => verifyInclusion(l0, index, size, [], l0))).toBe('bad-argument');
  });

  it('rejects a proof that is not an array (parsed JSON null passed through)', () => {
    expect(reasonOf(() => verifyInclusion(l0, 0, 1, null as unknown as Uint8Array[], l0))).toBe('bad-argument');
  });
});

describe('verifyConsistency (RFC 9162 §2.1.4.2)', () => {
  it('accepts 3 → 5 and 4 → 5 (the power-of-two case, where the old root is not in the proof)', () => {
    expect(reasonOf(() => verifyConsistency(3, 5, [l2, l3, nodeHash(l0, l1), l4], root(3), root(5)))).toBe('none');
    expect(reasonOf(() => verifyConsistency(4, 5, [l4], root(4), root(5)))).toBe('none');
  });

  it('accepts equal sizes with equal roots and an empty proof', () => {
    expect(reasonOf(() => verifyConsistency(5, 5, [], root(5), root(5)))).toBe('none');
  });

  it('rejects equal sizes with different roots (a fork) or a non-empty proof', () => {
    expect(reasonOf(() => verifyConsistency(5, 5, [], root(5), root(4)))).toBe('root-mismatch');
    expect(reasonOf(() => verifyConsistency(5, 5, [l0], root(5), root(5)))).toBe('proof-length');
  });

  it('rejects consistency from the empty tree, even 0 → 0: the caller handles size 0', () => {
    expect(reasonOf(() => verifyConsistency(0, 0, [], emptyRoot(), emptyRoot()))).toBe('empty-tree');
    expect(reasonOf(() => verifyConsistency(0, 5, [], emptyRoot(), root(5)))).toBe('empty-tree');
  });

  it('rejects a shrinking log (size1 > size2)', () => {
    expect(reasonOf(() => verifyConsistency(5, 4, [l4], root(5), root(4)))).toBe('size-order');
  });

  it('rejects an empty proof between different sizes', () => {
    expect(reasonOf(() => verifyConsistency(4, 5, [], root(4), root(5)))).toBe('proof-length');
  });

  it('rejects trailing garbage and a truncated proof', () => {
    const proof = [l2, l3, nodeHash(l0, l1), l4];
    expect(reasonOf(() => verifyConsistency(3, 5, [...proof, l0], root(3), root(5)))).toBe('proof-length');
    expect(reasonOf(() => verifyConsistency(3, 5, proof.slice(0, 3), root(3), root(5)))).toBe('proof-length');
  });

  it('rejects a new root that does not extend the old one (a rewritten history)', () => {
    const forged = merkleTreeHash([l0, l1, leafHash(Uint8Array.of(99)), l3, l4]);
    expect(reasonOf(() => verifyConsistency(4, 5, [l4], root(4), forged))).toBe('root-mismatch');
    expect(reasonOf(() => verifyConsistency(3, 5, [l2, l3, nodeHash(l0, l1), l4], root(3), forged))).toBe('root-mismatch');
  });

  it('rejects hashes that are not 32 bytes when sizes differ', () => {
    expect(reasonOf(() => verifyConsistency(4, 5, [l4.subarray(1)], root(4), root(5)))).toBe('bad-hash-length');
    expect(reasonOf(() => verifyConsistency(4, 5, [l4], root(4).subarray(1), root(5)))).toBe('bad-hash-length');
  });
});
