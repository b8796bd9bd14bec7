import { createHash, randomInt } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import { generateKeyPair } from '@confide/crypto';
import {
  appendLeaves,
  consistencyProof,
  emptyFrontier,
  frontierRoot,
  inclusionProof,
  leafHash,
  merkleTreeHash,
  parseEntry,
  signCheckpoint,
  treeRoot,
  verifyConsistency,
  verifyInclusion,
  type Frontier,
} from '@confide/ledger';
import { openDatabase, SQLITE_FILE, type Database } from '../apps/coordinator/src/db/database';
import { DbNodeStore, EventLog, eventEntryBytes } from '../apps/coordinator/src/db/repositories';
import { fmt, measure, type BenchSection } from './harness';

/**
 * The Merkle ledger on embedded SQLite (DESIGN.md "Ledger"): append throughput through the coordinator's real
 * `EventLog.append`, proof latency through `DbNodeStore` at 10^4–10^6 entries, and the `ledger verify` hashing work,
 * each beside a bare SHA-256 loop (node:crypto) over the same bytes in the same process: the floor.
 */

const ORIGIN = 'bench.confide.example/ledger';
const TYPE = 'contribution.recorded';
const T0 = Date.UTC(2025, 0, 1);
const APPENDS = 5_000;
const APPEND_WARMUP = 100;
const PROOF_SIZES = [10_000, 100_000, 1_000_000] as const;
const PROOF_CALLS = 200;
const PROOF_WARMUP = 20;
const VERIFY_SIZE = 100_000;
const BUILD_CHUNK = 10_000;

/** The event body of entry i: the shape of a recorded contribution (~190 bytes of entry). */
function bodyText(i: number): string {
  // Canonical JSON already (sorted keys, no whitespace), as EventLog stores it.
  return `{"bundleHash":"${i.toString(16).padStart(64, '0')}","participant":"participant-${i % 64}","query":"query-${Math.floor(i / 100)}","round":${1 + (i % 2)}}`;
}

function bodyObject(i: number): object {
  return JSON.parse(bodyText(i)) as object;
}

/** The leaf input of entry i exactly as EventLog hashes it (eventEntryBytes of the stored row). */
function entryOf(i: number): Uint8Array {
  return eventEntryBytes({ idx: i, type: TYPE, body: bodyText(i), created_at: T0 + i * 1000 });
}

const LEAF_PREFIX = Uint8Array.of(0x00);
/** 0x01 ‖ left ‖ right: SHA-256's cost does not depend on the bytes, only on their length. */
const NODE_INPUT = new Uint8Array(65).fill(0xab);
NODE_INPUT[0] = 0x01;

function bareLeaf(entry: Uint8Array): Buffer {
  return createHash('sha256').update(LEAF_PREFIX).update(entry).digest();
}

function bareNode(): Buffer {
  return createHash('sha256').update(NODE_INPUT).digest();
}

/** Number of node hashes appending leaf i costs: one per perfect subtree it completes (trailing 1 bits of i). */
function completedNodes(i: number): number {
  let c = 0;
  for (let s = i; s % 2 === 1; s = (s - 1) / 2) c++;
  return c;
}

/** Node hashes to fold a frontier of `size` leaves into its root: popcount(size) − 1. */
function rootFoldNodes(size: number): number {
  let bits = 0;
  for (let s = size; s > 0; s = Math.floor(s / 2)) bits += s % 2;
  return Math.max(0, bits - 1);
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
}

function ms(n: number): string {
  return `${fmt(n)} ms`;
}

function sorted(xs: readonly number[]): number[] {
  return [...xs].sort((a, b) => a - b);
}

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'confide-ledger-bench-'));
}

type Row = (string | number)[];

/** 1. EventLog.append with a checkpoint signer, sequentially, vs the SHA-256 work of the same appends. */
async function appendRows(): Promise<Row[]> {
  const dir = tempDir();
  let database: Database | undefined;
  try {
    database = await openDatabase({ dataDir: dir });
    const key = generateKeyPair('ed25519');
    const log = new EventLog(database.db, (size, root) => signCheckpoint(key, ORIGIN, { origin: ORIGIN, size, root }));
    for (let i = 0; i < APPEND_WARMUP; i++) await log.append(TYPE, bodyObject(i), `bench-${i}`, T0 + i * 1000);
    const start = performance.now();
    for (let i = APPEND_WARMUP; i < APPEND_WARMUP + APPENDS; i++) await log.append(TYPE, bodyObject(i), `bench-${i}`, T0 + i * 1000);
    const appendMs = performance.now() - start;

    // Sanity: the stored tree's root is MTH of the stored entries.
    const events = await log.list(0, APPEND_WARMUP + APPENDS);
    const entries = events.map((e) => eventEntryBytes(e));
    const expected = merkleTreeHash(entries.map((e) => leafHash(e)));
    const stored = await treeRoot(new DbNodeStore(database.db), entries.length);
    if (Buffer.compare(Buffer.from(expected), Buffer.from(stored)) !== 0) throw new Error('EventLog tree root does not match MTH of its entries');

    // Floor: per appended entry, the leaf hash, one node hash per subtree it completes, and the root fold for the checkpoint.
    const timed = entries.slice(APPEND_WARMUP);
    const floor = await measure(
      () => {
        for (let k = 0; k < timed.length; k++) {
          const i = APPEND_WARMUP + k;
          bareLeaf(timed[k]!);
          for (let c = completedNodes(i) + rootFoldNodes(i + 1); c > 0; c--) bareNode();
        }
      },
      { minIterations: 5, minMs: 500 },
    );
    const sign = await measure(
      () => {
        for (let k = 0; k < 1000; k++) signCheckpoint(key, ORIGIN, { origin: ORIGIN, size: k + 1, root: expected });
      },
      { minIterations: 3, minMs: 300 },
    );
    const rate = (APPENDS * 1000) / appendMs;
    const floorRate = (APPENDS * 1000) / floor.medianMs;
    return [
      [`Append: \`EventLog.append\` + signed checkpoint, ${APPENDS.toLocaleString('en-US')} sequential`, `${fmt(APPEND_WARMUP)} → ${fmt(APPEND_WARMUP + APPENDS)}`, `${fmt(rate)} entries/s (${fmt(appendMs / APPENDS)} ms each)`, '—', `${fmt(floorRate)} entries/s`, `${fmt(floorRate / rate)}×`],
      ['… of which `signCheckpoint` (Ed25519) alone', '—', `${fmt(sign.opsPerSec * 1000)} signatures/s (${fmt(sign.medianMs / 1000)} ms each)`, '—', '—', '—'],
    ];
  } finally {
    await database?.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** 2. Bulk-built tree (the rows EventLog writes), proofs through DbNodeStore at growing sizes. */
async function proofRows(nodeHashMs: number): Promise<Row[]> {
  const dir = tempDir();
  let database: Database | undefined;
  let raw: SqliteDatabase.Database | undefined;
  const rows: Row[] = [];
  try {
    database = await openDatabase({ dataDir: dir });
    raw = new SqliteDatabase(join(dir, SQLITE_FILE));
    const insertEvent = raw.prepare('insert into events (idx, type, body, dedup_key, created_at) values (?, ?, ?, ?, ?)');
    const insertNode = raw.prepare('insert into ledger_nodes (level, idx, hash) values (?, ?, ?)');
    const store = new DbNodeStore(database.db);
    let frontier: Frontier = emptyFrontier();
    let built = 0;
    for (const n of PROOF_SIZES) {
      const buildStart = performance.now();
      const prev = built;
      while (built < n) {
        const end = Math.min(n, built + BUILD_CHUNK);
        const leaves: Uint8Array[] = [];
        const from = built;
        raw.transaction(() => {
          for (let i = from; i < end; i++) {
            const body = bodyText(i);
            insertEvent.run(i, TYPE, body, `bench-${i}`, T0 + i * 1000);
            leaves.push(leafHash(eventEntryBytes({ idx: i, type: TYPE, body, created_at: T0 + i * 1000 })));
          }
          const grown = appendLeaves(frontier, leaves);
          for (const node of grown.nodes) insertNode.run(node.level, node.index, Buffer.from(node.hash).toString('hex'));
          frontier = grown.frontier;
        })();
        built = end;
      }
      raw.pragma('wal_checkpoint(TRUNCATE)');
      const buildMs = performance.now() - buildStart;
      const root = frontierRoot(frontier);
      if (Buffer.compare(Buffer.from(root), Buffer.from(await treeRoot(store, n))) !== 0) throw new Error(`stored root at ${n} differs from the frontier's`);

      // Inclusion: random leaves in the tree of n.
      const incIdx = Array.from({ length: PROOF_WARMUP + PROOF_CALLS }, () => randomInt(0, n));
      const incMs: number[] = [];
      const incProofs: Uint8Array[][] = [];
      for (const [k, idx] of incIdx.entries()) {
        const t = performance.now();
        const proof = await inclusionProof(store, idx, n);
        const dt = performance.now() - t;
        if (k >= PROOF_WARMUP) {
          incMs.push(dt);
          incProofs.push(proof);
        }
      }
      for (const [k, proof] of incProofs.entries()) {
        const idx = incIdx[PROOF_WARMUP + k]!;
        const [leaf] = await store.getNodes([{ level: 0, index: idx }]);
        verifyInclusion(leaf!, idx, n, proof, root);
      }

      // Consistency: from a random earlier size to n.
      const sizes1 = Array.from({ length: PROOF_WARMUP + PROOF_CALLS }, () => randomInt(1, n));
      const conMs: number[] = [];
      const conProofs: Uint8Array[][] = [];
      for (const [k, size1] of sizes1.entries()) {
        const t = performance.now();
        const proof = await consistencyProof(store, size1, n);
        const dt = performance.now() - t;
        if (k >= PROOF_WARMUP) {
          conMs.push(dt);
          conProofs.push(proof);
        }
      }
      for (const [k, proof] of conProofs.entries()) {
        const size1 = sizes1[PROOF_WARMUP + k]!;
        verifyConsistency(size1, n, proof, await treeRoot(store, size1), root);
      }

      const label = n.toLocaleString('en-US');
      rows.push([`Tree build (bulk, same rows as EventLog), to ${label}`, label, `${fmt(buildMs / 1000)} s for ${(n - prev).toLocaleString('en-US')} more (${fmt(((n - prev) * 1000) / buildMs)} entries/s)`, '—', '—', '—']);
      for (const [name, times, proofs] of [
        ['Inclusion proof via `DbNodeStore`', incMs, incProofs],
        ['Consistency proof via `DbNodeStore`', conMs, conProofs],
      ] as const) {
        const s = sorted(times);
        const meanLen = proofs.reduce((a, p) => a + p.length, 0) / proofs.length;
        const floorMs = meanLen * nodeHashMs;
        rows.push([`${name} (mean ${fmt(meanLen)} hashes)`, label, ms(percentile(s, 0.5)), ms(percentile(s, 0.95)), ms(floorMs), `${fmt(percentile(s, 0.5) / floorMs)}×`]);
      }
    }
    return rows;
  } finally {
    raw?.close();
    await database?.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** 3. The hashing `ledger verify` does over 10^5 downloaded entries, vs bare SHA-256 over the same bytes. */
async function verifyRows(): Promise<Row[]> {
  const entries = Array.from({ length: VERIFY_SIZE }, (_, i) => entryOf(i));
  const bytes = entries.reduce((a, e) => a + e.length, 0);
  let root: Uint8Array | undefined;
  const lib = await measure(() => (root = merkleTreeHash(entries.map((e) => leafHash(e)))), { minIterations: 5, minMs: 0, warmup: 1 });
  const withParse = await measure(
    () => {
      for (const [i, e] of entries.entries()) if (parseEntry(e).index !== i) throw new Error('bad index');
      return merkleTreeHash(entries.map((e) => leafHash(e)));
    },
    { minIterations: 3, minMs: 0, warmup: 1 },
  );
  const floor = await measure(
    () => {
      for (const e of entries) bareLeaf(e);
      for (let k = 1; k < entries.length; k++) bareNode();
    },
    { minIterations: 5, minMs: 0, warmup: 1 },
  );
  if (root?.length !== 32) throw new Error('no root');
  const label = VERIFY_SIZE.toLocaleString('en-US');
  return [
    [`\`ledger verify\` hashing: \`leafHash\` each + \`merkleTreeHash\` (${fmt(bytes / VERIFY_SIZE)}-byte entries)`, label, ms(lib.medianMs), '—', ms(floor.medianMs), `${fmt(lib.medianMs / floor.medianMs)}×`],
    ['… plus `parseEntry` of each entry, as the CLI does', label, ms(withParse.medianMs), '—', ms(floor.medianMs), `${fmt(withParse.medianMs / floor.medianMs)}×`],
  ];
}

export async function ledgerBench(): Promise<BenchSection> {
  const perNode = await measure(
    () => {
      for (let k = 0; k < 100_000; k++) bareNode();
    },
    { minIterations: 5, minMs: 500 },
  );
  const nodeHashMs = perNode.medianMs / 100_000;
  process.stderr.write('  ledger: appends…\n');
  const append = await appendRows();
  process.stderr.write('  ledger: tree build and proofs…\n');
  const proofs = await proofRows(nodeHashMs);
  process.stderr.write('  ledger: verify…\n');
  const verify = await verifyRows();
  return {
    id: 'ledger',
    title: 'Merkle ledger: appends, proofs and verification on embedded SQLite',
    method: [
      'All figures are on **embedded SQLite** (better-sqlite3, WAL, the coordinator\'s default `synchronous`, a fresh temp directory; PostgreSQL is not measured), in one Node process; the floor is a bare `node:crypto` `createHash(\'sha256\')` loop in the same process over inputs of the same length, and the last column is Confide\'s time ÷ the floor\'s.',
      `**Append**: ${APPENDS.toLocaleString('en-US')} sequential \`EventLog.append\` calls (after ${APPEND_WARMUP} untimed), each one transaction: lock row, dedup lookup, max(idx), event insert, frontier read, \`leafHash\` + \`appendLeaves\`, ledger node inserts, and a checkpoint signed with \`signCheckpoint\` (Ed25519 key from \`generateKeyPair\`) and inserted. Entries are \`eventEntryBytes\` of contribution-shaped events (the same bodies in every part; mean size in the last rows). The root is then checked against \`merkleTreeHash\` of the stored entries. Floor: per entry, SHA-256 of 0x00‖entry, one 65-byte node hash per perfect subtree the leaf completes, and popcount(size)−1 node hashes to fold the checkpoint root. A separate row times \`signCheckpoint\` alone.`,
      `**Proofs**: appending 10^6 entries through \`EventLog.append\` is too slow for a benchmark, so the tree is bulk-built by writing the rows EventLog writes (events rows, and the \`appendLeaves\` nodes of \`leafHash(eventEntryBytes(row))\` into ledger_nodes as hex) with better-sqlite3 prepared statements on the same file, ${BUILD_CHUNK.toLocaleString('en-US')} entries per transaction, growing 0 → 10^4 → 10^5 → 10^6 (build time is per step, including a WAL checkpoint; no checkpoint rows). At each size n, ${PROOF_CALLS} \`inclusionProof\` calls (random leaf < n) and ${PROOF_CALLS} \`consistencyProof\` calls (random size1 in [1, n)) go through \`DbNodeStore\` on the Kysely connection, after ${PROOF_WARMUP} untimed; median (the Confide column) and p95 per call. Every timed proof is then verified (untimed) with \`verifyInclusion\` / \`verifyConsistency\` against the frontier root and \`treeRoot\`. Floor: the bare node hashes a verifier spends, i.e. the mean proof length × one 65-byte SHA-256 (${fmt(nodeHashMs * 1000)} µs here, mostly \`createHash\` overhead); a proof costs one indexed SQLite query, so the ratio is mostly database round trip.`,
      `**\`ledger verify\`**: the CLI's hashing of a downloaded log, in process (no HTTP): \`leafHash\` of each of ${VERIFY_SIZE.toLocaleString('en-US')} entry byte strings and \`merkleTreeHash\` of the leaves, median of 5 runs; a second row adds the CLI's \`parseEntry\` of each entry. Floor: SHA-256 of 0x00‖entry for each entry plus n−1 65-byte node hashes.`,
    ].join('\n\n'),
    columns: ['Operation', 'Entries', 'Confide', 'p95 (proofs)', 'Floor (bare SHA-256)', 'Confide ÷ floor'],
    rows: [...append, ...proofs, ...verify],
  };
}
