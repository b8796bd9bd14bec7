import { Body, Controller, Get, Param, Post, Req } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { z } from 'zod';
import type { AuthedRequest } from '../auth/api-key.guard';
import { Roles } from '../auth/decorators';
import { QueriesService } from './queries.service';

const queryBody = z.strictObject({
  study: z.string().min(1).max(100),
  protocol: z.literal('shamir'),
  select: z.array(z.strictObject({ stat: z.enum(['count', 'sum', 'mean']), field: z.string().min(1).max(100) })).min(1).max(50),
  threshold: z.number().int().min(1).max(10).optional(),
  deadlineSeconds: z.number().int().min(1).max(86_400).optional(),
});
export const QUERY_ID = z.string().regex(/^q[0-9a-f]{24}$/, 'not a query id');

/** Researchers submit queries and follow them; auditors and admins may read them. */
@ApiTags('queries')
@ApiBearerAuth()
@Controller('v1/queries')
export class QueriesController {
  constructor(private readonly queries: QueriesService) {}

  @Post()
  @Roles('researcher', 'admin')
  submit(@Body({ schema: queryBody }) body: z.infer<typeof queryBody>, @Req() req: AuthedRequest) {
    return this.queries.submit(body, req.principal?.keyId ?? 'unknown');
  }

  @Get(':id')
  @Roles('researcher', 'admin', 'auditor')
  get(@Param('id', { schema: QUERY_ID }) id: string) {
    return this.queries.view(id);
  }
}
