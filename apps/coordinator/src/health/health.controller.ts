import { Controller, Get } from '@nestjs/common';

/** Liveness of the coordinator process. Redis and database checks join when those services do. */
@Controller('health')
export class HealthController {
  @Get()
  health(): { status: 'ok' } {
    return { status: 'ok' };
  }
}
