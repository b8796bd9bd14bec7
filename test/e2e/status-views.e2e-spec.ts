import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { singleJson } from '../support/cli';
import { Cluster, freePort, type ParticipantProcess } from '../support/cluster';
import { closeConnection } from '../support/redis';
import { SALARY_SELECT } from '../support/salary-query';
import { generateSalaryCsv, syntheticSalaryStudy } from '../support/synthetic';

// Issue 14, "CLI status views": `confide admin status` (GET /v1/status, admin and auditor keys) after a query that
// succeeded and one that failed, and `confide participant status` from a participant's home and its own Redis user,
// with that Redis reachable and not. Three real participant workers, a real coordinator on SQLite, a private Redis.

const RECORDS = 40;

interface StudyRow {
  name: string;
  participants: number;
  online: number;
  running: number;
  failedLastHour: number;
  succeededLastHour: number;
}

describe('status views: admin status and participant status (three participant processes, SQLite)', () => {
  let cluster: Cluster;
  let researcher: string;
  let auditor: string;
  let sites: ParticipantProcess[] = [];
  let succeeded = '';
  let failed = '';
  /** The succeeded query's released mean: a value no status view may show. */
  let mean = '';

  beforeAll(async () => {
    cluster = await Cluster.start({ database: 'sqlite' });
    // Three participants at least in every result (the default): with one worker stopped, a query fails at its deadline.
    await cluster.createStudy(syntheticSalaryStudy());
    sites = await Promise.all(
      [1, 2, 3].map(async (i) => {
        const csv = join(cluster.dir, `site-${i}.csv`);
        writeFileSync(csv, generateSalaryCsv(1400 + i, RECORDS));
        return cluster.enroll('salaries', `site-${i}`, csv);
      }),
    );
    await Promise.all(sites.map((p) => cluster.run(p)));
    researcher = await cluster.apiKey('researcher');
    auditor = await cluster.apiKey('auditor');

    const ok = await cluster.cli(['query', '--study', 'salaries', ...SALARY_SELECT, '--wait', '--json'], researcher);
    if (ok.code !== 0) throw new Error(`the query that should succeed exited ${ok.code}: ${ok.stderr}`);
    const result = singleJson(ok.stdout) as { id: string; status: string; results: { value: number }[] };
    expect(result.status).toBe('succeeded');
    succeeded = result.id;
    mean = String(result.results[0]!.value);

    // site-3 stops (and says so: it is offline at once): the query, submitted anyway with --allow-offline, fails
    // at its 3 s deadline with two of the three contributions the study needs.
    await cluster.kill(sites[2]!, 'SIGTERM');
    const r = await cluster.cli(['query', '--study', 'salaries', ...SALARY_SELECT, '--deadline', '3', '--allow-offline', '--wait', '--json'], researcher);
    failed = String((JSON.parse(r.stderr.split('\n')[0]!) as { id: string }).id);
    expect((await cluster.waitForQuery(failed, researcher)).status).toBe('failed');
  }, 180_000);

  afterAll(async () => {
    await cluster?.stop();
  }, 60_000);

  it('admin status counts the study: enrolled, online, running, failed and succeeded in the last hour, and the ledger size (admin and auditor)', async () => {
    const expected: StudyRow = { name: 'salaries', participants: 3, online: 2, running: 0, failedLastHour: 1, succeededLastHour: 1 };
    for (const token of [cluster.adminToken, auditor]) {
      const status = await cluster.cliJson(['admin', 'status'], token);
      const { total } = await cluster.get<{ total: number }>('/v1/events?limit=1', auditor);
      // Online is the participants route's flag: site-3's worker said it was stopping, so it is offline.
      expect(status).toEqual({ onlineWindowSeconds: 45, windowSeconds: 3600, ledgerSize: total, studies: [expected] });
    }
    const human = await cluster.cli(['admin', 'status'], auditor);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/^STUDY\s+PARTICIPANTS\s+ONLINE\s+RUNNING\s+FAILED \(1 h\)\s+SUCCEEDED \(1 h\)$/m);
    expect(human.stdout).toMatch(/^salaries\s+3\s+2\s+0\s+1\s+1$/m);
    expect(human.stdout).toMatch(/^ledger: \d+ entries$/m);
    // Counts only: no released value, no token.
    expect(human.stdout).not.toContain(mean);
    expect(human.stdout).not.toContain(auditor);
  });

  it('refuses admin status to a researcher key (403)', async () => {
    const r = await cluster.cli(['admin', 'status', '--json'], researcher);
    expect(r.code).toBe(1);
    expect(singleJson(r.stdout)).toMatchObject({ error: 'forbidden' });
    const res = await fetch(`${cluster.url}/v1/status`, { headers: { authorization: `Bearer ${researcher}` } });
    expect(res.status).toBe(403);
  });

  it("participant status shows the participant, its queue's counts, its tasks and its receipts, and no value", async () => {
    const site = sites[0]!;
    // Receipts fetched once, as a participant does with `participant receipts`; status itself fetches nothing.
    await cluster.cli(['participant', 'receipts', '--home', site.home], null);
    const admin = new Redis(cluster.redisUrl);
    const { r, refused } = await (async () => {
      await admin.call('ACL', 'LOG', 'RESET');
      const run = await cluster.cli(['participant', 'status', '--home', site.home, '--json'], null);
      return { r: run, refused: await admin.call('ACL', 'LOG') };
    })().finally(() => closeConnection(admin));
    // The queue was read within the participant's own ACL: Redis refused it nothing.
    expect(refused).toEqual([]);
    expect(r.code).toBe(0);
    const status = singleJson(r.stdout) as {
      participant: unknown;
      queue: unknown;
      tasks: { queryId: string; round: number; outcome: string; statistics: string[]; records: number | null; used: number | null }[];
      receipts: unknown;
    };
    expect(status.participant).toEqual({ name: 'site-1', id: site.participantId, study: 'salaries', coordinatorUrl: cluster.url });
    // Its worker runs and every task was answered: nothing waits, nothing failed.
    expect(status.queue).toEqual({ reachable: true, waiting: 0, active: 0, delayed: 0, failed: 0 });
    expect(status.tasks.length).toBeGreaterThanOrEqual(2);
    expect(status.tasks.length).toBeLessThanOrEqual(10);
    // Newest first: the failed query's round-1 task before the succeeded one's.
    const ids = status.tasks.map((t) => t.queryId);
    expect(ids.indexOf(failed)).toBeGreaterThanOrEqual(0);
    expect(ids.indexOf(failed)).toBeLessThan(ids.lastIndexOf(succeeded));
    expect(status.tasks.find((t) => t.queryId === succeeded && t.round === 1)).toMatchObject({
      outcome: 'answered',
      statistics: ['mean(salary)', 'sum(salary)', 'count(yrs_since_phd)'],
      records: RECORDS,
      used: expect.any(Number) as number,
    });
    // Two contributions (one per query's round 1); the failed query's has no receipt, as it ended without a result.
    expect(status.receipts).toEqual({ contributions: 2, stored: 1, withoutReceipt: 1, verifiedTreeSize: null });
    expect(r.stdout).not.toContain(mean);

    const human = await cluster.cli(['participant', 'status', '--home', site.home], null);
    expect(human.code).toBe(0);
    expect(human.stdout).toContain(`participant site-1 (${site.participantId}) in study salaries, coordinator ${cluster.url}`);
    expect(human.stdout).toContain('task queue: 0 waiting, 0 active, 0 delayed, 0 failed');
    expect(human.stdout).toMatch(new RegExp(`^ {2}\\S+ {2}${succeeded} round 1 {2}mean\\(salary\\), sum\\(salary\\), count\\(yrs_since_phd\\) {2}answered, ${RECORDS} records read, \\d+ used$`, 'm'));
    expect(human.stdout).toMatch(/^receipts: 2 contributions, 1 with a receipt stored, 1 without/m);
    expect(human.stdout).not.toContain(mean);
  });

  it('participant status of a stopped worker counts the task waiting for it, and asks whether the worker runs', async () => {
    // site-3 was stopped before the failed query: its round-1 task is still in its queue, never taken.
    const r = await cluster.cli(['participant', 'status', '--home', sites[2]!.home, '--json'], null);
    expect(r.code).toBe(0);
    const status = singleJson(r.stdout) as { queue: unknown; tasks: { queryId: string }[] };
    expect(status.queue).toEqual({ reachable: true, waiting: 1, active: 0, delayed: 0, failed: 0 });
    expect(status.tasks.map((t) => t.queryId)).not.toContain(failed);
    const human = await cluster.cli(['participant', 'status', '--home', sites[2]!.home], null);
    expect(human.code).toBe(0);
    expect(human.stdout).toContain('task queue: 1 waiting, 0 active, 0 delayed, 0 failed (tasks wait and none is active: is the worker running?)');
  });

  it('participant status still exits 0 with Redis unreachable, saying so in one line, and shows the rest', async () => {
    // A copy of site-1's home whose identity.json names a Redis port nobody listens on.
    const home = mkdtempSync(join(tmpdir(), 'confide-status-'));
    try {
      cpSync(sites[0]!.home, home, { recursive: true });
      const identity = JSON.parse(readFileSync(join(home, 'identity.json'), 'utf8')) as { redis: { url: string; password: string } };
      const port = await freePort();
      identity.redis.url = `redis://127.0.0.1:${port}`;
      writeFileSync(join(home, 'identity.json'), JSON.stringify(identity), { mode: 0o600 });

      const started = Date.now();
      const human = await cluster.cli(['participant', 'status', '--home', home, '--timeout', '5'], null);
      expect(Date.now() - started).toBeLessThan(20_000);
      expect(human.code).toBe(0);
      const lines = human.stdout.split('\n');
      expect(lines.filter((l) => l.includes('Redis unreachable'))).toEqual([expect.stringMatching(new RegExp(`^task queue: Redis unreachable at redis://127\\.0\\.0\\.1:${port}: `)) as string]);
      expect(human.stdout).toContain(succeeded);
      expect(human.stdout).toMatch(/^receipts: 2 contributions/m);
      expect(human.stdout + human.stderr).not.toContain(identity.redis.password);

      const json = await cluster.cli(['participant', 'status', '--home', home, '--timeout', '5', '--json'], null);
      expect(json.code).toBe(0);
      const status = singleJson(json.stdout) as { queue: unknown; tasks: unknown[] };
      expect(status.queue).toEqual({ reachable: false, url: `redis://127.0.0.1:${port}`, reason: expect.any(String) as string });
      expect(status.tasks.length).toBeGreaterThanOrEqual(2);
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
  });
});

describe('admin status on PostgreSQL: a running query, then the same query failed', () => {
  let cluster: Cluster;
  let researcher: string;

  beforeAll(async () => {
    cluster = await Cluster.start({ database: 'postgres' });
    await cluster.createStudy(syntheticSalaryStudy());
    // Enrolled, no worker running: a query (submitted with --allow-offline) waits for its deadline and fails.
    await Promise.all(
      [1, 2, 3].map(async (i) => {
        const csv = join(cluster.dir, `site-${i}.csv`);
        writeFileSync(csv, generateSalaryCsv(1500 + i, RECORDS));
        return cluster.enroll('salaries', `site-${i}`, csv);
      }),
    );
    researcher = await cluster.apiKey('researcher');
  }, 120_000);

  afterAll(async () => {
    await cluster?.stop();
  }, 60_000);

  it('counts the query as running, then as failed in the last hour', async () => {
    const submitted = await cluster.cliJson(['query', '--study', 'salaries', ...SALARY_SELECT, '--deadline', '10', '--allow-offline'], researcher);
    const id = String(submitted.id);
    const row = (status: Record<string, unknown>): unknown => (status.studies as StudyRow[])[0];
    const running = await cluster.cliJson(['admin', 'status']);
    // Read after the submission returned and well before the 10 s deadline: still running after it, so running then.
    expect((await cluster.get<{ status: string }>(`/v1/queries/${id}`, researcher)).status).toBe('running');
    // Online: enrolling was a signed request, so each was heard from moments ago; how many still count depends on the clock.
    expect(row(running)).toEqual({ name: 'salaries', participants: 3, online: expect.any(Number) as number, running: 1, failedLastHour: 0, succeededLastHour: 0 });
    expect((await cluster.waitForQuery(id, researcher)).status).toBe('failed');
    const after = await cluster.cliJson(['admin', 'status']);
    expect(row(after)).toEqual({ name: 'salaries', participants: 3, online: expect.any(Number) as number, running: 0, failedLastHour: 1, succeededLastHour: 0 });
    const { total } = await cluster.get<{ total: number }>('/v1/events?limit=1');
    expect(after.ledgerSize).toBe(total);
  }, 60_000);
});
