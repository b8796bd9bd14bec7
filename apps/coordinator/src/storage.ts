import { Inject, Injectable } from '@nestjs/common';
import type { Database } from './db/database';
import {
  ApiKeyRepository,
  ContributionRepository,
  EventLog,
  InvitationRepository,
  ParticipantRepository,
  QueryRepository,
  RoundRepository,
  StudyRepository,
} from './db/repositories';
import { DATABASE } from './tokens';

/** Every repository over the one database, as a single injectable. */
@Injectable()
export class Repositories {
  readonly studies: StudyRepository;
  readonly invitations: InvitationRepository;
  readonly participants: ParticipantRepository;
  readonly apiKeys: ApiKeyRepository;
  readonly queries: QueryRepository;
  readonly rounds: RoundRepository;
  readonly contributions: ContributionRepository;
  readonly events: EventLog;

  constructor(@Inject(DATABASE) readonly database: Database) {
    const db = database.db;
    this.studies = new StudyRepository(db);
    this.invitations = new InvitationRepository(db);
    this.participants = new ParticipantRepository(db);
    this.apiKeys = new ApiKeyRepository(db);
    this.queries = new QueryRepository(db);
    this.rounds = new RoundRepository(db);
    this.contributions = new ContributionRepository(db);
    this.events = new EventLog(db);
  }
}
