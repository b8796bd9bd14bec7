import { BadRequestException, Controller, Get, Inject, NotFoundException, Query, Req } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { z } from 'zod';
import { publicKeyBase64Url, type KeyPair } from '@confide/crypto';
import { consistencyProof, formatVerifierKey, inclusionProof, leafHash } from '@confide/ledger';
import { ENTRY, entryKey } from '@confide/protocol';
import type { AuthedRequest } from '../auth/api-key.guard';
import { ParticipantAuth, Roles } from '../auth/decorators';
import { readColumn, roundClosedColumn } from '../db/columns';
import { DbNodeStore, eventEntryBytes } from '../db/repositories';
import { Repositories } from '../storage';
import { COORDINATOR_KEY } from '../tokens';

const nonNegative = z.coerce.number().int().min(0);
const entriesQuery = z.strictObject({ start: nonNegative.default(0), end: nonNegative.optional() });
const inclusionQuery = z.strictObject({ index: nonNegative, treeSize: z.coerce.number().int().min(1) });
const receiptQuery = z.strictObject({ queryId: z.string().regex(/^[A-Za-z0-9_-]{1,128}$/, { error: 'must be a query id' }) });
const consistencyQuery = z.strictObject({ from: z.coerce.number().int().min(1), to: z.coerce.number().int().min(1) });
const studyQuery = z.strictObject({
  after: z.coerce.number().int().min(-1).default(-1),
  treeSize: z.coerce.number().int().min(1),
  from: z.coerce.number().int().min(1).optional(),
});
const searchQuery = z.strictObject({
  type: z.string().regex(/^[a-z][a-z0-9_.-]{0,63}$/, { error: 'must be an entry type such as round.closed' }).optional(),
  query: z.string().regex(/^q[0-9a-f]{24}$/, { error: 'must be a query id' }).optional(),
  before: z.coerce.number().int().min(0).optional(),
  limit: z.coerce.number().int().min(1).max(200).default(25),
});
const PAGE = 1000;
/** Study entries per page for participants, each with its inclusion proof. */
const STUDY_PAGE = 200;

const b64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64');

/**
 * The audit ledger (DESIGN.md "Ledger"): signed checkpoints, entries, and RFC 9162 inclusion and consistency
 * proofs computed from stored subtree hashes in O(log n) reads. Entries are for auditors and admins; checkpoints
 * and proofs also for researchers and for participants (requests signed with their enrolled key), who check
 * their receipts with them.
 */
@ApiTags('ledger')
@ApiBearerAuth()
@Controller('v1/ledger')
export class LedgerController {
  constructor(
    private readonly repos: Repositories,
    @Inject(COORDINATOR_KEY) private readonly key: KeyPair,
  ) {}

  private async size(): Promise<number> {
    return this.repos.events.count();
  }

  @Get('checkpoint')
  @Roles('auditor', 'admin')
  @ParticipantAuth()
  async checkpoint() {
    const row = await this.repos.database.db.selectFrom('checkpoints').selectAll().orderBy('size', 'desc').limit(1).executeTakeFirst();
    if (!row) throw new BadRequestException('the ledger is empty');
    return { size: row.size, root: b64(Buffer.from(row.root, 'hex')), note: row.note };
  }

  @Get('public-key')
  @Roles('auditor', 'admin', 'researcher')
  @ParticipantAuth()
  publicKey() {
    return { origin: this.repos.origin, publicKey: publicKeyBase64Url(this.key.publicKey), verifierKey: formatVerifierKey(this.repos.origin, this.key.publicKey) };
  }

  /**
   * A participant's receipt for its contribution to a query: the index and bytes of the ledger entry that
   * records it among the contributors (the closing of the round it answered). Participants only, and only
   * their own: the entry names the bundle hash of the signed contribution, which the participant checks
   * against the one it sent.
   */
  @Get('receipt')
  @ParticipantAuth()
  async receipt(@Query({ schema: receiptQuery }) q: z.infer<typeof receiptQuery>, @Req() req: AuthedRequest) {
    const self = req.participant;
    if (!self) throw new BadRequestException('receipts are for participants: sign the request with the participant key');
    const query = await this.repos.queries.get(q.queryId);
    if (!query || query.study_id !== self.studyId) throw new NotFoundException(`no query ${q.queryId} in this participant's study`);
    const row = await this.repos.events.findByDedupKey(entryKey(ENTRY.roundClosed, q.queryId, 1));
    const body = row ? readColumn(roundClosedColumn, row.body, `events.body of entry ${row.idx} (round.closed)`) : undefined;
    if (!row || !body?.contributors.some((c) => c.id === self.participantId)) {
      throw new NotFoundException(`the ledger records no contribution of ${self.participantId} to query ${q.queryId} (status: ${query.status})`);
    }
    const entry = eventEntryBytes(row);
    return { queryId: q.queryId, index: row.idx, entry: b64(entry), leafHash: b64(leafHash(entry)) };
  }

  /**
   * The ledger entries of the calling participant's own study (DESIGN.md "Trust model": every query is in the
   * ledger for participants to see): studies, enrollments, queries, committees, closings, results, failures. Each
   * comes with its inclusion proof at `treeSize`, and `from` asks for the consistency proof between the tree size
   * the participant verified last and `treeSize` (in whichever direction), so one request brings the participant's
   * view up to date. Participants only, signed with their enrolled key.
   */
  @Get('study')
  @ParticipantAuth()
  async study(@Query({ schema: studyQuery }) q: z.infer<typeof studyQuery>, @Req() req: AuthedRequest) {
    const self = req.participant;
    if (!self) throw new BadRequestException('the study ledger is for participants: sign the request with the participant key');
    const size = await this.size();
    if (q.treeSize > size) throw new BadRequestException(`treeSize: the ledger has ${size} entries`);
    if (q.from !== undefined && q.from > size) throw new BadRequestException(`from: the ledger has ${size} entries`);
    const store = new DbNodeStore(this.repos.database.db);
    const rows = await this.repos.events.studyEntries(self.studyId, q.after, q.treeSize, STUDY_PAGE);
    const entries = await Promise.all(rows.map(async (r) => ({ index: r.idx, entry: b64(eventEntryBytes(r)), proof: (await inclusionProof(store, r.idx, q.treeSize)).map(b64) })));
    let consistency: { from: number; to: number; proof: string[] } | null = null;
    if (q.from !== undefined && q.from !== q.treeSize) {
      const [lo, hi] = q.from < q.treeSize ? [q.from, q.treeSize] : [q.treeSize, q.from];
      consistency = { from: lo, to: hi, proof: (await consistencyProof(store, lo, hi)).map(b64) };
    }
    const more = rows.length === STUDY_PAGE;
    // The last page: the participant's view is at treeSize once it has checked it, so its next task can carry the
    // update from there (a hint only: a view that is not there asks over HTTP again).
    if (!more) await this.repos.participants.viewReached(self.participantId, q.treeSize);
    return { treeSize: q.treeSize, entries, more, consistency };
  }

  @Get('entries')
  @Roles('auditor', 'admin')
  async entries(@Query({ schema: entriesQuery }) q: z.infer<typeof entriesQuery>) {
    const size = await this.size();
    const end = Math.min(q.end ?? size, size, q.start + PAGE);
    if (q.start > end) throw new BadRequestException(`start: beyond the end of the ledger (${size} entries)`);
    const rows = end > q.start ? await this.repos.events.list(q.start, end - q.start) : [];
    return { size, start: q.start, end, entries: rows.map((r) => ({ index: r.idx, entry: b64(eventEntryBytes(r)) })) };
  }

  /**
   * Entries newest first, filtered by type and by query, a page at a time (`before` the last index of the previous
   * page): the console's ledger page, which checks each one against the signed checkpoint itself.
   */
  @Get('entries/search')
  @Roles('auditor', 'admin')
  async search(@Query({ schema: searchQuery }) q: z.infer<typeof searchQuery>) {
    const size = await this.size();
    const rows = await this.repos.events.search({ type: q.type, queryId: q.query, before: q.before, limit: q.limit });
    const last = rows[rows.length - 1];
    return { size, entries: rows.map((r) => ({ index: r.idx, entry: b64(eventEntryBytes(r)) })), before: rows.length === q.limit && last ? last.idx : null };
  }

  @Get('proof/inclusion')
  @Roles('auditor', 'admin', 'researcher')
  @ParticipantAuth()
  async inclusion(@Query({ schema: inclusionQuery }) q: z.infer<typeof inclusionQuery>) {
    const size = await this.size();
    if (q.treeSize > size) throw new BadRequestException(`treeSize: the ledger has ${size} entries`);
    if (q.index >= q.treeSize) throw new BadRequestException('index: must be below treeSize');
    const proof = await inclusionProof(new DbNodeStore(this.repos.database.db), q.index, q.treeSize);
    return { index: q.index, treeSize: q.treeSize, proof: proof.map(b64) };
  }

  @Get('proof/consistency')
  @Roles('auditor', 'admin', 'researcher')
  @ParticipantAuth()
  async consistency(@Query({ schema: consistencyQuery }) q: z.infer<typeof consistencyQuery>) {
    const size = await this.size();
    if (q.to > size) throw new BadRequestException(`to: the ledger has ${size} entries`);
    if (q.from > q.to) throw new BadRequestException('from: must not exceed to');
    const proof = await consistencyProof(new DbNodeStore(this.repos.database.db), q.from, q.to);
    return { from: q.from, to: q.to, proof: proof.map(b64) };
  }
}
