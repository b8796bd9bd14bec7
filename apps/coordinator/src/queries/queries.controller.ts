import { Body, Controller, Get, Param, Post, Query, Req, Sse } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiProduces, ApiTags } from '@nestjs/swagger';
import { z } from 'zod';
import type { AuthedRequest } from '../auth/api-key.guard';
import { Roles } from '../auth/decorators';
import { paillierDecryptionSchema, postedPartialsSchema, researcherBindingSchema, STAT_NAMES, type StatName } from '@confide/protocol';
import { QueriesService } from './queries.service';
import { QueryEvents } from './query-events';

const queryBody = z.strictObject({
  study: z.string().min(1).max(100),
  protocol: z.enum(['shamir', 'paillier']).default('shamir'),
  // The outline only: the statistics compiler checks every item against the study schema and names what is wrong.
  select: z.array(z.looseObject({ stat: z.enum(STAT_NAMES as [StatName, ...StatName[]]) })).min(1).max(50),
  where: z.array(z.looseObject({ field: z.string().min(1).max(100), op: z.string().max(8) })).max(50).optional(),
  groupBy: z.string().min(1).max(100).optional(),
  // Checked against the study's settings (tightening only) by effectivePrivacy, which names the field.
  privacy: z.record(z.string(), z.unknown()).optional(),
  publicKey: z.strictObject({ n: z.string().regex(/^[A-Za-z0-9_-]{1,2000}$/, 'must be base64url') }).optional(),
  threshold: z.number().int().min(1).max(10).optional(),
  deadlineSeconds: z.number().int().min(1).max(86_400).optional(),
  seedCommitment: z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex digits').optional(),
  // Paillier: the researcher's signature over the study, the query's hash, the key and the custodians.
  researcher: researcherBindingSchema.optional(),
  // Paillier with custodians: their verification keys (libs/crypto threshold-paillier JSON form).
  custodians: z.record(z.string(), z.unknown()).optional(),
  // Submit although fewer than the minimum of participants are online (409 too_few_online otherwise).
  allowOffline: z.boolean().optional(),
});
const nonceBody = z.strictObject({ nonce: z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex digits') });
const listFilter = z.strictObject({
  study: z.string().min(1).max(100).optional(),
  mine: z.enum(['true', 'false']).optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
});
const eventsFilter = z.strictObject({
  study: z.string().min(1).max(100).optional(),
  limit: z.coerce.number().int().min(1).max(100).default(20),
});
export const QUERY_ID = z.string().regex(/^q[0-9a-f]{24}$/, 'not a query id');

/** Researchers submit queries and follow them; auditors and admins may read them. */
@ApiTags('queries')
@ApiBearerAuth()
@Controller('v1/queries')
export class QueriesController {
  constructor(
    private readonly queries: QueriesService,
    private readonly events: QueryEvents,
  ) {}

  @Post()
  @Roles('researcher', 'admin')
  submit(@Body({ schema: queryBody }) body: z.infer<typeof queryBody>, @Req() req: AuthedRequest) {
    return this.queries.submit(body, req.principal?.keyId ?? 'unknown');
  }

  // Before the routes with `:id`, so Nest does not read "events" as a query id.
  @Sse('events')
  @Roles('researcher', 'admin', 'auditor')
  @ApiProduces('text/event-stream')
  @ApiOperation({
    summary:
      'Server-sent events: `queries`, whose data is the array of the `limit` (default 20, at most 100) newest queries\' views (as GET /v1/queries/:id), of a study (study=NAME) or all, newest first; sent on connect and whenever one changes (checked every 250 ms), and a keep-alive comment every 15 s',
  })
  stream(@Query({ schema: eventsFilter }) q: z.infer<typeof eventsFilter>) {
    return this.events.watch(q);
  }

  /** Shamir: the researcher reveals its committee nonce, and the query starts. */
  @Post(':id/nonce')
  @Roles('researcher', 'admin')
  nonce(@Param('id', { schema: QUERY_ID }) id: string, @Body({ schema: nonceBody }) body: z.infer<typeof nonceBody>, @Req() req: AuthedRequest) {
    return this.queries.revealNonce(id, req.principal?.keyId ?? 'unknown', body.nonce);
  }

  /** The aggregate with what its key holder checks: the submitting researcher, or any custodian of a split key. */
  @Get(':id/aggregate')
  @Roles('researcher', 'admin', 'auditor')
  aggregate(@Param('id', { schema: QUERY_ID }) id: string, @Req() req: AuthedRequest) {
    return this.queries.aggregate(id, req.principal?.keyId ?? 'unknown');
  }

  @Post(':id/decryption')
  @Roles('researcher', 'admin')
  decryption(@Param('id', { schema: QUERY_ID }) id: string, @Body({ schema: paillierDecryptionSchema }) body: z.infer<typeof paillierDecryptionSchema>, @Req() req: AuthedRequest) {
    return this.queries.decryption(id, req.principal?.keyId ?? 'unknown', body);
  }

  /** A custodian's partial decryptions of the aggregate, each with its proof; t of them release the result. */
  @Post(':id/partial-decryptions')
  @Roles('researcher', 'admin', 'auditor')
  partials(@Param('id', { schema: QUERY_ID }) id: string, @Body({ schema: postedPartialsSchema }) body: z.infer<typeof postedPartialsSchema>, @Req() req: AuthedRequest) {
    return this.queries.partials(id, req.principal?.keyId ?? 'unknown', body);
  }

  @Get()
  @Roles('researcher', 'admin', 'auditor')
  @ApiOperation({ summary: "Queries, newest first: a study's (study=NAME), the caller's own (mine=true), or all; id, study, statistics, status, submitted, finished" })
  list(@Query({ schema: listFilter }) q: z.infer<typeof listFilter>, @Req() req: AuthedRequest) {
    return this.queries.list({ study: q.study, createdBy: q.mine === 'true' ? (req.principal?.keyId ?? 'unknown') : undefined, limit: q.limit });
  }

  @Get(':id')
  @Roles('researcher', 'admin', 'auditor')
  get(@Param('id', { schema: QUERY_ID }) id: string) {
    return this.queries.view(id);
  }
}
