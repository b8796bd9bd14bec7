import { assertHash, emptyRoot, nodeHash } from './hash';
import { bytesEqual } from './bytes';

// Sizes and indices are plain numbers (safe integers, up to 2^53 − 1 leaves). JavaScript's bitwise operators
// work on 32 bits only, so the tree arithmetic below halves and doubles instead of shifting.

/**
 * A perfect subtree of the log: the 2^level leaves [index·2^level, (index+1)·2^level). Level 0 nodes are the
 * leaf hashes. These are the subtree hashes a database stores as leaves are appended (RFC 9162 §2.1.1: the
 * left child of every MTH split is such a subtree), so any proof or root needs only O(log n) of them.
 */
export interface NodeId {
  readonly level: number;
  readonly index: number;
}

/** A perfect subtree and its hash, as {@link appendLeaves} produces it for storage. */
export interface StoredNode extends NodeId {
  readonly hash: Uint8Array;
}

/**
 * Where the perfect-subtree hashes live (a database table keyed by level and index, or memory).
 * `getNodes` returns the hashes in the order of `ids`, and rejects when one is missing.
 */
export interface NodeStore {
  getNodes(ids: readonly NodeId[]): Promise<Uint8Array[]>;
}

/**
 * The right edge of a tree of `size` leaves: the hashes of the perfect subtrees that [0, size) decomposes into,
 * largest (leftmost) first, one per set bit of `size` (a "compact range" over [0, size)). Enough to append the
 * next leaf and to compute the root, in O(log n) memory.
 */
export interface Frontier {
  readonly size: number;
  readonly hashes: readonly Uint8Array[];
}

function assertSize(n: number, what: string): void {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`${what} must be a non-negative safe integer, got ${n}`);
}

/** Largest power of two strictly less than n, for n ≥ 2 (the split point k of RFC 9162 §2.1.1). */
function splitPoint(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

/** Largest power of two ≤ n, for n ≥ 1, with its exponent. */
function floorPow2(n: number): { size: number; level: number } {
  let size = 1;
  let level = 0;
  while (size * 2 <= n) {
    size *= 2;
    level += 1;
  }
  return { size, level };
}

const isArray = (value: unknown): boolean => Array.isArray(value);

function isOdd(n: number): boolean {
  return n % 2 === 1;
}

/**
 * Reference Merkle Tree Hash MTH(D[n]) of RFC 9162 §2.1.1, computed recursively from the leaf hashes. O(n) time:
 * for tests and for checking a small downloaded log, not for serving proofs.
 * @throws RangeError when a leaf hash is not 32 bytes
 */
export function merkleTreeHash(leafHashes: readonly Uint8Array[]): Uint8Array {
  leafHashes.forEach((h, i) => assertHash(h, `leaf hash ${i}`));
  const mth = (begin: number, end: number): Uint8Array => {
    const n = end - begin;
    if (n === 1) return leafHashes[begin]!;
    const k = splitPoint(n);
    return nodeHash(mth(begin, begin + k), mth(begin + k, end));
  };
  return leafHashes.length === 0 ? emptyRoot() : mth(0, leafHashes.length);
}

/** The frontier of the empty tree, whose root is MTH({}) = SHA-256("") (RFC 9162 §2.1.1). */
export function emptyFrontier(): Frontier {
  return { size: 0, hashes: [] };
}

/**
 * The perfect subtrees that [begin, end) splits into, left to right, when [begin, end) is a node of the RFC 9162
 * §2.1.1 tree (begin aligned to a power of two ≥ end − begin): one per set bit of end − begin, largest first.
 */
function coverIds(begin: number, end: number): NodeId[] {
  const ids: NodeId[] = [];
  let at = begin;
  while (at < end) {
    const { size, level } = floorPow2(end - at);
    ids.push({ level, index: at / size });
    at += size;
  }
  return ids;
}

/**
 * MTH of a node given its perfect-subtree cover (largest first): RFC 9162 §2.1.1 splits an unbalanced node at the
 * largest power of two, so the node is the cover folded from the right.
 */
function foldCover(hashes: readonly Uint8Array[]): Uint8Array {
  let acc = hashes[hashes.length - 1];
  if (acc === undefined) throw new RangeError('empty cover');
  for (let i = hashes.length - 2; i >= 0; i--) acc = nodeHash(hashes[i]!, acc);
  return acc;
}

/**
 * The ids of the perfect subtrees whose hashes make up the {@link Frontier} of a tree of `size` leaves, largest
 * first: what to read from a store to resume appending, or to compute the root at `size` (RFC 9162 §2.1.1).
 * @throws RangeError on a size that is not a non-negative safe integer
 */
export function frontierIds(size: number): NodeId[] {
  assertSize(size, 'tree size');
  return coverIds(0, size);
}

/**
 * Builds a frontier from the hashes of {@link frontierIds}(size), in that order.
 * @throws RangeError on a wrong count or a hash that is not 32 bytes
 */
export function frontierFromHashes(size: number, hashes: readonly Uint8Array[]): Frontier {
  const ids = frontierIds(size);
  if (hashes.length !== ids.length) throw new RangeError(`a frontier of size ${size} has ${ids.length} hashes, got ${hashes.length}`);
  hashes.forEach((h, i) => assertHash(h, `frontier hash ${i}`));
  return { size, hashes: hashes.map((h) => Uint8Array.from(h)) };
}

/**
 * Root hash MTH(D[size]) of the tree a frontier describes (RFC 9162 §2.1.1); the empty tree has {@link emptyRoot}.
 * O(log n) hashing.
 */
export function frontierRoot(frontier: Frontier): Uint8Array {
  return frontier.size === 0 ? emptyRoot() : foldCover(frontier.hashes);
}

/**
 * Appends leaf hashes to a tree (RFC 9162 §2.1.1) and returns the new frontier together with every perfect subtree
 * the appends completed: appending leaf i yields node (0, i) and, for each level l ≥ 1 with 2^l dividing i + 1,
 * node (l, (i + 1)/2^l − 1). Storing exactly these nodes is what lets {@link inclusionProof},
 * {@link consistencyProof} and {@link treeRoot} answer from O(log n) reads. The input frontier is not modified.
 * @throws RangeError when a leaf hash is not 32 bytes or the tree would exceed 2^53 − 1 leaves
 */
export function appendLeaves(frontier: Frontier, leafHashes: readonly Uint8Array[]): { frontier: Frontier; nodes: StoredNode[] } {
  assertSize(frontier.size, 'frontier size');
  if (frontier.hashes.length !== coverIds(0, frontier.size).length) throw new RangeError('frontier hashes do not match its size');
  if (!Number.isSafeInteger(frontier.size + leafHashes.length)) throw new RangeError('tree size would exceed 2^53 − 1');
  const stack = [...frontier.hashes];
  const nodes: StoredNode[] = [];
  let size = frontier.size;
  leafHashes.forEach((leaf, i) => {
    assertHash(leaf, `leaf hash ${i}`);
    let hash: Uint8Array = Uint8Array.from(leaf);
    let level = 0;
    let index = size;
    nodes.push({ level, index, hash });
    // Each set low bit of the old size is a perfect subtree on top of the stack that the new leaf completes.
    for (let s = size; isOdd(s); s = (s - 1) / 2) {
      hash = nodeHash(stack.pop()!, hash);
      level += 1;
      index = (index - 1) / 2;
      nodes.push({ level, index, hash });
    }
    stack.push(hash);
    size += 1;
  });
  return { frontier: { size, hashes: stack }, nodes };
}

/** A proof element: MTH(D[begin:end]) for a node [begin, end) of the tree. */
type Range = readonly [begin: number, end: number];

/** The nodes PATH(index, D[size]) of RFC 9162 §2.1.3.1 names, leaf to root. */
function inclusionRanges(index: number, size: number): Range[] {
  const ranges: Range[] = [];
  let begin = 0;
  let end = size;
  while (end - begin > 1) {
    const mid = begin + splitPoint(end - begin);
    if (index < mid) {
      ranges.push([mid, end]);
      end = mid;
    } else {
      ranges.push([begin, mid]);
      begin = mid;
    }
  }
  return ranges.reverse();
}

/** The nodes PROOF(size1, D[size2]) = SUBPROOF(size1, D[size2], true) of RFC 9162 §2.1.4.1 names, in proof order. */
function consistencyRanges(size1: number, size2: number): Range[] {
  const ranges: Range[] = [];
  let begin = 0;
  let end = size2;
  // SUBPROOF's b: true while every turn went left, so [begin, end) starts at leaf 0. If it is still true when the
  // walk reaches [0, size1), that node is the old root itself, which the verifier already has.
  let complete = true;
  while (size1 !== end) {
    const mid = begin + splitPoint(end - begin);
    if (size1 <= mid) {
      ranges.push([mid, end]);
      end = mid;
    } else {
      ranges.push([begin, mid]);
      begin = mid;
      complete = false;
    }
  }
  if (!complete) ranges.push([begin, end]);
  return ranges.reverse();
}

/**
 * Hashes of the given tree nodes from one batched store read. Every node is either a perfect subtree (one read) or
 * lies on the right edge of the tree (one read per set bit of its width); a proof has at most one such ragged node,
 * so a proof costs O(log n) reads.
 */
async function hashRanges(store: NodeStore, ranges: readonly Range[]): Promise<Uint8Array[]> {
  const covers = ranges.map(([begin, end]) => coverIds(begin, end));
  const ids = covers.flat();
  const hashes = ids.length === 0 ? [] : await store.getNodes(ids);
  if (!isArray(hashes) || hashes.length !== ids.length) throw new RangeError(`node store returned ${hashes.length} hashes for ${ids.length} ids`);
  hashes.forEach((h, i) => assertHash(h, `stored node (${ids[i]!.level}, ${ids[i]!.index})`));
  let at = 0;
  return covers.map((cover) => {
    const part = hashes.slice(at, at + cover.length);
    at += cover.length;
    return foldCover(part);
  });
}

/**
 * Inclusion proof (audit path) PATH(index, D[treeSize]) of RFC 9162 §2.1.3.1 for leaf `index` in the tree of
 * `treeSize` leaves, from a store of perfect subtrees, in one batch of at most 2·⌈log2 n⌉ node reads.
 * Verify it with `verifyInclusion`.
 * @throws RangeError unless 0 ≤ index < treeSize (safe integers), or when the store lacks a node or returns a bad hash
 */
export async function inclusionProof(store: NodeStore, index: number, treeSize: number): Promise<Uint8Array[]> {
  assertSize(index, 'leaf index');
  assertSize(treeSize, 'tree size');
  if (index >= treeSize) throw new RangeError(`leaf index ${index} is not below tree size ${treeSize}`);
  return hashRanges(store, inclusionRanges(index, treeSize));
}

/**
 * Consistency proof PROOF(size1, D[size2]) of RFC 9162 §2.1.4.1 between the trees of `size1` and `size2` leaves,
 * from a store of perfect subtrees, in one batch of at most 2·⌈log2 size2⌉ node reads. Empty when the sizes are
 * equal. Verify it with `verifyConsistency`.
 * @throws RangeError unless 0 < size1 ≤ size2 (safe integers): RFC 9162 defines no proof from the empty tree — or
 *   when the store lacks a node or returns a bad hash
 */
export async function consistencyProof(store: NodeStore, size1: number, size2: number): Promise<Uint8Array[]> {
  assertSize(size1, 'size1');
  assertSize(size2, 'size2');
  if (size1 === 0) throw new RangeError('there is no consistency proof from the empty tree (size1 = 0)');
  if (size1 > size2) throw new RangeError(`size1 ${size1} is greater than size2 ${size2}`);
  return hashRanges(store, consistencyRanges(size1, size2));
}

/**
 * Root hash MTH(D[treeSize]) of RFC 9162 §2.1.1 from a store of perfect subtrees: one batch of popcount(treeSize)
 * reads, none for the empty tree.
 * @throws RangeError on a bad size, or when the store lacks a node or returns a bad hash
 */
export async function treeRoot(store: NodeStore, treeSize: number): Promise<Uint8Array> {
  assertSize(treeSize, 'tree size');
  if (treeSize === 0) return emptyRoot();
  const [root] = await hashRanges(store, [[0, treeSize]]);
  return root!;
}

function nodeKey(id: NodeId): string {
  return `${id.level}/${id.index}`;
}

/**
 * A {@link NodeStore} in memory (perfect subtrees of RFC 9162 §2.1.1 keyed by level and index), for tests and for
 * verifying a downloaded log. Append-only like the database table it stands for: storing a node again with the same
 * hash is a no-op (an append may be retried), storing it with another hash is refused.
 */
export class MemoryNodeStore implements NodeStore {
  private readonly nodes = new Map<string, Uint8Array>();

  /**
   * Stores nodes from {@link appendLeaves}.
   * @throws RangeError on a bad id or hash, or an attempt to change a stored node
   */
  put(nodes: readonly StoredNode[]): void {
    for (const node of nodes) {
      assertSize(node.level, 'node level');
      assertSize(node.index, 'node index');
      assertHash(node.hash, 'node hash');
      const key = nodeKey(node);
      const existing = this.nodes.get(key);
      if (existing !== undefined && !bytesEqual(existing, node.hash)) throw new RangeError(`node (${key}) is already stored with another hash`);
      this.nodes.set(key, Uint8Array.from(node.hash));
    }
  }

  /**
   * The hashes of `ids`, in order.
   * @throws RangeError naming the first missing node
   */
  getNodes(ids: readonly NodeId[]): Promise<Uint8Array[]> {
    return Promise.resolve().then(() =>
      ids.map((id) => {
        const hash = this.nodes.get(nodeKey(id));
        if (hash === undefined) throw new RangeError(`node (${nodeKey(id)}) is not stored`);
        return Uint8Array.from(hash);
      }),
    );
  }

  /** Number of stored nodes (about 2n for n leaves). */
  get size(): number {
    return this.nodes.size;
  }
}
