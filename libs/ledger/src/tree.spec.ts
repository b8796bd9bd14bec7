import fc from 'fast-check';
import { emptyRoot, leafHash, nodeHash } from './hash';
import {
  MemoryNodeStore,
  appendLeaves,
  consistencyProof,
  emptyFrontier,
  frontierFromHashes,
  frontierIds,
  frontierRoot,
  inclusionProof,
  merkleTreeHash,
  treeRoot,
  type NodeId,
  type NodeStore,
} from './tree';
import { ProofError, verifyConsistency, verifyInclusion } from './verify';

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');
const hexes = (list: readonly Uint8Array[]) => list.map(hex);

const MAX_LEAVES = 300;
const LEAVES = Array.from({ length: MAX_LEAVES }, (_, i) => leafHash(new Uint8Array(Buffer.from(`entry ${i}`))));

// ---- RFC 9162 §2.1 written out recursively, straight from the definitions, as the reference ----

const split = (n: number) => {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
};

/** PATH(m, D[n]) of RFC 9162 §2.1.3.1. */
function refPath(m: number, leaves: readonly Uint8Array[]): Uint8Array[] {
  const n = leaves.length;
  if (n === 1) return [];
  const k = split(n);
  return m < k ? [...refPath(m, leaves.slice(0, k)), merkleTreeHash(leaves.slice(k))] : [...refPath(m - k, leaves.slice(k)), merkleTreeHash(leaves.slice(0, k))];
}

/** SUBPROOF(m, D[n], b) of RFC 9162 §2.1.4.1. */
function refSubproof(m: number, leaves: readonly Uint8Array[], b: boolean): Uint8Array[] {
  const n = leaves.length;
  if (m === n) return b ? [] : [merkleTreeHash(leaves)];
  const k = split(n);
  return m <= k
    ? [...refSubproof(m, leaves.slice(0, k), b), merkleTreeHash(leaves.slice(k))]
    : [...refSubproof(m - k, leaves.slice(k), false), merkleTreeHash(leaves.slice(0, k))];
}

/** A store that counts what it is asked for. */
class CountingStore implements NodeStore {
  calls = 0;
  reads = 0;
  constructor(private readonly inner: NodeStore) {}
  getNodes(ids: readonly NodeId[]): Promise<Uint8Array[]> {
    this.calls += 1;
    this.reads += ids.length;
    return this.inner.getNodes(ids);
  }
}

/** A log of the first n test leaves, appended in chunks of the given sizes (the rest at the end). */
function buildLog(n: number, chunks: readonly number[] = []) {
  const store = new MemoryNodeStore();
  let frontier = emptyFrontier();
  let at = 0;
  for (const c of [...chunks, n]) {
    const next = Math.min(n, at + c);
    const appended = appendLeaves(frontier, LEAVES.slice(at, next));
    store.put(appended.nodes);
    frontier = appended.frontier;
    at = next;
  }
  return { store, frontier, leaves: LEAVES.slice(0, n) };
}

const ceilLog2 = (n: number) => Math.ceil(Math.log2(n));
const readBound = (n: number) => 2 * ceilLog2(n) + 2;

describe('merkleTreeHash (RFC 9162 §2.1.1)', () => {
  it('is SHA-256("") for no leaves, the leaf for one, a node for two', () => {
    expect(hex(merkleTreeHash([]))).toBe(hex(emptyRoot()));
    expect(hex(merkleTreeHash([LEAVES[0]!]))).toBe(hex(LEAVES[0]!));
    expect(hex(merkleTreeHash(LEAVES.slice(0, 2)))).toBe(hex(nodeHash(LEAVES[0]!, LEAVES[1]!)));
  });

  it('splits at the largest power of two below n', () => {
    const [a, b, c, d, e] = LEAVES as [Uint8Array, Uint8Array, Uint8Array, Uint8Array, Uint8Array];
    expect(hex(merkleTreeHash([a, b, c]))).toBe(hex(nodeHash(nodeHash(a, b), c)));
    expect(hex(merkleTreeHash([a, b, c, d, e]))).toBe(hex(nodeHash(nodeHash(nodeHash(a, b), nodeHash(c, d)), e)));
  });

  // The roots of the 8-entry test tree used across Certificate Transparency implementations (RFC 6962 test data).
  it('gives the known roots of the RFC 6962 test tree', () => {
    const inputs = ['', '00', '10', '2021', '3031', '40414243', '5051525354555657', '606162636465666768696a6b6c6d6e6f'];
    const leaves = inputs.map((h) => leafHash(new Uint8Array(Buffer.from(h, 'hex'))));
    const roots = [
      '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
      'fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125',
      'aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77',
      'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
      '4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4',
      '76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef',
      'ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c',
      '5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328',
    ];
    roots.forEach((root, i) => expect(hex(merkleTreeHash(leaves.slice(0, i + 1)))).toBe(root));
  });
});

describe('appendLeaves and the frontier', () => {
  it('gives the reference root after every append, however the appends are batched', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: MAX_LEAVES }), fc.array(fc.integer({ min: 0, max: 40 }), { maxLength: 12 }), (n, chunks) => {
        const { frontier, store } = buildLog(n, chunks);
        expect(frontier.size).toBe(n);
        expect(hex(frontierRoot(frontier))).toBe(hex(merkleTreeHash(LEAVES.slice(0, n))));
        // One node per leaf plus one per completed interior subtree: 2n − popcount(n).
        expect(store.size).toBe(2 * n - n.toString(2).replaceAll('0', '').length);
      }),
      { numRuns: 100 },
    );
  });

  it('stores exactly the perfect subtrees each append completes, with their MTH', async () => {
    const n = 37;
    let frontier = emptyFrontier();
    for (let i = 0; i < n; i++) {
      const { frontier: next, nodes } = appendLeaves(frontier, [LEAVES[i]!]);
      const expected: NodeId[] = [];
      for (let level = 0; (i + 1) % 2 ** level === 0; level++) expected.push({ level, index: (i + 1) / 2 ** level - 1 });
      expect(nodes.map(({ level, index }) => ({ level, index }))).toEqual(expected);
      for (const node of nodes) {
        const width = 2 ** node.level;
        expect(hex(node.hash)).toBe(hex(merkleTreeHash(LEAVES.slice(node.index * width, (node.index + 1) * width))));
      }
      frontier = next;
    }
    // The frontier can be rebuilt from the store alone (what a restarted writer does).
    const { store } = buildLog(n);
    const ids = frontierIds(n);
    expect(ids).toEqual([
      { level: 5, index: 0 },
      { level: 2, index: 8 },
      { level: 0, index: 36 },
    ]);
    const rebuilt = frontierFromHashes(n, await store.getNodes(ids));
    expect(hexes(rebuilt.hashes)).toEqual(hexes(frontier.hashes));
    expect(hex(frontierRoot(appendLeaves(rebuilt, [LEAVES[n]!]).frontier))).toBe(hex(merkleTreeHash(LEAVES.slice(0, n + 1))));
  });

  it('does not modify the frontier it is given', () => {
    const { frontier } = buildLog(5);
    const before = hexes(frontier.hashes);
    appendLeaves(frontier, LEAVES.slice(5, 9));
    expect(frontier.size).toBe(5);
    expect(hexes(frontier.hashes)).toEqual(before);
  });

  it('refuses leaf hashes that are not 32 bytes, and frontiers that do not match their size', () => {
    expect(() => appendLeaves(emptyFrontier(), [new Uint8Array(31)])).toThrow(RangeError);
    expect(() => appendLeaves({ size: 3, hashes: [LEAVES[0]!] }, [LEAVES[1]!])).toThrow(RangeError);
    expect(() => frontierFromHashes(3, [LEAVES[0]!])).toThrow(RangeError);
  });

  it('refuses to overwrite a stored node with another hash (a rewritten ledger row)', () => {
    const { store } = buildLog(4);
    expect(() => store.put([{ level: 0, index: 2, hash: LEAVES[99]! }])).toThrow(/another hash/);
    expect(() => store.put([{ level: 0, index: 2, hash: LEAVES[2]! }])).not.toThrow();
  });
});

describe('treeRoot from stored subtrees', () => {
  it('matches the reference root at every earlier size, in popcount(size) reads', async () => {
    const { store } = buildLog(MAX_LEAVES);
    for (let size = 0; size <= MAX_LEAVES; size++) {
      const counting = new CountingStore(store);
      expect(hex(await treeRoot(counting, size))).toBe(hex(merkleTreeHash(LEAVES.slice(0, size))));
      expect(counting.reads).toBe(size.toString(2).replaceAll('0', '').length);
    }
  });
});

describe('inclusionProof from stored subtrees (RFC 9162 §2.1.3)', () => {
  it('equals PATH, verifies against the reference root, and reads O(log n) nodes in one batch', async () => {
    const { store } = buildLog(MAX_LEAVES);
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: MAX_LEAVES }).chain((size) => fc.tuple(fc.constant(size), fc.integer({ min: 0, max: size - 1 }))),
        async ([size, index]) => {
          const counting = new CountingStore(store);
          const proof = await inclusionProof(counting, index, size);
          const leaves = LEAVES.slice(0, size);
          expect(hexes(proof)).toEqual(hexes(refPath(index, leaves)));
          expect(() => verifyInclusion(LEAVES[index]!, index, size, proof, merkleTreeHash(leaves))).not.toThrow();
          expect(counting.calls).toBeLessThanOrEqual(1);
          expect(counting.reads).toBeLessThanOrEqual(readBound(size));
        },
      ),
      { numRuns: 300 },
    );
  });

  it('is exhaustively right for every leaf of every tree up to 64 leaves', async () => {
    const { store } = buildLog(64);
    for (let size = 1; size <= 64; size++) {
      const root = merkleTreeHash(LEAVES.slice(0, size));
      for (let index = 0; index < size; index++) {
        const proof = await inclusionProof(store, index, size);
        verifyInclusion(LEAVES[index]!, index, size, proof, root);
      }
    }
  });

  it('refuses an index outside the tree and a tree the store does not hold', async () => {
    const { store } = buildLog(10);
    await expect(inclusionProof(store, 10, 10)).rejects.toThrow(RangeError);
    await expect(inclusionProof(store, -1, 10)).rejects.toThrow(RangeError);
    await expect(inclusionProof(store, 3, 11)).rejects.toThrow(/not stored/);
  });

  it('refuses a store that answers with the wrong number of hashes or a short hash', async () => {
    const { store } = buildLog(10);
    const short: NodeStore = { getNodes: async (ids) => (await store.getNodes(ids)).slice(1) };
    const truncated: NodeStore = { getNodes: async (ids) => (await store.getNodes(ids)).map((h) => h.subarray(1)) };
    await expect(inclusionProof(short, 3, 10)).rejects.toThrow(RangeError);
    await expect(inclusionProof(truncated, 3, 10)).rejects.toThrow(RangeError);
  });
});

describe('consistencyProof from stored subtrees (RFC 9162 §2.1.4)', () => {
  it('equals PROOF, verifies between the reference roots, and reads O(log n) nodes in one batch', async () => {
    const { store } = buildLog(MAX_LEAVES);
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: MAX_LEAVES }).chain((size2) => fc.tuple(fc.integer({ min: 1, max: size2 }), fc.constant(size2))),
        async ([size1, size2]) => {
          const counting = new CountingStore(store);
          const proof = await consistencyProof(counting, size1, size2);
          expect(hexes(proof)).toEqual(hexes(refSubproof(size1, LEAVES.slice(0, size2), true)));
          const root1 = merkleTreeHash(LEAVES.slice(0, size1));
          const root2 = merkleTreeHash(LEAVES.slice(0, size2));
          expect(() => verifyConsistency(size1, size2, proof, root1, root2)).not.toThrow();
          expect(counting.calls).toBeLessThanOrEqual(1);
          expect(counting.reads).toBeLessThanOrEqual(readBound(size2));
        },
      ),
      { numRuns: 300 },
    );
  });

  it('is exhaustively right for every pair of sizes up to 64 leaves', async () => {
    const { store } = buildLog(64);
    const roots = Array.from({ length: 65 }, (_, n) => merkleTreeHash(LEAVES.slice(0, n)));
    for (let size2 = 1; size2 <= 64; size2++) {
      for (let size1 = 1; size1 <= size2; size1++) {
        verifyConsistency(size1, size2, await consistencyProof(store, size1, size2), roots[size1]!, roots[size2]!);
      }
    }
  });

  it('refuses size1 = 0 and size1 > size2', async () => {
    const { store } = buildLog(10);
    await expect(consistencyProof(store, 0, 5)).rejects.toThrow(RangeError);
    await expect(consistencyProof(store, 6, 5)).rejects.toThrow(RangeError);
  });
});

describe('tampering', () => {
  const { store } = buildLog(MAX_LEAVES);
  const flip = (proof: readonly Uint8Array[], node: number, bit: number) =>
    proof.map((h, i) => {
      if (i !== node) return h;
      const copy = Uint8Array.from(h);
      copy[bit >> 3]! ^= 1 << (bit & 7);
      return copy;
    });

  it('detects any flipped bit in an inclusion proof, another index, another leaf, a missing or an extra node', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 2, max: MAX_LEAVES }).chain((size) => fc.tuple(fc.constant(size), fc.integer({ min: 0, max: size - 1 }), fc.integer({ min: 0, max: size - 1 }), fc.nat(), fc.nat({ max: 255 }))),
        async ([size, index, other, nodePick, bit]) => {
          const proof = await inclusionProof(store, index, size);
          const root = merkleTreeHash(LEAVES.slice(0, size));
          const leaf = LEAVES[index]!;
          const node = nodePick % proof.length;
          expect(() => verifyInclusion(leaf, index, size, flip(proof, node, bit), root)).toThrow(ProofError);
          if (other !== index) {
            expect(() => verifyInclusion(leaf, other, size, proof, root)).toThrow(ProofError);
            expect(() => verifyInclusion(LEAVES[other]!, index, size, proof, root)).toThrow(ProofError);
          }
          expect(() => verifyInclusion(leaf, index, size, proof.slice(0, -1), root)).toThrow(ProofError);
          expect(() => verifyInclusion(leaf, index, size, [...proof, root], root)).toThrow(ProofError);
          expect(() => verifyInclusion(leaf, index, size, [root, ...proof], root)).toThrow(ProofError);
          expect(() => verifyInclusion(leaf, index, size, proof, flip([root], 0, bit)[0]!)).toThrow(ProofError);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('detects any flipped bit in a consistency proof or either root, a missing or an extra node', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 2, max: MAX_LEAVES }).chain((size2) => fc.tuple(fc.integer({ min: 1, max: size2 - 1 }), fc.constant(size2), fc.nat(), fc.nat({ max: 255 }))),
        async ([size1, size2, nodePick, bit]) => {
          const proof = await consistencyProof(store, size1, size2);
          const root1 = merkleTreeHash(LEAVES.slice(0, size1));
          const root2 = merkleTreeHash(LEAVES.slice(0, size2));
          const node = nodePick % proof.length;
          expect(() => verifyConsistency(size1, size2, flip(proof, node, bit), root1, root2)).toThrow(ProofError);
          expect(() => verifyConsistency(size1, size2, proof, flip([root1], 0, bit)[0]!, root2)).toThrow(ProofError);
          expect(() => verifyConsistency(size1, size2, proof, root1, flip([root2], 0, bit)[0]!)).toThrow(ProofError);
          expect(() => verifyConsistency(size1, size2, proof.slice(0, -1), root1, root2)).toThrow(ProofError);
          expect(() => verifyConsistency(size1, size2, [...proof, root2], root1, root2)).toThrow(ProofError);
          expect(() => verifyConsistency(size1, size2, proof, root2, root1)).toThrow(ProofError);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('detects a rewritten leaf: the old checkpoint root no longer matches, nor does the consistency proof', async () => {
    const n = 50;
    const { store: honest } = buildLog(n);
    const oldRoot = await treeRoot(honest, 30);
    const forged = [...LEAVES.slice(0, n)];
    forged[12] = leafHash(new Uint8Array(Buffer.from('rewritten')));
    const rewritten = new MemoryNodeStore();
    rewritten.put(appendLeaves(emptyFrontier(), forged).nodes);
    const newRoot = await treeRoot(rewritten, n);
    expect(hex(await treeRoot(rewritten, 30))).not.toBe(hex(oldRoot));
    const proof = await consistencyProof(rewritten, 30, n);
    expect(() => verifyConsistency(30, n, proof, oldRoot, newRoot)).toThrow(ProofError);
  });
});

describe('trees beyond 32-bit sizes', () => {
  // Such a log cannot be built leaf by leaf, so it is sparse: every leaf is the empty entry's except a few marked
  // ones, each with a hash of its own. A perfect subtree without a marked leaf has the one hash of its level; the
  // others are hashed from their children when asked for, and kept by (level, index). A node read at a wrong index
  // (32-bit arithmetic truncates 2^32 + 5 to 5) therefore has the wrong hash, or does not exist in the log.
  const levels: Uint8Array[] = [leafHash(new Uint8Array(0))];
  for (let l = 1; l <= 53; l++) levels.push(nodeHash(levels[l - 1]!, levels[l - 1]!));

  class SparseLog implements NodeStore {
    private readonly nodes = new Map<string, Uint8Array>();
    private readonly uniform = new Map<number, Uint8Array>();
    private readonly marked: ReadonlyMap<number, Uint8Array>;

    constructor(
      readonly size: number,
      marks: readonly number[],
    ) {
      this.marked = new Map(marks.filter((i) => i >= 0 && i < size).map((i) => [i, leafHash(new Uint8Array(Buffer.from(`marked leaf ${i}`)))]));
    }

    leaf(index: number): Uint8Array {
      return this.marked.get(index) ?? levels[0]!;
    }

    private holdsMark(begin: number, end: number): boolean {
      for (const m of this.marked.keys()) if (m >= begin && m < end) return true;
      return false;
    }

    /** The perfect subtree (level, index): leaves [index·2^level, (index+1)·2^level), which must all be in the log. */
    private node(level: number, index: number): Uint8Array {
      const key = `${level}/${index}`;
      if (!Number.isInteger(level) || level < 0 || level > 53 || !Number.isSafeInteger(index) || index < 0) throw new RangeError(`node (${key}) is not a node`);
      const width = 2 ** level;
      const begin = index * width;
      if (begin + width > this.size) throw new RangeError(`node (${key}) is not in a log of ${this.size} leaves`);
      if (!this.holdsMark(begin, begin + width)) return levels[level]!;
      if (level === 0) return this.leaf(begin);
      let hash = this.nodes.get(key);
      if (hash === undefined) {
        hash = nodeHash(this.node(level - 1, 2 * index), this.node(level - 1, 2 * index + 1));
        this.nodes.set(key, hash);
      }
      return hash;
    }

    getNodes(ids: readonly NodeId[]): Promise<Uint8Array[]> {
      return Promise.resolve().then(() => ids.map(({ level, index }) => this.node(level, index)));
    }

    /** MTH(D[begin:end]) straight from RFC 9162 §2.1.1 (split at the largest power of two below n), not from the store. */
    mth(begin: number, end: number): Uint8Array {
      const n = end - begin;
      if (!this.holdsMark(begin, end)) return this.uniformMth(n);
      if (n === 1) return this.leaf(begin);
      const k = split(n);
      return nodeHash(this.mth(begin, begin + k), this.mth(begin + k, end));
    }

    private uniformMth(n: number): Uint8Array {
      let hash = this.uniform.get(n);
      if (hash === undefined) {
        const k = split(n);
        hash = n === 1 ? levels[0]! : nodeHash(this.uniformMth(k), this.uniformMth(n - k));
        this.uniform.set(n, hash);
      }
      return hash;
    }
  }

  it.each([
    [2 ** 32 + 5, 2 ** 32 + 7, 2 ** 32 + 3],
    [2 ** 40 - 1, 2 ** 45 + 12345, 2 ** 39],
    [Number.MAX_SAFE_INTEGER - 10, Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER - 1],
  ])('proves inclusion and consistency from size %d to %d (leaf %d)', async (size1, size2, index) => {
    // Marks on the proved leaf and its neighbours, on both tree edges, and either side of 2^32.
    const log = new SparseLog(size2, [0, index - 1, index, index + 1, size1 - 1, size1, size2 - 1, 2 ** 32 - 1, 2 ** 32]);
    const root1 = log.mth(0, size1);
    const root2 = log.mth(0, size2);
    expect(hex(await treeRoot(log, size1))).toBe(hex(root1));
    expect(hex(await treeRoot(log, size2))).toBe(hex(root2));
    for (const leaf of [index, size1 - 1, size2 - 1]) {
      const counting = new CountingStore(log);
      const proof = await inclusionProof(counting, leaf, size2);
      expect(counting.reads).toBeLessThanOrEqual(readBound(size2));
      verifyInclusion(log.leaf(leaf), leaf, size2, proof, root2);
      // The proof is for this leaf and position only: the unmarked leaf beside it does not verify with it.
      expect(() => verifyInclusion(levels[0]!, leaf, size2, proof, root2)).toThrow(ProofError);
    }
    const consistency = await consistencyProof(log, size1, size2);
    verifyConsistency(size1, size2, consistency, root1, root2);
    expect(() => verifyConsistency(size1, size2, consistency.slice(1), root1, root2)).toThrow(ProofError);
  });
});
