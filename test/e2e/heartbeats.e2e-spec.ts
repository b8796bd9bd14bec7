import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { confideVersion } from '@confide/queue';
import { Cluster, type ParticipantProcess, until } from '../support/cluster';
import { singleJson } from '../support/cli';
import { SALARY_SELECT } from '../support/salary-query';
import { generateSalaryCsv, syntheticSalaryStudy } from '../support/synthetic';

/**
 * Issue 14, "Participant heartbeats": every worker sends a small signed heartbeat (here every second, CONFIDE_HEARTBEAT_SECONDS)
 * with its version, its queue and its last task; the coordinator keeps when it last heard from each (online within
 * CONFIDE_ONLINE_SECONDS, here 8). A worker that stops says so and is offline at once; one that dies is offline when
 * the window passes. A query that cannot reach its minimum with the participants online is refused before
 * anything is recorded (409 too_few_online), unless --allow-offline; workers' refusals by kind reach /metrics.
 */
describe('participant heartbeats', () => {
  let cluster: Cluster;
  const sites: ParticipantProcess[] = [];
  let researcher: string;
  const BEAT = { CONFIDE_HEARTBEAT_SECONDS: '1' };

  interface Row {
    name: string;
    online: boolean;
    heartbeat: { version: string; queue: { waiting: number; active: number; delayed: number; oldestWaitingMs: number | null } | null; lastTask: { queryId: string; round: number; outcome: string } | null; refused: Record<string, number> } | null;
  }
  const list = async (): Promise<Row[]> => (await cluster.cliJson(['participant', 'list', '--study', 'salaries'], researcher)).participants as Row[];
  const row = async (name: string): Promise<Row> => (await list()).find((r) => r.name === name)!;
  const ledgerSize = async (): Promise<number> => (await cluster.get<{ total: number }>('/v1/events?limit=1')).total;

  beforeAll(async () => {
    cluster = await Cluster.start({ database: 'sqlite', env: { CONFIDE_ONLINE_SECONDS: '8' } });
    await cluster.createStudy(syntheticSalaryStudy()); // minParticipants 3
    for (let i = 1; i <= 3; i++) {
      const file = join(cluster.dir, `site-${i}.csv`);
      writeFileSync(file, generateSalaryCsv(500 + i, 20));
      const p = await cluster.enroll('salaries', `site-${i}`, file);
      await cluster.run(p, BEAT);
      sites.push(p);
    }
    researcher = await cluster.apiKey('researcher');
  }, 120_000);
  afterAll(() => cluster?.stop(), 60_000);

  it('shows each running worker online with its version and queue, and its last task after a query', async () => {
    const rows = await list();
    expect(rows.map((r) => [r.name, r.online])).toEqual([['site-1', true], ['site-2', true], ['site-3', true]]);
    for (const r of rows) expect(r.heartbeat).toMatchObject({ version: confideVersion(), queue: { waiting: 0, active: 0, delayed: 0, oldestWaitingMs: null }, refused: {} });
    const q = await cluster.cliJson(['query', '--study', 'salaries', '--protocol', 'shamir', ...SALARY_SELECT, '--wait'], researcher);
    expect(q.status).toBe('succeeded');
    await until('every heartbeat to name the last task', 10_000, async () => ((await list()).every((r) => r.heartbeat?.lastTask?.queryId === q.id) ? true : undefined));
    for (const r of await list()) expect(r.heartbeat!.lastTask).toMatchObject({ queryId: q.id, outcome: 'answered' });
  }, 60_000);

  it('marks a stopped worker offline at once, and refuses a query that cannot reach its minimum, naming who is offline, with nothing recorded', async () => {
    const stopped = Date.now();
    await cluster.kill(sites[2]!, 'SIGTERM');
    // Well inside the 8 s window: its last heartbeat said it was stopping.
    await until('site-3 to show offline', 5_000, async () => ((await row('site-3')).online ? undefined : true));
    expect(Date.now() - stopped).toBeLessThan(8_000);

    const before = await ledgerSize();
    const r = await cluster.cli(['query', '--study', 'salaries', '--protocol', 'shamir', ...SALARY_SELECT], researcher);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/refused, nothing recorded: 2 of the 3 participants of salaries are online \(seen in the last 8 s\), the query needs at least 3; offline: site-3 \(p[0-9a-f]+\)\. Start their workers, or submit with --allow-offline/);
    expect(await ledgerSize()).toBe(before);

    // --allow-offline: submitted, saying how many are online; it waits for site-3 until its deadline.
    const allowed = await cluster.cliJson(['query', '--study', 'salaries', '--protocol', 'shamir', ...SALARY_SELECT, '--deadline', '30', '--allow-offline'], researcher);
    expect(allowed).toMatchObject({ status: 'running', online: { count: 2, of: 3 } });
    await cluster.run(sites[2]!, BEAT);
    expect((await cluster.waitForQuery(String(allowed.id), researcher)).status).toBe('succeeded');
  }, 90_000);

  it('marks a worker that dies offline once the window passes without a heartbeat', async () => {
    await until('site-3 online again', 10_000, async () => ((await row('site-3')).online ? true : undefined));
    await cluster.kill(sites[2]!, 'SIGKILL');
    expect((await row('site-3')).online).toBe(true);
    await until('site-3 offline after the 8 s window', 15_000, async () => ((await row('site-3')).online ? undefined : true));
    await cluster.run(sites[2]!, BEAT);
  }, 60_000);

  it('reports its refusals by kind, which /metrics adds up per study', async () => {
    // site-2's file becomes invalid: it refuses its task (data_file), and says so in its next heartbeat.
    writeFileSync(join(cluster.dir, 'site-2.csv'), 'salary,yrs_since_phd,rank,sex\nnot a number,3,Prof,Male\n');
    const r = await cluster.cli(['query', '--study', 'salaries', '--protocol', 'shamir', ...SALARY_SELECT, '--deadline', '4', '--wait', '--json'], researcher);
    expect(singleJson(r.stdout)).toMatchObject({ status: 'failed' });
    await until('site-2 to report its refusal', 10_000, async () => ((await row('site-2')).heartbeat?.refused.data_file === 1 ? true : undefined));
    const auditor = await cluster.apiKey('auditor');
    const metrics = await (await fetch(`${cluster.url}/metrics`, { headers: { authorization: `Bearer ${auditor}` } })).text();
    expect(metrics).toMatch(/^confide_worker_refused_tasks\{study="salaries",reason="data_file"\} 1$/m);
    expect(metrics).toMatch(/^confide_participants_online\{study="salaries"\} 3$/m);
  }, 60_000);
});
