import { bytesEqual } from './bytes';
import { HASH_SIZE, nodeHash } from './hash';

/** Why a proof was rejected; stable strings a caller can branch or report on. */
export type ProofErrorReason =
  | 'bad-argument' // a size or index that is not a non-negative safe integer, or a proof that is not an array
  | 'bad-hash-length' // a leaf hash, proof node or root that is not 32 bytes
  | 'index-out-of-range' // leaf index ≥ tree size
  | 'size-order' // size1 > size2
  | 'empty-tree' // consistency from size 0
  | 'proof-length' // too many or too few proof nodes for the sizes
  | 'root-mismatch'; // the proof leads to another root

/** A rejected inclusion or consistency proof (RFC 9162 §2.1.3.2, §2.1.4.2). */
export class ProofError extends Error {
  override readonly name = 'ProofError';

  /**
   * @param reason machine-readable cause
   * @param message human-readable detail
   */
  constructor(
    readonly reason: ProofErrorReason,
    message: string,
  ) {
    super(message);
  }
}

function checkCount(n: number, what: string): void {
  if (!Number.isSafeInteger(n) || n < 0) throw new ProofError('bad-argument', `${what} must be a non-negative safe integer, got ${String(n)}`);
}

function checkHash(hash: Uint8Array, what: string): void {
  if (!(hash instanceof Uint8Array) || hash.length !== HASH_SIZE) {
    const length = hash instanceof Uint8Array ? `${hash.length} bytes` : 'not bytes';
    throw new ProofError('bad-hash-length', `${what} must be ${HASH_SIZE} bytes, got ${length}`);
  }
}

function checkProof(proof: readonly Uint8Array[]): void {
  if (!isArray(proof)) throw new ProofError('bad-argument', 'proof must be an array of hashes');
  proof.forEach((node, i) => checkHash(node, `proof node ${i}`));
}

// A guard that does not narrow: the declared type says array, the caller (parsed JSON) may not have kept the promise.
const isArray = (value: unknown): boolean => Array.isArray(value);
const isOdd = (n: number): boolean => n % 2 === 1;
const half = (n: number): number => Math.floor(n / 2);

function isPowerOfTwo(n: number): boolean {
  let p = 1;
  while (p < n) p *= 2;
  return p === n;
}

/**
 * The root hash that an inclusion proof leads to from `leafHash` at `index` in a tree of `treeSize` leaves: steps
 * 1–4 of RFC 9162 §2.1.3.2. Compare it with a trusted root, or use {@link verifyInclusion}, which does.
 * @throws ProofError when index ≥ treeSize, a hash is not 32 bytes, or the proof has the wrong number of nodes
 */
export function rootFromInclusion(leafHash: Uint8Array, index: number, treeSize: number, proof: readonly Uint8Array[]): Uint8Array {
  checkCount(index, 'leaf index');
  checkCount(treeSize, 'tree size');
  if (index >= treeSize) throw new ProofError('index-out-of-range', `leaf index ${index} is not below tree size ${treeSize}`);
  // Without this a 0-byte "leaf hash" equal to a 0-byte "root" would prove itself in a one-leaf tree.
  checkHash(leafHash, 'leaf hash');
  checkProof(proof);
  let fn = index;
  let sn = treeSize - 1;
  let r = leafHash;
  for (const p of proof) {
    if (sn === 0) throw new ProofError('proof-length', `proof has too many nodes (${proof.length}) for leaf ${index} of ${treeSize}`);
    if (isOdd(fn) || fn === sn) {
      r = nodeHash(p, r);
      while (!isOdd(fn) && fn !== 0) {
        fn = half(fn);
        sn = half(sn);
      }
    } else {
      r = nodeHash(r, p);
    }
    fn = half(fn);
    sn = half(sn);
  }
  if (sn !== 0) throw new ProofError('proof-length', `proof has too few nodes (${proof.length}) for leaf ${index} of ${treeSize}`);
  return r;
}

/**
 * Verifies that `leafHash` is leaf `index` of the tree of `treeSize` leaves whose root is `root`, given the inclusion
 * proof PATH(index, D[treeSize]) (RFC 9162 §2.1.3.2). Strict: the leaf hash, the root and every proof node must be
 * exactly 32 bytes, index < treeSize, and the proof exactly as long as the path (no missing or trailing nodes).
 * @throws ProofError with the reason on any failure; returns nothing on success
 */
export function verifyInclusion(leafHash: Uint8Array, index: number, treeSize: number, proof: readonly Uint8Array[], root: Uint8Array): void {
  const computed = rootFromInclusion(leafHash, index, treeSize, proof);
  checkHash(root, 'root');
  if (!bytesEqual(computed, root)) throw new ProofError('root-mismatch', `inclusion proof for leaf ${index} of ${treeSize} leads to another root`);
}

/**
 * Verifies that the tree of `size2` leaves with root `root2` extends the tree of `size1` leaves with root `root1`,
 * given the consistency proof PROOF(size1, D[size2]) (RFC 9162 §2.1.4.2).
 *
 * - size1 > size2 is rejected, and so is size1 = 0: RFC 9162 defines no proof from the empty tree and the published
 *   vectors expect a rejection, even for 0 → 0. The empty tree is trivially consistent with every tree, so a
 *   caller that wants that answer checks size1 = 0 itself before calling.
 * - size1 = size2 needs an empty proof and root1 = root2 (compared byte for byte, nothing is hashed).
 * - Otherwise the proof must be non-empty and exactly as long as PROOF, and root1, root2 and every node 32 bytes.
 * @throws ProofError with the reason on any failure; returns nothing on success
 */
export function verifyConsistency(size1: number, size2: number, proof: readonly Uint8Array[], root1: Uint8Array, root2: Uint8Array): void {
  checkCount(size1, 'size1');
  checkCount(size2, 'size2');
  if (!isArray(proof)) throw new ProofError('bad-argument', 'proof must be an array of hashes');
  if (size1 > size2) throw new ProofError('size-order', `size1 ${size1} is greater than size2 ${size2}`);
  if (size1 === 0) throw new ProofError('empty-tree', 'no consistency proof from the empty tree (size1 = 0); handle size 0 before verifying');
  if (size1 === size2) {
    if (!(root1 instanceof Uint8Array) || !(root2 instanceof Uint8Array)) throw new ProofError('bad-argument', 'roots must be bytes');
    if (proof.length !== 0) throw new ProofError('proof-length', `sizes are equal (${size1}) but the proof is not empty`);
    if (!bytesEqual(root1, root2)) throw new ProofError('root-mismatch', `sizes are equal (${size1}) but the roots differ`);
    return;
  }
  if (proof.length === 0) throw new ProofError('proof-length', `empty proof for sizes ${size1} < ${size2}`);
  checkHash(root1, 'root1');
  checkHash(root2, 'root2');
  checkProof(proof);
  // Step 2: when the old tree is a perfect subtree of the new one, PROOF omits its root; the verifier supplies it.
  const path = isPowerOfTwo(size1) ? [root1, ...proof] : proof;
  let fn = size1 - 1;
  let sn = size2 - 1;
  while (isOdd(fn)) {
    fn = half(fn);
    sn = half(sn);
  }
  let fr = path[0]!;
  let sr = fr;
  for (const c of path.slice(1)) {
    if (sn === 0) throw new ProofError('proof-length', `proof has too many nodes (${proof.length}) for sizes ${size1} → ${size2}`);
    if (isOdd(fn) || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      while (!isOdd(fn) && fn !== 0) {
        fn = half(fn);
        sn = half(sn);
      }
    } else {
      sr = nodeHash(sr, c);
    }
    fn = half(fn);
    sn = half(sn);
  }
  if (sn !== 0) throw new ProofError('proof-length', `proof has too few nodes (${proof.length}) for sizes ${size1} → ${size2}`);
  if (!bytesEqual(fr, root1)) throw new ProofError('root-mismatch', `consistency proof does not lead to root1 at size ${size1}`);
  if (!bytesEqual(sr, root2)) throw new ProofError('root-mismatch', `consistency proof does not lead to root2 at size ${size2}`);
}
