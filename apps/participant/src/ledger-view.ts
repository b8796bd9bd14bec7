import { appendFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import type { PublicKey } from '@confide/crypto';
import type { ViewUpdate } from '@confide/protocol';
import { ledgerOrigin, leafHash, parseEntry, verifyCheckpoint, verifyConsistency, verifyInclusion, type Checkpoint, type LedgerEntry } from '@confide/ledger';
import type { CoordinatorLink } from './coordinator-link';
import { writePrivateFile } from './home';

/**
 * The participant's own verified view of the ledger (DESIGN.md "Trust model": an honest participant acts only on
 * what it can check): the last checkpoint it verified, and every entry of its study up to that checkpoint, each
 * checked by an inclusion proof. Every new checkpoint it accepts, from a task or from the coordinator, must be
 * consistent with the saved one (RFC 9162 §2.1.4), so a coordinator that forks its ledger, shows this participant
 * a history and later another, is refused. The worker and the `participant` commands share it in the home:
 * `ledger/checkpoint.json` (written atomically, only ever forward) and `ledger/study.jsonl` (append-only).
 */

const checkpointFileSchema = z.strictObject({ version: z.literal(1), size: z.number().int().min(1), root: z.string(), note: z.string() });
type SavedCheckpoint = z.infer<typeof checkpointFileSchema>;

/** The view could not be brought up to a checkpoint: a bad signature, a fork, or a proof that does not verify. */
export class LedgerViewError extends Error {
  override readonly name = 'LedgerViewError';
}

interface StudyPage {
  treeSize: number;
  entries: { index: number; entry: string; proof: string[] }[];
  more: boolean;
  consistency: { from: number; to: number; proof: string[] } | null;
}

const fromB64 = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'base64'));
const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64');

export class LedgerView {
  private readonly dir: string;
  private entries?: Map<number, LedgerEntry>;
  private made = false;

  constructor(
    homeDir: string,
    private readonly coordinatorKey: PublicKey,
    private readonly link: CoordinatorLink,
  ) {
    this.dir = join(homeDir, 'ledger');
  }

  /** The checkpoint verified last, or null before the first. */
  saved(): (Checkpoint & { note: string }) | null {
    const file = join(this.dir, 'checkpoint.json');
    if (!existsSync(file)) return null;
    const parsed = checkpointFileSchema.safeParse(JSON.parse(readFileSync(file, 'utf8')));
    if (!parsed.success) throw new LedgerViewError(`${file} is damaged: ${parsed.error.issues[0]?.message ?? ''}`);
    return { origin: ledgerOrigin(this.coordinatorKey), size: parsed.data.size, root: fromB64(parsed.data.root), note: parsed.data.note };
  }

  /** Every verified entry of this participant's study, in ledger order. */
  studyEntries(): LedgerEntry[] {
    return [...this.loadEntries().values()].sort((a, b) => a.index - b.index);
  }

  private loadEntries(): Map<number, LedgerEntry> {
    if (this.entries) return this.entries;
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
    this.entries = entries;
    return entries;
  }

  /**
   * Brings the view up to a checkpoint: `note` (a task's signed checkpoint) or, without one, the coordinator's
   * newest. Verifies its signature with the pinned coordinator key, its consistency with the saved checkpoint (in
   * whichever direction, with one proof the coordinator serves), and every new study entry's inclusion, then saves
   * it when it is newer than the saved one. A task's `update`, when it starts at the saved size, supplies the proof
   * and the entries, and no request is made.
   * @returns the verified checkpoint and every study entry known now
   * @throws LedgerViewError naming what failed; CoordinatorRequestError when the coordinator cannot be asked
   */
  async catchUp(note?: string, update?: ViewUpdate): Promise<{ checkpoint: Checkpoint; entries: LedgerEntry[] }> {
    const origin = ledgerOrigin(this.coordinatorKey);
    const text = note ?? (await this.link.get<{ note: string }>('/v1/ledger/checkpoint')).note;
    let target: Checkpoint;
    try {
      target = verifyCheckpoint(text, this.coordinatorKey, origin);
    } catch (err) {
      throw new LedgerViewError(`the checkpoint does not verify with the coordinator key pinned at enrollment: ${(err as Error).message}`);
    }
    const saved = this.saved();
    if (saved && saved.size === target.size) {
      if (Buffer.compare(Buffer.from(saved.root), Buffer.from(target.root)) !== 0) {
        throw new LedgerViewError(`the checkpoint has another root at size ${target.size} than the one this participant saved: the coordinator signed two histories`);
      }
      return { checkpoint: target, entries: this.studyEntries() };
    }
    const known = this.loadEntries();
    const newer = !saved || target.size > saved.size;
    if (saved && newer && update && update.from === saved.size) {
      const fresh = update.entries.map((e) => this.included(e, target));
      this.checkConsistent(saved, target, saved, update.consistency);
      this.remember(known, fresh, target, text);
      return { checkpoint: target, entries: this.studyEntries() };
    }
    let after = target.size;
    if (newer) {
      after = -1;
      for (const index of known.keys()) if (index > after) after = index;
    }
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
    return { checkpoint: target, entries: this.studyEntries() };
  }

  /** One served study entry, checked: included at its index in the target checkpoint. */
  private included(e: { index: number; entry: string; proof: string[] }, target: Checkpoint): { entry: LedgerEntry; raw: string } {
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
  private remember(known: Map<number, LedgerEntry>, fresh: readonly { entry: LedgerEntry; raw: string }[], target: Checkpoint, note: string): void {
    if (!this.made) mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    this.made = true;
    if (fresh.length) appendFileSync(join(this.dir, 'study.jsonl'), fresh.map((f) => `${JSON.stringify({ index: f.entry.index, entry: f.raw })}\n`).join(''), { mode: 0o600 });
    for (const f of fresh) known.set(f.entry.index, f.entry);
    this.save({ version: 1, size: target.size, root: b64(target.root), note });
  }

  /** Saves a checkpoint unless another process saved a newer one meanwhile: the saved checkpoint only moves forward. */
  private save(next: SavedCheckpoint): void {
    const current = this.saved();
    if (current && current.size >= next.size) return;
    writePrivateFile(join(this.dir, 'checkpoint.json'), JSON.stringify(next, null, 2));
  }
}
