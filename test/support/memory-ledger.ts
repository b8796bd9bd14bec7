import type { KeyPair } from '@confide/crypto';
import {
  appendLeaves,
  consistencyProof,
  emptyFrontier,
  entryBytes,
  frontierRoot,
  inclusionProof,
  leafHash,
  ledgerOrigin,
  MemoryNodeStore,
  parseEntry,
  signCheckpoint,
  treeRoot,
  type Frontier,
  type LedgerEntry,
} from '@confide/ledger';
import { ENTRY, type LedgerEvidence } from '@confide/protocol';

const b64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64');

/**
 * A coordinator's ledger in memory, for unit tests of what parties check against the ledger: entry bytes as RFC 6962
 * leaves, perfect subtrees in a node store, checkpoints signed with the coordinator's key, and evidence built as the
 * coordinator's repository builds it. Every entry is stamped with one fixed time, so a test's ledger is reproducible.
 */
export class MemoryLedger {
  /** The entries appended with {@link append}, as a participant's view of the ledger holds them. */
  readonly entries: LedgerEntry[] = [];
  private readonly bytes: Uint8Array[] = [];
  private readonly store = new MemoryNodeStore();
  private frontier: Frontier = emptyFrontier();

  constructor(
    private readonly coordinator: KeyPair,
    private readonly time: string,
  ) {}

  get size(): number {
    return this.bytes.length;
  }

  append(type: string, body: Record<string, unknown>): LedgerEntry {
    const bytes = entryBytes({ index: this.size, type, body: body as LedgerEntry['body'], time: this.time });
    this.appendLeaf(bytes);
    const entry = parseEntry(bytes);
    this.entries.push(entry);
    return entry;
  }

  /** Appends any bytes as the next leaf: another position's entry, or no entry at all. */
  appendLeaf(bytes: Uint8Array): void {
    const { frontier, nodes } = appendLeaves(this.frontier, [leafHash(bytes)]);
    this.store.put(nodes);
    this.frontier = frontier;
    this.bytes.push(bytes);
  }

  bytesAt(index: number): Uint8Array {
    return this.bytes[index]!;
  }

  last(): LedgerEntry {
    return this.entries[this.entries.length - 1]!;
  }

  enrollmentsOf(id: string): number[] {
    return this.entries.filter((e) => e.type === ENTRY.participantEnrolled && e.body.participantId === id).map((e) => e.index);
  }

  rootAt(size: number): Promise<Uint8Array> {
    return treeRoot(this.store, size);
  }

  /** The current checkpoint as a C2SP signed note, signed by `signer` (the coordinator by default) under the coordinator's log origin. */
  checkpoint(signer: KeyPair = this.coordinator): string {
    const origin = ledgerOrigin(this.coordinator.publicKey);
    return signCheckpoint(signer, origin, { origin, size: this.size, root: frontierRoot(this.frontier) });
  }

  /** Evidence as the coordinator's repository builds it: the entries at `indices` and the root at `seedSize`, proven in the current checkpoint. */
  async evidence(indices: readonly number[], seedSize?: number): Promise<LedgerEvidence> {
    const size = this.size;
    const wanted = [...new Set(indices)].sort((a, b) => a - b);
    const entries = await Promise.all(wanted.map(async (index) => ({ index, entry: b64(this.bytesAt(index)), proof: (await inclusionProof(this.store, index, size)).map(b64) })));
    if (seedSize === undefined) return { checkpoint: this.checkpoint(), entries };
    const proof = seedSize === size ? [] : (await consistencyProof(this.store, seedSize, size)).map(b64);
    return { checkpoint: this.checkpoint(), entries, seedRoot: { size: seedSize, root: b64(await this.rootAt(seedSize)), proof } };
  }
}
