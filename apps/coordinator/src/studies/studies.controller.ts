import { Body, Controller, Get, HttpCode, Param, Post, Req } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import { z } from 'zod';
import type { AuthedRequest } from '../auth/api-key.guard';
import { Roles } from '../auth/decorators';
import { ROLES } from '../auth/tokens';
import { STUDY_NAME, StudiesService } from './studies.service';

const studyName = z.string().regex(STUDY_NAME, 'letters, digits, ".", "-" and "_" only');
const inviteBody = z.strictObject({ participant: z.string().regex(/^[A-Za-z0-9 _.-]{1,100}$/, '1–100 letters, digits, spaces, ".", "-" or "_"') });
/** An API key's id, as `POST /v1/api-keys/:id/revoke` takes it. */
export const API_KEY_ID = z.uuid('not an API key id');
const apiKeyBody = z.strictObject({ role: z.enum(ROLES), label: z.string().max(200).optional(), identityKey: z.string().max(64).optional() });

/** Admin routes: studies, invitations, API keys. Thin: parse, call one service method, map. */
@ApiTags('admin')
@ApiBearerAuth()
@Controller('v1')
export class StudiesController {
  constructor(private readonly studies: StudiesService) {}

  @Post('studies')
  @Roles('admin')
  create(@Body({ schema: z.record(z.string(), z.unknown()) }) body: Record<string, unknown>) {
    return this.studies.create(body);
  }

  @Get('studies')
  @Roles('admin', 'researcher', 'auditor')
  list() {
    return this.studies.list();
  }

  @Get('studies/:name')
  @Roles('admin', 'researcher', 'auditor')
  get(@Param('name', { schema: studyName }) name: string) {
    return this.studies.view(name);
  }

  @Get('studies/:name/participants')
  @Roles('admin', 'researcher', 'auditor')
  @ApiOperation({ summary: "A study's participants: invited name, id, last seen (a signed request or a task answered or refused) and online (seen within onlineWindowSeconds)" })
  participants(@Param('name', { schema: studyName }) name: string) {
    return this.studies.participants(name);
  }

  @Post('studies/:name/invitations')
  @Roles('admin')
  invite(@Param('name', { schema: studyName }) name: string, @Body({ schema: inviteBody }) body: z.infer<typeof inviteBody>) {
    return this.studies.invite(name, body.participant);
  }

  @Post('api-keys')
  @HttpCode(201)
  @Roles('admin')
  createKey(@Body({ schema: apiKeyBody }) body: z.infer<typeof apiKeyBody>, @Req() req: AuthedRequest) {
    return this.studies.createApiKey(body.role, body.label, req.principal?.keyId ?? 'unknown', body.identityKey);
  }

  @Get('api-keys')
  @Roles('admin')
  @ApiOperation({ summary: 'Every API key: id, role, label, created, revoked, bound identity key fingerprint (never the token)' })
  listKeys() {
    return this.studies.listApiKeys();
  }

  @Post('api-keys/:id/revoke')
  @HttpCode(200)
  @Roles('admin')
  @ApiOperation({ summary: 'Revokes an API key at once: its next request is refused with 401 naming the key and when it was revoked' })
  revokeKey(@Param('id', { schema: API_KEY_ID }) id: string) {
    return this.studies.revokeApiKey(id);
  }
}
