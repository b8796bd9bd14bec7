import { Module, type DynamicModule } from '@nestjs/common';
import { APP_FILTER, APP_GUARD, APP_PIPE } from '@nestjs/core';
import type { KeyPair } from '@confide/crypto';
import { ApiKeyGuard } from './auth/api-key.guard';
import { WhoamiController } from './auth/whoami.controller';
import type { CoordinatorConfig } from './config';
import type { Database } from './db/database';
import type { Dependencies } from './health/dependencies';
import { EnrollmentController } from './enrollment/enrollment.controller';
import { EnrollmentService } from './enrollment/enrollment.service';
import { EventsController } from './events/events.controller';
import { MetricsController } from './health/metrics.controller';
import { HealthController } from './health/health.controller';
import { StatusController } from './health/status.controller';
import { StatusService } from './health/status.service';
import { ErrorFilter } from './http/error.filter';
import { LedgerController } from './ledger/ledger.controller';
import { ParticipantsController } from './participants/participants.controller';
import { ParticipantsService } from './participants/participants.service';
import { validationPipe } from './http/validation';
import type { Logger } from './logging';
import { Orchestrator, type RedisConnections } from './orchestration/orchestrator';
import { QueriesController } from './queries/queries.controller';
import { QueriesService } from './queries/queries.service';
import { QueryEvents } from './queries/query-events';
import { Repositories } from './storage';
import { StudiesController } from './studies/studies.controller';
import { StudiesService } from './studies/studies.service';
import { CONFIG, COORDINATOR_ENCRYPTION_KEY, COORDINATOR_KEY, DATABASE, DEPENDENCIES, LOGGER, REDIS } from './tokens';

/** Infrastructure created before Nest boots (so boot fails fast with a clear message) and handed in. */
export interface CoordinatorInfrastructure {
  readonly config: CoordinatorConfig;
  readonly logger: Logger;
  readonly database: Database;
  readonly redis: RedisConnections;
  readonly dependencies: Dependencies;
  readonly key: KeyPair;
  readonly encryptionKey: KeyPair;
}

/** The coordinator's one module: thin controllers over plain services. */
@Module({})
export class AppModule {
  static register(infra: CoordinatorInfrastructure): DynamicModule {
    return {
      module: AppModule,
      controllers: [HealthController, MetricsController, StudiesController, EnrollmentController, QueriesController, EventsController, LedgerController, ParticipantsController, StatusController, WhoamiController],
      providers: [
        { provide: CONFIG, useValue: infra.config },
        { provide: LOGGER, useValue: infra.logger },
        { provide: DATABASE, useValue: infra.database },
        { provide: REDIS, useValue: infra.redis },
        { provide: DEPENDENCIES, useValue: infra.dependencies },
        { provide: COORDINATOR_KEY, useValue: infra.key },
        { provide: COORDINATOR_ENCRYPTION_KEY, useValue: infra.encryptionKey },
        { provide: APP_GUARD, useClass: ApiKeyGuard },
        { provide: APP_FILTER, useClass: ErrorFilter },
        { provide: APP_PIPE, useFactory: validationPipe },
        Repositories,
        Orchestrator,
        StudiesService,
        EnrollmentService,
        ParticipantsService,
        QueriesService,
        QueryEvents,
        StatusService,
      ],
    };
  }
}
