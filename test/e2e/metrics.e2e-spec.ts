import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { Cluster, type ParticipantProcess } from '../support/cluster';
import { SALARY_SELECT } from '../support/salary-query';
import { generateSalaryCsv, syntheticSalaryStudy } from '../support/synthetic';

/**
 * Issue 14, "Metrics": /metrics gives an on-call person round latencies per protocol, query outcomes and failures
 * by kind of reason, participants online per study, queue depths and ledger append latency, read here from a real
 * coordinator after a query that succeeded and one that failed because a participant was down.
 */
describe('/metrics for an on-call person', () => {
  let cluster: Cluster;
  const sites: ParticipantProcess[] = [];
  let researcher: string;
  let auditor: string;

  /** Every sample line of a scrape, by name and labels as written: `name{a="b"}` → value. */
  const scrape = async (): Promise<{ text: string; value: (series: string) => number | undefined }> => {
    const res = await fetch(`${cluster.url}/metrics`, { headers: { authorization: `Bearer ${auditor}` } });
    expect(res.status).toBe(200);
    const text = await res.text();
    const values = new Map(
      text
        .split('\n')
        .filter((l) => l && !l.startsWith('#'))
        .map((l) => [l.slice(0, l.lastIndexOf(' ')), Number(l.slice(l.lastIndexOf(' ') + 1))] as const),
    );
    return { text, value: (series) => values.get(series) };
  };

  beforeAll(async () => {
    cluster = await Cluster.start({ database: 'sqlite' });
    await cluster.createStudy(syntheticSalaryStudy()); // minParticipants 3
    for (let i = 1; i <= 3; i++) {
      const file = join(cluster.dir, `site-${i}.csv`);
      writeFileSync(file, generateSalaryCsv(700 + i, 30));
      const p = await cluster.enroll('salaries', `site-${i}`, file);
      await cluster.run(p);
      sites.push(p);
    }
    researcher = await cluster.apiKey('researcher');
    auditor = await cluster.apiKey('auditor');
  }, 120_000);
  afterAll(() => cluster?.stop(), 60_000);

  it('counts a succeeded and a failed query, their rounds, the participants online, the queues and the ledger appends', async () => {
    const ok = await cluster.cliJson(['query', '--study', 'salaries', '--protocol', 'shamir', ...SALARY_SELECT, '--wait'], researcher);
    expect(ok.status).toBe('succeeded');
    await cluster.kill(sites[2]!, 'SIGKILL');
    const r = await cluster.cli(['query', '--study', 'salaries', '--protocol', 'shamir', ...SALARY_SELECT, '--deadline', '3', '--wait', '--json'], researcher);
    expect(JSON.parse(r.stdout.trim())).toMatchObject({ status: 'failed', failureReason: expect.stringMatching(/^round 1: 2 of 3 participants answered, at least 3 needed/) as string });

    const { text, value } = await scrape();
    expect(value('confide_queries{protocol="shamir",status="succeeded"}')).toBe(1);
    expect(value('confide_queries{protocol="shamir",status="failed"}')).toBe(1);
    expect(value('confide_query_failures_total{protocol="shamir",reason="too_few_answers"}')).toBe(1);
    expect(text).toContain('# TYPE confide_query_failures_total counter');

    // Round 1 closed once (the first query) and failed once (the second); round 2 closed once. Each series is a
    // well-formed histogram: cumulative buckets, +Inf equal to the count.
    expect(text).toContain('# TYPE confide_round_duration_seconds histogram');
    for (const [round, outcome, count] of [['1', 'closed', 1], ['1', 'failed', 1], ['2', 'closed', 1]] as const) {
      const labels = `protocol="shamir",round="${round}",outcome="${outcome}"`;
      expect(value(`confide_round_duration_seconds_count{${labels}}`)).toBe(count);
      expect(value(`confide_round_duration_seconds_bucket{${labels},le="+Inf"}`)).toBe(count);
      const buckets = [...text.matchAll(new RegExp(`^confide_round_duration_seconds_bucket\\{${labels},le="([0-9.]+)"\\} (\\d+)$`, 'gm'))].map((m) => Number(m[2]));
      expect(buckets.length).toBeGreaterThan(5);
      expect(buckets).toEqual([...buckets].sort((a, b) => a - b));
      expect(value(`confide_round_duration_seconds_sum{${labels}}`)).toBeGreaterThan(0);
    }
    // The failed round waited for its 3 s deadline: not in the buckets under it.
    expect(value('confide_round_duration_seconds_bucket{protocol="shamir",round="1",outcome="failed",le="2.5"}')).toBe(0);

    expect(value('confide_study_participants{study="salaries"}')).toBe(3);
    // Online means seen in the online window; the killed worker was seen moments ago, so it still counts.
    expect(value('confide_participants_online{study="salaries"}')).toBe(3);
    for (const state of ['waiting', 'active', 'delayed']) expect(value(`confide_tasks_queued{state="${state}"}`)).toEqual(expect.any(Number));
    expect(value('confide_aggregation_jobs_queued{state="waiting"}')).toBe(0);

    const entries = value('confide_ledger_entries')!;
    expect(entries).toBeGreaterThan(10);
    // Every entry was appended by this coordinator process (a deduplicated append is timed too).
    expect(value('confide_ledger_append_seconds_count')).toBeGreaterThanOrEqual(entries);
    expect(value('confide_ledger_append_seconds_bucket{le="+Inf"}')).toBe(value('confide_ledger_append_seconds_count'));

    // Counts and durations only.
    expect(text).not.toContain(cluster.adminToken);
    expect(text).not.toContain(researcher);
    expect(text).not.toMatch(/salary|site-\d/);
  }, 90_000);
});
