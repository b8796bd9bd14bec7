import { cpSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { EnvelopeError, generateKeyPair, importPublicKeyBase64Url, openEnvelope, publicKeyBase64Url } from '@confide/crypto';
import { signCheckpoint, verifyCheckpoint } from '@confide/ledger';
import {
  closedHash,
  committeeSeed,
  drawCommittee,
  ENTRY,
  nonceCommitment,
  parseStudySchema,
  participantRequestHeaders,
  participantRound1,
  planHash,
  queryHash,
  canonicalQuery,
  ROUND2_READER,
  compileQuery,
  type KeyDirectory,
  type QuerySpec,
  type Round1Bundle,
  type StudySchema,
} from '@confide/protocol';
import { newQueryId, TASK, taskJobId, type DirectoryEntry, type TaskOf } from '@confide/queue';
import { ParticipantHome } from '../../apps/participant/src/home';
import { loadSavedCheckpoint } from '../../apps/participant/src/ledger-view';
import { Cluster, type ParticipantProcess, until } from '../support/cluster';
import { singleJson } from '../support/cli';
import { HostileCoordinator, inventedBundle, inventParticipant, type ForgedQuery } from '../support/hostile';
import { generateSalaryCsv, syntheticSalaryStudy } from '../support/synthetic';
import { directoryEntry, participantKeys, studyIdOf, type FinishedJob } from '../support/task-queues';

// DESIGN.md "Trust model": the coordinator and Redis are actively malicious. They sign whatever they like with the
// coordinator key, forge, replay and reorder tasks, enroll fake participants and fork the ledger; researchers and up
// to t − 1 committee members may collude with them. Every test here plays that coordinator with what a real operator
// holds (test/support/hostile.ts: the coordinator's keys, its database, Redis as administrator) against honest
// participants' real worker processes, breaks one rule, and checks that the worker refuses, says why in its log and
// journal, and lets nothing it computed leave: no answer, no stored answer, no envelope.

describe('a hostile coordinator against honest participants (PostgreSQL)', () => {
  let cluster: Cluster;
  let hostile: HostileCoordinator;
  let study: { id: string; schema: StudySchema };
  let researcher: string;
  /** Four participants whose workers run; site-1 is the victim unless a test says otherwise. */
  const running: ParticipantProcess[] = [];
  /** Every participant of the study (12: the draw picks 10) and the outsider enrolled in another study. */
  const everyone: ParticipantProcess[] = [];
  let outsider: ParticipantProcess;
  let directory: DirectoryEntry[];

  const victim = (): ParticipantProcess => running[0]!;
  const ids = (ps: readonly ParticipantProcess[]): string[] => ps.map((p) => p.participantId);

  /**
   * What must be true after an honest worker refused a task: no answer left it (the job failed without a return
   * value, and no answer was stored to be sent later), and it said why, in its journal and in its log.
   */
  const expectRefused = async (p: ParticipantProcess, queryId: string, job: FinishedJob, reason: RegExp, round = 1): Promise<void> => {
    expect([job.state, job.failedReason]).toEqual(['failed', expect.stringMatching(reason) as string]);
    expect(job.returnvalue).toBeFalsy();
    expect(existsSync(join(p.home, 'state', `${queryId}.r${round}.json`))).toBe(false);
    const journal = readFileSync(join(p.home, 'state', 'journal.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { queryId: string; round: number; outcome: string; reason: string });
    expect(journal.filter((r) => r.queryId === queryId && r.round === round).map((r) => [r.outcome, r.reason])).toEqual([['refused', expect.stringMatching(reason) as string]]);
    // The worker's one line for the task goes through a pipe to the log file: on a busy machine it lands a moment
    // after the job is seen failed. Wait for it, then assert.
    const log = () => readFileSync(join(cluster.dir, `participant-${p.name}.log`), 'utf8');
    // Inside the JSON string, a character is anything but a quote or a backslash, or an escape (the query's \"Prof\" in the msg).
    const inString = String.raw`(?:[^"\\]|\\.)*`;
    const line = new RegExp(`"msg":"${inString}; refused: ${inString}${reason.source}`);
    await until(`${p.name}'s log to record the refusal`, 10_000, () => Promise.resolve(line.test(log()) ? true : undefined)).catch(() => undefined);
    expect(log()).toMatch(line);
  };

  beforeAll(async () => {
    cluster = await Cluster.start({ database: 'postgres' });
    await cluster.createStudy(syntheticSalaryStudy());
    await cluster.createStudy({ ...syntheticSalaryStudy(), name: 'elsewhere' });
    const enroll = async (studyName: string, name: string, seed: number): Promise<ParticipantProcess> => {
      const csv = join(cluster.dir, `${name}.csv`);
      writeFileSync(csv, generateSalaryCsv(seed, 30));
      return cluster.enroll(studyName, name, csv);
    };
    for (let i = 1; i <= 12; i++) everyone.push(await enroll('salaries', `site-${i}`, 300 + i));
    outsider = await enroll('elsewhere', 'outsider', 399);
    running.push(...everyone.slice(0, 4));
    await Promise.all(running.map((p) => cluster.run(p)));
    directory = [...everyone, outsider].map(directoryEntry);
    study = { id: studyIdOf(victim()), schema: parseStudySchema(syntheticSalaryStudy()) };
    hostile = await HostileCoordinator.open(cluster);
    researcher = await cluster.apiKey('researcher');
  }, 180_000);

  afterAll(async () => {
    await hostile?.close();
    await cluster?.stop();
  }, 60_000);

  /** A valid forged query whose committee holds the four running workers (so they can answer round 2). */
  const forgeWithRunningCommittee = (options: Parameters<HostileCoordinator['forgeQuery']>[1] = {}) => hostile.forgeQuery(study, { onCommittee: ids(running), ...options });

  it('answers a task that breaks no rule: the hostile helper builds valid tasks, so each refusal below is the rule it breaks', async () => {
    const q = await forgeWithRunningCommittee();
    const job = await hostile.send(await hostile.round1Task(q, victim().participantId, directory));
    expect(job.state).toBe('completed');
    expect(job.returnvalue).toMatchObject({ kind: TASK.shamirRound1, bundle: { jobId: q.queryId, sender: victim().participantId } });
  }, 60_000);

  describe('tasks by reference: the parts every participant of a round shares go to Redis once, under their hash', () => {
    it('answers a valid task sent by reference, as the coordinator sends them', async () => {
      const q = await forgeWithRunningCommittee();
      const job = await hostile.sendByReference(await hostile.round1Task(q, victim().participantId, directory));
      expect(job.state).toBe('completed');
      expect(job.returnvalue).toMatchObject({ kind: TASK.shamirRound1, bundle: { jobId: q.queryId, sender: victim().participantId } });
    }, 60_000);

    it('refuses a task whose shared part Redis swapped after the coordinator signed it (a committee of its choosing), and sends nothing', async () => {
      const q = await forgeWithRunningCommittee();
      // The attacker puts two participants of its own on the committee, with its own encryption keys for them:
      // shares sealed to those keys are shares it reads.
      const own = generateKeyPair('x25519');
      const colluders = ids(everyone).filter((id) => !q.plan.committee.includes(id)).slice(0, 2);
      const swap = (text: string): string => {
        const part = JSON.parse(text) as { plan: { committee: string[] }; directory: DirectoryEntry[] };
        const committee = [...part.plan.committee.slice(0, -2), ...colluders];
        part.plan.committee = committee;
        part.directory = [...part.directory.filter((d) => committee.includes(d.id)), ...colluders.map((id) => ({ ...directory.find((d) => d.id === id)!, encryptionKey: publicKeyBase64Url(own.publicKey) }))];
        return JSON.stringify(part);
      };
      const job = await hostile.sendByReference(await hostile.round1Task(q, victim().participantId, directory), swap);
      expect([job.state, job.failedReason]).toEqual(['failed', expect.stringMatching(/^task rejected: the task's part [0-9a-f]{16}… does not hash to its reference$/) as string]);
      expect(job.returnvalue).toBeFalsy();
      expect(existsSync(join(victim().home, 'state', `${q.queryId}.r1.json`))).toBe(false);
      await until(`${victim().name}'s log to record the rejection`, 10_000, () =>
        Promise.resolve(/does not hash to its reference/.test(readFileSync(join(cluster.dir, `participant-${victim().name}.log`), 'utf8')) ? true : undefined),
      );
    }, 60_000);

    it('fails a task whose part is not in its study\'s keys (put under another study\'s), after its retries, and sends nothing', async () => {
      const q = await forgeWithRunningCommittee();
      const task = await hostile.round1Task(q, victim().participantId, directory);
      // The worker's Redis user may read its own study's parts only: the part is there, but not where it may look.
      const job = await hostile.sendByReference(task, (text) => text, studyIdOf(outsider));
      expect([job.state, job.failedReason]).toEqual(['failed', expect.stringMatching(/the task's part [0-9a-f]{16}… is not in Redis/) as string]);
      expect(job.returnvalue).toBeFalsy();
      expect(existsSync(join(victim().home, 'state', `${q.queryId}.r1.json`))).toBe(false);
    }, 60_000);
  });

  describe('attack 1: a researcher and one participant with a threshold of 1', () => {
    it('the API refuses a threshold below a majority of the committee, naming threshold, before anything is recorded', async () => {
      const before = (await cluster.get<{ total: number }>('/v1/events')).total;
      const r = await cluster.cli(['query', '--study', 'salaries', '--stat', 'sum', '--field', 'salary', '--threshold', '1', '--json'], researcher);
      expect(r.code).toBe(1);
      expect(singleJson(r.stdout)).toEqual({ error: 'invalid_query', message: 'threshold: threshold 1 is below the floor: a majority of the committee of 10 (⌊k/2⌋ + 1) is 6' });
      expect((await cluster.get<{ total: number }>('/v1/events')).total).toBe(before);
    }, 30_000);

    it('every worker refuses a coordinator-signed plan with threshold 1, even one the ledger records', async () => {
      const q = await forgeWithRunningCommittee({ plan: (h) => ({ ...h, threshold: 1 }) });
      for (const p of running) {
        const job = await hostile.send(await hostile.round1Task(q, p.participantId, directory));
        await expectRefused(p, q.queryId, job, /threshold 1 is below the floor: a majority of the committee of 10 \(⌊k\/2⌋ \+ 1\) is 6/);
      }
    }, 60_000);
  });

  describe('attack 2: a coordinator that swaps the committee’s keys', () => {
    it('refuses a directory whose encryption keys are not the ones logged at enrollment', async () => {
      const q = await forgeWithRunningCommittee();
      const swapped = directory.map((d) => ({ ...d, encryptionKey: publicKeyBase64Url(generateKeyPair('x25519').publicKey) }));
      const job = await hostile.send(await hostile.round1Task(q, victim().participantId, swapped));
      await expectRefused(victim(), q.queryId, job, /committee member p[0-9a-f]{24}'s encryption key \([0-9a-f]{64}\) is not the key logged at its enrollment/);
    }, 60_000);

    it('refuses a task for a query the ledger does not record, and receipts stay clean', async () => {
      const q = await forgeWithRunningCommittee();
      const unlogged = newQueryId();
      const job = await hostile.send(await hostile.round1Task(q, victim().participantId, directory, (t) => ({ ...t, queryId: unlogged, plan: { ...t.plan, jobId: unlogged } })));
      await expectRefused(victim(), unlogged, job, new RegExp(`the signed ledger has no query.submitted entry for query ${unlogged}`));
      const receipts = await cluster.cli(['participant', 'receipts', '--home', victim().home, '--verify', '--json'], null);
      expect(receipts.code).toBe(0);
    }, 60_000);
  });

  describe('attack 3: a coordinator that narrows one participant’s query', () => {
    it('refuses a query with an extra where that the ledger does not record, and a query that selects nothing', async () => {
      const q = await forgeWithRunningCommittee();
      // A plan consistent with the narrowed query, so only the ledger can tell: its query.submitted has the honest hash.
      const narrow = (where: { field: string; op: string; value: unknown }[]) => (t: TaskOf<typeof TASK.shamirRound1>) => {
        const query = { ...t.query, where };
        return { ...t, query, plan: { ...t.plan, queryHash: queryHash(query) } };
      };
      const isolate = await hostile.send(await hostile.round1Task(q, victim().participantId, directory, narrow([{ field: 'yrs_since_phd', op: '=', value: 17 }, { field: 'rank', op: '=', value: 'Prof' }])));
      await expectRefused(victim(), q.queryId, isolate, new RegExp(`the task's query is not the query the ledger records for ${q.queryId}`));
      const other = running[1]!;
      const nothing = await hostile.send(await hostile.round1Task(q, other.participantId, directory, narrow([{ field: 'salary', op: '<', value: 0 }])));
      await expectRefused(other, q.queryId, nothing, /the task's query is not the query the ledger records/);
    }, 60_000);
  });

  it('refuses a committee outside the study: a member enrolled in another study', async () => {
    const q = await hostile.forgeQuery(study, { participants: [...ids(everyone), outsider.participantId].sort(), onCommittee: [victim().participantId, outsider.participantId] });
    const job = await hostile.send(await hostile.round1Task(q, victim().participantId, directory));
    await expectRefused(victim(), q.queryId, job, new RegExp(`committee member ${outsider.participantId} is enrolled in another study`));
  }, 60_000);

  it('refuses a committee that is not the draw from the seed', async () => {
    const q = await forgeWithRunningCommittee({
      plan: (h) => {
        // Ten members again, but the two the draw left out are in and two drawn ones are out.
        const left = h.participants.filter((p) => !h.committee.includes(p));
        const keep = h.committee.filter((m) => ids(running).includes(m));
        const rest = h.committee.filter((m) => !keep.includes(m)).slice(left.length);
        return { ...h, committee: [...keep, ...left, ...rest] };
      },
    });
    const job = await hostile.send(await hostile.round1Task(q, victim().participantId, directory));
    await expectRefused(victim(), q.queryId, job, /the committee is not the draw from the seed/);
  }, 60_000);

  it('refuses a seed the coordinator chose instead of drawing it from the ledger root and the researcher’s nonce', async () => {
    const chosen = 'ff'.repeat(32);
    const q = await forgeWithRunningCommittee({ plan: (h) => ({ ...h, seed: chosen, committee: drawCommittee(h.participants, h.committee.length, chosen) }) });
    const job = await hostile.send(await hostile.round1Task(q, victim().participantId, directory));
    await expectRefused(victim(), q.queryId, job, /the committee seed is not derived from the ledger's root and the researcher's nonce/);
  }, 60_000);

  it('refuses a replayed task of another query, relabelled or not', async () => {
    const q = await forgeWithRunningCommittee();
    const original = await hostile.round1Task(q, victim().participantId, directory);
    expect((await hostile.send(original)).state).toBe('completed');
    const other = newQueryId();
    const relabelled = await hostile.send({ ...original, queryId: other, plan: { ...original.plan, jobId: other } });
    await expectRefused(victim(), other, relabelled, new RegExp(`the signed ledger has no query.submitted entry for query ${other}`));
    const asIs = await hostile.send(original, taskJobId(newQueryId(), 1, victim().participantId));
    expect([asIs.state, asIs.failedReason]).toEqual(['failed', 'task rejected: job id does not match the signed task']);
  }, 60_000);

  it('refuses a query submitted again under the id of one that ended: a second release of the same query', async () => {
    // A worker keeps only the running queries' entries in memory (StudyIndex); once a query ends, its entries are
    // read back from the participant's saved view. A coordinator that re-submits an ended query under its id, to
    // have it computed (and released) twice, is refused all the same, naming both submissions.
    const ended = await hostile.forgeQuery(study);
    await hostile.append(ENTRY.queryFailed, { queryId: ended.queryId, round: 1, reason: 'round 1: the deadline passed', refusals: [] }, study.id);
    const again = await hostile.forgeQuery(study, { queryId: ended.queryId });
    const job = await hostile.send(await hostile.round1Task(again, victim().participantId, directory));
    await expectRefused(victim(), ended.queryId, job, new RegExp(`the ledger holds 2 query.submitted entries for query ${ended.queryId} \\(entries ${ended.submittedIndex}, ${again.submittedIndex}\\)`));
  }, 60_000);

  it('refuses a checkpoint that is not consistent with the one the participant saved: a forked ledger', async () => {
    const saved = loadSavedCheckpoint(join(victim().home, 'ledger'))!.saved;
    const prefix = saved.size - 3;
    const queryId = newQueryId();
    const nonce = 'ab'.repeat(32);
    const spec = { select: [{ stat: 'sum', field: 'salary' }], privacy: { minParticipants: 3, minGroupSize: 5, dp: null } } as QuerySpec & { privacy: { minParticipants: number; minGroupSize: number; dp: null } };
    const submitted = { type: ENTRY.querySubmitted, body: { queryId, studyId: study.id, study: 'salaries', protocol: 'shamir', query: canonicalQuery(spec) as object, queryHash: queryHash(spec), submittedBy: 'hostile', seedCommitment: nonceCommitment(nonce) } };
    const time = new Date().toISOString();
    const first = await hostile.fork(prefix, [submitted], time);
    const honest = await hostile.forgeQuery(study, { onCommittee: [victim().participantId] });
    const seed = committeeSeed(first.rootAt(prefix + 1), nonce);
    const plan = { ...honest.plan, jobId: queryId, queryHash: queryHash(spec), vectorLength: compileQuery(study.schema, spec).vectorLength, seed, committee: drawCommittee(honest.plan.participants, 10, seed) };
    const drawn = { type: ENTRY.committeeDrawn, body: { queryId, studyId: study.id, seed, nonce, seedTreeSize: prefix + 1, committee: plan.committee, threshold: plan.threshold, participants: plan.participants, planHash: planHash(plan) } };
    const forked = await hostile.fork(prefix, [submitted, drawn], time);
    expect(forked.size).toBeLessThan(saved.size);
    const indices = [await hostile.indexOf(ENTRY.studyCreated, study.id), ...(await Promise.all(plan.committee.map((m) => hostile.indexOf(ENTRY.participantEnrolled, m))))];
    expect(Math.max(...indices)).toBeLessThan(prefix);
    const now = Date.now();
    const job = await hostile.send({
      kind: TASK.shamirRound1,
      queryId,
      studyId: study.id,
      participantId: victim().participantId,
      issuedAt: now,
      deadline: now + 60_000,
      plan,
      query: JSON.parse(JSON.stringify(spec)) as TaskOf<typeof TASK.shamirRound1>['query'],
      directory: directory.filter((d) => plan.committee.includes(d.id)),
      evidence: await forked.evidence([prefix, prefix + 1, ...indices], prefix + 1),
    });
    await expectRefused(victim(), queryId, job, new RegExp(`the checkpoint \\(size ${forked.size}\\) is not consistent with the one this participant saved \\(size \\d+\\)`));
  }, 90_000);

  it('refuses a view update that does not prove the checkpoint extends the one the participant saved', async () => {
    const saved = loadSavedCheckpoint(join(victim().home, 'ledger'))!.saved;
    const q = await forgeWithRunningCommittee();
    const task = await hostile.round1Task(q, victim().participantId, directory);
    // The update starts where the participant stands, so it is used instead of a request; its proof is another's.
    const bogus = await hostile.events.viewUpdate(study.id, saved.size - 1, await hostile.events.count());
    const job = await hostile.send({ ...task, view: { ...bogus, from: saved.size } });
    await expectRefused(victim(), q.queryId, job, /is not consistent with the one this participant saved/);
  }, 60_000);

  it('refuses minParticipants below the value pinned at enrollment, even when the ledger records it', async () => {
    const q = await forgeWithRunningCommittee({ privacy: { minParticipants: 2, minGroupSize: 5, dp: null } });
    const job = await hostile.send(await hostile.round1Task(q, victim().participantId, directory));
    await expectRefused(victim(), q.queryId, job, /minParticipants 2 is below the 3 pinned at enrollment/);
  }, 60_000);

  it('refuses minGroupSize below the value pinned at enrollment', async () => {
    const q = await forgeWithRunningCommittee({ privacy: { minParticipants: 3, minGroupSize: 1, dp: null } });
    const job = await hostile.send(await hostile.round1Task(q, victim().participantId, directory));
    await expectRefused(victim(), q.queryId, job, /minGroupSize 1 is below the 5 pinned at enrollment/);
  }, 60_000);

  describe('round 2', () => {
    /** A forged query whose round 1 the four running workers answered, honestly. */
    const roundOne = async (options: Parameters<HostileCoordinator['forgeQuery']>[1] = {}): Promise<{ q: ForgedQuery; bundles: Round1Bundle[] }> => {
      const q = await forgeWithRunningCommittee(options);
      return { q, bundles: await hostile.runRound1(q, ids(running), directory) };
    };
    const member = (): ParticipantProcess => running[1]!;

    it('answers a valid round-2 task with a share sum sealed to the coordinator, never in clear', async () => {
      const { q, bundles } = await roundOne();
      const closed = hostile.closed(q, bundles);
      const job = await hostile.send(await hostile.round2Task(q, member().participantId, bundles, closed, await hostile.appendClosing(q, closed), directory));
      expect(job.state).toBe('completed');
      const result = (job.returnvalue as { result: Record<string, unknown> & { sealed: never; x: number } }).result;
      expect(Object.keys(result).sort()).toEqual(['closedHash', 'jobId', 'planHash', 'sealed', 'sender', 'signature', 'x']);
      // Only the coordinator's X25519 key opens it.
      const context = { jobId: q.queryId, round: 2, sender: member().participantId, recipient: ROUND2_READER };
      expect(openEnvelope(hostile.encryptionKey, result.sealed, context)).toHaveLength(16 * q.plan.vectorLength);
      const other = generateKeyPair('x25519');
      expect(() => openEnvelope(other, result.sealed, context)).toThrow(expect.objectContaining({ name: 'EnvelopeError', message: 'envelope does not open with this key and context' }) as Error);
      expect(() => openEnvelope(other, result.sealed, context)).toThrow(EnvelopeError);
    }, 90_000);

    it('refuses to sum either set when the ledger holds two round.closed entries for one query', async () => {
      const { q, bundles } = await roundOne();
      const all = hostile.closed(q, bundles);
      const fewer = hostile.closed(q, bundles.slice(1));
      const first = await hostile.appendClosing(q, all);
      const second = await hostile.appendClosing(q, fewer);
      const job = await hostile.send(await hostile.round2Task(q, member().participantId, bundles.slice(1), fewer, second, directory));
      await expectRefused(member(), q.queryId, job, new RegExp(`the ledger holds 2 round.closed \\(round 1\\) entries for query ${q.queryId} \\(entries ${first}, ${second}\\)`), 2);
      const other = running[2]!;
      const again = await hostile.send(await hostile.round2Task(q, other.participantId, bundles, all, first, directory));
      await expectRefused(other, q.queryId, again, /holds 2 round.closed \(round 1\) entries/, 2);
    }, 90_000);

    it('answers round 2 once per query: asked again with another contributor set, it refuses (ALREADY_ANSWERED) and sends no second sum', async () => {
      // Differencing: the sum over all four contributors, then over three, gives away the fourth one's aggregate. The
      // ledger check refuses a second closing first (the test above), so here the member's view of the ledger is put
      // back to a backup from before the closing, and the hostile coordinator shows it a fork holding only the
      // second closing: a consistent ledger with one closed set. What is left to stop it is the member's own record
      // of the set it answered for (committeeRound2 ALREADY_ANSWERED).
      const p = member();
      const { q, bundles } = await roundOne();
      const ledgerDir = join(p.home, 'ledger');
      const backup = join(cluster.dir, `ledger-before-closing-${q.queryId}`);
      cpSync(ledgerDir, backup, { recursive: true });
      const jobId = taskJobId(q.queryId, 2, p.participantId);

      const all = hostile.closed(q, bundles);
      const closingIndex = await hostile.appendClosing(q, all);
      const first = await hostile.send(await hostile.round2Task(q, p.participantId, bundles, all, closingIndex, directory));
      expect(first.state).toBe('completed');
      expect((first.returnvalue as { result: { closedHash: string } }).result.closedHash).toBe(closedHash(all));
      const storedAnswer = readFileSync(join(p.home, 'state', `${q.queryId}.r2.json`), 'utf8');
      // What an answer leaves in Redis can be found there (so the absence of the second one below means something).
      expect(await cluster.redisDump()).toContain(closedHash(all));

      const fewer = hostile.closed(q, bundles.slice(1));
      expect(closedHash(fewer)).not.toBe(closedHash(all));
      const current = join(cluster.dir, `ledger-after-closing-${q.queryId}`);
      cpSync(ledgerDir, current, { recursive: true });
      try {
        rmSync(ledgerDir, { recursive: true });
        cpSync(backup, ledgerDir, { recursive: true });
        const saved = loadSavedCheckpoint(ledgerDir)!.saved;
        expect(saved.size).toBeLessThanOrEqual(closingIndex);
        const closing = { queryId: q.queryId, round: 1, contributors: fewer.contributors.map((c) => ({ ...c })), missing: [], refusals: [] };
        const fork = await hostile.fork(closingIndex, [{ type: ENTRY.roundClosed, body: closing, studyId: q.studyId }]);
        const task = await hostile.round2Task(q, p.participantId, bundles.slice(1), fewer, closingIndex, directory);
        task.evidence = await fork.evidence(task.evidence.entries.map((e) => e.index), q.submittedIndex + 1);
        task.view = await fork.viewUpdate(q.studyId, saved.size);
        // Asked again under the job id the signed task must carry: the first job is removed to make room.
        expect(await hostile.tasks.queue(p.participantId).remove(jobId)).toBe(1);
        const second = await hostile.send(task);
        const reason = `refusing round 2: already answered job ${q.queryId} for another contributor set`;
        expect([second.state, second.failedReason]).toEqual(['failed', reason]);
        expect(second.returnvalue).toBeFalsy();
        // It got past every ledger check: the refusal is the answer-once rule's, as the journal shows.
        const journal = readFileSync(join(p.home, 'state', 'journal.jsonl'), 'utf8')
          .trim()
          .split('\n')
          .map((l) => JSON.parse(l) as { queryId: string; round: number; outcome: string; reason: string | null });
        expect(journal.filter((r) => r.queryId === q.queryId && r.round === 2).map((r) => [r.outcome, r.reason])).toEqual([
          ['answered', null],
          ['refused', reason],
        ]);
        const log = () => readFileSync(join(cluster.dir, `participant-${p.name}.log`), 'utf8');
        await until(`${p.name}'s log to record the refusal`, 10_000, () => Promise.resolve(log().includes(reason) ? true : undefined)).catch(() => undefined);
        expect(log()).toContain(`; refused: ${reason}"`);
        // No second share sum: none left the worker (no sum over the second set is in Redis), and none waits at home.
        expect(await cluster.redisDump()).not.toContain(closedHash(fewer));
        expect(readFileSync(join(p.home, 'state', `${q.queryId}.r2.json`), 'utf8')).toBe(storedAnswer);
      } finally {
        rmSync(ledgerDir, { recursive: true, force: true });
        cpSync(current, ledgerDir, { recursive: true });
      }
    }, 90_000);

    it('refuses a fake contributor whose enrollment is not in the ledger', async () => {
      // A plan padded with a participant the coordinator invented, off the committee. Every honest participant refuses
      // its round 1 (its own view of the study knows no such participant); the bundles of the others are made here
      // with their real keys, as if they had answered, to show that a committee member refuses on its own as well.
      const fake = inventParticipant();
      const participants = [...(await hostile.enrolled(study.id)), fake.id].sort();
      const q = await forgeWithRunningCommittee({ participants, offCommittee: [fake.id] });
      const refused = await hostile.send(await hostile.round1Task(q, victim().participantId, directory));
      await expectRefused(victim(), q.queryId, refused, new RegExp(`the plan lists 1 participant not enrolled in the study before it: ${fake.id}`));
      const keys: KeyDirectory = new Map(directory.map((d) => [d.id, { encryption: importPublicKeyBase64Url('x25519', d.encryptionKey), signing: importPublicKeyBase64Url('ed25519', d.signingKey) }]));
      const zero = new Array<bigint>(q.plan.vectorLength).fill(0n);
      const honest = running.slice(1).map((p) => participantRound1({ plan: q.plan, self: p.participantId, signing: participantKeys(p).signing, directory: keys, aggregate: zero }));
      const padded = [...honest, inventedBundle(q.plan, fake, keys, zero)];
      const closed = hostile.closed(q, padded);
      const job = await hostile.send(await hostile.round2Task(q, member().participantId, padded, closed, await hostile.appendClosing(q, closed), [...directory, fake.keys]));
      await expectRefused(member(), q.queryId, job, new RegExp(`the signed ledger has no participant.enrolled entry for contributor ${fake.id}`), 2);
    }, 90_000);

    it('refuses a closed set below the study minimum, even one the ledger records', async () => {
      const { q, bundles } = await roundOne();
      const closed = hostile.closed(q, bundles.slice(0, 2));
      const job = await hostile.send(await hostile.round2Task(q, member().participantId, bundles.slice(0, 2), closed, await hostile.appendClosing(q, closed), directory));
      await expectRefused(member(), q.queryId, job, /refusing round 2: 2 contributors, the study requires at least 3/, 2);
    }, 90_000);

    it.each([
      ['a closing that records another set than the task carries', 'another-set', /records another contributor set than the task carries/],
      ['a checkpoint signed by another key', 'foreign-key', /checkpoint does not verify with the coordinator key pinned at enrollment/],
      ['a closing that is not in the checkpoint', 'not-included', /is not in the signed ledger/],
    ] as const)('refuses %s', async (_what, how, reason) => {
      const { q, bundles } = await roundOne();
      const closed = hostile.closed(q, bundles);
      const closingIndex = await hostile.appendClosing(q, how === 'another-set' ? hostile.closed(q, bundles.slice(1)) : closed);
      const task = await hostile.round2Task(q, member().participantId, bundles, closed, closingIndex, directory);
      if (how === 'foreign-key') {
        const other = generateKeyPair('ed25519');
        const origin = task.evidence.checkpoint.split('\n')[0]!;
        const { size, root } = verifyCheckpoint(task.evidence.checkpoint, hostile.key.publicKey, origin);
        task.evidence = { ...task.evidence, checkpoint: signCheckpoint(other, origin, { origin, size, root }) };
      }
      if (how === 'not-included') task.evidence = { ...task.evidence, entries: task.evidence.entries.map((e) => (e.index === closingIndex ? { ...e, proof: e.proof.slice(1) } : e)) };
      await expectRefused(member(), q.queryId, await hostile.send(task), reason, 2);
    }, 90_000);
  });

  describe('the committee seed is a coin toss between the researcher and the coordinator', () => {
    let coin: string;
    beforeAll(async () => {
      coin = await cluster.createStudy({ ...syntheticSalaryStudy(), name: 'coin' });
      for (let i = 1; i <= 3; i++) {
        const csv = join(cluster.dir, `coin-${i}.csv`);
        writeFileSync(csv, generateSalaryCsv(500 + i, 10));
        await cluster.enroll(coin, `coin-${i}`, csv);
      }
    }, 60_000);

    const post = async (path: string, token: string, body: unknown) => {
      const res = await fetch(`${cluster.url}${path}`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
      return { status: res.status, json: (await res.json()) as Record<string, unknown> };
    };
    const select = [{ stat: 'count', field: 'salary' }];

    it('refuses a shamir query without the researcher’s nonce commitment, naming seedCommitment', async () => {
      const r = await post('/v1/queries', researcher, { study: coin, protocol: 'shamir', select });
      expect([r.status, r.json.message]).toEqual([400, expect.stringMatching(/^seedCommitment: a shamir query needs the researcher's commitment to its committee nonce/) as string]);
    });

    it('starts a query only on its own researcher’s nonce, the one committed to, and draws from the ledger root and that nonce', async () => {
      const nonce = 'c4'.repeat(32);
      const submitted = await post('/v1/queries', researcher, { study: coin, protocol: 'shamir', select, seedCommitment: nonceCommitment(nonce) });
      expect(submitted.status).toBe(201);
      const { id, ledgerIndex } = submitted.json as { id: string; ledgerIndex: number };
      expect(submitted.json).toMatchObject({ status: 'running', awaitingNonce: true });
      // Nothing is dispatched until the nonce is revealed.
      expect((await cluster.get<{ round: number; awaitingNonce: boolean }>(`/v1/queries/${id}`, researcher)).awaitingNonce).toBe(true);
      const other = await cluster.apiKey('researcher');
      expect((await post(`/v1/queries/${id}/nonce`, other, { nonce })).status).toBe(403);
      const wrong = await post(`/v1/queries/${id}/nonce`, researcher, { nonce: 'c5'.repeat(32) });
      expect([wrong.status, wrong.json.error]).toEqual([422, 'nonce_mismatch']);
      const started = await post(`/v1/queries/${id}/nonce`, researcher, { nonce });
      expect([started.status, started.json.round, started.json.awaitingNonce]).toEqual([201, 1, false]);
      expect((await post(`/v1/queries/${id}/nonce`, researcher, { nonce })).status).toBe(409);
      const drawn = (await hostile.events.studyEntries(studyIdOf(cluster.participants.find((p) => p.name === 'coin-1')!), ledgerIndex, Number.MAX_SAFE_INTEGER, 100)).find(
        (e) => e.type === ENTRY.committeeDrawn && (JSON.parse(e.body) as { queryId: string }).queryId === id,
      )!;
      const body = JSON.parse(drawn.body) as { seed: string; nonce: string; seedTreeSize: number };
      expect(body).toMatchObject({ nonce, seedTreeSize: ledgerIndex + 1, seed: committeeSeed(await hostile.events.rootAt(ledgerIndex + 1), nonce) });
    }, 30_000);
  });

  describe('participants see their study’s ledger', () => {
    it('serves a participant the entries of its own study only, each with its inclusion proof', async () => {
      const p = victim();
      const keys = new ParticipantHome(p.home).keys();
      const { size } = await cluster.get<{ size: number }>('/v1/ledger/checkpoint');
      const path = `/v1/ledger/study?after=-1&treeSize=${size}`;
      const res = await fetch(`${cluster.url}${path}`, { headers: participantRequestHeaders(keys.signing, { method: 'GET', path, participantId: p.participantId, time: Date.now() }) });
      expect(res.status).toBe(200);
      const page = (await res.json()) as { entries: { index: number; entry: string }[] };
      const bodies = page.entries.map((e) => (JSON.parse(Buffer.from(e.entry, 'base64').toString('utf8')) as { body: { studyId?: string; participantId?: string } }).body);
      expect(bodies.filter((b) => b.participantId === outsider.participantId)).toEqual([]);
      expect(bodies.filter((b) => b.studyId !== undefined).every((b) => b.studyId === study.id)).toBe(true);
      expect((await fetch(`${cluster.url}${path}`, { headers: { authorization: `Bearer ${cluster.adminToken}` } })).status).toBe(403);
    }, 30_000);

    it('`participant log` lists what the participant computed and for whom, marks refusals, and shows a new enrollment in its study', async () => {
      const late = await (async () => {
        const csv = join(cluster.dir, 'late.csv');
        writeFileSync(csv, generateSalaryCsv(444, 10));
        return cluster.enroll('salaries', 'late-joiner', csv);
      })();
      const r = await cluster.cli(['participant', 'log', '--home', victim().home, '--json'], null);
      expect(r.code).toBe(0);
      const log = singleJson(r.stdout) as { ok: boolean; tasks: { outcome: string; inLedger: number | null; submittedBy: string | null; query: { select: string[] } | null }[]; study: { type: string; summary: string }[] };
      expect(log.ok).toBe(true);
      expect(log.tasks.some((t) => t.outcome === 'answered' && t.inLedger !== null && t.submittedBy === 'hostile' && t.query?.select.includes('sum(salary)'))).toBe(true);
      expect(log.tasks.some((t) => t.outcome === 'refused' && t.inLedger === null)).toBe(true);
      expect(log.study.filter((e) => e.type === 'participant.enrolled' && e.summary.includes(`late-joiner (${late.participantId})`))).toHaveLength(1);
      const human = await cluster.cli(['participant', 'log', '--home', victim().home], null);
      expect(human.stdout).toMatch(/outcome: REFUSED: .*\n\s+ledger:\s+NO LEDGER ENTRY: query failed or not recorded/);
    }, 60_000);
  });

  it('an auditor’s `ledger verify` names the first entry that breaks a rule of the ledger’s meaning', async () => {
    const auditor = await cluster.apiKey('auditor');
    const r = await cluster.cli(['ledger', 'verify', '--json'], auditor);
    expect(r.code).toBe(1);
    const out = singleJson(r.stdout) as { ok: boolean; firstBadIndex: number; reason: string };
    expect(out.ok).toBe(false);
    // The first rule this suite broke: the plan with a threshold of 1, which the coordinator logged as it is.
    const events = await cluster.get<{ events: { index: number; type: string; body: { threshold?: number } }[] }>('/v1/events?limit=1000');
    const first = events.events.find((e) => e.type === ENTRY.committeeDrawn && e.body.threshold === 1)!;
    expect([out.firstBadIndex, out.reason]).toEqual([first.index, expect.stringMatching(/threshold 1/) as string]);
  }, 60_000);
});
