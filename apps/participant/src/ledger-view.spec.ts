import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadSavedCheckpoint, saveCheckpoint, LedgerViewError, type SavedCheckpoint } from './ledger-view';

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
