import { canonicalJson } from '@confide/crypto';
import { assertBudget, type PrivacyCost } from '@confide/protocol';
import {
  appendLeaves,
  consistencyProof,
  entryBytes,
  frontierFromHashes,
  frontierIds,
  frontierRoot,
  inclusionProof,
  leafHash,
  type LedgerEvent,
  type NodeId,
  type NodeStore,
} from '@confide/ledger';
import type { LedgerEvidence, ViewUpdate } from '@confide/protocol';
import { PostgresAdapter, sql, type Kysely } from 'kysely';
import { LEDGER_APPEND_SECONDS } from '../metrics/prometheus';
import { eventBodyColumn, readColumn } from './columns';
import type {
  ApiKey,
  Contribution,
  Dispatch,
  Invitation,
  NewApiKey,
  NewContribution,
  NewInvitation,
  NewParticipant,
  NewQuery,
  NewRound,
  NewStudy,
  Participant,
  Query,
  QueryLease,
  QueryStatus,
  Round,
  StoredEvent,
  Study,
  Tables,
  TaskPart,
  TaskOutcomesTable,
} from './schema';

/** A task outcome row. */
type TaskOutcomeRow = TaskOutcomesTable;

/**
 * The coordinator's repositories: plain classes over `Kysely<Tables>`, the same SQL on PostgreSQL and
 * SQLite (DESIGN.md "Storage and services"). BullMQ delivers jobs at least once (STYLE.md "Queues"), so
 * every write a redelivered job can repeat is idempotent or a compare-and-set at the database level:
 * inserts are `on conflict do nothing`, state changes are `update ... where status = <expected>` and
 * report whether this call made the change.
 *
 * Each class also accepts a `Transaction<Tables>` (it is a `Kysely<Tables>`): build the repositories
 * over the transaction to make writes to several tables atomic. Inside one, never use repositories built
 * over the root `Kysely`: on SQLite that waits for the transaction's own connection and never returns.
 */

/** Thrown when an insert would break a uniqueness rule (a study name, a participant name in a study, an id). */
export class ConflictError extends Error {
  override readonly name = 'ConflictError';
}

/** Runs `fn` in a transaction, or directly when `db` already is one (Kysely does not nest transactions). */
function inTransaction<T>(db: Kysely<Tables>, fn: (trx: Kysely<Tables>) => Promise<T>): Promise<T> {
  return db.isTransaction ? fn(db) : db.transaction().execute(fn);
}

/** Studies: created by the admin, unique by name. */
export class StudyRepository {
  constructor(private readonly db: Kysely<Tables>) {}

  /**
   * Stores a new study.
   * @throws ConflictError when a study with this name (or id) exists
   */
  async create(study: NewStudy): Promise<Study> {
    // `on conflict do nothing` rather than catching the unique violation: on PostgreSQL a violation aborts
    // the surrounding transaction, this does not, and it needs no per-driver error codes.
    const row = await this.db.insertInto('studies').values(study).onConflict((oc) => oc.doNothing()).returningAll().executeTakeFirst();
    if (row === undefined) throw new ConflictError(`a study named ${JSON.stringify(study.name)} already exists`);
    return row;
  }

  /** The study with this name, if any. */
  getByName(name: string): Promise<Study | undefined> {
    return this.db.selectFrom('studies').selectAll().where('name', '=', name).executeTakeFirst();
  }

  /** The study with this id, if any. */
  getById(id: string): Promise<Study | undefined> {
    return this.db.selectFrom('studies').selectAll().where('id', '=', id).executeTakeFirst();
  }

  /** Every study, oldest first. */
  list(): Promise<Study[]> {
    return this.db.selectFrom('studies').selectAll().orderBy('created_at').orderBy('id').execute();
  }
}

/** Why an invitation could not be consumed. */
export type ConsumeFailure = 'unknown' | 'used' | 'expired';

/** The outcome of `InvitationRepository.consume`. */
export type ConsumeResult = { ok: true; invitation: Invitation } | { ok: false; reason: ConsumeFailure };

/** Single-use enrolment invitations, keyed by the hash of their token. */
export class InvitationRepository {
  constructor(private readonly db: Kysely<Tables>) {}

  /**
   * Stores a new, unused invitation.
   * @throws ConflictError when an invitation with this token hash exists
   */
  async create(invitation: NewInvitation): Promise<Invitation> {
    const row = await this.db
      .insertInto('invitations')
      .values({ ...invitation, used_at: null, participant_id: null })
      .onConflict((oc) => oc.doNothing())
      .returningAll()
      .executeTakeFirst();
    if (row === undefined) throw new ConflictError('an invitation with this token already exists');
    return row;
  }

  /** The invitation with this token hash, used or not. */
  get(tokenHash: string): Promise<Invitation | undefined> {
    return this.db.selectFrom('invitations').selectAll().where('token_hash', '=', tokenHash).executeTakeFirst();
  }

  /**
   * Marks the invitation used by `participantId`, if it is unused and not expired at `now`. One UPDATE
   * decides, so two concurrent enrolments with one token cannot both succeed. When it matches nothing, a
   * lookup says why: no such token, already used (reported even if also expired), or expired.
   * Run it in the same transaction as the participant's insert (see `ParticipantRepository.enroll`), so a
   * failed enrolment does not burn the invitation.
   */
  async consume(tokenHash: string, now: number, participantId: string): Promise<ConsumeResult> {
    const invitation = await this.db
      .updateTable('invitations')
      .set({ used_at: now, participant_id: participantId })
      .where('token_hash', '=', tokenHash)
      .where('used_at', 'is', null)
      .where('expires_at', '>', now)
      .returningAll()
      .executeTakeFirst();
    if (invitation !== undefined) return { ok: true, invitation };
    const row = await this.get(tokenHash);
    if (row === undefined) return { ok: false, reason: 'unknown' };
    return { ok: false, reason: row.used_at !== null ? 'used' : 'expired' };
  }
}

/** A participant's keys and limits, as `ParticipantRepository.enroll` takes them (the invitation gives the rest). */
export type EnrollingParticipant = Omit<NewParticipant, 'study_id' | 'name' | 'enrolled_at'>;

/** The outcome of `ParticipantRepository.enroll`. */
export type EnrollResult = { ok: true; participant: Participant; invitation: Invitation } | { ok: false; reason: ConsumeFailure };

/** Enrolled participants, unique by name within a study. */
export class ParticipantRepository {
  constructor(private readonly db: Kysely<Tables>) {}

  /**
   * Stores a new participant.
   * @throws ConflictError when the study already has a participant with this name, or the id or Redis
   *   user is taken
   */
  async create(participant: NewParticipant): Promise<Participant> {
    const row = await this.db.insertInto('participants').values(participant).onConflict((oc) => oc.doNothing()).returningAll().executeTakeFirst();
    if (row === undefined) throw new ConflictError(`a participant named ${JSON.stringify(participant.name)} is already enrolled in this study`);
    return row;
  }

  /**
   * Consumes the invitation and stores the participant in one transaction: the study and the name come
   * from the invitation, never from the caller, and a participant insert that fails leaves the invitation
   * unused. Joins the surrounding transaction when built over one.
   * @throws ConflictError as `create` (the invitation is then left unused)
   */
  enroll(tokenHash: string, now: number, participant: EnrollingParticipant): Promise<EnrollResult> {
    return inTransaction(this.db, async (trx) => {
      const consumed = await new InvitationRepository(trx).consume(tokenHash, now, participant.id);
      if (!consumed.ok) return consumed;
      const { invitation } = consumed;
      const row = await new ParticipantRepository(trx).create({
        ...participant,
        study_id: invitation.study_id,
        name: invitation.participant_name,
        enrolled_at: now,
      });
      return { ok: true, participant: row, invitation };
    });
  }

  /** The participant with this id, if any. */
  get(id: string): Promise<Participant | undefined> {
    return this.db.selectFrom('participants').selectAll().where('id', '=', id).executeTakeFirst();
  }

  /**
   * A study's participants, by name: removed ones too (a running query still verifies what they signed), unless
   * `active` asks only for those that take part in new queries.
   */
  listByStudy(studyId: string, opts: { active?: boolean } = {}): Promise<Participant[]> {
    let q = this.db.selectFrom('participants').selectAll().where('study_id', '=', studyId);
    if (opts.active) q = q.where('removed_at', 'is', null);
    return q.orderBy('name').execute();
  }

  /**
   * Marks a participant removed at `now`, once: a compare-and-set, so two removals record one.
   * @returns whether this call removed it
   */
  async remove(id: string, now: number): Promise<boolean> {
    const res = await this.db.updateTable('participants').set({ removed_at: now }).where('id', '=', id).where('removed_at', 'is', null).executeTakeFirst();
    return res.numUpdatedRows === 1n;
  }

  /**
   * Sets a participant's maximum record count if it is still `from` and the participant is not removed (a
   * compare-and-set: of two updates made for one value, one applies).
   * @returns whether this call changed it
   */
  async setMaxRecords(id: string, from: number, to: number): Promise<boolean> {
    const res = await this.db
      .updateTable('participants')
      .set({ max_records: to })
      .where('id', '=', id)
      .where('max_records', '=', from)
      .where('removed_at', 'is', null)
      .executeTakeFirst();
    return res.numUpdatedRows === 1n;
  }

  /** Every participant of every study, by study then name. */
  listAll(): Promise<Participant[]> {
    return this.db.selectFrom('participants').selectAll().orderBy('study_id').orderBy('name').execute();
  }

  /** Records the tree size of the checkpoint the tasks just sent to these participants carry. */
  async setLedgerSize(ids: readonly string[], size: number): Promise<void> {
    if (ids.length) await this.db.updateTable('participants').set({ ledger_size: size }).where('id', 'in', [...ids]).execute();
  }

  /** A participant fetched its view up to `size` over HTTP: its ledger size moves there, never back. */
  async viewReached(id: string, size: number): Promise<void> {
    await this.db
      .updateTable('participants')
      .set({ ledger_size: size })
      .where('id', '=', id)
      .where((eb) => eb.or([eb('ledger_size', 'is', null), eb('ledger_size', '<', size)]))
      .execute();
  }

  /**
   * Records that the participant was seen at `at` (a signed request, an answer or a refusal); an earlier sighting
   * never moves its last-seen time back.
   */
  async seen(id: string, at: number): Promise<void> {
    await this.db
      .updateTable('participants')
      .set({ last_seen_at: at })
      .where('id', '=', id)
      .where((eb) => eb.or([eb('last_seen_at', 'is', null), eb('last_seen_at', '<', at)]))
      .execute();
  }

  /** Stores a worker's heartbeat, and when it says it is stopping, that it stopped at `at`. */
  async heartbeat(id: string, heartbeatJson: string, stoppedAt: number | null): Promise<void> {
    await this.db
      .updateTable('participants')
      .set(stoppedAt === null ? { heartbeat_json: heartbeatJson } : { heartbeat_json: heartbeatJson, stopped_at: stoppedAt })
      .where('id', '=', id)
      .execute();
  }

  /** How many participants take part in a study (removed ones do not). */
  async countByStudy(studyId: string): Promise<number> {
    const { n } = await this.db
      .selectFrom('participants')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('study_id', '=', studyId)
      .where('removed_at', 'is', null)
      .executeTakeFirstOrThrow();
    return Number(n);
  }
}

/** API keys, found by the hash of their token. */
export class ApiKeyRepository {
  constructor(private readonly db: Kysely<Tables>) {}

  /**
   * Stores a new, unrevoked API key.
   * @throws ConflictError when the id or token hash exists
   */
  async create(key: NewApiKey): Promise<ApiKey> {
    const row = await this.db
      .insertInto('api_keys')
      .values({ ...key, revoked_at: null })
      .onConflict((oc) => oc.doNothing())
      .returningAll()
      .executeTakeFirst();
    if (row === undefined) throw new ConflictError('an API key with this id or token already exists');
    return row;
  }

  /** The key with this id, revoked or not. */
  get(id: string): Promise<ApiKey | undefined> {
    return this.db.selectFrom('api_keys').selectAll().where('id', '=', id).executeTakeFirst();
  }

  /** The unrevoked key with this token hash, if any. */
  findActiveByHash(tokenHash: string): Promise<ApiKey | undefined> {
    return this.db.selectFrom('api_keys').selectAll().where('token_hash', '=', tokenHash).where('revoked_at', 'is', null).executeTakeFirst();
  }

  /** The key with this token hash, revoked or not: what lets a refusal say the key was revoked. */
  findByHash(tokenHash: string): Promise<ApiKey | undefined> {
    return this.db.selectFrom('api_keys').selectAll().where('token_hash', '=', tokenHash).executeTakeFirst();
  }

  /** Every key, oldest first (their hashes included: the caller shows only what it should). */
  list(): Promise<ApiKey[]> {
    return this.db.selectFrom('api_keys').selectAll().orderBy('created_at').orderBy('id').execute();
  }

  /** Revokes a key; true when this call revoked it, false when it was unknown or already revoked. */
  async revoke(id: string, now: number): Promise<boolean> {
    const r = await this.db.updateTable('api_keys').set({ revoked_at: now }).where('id', '=', id).where('revoked_at', 'is', null).executeTakeFirst();
    return r.numUpdatedRows > 0n;
  }
}

/** How a query ended, as `QueryRepository.finish` records it. */
export type QueryOutcome =
  | { status: 'succeeded'; result_json: string; contributors: number }
  | { status: 'failed'; failure_reason: string; contributors?: number | null };

/** One query's {@link QueryRepository.activity}: it changes whenever the query's view (QueriesService.view) does. */
export interface QueryActivity {
  readonly id: string;
  readonly status: QueryStatus;
  readonly round: number;
  readonly finishedAt: number | null;
  readonly rounds: number;
  readonly closed: number;
  readonly contributions: number;
  readonly outcomes: number;
}

/** Queries and their outcome. */
export class QueryRepository {
  constructor(private readonly db: Kysely<Tables>) {}

  /**
   * Stores a new, running query.
   * @throws ConflictError when the id exists
   */
  async create(query: NewQuery): Promise<Query> {
    const row = await this.db
      .insertInto('queries')
      .values({ ...query, status: 'running', finished_at: null, failure_reason: null, result_json: null, contributors: null })
      .onConflict((oc) => oc.doNothing())
      .returningAll()
      .executeTakeFirst();
    if (row === undefined) throw new ConflictError(`a query with id ${query.id} already exists`);
    return row;
  }

  /** The query with this id, if any. */
  get(id: string): Promise<Query | undefined> {
    return this.db.selectFrom('queries').selectAll().where('id', '=', id).executeTakeFirst();
  }

  /** The status of each of these queries that exists. */
  async statuses(ids: readonly string[]): Promise<Map<string, Query['status']>> {
    const out = new Map<string, Query['status']>();
    // SQLite allows 32,766 bound parameters per statement; chunks stay well under it.
    for (let i = 0; i < ids.length; i += 500) {
      const rows = await this.db.selectFrom('queries').select(['id', 'status']).where('id', 'in', ids.slice(i, i + 500)).execute();
      for (const r of rows) out.set(r.id, r.status);
    }
    return out;
  }

  /** Records a query's submission options until it starts; true when the query was still running. */
  async setOptions(id: string, optionsJson: string): Promise<boolean> {
    const r = await this.db.updateTable('queries').set({ options_json: optionsJson }).where('id', '=', id).where('status', '=', 'running').executeTakeFirst();
    return r.numUpdatedRows > 0n;
  }

  /** Records the query's plan (committee, deadlines); true when the query was still running. */
  async setPlan(id: string, planJson: string): Promise<boolean> {
    const r = await this.db.updateTable('queries').set({ plan_json: planJson }).where('id', '=', id).where('status', '=', 'running').executeTakeFirst();
    return r.numUpdatedRows > 0n;
  }

  /**
   * Moves a running query forward to `round`; false when it is finished or already at or past that round,
   * so a redelivered job cannot move it back.
   */
  async setRound(id: string, round: number): Promise<boolean> {
    const r = await this.db
      .updateTable('queries')
      .set({ current_round: round })
      .where('id', '=', id)
      .where('status', '=', 'running')
      .where('current_round', '<', round)
      .executeTakeFirst();
    return r.numUpdatedRows > 0n;
  }

  /**
   * Records the outcome, as a compare-and-set from `running`: exactly one of any number of concurrent or
   * redelivered calls returns true and writes; the rest return false and change nothing.
   */
  async finish(id: string, outcome: QueryOutcome, now: number): Promise<boolean> {
    const r = await this.db
      .updateTable('queries')
      .set({
        status: outcome.status,
        result_json: outcome.status === 'succeeded' ? outcome.result_json : null,
        failure_reason: outcome.status === 'failed' ? outcome.failure_reason : null,
        contributors: outcome.contributors ?? null,
        finished_at: now,
      })
      .where('id', '=', id)
      .where('status', '=', 'running')
      .executeTakeFirst();
    return r.numUpdatedRows > 0n;
  }

  /**
   * Counts of queries by study and status: every running query, and those that finished (failed or succeeded) at or
   * after `finishedSince`. Counts only, for the status view: no spec, result or reason is read.
   */
  async countByStudyAndStatus(finishedSince: number): Promise<{ studyId: string; status: QueryStatus; count: number }[]> {
    const rows = await this.db
      .selectFrom('queries')
      .select(['study_id', 'status', (eb) => eb.fn.countAll<number | string | bigint>().as('n')])
      .where((eb) => eb.or([eb('status', '=', 'running'), eb('finished_at', '>=', finishedSince)]))
      .groupBy(['study_id', 'status'])
      .execute();
    // PostgreSQL's count is a bigint, which the driver returns as a string.
    return rows.map((r) => ({ studyId: r.study_id, status: r.status, count: Number(r.n) }));
  }

  /** Every query still running, oldest first. */
  listRunning(): Promise<Query[]> {
    return this.db.selectFrom('queries').selectAll().where('status', '=', 'running').orderBy('created_at').execute();
  }

  /** Queries, newest first, of one study and/or by one API key when given, at most `limit`. */
  list(filter: { studyId?: string; createdBy?: string; limit: number }): Promise<Query[]> {
    let q = this.db.selectFrom('queries').selectAll();
    if (filter.studyId !== undefined) q = q.where('study_id', '=', filter.studyId);
    if (filter.createdBy !== undefined) q = q.where('created_by', '=', filter.createdBy);
    return q.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(filter.limit).execute();
  }

  /**
   * What a query view (QueriesService.view) is read from, reduced to what changes when the view does, for the `limit`
   * newest queries (of a study, or all), newest first: the query row's status, round and finish, and how many rounds,
   * closed rounds, contributions and task outcomes it has. One statement over primary-key ranges, cheap enough to
   * run every 250 ms per open event stream; the full views are read only when this changes.
   */
  async activity(filter: { studyId?: string; limit: number }): Promise<QueryActivity[]> {
    let q = this.db
      .selectFrom('queries as q')
      .select((eb) => [
        'q.id',
        'q.status',
        'q.current_round',
        'q.finished_at',
        eb.selectFrom('rounds as r').whereRef('r.query_id', '=', 'q.id').select((e) => e.fn.countAll<number>().as('n')).as('rounds'),
        eb.selectFrom('rounds as r').whereRef('r.query_id', '=', 'q.id').where('r.closed_at', 'is not', null).select((e) => e.fn.countAll<number>().as('n')).as('closed'),
        eb.selectFrom('contributions as c').whereRef('c.query_id', '=', 'q.id').select((e) => e.fn.countAll<number>().as('n')).as('contributions'),
        eb.selectFrom('task_outcomes as t').whereRef('t.query_id', '=', 'q.id').select((e) => e.fn.countAll<number>().as('n')).as('outcomes'),
      ]);
    if (filter.studyId !== undefined) q = q.where('q.study_id', '=', filter.studyId);
    const rows = await q.orderBy('q.created_at', 'desc').orderBy('q.id', 'desc').limit(filter.limit).execute();
    // PostgreSQL's counts are bigints, which the driver returns as strings.
    return rows.map((r) => ({
      id: r.id,
      status: r.status,
      round: r.current_round,
      finishedAt: r.finished_at === null ? null : Number(r.finished_at),
      rounds: Number(r.rounds),
      closed: Number(r.closed),
      contributions: Number(r.contributions),
      outcomes: Number(r.outcomes),
    }));
  }

  /** A study's queries, oldest first. */
  listByStudy(studyId: string): Promise<Query[]> {
    return this.db.selectFrom('queries').selectAll().where('study_id', '=', studyId).orderBy('created_at').orderBy('id').execute();
  }
}

/** Protocol rounds of a query. */
export class RoundRepository {
  constructor(private readonly db: Kysely<Tables>) {}

  /** Opens a round; idempotent: true when this call created it, false when it already existed (unchanged). */
  async open(round: NewRound): Promise<boolean> {
    const row = await this.db
      .insertInto('rounds')
      .values({ ...round, status: 'open', closed_at: null, closed_json: null })
      .onConflict((oc) => oc.columns(['query_id', 'round']).doNothing())
      .returning('round')
      .executeTakeFirst();
    return row !== undefined;
  }

  /** Closes an open round with its summary (compare-and-set from `open`); true when this call closed it. */
  /** Rewrites a closed round's stored outcome (to drop what is no longer needed once the query is decided). */
  async rewriteClosed(queryId: string, round: number, closedJson: string): Promise<void> {
    await this.db.updateTable('rounds').set({ closed_json: closedJson }).where('query_id', '=', queryId).where('round', '=', round).where('status', '=', 'closed').execute();
  }

  async close(queryId: string, round: number, closedJson: string, now: number): Promise<boolean> {
    const r = await this.db
      .updateTable('rounds')
      .set({ status: 'closed', closed_json: closedJson, closed_at: now })
      .where('query_id', '=', queryId)
      .where('round', '=', round)
      .where('status', '=', 'open')
      .executeTakeFirst();
    return r.numUpdatedRows > 0n;
  }

  /** Fails an open round (compare-and-set from `open`); true when this call failed it. */
  async fail(queryId: string, round: number, now: number): Promise<boolean> {
    const r = await this.db
      .updateTable('rounds')
      .set({ status: 'failed', closed_at: now })
      .where('query_id', '=', queryId)
      .where('round', '=', round)
      .where('status', '=', 'open')
      .executeTakeFirst();
    return r.numUpdatedRows > 0n;
  }

  /** The round, if opened. */
  get(queryId: string, round: number): Promise<Round | undefined> {
    return this.db.selectFrom('rounds').selectAll().where('query_id', '=', queryId).where('round', '=', round).executeTakeFirst();
  }

  /** A query's rounds, in order. */
  listByQuery(queryId: string): Promise<Round[]> {
    return this.db.selectFrom('rounds').selectAll().where('query_id', '=', queryId).orderBy('round').execute();
  }

  /** Every open round of every query, by deadline (for resuming after a restart). */
  listOpen(): Promise<Round[]> {
    return this.db.selectFrom('rounds').selectAll().where('status', '=', 'open').orderBy('deadline').orderBy('query_id').orderBy('round').execute();
  }
}

/** Which participants answered which round: metadata only (a hash of the bundle), never its contents. */
export class ContributionRepository {
  constructor(private readonly db: Kysely<Tables>) {}

  /**
   * Records a contribution; idempotent: true when this call recorded it, false when this participant's
   * contribution to this round was already recorded (the first one stays, whatever its hash).
   */
  async record(contribution: NewContribution): Promise<boolean> {
    const row = await this.db
      .insertInto('contributions')
      .values(contribution)
      .onConflict((oc) => oc.columns(['query_id', 'round', 'participant_id']).doNothing())
      .returning('participant_id')
      .executeTakeFirst();
    return row !== undefined;
  }

  /** A round's contributions, by participant id. */
  list(queryId: string, round: number): Promise<Contribution[]> {
    return this.db
      .selectFrom('contributions')
      .selectAll()
      .where('query_id', '=', queryId)
      .where('round', '=', round)
      .orderBy('participant_id')
      .execute();
  }
}

/** Who answered or refused each round's task (migration 0008): metadata only, for the views that name participants. */
export class TaskOutcomeRepository {
  constructor(private readonly db: Kysely<Tables>) {}

  /** Records a participant's outcome for a round once; the first one observed stays. */
  async record(row: TaskOutcomeRow): Promise<void> {
    await this.db
      .insertInto('task_outcomes')
      .values(row)
      .onConflict((oc) => oc.columns(['query_id', 'round', 'participant_id']).doNothing())
      .execute();
  }

  /** A round's outcomes, by participant id. */
  list(queryId: string, round: number): Promise<TaskOutcomeRow[]> {
    return this.db.selectFrom('task_outcomes').selectAll().where('query_id', '=', queryId).where('round', '=', round).orderBy('participant_id').execute();
  }
}

/**
 * The outbox of signed tasks (migration 0006): written in the transaction that opens their round, sent to Redis after
 * it commits, and sent again (same job id, so never twice in Redis) whenever Redis may have lost them. Rows of a
 * decided query go once its jobs are removed from Redis.
 */
export class DispatchRepository {
  constructor(private readonly db: Kysely<Tables>) {}

  /** Stores tasks to send; a task already stored for that query, round and participant is kept as it was. */
  async store(rows: readonly Omit<Dispatch, 'dispatched_at'>[]): Promise<void> {
    if (rows.length === 0) return;
    await this.db
      .insertInto('dispatches')
      .values(rows.map((r) => ({ ...r, dispatched_at: null })))
      .onConflict((oc) => oc.columns(['query_id', 'round', 'participant_id']).doNothing())
      .execute();
  }

  /**
   * The tasks of every open round of a running query, oldest first: `pendingOnly` for those never sent (or not since
   * a failed send), otherwise all of them (after Redis came back, any of them may be gone).
   */
  openRounds({ pendingOnly }: { pendingOnly: boolean }): Promise<Dispatch[]> {
    let q = this.db
      .selectFrom('dispatches')
      .innerJoin('rounds', (j) => j.onRef('rounds.query_id', '=', 'dispatches.query_id').onRef('rounds.round', '=', 'dispatches.round'))
      .innerJoin('queries', 'queries.id', 'dispatches.query_id')
      .selectAll('dispatches')
      .where('rounds.status', '=', 'open')
      .where('queries.status', '=', 'running');
    if (pendingOnly) q = q.where('dispatches.dispatched_at', 'is', null);
    return q.orderBy('dispatches.created_at').orderBy('dispatches.query_id').orderBy('dispatches.participant_id').execute();
  }

  /** Records that these tasks are in Redis now. */
  async markDispatched(queryId: string, round: number, participantIds: readonly string[], now: number): Promise<void> {
    if (participantIds.length === 0) return;
    await this.db.updateTable('dispatches').set({ dispatched_at: now }).where('query_id', '=', queryId).where('round', '=', round).where('participant_id', 'in', participantIds).execute();
  }

  /** Queries that are decided but still have tasks here: their jobs may still be in Redis. */
  async decidedQueries(): Promise<string[]> {
    const rows = await this.db
      .selectFrom('dispatches')
      .innerJoin('queries', 'queries.id', 'dispatches.query_id')
      .select('dispatches.query_id')
      .distinct()
      .where('queries.status', '!=', 'running')
      .execute();
    return rows.map((r) => r.query_id);
  }

  /** A query's stored tasks. */
  list(queryId: string): Promise<Dispatch[]> {
    return this.db.selectFrom('dispatches').selectAll().where('query_id', '=', queryId).orderBy('round').orderBy('participant_id').execute();
  }

  /** Drops a decided query's tasks and their shared parts, once its jobs are out of Redis. */
  async forget(queryId: string): Promise<void> {
    await this.db.deleteFrom('dispatches').where('query_id', '=', queryId).execute();
    await this.db.deleteFrom('task_parts').where('query_id', '=', queryId).execute();
  }

  /** Stores the shared parts a round's tasks name (libs/queue task-refs.ts); a part already stored is kept. */
  async storeParts(rows: readonly TaskPart[]): Promise<void> {
    if (rows.length === 0) return;
    await this.db.insertInto('task_parts').values([...rows]).onConflict((oc) => oc.columns(['query_id', 'hash']).doNothing()).execute();
  }

  /** The shared parts of these queries' tasks, to put into Redis before the tasks are sent again. */
  async partsOf(queryIds: readonly string[]): Promise<TaskPart[]> {
    if (queryIds.length === 0) return [];
    return this.db.selectFrom('task_parts').selectAll().where('query_id', 'in', [...new Set(queryIds)]).execute();
  }
}

/** Custodians' verified partial decryptions of paillier aggregates. */
export class PartialDecryptionRepository {
  constructor(private readonly db: Kysely<Tables>) {}

  /** Records a custodian's partials; true when this call recorded them, false when that custodian's are already in. */
  async record(row: { query_id: string; custodian: number; partials_json: string; received_at: number }): Promise<boolean> {
    const inserted = await this.db.insertInto('partial_decryptions').values(row).onConflict((oc) => oc.columns(['query_id', 'custodian']).doNothing()).returning('custodian').executeTakeFirst();
    return inserted !== undefined;
  }

  /** A query's partials, by custodian index. */
  list(queryId: string): Promise<{ custodian: number; partials_json: string }[]> {
    return this.db.selectFrom('partial_decryptions').select(['custodian', 'partials_json']).where('query_id', '=', queryId).orderBy('custodian').execute();
  }

  /** Drops a decided query's partials: with t of them, anyone could decrypt its aggregate. */
  async forget(queryId: string): Promise<void> {
    await this.db.deleteFrom('partial_decryptions').where('query_id', '=', queryId).execute();
  }
}

/**
 * The append-only event log that becomes the Merkle ledger (DESIGN.md "Ledger"): event `idx` is leaf
 * `idx` of an RFC 6962 tree, so indices start at 0 and have no gaps.
 */
/** Signs a checkpoint for a tree size and root; the coordinator passes its key in through this. */
export type CheckpointSigner = (size: number, root: Uint8Array) => string;

/** The ledger's perfect-subtree hashes in the database, as libs/ledger's NodeStore reads them. */
export class DbNodeStore implements NodeStore {
  constructor(private readonly db: Kysely<Tables>) {}

  async getNodes(ids: readonly NodeId[]): Promise<Uint8Array[]> {
    if (ids.length === 0) return [];
    const rows = await this.db
      .selectFrom('ledger_nodes')
      .select(['level', 'idx', 'hash'])
      .where((eb) => eb.or(ids.map((id) => eb.and([eb('level', '=', id.level), eb('idx', '=', id.index)]))))
      .execute();
    const byId = new Map(rows.map((r) => [`${r.level}/${r.idx}`, r.hash]));
    return ids.map((id) => {
      const hex = byId.get(`${id.level}/${id.index}`);
      if (hex === undefined) throw new Error(`ledger node ${id.level}/${id.index} is missing`);
      return new Uint8Array(Buffer.from(hex, 'hex'));
    });
  }
}

const b64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64');

/** The ledger entry bytes of a stored event (libs/ledger entryBytes: its leaf input). */
export function eventEntryBytes(event: Pick<StoredEvent, 'idx' | 'type' | 'body' | 'created_at'>): Uint8Array {
  // An object here; entryBytes checks that every value in it is canonical JSON.
  const body = readColumn(eventBodyColumn, event.body, `events.body of entry ${event.idx}`) as LedgerEvent['body'];
  return entryBytes({ index: event.idx, type: event.type, body, time: new Date(event.created_at).toISOString() });
}

export class EventLog {
  constructor(
    private readonly db: Kysely<Tables>,
    private readonly signer?: CheckpointSigner,
  ) {}

  /**
   * Appends an event, once per `dedupKey`: a repeated append (a redelivered job) returns the index of
   * the event already stored under that key, and stores nothing, even if `body` differs.
   *
   * Appends are serialised by updating the one row of `event_append_lock` first (a row lock on PostgreSQL,
   * the write lock on SQLite); the index is then max + 1, inside the same transaction, so a rolled-back
   * append leaves no hole. Joins the surrounding transaction when built over one.
   * @param body stored as canonical JSON (sorted keys, no whitespace)
   * @param studyId the study the event belongs to, if any: its participants may read it (studyEntries)
   * @returns the event's index
   * @throws TypeError when `type` or `dedupKey` is empty, or `body` is not canonical-JSON encodable
   *   (see `canonicalJson`: plain objects, safe integers)
   */
  async append(type: string, body: object, dedupKey: string, now: number, studyId: string | null = null): Promise<number> {
    if (type.length === 0) throw new TypeError('an event needs a type');
    if (dedupKey.length === 0) throw new TypeError('an event needs a dedup key');
    const text = canonicalJson(body);
    const started = performance.now();
    const appended = await inTransaction(this.db, async (trx) => {
      const lock = await trx
        .updateTable('event_append_lock')
        .set((eb) => ({ id: eb.ref('id') }))
        .where('id', '=', 1)
        .executeTakeFirst();
      if (lock.numUpdatedRows !== 1n) throw new Error('the event log lock row is missing');
      const existing = await trx.selectFrom('events').select('idx').where('dedup_key', '=', dedupKey).executeTakeFirst();
      if (existing !== undefined) return existing.idx;
      const { last } = await trx
        .selectFrom('events')
        .select((eb) => eb.fn.max('idx').as('last'))
        .executeTakeFirstOrThrow();
      const idx = last === null ? 0 : Number(last) + 1;
      await trx.insertInto('events').values({ idx, type, body: text, dedup_key: dedupKey, created_at: now, study_id: studyId }).execute();
      // The Merkle tree grows in the same transaction: the new leaf and every perfect subtree it completes are
      // stored, from the O(log n) frontier of the tree before it (RFC 9162 §2.1.1), and a checkpoint is signed.
      const store = new DbNodeStore(trx);
      const frontier = frontierFromHashes(idx, await store.getNodes(frontierIds(idx)));
      const leaf = leafHash(eventEntryBytes({ idx, type, body: text, created_at: now }));
      const grown = appendLeaves(frontier, [leaf]);
      await trx
        .insertInto('ledger_nodes')
        .values(grown.nodes.map((n) => ({ level: n.level, idx: n.index, hash: Buffer.from(n.hash).toString('hex') })))
        .execute();
      if (this.signer) {
        const root = frontierRoot(grown.frontier);
        await trx
          .insertInto('checkpoints')
          .values({ size: idx + 1, root: Buffer.from(root).toString('hex'), note: this.signer(idx + 1, root), created_at: now })
          .execute();
      }
      return idx;
    });
    LEDGER_APPEND_SECONDS.observe((performance.now() - started) / 1000);
    return appended;
  }

  /**
   * Up to `limit` events from index `start`, in order.
   * @throws RangeError (as a rejection) when `start` is not a non-negative integer or `limit` not a positive one
   */
  async list(start: number, limit: number): Promise<StoredEvent[]> {
    if (!Number.isSafeInteger(start) || start < 0) throw new RangeError('start must be a non-negative integer');
    if (!Number.isSafeInteger(limit) || limit < 1) throw new RangeError('limit must be a positive integer');
    return this.db.selectFrom('events').selectAll().where('idx', '>=', start).orderBy('idx').limit(limit).execute();
  }

  /**
   * The newest events before index `before` (all when undefined), newest first, at most `limit`: of one type, and of
   * one query (its entries' dedup keys name it: `<type>:<query>:…`, libs/protocol entryKey). What the console's
   * ledger page lists; it verifies each entry itself.
   */
  async search(filter: { type?: string; queryId?: string; before?: number; limit: number }): Promise<StoredEvent[]> {
    let q = this.db.selectFrom('events').selectAll();
    if (filter.before !== undefined) q = q.where('idx', '<', filter.before);
    if (filter.type !== undefined) q = q.where('type', '=', filter.type);
    // A query id is q + 24 hex digits (checked by the route): no LIKE wildcard can reach the pattern.
    if (filter.queryId !== undefined) {
      const id = filter.queryId;
      q = q.where((eb) => eb.or([eb('dedup_key', 'like', `%:${id}:%`), eb('dedup_key', 'like', `%:${id}`)]));
    }
    return q.orderBy('idx', 'desc').limit(filter.limit).execute();
  }

  /**
   * An event with the proof that it is in the signed log: its entry bytes, the smallest signed checkpoint that
   * covers it, and the inclusion proof at that checkpoint's size (O(log n) reads of stored subtree hashes).
   * @throws Error when there is no such event or no checkpoint covers it (a log kept without a signer)
   */
  async proven(idx: number): Promise<{ index: number; entry: Uint8Array; checkpoint: string; proof: Uint8Array[] }> {
    const row = await this.db.selectFrom('events').selectAll().where('idx', '=', idx).executeTakeFirst();
    if (!row) throw new Error(`no ledger entry ${idx}`);
    const checkpoint = await this.db.selectFrom('checkpoints').select(['size', 'note']).where('size', '>', idx).orderBy('size').limit(1).executeTakeFirst();
    if (!checkpoint) throw new Error(`no signed checkpoint covers ledger entry ${idx}`);
    const proof = await inclusionProof(new DbNodeStore(this.db), idx, checkpoint.size);
    return { index: idx, entry: eventEntryBytes(row), checkpoint: checkpoint.note, proof };
  }

  /**
   * Up to `limit` events of one study with an index after `after` and below `treeSize`, in order: the part of the
   * ledger a participant of that study may read.
   */
  studyEntries(studyId: string, after: number, treeSize: number, limit: number): Promise<StoredEvent[]> {
    return this.db.selectFrom('events').selectAll().where('study_id', '=', studyId).where('idx', '>', after).where('idx', '<', treeSize).orderBy('idx').limit(limit).execute();
  }

  /** The indices of the events stored under these dedup keys (those that exist). */
  async indicesOf(dedupKeys: readonly string[]): Promise<Map<string, number>> {
    if (dedupKeys.length === 0) return new Map();
    const rows = await this.db.selectFrom('events').select(['dedup_key', 'idx']).where('dedup_key', 'in', [...dedupKeys]).execute();
    return new Map(rows.map((r) => [r.dedup_key, Number(r.idx)]));
  }

  /** The newest signed checkpoint: size, root (hex) and signed note. */
  latestCheckpoint(): Promise<{ size: number; root: string; note: string } | undefined> {
    return this.db.selectFrom('checkpoints').select(['size', 'root', 'note']).orderBy('size', 'desc').limit(1).executeTakeFirst();
  }

  /** The root of the ledger's first `size` entries, as its checkpoint recorded it. @throws Error when there is none */
  async rootAt(size: number): Promise<Uint8Array> {
    const row = await this.db.selectFrom('checkpoints').select('root').where('size', '=', size).executeTakeFirst();
    if (!row) throw new Error(`no checkpoint at ledger size ${size}`);
    return new Uint8Array(Buffer.from(row.root, 'hex'));
  }

  /**
   * Ledger evidence for a task (libs/protocol LedgerEvidence): the newest signed checkpoint, each of the entries at
   * `indices` with its inclusion proof in it, and, when `seedSize` is given, the root at that size with its
   * consistency proof to the checkpoint.
   * @throws Error when an entry or a checkpoint is missing
   */
  async evidence(indices: readonly number[], seedSize?: number): Promise<LedgerEvidence> {
    const checkpoint = await this.latestCheckpoint();
    if (!checkpoint) throw new Error('the ledger has no signed checkpoint');
    const wanted = [...new Set(indices)].sort((a, b) => a - b);
    const rows = wanted.length ? await this.db.selectFrom('events').selectAll().where('idx', 'in', wanted).orderBy('idx').execute() : [];
    if (rows.length !== wanted.length) throw new Error(`ledger entries missing among ${wanted.join(', ')}`);
    const store = new DbNodeStore(this.db);
    const entries = await Promise.all(
      rows.map(async (row) => ({ index: Number(row.idx), entry: b64(eventEntryBytes(row)), proof: (await inclusionProof(store, Number(row.idx), checkpoint.size)).map(b64) })),
    );
    const seedRoot =
      seedSize === undefined
        ? undefined
        : { size: seedSize, root: b64(await this.rootAt(seedSize)), proof: seedSize === checkpoint.size ? [] : (await consistencyProof(store, seedSize, checkpoint.size)).map(b64) };
    return { checkpoint: checkpoint.note, entries, ...(seedRoot ? { seedRoot } : {}) };
  }

  /**
   * A participant's view update (libs/protocol ViewUpdate) from tree size `from` to `size`: the consistency proof and
   * the study's entries in [from, size), each with its inclusion proof at `size`.
   */
  async viewUpdate(studyId: string, from: number, size: number): Promise<ViewUpdate> {
    const store = new DbNodeStore(this.db);
    const rows = await this.studyEntries(studyId, from - 1, size, 10_000);
    const entries = await Promise.all(rows.map(async (row) => ({ index: Number(row.idx), entry: b64(eventEntryBytes(row)), proof: (await inclusionProof(store, Number(row.idx), size)).map(b64) })));
    return { from, consistency: (await consistencyProof(store, from, size)).map(b64), entries };
  }

  /** The event stored under a dedup key (e.g. `round.closed:<query>:1`), if there is one. */
  async findByDedupKey(dedupKey: string): Promise<StoredEvent | undefined> {
    return this.db.selectFrom('events').selectAll().where('dedup_key', '=', dedupKey).executeTakeFirst();
  }

  /** How many events are stored (the index the next one will get). */
  async count(): Promise<number> {
    const { n } = await this.db
      .selectFrom('events')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .executeTakeFirstOrThrow();
    return Number(n);
  }
}

/** The per-study differential-privacy budget: what each query spent, checked and recorded under one lock. */
export class PrivacyBudgetRepository {
  constructor(private readonly db: Kysely<Tables>) {}

  /**
   * Spends `cost` from a study's `budget` for a query, or refuses: in one transaction that first locks the study's
   * row (a row lock on PostgreSQL, the write lock on SQLite), so two concurrent queries cannot both fit into
   * what only one of them may spend.
   * @throws PrivacyError (from assertBudget) when the query would exceed the budget; nothing is recorded then
   */
  async spend(studyId: string, queryId: string, cost: PrivacyCost, budget: PrivacyCost, now: number): Promise<void> {
    await inTransaction(this.db, async (trx) => {
      await trx.updateTable('studies').set((eb) => ({ id: eb.ref('id') })).where('id', '=', studyId).execute();
      const rows = await trx.selectFrom('privacy_spend').select(['epsilon', 'delta']).where('study_id', '=', studyId).execute();
      assertBudget(rows.map((r) => ({ epsilon: Number(r.epsilon), delta: Number(r.delta) })), cost, budget);
      await trx.insertInto('privacy_spend').values({ query_id: queryId, study_id: studyId, epsilon: String(cost.epsilon), delta: String(cost.delta), spent_at: now }).execute();
    });
  }

  /** What a study's queries have spent so far. */
  async spent(studyId: string): Promise<PrivacyCost[]> {
    const rows = await this.db.selectFrom('privacy_spend').select(['epsilon', 'delta']).where('study_id', '=', studyId).execute();
    return rows.map((r) => ({ epsilon: Number(r.epsilon), delta: Number(r.delta) }));
  }
}

/** A lease this replica holds on a running query: its fencing token, and until when it holds unless renewed (ms). */
export interface Lease {
  readonly queryId: string;
  readonly token: number;
  readonly expiresAt: number;
}

/**
 * Query leases (migration 0010; DESIGN.md "Storage and services", coordinator replicas): which replica drives each
 * running query. Every change of hands adds one to the lease's fencing token, and a transition commits only if its
 * transaction finds the token it was granted still current ({@link fence}). Times are the callers' clocks in ms.
 */
export class LeaseRepository {
  constructor(private readonly db: Kysely<Tables>) {}

  /** PostgreSQL locks rows and has SKIP LOCKED; SQLite serialises every writer, so it needs neither. */
  private get postgres(): boolean {
    return this.db.getExecutor().adapter instanceof PostgresAdapter;
  }

  /**
   * Gives every running query that has no lease a free one (owner '', expired): a query whose submitting replica
   * died between storing it and taking its lease. Idempotent.
   * @returns how many it added
   */
  async adopt(): Promise<number> {
    const result = await this.db
      .insertInto('query_leases')
      .columns(['query_id', 'owner', 'token', 'expires_at'])
      .expression((eb) =>
        eb
          .selectFrom('queries')
          .select(['queries.id', sql<string>`''`.as('owner'), sql<number>`0`.as('token'), sql<number>`0`.as('expires_at')])
          .where('queries.status', '=', 'running')
          .where((eb) => eb.not(eb.exists(eb.selectFrom('query_leases').select('query_leases.query_id').whereRef('query_leases.query_id', '=', 'queries.id')))),
      )
      .onConflict((oc) => oc.column('query_id').doNothing())
      .executeTakeFirst();
    return Number(result.numInsertedOrUpdatedRows ?? 0n);
  }

  /**
   * Takes up to `limit` leases that expired at `now` (their holder died, or nobody took them yet), the longest
   * expired first, each with a new token. On PostgreSQL a lease row another replica is taking, or that a
   * transition is fencing on, is skipped (`FOR UPDATE SKIP LOCKED`, as Janus acquires its jobs): two replicas
   * looking at once take different leases and never wait for each other.
   */
  async acquireExpired(owner: string, now: number, ttlMs: number, limit: number): Promise<Lease[]> {
    const expired = this.db
      .selectFrom('query_leases')
      .select('query_id')
      .where('expires_at', '<=', now)
      .orderBy('expires_at')
      .orderBy('query_id')
      .limit(limit)
      .$if(this.postgres, (qb) => qb.forUpdate().skipLocked());
    const rows = await this.db
      .updateTable('query_leases')
      .set((eb) => ({ owner, token: eb('token', '+', 1), expires_at: now + ttlMs }))
      .where('query_id', 'in', expired)
      .where('expires_at', '<=', now)
      .returning(['query_id', 'token', 'expires_at'])
      .execute();
    return rows.map(toLease);
  }

  /**
   * Takes back, with new tokens, the leases `owner` held before it restarted, or with `every` all leases (SQLite,
   * where only one process runs).
   */
  async reclaim(owner: string, now: number, ttlMs: number, { every = false } = {}): Promise<Lease[]> {
    const rows = await this.db
      .updateTable('query_leases')
      .set((eb) => ({ owner, token: eb('token', '+', 1), expires_at: now + ttlMs }))
      .$if(!every, (qb) => qb.where('owner', '=', owner))
      .returning(['query_id', 'token', 'expires_at'])
      .execute();
    return rows.map(toLease);
  }

  /**
   * Takes one query's lease if it is free, expired at `now`, or already `owner`'s (a new token each time).
   * @returns the lease, or undefined when another replica holds it
   */
  async acquire(queryId: string, owner: string, now: number, ttlMs: number): Promise<Lease | undefined> {
    const row = await this.db
      .updateTable('query_leases')
      .set((eb) => ({ owner, token: eb('token', '+', 1), expires_at: now + ttlMs }))
      .where('query_id', '=', queryId)
      .where((eb) => eb.or([eb('expires_at', '<=', now), eb('owner', '=', owner)]))
      .returning(['query_id', 'token', 'expires_at'])
      .executeTakeFirst();
    return row && toLease(row);
  }

  /**
   * Takes one query's lease whoever holds it, for a request that changes the query on this replica (a submission,
   * a nonce, a decryption): a new token, so the previous holder's transitions no longer commit, unless `owner`
   * already holds it live with `heldToken`, which it keeps. Creates the lease of a new query.
   */
  async claim(queryId: string, owner: string, now: number, ttlMs: number, heldToken?: number): Promise<Lease> {
    const row = await this.db
      .insertInto('query_leases')
      .values({ query_id: queryId, owner, token: 1, expires_at: now + ttlMs })
      .onConflict((oc) =>
        oc.column('query_id').doUpdateSet((eb) => ({
          owner,
          expires_at: now + ttlMs,
          token:
            heldToken === undefined
              ? eb('query_leases.token', '+', 1)
              : eb
                  .case()
                  .when(eb.and([eb('query_leases.owner', '=', owner), eb('query_leases.token', '=', heldToken), eb('query_leases.expires_at', '>', now)]))
                  .then(eb.ref('query_leases.token'))
                  .else(eb('query_leases.token', '+', 1))
                  .end(),
        })),
      )
      .returning(['query_id', 'token', 'expires_at'])
      .executeTakeFirstOrThrow();
    return toLease(row);
  }

  /**
   * Extends `owner`'s leases on these queries to `now + ttlMs`.
   * @returns the leases it still holds, with their tokens (one taken over or released is missing)
   */
  async renew(owner: string, queryIds: readonly string[], now: number, ttlMs: number): Promise<Lease[]> {
    if (queryIds.length === 0) return [];
    const rows = await this.db.updateTable('query_leases').set({ expires_at: now + ttlMs }).where('owner', '=', owner).where('query_id', 'in', queryIds).returning(['query_id', 'token', 'expires_at']).execute();
    return rows.map(toLease);
  }

  /**
   * Hands `owner`'s leases on these queries back, expired at once, so another replica takes them on its next look
   * (a replica shutting down). The token stays: the next holder's acquisition adds one.
   */
  async release(owner: string, queryIds: readonly string[]): Promise<void> {
    if (queryIds.length === 0) return;
    await this.db.updateTable('query_leases').set({ owner: '', expires_at: 0 }).where('owner', '=', owner).where('query_id', 'in', queryIds).execute();
  }

  /**
   * Deletes the leases of decided queries: nobody drives them any more.
   * @returns the ids of the queries whose lease it deleted
   */
  async forgetDecided(): Promise<string[]> {
    const rows = await this.db
      .deleteFrom('query_leases')
      .where((eb) => eb.exists(eb.selectFrom('queries').select('queries.id').whereRef('queries.id', '=', 'query_leases.query_id').where('queries.status', '<>', 'running')))
      .returning('query_id')
      .execute();
    return rows.map((r) => r.query_id);
  }

  /**
   * The fencing check, inside a transition's transaction: whether `owner` still holds the query's lease with `token`.
   * On PostgreSQL the row stays share-locked until the transaction ends, so no replica can take the lease over
   * between this check and the commit (a takeover's UPDATE waits for it, and then adds one to the token).
   */
  async fence(queryId: string, owner: string, token: number): Promise<boolean> {
    const row = await this.db
      .selectFrom('query_leases')
      .select('query_id')
      .where('query_id', '=', queryId)
      .where('owner', '=', owner)
      .where('token', '=', token)
      .$if(this.postgres, (qb) => qb.forShare())
      .executeTakeFirst();
    return row !== undefined;
  }

  /** A query's lease as stored, whoever holds it. */
  get(queryId: string): Promise<QueryLease | undefined> {
    return this.db.selectFrom('query_leases').selectAll().where('query_id', '=', queryId).executeTakeFirst();
  }
}

const toLease = (row: { query_id: string; token: number; expires_at: number }): Lease => ({ queryId: row.query_id, token: Number(row.token), expiresAt: Number(row.expires_at) });

/** Every repository over one Kysely: the database itself, or a transaction on it. */
export class RepositorySet {
  readonly studies: StudyRepository;
  readonly invitations: InvitationRepository;
  readonly participants: ParticipantRepository;
  readonly apiKeys: ApiKeyRepository;
  readonly queries: QueryRepository;
  readonly rounds: RoundRepository;
  readonly contributions: ContributionRepository;
  readonly partials: PartialDecryptionRepository;
  readonly dispatches: DispatchRepository;
  readonly taskOutcomes: TaskOutcomeRepository;
  readonly events: EventLog;
  readonly privacyBudget: PrivacyBudgetRepository;
  readonly leases: LeaseRepository;

  constructor(
    private readonly db: Kysely<Tables>,
    private readonly signer?: CheckpointSigner,
  ) {
    this.studies = new StudyRepository(db);
    this.invitations = new InvitationRepository(db);
    this.participants = new ParticipantRepository(db);
    this.apiKeys = new ApiKeyRepository(db);
    this.queries = new QueryRepository(db);
    this.rounds = new RoundRepository(db);
    this.contributions = new ContributionRepository(db);
    this.partials = new PartialDecryptionRepository(db);
    this.dispatches = new DispatchRepository(db);
    this.taskOutcomes = new TaskOutcomeRepository(db);
    this.privacyBudget = new PrivacyBudgetRepository(db);
    this.events = new EventLog(db, signer);
    this.leases = new LeaseRepository(db);
  }

  /**
   * Runs `fn` with every repository over one transaction: its writes (a round's close, its ledger entry, the
   * query's outcome, the next round's tasks) commit together or not at all. Inside it use only `tx`: on SQLite, the
   * repositories over the database wait for the transaction's connection and never return. Over a transaction
   * already, `fn` joins it (Kysely does not nest transactions).
   */
  transaction<T>(fn: (tx: RepositorySet) => Promise<T>): Promise<T> {
    return inTransaction(this.db, (trx) => fn(trx === this.db ? this : new RepositorySet(trx, this.signer)));
  }
}
