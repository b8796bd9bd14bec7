import { appendFileSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeSync, constants } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { z } from 'zod';
import type { PublicKey } from '@confide/crypto';
import { deepFreeze, isDeeplyFrozen, queryEntriesOf, StudyIndex, type QueryEntries, type ViewUpdate } from '@confide/protocol';
import { ledgerOrigin, leafHash, parseEntry, verifyCheckpoint, verifyConsistency, verifyInclusion, type Checkpoint, type LedgerEntry } from '@confide/ledger';
import type { CoordinatorLink } from './coordinator-link';

/**
 * The participant's own verified view of the ledger (DESIGN.md "Trust model": an honest participant acts only on
 * what it can check): the last checkpoint it verified, and every entry of its study up to that checkpoint, each
 * checked by an inclusion proof. Every new checkpoint it accepts, from a task or from the coordinator, must be
 * consistent with the saved one (RFC 9162 §2.1.4), so a coordinator that forks its ledger, shows this participant
 * a history and later another, is refused. The worker and the `participant` commands share it in the home:
 * `ledger/checkpoint.slots` (only ever forward, see {@link loadSavedCheckpoint}) and `ledger/study.jsonl`
 * (append-only). In memory a worker keeps only a {@link StudyIndex} of the entries (the roster and the running
 * queries), so its memory and its work per task do not grow with the ledger; the whole view is read from the file
 * for the commands that show it and for a task about a query that already ended.
 */

/** The view could not be brought up to a checkpoint: a bad signature, a fork, or a proof that does not verify. */
export class LedgerViewError extends Error {
  override readonly name = 'LedgerViewError';
}

const checkpointFileSchema = z.strictObject({ version: z.literal(1), size: z.number().int().min(1), root: z.string(), note: z.string() });
export type SavedCheckpoint = z.infer<typeof checkpointFileSchema>;

/** Two fixed slots of this size hold the saved checkpoint (a signed note is a few hundred bytes). */
const SLOT_BYTES = 4096;
const SLOTS_FILE = 'checkpoint.slots';
/** Where homes made before the slots kept their checkpoint (a whole file replaced through a rename); read, then removed. */
const LEGACY_FILE = 'checkpoint.json';

const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');

/** One slot's text, or null when it is empty or torn (its digest does not match: a crash while it was written). */
function readSlot(bytes: Buffer, slot: number): SavedCheckpoint | null {
  const text = bytes.subarray(slot * SLOT_BYTES, (slot + 1) * SLOT_BYTES).toString('utf8');
  const [json, digest] = text.split('\n');
  if (!json || digest !== sha256(json)) return null;
  try {
    const parsed = checkpointFileSchema.safeParse(JSON.parse(json));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}

/**
 * Saves a checkpoint unless one at least as new is saved (by this process or another): the saved checkpoint only
 * moves forward. It goes into the slot that does not hold the newest one ({@link loadSavedCheckpoint}), so the
 * newest stays whole until the next one is; an older home's `checkpoint.json` is removed once the slots hold one.
 * @returns whether it was saved
 */
export function saveCheckpoint(dir: string, next: SavedCheckpoint): boolean {
  const current = loadSavedCheckpoint(dir);
  if (current && current.saved.size >= next.size) return false;
  const json = JSON.stringify(next);
  const text = `${json}\n${sha256(json)}\n`;
  if (Buffer.byteLength(text) > SLOT_BYTES) throw new LedgerViewError(`the checkpoint note is over ${SLOT_BYTES} bytes`);
  const slot = Buffer.alloc(SLOT_BYTES);
  slot.write(text);
  const fd = openSync(join(dir, SLOTS_FILE), constants.O_RDWR | constants.O_CREAT, 0o600);
  try {
    writeSync(fd, slot, 0, SLOT_BYTES, (current?.slot === 0 ? 1 : 0) * SLOT_BYTES);
  } finally {
    closeSync(fd);
  }
  // Only when migrating: the newest checkpoint was the older file's (no unlink per task once the slots hold one).
  if (current?.slot === -1) rmSync(join(dir, LEGACY_FILE), { force: true });
  return true;
}

/**
 * The checkpoint a participant saved last, from its ledger directory, or null before the first. It is saved after
 * every task whose checkpoint moved forward, so it is written in place: two slots of {@link SLOT_BYTES}, each a
 * JSON line and its SHA-256, written alternately, the newer one winning. A crash while one is written leaves the
 * other whole, and no write replaces the file: on ext4, replacing a file through a rename flushes its data first
 * (`auto_da_alloc`), and that flush, once per task, was a sixth of a busy worker's time (docs/BENCHMARKS.md, soak).
 * @throws LedgerViewError when the file exists and neither slot nor the older `checkpoint.json` can be read
 */
export function loadSavedCheckpoint(dir: string): { saved: SavedCheckpoint; slot: number } | null {
  const slots = join(dir, SLOTS_FILE);
  const legacy = join(dir, LEGACY_FILE);
  const found: { saved: SavedCheckpoint; slot: number }[] = [];
  if (existsSync(slots)) {
    const bytes = readFileSync(slots);
    for (const slot of [0, 1]) {
      const saved = readSlot(bytes, slot);
      if (saved) found.push({ saved, slot });
    }
    if (!found.length) throw new LedgerViewError(`${slots} is damaged: neither of its two checkpoints is whole`);
  }
  if (existsSync(legacy)) {
    const parsed = checkpointFileSchema.safeParse(JSON.parse(readFileSync(legacy, 'utf8')));
    if (!parsed.success) throw new LedgerViewError(`${legacy} is damaged: ${parsed.error.issues[0]?.message ?? ''}`);
    found.push({ saved: parsed.data, slot: -1 });
  }
  return found.reduce<{ saved: SavedCheckpoint; slot: number } | null>((best, f) => (!best || f.saved.size > best.saved.size ? f : best), null);
}

interface StudyPage {
  treeSize: number;
  entries: { index: number; entry: string; proof: string[] }[];
  more: boolean;
  consistency: { from: number; to: number; proof: string[] } | null;
}

/** Entries of frozen view updates already checked in this process, with the checkpoint they were checked in. */
const checkedEntries = new WeakMap<object, { size: number; root: Uint8Array; checked: { entry: LedgerEntry; raw: string } }>();

const fromB64 = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'base64'));
const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64');

export class LedgerView {
  private readonly dir: string;
  private index?: StudyIndex;
  private made = false;
  /** The catch-up under way, if any: the next waits for it ({@link catchUp}). */
  private busy: Promise<void> = Promise.resolve();

  constructor(
    homeDir: string,
    private readonly coordinatorKey: PublicKey,
    private readonly link: CoordinatorLink,
    /** The participant's study: the index keeps its roster. */
    private readonly studyId: string,
  ) {
    this.dir = join(homeDir, 'ledger');
  }

  /** The checkpoint verified last, or null before the first. */
  saved(): (Checkpoint & { note: string }) | null {
    const found = loadSavedCheckpoint(this.dir);
    if (!found) return null;
    return { origin: ledgerOrigin(this.coordinatorKey), size: found.saved.size, root: fromB64(found.saved.root), note: found.saved.note };
  }

  /** Every verified entry of this participant's study, in ledger order, read from the saved view. */
  studyEntries(): LedgerEntry[] {
    const entries = new Map<number, LedgerEntry>();
    const file = join(this.dir, 'study.jsonl');
    if (existsSync(file)) {
      for (const line of readFileSync(file, 'utf8').split('\n')) {
        if (!line.trim()) continue;
        // Lines were verified before they were written; a half-written last line (a crash) is skipped.
        try {
          const entry = parseEntry(fromB64((JSON.parse(line) as { entry: string }).entry));
          entries.set(entry.index, entry);
        } catch {
          continue;
        }
      }
    }
    return [...entries.values()].sort((a, b) => a.index - b.index);
  }

  /** The index of the verified study entries, built from the saved view once and kept up as entries are verified. */
  studyIndex(): StudyIndex {
    this.index ??= StudyIndex.of(this.studyId, this.studyEntries());
    return this.index;
  }

  /** One query's entries in the view: from the index while it runs, from the saved view once it has ended. */
  queryEntries(queryId: string): QueryEntries {
    return this.studyIndex().query(queryId) ?? queryEntriesOf(queryId, this.studyEntries());
  }

  /**
   * Brings the view up to a checkpoint: `verified` (a task's signed checkpoint, its signature already checked with
   * the pinned coordinator key by openEvidence) or, without one, the coordinator's newest, whose signature is
   * checked here with the pinned coordinator key. Then its consistency with the saved checkpoint (in
   * whichever direction, with one proof the coordinator serves), and every new study entry's inclusion, then saves
   * it when it is newer than the saved one. A task's `update`, when it starts at the saved size, supplies the proof
   * and the entries, and no request is made.
   * @returns the verified checkpoint (the entries are then in {@link studyIndex} and {@link studyEntries})
   * @throws LedgerViewError naming what failed; CoordinatorRequestError when the coordinator cannot be asked
   */
  catchUp(verified?: { note: string; checkpoint: Checkpoint }, update?: ViewUpdate): Promise<Checkpoint> {
    // One at a time: a task's catch-up and the worker's background one would otherwise append the same entries twice.
    const run = this.busy.then(() => this.catchUpNow(verified, update));
    this.busy = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  private async catchUpNow(verified?: { note: string; checkpoint: Checkpoint }, update?: ViewUpdate): Promise<Checkpoint> {
    const origin = ledgerOrigin(this.coordinatorKey);
    const text = verified?.note ?? (await this.link.get<{ note: string }>('/v1/ledger/checkpoint')).note;
    let target: Checkpoint;
    try {
      target = verified?.checkpoint ?? verifyCheckpoint(text, this.coordinatorKey, origin);
    } catch (err) {
      throw new LedgerViewError(`the checkpoint does not verify with the coordinator key pinned at enrollment: ${(err as Error).message}`);
    }
    const saved = this.saved();
    if (saved && saved.size === target.size) {
      if (Buffer.compare(Buffer.from(saved.root), Buffer.from(target.root)) !== 0) {
        throw new LedgerViewError(`the checkpoint has another root at size ${target.size} than the one this participant saved: the coordinator signed two histories`);
      }
      return target;
    }
    const known = this.studyIndex();
    const newer = !saved || target.size > saved.size;
    if (saved && newer && update && update.from === saved.size) {
      const fresh = update.entries.map((e) => this.included(e, target));
      this.checkConsistent(saved, target, saved, update.consistency);
      this.remember(known, fresh, target, text);
      return target;
    }
    let after = newer ? known.lastIndex : target.size;
    let consistency: StudyPage['consistency'] = null;
    const fresh: { entry: LedgerEntry; raw: string }[] = [];
    for (;;) {
      const from = saved ? `&from=${saved.size}` : '';
      const page = await this.link.get<StudyPage>(`/v1/ledger/study?after=${after}&treeSize=${target.size}${from}`);
      consistency ??= page.consistency;
      for (const e of page.entries) {
        const verified = this.included(e, target);
        if (e.index <= after) throw new LedgerViewError(`the coordinator served entry ${e.index} out of order`);
        fresh.push(verified);
        after = e.index;
      }
      if (!page.more || !newer) break;
    }
    if (saved) {
      const [small, large] = newer ? [saved, target] : [target, saved];
      if (!consistency || consistency.from !== small.size || consistency.to !== large.size) {
        throw new LedgerViewError(`the coordinator sent no consistency proof between the checkpoint (size ${target.size}) and the one this participant saved (size ${saved.size})`);
      }
      this.checkConsistent(small, large, saved, consistency.proof);
    }
    if (newer) this.remember(known, fresh, target, text);
    return target;
  }

  /**
   * One served study entry, checked: included at its index in the target checkpoint. An entry of a frozen view update
   * (a task part every participant of this process shares, libs/queue task-refs.ts) is checked once per checkpoint.
   */
  private included(e: { index: number; entry: string; proof: string[] }, target: Checkpoint): { entry: LedgerEntry; raw: string } {
    if (!isDeeplyFrozen(e)) return this.check(e, target);
    const known = checkedEntries.get(e);
    if (known && known.size === target.size && Buffer.compare(Buffer.from(known.root), Buffer.from(target.root)) === 0) return known.checked;
    const checked = deepFreeze(this.check(e, target));
    checkedEntries.set(e, { size: target.size, root: new Uint8Array(target.root), checked });
    return checked;
  }

  private check(e: { index: number; entry: string; proof: string[] }, target: Checkpoint): { entry: LedgerEntry; raw: string } {
    const bytes = fromB64(e.entry);
    try {
      verifyInclusion(leafHash(bytes), e.index, target.size, e.proof.map(fromB64), target.root);
    } catch (err) {
      throw new LedgerViewError(`study entry ${e.index} is not in the signed ledger of ${target.size} entries: ${(err as Error).message}`);
    }
    const entry = parseEntry(bytes);
    if (entry.index !== e.index) throw new LedgerViewError(`study entry ${e.index} says it is entry ${entry.index}`);
    return { entry, raw: e.entry };
  }

  /** RFC 9162 §2.1.4 between two checkpoints, one of them the saved one. @throws LedgerViewError naming the fork */
  private checkConsistent(small: Checkpoint, large: Checkpoint, saved: Checkpoint, proof: readonly string[]): void {
    try {
      verifyConsistency(small.size, large.size, proof.map(fromB64), small.root, large.root);
    } catch (err) {
      const target = small === saved ? large : small;
      throw new LedgerViewError(
        `the checkpoint (size ${target.size}) is not consistent with the one this participant saved (size ${saved.size}): ${(err as Error).message}; the coordinator forked or rewrote its ledger`,
      );
    }
  }

  /** Appends newly verified study entries, then saves the checkpoint they were verified in. */
  private remember(known: StudyIndex, fresh: readonly { entry: LedgerEntry; raw: string }[], target: Checkpoint, note: string): void {
    if (!this.made) mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    this.made = true;
    if (fresh.length) appendFileSync(join(this.dir, 'study.jsonl'), fresh.map((f) => `${JSON.stringify({ index: f.entry.index, entry: f.raw })}\n`).join(''), { mode: 0o600 });
    for (const f of fresh) known.add(f.entry);
    saveCheckpoint(this.dir, { version: 1, size: target.size, root: b64(target.root), note });
  }
}
