import type { ColumnType, Insertable, Selectable } from 'kysely';

/**
 * The coordinator's tables as Kysely sees them (DESIGN.md "Storage and services"). Column names are the
 * SQL names (snake_case). Timestamps are milliseconds since the epoch: `bigint` on PostgreSQL, read back
 * as JS numbers (see database.ts), `integer` on SQLite. JSON columns hold text the caller produced.
 */

/** Who may call which coordinator endpoint. */
export type ApiKeyRole = 'admin' | 'researcher' | 'auditor';
/** A query is running until exactly one `QueryRepository.finish` moves it to a final state. */
export type QueryStatus = 'running' | 'succeeded' | 'failed';
/** A round is open until exactly one `RoundRepository.close` or `fail` moves it to a final state. */
export type RoundStatus = 'open' | 'closed' | 'failed';

/** A study: a named field schema that participants enrol in and researchers query. */
export interface StudiesTable {
  id: string;
  name: string;
  /** The study JSON (libs/protocol `StudySchema`), as text. */
  schema_json: string;
  min_participants: number;
  created_at: number;
}

/** An enrolled data owner: its public keys (base64url, raw), their fingerprints and its Redis ACL user. */
export interface ParticipantsTable {
  id: string;
  study_id: string;
  name: string;
  encryption_key: string;
  signing_key: string;
  encryption_fingerprint: string;
  signing_fingerprint: string;
  redis_user: string;
  /** SHA-256 (hex) of the participant's Redis password: enough to re-create its ACL user after a Redis restart, never the password. */
  redis_password_sha256: string;
  max_records: number;
  enrolled_at: number;
  /** The tree size of the checkpoint of the last task sent to this participant: where its ledger view most likely stands. */
  ledger_size: number | null;
  /** When an admin removed it (its `participant.removed` entry); null while it takes part. */
  removed_at: ColumnType<number | null, number | null | undefined, number | null>;
  /** When the coordinator last saw the participant: a signed request, or a task it answered or refused (migration 0008). */
  last_seen_at: ColumnType<number | null, number | null | undefined, number | null>;
  /** The last heartbeat the worker sent, as JSON (migration 0009; participants.service heartbeatSchema). */
  heartbeat_json: ColumnType<string | null, string | null | undefined, string | null>;
  /** When the worker said it was stopping; it is offline until seen again after that (migration 0009). */
  stopped_at: ColumnType<number | null, number | null | undefined, number | null>;
}

/** A single-use enrolment invitation, stored by the hash of its token (the token itself is never stored). */
export interface InvitationsTable {
  token_hash: string;
  study_id: string;
  participant_name: string;
  created_at: number;
  expires_at: number;
  used_at: number | null;
  participant_id: string | null;
}

/** An API key, stored by the hash of its token. */
export interface ApiKeysTable {
  id: string;
  token_hash: string;
  role: ApiKeyRole;
  label: string | null;
  created_at: number;
  revoked_at: number | null;
  /** A researcher's Ed25519 identity key (base64url of its raw bytes), bound when the key was created. */
  identity_key: ColumnType<string | null, string | null | undefined, string | null>;
}

/** A submitted query and, once finished, its outcome. */
export interface QueriesTable {
  id: string;
  study_id: string;
  protocol: string;
  spec_json: string;
  status: QueryStatus;
  created_by: string | null;
  created_at: number;
  finished_at: number | null;
  plan_json: string | null;
  current_round: number;
  failure_reason: string | null;
  result_json: string | null;
  contributors: number | null;
  /** Submission options kept until the query starts: shamir's committee-nonce commitment, threshold, deadline. */
  options_json: string | null;
}

/** One protocol round of a query. */
export interface RoundsTable {
  query_id: string;
  round: number;
  status: RoundStatus;
  opened_at: number;
  deadline: number;
  expected: number;
  closed_at: number | null;
  closed_json: string | null;
}

/** A custodian's partial decryptions of a paillier aggregate (one per chunk, JSON), verified when they arrived. */
export interface PartialDecryptionsTable {
  query_id: string;
  custodian: number;
  partials_json: string;
  received_at: number;
}

/**
 * The outbox: a signed task of an open round, kept until its query is decided so that it can be sent again with the
 * same job id when Redis lost it or was down (migration 0006).
 */
/**
 * The outbox's shared task parts (migration 0011, libs/queue task-refs.ts): what every task of a round holds alike,
 * stored once per round and put into Redis before the tasks that name it by its SHA-256. Public to the study's
 * participants (plan, query, keys, ledger evidence, view updates); never a share or an answer.
 */
export interface TaskPartsTable {
  query_id: string;
  /** SHA-256 (hex) of `body`. */
  hash: string;
  study_id: string;
  /** The part's exact text, as its hash covers it. */
  body: string;
  /** When its round's deadline passes (ms since the epoch): Redis keeps it an hour past that. */
  expires_at: number;
}

export interface DispatchesTable {
  query_id: string;
  round: number;
  participant_id: string;
  /** The BullMQ job name: the task's kind. */
  job_name: string;
  /** The signed task, as added to the participant's queue: whole, or by reference to its {@link TaskPartsTable} rows. */
  payload_json: string;
  created_at: number;
  /** When it was last added to Redis; null while it waits for Redis. */
  dispatched_at: number | null;
}

/** Task outcome of a round as the coordinator observed it: who answered or refused, never what (migration 0008). */
export type TaskOutcome = 'answered' | 'refused';

/** That a participant answered or refused its task of one round: the metadata `query --wait` names participants from. */
export interface TaskOutcomesTable {
  query_id: string;
  round: number;
  participant_id: string;
  outcome: TaskOutcome;
  at: number;
}

/** That a participant's bundle arrived for a round: metadata only, never the bundle's contents. */
export interface ContributionsTable {
  query_id: string;
  round: number;
  participant_id: string;
  bundle_hash: string;
  received_at: number;
}

/**
 * The append-only event log that the ledger (DESIGN.md "Ledger") turns into a Merkle tree. `idx` is the
 * leaf index: 0, 1, 2, ... with no gaps, assigned by `EventLog.append`.
 */
export interface EventsTable {
  idx: number;
  type: string;
  /** Canonical JSON (sorted keys, no whitespace) of the event body. */
  body: string;
  dedup_key: string;
  created_at: number;
  /** The study the event belongs to, when it belongs to one: what a participant may read of the ledger. */
  study_id: string | null;
}

/** A one-row table whose row `EventLog.append` updates first, to serialise appends on both databases. */
export interface EventAppendLockTable {
  id: number;
}

/**
 * Which coordinator replica drives a running query (migration 0010): its owner, a fencing token that grows by one at
 * every change of hands, and until when (ms) the lease holds unless renewed. `owner` is '' for a lease nobody took.
 */
export interface QueryLeasesTable {
  query_id: string;
  owner: string;
  token: number;
  expires_at: number;
}

/** Every table, keyed by its SQL name: the type parameter of `Kysely<Tables>`. */
export interface Tables {
  studies: StudiesTable;
  participants: ParticipantsTable;
  invitations: InvitationsTable;
  api_keys: ApiKeysTable;
  queries: QueriesTable;
  rounds: RoundsTable;
  contributions: ContributionsTable;
  partial_decryptions: PartialDecryptionsTable;
  dispatches: DispatchesTable;
  task_parts: TaskPartsTable;
  task_outcomes: TaskOutcomesTable;
  events: EventsTable;
  event_append_lock: EventAppendLockTable;
  ledger_nodes: LedgerNodesTable;
  checkpoints: CheckpointsTable;
  privacy_spend: PrivacySpendTable;
  query_leases: QueryLeasesTable;
}

/** What one differentially private query spent from its study's budget (decimal text). */
export interface PrivacySpendTable {
  query_id: string;
  study_id: string;
  epsilon: string;
  delta: string;
  spent_at: number;
}

/** The hash (hex) of one perfect subtree of the ledger: leaves [idx·2^level, (idx+1)·2^level). */
export interface LedgerNodesTable {
  level: number;
  idx: number;
  hash: string;
}

/** A signed checkpoint (C2SP signed note) for one tree size. */
export interface CheckpointsTable {
  size: number;
  root: string;
  note: string;
  created_at: number;
}

/** A study row. */
export type Study = Selectable<StudiesTable>;
/** A new study. */
export type NewStudy = Insertable<StudiesTable>;
/** A participant row. */
export type Participant = Selectable<ParticipantsTable>;
/** A new participant. */
export type NewParticipant = Insertable<ParticipantsTable>;
/** An invitation row. */
export type Invitation = Selectable<InvitationsTable>;
/** A new, unused invitation. */
export type NewInvitation = Omit<Insertable<InvitationsTable>, 'used_at' | 'participant_id'> & { used_at?: null; participant_id?: null };
/** An API key row. */
export type ApiKey = Selectable<ApiKeysTable>;
/** A new, unrevoked API key. */
export type NewApiKey = Omit<Insertable<ApiKeysTable>, 'revoked_at'> & { revoked_at?: null };
/** A query row. */
export type Query = Selectable<QueriesTable>;
/** A new query: it starts `running`, with no outcome (and usually no plan yet). */
export type NewQuery = Pick<Insertable<QueriesTable>, 'id' | 'study_id' | 'protocol' | 'spec_json' | 'created_by' | 'created_at' | 'current_round' | 'plan_json' | 'options_json'> & {
  status?: 'running';
  finished_at?: null;
  failure_reason?: null;
  result_json?: null;
  contributors?: null;
};
/** A round row. */
export type Round = Selectable<RoundsTable>;
/** A new round: it starts `open`. */
export type NewRound = Pick<Insertable<RoundsTable>, 'query_id' | 'round' | 'opened_at' | 'deadline' | 'expected'> & {
  status?: 'open';
  closed_at?: null;
  closed_json?: null;
};
/** A query's lease row. */
export type QueryLease = Selectable<QueryLeasesTable>;
/** A contribution row. */
export type Dispatch = Selectable<DispatchesTable>;
export type TaskPart = Selectable<TaskPartsTable>;

export type Contribution = Selectable<ContributionsTable>;
/** A new contribution. */
export type NewContribution = Insertable<ContributionsTable>;
/** An event row (named so as not to shadow the global DOM-style `Event`). */
export type StoredEvent = Selectable<EventsTable>;
