import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { taskJobId } from '@confide/queue';
import { Cluster, type ParticipantProcess } from '../support/cluster';
import { singleJson, stderrEvents } from '../support/cli';
import { expectedSalaryResults, SALARY_SELECT } from '../support/salary-query';
import { generateSalaryCsv, syntheticSalaryStudy } from '../support/synthetic';
import { freeze, queryEvents, TaskQueues, thaw } from '../support/task-queues';

// DESIGN.md "Protocol shamir", dropouts: a participant missing round 1 is left out; up to k − t committee members
// may miss round 2; beyond that the query fails with a reason in the event log. Five real participant processes:
// all five are the committee (n ≤ 10), k = 5, t = 3, so k − t = 2.
//
// How a member is made to miss round 2 deterministically: workers answer within milliseconds, and round 1 closes
// (and round 2 is dispatched) the moment the last round-1 answer is in, so killing a member "after round 1 closed"
// would race its round-2 answer. Instead one other participant (the holder) is frozen with SIGSTOP before the query
// is submitted, so round 1 cannot close without it until its deadline. Each victim is frozen too, the moment its own
// round-1 job has completed; then the holder is let go (SIGCONT), round 1 closes with all five contributors, round 2
// is dispatched to the whole committee, and only then is each victim killed with SIGKILL (a crash), its round-2
// task still unanswered in its queue. The round-1 deadline (6 s) only has to outlast that handful of steps.

const ROUND1_SECONDS = 6;
const ROUND2_SECONDS = 3;

describe('dropouts end to end (five participant processes, SQLite)', () => {
  let cluster: Cluster;
  let tasks: TaskQueues;
  let researcher: string;
  let sites: ParticipantProcess[] = [];
  const texts = new Map<string, string>();

  beforeAll(async () => {
    cluster = await Cluster.start({ database: 'sqlite', round1Seconds: ROUND1_SECONDS, round2Seconds: ROUND2_SECONDS });
    tasks = new TaskQueues(cluster);
    const study = await cluster.createStudy(syntheticSalaryStudy());
    sites = await Promise.all(
      [1, 2, 3, 4, 5].map(async (i) => {
        const name = `site-${i}`;
        const text = generateSalaryCsv(900 + i, 60);
        const csv = join(cluster.dir, `${name}.csv`);
        writeFileSync(csv, text);
        const p = await cluster.enroll(study, name, csv);
        texts.set(p.participantId, text);
        return p;
      }),
    );
    await Promise.all(sites.map((p) => cluster.run(p)));
    researcher = await cluster.apiKey('researcher');
  }, 120_000);

  afterAll(async () => {
    sites.forEach(thaw);
    await tasks?.close();
    await cluster?.stop();
  }, 60_000);

  const textsOf = (ps: readonly ParticipantProcess[]): string[] => ps.map((p) => texts.get(p.participantId)!);

  async function submit(extra: readonly string[] = []): Promise<string> {
    return String((await cluster.cliJson(['query', '--study', 'salaries', '--protocol', 'shamir', ...SALARY_SELECT, ...extra], researcher)).id);
  }

  /**
   * Submits with `holder` frozen; freezes each victim once its round-1 answer is in; lets the holder answer; and once
   * round 1 closed and round 2 was dispatched, kills each victim (SIGKILL) before it could answer round 2.
   */
  async function killAfterRound1(holder: ParticipantProcess, victims: readonly ParticipantProcess[]): Promise<string> {
    let id: string;
    freeze(holder);
    try {
      id = await submit();
      for (const v of victims) {
        const job = await tasks.waitForFinished(v.participantId, taskJobId(id, 1, v.participantId));
        expect(job.state).toBe('completed');
        freeze(v);
      }
      // Still round 1: the frozen holder has not answered, so no round-2 task exists for anyone yet.
      expect((await cluster.get<{ round: number }>(`/v1/queries/${id}`, researcher)).round).toBe(1);
      for (const v of victims) expect(await tasks.job(v.participantId, taskJobId(id, 2, v.participantId))).toBeUndefined();
    } finally {
      thaw(holder);
    }
    expect(Number((await cluster.waitForRound(id, researcher, 2)).round)).toBe(2);
    for (const v of victims) {
      const task = await tasks.waitForAdded(v.participantId, taskJobId(id, 2, v.participantId));
      await cluster.kill(v, 'SIGKILL');
      expect(await task.getState()).toBe('waiting');
    }
    return id;
  }

  it('releases the exact result over all five contributors when one committee member is SIGKILLed after round 1 (k − t = 2)', async () => {
    const [holder, victim] = sites as [ParticipantProcess, ParticipantProcess];
    const id = await killAfterRound1(holder, [victim]);

    const q = (await cluster.waitForQuery(id, researcher)) as { status: string; participants: number; results: unknown };
    expect(q.status).toBe('succeeded');
    expect(q.participants).toBe(5);
    expect(q.results).toEqual(expectedSalaryResults(textsOf(sites)));

    const events = await queryEvents(cluster, id);
    const closed = events.find((e) => e.type === 'round.closed' && e.body.round === 1)!.body as { contributors: { id: string }[]; missing: string[] };
    expect(closed.contributors.map((c) => c.id).sort()).toEqual(sites.map((p) => p.participantId).sort());
    expect(closed.missing).toEqual([]);
    const released = events.find((e) => e.type === 'result.released')!.body as { committee: string[]; answered: string[]; contributors: number; badMembers: string[] };
    expect(released.committee).toContain(victim.participantId);
    expect(released.answered).not.toContain(victim.participantId);
    expect([...released.answered].sort()).toEqual(sites.filter((p) => p !== victim).map((p) => p.participantId).sort());
    expect(released.contributors).toBe(5);
    expect(released.badMembers).toEqual([]);

    await cluster.run(victim);
  }, 60_000);

  it('fails at round 2 with the counts, in the event log, when more than k − t committee members are SIGKILLed after round 1', async () => {
    const [holder, a, b, c] = sites as [ParticipantProcess, ParticipantProcess, ParticipantProcess, ParticipantProcess];
    const id = await killAfterRound1(holder, [a, b, c]);

    const q = (await cluster.waitForQuery(id, researcher)) as { status: string; failureReason: string; results: unknown; participants: unknown };
    expect(q.status).toBe('failed');
    expect(q.failureReason).toMatch(/round 2: 2 of 5 committee members answered, 3 needed/);
    expect(q.results).toBeNull();

    const events = await queryEvents(cluster, id);
    const failed = events.filter((e) => e.type === 'query.failed');
    expect(failed).toHaveLength(1);
    expect(failed[0]!.body).toMatchObject({ round: 2, reason: expect.stringMatching(/round 2: 2 of 5 committee members answered, 3 needed/) as string });
    expect(events.some((e) => e.type === 'result.released')).toBe(false);

    await Promise.all([a, b, c].map((p) => cluster.run(p)));
  }, 60_000);

  it('leaves out a participant that is down for round 1 and releases the result over the other four', async () => {
    const down = sites[2]!;
    await cluster.kill(down, 'SIGKILL');
    const r = await cluster.cli(['query', '--study', 'salaries', '--protocol', 'shamir', ...SALARY_SELECT, '--deadline', '3', '--wait', '--json'], researcher);
    expect(r.code).toBe(0);
    const out = singleJson(r.stdout) as { id: string; status: string; participants: number; results: unknown };
    // Nothing on stderr but --wait's events, the query's id first.
    expect(stderrEvents(r.stderr)[0]).toEqual({ event: 'submitted', id: out.id });
    expect(out.status).toBe('succeeded');
    expect(out.participants).toBe(4);
    const others = sites.filter((p) => p !== down);
    expect(out.results).toEqual(expectedSalaryResults(textsOf(others)));

    const closed = (await queryEvents(cluster, out.id)).find((e) => e.type === 'round.closed' && e.body.round === 1)!.body as { contributors: { id: string }[]; missing: string[] };
    expect(closed.missing).toEqual([down.participantId]);
    expect(closed.contributors.map((c) => c.id).sort()).toEqual(others.map((p) => p.participantId).sort());
  }, 60_000);
});
