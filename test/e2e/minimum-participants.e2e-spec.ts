import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { participantQueue } from '@confide/queue';
import { Cluster, type ParticipantProcess } from '../support/cluster';
import { singleJson } from '../support/cli';
import { SALARY_SELECT } from '../support/salary-query';
import { generateSalaryCsv, syntheticSalaryStudy } from '../support/synthetic';
import { eventLog, queryEvents } from '../support/task-queues';

// DESIGN.md "Trust model", output privacy: a query is refused below the study's minimum number of participants,
// by the coordinator before anything is dispatched, at round 1 when too few answer, and, should the coordinator
// not do its part, by every committee member itself at round 2 (test/e2e/hostile-coordinator.e2e-spec.ts plays that
// coordinator). Both studies here require at least 3.

describe('minimum participants end to end (SQLite)', () => {
  let cluster: Cluster;
  let researcher: string;
  /** Two participants enrolled in "tiny" (minimum 3); never started. */
  let tiny: ParticipantProcess[] = [];
  /** Three enrolled in "salaries" (minimum 3): the first two run; the third is started only by a later test. */
  let three: ParticipantProcess[] = [];

  beforeAll(async () => {
    cluster = await Cluster.start({ database: 'sqlite', round1Seconds: 30, round2Seconds: 30 });
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
      `round 1: 2 of 3 participants answered, at least 3 needed; refusals: ${third.participantId}: data file failed validation (see the participant's log)`,
    );
    const failed = (await queryEvents(cluster, String(submitted.id))).find((e) => e.type === 'query.failed')!;
    expect(failed.body.refusals).toEqual([{ participantId: third.participantId, reason: "data file failed validation (see the participant's log)" }]);
  }, 45_000);
});
