import { Body, Controller, Get, Post, Req } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { z } from 'zod';
import type { AuthedRequest } from '../auth/api-key.guard';
import { InvitationAuth } from '../auth/decorators';
import { EnrollmentService } from './enrollment.service';

const enrollBody = z.strictObject({
  encryptionKey: z.string().regex(/^[A-Za-z0-9_-]{43}$/, 'base64url of a 32-byte X25519 public key'),
  signingKey: z.string().regex(/^[A-Za-z0-9_-]{43}$/, 'base64url of a 32-byte Ed25519 public key'),
  maxRecords: z.number().int().min(1).max(100_000_000),
  redisPasswordSha256: z.string().regex(/^[0-9a-f]{64}$/, 'SHA-256 (64 lowercase hex digits) of the Redis password the participant chose'),
  signature: z.string().regex(/^[A-Za-z0-9_-]{86}$/, 'base64url of an Ed25519 signature by the signing key over the enrollment'),
});

/** Participants enroll with their invitation token as the bearer. */
@ApiTags('participants')
@ApiBearerAuth()
@Controller('v1')
export class EnrollmentController {
  constructor(private readonly enrollment: EnrollmentService) {}

  /** The invitation's study settings and the coordinator's keys, before the invitation is used. */
  @Get('invitation')
  @InvitationAuth()
  preview(@Req() req: AuthedRequest) {
    return this.enrollment.preview(req.bearer ?? '');
  }

  /**
   * Enrolls the participant that signed the request with the key it registers; nothing is recorded unless the whole
   * enrollment commits, and the same participant asking again gets the same answer.
   */
  @Post('enroll')
  @InvitationAuth()
  enroll(@Body({ schema: enrollBody }) body: z.infer<typeof enrollBody>, @Req() req: AuthedRequest) {
    return this.enrollment.enroll(req.bearer ?? '', body);
  }
}
