import { Controller, Get } from '@nestjs/common';
import { ApiBearerAuth, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { z } from 'zod';
import { Roles } from '../auth/decorators';
import { StatusService } from './status.service';
import { statusView, type StatusView } from './status.view';

/** The view's JSON Schema as the OpenAPI response (the package exports no SchemaObject type: taken from the decorator). */
type ResponseSchema = NonNullable<Extract<NonNullable<Parameters<typeof ApiOkResponse>[0]>, { schema?: unknown }>['schema']>;
const responseSchema = z.toJSONSchema(statusView, { target: 'openapi-3.0' }) as ResponseSchema;

/** The consortium's status for admins and auditors (`confide admin status`): counts only. Thin: one service call. */
@ApiTags('health')
@ApiBearerAuth()
@Controller('v1/status')
export class StatusController {
  constructor(private readonly status: StatusService) {}

  @Get()
  @Roles('admin', 'auditor')
  @ApiOperation({ summary: 'Per study: participants enrolled and online, queries running, failed and succeeded in the last hour; and the ledger size. Counts only' })
  @ApiOkResponse({ schema: responseSchema })
  view(): Promise<StatusView> {
    return this.status.view();
  }
}
