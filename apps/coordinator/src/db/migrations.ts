import { sql, type Kysely, type Migration, type MigrationProvider } from 'kysely';

/**
 * The coordinator's schema migrations: one set for both databases. Types are the portable subset (text,
 * integer, 64-bit integer); the only dialect difference is the name of the 64-bit integer type.
 * Migrations are append-only: never edit one that has shipped, add the next.
 */

/** Which database a migration runs on. */
export type Dialect = 'postgres' | 'sqlite';

/**
 * The Merkle ledger over the event log (RFC 9162): the hash of every perfect subtree as it completes
 * (level 0 = leaf hashes), so roots and proofs need O(log n) reads, and the signed checkpoints.
 */
function ledger(dialect: Dialect): Migration {
  const int64 = dialect === 'postgres' ? 'bigint' : 'integer';
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema
        .createTable('ledger_nodes')
        .addColumn('level', 'integer', (c) => c.notNull())
        .addColumn('idx', int64, (c) => c.notNull())
        .addColumn('hash', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('ledger_nodes_pk', ['level', 'idx'])
        .execute();
      await db.schema
        .createTable('checkpoints')
        .addColumn('size', int64, (c) => c.primaryKey())
        .addColumn('root', 'text', (c) => c.notNull())
        .addColumn('note', 'text', (c) => c.notNull())
        .addColumn('created_at', int64, (c) => c.notNull())
        .execute();
    },
    async down(db: Kysely<unknown>): Promise<void> {
      await db.schema.dropTable('checkpoints').execute();
      await db.schema.dropTable('ledger_nodes').execute();
    },
  };
}

function initial(dialect: Dialect): Migration {
  // SQLite integers are already 64-bit; PostgreSQL's `integer` is 32-bit, too small for ms timestamps.
  const int64 = dialect === 'postgres' ? 'bigint' : 'integer';
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema
        .createTable('studies')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull().unique())
        .addColumn('schema_json', 'text', (c) => c.notNull())
        .addColumn('min_participants', 'integer', (c) => c.notNull())
        .addColumn('created_at', int64, (c) => c.notNull())
        .execute();

      await db.schema
        .createTable('participants')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('study_id', 'text', (c) => c.notNull().references('studies.id'))
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('encryption_key', 'text', (c) => c.notNull())
        .addColumn('signing_key', 'text', (c) => c.notNull())
        .addColumn('encryption_fingerprint', 'text', (c) => c.notNull())
        .addColumn('signing_fingerprint', 'text', (c) => c.notNull())
        // Each participant has its own Redis ACL user; two sharing one could read each other's queues.
        .addColumn('redis_user', 'text', (c) => c.notNull().unique())
        .addColumn('redis_password_sha256', 'text', (c) => c.notNull())
        .addColumn('max_records', 'integer', (c) => c.notNull())
        .addColumn('enrolled_at', int64, (c) => c.notNull())
        .addUniqueConstraint('participants_study_name_unique', ['study_id', 'name'])
        .execute();

      await db.schema
        .createTable('invitations')
        .addColumn('token_hash', 'text', (c) => c.primaryKey())
        .addColumn('study_id', 'text', (c) => c.notNull().references('studies.id'))
        .addColumn('participant_name', 'text', (c) => c.notNull())
        .addColumn('created_at', int64, (c) => c.notNull())
        .addColumn('expires_at', int64, (c) => c.notNull())
        .addColumn('used_at', int64)
        // No foreign key: the invitation is consumed before the participant row exists, in one transaction.
        .addColumn('participant_id', 'text')
        .execute();

      await db.schema
        .createTable('api_keys')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('token_hash', 'text', (c) => c.notNull().unique())
        .addColumn('role', 'text', (c) => c.notNull())
        .addColumn('label', 'text')
        .addColumn('created_at', int64, (c) => c.notNull())
        .addColumn('revoked_at', int64)
        .addCheckConstraint('api_keys_role_check', sql`role in ('admin', 'researcher', 'auditor')`)
        .execute();

      await db.schema
        .createTable('queries')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('study_id', 'text', (c) => c.notNull().references('studies.id'))
        .addColumn('protocol', 'text', (c) => c.notNull())
        .addColumn('spec_json', 'text', (c) => c.notNull())
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('created_by', 'text')
        .addColumn('created_at', int64, (c) => c.notNull())
        .addColumn('finished_at', int64)
        .addColumn('plan_json', 'text')
        .addColumn('current_round', 'integer', (c) => c.notNull())
        .addColumn('failure_reason', 'text')
        .addColumn('result_json', 'text')
        .addColumn('contributors', 'integer')
        .addCheckConstraint('queries_status_check', sql`status in ('running', 'succeeded', 'failed')`)
        .execute();
      await db.schema.createIndex('queries_study_idx').on('queries').columns(['study_id', 'created_at']).execute();

      await db.schema
        .createTable('rounds')
        .addColumn('query_id', 'text', (c) => c.notNull().references('queries.id'))
        .addColumn('round', 'integer', (c) => c.notNull())
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('opened_at', int64, (c) => c.notNull())
        .addColumn('deadline', int64, (c) => c.notNull())
        .addColumn('expected', 'integer', (c) => c.notNull())
        .addColumn('closed_at', int64)
        .addColumn('closed_json', 'text')
        .addPrimaryKeyConstraint('rounds_pk', ['query_id', 'round'])
        .addCheckConstraint('rounds_status_check', sql`status in ('open', 'closed', 'failed')`)
        .execute();

      await db.schema
        .createTable('contributions')
        .addColumn('query_id', 'text', (c) => c.notNull())
        .addColumn('round', 'integer', (c) => c.notNull())
        .addColumn('participant_id', 'text', (c) => c.notNull().references('participants.id'))
        .addColumn('bundle_hash', 'text', (c) => c.notNull())
        .addColumn('received_at', int64, (c) => c.notNull())
        .addPrimaryKeyConstraint('contributions_pk', ['query_id', 'round', 'participant_id'])
        .addForeignKeyConstraint('contributions_round_fk', ['query_id', 'round'], 'rounds', ['query_id', 'round'])
        .execute();

      // `idx` is the Merkle leaf index, so it must be gap-free. It is assigned by EventLog.append under a lock,
      // not by a sequence: a PostgreSQL sequence (serial, identity) is not transactional, and a rolled-back
      // or ON CONFLICT DO NOTHING insert would burn a value and leave a hole in the ledger.
      await db.schema
        .createTable('events')
        .addColumn('idx', int64, (c) => c.primaryKey())
        .addColumn('type', 'text', (c) => c.notNull())
        .addColumn('body', 'text', (c) => c.notNull())
        .addColumn('dedup_key', 'text', (c) => c.notNull().unique())
        .addColumn('created_at', int64, (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('event_append_lock')
        .addColumn('id', 'integer', (c) => c.primaryKey())
        .execute();
      await sql`insert into event_append_lock (id) values (1)`.execute(db);
    },
  };
}

function privacyBudget(dialect: Dialect): Migration {
  const int64 = dialect === 'postgres' ? 'bigint' : 'integer';
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      // What each differentially private query spent from its study's budget. ε and δ are kept as the decimal
      // text they were given in, so the sum is computed from exactly what was recorded in the ledger.
      await db.schema
        .createTable('privacy_spend')
        .addColumn('query_id', 'text', (c) => c.primaryKey())
        .addColumn('study_id', 'text', (c) => c.notNull().references('studies.id'))
        .addColumn('epsilon', 'text', (c) => c.notNull())
        .addColumn('delta', 'text', (c) => c.notNull())
        .addColumn('spent_at', int64, (c) => c.notNull())
        .execute();
      await db.schema.createIndex('privacy_spend_study_idx').on('privacy_spend').column('study_id').execute();
    },
  };
}

/**
 * Which study each ledger event belongs to (participants read their own study's entries), a query's submission
 * options until it starts (a shamir query waits for the researcher's committee nonce), and the ledger size of the
 * last task sent to each participant (its task then brings the participant's view up to date). Existing events are assigned
 * from their bodies: a `studyId`, a study name, or a query's study.
 */
function eventStudy(): Migration {
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema.alterTable('events').addColumn('study_id', 'text').execute();
      await db.schema.createIndex('events_study_idx').on('events').columns(['study_id', 'idx']).execute();
      await db.schema.alterTable('queries').addColumn('options_json', 'text').execute();
      await db.schema.alterTable('participants').addColumn('ledger_size', 'integer').execute();
      const typed = db as unknown as Kysely<{
        events: { idx: number; body: string; study_id: string | null };
        queries: { id: string; study_id: string };
        studies: { id: string; name: string };
      }>;
      const queries = new Map((await typed.selectFrom('queries').select(['id', 'study_id']).execute()).map((q) => [q.id, q.study_id]));
      const studies = new Map((await typed.selectFrom('studies').select(['id', 'name']).execute()).map((s) => [s.name, s.id]));
      for (const e of await typed.selectFrom('events').select(['idx', 'body']).execute()) {
        const body = JSON.parse(e.body) as { studyId?: unknown; queryId?: unknown; study?: unknown };
        const studyId =
          (typeof body.studyId === 'string' ? body.studyId : undefined) ??
          (typeof body.queryId === 'string' ? queries.get(body.queryId) : undefined) ??
          (typeof body.study === 'string' ? studies.get(body.study) : undefined);
        if (studyId !== undefined) await typed.updateTable('events').set({ study_id: studyId }).where('idx', '=', e.idx).execute();
      }
    },
  };
}

/**
 * A researcher's Ed25519 identity key, bound to its API key by the admin who creates it (paillier queries are
 * signed with it, libs/protocol paillier/researcher.ts), and custodians' partial decryptions of a paillier
 * aggregate, each verified on arrival, until t of them release the result.
 */
function researcherIdentity(dialect: Dialect): Migration {
  const int64 = dialect === 'postgres' ? 'bigint' : 'integer';
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema.alterTable('api_keys').addColumn('identity_key', 'text').execute();
      await db.schema
        .createTable('partial_decryptions')
        .addColumn('query_id', 'text', (c) => c.notNull().references('queries.id'))
        .addColumn('custodian', 'integer', (c) => c.notNull())
        .addColumn('partials_json', 'text', (c) => c.notNull())
        .addColumn('received_at', int64, (c) => c.notNull())
        .addPrimaryKeyConstraint('partial_decryptions_pk', ['query_id', 'custodian'])
        .execute();
    },
  };
}

/**
 * The outbox of tasks (DESIGN.md "Storage and services"): every signed task the coordinator sends is stored here in
 * the same transaction as the round it belongs to, then added to its participant's queue. Redis may lose it (a
 * restart without persistence) or be down when the round opens: the tasks of open rounds are sent again, with the
 * same job ids, when Redis comes back, at boot and on a timer. Rows go once their query is decided and its jobs are
 * removed from Redis. A task holds only what the task itself carries over Redis: the plan, the ledger evidence,
 * and round 2's shares sealed to their member.
 */
function outbox(dialect: Dialect): Migration {
  const int64 = dialect === 'postgres' ? 'bigint' : 'integer';
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema
        .createTable('dispatches')
        .addColumn('query_id', 'text', (c) => c.notNull().references('queries.id'))
        .addColumn('round', 'integer', (c) => c.notNull())
        .addColumn('participant_id', 'text', (c) => c.notNull())
        .addColumn('job_name', 'text', (c) => c.notNull())
        .addColumn('payload_json', 'text', (c) => c.notNull())
        .addColumn('created_at', int64, (c) => c.notNull())
        .addColumn('dispatched_at', int64)
        .addPrimaryKeyConstraint('dispatches_pk', ['query_id', 'round', 'participant_id'])
        .execute();
      await db.schema.createIndex('dispatches_pending_idx').on('dispatches').columns(['dispatched_at']).execute();
    },
  };
}

/**
 * Participants an admin removed (DESIGN.md "Who uses it"): the row stays, so a running query still verifies what the
 * participant signed before, but no plan lists it again and its Redis user is gone.
 */
function participantRemoval(dialect: Dialect): Migration {
  const int64 = dialect === 'postgres' ? 'bigint' : 'integer';
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema.alterTable('participants').addColumn('removed_at', int64).execute();
    },
  };
}

/**
 * What the coordinator saw of its participants, for the researcher's and operator's views (`confide participant
 * list`, the names `query --wait` shows): when each participant was last seen (a signed request, or a task it
 * answered or refused), and which participants answered or refused each round of a query. Metadata only: never
 * what an answer contained.
 */
function participantActivity(dialect: Dialect): Migration {
  const int64 = dialect === 'postgres' ? 'bigint' : 'integer';
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema.alterTable('participants').addColumn('last_seen_at', int64).execute();
      await db.schema
        .createTable('task_outcomes')
        .addColumn('query_id', 'text', (c) => c.notNull().references('queries.id'))
        .addColumn('round', 'integer', (c) => c.notNull())
        .addColumn('participant_id', 'text', (c) => c.notNull())
        .addColumn('outcome', 'text', (c) => c.notNull())
        .addColumn('at', int64, (c) => c.notNull())
        .addPrimaryKeyConstraint('task_outcomes_pk', ['query_id', 'round', 'participant_id'])
        .addCheckConstraint('task_outcomes_outcome_check', sql`outcome in ('answered', 'refused')`)
        .execute();
    },
  };
}

/**
 * Participant heartbeats (issue 14): the last one each worker sent (its version, queue depth, last task and refusals
 * by kind, as JSON), and when a worker said it was stopping (a heartbeat with `stopping`), so that it shows offline
 * at once instead of when its heartbeats are missed.
 */
function participantHeartbeat(dialect: Dialect): Migration {
  const int64 = dialect === 'postgres' ? 'bigint' : 'integer';
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema.alterTable('participants').addColumn('heartbeat_json', 'text').execute();
      await db.schema.alterTable('participants').addColumn('stopped_at', int64).execute();
    },
  };
}

/**
 * Query leases (issue 15, coordinator replicas): several coordinator processes share one PostgreSQL, and each running
 * query is driven by exactly one of them, the holder of its lease. The fencing token grows by one each time the lease
 * changes hands, and every transition's transaction checks it (LeaseRepository.fence), so a replica whose lease was
 * taken over cannot commit. Running queries get a free lease (owner '', expired), which the first replica to look takes.
 */
function queryLeases(dialect: Dialect): Migration {
  const int64 = dialect === 'postgres' ? 'bigint' : 'integer';
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema
        .createTable('query_leases')
        .addColumn('query_id', 'text', (c) => c.primaryKey().references('queries.id'))
        .addColumn('owner', 'text', (c) => c.notNull())
        .addColumn('token', int64, (c) => c.notNull())
        .addColumn('expires_at', int64, (c) => c.notNull())
        .execute();
      await db.schema.createIndex('query_leases_expires_idx').on('query_leases').column('expires_at').execute();
      // Each replica looks at the open rounds of the queries it holds every second (deadlines, newly taken leases).
      await db.schema.createIndex('rounds_status_idx').on('rounds').column('status').execute();
      await sql`insert into query_leases (query_id, owner, token, expires_at) select id, '', 0, 0 from queries where status = 'running'`.execute(db);
    },
  };
}

/**
 * Shared task parts (issue 15, N = 1,000): a round's tasks go out by reference (libs/queue task-refs.ts), and what
 * they share (the plan listing every participant, the evidence, the view update) is stored once per round here,
 * beside the outbox rows that name it, so the tasks can be sent again after Redis lost them. Rows go with the query's
 * outbox rows.
 */
function taskParts(dialect: Dialect): Migration {
  const int64 = dialect === 'postgres' ? 'bigint' : 'integer';
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema
        .createTable('task_parts')
        .addColumn('query_id', 'text', (c) => c.notNull().references('queries.id'))
        .addColumn('hash', 'text', (c) => c.notNull())
        .addColumn('study_id', 'text', (c) => c.notNull())
        .addColumn('body', 'text', (c) => c.notNull())
        .addColumn('expires_at', int64, (c) => c.notNull())
        .addPrimaryKeyConstraint('task_parts_pk', ['query_id', 'hash'])
        .execute();
    },
  };
}

/**
 * The in-code migration provider for Kysely's `Migrator`: migrations are compiled into the app, so
 * there is no directory to find at run time.
 * @param dialect the database the migrations will run on
 */
export function migrationProvider(dialect: Dialect): MigrationProvider {
  return {
    getMigrations: () => Promise.resolve({ '0001_initial': initial(dialect), '0002_ledger': ledger(dialect), '0003_privacy_budget': privacyBudget(dialect), '0004_event_study': eventStudy(), '0005_researcher_identity': researcherIdentity(dialect), '0006_outbox': outbox(dialect), '0007_participant_removal': participantRemoval(dialect), '0008_participant_activity': participantActivity(dialect), '0009_participant_heartbeat': participantHeartbeat(dialect), '0010_query_leases': queryLeases(dialect), '0011_task_parts': taskParts(dialect) }),
  };
}
