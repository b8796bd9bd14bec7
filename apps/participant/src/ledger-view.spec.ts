import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateKeyPair } from '@confide/crypto';
import { deepFreeze } from '@confide/protocol';
import { appendLeaves, consistencyProof, emptyFrontier, entryBytes, frontierRoot, inclusionProof, leafHash, ledgerOrigin, MemoryNodeStore, signCheckpoint, verifyCheckpoint } from '@confide/ledger';
import type { CoordinatorLink } from './coordinator-link';
import { LedgerView, loadSavedCheckpoint, saveCheckpoint, LedgerViewError, type SavedCheckpoint } from './ledger-view';

const checkpoint = (size: number): SavedCheckpoint => ({ version: 1, size, root: Buffer.alloc(32, size).toString('base64'), note: `confide ledger\n${size}\nsigned note of size ${size}\n` });

describe('the saved checkpoint (two slots written in place)', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'confide-view-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const slots = () => join(dir, 'checkpoint.slots');
  const sizeSaved = () => loadSavedCheckpoint(dir)?.saved.size ?? null;

  it('keeps the newest of the checkpoints saved, alternating slots, in one file that is never replaced', () => {
    expect(sizeSaved()).toBeNull();
    expect(saveCheckpoint(dir, checkpoint(5))).toBe(true);
    const inode = statSync(slots()).ino;
    expect(loadSavedCheckpoint(dir)).toEqual({ saved: checkpoint(5), slot: 0 });
    saveCheckpoint(dir, checkpoint(9));
    expect(loadSavedCheckpoint(dir)).toEqual({ saved: checkpoint(9), slot: 1 });
    saveCheckpoint(dir, checkpoint(12));
    expect(loadSavedCheckpoint(dir)).toEqual({ saved: checkpoint(12), slot: 0 });
    // Written in place: no rename (on ext4 a rename over a file flushes its data, once per task).
    expect(statSync(slots()).ino).toBe(inode);
    expect(statSync(slots()).size).toBe(8192);
    expect(statSync(slots()).mode & 0o777).toBe(0o600);
  });

  it('only moves forward: an older or equal checkpoint is not saved', () => {
    saveCheckpoint(dir, checkpoint(9));
    expect(saveCheckpoint(dir, checkpoint(4))).toBe(false);
    expect(saveCheckpoint(dir, checkpoint(9))).toBe(false);
    expect(sizeSaved()).toBe(9);
  });

  it('survives a crash in the middle of a write: the torn slot is ignored, the other one is whole, and the next save overwrites the torn one', () => {
    saveCheckpoint(dir, checkpoint(5));
    saveCheckpoint(dir, checkpoint(9));
    // The write of size 12 into slot 0 torn after 40 bytes: its digest no longer matches.
    const bytes = readFileSync(slots());
    const torn = Buffer.from(bytes);
    Buffer.from(`${JSON.stringify(checkpoint(12))}\n`).copy(torn, 0, 0, 40);
    writeFileSync(slots(), torn);
    expect(loadSavedCheckpoint(dir)).toEqual({ saved: checkpoint(9), slot: 1 });
    saveCheckpoint(dir, checkpoint(12));
    expect(loadSavedCheckpoint(dir)).toEqual({ saved: checkpoint(12), slot: 0 });
  });

  it('refuses a file whose two slots are both damaged, naming it', () => {
    saveCheckpoint(dir, checkpoint(5));
    writeFileSync(slots(), Buffer.alloc(8192, 'x'));
    expect(() => loadSavedCheckpoint(dir)).toThrow(LedgerViewError);
    expect(() => loadSavedCheckpoint(dir)).toThrow(`${slots()} is damaged: neither of its two checkpoints is whole`);
  });

  it('reads the checkpoint.json of a home made before the slots, then removes it once a newer one is saved', () => {
    writeFileSync(join(dir, 'checkpoint.json'), JSON.stringify(checkpoint(7), null, 2), { mode: 0o600 });
    expect(sizeSaved()).toBe(7);
    expect(saveCheckpoint(dir, checkpoint(6))).toBe(false);
    saveCheckpoint(dir, checkpoint(8));
    expect(loadSavedCheckpoint(dir)).toEqual({ saved: checkpoint(8), slot: 0 });
    expect(() => statSync(join(dir, 'checkpoint.json'))).toThrow(/ENOENT/);
  });

  it('refuses a damaged checkpoint.json of an older home rather than start over without it', () => {
    writeFileSync(join(dir, 'checkpoint.json'), JSON.stringify({ version: 1, size: 'seven' }));
    expect(() => loadSavedCheckpoint(dir)).toThrow(/checkpoint.json is damaged/);
  });
});

describe('catching the view up (LedgerView.catchUp)', () => {
  const STUDY = 'study-1';
  const key = generateKeyPair('ed25519');
  const origin = ledgerOrigin(key.publicKey);
  const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64');

  /** A ledger of `size` study entries in memory, served as the coordinator's two routes serve it, with a count of requests. */
  function ledgerOf(size: number) {
    const raw = Array.from({ length: size }, (_, index) => entryBytes({ index, type: 'test.note', body: { studyId: STUDY, n: index }, time: new Date(Date.UTC(2030, 0, 1, 0, 0, index)).toISOString() }));
    const store = new MemoryNodeStore();
    const { frontier, nodes } = appendLeaves(emptyFrontier(), raw.map(leafHash));
    store.put(nodes);
    const note = signCheckpoint(key, origin, { origin, size, root: frontierRoot(frontier) });
    const requests: string[] = [];
    const link = {
      async get<T>(path: string): Promise<T> {
        requests.push(path);
        // Answered later, as a busy coordinator does: two catch-ups in flight overlap.
        await new Promise((r) => setTimeout(r, 5));
        if (path === '/v1/ledger/checkpoint') return { note } as T;
        const q = new URL(path, 'http://coordinator').searchParams;
        const [after, treeSize] = [Number(q.get('after')), Number(q.get('treeSize'))];
        const page = raw.map((entry, index) => ({ entry, index })).filter((e) => e.index > after && e.index < treeSize).slice(0, 10);
        const entries = await Promise.all(page.map(async (e) => ({ index: e.index, entry: b64(e.entry), proof: (await inclusionProof(store, e.index, treeSize)).map(b64) })));
        const from = q.get('from') === null ? undefined : Number(q.get('from'));
        const consistency = from !== undefined && from !== treeSize ? { from, to: treeSize, proof: (await consistencyProof(store, from, treeSize)).map(b64) } : null;
        return { treeSize, entries, more: page.length === 10, consistency } as T;
      },
    };
    return { link: link as unknown as CoordinatorLink, requests };
  }

  let home: string;
  beforeEach(() => {
    home = mkdtempSync(join(tmpdir(), 'confide-view-'));
  });
  afterEach(() => rmSync(home, { recursive: true, force: true }));

  const lines = (): number[] =>
    readFileSync(join(home, 'ledger', 'study.jsonl'), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => (JSON.parse(l) as { index: number }).index);

  it('verifies a view far behind page by page, and keeps every entry once when two catch-ups overlap (a task and the background one)', async () => {
    const { link, requests } = ledgerOf(45);
    const view = new LedgerView(home, key.publicKey, link, STUDY);
    const [a, b] = await Promise.all([view.catchUp(), view.catchUp()]);
    expect([a.size, b.size]).toEqual([45, 45]);
    expect(lines()).toEqual(Array.from({ length: 45 }, (_, i) => i));
    expect(view.studyIndex().lastIndex).toBe(44);
    expect(view.saved()?.size).toBe(45);
    // The second found the view at the head: one checkpoint read, no page.
    expect(requests.filter((r) => r.startsWith('/v1/ledger/study'))).toHaveLength(5);
  });

  it('checks an entry of a frozen view update (a part a process\'s workers share) again against another checkpoint: a fork is refused', async () => {
    const entry = (index: number, branch: string) => entryBytes({ index, type: 'test.note', body: { studyId: STUDY, n: index, branch }, time: new Date(Date.UTC(2030, 0, 1, 0, 0, index)).toISOString() });
    const common = Array.from({ length: 5 }, (_, i) => entry(i, ''));
    const tree = (raw: Uint8Array[]) => {
      const store = new MemoryNodeStore();
      const { frontier, nodes } = appendLeaves(emptyFrontier(), raw.map(leafHash));
      store.put(nodes);
      const note = signCheckpoint(key, origin, { origin, size: raw.length, root: frontierRoot(frontier) });
      return { raw, store, note, checkpoint: verifyCheckpoint(note, key.publicKey, origin) };
    };
    const prefix = tree(common);
    const honest = tree([...common, ...[5, 6, 7].map((i) => entry(i, 'honest'))]);
    const forked = tree([...common, ...[5, 6, 7].map((i) => entry(i, 'forked'))]);
    // Both participants' views start at the common prefix, fetched over HTTP.
    const link = {
      async get<T>(path: string): Promise<T> {
        if (path === '/v1/ledger/checkpoint') return { note: prefix.note } as T;
        const entries = await Promise.all(common.map(async (e, index) => ({ index, entry: b64(e), proof: (await inclusionProof(prefix.store, index, 5)).map(b64) })));
        return { treeSize: 5, entries, more: false, consistency: null } as T;
      },
    } as unknown as CoordinatorLink;
    const homes = [home, mkdtempSync(join(tmpdir(), 'confide-view-'))];
    const [a, b] = homes.map((h) => new LedgerView(h, key.publicKey, link, STUDY));
    try {
      await a!.catchUp();
      await b!.catchUp();
      const proven = async (t: typeof honest) => deepFreeze({ from: 5, consistency: (await consistencyProof(t.store, 5, 8)).map(b64), entries: await Promise.all([5, 6, 7].map(async (i) => ({ index: i, entry: b64(honest.raw[i]!), proof: (await inclusionProof(honest.store, i, 8)).map(b64) }))) });
      const update = await proven(honest);
      expect((await a!.catchUp({ note: honest.note, checkpoint: honest.checkpoint }, update)).size).toBe(8);
      // The same frozen entry objects, with the fork's consistency proof (the fork extends the saved prefix too), under
      // the fork's checkpoint of the same size: the entries are not in it, whatever another participant verified.
      const fork = deepFreeze({ ...update, consistency: (await consistencyProof(forked.store, 5, 8)).map(b64) });
      await expect(b!.catchUp({ note: forked.note, checkpoint: forked.checkpoint }, fork)).rejects.toThrow(/study entry 5 is not in the signed ledger of 8 entries/);
      expect(b!.saved()?.size).toBe(5);
    } finally {
      rmSync(homes[1]!, { recursive: true, force: true });
    }
  });
});
