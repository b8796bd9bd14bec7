import { Module } from '@nestjs/common';

/** The participant worker's module. Its BullMQ processors arrive with the services issue. */
@Module({})
export class ParticipantModule {}
