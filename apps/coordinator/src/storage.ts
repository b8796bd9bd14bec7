import { Inject, Injectable } from '@nestjs/common';
import type { KeyPair } from '@confide/crypto';
import { ledgerOrigin, signCheckpoint } from '@confide/ledger';
import type { Database } from './db/database';
import {
  ApiKeyRepository,
  ContributionRepository,
  PartialDecryptionRepository,
  EventLog,
  InvitationRepository,
  ParticipantRepository,
  QueryRepository,
  PrivacyBudgetRepository,
  RoundRepository,
  StudyRepository,
} from './db/repositories';
import { COORDINATOR_KEY, DATABASE } from './tokens';

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
  readonly partials: PartialDecryptionRepository;
  readonly events: EventLog;
  readonly privacyBudget: PrivacyBudgetRepository;

  /** The ledger's origin, which is also the checkpoint signing key's name. */
  readonly origin: string;

  constructor(@Inject(DATABASE) readonly database: Database, @Inject(COORDINATOR_KEY) key: KeyPair) {
    const db = database.db;
    this.studies = new StudyRepository(db);
    this.invitations = new InvitationRepository(db);
    this.participants = new ParticipantRepository(db);
    this.apiKeys = new ApiKeyRepository(db);
    this.queries = new QueryRepository(db);
    this.rounds = new RoundRepository(db);
    this.contributions = new ContributionRepository(db);
    this.partials = new PartialDecryptionRepository(db);
    this.origin = ledgerOrigin(key.publicKey);
    const origin = this.origin;
    this.privacyBudget = new PrivacyBudgetRepository(db);
    this.events = new EventLog(db, (size, root) => signCheckpoint(key, origin, { origin, size, root }));
  }
}
