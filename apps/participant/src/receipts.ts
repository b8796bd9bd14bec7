import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { type KeyPair, type PublicKey } from '@confide/crypto';
import { leafHash, parseEntry, verifyInclusion, type Checkpoint, type LedgerEntry } from '@confide/ledger';
import { bundleHash, contributionHash, ENTRY, parseEntryBody, type PaillierContribution, type Round1Bundle } from '@confide/protocol';
import { CoordinatorLink, CoordinatorRequestError, REQUEST_TIMEOUT_MS } from './coordinator-link';
import { writePrivateFile, type Identity, type ParticipantHome } from './home';
import { LedgerView, LedgerViewError } from './ledger-view';

/**
 * Participant receipts (DESIGN.md "Ledger"): for every contribution, the index and leaf hash of the ledger entry
 * that records it among the contributors, checked when it is fetched against the contribution this participant
 * signed (its bundle hash), and later against the coordinator's current signed checkpoint with an RFC 9162
 * inclusion proof. The checkpoint verified last is kept in the home too (the participant's ledger view, shared with
 * its worker), and each new one must be consistent with it, so a coordinator that rewrites history to drop a
 * contribution is caught even with a re-signed log. A contribution whose query the ledger does not record at all
 * fails: it answered a task the coordinator forged.
 */

const receiptSchema = z.strictObject({
  queryId: z.string(),
  index: z.number().int().min(0),
  /** Base64 SHA-256 leaf hash (RFC 9162 §2.1.1) of the entry. */
  leafHash: z.string(),
  /** The hash of the signed contribution, as the entry records it. */
  contributionHash: z.string(),
  entryType: z.string(),
  recordedAt: z.string(),
});
export type Receipt = z.infer<typeof receiptSchema>;

const bookSchema = z.strictObject({
  version: z.literal(1),
  receipts: z.array(receiptSchema),
  checkpoint: z.strictObject({ size: z.number().int().min(0), root: z.string(), note: z.string() }).nullable(),
});
type Book = z.infer<typeof bookSchema>;

const FILE = 'receipts.json';

/**
 * One contribution's standing: verified against the current checkpoint, stored, not yet in the ledger (its query is
 * still running), not counted (its query ended without it: it answered late, or the query failed), or failed.
 */
export interface ReceiptStatus {
  readonly queryId: string;
  readonly index: number | null;
  readonly leafHash: string | null;
  readonly status: 'verified' | 'stored' | 'pending' | 'not-counted' | 'failed';
  readonly reason: string | null;
}

/** The outcome of `confide participant receipts`. */
export interface ReceiptsReport {
  readonly ok: boolean;
  readonly treeSize: number | null;
  readonly root: string | null;
  readonly receipts: readonly ReceiptStatus[];
  /** A failure of the checkpoint itself (signature, consistency with the saved one), if any. */
  readonly reason: string | null;
}

const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64');
const fromB64 = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'base64'));

/** The hash of the contribution an answer stored in the home carries: a shamir round-1 bundle or a paillier contribution. */
function contributionHashOf(answer: unknown): string | undefined {
  const a = answer as { bundle?: Round1Bundle; contribution?: PaillierContribution } | null;
  if (!a || typeof a !== 'object') return undefined;
  if (a.bundle) return bundleHash(a.bundle);
  return a.contribution ? contributionHash(a.contribution) : undefined;
}

/** The receipt book in the home, or an empty one. @throws Error naming the file when it is damaged */
function readBook(file: string): Book {
  if (!existsSync(file)) return { version: 1, receipts: [], checkpoint: null };
  const parsed = bookSchema.safeParse(JSON.parse(readFileSync(file, 'utf8')));
  if (!parsed.success) throw new Error(`${file} is damaged: ${parsed.error.issues[0]?.message ?? ''}`);
  return parsed.data;
}

/** Queries this participant answered with a contribution (query id to contribution hash), from its own answer store. */
function contributionsOf(home: ParticipantHome): Map<string, string> {
  const state = join(home.dir, 'state');
  const out = new Map<string, string>();
  if (!existsSync(state)) return out;
  for (const name of readdirSync(state).sort()) {
    const m = /^(.+)\.r1\.json$/.exec(name);
    if (!m) continue;
    const hash = contributionHashOf(home.readAnswer(m[1]!, 1));
    if (hash) out.set(m[1]!, hash);
  }
  return out;
}

/** What the home alone says of this participant's receipts, without asking the coordinator. */
export interface LocalReceipts {
  /** Contributions this participant made (its stored round-1 answers). */
  readonly contributions: number;
  /** Of those, the ones with a receipt in receipts.json ('stored', as `participant receipts` says). */
  readonly stored: number;
  /** Contributions with no receipt stored yet: `participant receipts` fetches them. */
  readonly withoutReceipt: number;
  /** The tree size of the checkpoint `participant receipts --verify` last verified, if it ran. */
  readonly verifiedTreeSize: number | null;
}

/**
 * Counts this participant's contributions and the receipts stored for them, from the home's files only
 * (receipts.json and the answer store): no request is made.
 * @throws Error naming receipts.json when it is damaged
 */
export function localReceipts(home: ParticipantHome): LocalReceipts {
  const book = readBook(join(home.dir, FILE));
  const contributions = contributionsOf(home);
  const stored = book.receipts.filter((r) => contributions.has(r.queryId)).length;
  return { contributions: contributions.size, stored, withoutReceipt: contributions.size - stored, verifiedTreeSize: book.checkpoint?.size ?? null };
}

export class ReceiptBook {
  private readonly file: string;
  private readonly link: CoordinatorLink;
  private readonly view: LedgerView;

  constructor(
    private readonly home: ParticipantHome,
    private readonly identity: Identity,
    signing: KeyPair,
    coordinatorKey: PublicKey,
    /** How long each request to the coordinator may take. */
    timeoutMs = REQUEST_TIMEOUT_MS,
  ) {
    this.file = join(home.dir, FILE);
    this.link = new CoordinatorLink(identity.coordinatorUrl, identity.participantId, signing, 0, timeoutMs);
    this.view = new LedgerView(home.dir, coordinatorKey, this.link, identity.studyId);
  }

  private read(): Book {
    return readBook(this.file);
  }

  private write(book: Book): void {
    writePrivateFile(this.file, JSON.stringify(book, null, 2));
  }

  /** Queries this participant answered with a contribution, from its own answer store. */
  private contributions(): Map<string, string> {
    return contributionsOf(this.home);
  }

  /**
   * Fetches a receipt for every contribution that has none yet, checks that the served entry is a
   * contributors record of that query listing this participant with the hash of the contribution it signed,
   * and stores it. A contribution not (yet) in the ledger is reported as pending; a served entry that does
   * not record what was sent is reported as failed and not stored.
   */
  async collect(): Promise<ReceiptStatus[]> {
    const book = this.read();
    const have = new Map(book.receipts.map((r) => [r.queryId, r]));
    const statuses: ReceiptStatus[] = [];
    for (const [queryId, hash] of this.contributions()) {
      const known = have.get(queryId);
      if (known) {
        statuses.push({ queryId, index: known.index, leafHash: known.leafHash, status: 'stored', reason: null });
        continue;
      }
      let served: { index: number; entry: string; leafHash: string };
      try {
        served = await this.link.get(`/v1/ledger/receipt?queryId=${encodeURIComponent(queryId)}`);
      } catch (err) {
        if (err instanceof CoordinatorRequestError && err.status === 404) {
          statuses.push({ queryId, index: null, leafHash: null, status: 'pending', reason: err.message });
          continue;
        }
        throw err;
      }
      const bytes = fromB64(served.entry);
      const problem = this.checkEntry(bytes, served.index, queryId, hash);
      const leaf = b64(leafHash(bytes));
      if (problem) {
        statuses.push({ queryId, index: served.index, leafHash: leaf, status: 'failed', reason: problem });
        continue;
      }
      const entry = parseEntry(bytes);
      const receipt: Receipt = { queryId, index: served.index, leafHash: leaf, contributionHash: hash, entryType: entry.type, recordedAt: entry.time };
      book.receipts.push(receipt);
      statuses.push({ queryId, index: receipt.index, leafHash: leaf, status: 'stored', reason: null });
    }
    this.write(book);
    return statuses.sort((a, b) => (a.index ?? Infinity) - (b.index ?? Infinity));
  }

  /** Why a served entry is not a receipt for this contribution, or undefined when it is one. */
  private checkEntry(bytes: Uint8Array, index: number, queryId: string, hash: string): string | undefined {
    let entry;
    try {
      entry = parseEntry(bytes);
    } catch (err) {
      return `the served entry is malformed: ${(err as Error).message}`;
    }
    if (entry.index !== index) return `the served entry claims index ${entry.index}, not ${index}`;
    const body = entry.body as { queryId?: unknown; contributors?: unknown };
    if (entry.type !== 'round.closed' || body.queryId !== queryId) return `entry ${index} is not the contributors record of query ${queryId}`;
    const contributors = Array.isArray(body.contributors) ? (body.contributors as { id?: unknown; bundleHash?: unknown }[]) : [];
    const mine = contributors.find((c) => c.id === this.identity.participantId);
    if (!mine) return `entry ${index} does not list this participant among the contributors`;
    if (mine.bundleHash !== hash) return `entry ${index} records a different contribution (hash ${String(mine.bundleHash)}) than the one this participant signed (${hash})`;
    return undefined;
  }

  /**
   * Collects new receipts, then brings the participant's ledger view up to the coordinator's current signed
   * checkpoint (signature with the key pinned at enrollment, consistency with the checkpoint verified last time,
   * RFC 9162 §2.1.4) and checks every stored receipt with an inclusion proof (§2.1.3). Every contribution without a
   * receipt is judged by the study's ledger: its query must be recorded (else it answered a forged task), and it is
   * pending only while the query is still running.
   */
  async verify(): Promise<ReceiptsReport> {
    const collected = await this.collect();
    const book = this.read();
    let checkpoint: Checkpoint;
    let entries: LedgerEntry[];
    try {
      checkpoint = await this.view.catchUp();
      entries = this.view.studyEntries();
    } catch (err) {
      if (!(err instanceof LedgerViewError)) throw err;
      const saved = this.view.saved();
      return { ok: false, treeSize: saved?.size ?? null, root: null, receipts: collected, reason: err.message };
    }
    const root = b64(checkpoint.root);
    const byQuery = new Map(collected.map((s) => [s.queryId, s]));
    for (const receipt of book.receipts) byQuery.set(receipt.queryId, await this.verifyOne(receipt, checkpoint));
    for (const [queryId, status] of byQuery) if (status.status === 'pending') byQuery.set(queryId, judgeUnrecorded(status, entries));
    // In ledger order, contributions not yet in the ledger last.
    const receipts = [...byQuery.values()].sort((a, b) => (a.index ?? Infinity) - (b.index ?? Infinity));
    const failed = receipts.filter((r) => r.status === 'failed');
    const ok = failed.length === 0;
    if (ok) {
      const saved = this.view.saved();
      if (saved) this.write({ ...book, checkpoint: { size: saved.size, root: b64(saved.root), note: saved.note } });
    }
    const reason = ok ? null : failed.length === 1 ? `query ${failed[0]!.queryId}: ${failed[0]!.reason ?? 'failed'}` : `${failed.length} contributions failed: ${failed.map((f) => f.queryId).join(', ')}`;
    return { ok, treeSize: checkpoint.size, root, receipts, reason };
  }

  private async verifyOne(receipt: Receipt, checkpoint: Checkpoint): Promise<ReceiptStatus> {
    const base = { queryId: receipt.queryId, index: receipt.index, leafHash: receipt.leafHash };
    if (receipt.index >= checkpoint.size) return { ...base, status: 'failed', reason: `index ${receipt.index} is beyond the checkpoint (${checkpoint.size} entries)` };
    try {
      const { proof } = await this.link.get<{ proof: string[] }>(`/v1/ledger/proof/inclusion?index=${receipt.index}&treeSize=${checkpoint.size}`);
      verifyInclusion(fromB64(receipt.leafHash), receipt.index, checkpoint.size, proof.map(fromB64), checkpoint.root);
      return { ...base, status: 'verified', reason: null };
    } catch (err) {
      return { ...base, status: 'failed', reason: `not included in the signed ledger at index ${receipt.index}: ${(err as Error).message}` };
    }
  }
}

/**
 * A contribution with no receipt, judged by the study's verified ledger entries: failed when the ledger has no
 * `query.submitted` for its query (the task was forged: the participant contributed to a query nobody sees),
 * not counted when the query already ended (`result.released` or `query.failed`) without it, pending otherwise.
 */
function judgeUnrecorded(status: ReceiptStatus, entries: readonly LedgerEntry[]): ReceiptStatus {
  const about = entries.filter((e) => (e.body as { queryId?: unknown }).queryId === status.queryId);
  if (!about.some((e) => e.type === ENTRY.querySubmitted && parseEntryBody(ENTRY.querySubmitted, e.body) !== undefined)) {
    return { ...status, status: 'failed', reason: `the ledger records no query ${status.queryId}: this participant contributed to a task the ledger does not know (a forged task)` };
  }
  const ended = about.find((e) => e.type === ENTRY.resultReleased || e.type === ENTRY.queryFailed);
  if (ended) return { ...status, index: null, status: 'not-counted', reason: `the query ended (${ended.type}, entry ${ended.index}) without this contribution` };
  return status;
}
