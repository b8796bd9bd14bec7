import { Controller, Get, Req } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import type { AuthedRequest } from './api-key.guard';
import { Roles } from './decorators';

/** Who the bearer key is: the console's login asks, to show the admin's actions only to admins. */
@ApiTags('admin')
@ApiBearerAuth()
@Controller('v1/whoami')
export class WhoamiController {
  @Get()
  @Roles('admin', 'auditor', 'researcher')
  @ApiOperation({ summary: "The calling API key's role and id (never its token)" })
  whoami(@Req() req: AuthedRequest): { role: string; keyId: string } {
    const principal = req.principal!;
    return { role: principal.role, keyId: principal.keyId };
  }
}
