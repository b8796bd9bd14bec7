import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { Kysely, Migrator, SqliteDialect, sql } from 'kysely';
import pg, { types as pgTypes } from 'pg';
import { isDatabaseOutage, openDatabase, SQLITE_FILE, withStatementCache, type Database, type DatabaseConfig } from '../../apps/coordinator/src/db/database';
import { freePort } from '../../apps/cli/src/local-redis';
import {
  ApiKeyRepository,
  PartialDecryptionRepository,
  ConflictError,
  ContributionRepository,
  EventLog,
  InvitationRepository,
  ParticipantRepository,
  PrivacyBudgetRepository,
  QueryRepository,
  RepositorySet,
  RoundRepository,
  StudyRepository,
  TaskOutcomeRepository,
} from '../../apps/coordinator/src/db/repositories';
import type { NewParticipant } from '../../apps/coordinator/src/db/schema';
import { generateKeyPair } from '@confide/crypto';
import { ledgerOrigin, signCheckpoint } from '@confide/ledger';
import { ENTRY, entryKey, openEvidence, PrivacyError } from '@confide/protocol';
import { migrationProvider } from '../../apps/coordinator/src/db/migrations';
import { isOnline, readHeartbeat } from '../../apps/coordinator/src/participants/presence';

// The coordinator's storage against real databases: the same suite on an SQLite file in a temporary
// directory and on PostgreSQL in a schema of its own, dropped afterwards (STYLE.md "Tests").
const POSTGRES_URL = process.env.CONFIDE_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

interface Target {
  readonly name: 'sqlite' | 'postgres';
  config(dir: string): DatabaseConfig;
}
const targets: Target[] = [
  { name: 'sqlite', config: (dir) => ({ dataDir: join(dir, 'data') }) },
  { name: 'postgres', config: (dir) => ({ url: POSTGRES_URL, dataDir: dir, schema: `test_${randomBytes(6).toString('hex')}` }) },
];

/**
 * A foreign-key violation as each driver reports it. Matched by its code rather than with `rejects.toThrow()`:
 * better-sqlite3 hands its native addon the SqliteError class once per process, so in a jest process where
 * another test file opened SQLite first, the errors come from that file's realm and are not `instanceof Error`
 * here, although they are thrown.
 */
const foreignKeyViolation = (target: Target) => ({ code: target.name === 'sqlite' ? 'SQLITE_CONSTRAINT_FOREIGNKEY' : '23503' });

const T0 = 1_750_000_000_000; // ms timestamps beyond 2^32, so a 32-bit column or a string int8 would show
const key = () => randomBytes(32).toString('base64url');

/** Opens the target's database in a fresh temporary directory; `cleanup` drops the schema and closes it. */
async function openTarget(target: Target): Promise<{ database: Database; config: DatabaseConfig; cleanup: () => Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), `confide-db-${target.name}-`));
  const config = target.config(dir);
  const database = await openDatabase(config);
  return {
    database,
    config,
    cleanup: async () => {
      try {
        if (config.schema !== undefined) await sql`drop schema ${sql.id(config.schema)} cascade`.execute(database.db);
      } finally {
        await database.close();
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}

describe.each(targets)('coordinator storage on $name', (target) => {
  let database: Database;
  let config: DatabaseConfig;
  let cleanup: () => Promise<void>;
  let studies: StudyRepository;
  let participants: ParticipantRepository;
  let invitations: InvitationRepository;
  let apiKeys: ApiKeyRepository;
  let queries: QueryRepository;
  let rounds: RoundRepository;
  let contributions: ContributionRepository;
  let partials: PartialDecryptionRepository;
  let events: EventLog;

  beforeAll(async () => {
    ({ database, config, cleanup } = await openTarget(target));
    const db = database.db;
    studies = new StudyRepository(db);
    participants = new ParticipantRepository(db);
    invitations = new InvitationRepository(db);
    apiKeys = new ApiKeyRepository(db);
    queries = new QueryRepository(db);
    rounds = new RoundRepository(db);
    contributions = new ContributionRepository(db);
    partials = new PartialDecryptionRepository(db);
    events = new EventLog(db);
  });
  afterAll(async () => {
    await cleanup?.();
  });

  const newStudy = (name = `study-${randomUUID()}`) =>
    studies.create({ id: randomUUID(), name, schema_json: '{"fields":[]}', min_participants: 3, created_at: T0 });
  const participantRow = (studyId: string, name: string): NewParticipant => {
    const id = randomUUID();
    return {
      id,
      study_id: studyId,
      name,
      encryption_key: key(),
      signing_key: key(),
      encryption_fingerprint: key(),
      signing_fingerprint: key(),
      redis_user: `confide-${id}`,
      redis_password_sha256: 'a'.repeat(64),
      max_records: 1000,
      enrolled_at: T0 + 1,
    };
  };
  const newQuery = async () => {
    const study = await newStudy();
    const query = await queries.create({
      id: randomUUID(),
      study_id: study.id,
      protocol: 'shamir',
      spec_json: '{"select":[]}',
      created_by: 'key-1',
      created_at: T0,
      current_round: 1,
      plan_json: null,
    });
    return { study, query };
  };

  it('reports its dialect', () => {
    expect(database.dialect).toBe(target.name);
  });

  it('runs the migrations once: opening the same database again applies nothing and keeps the data', async () => {
    const study = await newStudy();
    const again = await openDatabase(config);
    try {
      expect(await new StudyRepository(again.db).getById(study.id)).toEqual(study);
      const { rows } = await sql<{ name: string }>`select name from kysely_migration order by name`.execute(again.db);
      expect(rows.map((r) => r.name)).toEqual(['0001_initial', '0002_ledger', '0003_privacy_budget', '0004_event_study', '0005_researcher_identity', '0006_outbox', '0007_participant_removal', '0008_participant_activity', '0009_participant_heartbeat', '0010_query_leases', '0011_task_parts']);
    } finally {
      await again.close();
    }
  });

  it('reads 64-bit columns back as exact JavaScript numbers', async () => {
    const study = await studies.create({ id: randomUUID(), name: `big-${randomUUID()}`, schema_json: '{}', min_participants: 1, created_at: Number.MAX_SAFE_INTEGER });
    expect(study.created_at).toBe(Number.MAX_SAFE_INTEGER);
    const read = await studies.getById(study.id);
    expect(read?.created_at).toBe(Number.MAX_SAFE_INTEGER);
    expect(typeof read?.min_participants).toBe('number');
    const idx = await events.append('test.big', { n: 1 }, `big-${randomUUID()}`, T0);
    const [event] = await events.list(idx, 1);
    expect(event).toMatchObject({ idx, created_at: T0 });
    expect(typeof event?.idx).toBe('number');
    expect(typeof (await events.count())).toBe('number');
    expect(typeof (await participants.countByStudy(study.id))).toBe('number');
  });

  describe('studies', () => {
    it('creates, finds by name and id, and lists', async () => {
      const a = await newStudy();
      const b = await newStudy();
      expect(a).toMatchObject({ schema_json: '{"fields":[]}', min_participants: 3, created_at: T0 });
      expect(await studies.getByName(a.name)).toEqual(a);
      expect(await studies.getById(b.id)).toEqual(b);
      expect(await studies.getByName('no such study')).toBeUndefined();
      const ids = (await studies.list()).map((s) => s.id);
      expect(ids).toEqual(expect.arrayContaining([a.id, b.id]));
    });

    it('refuses a second study with the same name with a ConflictError and keeps the first', async () => {
      const a = await newStudy();
      await expect(studies.create({ id: randomUUID(), name: a.name, schema_json: '{"other":1}', min_participants: 9, created_at: T0 })).rejects.toBeInstanceOf(
        ConflictError,
      );
      await expect(studies.create({ ...a, name: `other-${randomUUID()}` })).rejects.toThrow(ConflictError);
      expect(await studies.getByName(a.name)).toEqual(a);
    });

    it('a conflict inside a transaction leaves the transaction usable', async () => {
      const a = await newStudy();
      const name = `after-conflict-${randomUUID()}`;
      await database.db.transaction().execute(async (trx) => {
        const repo = new StudyRepository(trx);
        await expect(repo.create({ ...a, id: randomUUID() })).rejects.toThrow(ConflictError);
        await repo.create({ id: randomUUID(), name, schema_json: '{}', min_participants: 3, created_at: T0 });
      });
      expect(await studies.getByName(name)).toBeDefined();
    });
  });

  describe('participants', () => {
    it('creates, gets, lists by study in name order and counts', async () => {
      const study = await newStudy();
      const other = await newStudy();
      const bob = await participants.create(participantRow(study.id, 'bob'));
      const alice = await participants.create(participantRow(study.id, 'alice'));
      await participants.create(participantRow(other.id, 'carol'));
      expect(await participants.get(bob.id)).toEqual(bob);
      expect(await participants.get('nobody')).toBeUndefined();
      expect((await participants.listByStudy(study.id)).map((p) => p.name)).toEqual(['alice', 'bob']);
      expect(await participants.countByStudy(study.id)).toBe(2);
      expect(await participants.countByStudy('no such study')).toBe(0);
      expect((await participants.listAll()).map((p) => p.id)).toEqual(expect.arrayContaining([alice.id, bob.id]));
    });

    it('refuses a second participant with the same name in a study, but not in another study', async () => {
      const study = await newStudy();
      const other = await newStudy();
      await participants.create(participantRow(study.id, 'site-a'));
      await expect(participants.create(participantRow(study.id, 'site-a'))).rejects.toThrow(ConflictError);
      await participants.create(participantRow(other.id, 'site-a'));
      expect(await participants.countByStudy(study.id)).toBe(1);
    });

    it('refuses two participants sharing one Redis user', async () => {
      const study = await newStudy();
      const first = await participants.create(participantRow(study.id, 'one'));
      await expect(participants.create({ ...participantRow(study.id, 'two'), redis_user: first.redis_user })).rejects.toThrow(ConflictError);
    });

    it('enforces the foreign key to studies', async () => {
      await expect(participants.create(participantRow('no-such-study', 'x'))).rejects.toMatchObject(foreignKeyViolation(target));
    });

    it('moves a view read over HTTP forward only (viewReached), where a task sent moves it to its checkpoint (setLedgerSize)', async () => {
      const study = await newStudy();
      const p = await participants.create(participantRow(study.id, 'reader'));
      const size = async () => (await participants.get(p.id))!.ledger_size;
      await participants.viewReached(p.id, 40);
      expect(await size()).toBe(40);
      await participants.viewReached(p.id, 12);
      expect(await size()).toBe(40);
      await participants.setLedgerSize([p.id], 45);
      await participants.viewReached(p.id, 44);
      expect(await size()).toBe(45);
      await participants.viewReached(p.id, 50);
      expect(await size()).toBe(50);
    });

    it('keeps the last heartbeat and when the worker said it stopped; online until then, offline after, online again once seen', async () => {
      const study = await newStudy();
      const p = await participants.create(participantRow(study.id, 'beating'));
      const t = Date.UTC(2026, 11, 7, 12) + 2 ** 33; // past 2^32 ms from the epoch: exact in both dialects' 64-bit columns
      const window = 45_000;
      await participants.seen(p.id, t);
      await participants.heartbeat(p.id, JSON.stringify({ version: '0.1.0', queue: null, lastTask: null, refused: { data_file: 2 } }), null);
      let row = (await participants.get(p.id))!;
      expect([row.last_seen_at, row.stopped_at, readHeartbeat(row.heartbeat_json)?.refused]).toEqual([t, null, { data_file: 2 }]);
      expect(isOnline(row, t + window, window)).toBe(true);
      expect(isOnline(row, t + window + 1, window)).toBe(false);
      // The stopping heartbeat: the guard saw the request, then the service recorded the stop.
      await participants.seen(p.id, t + 1_000);
      await participants.heartbeat(p.id, row.heartbeat_json!, t + 1_000);
      row = (await participants.get(p.id))!;
      expect(isOnline(row, t + 1_001, window)).toBe(false);
      await participants.seen(p.id, t + 5_000);
      row = (await participants.get(p.id))!;
      expect(isOnline(row, t + 5_001, window)).toBe(true);
    });
  });

  describe('invitations', () => {
    const invite = async (expiresAt = T0 + 60_000) => {
      const study = await newStudy();
      const tokenHash = key();
      const invitation = await invitations.create({ token_hash: tokenHash, study_id: study.id, participant_name: 'site-1', created_at: T0, expires_at: expiresAt });
      return { study, tokenHash, invitation };
    };

    it('consumes an invitation once, then reports it used', async () => {
      const { tokenHash, invitation } = await invite();
      expect(invitation).toMatchObject({ used_at: null, participant_id: null });
      const first = await invitations.consume(tokenHash, T0 + 10, 'p-1');
      expect(first).toEqual({ ok: true, invitation: { ...invitation, used_at: T0 + 10, participant_id: 'p-1' } });
      expect(await invitations.consume(tokenHash, T0 + 20, 'p-2')).toEqual({ ok: false, reason: 'used' });
      expect(await invitations.get(tokenHash)).toMatchObject({ used_at: T0 + 10, participant_id: 'p-1' });
    });

    it('reports an expired invitation as expired (expiry is exclusive) and an unknown token as unknown', async () => {
      const { tokenHash } = await invite(T0 + 100);
      expect(await invitations.consume(tokenHash, T0 + 100, 'p-1')).toEqual({ ok: false, reason: 'expired' });
      expect(await invitations.get(tokenHash)).toMatchObject({ used_at: null, participant_id: null });
      expect(await invitations.consume(key(), T0, 'p-1')).toEqual({ ok: false, reason: 'unknown' });
    });

    it('reports a used invitation as used even after it expired', async () => {
      const { tokenHash } = await invite(T0 + 100);
      expect((await invitations.consume(tokenHash, T0 + 50, 'p-1')).ok).toBe(true);
      expect(await invitations.consume(tokenHash, T0 + 200, 'p-2')).toEqual({ ok: false, reason: 'used' });
    });

    it('lets exactly one of several concurrent enrolments use a token', async () => {
      const { tokenHash } = await invite();
      const outcomes = await Promise.all(Array.from({ length: 8 }, (_, i) => invitations.consume(tokenHash, T0 + 1, `p-${i}`)));
      const winners = outcomes.filter((o) => o.ok);
      expect(winners).toHaveLength(1);
      expect(outcomes.filter((o) => !o.ok)).toEqual(Array.from({ length: 7 }, () => ({ ok: false, reason: 'used' })));
      const winner = winners[0];
      expect((await invitations.get(tokenHash))?.participant_id).toBe(winner?.ok ? winner.invitation.participant_id : 'none');
    });

    it('refuses a duplicate token hash', async () => {
      const { invitation } = await invite();
      await expect(invitations.create(invitation as typeof invitation & { used_at: null; participant_id: null })).rejects.toThrow(ConflictError);
    });
  });

  describe('enrolment (invitation and participant in one transaction)', () => {
    const enrolling = () => {
      const id = randomUUID();
      return { id, encryption_key: key(), signing_key: key(), encryption_fingerprint: key(), signing_fingerprint: key(), redis_user: `confide-${id}`, redis_password_sha256: 'b'.repeat(64), max_records: 10 };
    };

    it('takes the study and the name from the invitation', async () => {
      const study = await newStudy();
      const tokenHash = key();
      await invitations.create({ token_hash: tokenHash, study_id: study.id, participant_name: 'hospital-a', created_at: T0, expires_at: T0 + 1000 });
      const who = enrolling();
      const result = await participants.enroll(tokenHash, T0 + 5, who);
      expect(result).toMatchObject({ ok: true, participant: { ...who, study_id: study.id, name: 'hospital-a', enrolled_at: T0 + 5 } });
      expect(await participants.enroll(tokenHash, T0 + 6, enrolling())).toEqual({ ok: false, reason: 'used' });
      expect(await participants.enroll(key(), T0 + 6, enrolling())).toEqual({ ok: false, reason: 'unknown' });
      expect(await participants.countByStudy(study.id)).toBe(1);
    });

    it('leaves the invitation unused when the participant cannot be stored', async () => {
      const study = await newStudy();
      await participants.create(participantRow(study.id, 'taken'));
      const tokenHash = key();
      await invitations.create({ token_hash: tokenHash, study_id: study.id, participant_name: 'taken', created_at: T0, expires_at: T0 + 1000 });
      await expect(participants.enroll(tokenHash, T0 + 5, enrolling())).rejects.toThrow(ConflictError);
      expect(await invitations.get(tokenHash)).toMatchObject({ used_at: null, participant_id: null });
    });

    it('joins a surrounding transaction, so an event appended with it rolls back with it', async () => {
      const study = await newStudy();
      const tokenHash = key();
      await invitations.create({ token_hash: tokenHash, study_id: study.id, participant_name: 'site-z', created_at: T0, expires_at: T0 + 1000 });
      const dedupKey = entryKey(ENTRY.participantEnrolled, randomUUID());
      const before = await events.count();
      await expect(
        database.db.transaction().execute(async (trx) => {
          const result = await new ParticipantRepository(trx).enroll(tokenHash, T0 + 5, enrolling());
          expect(result.ok).toBe(true);
          await new EventLog(trx).append(ENTRY.participantEnrolled, { studyId: study.id }, dedupKey, T0 + 5);
          throw new Error('provisioning the Redis user failed');
        }),
      ).rejects.toThrow('provisioning the Redis user failed');
      expect(await invitations.get(tokenHash)).toMatchObject({ used_at: null });
      expect(await participants.countByStudy(study.id)).toBe(0);
      expect(await events.count()).toBe(before);
    });

    it('removes a participant once, leaves it out of the active roster and the count, and keeps its row (issue 13)', async () => {
      const study = await newStudy();
      const [a, b] = [participantRow(study.id, 'site-a'), participantRow(study.id, 'site-b')];
      await participants.create(a);
      await participants.create(b);
      expect(await participants.remove(a.id, T0 + 7)).toBe(true);
      expect(await participants.remove(a.id, T0 + 8)).toBe(false);
      expect((await participants.listByStudy(study.id, { active: true })).map((p) => p.name)).toEqual(['site-b']);
      expect((await participants.listByStudy(study.id)).map((p) => [p.name, p.removed_at])).toEqual([
        ['site-a', T0 + 7],
        ['site-b', null],
      ]);
      expect(await participants.countByStudy(study.id)).toBe(1);
    });

    it('changes maxRecords only from the value an update was made for, and never for a removed participant', async () => {
      const study = await newStudy();
      const row = participantRow(study.id, 'site-m');
      await participants.create(row);
      expect(await participants.setMaxRecords(row.id, row.max_records + 1, 500)).toBe(false);
      expect(await participants.setMaxRecords(row.id, row.max_records, 500)).toBe(true);
      expect((await participants.get(row.id))?.max_records).toBe(500);
      await participants.remove(row.id, T0 + 9);
      expect(await participants.setMaxRecords(row.id, 500, 600)).toBe(false);
    });
  });

  describe('API keys', () => {
    it('finds an active key by hash until it is revoked', async () => {
      const tokenHash = key();
      const created = await apiKeys.create({ id: randomUUID(), token_hash: tokenHash, role: 'researcher', label: 'lab', created_at: T0 });
      expect(created).toMatchObject({ role: 'researcher', label: 'lab', revoked_at: null });
      expect(await apiKeys.findActiveByHash(tokenHash)).toEqual(created);
      expect(await apiKeys.findActiveByHash(key())).toBeUndefined();
      expect(await apiKeys.revoke(created.id, T0 + 1)).toBe(true);
      expect(await apiKeys.revoke(created.id, T0 + 2)).toBe(false);
      expect(await apiKeys.findActiveByHash(tokenHash)).toBeUndefined();
    });

    it('refuses a duplicate token hash and an unknown role', async () => {
      const tokenHash = key();
      await apiKeys.create({ id: randomUUID(), token_hash: tokenHash, role: 'admin', label: null, created_at: T0 });
      await expect(apiKeys.create({ id: randomUUID(), token_hash: tokenHash, role: 'auditor', label: null, created_at: T0 })).rejects.toThrow(ConflictError);
      // A role outside the union can only come from untyped input; the CHECK constraint still stops it.
      const role = 'root' as 'admin';
      await expect(apiKeys.create({ id: randomUUID(), token_hash: key(), role, label: null, created_at: T0 })).rejects.not.toBeInstanceOf(ConflictError);
    });

    it('keeps the identity key bound to a researcher key, revoked or not', async () => {
      const identity = key();
      const created = await apiKeys.create({ id: randomUUID(), token_hash: key(), role: 'researcher', label: null, created_at: T0, identity_key: identity });
      expect(await apiKeys.get(created.id)).toMatchObject({ identity_key: identity });
      await apiKeys.revoke(created.id, T0 + 1);
      expect(await apiKeys.get(created.id)).toMatchObject({ identity_key: identity, revoked_at: T0 + 1 });
      const plain = await apiKeys.create({ id: randomUUID(), token_hash: key(), role: 'auditor', label: null, created_at: T0 });
      expect(plain.identity_key).toBeNull();
      expect(await apiKeys.get('no such key')).toBeUndefined();
    });
  });

  describe('custodians’ partial decryptions', () => {
    it('keeps each custodian’s once (the first stays), lists them by index, and forgets them all', async () => {
      const { query } = await newQuery();
      expect(await partials.record({ query_id: query.id, custodian: 3, partials_json: '["c3"]', received_at: T0 })).toBe(true);
      expect(await partials.record({ query_id: query.id, custodian: 1, partials_json: '["c1"]', received_at: T0 + 1 })).toBe(true);
      expect(await partials.record({ query_id: query.id, custodian: 3, partials_json: '["other"]', received_at: T0 + 2 })).toBe(false);
      expect(await partials.list(query.id)).toEqual([
        { custodian: 1, partials_json: '["c1"]' },
        { custodian: 3, partials_json: '["c3"]' },
      ]);
      await partials.forget(query.id);
      expect(await partials.list(query.id)).toEqual([]);
    });

    it('refuses partials for a query that does not exist', async () => {
      await expect(partials.record({ query_id: 'no such query', custodian: 1, partials_json: '[]', received_at: T0 })).rejects.toMatchObject(foreignKeyViolation(target));
    });
  });

  /** Every repository over the database, with a checkpoint signer, as the coordinator builds them. */
  const signedRepositories = (): RepositorySet => {
    const key = generateKeyPair('ed25519');
    const origin = ledgerOrigin(key.publicKey);
    return new RepositorySet(database.db, (size, root) => signCheckpoint(key, origin, { origin, size, root }));
  };

  describe('the outbox of tasks (dispatches)', () => {
    const task = (queryId: string, round: number, participantId: string, payload = `{"task":"${participantId}"}`) => ({
      query_id: queryId,
      round,
      participant_id: participantId,
      job_name: 'shamir.round1',
      payload_json: payload,
      created_at: T0,
    });

    it('keeps each task once, lists the pending ones of open rounds of running queries, and forgets them when asked', async () => {
      const repos = signedRepositories();
      const { query } = await newQuery();
      await rounds.open({ query_id: query.id, round: 1, status: 'open', opened_at: T0, deadline: T0 + 1000, expected: 2 });
      await repos.dispatches.store([task(query.id, 1, 'p-a'), task(query.id, 1, 'p-b')]);
      // A second store (a transition replayed after a crash) keeps the first payload.
      await repos.dispatches.store([task(query.id, 1, 'p-a', '{"task":"again"}')]);
      const mine = async (pendingOnly: boolean) => (await repos.dispatches.openRounds({ pendingOnly })).filter((d) => d.query_id === query.id);
      expect((await mine(true)).map((d) => [d.participant_id, d.payload_json, d.dispatched_at])).toEqual([
        ['p-a', '{"task":"p-a"}', null],
        ['p-b', '{"task":"p-b"}', null],
      ]);
      await repos.dispatches.markDispatched(query.id, 1, ['p-a'], T0 + 5);
      expect((await mine(true)).map((d) => d.participant_id)).toEqual(['p-b']);
      // After a Redis outage every task of the open round goes again, sent or not.
      expect((await mine(false)).map((d) => [d.participant_id, d.dispatched_at])).toEqual([
        ['p-a', T0 + 5],
        ['p-b', null],
      ]);
      // Once the round closes its tasks are no longer sent; once the query is decided, they are its cleanup to do.
      await rounds.close(query.id, 1, '{}', T0 + 6);
      expect(await mine(false)).toEqual([]);
      expect(await repos.dispatches.decidedQueries()).not.toContain(query.id);
      await queries.finish(query.id, { status: 'failed', failure_reason: 'test' }, T0 + 7);
      expect(await repos.dispatches.decidedQueries()).toContain(query.id);
      await repos.dispatches.forget(query.id);
      expect(await repos.dispatches.list(query.id)).toEqual([]);
      expect(await repos.dispatches.decidedQueries()).not.toContain(query.id);
    });

    it('refuses a task for a query that does not exist', async () => {
      const repos = signedRepositories();
      await expect(repos.dispatches.store([task('no such query', 1, 'p-a')])).rejects.toMatchObject(foreignKeyViolation(target));
    });

    it('keeps a round\'s shared task parts once each, hands them back by query for a re-send, and forgets them with the query', async () => {
      const repos = signedRepositories();
      const { query, study } = await newQuery();
      const { query: other } = await newQuery();
      const part = (queryId: string, hash: string, body: string) => ({ query_id: queryId, hash, study_id: study.id, body, expires_at: T0 + 1000 });
      // A large part stays whole (a round 2's evidence proves every contributor's enrollment: about 1 MB at N = 1,000).
      const large = `{"evidence":"${'x'.repeat(1_200_000)}"}`;
      await repos.dispatches.storeParts([part(query.id, 'a'.repeat(64), large), part(query.id, 'b'.repeat(64), '{"view":1}')]);
      // Stored again (a transition replayed after a crash): the first text stays.
      await repos.dispatches.storeParts([part(query.id, 'b'.repeat(64), '{"view":2}'), part(other.id, 'b'.repeat(64), '{"view":3}')]);
      const parts = await repos.dispatches.partsOf([query.id, query.id]);
      expect(parts.map((p) => [p.hash[0], p.body.length, p.study_id, p.expires_at]).sort()).toEqual([
        ['a', large.length, study.id, T0 + 1000],
        ['b', 10, study.id, T0 + 1000],
      ]);
      expect(parts.find((p) => p.hash[0] === 'b')!.body).toBe('{"view":1}');
      expect(await repos.dispatches.partsOf([])).toEqual([]);
      await repos.dispatches.forget(query.id);
      expect(await repos.dispatches.partsOf([query.id])).toEqual([]);
      expect((await repos.dispatches.partsOf([other.id])).map((p) => p.body)).toEqual(['{"view":3}']);
      await expect(repos.dispatches.storeParts([part('no such query', 'c'.repeat(64), '{}')])).rejects.toMatchObject(foreignKeyViolation(target));
    });
  });

  describe('transitions in one transaction (Repositories.transaction)', () => {
    it('commits a round close, its ledger entry and the next round together', async () => {
      const repos = signedRepositories();
      const { query } = await newQuery();
      await rounds.open({ query_id: query.id, round: 1, status: 'open', opened_at: T0, deadline: T0 + 1000, expected: 1 });
      const idx = await repos.transaction(async (tx) => {
        expect(await tx.rounds.close(query.id, 1, '{}', T0 + 1)).toBe(true);
        const appended = await tx.events.append('round.closed', { queryId: query.id }, `tx-commit-${query.id}`, T0 + 1);
        await tx.rounds.open({ query_id: query.id, round: 2, status: 'open', opened_at: T0 + 1, deadline: T0 + 2000, expected: 1 });
        return appended;
      });
      expect((await rounds.listByQuery(query.id)).map((r) => [r.round, r.status])).toEqual([
        [1, 'closed'],
        [2, 'open'],
      ]);
      expect((await events.findByDedupKey(`tx-commit-${query.id}`))?.idx).toBe(idx);
      expect((await repos.events.latestCheckpoint())?.size).toBe(idx + 1);
    });

    it('rolls all of it back when the process fails half-way: no round closed, no ledger index used, no checkpoint', async () => {
      const repos = signedRepositories();
      const { query } = await newQuery();
      await rounds.open({ query_id: query.id, round: 1, status: 'open', opened_at: T0, deadline: T0 + 1000, expected: 1 });
      const before = await events.count();
      await expect(
        repos.transaction(async (tx) => {
          await tx.rounds.close(query.id, 1, '{}', T0 + 1);
          await tx.events.append('round.closed', { queryId: query.id }, `tx-rollback-${query.id}`, T0 + 1);
          throw new Error('crash between the ledger entry and the next round');
        }),
      ).rejects.toThrow('crash between the ledger entry and the next round');
      expect((await rounds.get(query.id, 1))?.status).toBe('open');
      expect(await events.findByDedupKey(`tx-rollback-${query.id}`)).toBeUndefined();
      expect(await events.count()).toBe(before);
      // The next append takes the index the rolled-back one would have had: no hole in the ledger.
      expect(await repos.events.append('test.after-rollback', { n: 1 }, `after-${query.id}`, T0 + 2)).toBe(before);
    });
  });

  describe('participant activity (migration 0008)', () => {
    it("moves a participant's last-seen time only forward", async () => {
      const study = await newStudy();
      const a = await participants.create(participantRow(study.id, 'a'));
      expect(a.last_seen_at).toBeNull();
      await participants.seen(a.id, T0 + 5);
      await participants.seen(a.id, T0 + 3);
      expect((await participants.get(a.id))?.last_seen_at).toBe(T0 + 5);
      await participants.seen(a.id, T0 + 9);
      expect((await participants.get(a.id))?.last_seen_at).toBe(T0 + 9);
    });

    it('records who answered or refused each round once (the first outcome stays), for queries that exist only', async () => {
      const outcomes = new TaskOutcomeRepository(database.db);
      const { study, query } = await newQuery();
      const [a, b] = [await participants.create(participantRow(study.id, 'a')), await participants.create(participantRow(study.id, 'b'))];
      await outcomes.record({ query_id: query.id, round: 1, participant_id: b.id, outcome: 'refused', at: T0 + 1 });
      await outcomes.record({ query_id: query.id, round: 1, participant_id: a.id, outcome: 'answered', at: T0 + 2 });
      await outcomes.record({ query_id: query.id, round: 1, participant_id: a.id, outcome: 'refused', at: T0 + 3 });
      await outcomes.record({ query_id: query.id, round: 2, participant_id: a.id, outcome: 'answered', at: T0 + 4 });
      expect((await outcomes.list(query.id, 1)).map((o) => [o.participant_id, o.outcome, o.at])).toEqual(
        [
          [a.id, 'answered', T0 + 2],
          [b.id, 'refused', T0 + 1],
        ].sort((x, y) => (x[0]! < y[0]! ? -1 : 1)),
      );
      expect(await outcomes.list(query.id, 3)).toEqual([]);
      const outcome = 'maybe' as 'answered';
      await expect(outcomes.record({ query_id: query.id, round: 3, participant_id: a.id, outcome, at: T0 })).rejects.toBeDefined();
      await expect(outcomes.record({ query_id: 'no such query', round: 1, participant_id: a.id, outcome: 'answered', at: T0 })).rejects.toMatchObject(foreignKeyViolation(target));
    });

    it('finds a revoked key by its hash (to say it was revoked) and lists every key oldest first', async () => {
      const tokenHash = key();
      const created = await apiKeys.create({ id: randomUUID(), token_hash: tokenHash, role: 'auditor', label: 'gone', created_at: T0 + 7 });
      await apiKeys.revoke(created.id, T0 + 8);
      expect(await apiKeys.findActiveByHash(tokenHash)).toBeUndefined();
      expect(await apiKeys.findByHash(tokenHash)).toMatchObject({ id: created.id, revoked_at: T0 + 8 });
      const listed = await apiKeys.list();
      expect(listed.find((k) => k.id === created.id)).toMatchObject({ revoked_at: T0 + 8 });
      expect(listed.map((k) => k.created_at)).toEqual([...listed.map((k) => k.created_at)].sort((x, y) => x - y));
    });

    it("lists queries newest first, by study, by the key that submitted them, and at most the limit", async () => {
      const study = await newStudy();
      const other = await newStudy();
      const made = [];
      for (const [i, s, by] of [[1, study, 'key-a'], [2, study, 'key-b'], [3, other, 'key-a'], [4, study, 'key-a']] as const) {
        made.push(await queries.create({ id: `q-list-${randomUUID()}`, study_id: s.id, protocol: 'shamir', spec_json: '{"select":[]}', created_by: by, created_at: T0 + 100 + i, current_round: 1, plan_json: null }));
      }
      const ids = (qs: { id: string }[]) => qs.map((q) => q.id);
      expect(ids(await queries.list({ studyId: study.id, limit: 10 }))).toEqual([made[3]!.id, made[1]!.id, made[0]!.id]);
      expect(ids(await queries.list({ studyId: study.id, createdBy: 'key-a', limit: 10 }))).toEqual([made[3]!.id, made[0]!.id]);
      expect(ids(await queries.list({ studyId: study.id, limit: 1 }))).toEqual([made[3]!.id]);
      expect(ids(await queries.list({ createdBy: 'key-a', limit: 100 }))).toEqual(expect.arrayContaining([made[2]!.id, made[3]!.id, made[0]!.id]));
    });
  });

  describe('queries', () => {
    it('creates a running query, records its plan and moves its round only forward', async () => {
      const { study, query } = await newQuery();
      expect(query).toMatchObject({ status: 'running', current_round: 1, finished_at: null, result_json: null, failure_reason: null, contributors: null });
      expect(await queries.setPlan(query.id, '{"committee":["a"]}')).toBe(true);
      expect(await queries.setRound(query.id, 2)).toBe(true);
      expect(await queries.setRound(query.id, 2)).toBe(false);
      expect(await queries.setRound(query.id, 1)).toBe(false);
      expect(await queries.get(query.id)).toMatchObject({ plan_json: '{"committee":["a"]}', current_round: 2 });
      expect(await queries.get('no such query')).toBeUndefined();
      await expect(queries.create({ ...query, status: 'running', finished_at: null, failure_reason: null, result_json: null, contributors: null })).rejects.toThrow(ConflictError);
      expect((await queries.listByStudy(study.id)).map((q) => q.id)).toEqual([query.id]);
    });

    it('finishes once: of concurrent finish calls exactly one wins and its outcome is stored', async () => {
      const { query } = await newQuery();
      const calls = Array.from({ length: 10 }, (_, i) =>
        i % 2 === 0
          ? queries.finish(query.id, { status: 'succeeded', result_json: `{"call":${i}}`, contributors: i }, T0 + i)
          : queries.finish(query.id, { status: 'failed', failure_reason: `call ${i}` }, T0 + i),
      );
      const won = await Promise.all(calls);
      expect(won.filter(Boolean)).toHaveLength(1);
      const i = won.indexOf(true);
      const row = await queries.get(query.id);
      expect(row).toMatchObject(
        i % 2 === 0
          ? { status: 'succeeded', result_json: `{"call":${i}}`, failure_reason: null, contributors: i, finished_at: T0 + i }
          : { status: 'failed', result_json: null, failure_reason: `call ${i}`, contributors: null, finished_at: T0 + i },
      );
      // A redelivered job finds the query finished and changes nothing.
      expect(await queries.finish(query.id, { status: 'failed', failure_reason: 'late' }, T0 + 99)).toBe(false);
      expect(await queries.setPlan(query.id, '{}')).toBe(false);
      expect(await queries.setRound(query.id, 5)).toBe(false);
      expect(await queries.get(query.id)).toEqual(row);
    });

    it('does not finish an unknown query', async () => {
      expect(await queries.finish('no such query', { status: 'failed', failure_reason: 'x' }, T0)).toBe(false);
    });
  });

  describe('rounds', () => {
    it('opens a round once; a repeated open keeps the first', async () => {
      const { query } = await newQuery();
      expect(await rounds.open({ query_id: query.id, round: 1, status: 'open', opened_at: T0, deadline: T0 + 120_000, expected: 5 })).toBe(true);
      expect(await rounds.open({ query_id: query.id, round: 1, opened_at: T0 + 9, deadline: T0 + 999, expected: 7 })).toBe(false);
      expect(await rounds.get(query.id, 1)).toEqual({
        query_id: query.id,
        round: 1,
        status: 'open',
        opened_at: T0,
        deadline: T0 + 120_000,
        expected: 5,
        closed_at: null,
        closed_json: null,
      });
      expect(await rounds.get(query.id, 2)).toBeUndefined();
    });

    it('closes once: of concurrent close calls exactly one wins, and a closed round cannot fail', async () => {
      const { query } = await newQuery();
      await rounds.open({ query_id: query.id, round: 1, opened_at: T0, deadline: T0 + 1, expected: 3 });
      const won = await Promise.all(Array.from({ length: 6 }, (_, i) => rounds.close(query.id, 1, `{"call":${i}}`, T0 + i)));
      expect(won.filter(Boolean)).toHaveLength(1);
      const i = won.indexOf(true);
      expect(await rounds.get(query.id, 1)).toMatchObject({ status: 'closed', closed_json: `{"call":${i}}`, closed_at: T0 + i });
      expect(await rounds.fail(query.id, 1, T0 + 50)).toBe(false);
      expect(await rounds.get(query.id, 1)).toMatchObject({ status: 'closed', closed_at: T0 + i });
    });

    it('fails an open round once, and a failed round cannot close', async () => {
      const { query } = await newQuery();
      await rounds.open({ query_id: query.id, round: 1, opened_at: T0, deadline: T0 + 1, expected: 3 });
      await rounds.open({ query_id: query.id, round: 2, opened_at: T0, deadline: T0 + 1, expected: 3 });
      expect(await rounds.fail(query.id, 2, T0 + 7)).toBe(true);
      expect(await rounds.fail(query.id, 2, T0 + 8)).toBe(false);
      expect(await rounds.close(query.id, 2, '{}', T0 + 9)).toBe(false);
      expect(await rounds.get(query.id, 2)).toMatchObject({ status: 'failed', closed_at: T0 + 7, closed_json: null });
      expect((await rounds.listByQuery(query.id)).map((r) => [r.round, r.status])).toEqual([
        [1, 'open'],
        [2, 'failed'],
      ]);
      const open = await rounds.listOpen();
      expect(open.filter((r) => r.query_id === query.id).map((r) => r.round)).toEqual([1]);
    });

    it('enforces the foreign key to queries', async () => {
      await expect(rounds.open({ query_id: 'no such query', round: 1, opened_at: T0, deadline: T0, expected: 1 })).rejects.toMatchObject(foreignKeyViolation(target));
    });
  });

  describe('contributions', () => {
    it('records each participant once per round; the first bundle hash stays', async () => {
      const { study, query } = await newQuery();
      const a = await participants.create(participantRow(study.id, 'a'));
      const b = await participants.create(participantRow(study.id, 'b'));
      await rounds.open({ query_id: query.id, round: 1, opened_at: T0, deadline: T0 + 1, expected: 2 });
      await rounds.open({ query_id: query.id, round: 2, opened_at: T0, deadline: T0 + 1, expected: 2 });
      expect(await contributions.record({ query_id: query.id, round: 1, participant_id: b.id, bundle_hash: 'h-b', received_at: T0 + 1 })).toBe(true);
      expect(await contributions.record({ query_id: query.id, round: 1, participant_id: a.id, bundle_hash: 'h-a', received_at: T0 + 2 })).toBe(true);
      expect(await contributions.record({ query_id: query.id, round: 1, participant_id: a.id, bundle_hash: 'h-other', received_at: T0 + 3 })).toBe(false);
      expect(await contributions.record({ query_id: query.id, round: 2, participant_id: a.id, bundle_hash: 'h-a2', received_at: T0 + 4 })).toBe(true);
      const listed = await contributions.list(query.id, 1);
      expect(listed).toEqual(
        [
          { query_id: query.id, round: 1, participant_id: a.id, bundle_hash: 'h-a', received_at: T0 + 2 },
          { query_id: query.id, round: 1, participant_id: b.id, bundle_hash: 'h-b', received_at: T0 + 1 },
        ].sort((x, y) => (x.participant_id < y.participant_id ? -1 : 1)),
      );
      expect(await contributions.list(query.id, 3)).toEqual([]);
    });

    it('refuses a contribution to a round that was never opened', async () => {
      const { study, query } = await newQuery();
      const a = await participants.create(participantRow(study.id, 'a'));
      await expect(contributions.record({ query_id: query.id, round: 1, participant_id: a.id, bundle_hash: 'h', received_at: T0 })).rejects.toMatchObject(foreignKeyViolation(target));
    });
  });

  describe('privacy budget', () => {
    it('spends up to the budget exactly, then refuses and records nothing', async () => {
      const budget = new PrivacyBudgetRepository(database.db);
      const study = await newStudy();
      const total = { epsilon: 0.3, delta: 0 };
      for (const q of ['q1', 'q2', 'q3']) await budget.spend(study.id, `${study.id}-${q}`, { epsilon: 0.1, delta: 0 }, total, T0);
      await expect(budget.spend(study.id, `${study.id}-q4`, { epsilon: 0.1, delta: 0 }, total, T0)).rejects.toThrow(PrivacyError);
      expect(await budget.spent(study.id)).toHaveLength(3);
    });

    it('lets exactly one of two concurrent queries spend what only one of them may', async () => {
      const budget = new PrivacyBudgetRepository(database.db);
      const study = await newStudy();
      const total = { epsilon: 1, delta: 0 };
      const outcomes = await Promise.allSettled(
        Array.from({ length: 6 }, (_, i) => budget.spend(study.id, `${study.id}-c${i}`, { epsilon: 0.6, delta: 0 }, total, T0)),
      );
      expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(1);
      expect(outcomes.filter((o) => o.status === 'rejected').every((o) => o.reason instanceof PrivacyError)).toBe(true);
      expect(await budget.spent(study.id)).toEqual([{ epsilon: 0.6, delta: 0 }]);
    });
  });

  describe('event log', () => {
    /** Asserts that the whole log is indexed 0, 1, ..., count - 1. */
    const expectContiguous = async () => {
      const count = await events.count();
      const all = await events.list(0, count + 10);
      expect(all.map((e) => e.idx)).toEqual(Array.from({ length: count }, (_, i) => i));
    };

    it('stores the body as canonical JSON and appends once per dedup key', async () => {
      const dedupKey = entryKey(ENTRY.studyCreated, randomUUID());
      const idx = await events.append('study.created', { name: 'x', b: [2, 1], a: { z: true, y: null } }, dedupKey, T0);
      const count = await events.count();
      expect(idx).toBe(count - 1);
      expect(await events.append('study.created', { name: 'changed on redelivery' }, dedupKey, T0 + 1)).toBe(idx);
      expect(await events.count()).toBe(count);
      expect(await events.list(idx, 1)).toEqual([{ idx, type: 'study.created', body: '{"a":{"y":null,"z":true},"b":[2,1],"name":"x"}', dedup_key: dedupKey, created_at: T0, study_id: null }]);
      const next = await events.append('study.created', {}, `other:${randomUUID()}`, T0);
      expect(next).toBe(idx + 1);
      await expectContiguous();
    });

    it('keeps indices contiguous and unique under 50 concurrent appends, repeated keys included', async () => {
      const before = await events.count();
      const keys = Array.from({ length: 50 }, () => `concurrent:${randomUUID()}`);
      // Every key appended twice, interleaved: 100 calls, 50 events.
      const calls = [...keys, ...keys.slice().reverse()].map((k, i) => events.append('test.concurrent', { i }, k, T0 + i));
      const indices = await Promise.all(calls);
      const first = indices.slice(0, 50);
      const second = indices.slice(50).reverse();
      expect(second).toEqual(first);
      expect([...first].sort((a, b) => a - b)).toEqual(Array.from({ length: 50 }, (_, i) => before + i));
      expect(await events.count()).toBe(before + 50);
      await expectContiguous();
    });

    it('leaves no hole when an append is rolled back (the index is not a sequence)', async () => {
      const before = await events.count();
      await expect(
        database.db.transaction().execute(async (trx) => {
          expect(await new EventLog(trx).append('test.rolled-back', {}, `rollback:${randomUUID()}`, T0)).toBe(before);
          throw new Error('abort');
        }),
      ).rejects.toThrow('abort');
      expect(await events.append('test.after-rollback', {}, `after:${randomUUID()}`, T0)).toBe(before);
      await expectContiguous();
    });

    it('refuses a body canonical JSON cannot encode, and stores nothing', async () => {
      const before = await events.count();
      await expect(events.append('test.bad', { amount: 1.5 }, `bad:${randomUUID()}`, T0)).rejects.toThrow(TypeError);
      await expect(events.append('test.bad', { at: new Date(T0) }, `bad:${randomUUID()}`, T0)).rejects.toThrow(TypeError);
      await expect(events.append('', {}, `bad:${randomUUID()}`, T0)).rejects.toThrow(TypeError);
      await expect(events.append('test.bad', {}, '', T0)).rejects.toThrow(TypeError);
      expect(await events.count()).toBe(before);
    });

    it("serves one study's entries only, in order, after an index and below a tree size", async () => {
      const [a, b] = [await newStudy(), await newStudy()];
      const mine: number[] = [];
      for (let i = 0; i < 3; i++) {
        mine.push(await events.append('test.study', { i }, `a:${randomUUID()}`, T0, a.id));
        await events.append('test.study', { i }, `b:${randomUUID()}`, T0, b.id);
        await events.append('test.global', { i }, `g:${randomUUID()}`, T0);
      }
      const size = await events.count();
      expect((await events.studyEntries(a.id, -1, size, 100)).map((e) => e.idx)).toEqual(mine);
      expect((await events.studyEntries(a.id, mine[0]!, size, 100)).map((e) => e.idx)).toEqual(mine.slice(1));
      expect((await events.studyEntries(a.id, -1, mine[2]!, 100)).map((e) => e.idx)).toEqual(mine.slice(0, 2));
      expect((await events.studyEntries(a.id, -1, size, 1)).map((e) => e.idx)).toEqual(mine.slice(0, 1));
      expect((await events.studyEntries(a.id, -1, size, 100)).every((e) => e.study_id === a.id)).toBe(true);
    });

    it("builds a task's ledger evidence that a participant verifies: entries in the newest signed checkpoint, the seed root consistent with it", async () => {
      const key = generateKeyPair('ed25519');
      const origin = ledgerOrigin(key.publicKey);
      const signed = new EventLog(database.db, (size, root) => signCheckpoint(key, origin, { origin, size, root }));
      const first = await signed.append('test.evidence', { n: 1 }, `e:${randomUUID()}`, T0);
      const second = await signed.append('test.evidence', { n: 2 }, `e:${randomUUID()}`, T0);
      await signed.append('test.evidence', { n: 3 }, `e:${randomUUID()}`, T0);
      const found = await signed.indicesOf([`nothing:${randomUUID()}`]);
      expect(found.size).toBe(0);
      const evidence = await signed.evidence([second, first], first + 1);
      const opened = openEvidence(evidence, key.publicKey);
      expect(opened.checkpoint.size).toBe(await signed.count());
      expect(opened.entries.map((e) => [e.index, e.body])).toEqual([
        [first, { n: 1 }],
        [second, { n: 2 }],
      ]);
      expect(Buffer.from(opened.seedRoot!.root)).toEqual(Buffer.from(await signed.rootAt(first + 1)));
      expect(() => openEvidence(evidence, generateKeyPair('ed25519').publicKey)).toThrow(/does not verify with the coordinator key pinned at enrollment/);
      await expect(signed.rootAt(10_000_000)).rejects.toThrow('no checkpoint at ledger size 10000000');
    });

    it('pages through the log in index order', async () => {
      for (let i = 0; i < 5; i++) await events.append('test.page', { i }, `page:${randomUUID()}`, T0);
      const count = await events.count();
      const pages = [];
      for (let start = 0; start < count; start += 3) pages.push(...(await events.list(start, 3)));
      expect(pages.map((e) => e.idx)).toEqual(Array.from({ length: count }, (_, i) => i));
      expect(await events.list(count, 10)).toEqual([]);
      await expect(events.list(-1, 10)).rejects.toThrow(RangeError);
      await expect(events.list(0, 0)).rejects.toThrow(RangeError);
      await expect(events.list(0.5, 10)).rejects.toThrow(RangeError);
    });
  });
});

describe('SQLite specifics', () => {
  let dir: string;
  let database: Database | undefined;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'confide-db-sqlite-'));
  });
  afterAll(async () => {
    await database?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('creates the data directory 0700 and opens the file with WAL, foreign keys and a busy timeout', async () => {
    const dataDir = join(dir, 'nested', 'data');
    database = await openDatabase({ dataDir });
    expect(statSync(dataDir).mode & 0o777).toBe(0o700);
    expect(statSync(join(dataDir, SQLITE_FILE)).isFile()).toBe(true);
    const pragma = async (name: string) => (await sql.raw<Record<string, unknown>>(`pragma ${name}`).execute(database!.db)).rows[0];
    expect(await pragma('journal_mode')).toEqual({ journal_mode: 'wal' });
    expect(await pragma('foreign_keys')).toEqual({ foreign_keys: 1 });
    expect(await pragma('busy_timeout')).toEqual({ timeout: 5000 });
    await database.close();
    await database.close(); // closing twice is harmless
  });

  it('assigns the events of a database made before 0004 to their studies: by studyId, by study name, by query', async () => {
    // A database migrated up to 0003 only, given events as the older coordinator wrote them.
    const file = join(dir, 'pre-0004.sqlite');
    const raw = new Kysely<never>({ dialect: new SqliteDialect({ database: new BetterSqlite3(file) }) });
    const migrator = new Migrator({ db: raw, provider: migrationProvider('sqlite') });
    expect((await migrator.migrateTo('0003_privacy_budget')).error).toBeUndefined();
    await sql`insert into studies (id, name, schema_json, min_participants, created_at) values ('s-1', 'salaries', '{}', 3, 1)`.execute(raw);
    await sql`insert into queries (id, study_id, protocol, spec_json, status, created_by, created_at, current_round) values ('q-1', 's-1', 'shamir', '{}', 'running', 'k', 1, 1)`.execute(raw);
    const rows: [number, string, string][] = [
      [0, 'study.created', '{"studyId":"s-1"}'],
      [1, 'privacy.spent', '{"queryId":"q-9","study":"salaries"}'],
      [2, 'round.closed', '{"queryId":"q-1","round":1}'],
      [3, 'apikey.created', '{"keyId":"k"}'],
    ];
    for (const [idx, type, body] of rows) await sql`insert into events (idx, type, body, dedup_key, created_at) values (${idx}, ${type}, ${body}, ${`k${idx}`}, 1)`.execute(raw);
    expect((await migrator.migrateToLatest()).error).toBeUndefined();
    const assigned = await sql<{ idx: number; study_id: string | null }>`select idx, study_id from events order by idx`.execute(raw);
    expect(assigned.rows).toEqual([
      { idx: 0, study_id: 's-1' },
      { idx: 1, study_id: 's-1' },
      { idx: 2, study_id: 's-1' },
      { idx: 3, study_id: null },
    ]);
    await raw.destroy();
  });

  it('prepares each SQL text once, keeps at most `size` statements, and streams with a statement of its own', async () => {
    const raw = new BetterSqlite3(':memory:');
    const prepared: string[] = [];
    const counting = { close: () => raw.close(), prepare: (text: string) => (prepared.push(text), raw.prepare(text)) };
    const db = new Kysely<{ t: { n: number } }>({ dialect: new SqliteDialect({ database: withStatementCache(counting, 2) }) });
    try {
      await db.schema.createTable('t').addColumn('n', 'integer').execute();
      for (const n of [2, 0, 1]) await db.insertInto('t').values({ n }).execute();
      const inserts = prepared.filter((t) => t.startsWith('insert'));
      expect(inserts).toHaveLength(1);
      const ordered = db.selectFrom('t').select('n').orderBy('n');
      expect(await ordered.execute()).toEqual([{ n: 0 }, { n: 1 }, { n: 2 }]);
      // The same text bound to other values reads other rows.
      expect(await db.selectFrom('t').select('n').where('n', '>', 0).orderBy('n').execute()).toEqual([{ n: 1 }, { n: 2 }]);
      expect(await db.selectFrom('t').select('n').where('n', '>', 1).orderBy('n').execute()).toEqual([{ n: 2 }]);
      const streamed: number[] = [];
      for await (const row of ordered.stream()) streamed.push(row.n);
      expect(streamed).toEqual([0, 1, 2]);
      // The cached statement of that text is not left busy by the stream.
      expect(await ordered.execute()).toEqual([{ n: 0 }, { n: 1 }, { n: 2 }]);
      // Two texts kept (the two selects just run): the insert's was dropped and is prepared again.
      const before = prepared.length;
      await db.insertInto('t').values({ n: 3 }).execute();
      expect(prepared.length).toBe(before + 1);
    } finally {
      await db.destroy();
    }
    expect(raw.open).toBe(false);
  });

  it('refuses a PostgreSQL schema option', async () => {
    await expect(openDatabase({ dataDir: join(dir, 'x'), schema: 'test_x' })).rejects.toThrow('only be set for PostgreSQL');
  });
});

describe('PostgreSQL specifics', () => {
  let opened: Awaited<ReturnType<typeof openTarget>>;
  const target = targets.find((t) => t.name === 'postgres')!;
  beforeAll(async () => {
    opened = await openTarget(target);
  });
  afterAll(async () => {
    await opened?.cleanup();
  });

  it('tells an outage (503, retry) from a refused statement (a bug or a conflict)', async () => {
    // A server that is not there: nothing listens on the port a socket was just bound to and released.
    const port = await freePort();
    const unreachable = new pg.Client({ connectionString: `postgres://postgres@127.0.0.1:${port}/test` });
    const refused = await unreachable.connect().then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(isDatabaseOutage(refused)).toBe(true);
    // A server that is there but refuses the statement is no outage.
    const conflict = await sql`select * from no_such_table`.execute(opened.database.db).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(conflict).toMatchObject({ code: '42P01' });
    expect(isDatabaseOutage(conflict)).toBe(false);
    // A session the server ends (an administrator, or a restart) is one.
    const victim = new pg.Client({ connectionString: POSTGRES_URL });
    await victim.connect();
    victim.on('error', () => undefined);
    const { rows } = await victim.query<{ pid: number }>('select pg_backend_pid() as pid');
    await sql`select pg_terminate_backend(${rows[0]!.pid})`.execute(opened.database.db);
    const ended = await victim.query('select 1').then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(isDatabaseOutage(ended)).toBe(true);
    await victim.end().catch(() => undefined);
  });

  it('creates the tables in its own schema', async () => {
    const schema = opened.config.schema!;
    const { rows } = await sql<{ current: string }>`select current_schema() as current`.execute(opened.database.db);
    expect(rows).toEqual([{ current: schema }]);
    const tables = await sql<{ table_name: string }>`select table_name from information_schema.tables where table_schema = ${schema} order by table_name`.execute(
      opened.database.db,
    );
    expect(tables.rows.map((r) => r.table_name)).toEqual(
      ['api_keys', 'checkpoints', 'contributions', 'dispatches', 'event_append_lock', 'events', 'ledger_nodes', 'invitations', 'kysely_migration', 'kysely_migration_lock', 'partial_decryptions', 'participants', 'privacy_spend', 'queries', 'query_leases', 'rounds', 'studies', 'task_outcomes', 'task_parts'].sort(),
    );
  });

  it('refuses an int8 beyond 2^53 rather than rounding it', async () => {
    await expect(sql`select 9007199254740993::bigint as n`.execute(opened.database.db)).rejects.toThrow(RangeError);
    const { rows } = await sql<{ n: unknown }>`select 9007199254740991::bigint as n`.execute(opened.database.db);
    expect(rows).toEqual([{ n: 9007199254740991 }]);
  });

  it('parses int8 for its own pool only: the process-wide pg parser is untouched', () => {
    const parse = pgTypes.getTypeParser(pgTypes.builtins.INT8, 'text') as (value: string) => unknown;
    expect(parse('42')).toBe('42');
  });

  it('refuses a URL that is not postgres:// without repeating it, and a malformed schema', async () => {
    const attempt = openDatabase({ url: 'mysql://admin:hunter2-secret@db.example/confide', dataDir: tmpdir() });
    await expect(attempt).rejects.toThrow('postgres://');
    await expect(attempt).rejects.not.toThrow('hunter2');
    await expect(openDatabase({ url: POSTGRES_URL, dataDir: tmpdir(), schema: 'Robert"; drop table x; --' })).rejects.toThrow('schema name');
  });

  it('fails to open, and closes its pool, when the server is unreachable', async () => {
    await expect(openDatabase({ url: 'postgres://postgres@127.0.0.1:1/test', dataDir: tmpdir() })).rejects.toThrow('could not open and migrate the database');
  });
});
