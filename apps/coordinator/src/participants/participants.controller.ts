import { Body, Controller, Delete, Param, Post, Req } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { z } from 'zod';
import type { AuthedRequest } from '../auth/api-key.guard';
import { ParticipantAuth, Roles } from '../auth/decorators';
import { STUDY_NAME } from '../studies/studies.service';
import { ParticipantsService } from './participants.service';
import { heartbeatSchema, type Heartbeat } from './presence';

const studyName = z.string().regex(STUDY_NAME, 'letters, digits, ".", "-" and "_" only');
const participantRef = z.string().regex(/^[A-Za-z0-9 _.-]{1,128}$/, 'a participant id or name');
const maxRecordsBody = z.strictObject({
  participantId: z.string().regex(/^[A-Za-z0-9_-]{1,128}$/),
  studyId: z.string().regex(/^[A-Za-z0-9_-]{1,128}$/),
  maxRecords: z.number().int().min(1).max(100_000_000),
  previousMaxRecords: z.number().int().min(1),
  time: z.number().int().min(0),
  signature: z.string().regex(/^[A-Za-z0-9_-]{86}$/, 'base64url of an Ed25519 signature over the update'),
});

/** A study's participants: the admin lists and removes them; a participant changes its own maximum record count. */
@ApiTags('participants')
@ApiBearerAuth()
@Controller('v1')
export class ParticipantsController {
  constructor(private readonly participants: ParticipantsService) {}

  // The list is GET /v1/studies/:name/participants (StudiesController): one view for admins, researchers and auditors.

  /** Removes a participant (by id or name): recorded in the ledger, its Redis user deleted, left out of every later plan. */
  @Delete('studies/:name/participants/:participant')
  @Roles('admin')
  remove(@Param('name', { schema: studyName }) name: string, @Param('participant', { schema: participantRef }) participant: string, @Req() req: AuthedRequest) {
    return this.participants.remove(name, participant, req.principal?.keyId ?? 'unknown');
  }

  /**
   * A participant's new maximum record count: the request is signed by the participant (x-confide-* headers) and
   * the body carries the update statement signed with its enrolled key, which the ledger records.
   */
  @Post('participant/max-records')
  @ParticipantAuth()
  updateMaxRecords(@Body({ schema: maxRecordsBody }) body: z.infer<typeof maxRecordsBody>, @Req() req: AuthedRequest) {
    return this.participants.updateMaxRecords(req.participant!.participantId, body);
  }

  /**
   * A worker's heartbeat (every 15 s, and a last one with `stopping` as it stops), signed like every participant
   * request: its version, queue, last task and refusals by kind. Nothing about its data.
   */
  @Post('participant/heartbeat')
  @ParticipantAuth()
  heartbeat(@Body({ schema: heartbeatSchema }) body: Heartbeat, @Req() req: AuthedRequest) {
    return this.participants.heartbeat(req.participant!.participantId, body);
  }
}
