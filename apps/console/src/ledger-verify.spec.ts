import { generateKeyPair, keyFingerprint, publicKeyBase64Url } from '@confide/crypto';
import { consistencyProof, formatVerifierKey, ledgerOrigin, MemoryNodeStore, appendLeaves, emptyFrontier, entryBytes, frontierRoot, leafHash as nodeLeafHash, signCheckpoint, treeRoot, type Frontier } from '@confide/ledger';
import { MemoryLedger } from '../../../test/support/memory-ledger';
import { leafHash, pinFingerprint, pinKey, toBase64, verifyCheckpointNote, verifyConsistency, verifyEntry, VerifyError, type VerifiedCheckpoint } from './ledger-verify';

// The console's WebCrypto verifier against libs/ledger's node:crypto one: the same notes, trees and proofs must
// verify, and every alteration a hostile coordinator could serve must fail with its reason.

const TIME = '2026-12-07T10:00:00.000Z';
const b64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64');

async function rejects(work: Promise<unknown>, reason: string, message?: RegExp): Promise<void> {
  const err = await work.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(VerifyError);
  expect((err as VerifyError).reason).toBe(reason);
  if (message) expect((err as Error).message).toMatch(message);
}

function ledgerOf(n: number): { ledger: MemoryLedger; coordinator: ReturnType<typeof generateKeyPair>; verifierKey: string } {
  const coordinator = generateKeyPair('ed25519');
  const ledger = new MemoryLedger(coordinator, TIME);
  for (let i = 0; i < n; i++) ledger.append(i % 3 === 0 ? 'study.created' : 'query.submitted', { n: i, queryId: `q${String(i).padStart(24, '0')}` });
  return { ledger, coordinator, verifierKey: formatVerifierKey(ledgerOrigin(coordinator.publicKey), coordinator.publicKey) };
}

describe('console ledger verification (WebCrypto)', () => {
  it('hashes leaves exactly as libs/ledger does', async () => {
    for (const bytes of [new Uint8Array(0), Uint8Array.of(1, 2, 3), new Uint8Array(1000).fill(7)]) {
      expect(Buffer.from(await leafHash(bytes))).toEqual(Buffer.from(nodeLeafHash(bytes)));
    }
  });

  it('opens a checkpoint signed by the coordinator with the verifier key it prints, and names its origin, size and root', async () => {
    const { ledger, verifierKey } = ledgerOf(5);
    const pinned = await pinKey(verifierKey);
    const checkpoint = await verifyCheckpointNote(ledger.checkpoint(), pinned);
    expect(checkpoint).toEqual({ origin: pinned.name, size: 5, root: b64(await ledger.rootAt(5)) });
  });

  it("pins by the key fingerprint the admin hands out: the served key must have it, and the log's name is derived, not served", async () => {
    const { ledger, coordinator, verifierKey } = ledgerOf(3);
    const pinned = await pinFingerprint(keyFingerprint(coordinator.publicKey), publicKeyBase64Url(coordinator.publicKey));
    expect(pinned.name).toBe(ledgerOrigin(coordinator.publicKey));
    expect(Buffer.from(pinned.keyId)).toEqual(Buffer.from((await pinKey(verifierKey)).keyId));
    await expect(verifyCheckpointNote(ledger.checkpoint(), pinned)).resolves.toMatchObject({ size: 3 });
    // A coordinator serving another key under the pinned fingerprint.
    const other = generateKeyPair('ed25519');
    await rejects(pinFingerprint(keyFingerprint(coordinator.publicKey), publicKeyBase64Url(other.publicKey)), 'unknown-key', /has fingerprint [0-9a-f]{64}, not the pinned/);
    await rejects(pinFingerprint('abc', publicKeyBase64Url(coordinator.publicKey)), 'malformed');
  });

  it('refuses a verifier key with a wrong key ID, another type byte or the wrong shape', async () => {
    const { verifierKey } = ledgerOf(1);
    // The key's base64 may hold '+' too: only the first two separate the fields.
    const [, name, id, key] = /^([^+]+)\+([^+]+)\+(.+)$/.exec(verifierKey) as unknown as [string, string, string, string];
    await rejects(pinKey(`${name}+${id.replace(/^./, (c) => (c === '0' ? '1' : '0'))}+${key}`), 'malformed', /key ID does not match/);
    const typed = Buffer.from(key, 'base64');
    typed[0] = 0x02;
    await rejects(pinKey(`${name}+${id}+${typed.toString('base64')}`), 'malformed', /Ed25519/);
    await rejects(pinKey(`${name}+${id}`), 'malformed');
  });

  it('refuses a checkpoint signed by another key (a coordinator that swapped its key), naming the pinned key', async () => {
    const { ledger, verifierKey } = ledgerOf(4);
    const other = generateKeyPair('ed25519');
    const pinned = await pinKey(verifierKey);
    // The other key signs under the pinned name: its key ID differs, so no signature line is the pinned key's.
    const forged = signCheckpoint(other, pinned.name, { origin: pinned.name, size: 4, root: await ledger.rootAt(4) });
    await rejects(verifyCheckpointNote(forged, pinned), 'unknown-key', new RegExp(`not signed by the pinned key ${pinned.name}`));
  });

  it('refuses a checkpoint whose size or root was changed after signing', async () => {
    const { ledger, verifierKey } = ledgerOf(6);
    const pinned = await pinKey(verifierKey);
    const note = ledger.checkpoint();
    await rejects(verifyCheckpointNote(note.replace('\n6\n', '\n7\n'), pinned), 'bad-signature');
    const root = b64(await ledger.rootAt(6));
    const altered = Buffer.from(root, 'base64');
    altered[0]! ^= 1;
    await rejects(verifyCheckpointNote(note.replace(root, altered.toString('base64')), pinned), 'bad-signature');
    await verifyCheckpointNote(note, pinned);
  });

  it('refuses a checkpoint of another log signed with the pinned key', async () => {
    const { ledger, coordinator, verifierKey } = ledgerOf(2);
    const pinned = await pinKey(verifierKey);
    const note = signCheckpoint(coordinator, pinned.name, { origin: 'another/log', size: 2, root: await ledger.rootAt(2) });
    await rejects(verifyCheckpointNote(note, pinned), 'origin-mismatch');
  });

  it('verifies every entry of trees of 1 to 20 entries with libs/ledger proofs, and fails an entry whose bytes or proof were altered', async () => {
    for (let n = 1; n <= 20; n++) {
      const { ledger, verifierKey } = ledgerOf(n);
      const checkpoint = await verifyCheckpointNote(ledger.checkpoint(), await pinKey(verifierKey));
      const evidence = await ledger.evidence([...Array(n).keys()]);
      for (const e of evidence.entries) {
        await expect(verifyEntry(e.index, e.entry, e.proof, checkpoint)).resolves.toMatchObject({ index: e.index, time: TIME });
        const bytes = Buffer.from(e.entry, 'base64');
        const tampered = Buffer.from(bytes.toString('utf8').replace(`"n":${e.index}`, `"n":${e.index + 100}`), 'utf8');
        await rejects(verifyEntry(e.index, tampered.toString('base64'), e.proof, checkpoint), 'root-mismatch', new RegExp(`^entry ${e.index} does not match the signed checkpoint`));
        if (e.proof.length > 0) {
          const proof = [...e.proof];
          const node = Buffer.from(proof[0]!, 'base64');
          node[31]! ^= 0x80;
          proof[0] = node.toString('base64');
          await rejects(verifyEntry(e.index, e.entry, proof, checkpoint), 'root-mismatch');
          await rejects(verifyEntry(e.index, e.entry, e.proof.slice(1), checkpoint), 'proof-length');
          await rejects(verifyEntry(e.index, e.entry, [...e.proof, e.proof[0]!], checkpoint), 'proof-length');
        }
      }
    }
  });

  it("refuses another position's entry served with its own proof under this index", async () => {
    const { ledger, verifierKey } = ledgerOf(8);
    const checkpoint = await verifyCheckpointNote(ledger.checkpoint(), await pinKey(verifierKey));
    const [three] = (await ledger.evidence([3])).entries;
    await rejects(verifyEntry(5, three!.entry, three!.proof, checkpoint), 'index-mismatch', /entry 5 states index 3/);
  });

  it('refuses a leaf whose bytes state the index it is served at but that is not the index it holds in the tree', async () => {
    // A hostile log appended entry 2's bytes (index 2 inside) at position 4: its proof at 4 verifies, the index does not.
    const coordinator = generateKeyPair('ed25519');
    const ledger = new MemoryLedger(coordinator, TIME);
    for (let i = 0; i < 4; i++) ledger.append('study.created', { n: i });
    ledger.appendLeaf(ledger.bytesAt(2));
    const checkpoint = await verifyCheckpointNote(ledger.checkpoint(), await pinKey(formatVerifierKey(ledgerOrigin(coordinator.publicKey), coordinator.publicKey)));
    const [four] = (await ledger.evidence([4])).entries;
    await rejects(verifyEntry(4, four!.entry, four!.proof, checkpoint), 'index-mismatch', /entry 4 states index 2/);
  });

  it('accepts a grown ledger consistent with the checkpoint verified on the last visit, for every pair of sizes up to 17', async () => {
    const store = new MemoryNodeStore();
    let frontier: Frontier = emptyFrontier();
    const roots: string[] = [''];
    for (let i = 0; i < 17; i++) {
      const grown = appendLeaves(frontier, [nodeLeafHash(entryBytes({ index: i, type: 'study.created', body: { i }, time: TIME }))]);
      store.put(grown.nodes);
      frontier = grown.frontier;
      roots.push(b64(frontierRoot(frontier)));
    }
    const at = (size: number): VerifiedCheckpoint => ({ origin: 'o', size, root: roots[size]! });
    for (let m = 1; m <= 17; m++) {
      for (let n = m; n <= 17; n++) {
        const proof = m === n ? [] : (await consistencyProof(store, m, n)).map(b64);
        await expect(verifyConsistency(at(m), at(n), proof)).resolves.toBeUndefined();
        if (m < n) {
          // A rewritten history: the same sizes, an earlier root that is not the one verified before.
          await rejects(verifyConsistency({ origin: 'o', size: m, root: roots[m === 1 ? 2 : 1]! }, at(n), proof), 'root-mismatch');
        }
      }
    }
    expect(b64(await treeRoot(store, 17))).toBe(roots[17]);
  });

  it('reports a rollback when the ledger shrank since the last visit, and a fork when the same size has another root', async () => {
    const earlier: VerifiedCheckpoint = { origin: 'o', size: 10, root: toBase64(new Uint8Array(32).fill(1)) };
    await rejects(verifyConsistency(earlier, { origin: 'o', size: 9, root: toBase64(new Uint8Array(32).fill(1)) }, []), 'rollback', /9 entries, fewer than the 10 verified before/);
    await rejects(verifyConsistency(earlier, { origin: 'o', size: 10, root: toBase64(new Uint8Array(32).fill(2)) }, []), 'root-mismatch', /rewritten/);
  });
});
