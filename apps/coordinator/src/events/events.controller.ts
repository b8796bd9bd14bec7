import { Controller, Get, Inject, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { z } from 'zod';
import { keyFingerprint, publicKeyBase64Url, type KeyPair } from '@confide/crypto';
import { Roles } from '../auth/decorators';
import { eventBodyColumn, readColumn } from '../db/columns';
import { Repositories } from '../storage';
import { COORDINATOR_KEY } from '../tokens';
import { confideVersion } from '../version';

const page = z.strictObject({
  start: z.coerce.number().int().min(0).default(0),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
});

/** The append-only event log (the ledger issue turns it into a Merkle log) and the coordinator's key. */
@ApiTags('audit')
@ApiBearerAuth()
@Controller('v1')
export class EventsController {
  constructor(
    private readonly repos: Repositories,
    @Inject(COORDINATOR_KEY) private readonly key: KeyPair,
  ) {}

  @Get('events')
  @Roles('admin', 'auditor')
  async list(@Query({ schema: page }) q: z.infer<typeof page>) {
    const rows = await this.repos.events.list(q.start, q.limit);
    return { total: await this.repos.events.count(), events: rows.map((r) => ({ index: r.idx, type: r.type, body: readColumn(eventBodyColumn, r.body, `events.body of entry ${r.idx}`), createdAt: new Date(r.created_at).toISOString() })) };
  }

  /** The coordinator's ledger key (its fingerprint is what an admin hands to participants and auditors) and version. */
  @Get('coordinator')
  @Roles('admin', 'researcher', 'auditor')
  coordinator() {
    return { publicKey: publicKeyBase64Url(this.key.publicKey), fingerprint: keyFingerprint(this.key.publicKey), version: confideVersion() };
  }
}
