import { Controller, Get } from '@nestjs/common';
import { ApiBearerAuth, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { z } from 'zod';
import { Roles } from '../auth/decorators';
import { StatusService } from './status.service';
import { healthView, statusView, type HealthView, type StatusView } from './status.view';

/** The view's JSON Schema as the OpenAPI response (the package exports no SchemaObject type: taken from the decorator). */
type ResponseSchema = NonNullable<Extract<NonNullable<Parameters<typeof ApiOkResponse>[0]>, { schema?: unknown }>['schema']>;
const responseSchema = z.toJSONSchema(statusView, { target: 'openapi-3.0' }) as ResponseSchema;
const healthSchema = z.toJSONSchema(healthView, { target: 'openapi-3.0' }) as ResponseSchema;

/** The consortium's status for admins and auditors: `confide admin status` (counts only) and the console's health page. Thin: one service call each. */
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

  @Get('health')
  @Roles('admin', 'auditor')
  @ApiOperation({
    summary:
      "The console's health page: database and Redis up or down (reported, not 503, while Redis is down), each Redis connection's state, queue depths, failed queries of the last hour by protocol and kind of reason, and the last 20 failed queries with their reasons",
  })
  @ApiOkResponse({ schema: healthSchema })
  health(): Promise<HealthView> {
    return this.status.health();
  }
}
