import { createHash, randomBytes } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { canonicalJson, generateKeyPair, importPublicKeyBase64Url, type KeyPair } from '@confide/crypto';
import { entryBytes, leafHash, ledgerOrigin, signCheckpoint } from '@confide/ledger';
import {
  bundleHash,
  compileQuery,
  deliveriesFor,
  parseStudySchema,
  participantRound1,
  planHash,
  planShamir,
  type KeyDirectory,
  type QuerySpec,
  type Round1Bundle,
  type Round1Closed,
} from '@confide/protocol';
import { participantQueue, signTask, TASK, taskJobId, type ProvenEntry, type TaskOf } from '@confide/queue';
import { Cluster, type ParticipantProcess } from '../support/cluster';
import { singleJson } from '../support/cli';
import { SALARY_SELECT } from '../support/salary-query';
import { generateSalaryCsv, syntheticSalaryStudy } from '../support/synthetic';
import { coordinatorKey, directoryEntry, eventLog, freshQueryId, participantKeys, queryEvents, studyIdOf, TaskQueues } from '../support/task-queues';

// DESIGN.md "Trust model", output privacy: a query is refused below the study's minimum number of participants,
// by the coordinator before anything is dispatched, at round 1 when too few answer, and, should the coordinator
// not do its part, by every committee member itself at round 2. Both studies here require at least 3.

describe('minimum participants end to end (SQLite)', () => {
  let cluster: Cluster;
  let tasks: TaskQueues;
  let researcher: string;
  /** Two participants enrolled in "tiny" (minimum 3); never started. */
  let tiny: ParticipantProcess[] = [];
  /** Three enrolled in "salaries" (minimum 3): the first two run; the third is started only by a later test. */
  let three: ParticipantProcess[] = [];

  beforeAll(async () => {
    cluster = await Cluster.start({ database: 'sqlite', round1Seconds: 30, round2Seconds: 30 });
    tasks = new TaskQueues(cluster);
    await cluster.createStudy({ ...syntheticSalaryStudy(), name: 'tiny' });
    await cluster.createStudy(syntheticSalaryStudy());
    const enroll = async (study: string, name: string, seed: number): Promise<ParticipantProcess> => {
      const csv = join(cluster.dir, `${name}.csv`);
      writeFileSync(csv, generateSalaryCsv(seed, 40));
      return cluster.enroll(study, name, csv);
    };
    [tiny, three] = await Promise.all([
      Promise.all([enroll('tiny', 'tiny-1', 11), enroll('tiny', 'tiny-2', 12)]),
      Promise.all([enroll('salaries', 'site-1', 21), enroll('salaries', 'site-2', 22), enroll('salaries', 'site-3', 23)]),
    ]);
    await Promise.all(three.slice(0, 2).map((p) => cluster.run(p)));
    researcher = await cluster.apiKey('researcher');
  }, 120_000);

  afterAll(async () => {
    await tasks?.close();
    await cluster?.stop();
  }, 60_000);

  it('refuses a query with 2 of the required 3 enrolled: exit 1, the coordinator’s 400 message, nothing dispatched', async () => {
    const r = await cluster.cli(['query', '--study', 'tiny', '--protocol', 'shamir', ...SALARY_SELECT, '--wait', '--json'], researcher);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^confide: refused: 2 participants enrolled in tiny, the study requires at least 3$/m);
    expect(singleJson(r.stdout)).toEqual({ error: 'min_participants', message: expect.stringMatching(/^refused: 2 participants enrolled in tiny/) as string });

    // Nothing reached the participants' queues, and no query was recorded or planned.
    const redis = await cluster.redisDump();
    for (const p of tiny) expect(redis).not.toContain(`${cluster.prefix}:${participantQueue(p.participantId)}:`);
    expect(redis).not.toMatch(/-r[12]-p[0-9a-f]{24}/);
    expect(await cluster.databaseDump()).toMatch(/^queries \[\]$/m);
    expect((await eventLog(cluster)).filter((e) => e.type.startsWith('query.') || e.type === 'committee.drawn')).toEqual([]);
  }, 30_000);

  it('fails at round 1, naming the counts, when one of the 3 required participants is down', async () => {
    const r = await cluster.cli(['query', '--study', 'salaries', '--protocol', 'shamir', ...SALARY_SELECT, '--deadline', '3', '--wait', '--json'], researcher);
    expect(r.code).toBe(1);
    const out = singleJson(r.stdout) as { id: string; status: string; failureReason: string; results: unknown[] };
    expect(out.status).toBe('failed');
    expect(out.failureReason).toMatch(/^round 1: 2 of 3 participants answered, at least 3 needed/);
    expect(out.results).toEqual([]);
    const failed = (await queryEvents(cluster, out.id)).filter((e) => e.type === 'query.failed');
    expect(failed.map((e) => e.body)).toEqual([{ queryId: out.id, round: 1, reason: 'round 1: 2 of 3 participants answered, at least 3 needed', refusals: [] }]);
  }, 30_000);

  it('fails at round 1 as soon as the third participant refuses its task, with the counts and its refusal', async () => {
    // Its CSV now breaks the schema: the worker refuses the task (a permanent failure) instead of answering.
    const third = three[2]!;
    writeFileSync(join(cluster.dir, 'site-3.csv'), 'salary,yrs_since_phd,rank,sex\n50000,3,Lecturer,Female\n');
    await cluster.run(third);
    // A round-1 deadline of a minute: the round must close on the refusal, not on the deadline.
    const submitted = await cluster.cliJson(['query', '--study', 'salaries', '--protocol', 'shamir', ...SALARY_SELECT, '--deadline', '60'], researcher);
    const q = (await cluster.waitForQuery(String(submitted.id), researcher, 30_000)) as { status: string; failureReason: string };
    expect(q.status).toBe('failed');
    expect(q.failureReason).toBe(
      `round 1: 2 of 3 participants answered, at least 3 needed; refusals: ${third.participantId}: local data file failed validation (1 problem; see the participant's log)`,
    );
    const failed = (await queryEvents(cluster, String(submitted.id))).find((e) => e.type === 'query.failed')!;
    expect(failed.body.refusals).toEqual([{ participantId: third.participantId, reason: "local data file failed validation (1 problem; see the participant's log)" }]);
  }, 45_000);

  it('a committee member refuses round 2 by itself when the closed set is below the minimum (a coordinator that skips its check)', async () => {
    // Acting as a malicious coordinator: its real signing key, the participants' real registered keys, real
    // round-1 bundles signed by the real participants' keys, and a task added straight to a member's queue.
    const key = coordinatorKey(cluster);
    const [member, other, third] = three as [ParticipantProcess, ParticipantProcess, ParticipantProcess];
    const studyId = studyIdOf(member);
    const spec: QuerySpec = { select: [{ stat: 'count', field: 'salary' }] };
    const { vectorLength } = compileQuery(parseStudySchema(syntheticSalaryStudy()), spec);
    const directory: KeyDirectory = new Map(
      three.map((p) => {
        const e = directoryEntry(p);
        return [p.participantId, { encryption: importPublicKeyBase64Url('x25519', e.encryptionKey), signing: importPublicKeyBase64Url('ed25519', e.signingKey) }];
      }),
    );

    /**
     * A closing record as a forking coordinator makes it: a one-entry ledger of its own holding a `round.closed`
     * entry for `recorded`, with a checkpoint signed by `signer` (the real coordinator key unless given).
     */
    const forkedRecord = (queryId: string, recorded: Round1Closed['contributors'], signer: KeyPair = key): ProvenEntry => {
      const entry = entryBytes({ index: 0, type: 'round.closed', time: new Date().toISOString(), body: { queryId, round: 1, contributors: recorded.map((c) => ({ ...c })), missing: [], refusals: [] } });
      const origin = ledgerOrigin(key.publicKey);
      return { index: 0, entry: Buffer.from(entry).toString('base64'), checkpoint: signCheckpoint(signer, origin, { origin, size: 1, root: leafHash(entry) }), proof: [] };
    };

    /** A round-2 task for `member` over the round-1 bundles of `contributors`, signed with the coordinator's key. */
    const forgeRound2 = (queryId: string, contributors: readonly ParticipantProcess[], record?: (closed: Round1Closed) => ProvenEntry) => {
      const now = Date.now();
      const plan = planShamir({
        jobId: queryId,
        queryHash: createHash('sha256').update(canonicalJson(spec)).digest('hex'),
        vectorLength,
        participants: three.map((p) => p.participantId),
        minParticipants: 3,
        seed: randomBytes(16).toString('hex'),
        deadlines: { round1: now + 30_000, round2: now + 60_000 },
      });
      const bundles: Round1Bundle[] = contributors.map((p, i) =>
        participantRound1({ plan, self: p.participantId, signing: participantKeys(p).signing, directory, aggregate: new Array<bigint>(vectorLength).fill(BigInt(40 + i)) }),
      );
      const closed: Round1Closed = {
        jobId: queryId,
        planHash: planHash(plan),
        contributors: bundles.map((b) => ({ id: b.sender, bundleHash: bundleHash(b) })).sort((a, b) => (a.id < b.id ? -1 : 1)),
      };
      const task: TaskOf<typeof TASK.shamirRound2> = {
        kind: TASK.shamirRound2,
        queryId,
        studyId,
        participantId: member.participantId,
        issuedAt: now,
        deadline: plan.deadlines.round2,
        plan,
        closed,
        closingRecord: record ? record(closed) : forkedRecord(queryId, closed.contributors),
        deliveries: deliveriesFor(plan, member.participantId, bundles),
        directory: contributors.map(directoryEntry),
      };
      return signTask(key, task);
    };

    const below = freshQueryId();
    const belowJob = taskJobId(below, 2, member.participantId);
    await tasks.add(member.participantId, TASK.shamirRound2, belowJob, forgeRound2(below, [member, other]));
    const refused = await tasks.waitForFinished(member.participantId, belowJob);
    expect(refused.state).toBe('failed');
    expect(refused.failedReason).toBe('refusing round 2: 2 contributors, the study requires at least 3');
    expect(refused.returnvalue).toBeFalsy();
    expect(existsSync(join(member.home, 'state', `${below}.r2.json`))).toBe(false);

    // The same forgery over all three contributors is answered: the refusal above is the minimum, nothing else.
    const enough = freshQueryId();
    const enoughJob = taskJobId(enough, 2, member.participantId);
    await tasks.add(member.participantId, TASK.shamirRound2, enoughJob, forgeRound2(enough, [member, other, third]));
    const answered = await tasks.waitForFinished(member.participantId, enoughJob);
    expect(answered.state).toBe('completed');
    expect(answered.returnvalue).toMatchObject({ kind: TASK.shamirRound2, result: { jobId: enough, sender: member.participantId } });

    // The closed set must be the one the signed ledger records: a record of another set, or one signed by
    // another key, is refused before any share is summed.
    const refusals: [string, (closed: Round1Closed) => ProvenEntry, RegExp][] = [
      ['another set in the ledger', (closed) => forkedRecord(closed.jobId, closed.contributors.slice(1)), /records another contributor set/],
      ['a checkpoint signed by another key', (closed) => forkedRecord(closed.jobId, closed.contributors, generateKeyPair('ed25519')), /checkpoint does not verify/],
      ['an entry not in the checkpoint', (closed) => ({ ...forkedRecord(closed.jobId, closed.contributors), index: 1 }), /not in the signed ledger/],
      ['the closing of another query', (closed) => forkedRecord(freshQueryId(), closed.contributors), /not the round-1 closing/],
    ];
    for (const [what, record, reason] of refusals) {
      const queryId = freshQueryId();
      const jobId = taskJobId(queryId, 2, member.participantId);
      await tasks.add(member.participantId, TASK.shamirRound2, jobId, forgeRound2(queryId, [member, other, third], record));
      const job = await tasks.waitForFinished(member.participantId, jobId);
      expect([what, job.state, job.failedReason]).toEqual([what, 'failed', expect.stringMatching(reason) as string]);
      expect(existsSync(join(member.home, 'state', `${queryId}.r2.json`))).toBe(false);
    }
  }, 60_000);
});
