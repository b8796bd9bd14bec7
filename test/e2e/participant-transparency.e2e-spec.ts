import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Cluster, until, type ParticipantProcess } from '../support/cluster';
import { singleJson } from '../support/cli';
import { generateSalaryCsv, syntheticSalaryStudy } from '../support/synthetic';
import { queryEvents } from '../support/task-queues';

// What a hospital sees of its own data's use (issue 13, "Participant transparency"), with real processes: the
// worker's one line per task, `participant log`, `participant check`, enrollment refusing a broken file before it
// uses the invitation, a data file re-checked under a running worker, and a missing file's path kept at home.

interface LogLine {
  level?: number;
  msg?: string;
  queryId?: string | null;
  round?: number | null;
  outcome?: string;
  submittedBy?: string | null;
  records?: number | null;
  matched?: number | null;
  select?: string[] | null;
  fields?: string[];
  where?: string[] | null;
  reason?: string | null;
  dataFile?: string;
  valid?: boolean;
}

interface LoggedTask {
  queryId: string;
  round: number;
  outcome: string;
  reason: string | null;
  submittedBy: string | null;
  query: { select: string[]; where: string[]; fields: string[] } | null;
  records: number | null;
  inLedger: number | null;
  entries: { state: string; submitted: number | null; closing: number | null; failed: { index: number; reason: string } | null; text: string };
}

const HEADER = 'salary,yrs_since_phd,rank,sex';
/** A small file whose aggregates are worked out by hand below. */
const SMALL = [HEADER, '50000.25,3,Prof,Female', '61000,,AsstProf,Male', ',10,Prof,', '70500.5,40,AssocProf,Female'].join('\n');

describe('participant transparency', () => {
  let cluster: Cluster;
  let researcher: { token: string; id: string };
  const sites: ParticipantProcess[] = [];
  const csvOf = (p: ParticipantProcess): string => join(cluster.dir, `${p.name}.csv`);
  const texts = new Map<string, string>();

  /** The JSON lines a participant's worker logged so far. */
  const logOf = (p: ParticipantProcess): LogLine[] =>
    readFileSync(join(cluster.dir, `participant-${p.name}.log`), 'utf8')
      .split('\n')
      .flatMap((line) => {
        try {
          return [JSON.parse(line) as LogLine];
        } catch {
          return [];
        }
      });
  const taskLine = (p: ParticipantProcess, queryId: string, round: number): Promise<LogLine> =>
    until(`${p.name}'s line for ${queryId} round ${round}`, 15_000, () => Promise.resolve(logOf(p).find((l) => l.queryId === queryId && l.round === round && l.outcome !== undefined)));
  const participantLog = async (p: ParticipantProcess): Promise<{ code: number | null; tasks: LoggedTask[]; text: string }> => {
    const json = await cluster.cli(['participant', 'log', '--home', p.home, '--json'], null);
    const text = await cluster.cli(['participant', 'log', '--home', p.home], null);
    return { code: json.code, tasks: (singleJson(json.stdout) as { tasks: LoggedTask[] }).tasks, text: text.stdout };
  };

  beforeAll(async () => {
    cluster = await Cluster.start({ database: 'sqlite' });
    await cluster.createStudy(syntheticSalaryStudy());
    await cluster.createStudy({ ...syntheticSalaryStudy(), name: 'clinic' });
    for (let i = 1; i <= 3; i++) {
      const name = `site-${i}`;
      const text = generateSalaryCsv(900 + i, 25, { missingRate: 0 });
      writeFileSync(join(cluster.dir, `${name}.csv`), text);
      const p = await cluster.enroll('salaries', name, join(cluster.dir, `${name}.csv`));
      texts.set(name, text);
      await cluster.run(p);
      sites.push(p);
    }
    const key = await cluster.cliJson(['admin', 'keys', 'create', '--role', 'researcher']);
    researcher = { token: String(key.token), id: String(key.id) };
  }, 120_000);
  afterAll(() => cluster?.stop(), 60_000);

  it('logs one line per answered task with the query, fields, filter, submitter and records read, and no data value', async () => {
    const q = await cluster.cliJson(['query', '--study', 'salaries', '--protocol', 'shamir', '--stat', 'mean', '--field', 'salary', '--where', 'rank=Prof', '--wait'], researcher.token);
    expect(q.status).toBe('succeeded');
    const id = String(q.id);
    const line = await taskLine(sites[0]!, id, 1);
    // Of its 25 rows, the ones the answer is over: rank Prof (the file's own count, read here).
    const profs = texts.get('site-1')!.split('\n').filter((row) => /(^|,)"?Prof"?(,|$)/.test(row)).length;
    expect(profs).toBeGreaterThan(0);
    expect(profs).toBeLessThan(25);
    expect(line).toMatchObject({ queryId: id, round: 1, outcome: 'answered', submittedBy: researcher.id, records: 25, matched: profs, select: ['mean(salary)'], fields: ['salary', 'rank'], where: ['rank="Prof"'], reason: null });
    expect(line.msg).toBe(`query ${id} round 1 (shamir.round1): mean(salary) where rank="Prof"; fields salary, rank; submitted by ${researcher.id}; 25 records read, ${profs} used; answered`);
    // No cell of the file (every salary has cents or is a whole number of 5+ digits) and no aggregate.
    const cells = texts.get('site-1')!.match(/\d{5,}(?:\.\d+)?/g)!;
    expect(cells.length).toBeGreaterThan(20);
    for (const cell of cells) expect(JSON.stringify(line)).not.toContain(cell);

    // `participant log`: what was asked, by whom, and the ledger entry that counts the contribution.
    const closing = (await queryEvents(cluster, id)).find((e) => e.type === 'round.closed' && e.body.round === 1)!;
    const submitted = (await queryEvents(cluster, id)).find((e) => e.type === 'query.submitted')!;
    const log = await participantLog(sites[0]!);
    expect(log.code).toBe(0);
    const task = log.tasks.find((t) => t.queryId === id && t.round === 1)!;
    expect(task).toMatchObject({ outcome: 'answered', submittedBy: researcher.id, records: 25, query: { select: ['mean(salary)'], where: ['rank="Prof"'], fields: ['salary', 'rank'] } });
    expect(task.entries).toMatchObject({ state: 'contributed', submitted: submitted.index, closing: closing.index });
    expect(log.text).toContain(`query ${id} round 1 (shamir.round1)\n    asked:   mean(salary) where rank="Prof"\n    fields:  salary, rank\n    by:      ${researcher.id}\n    outcome: answered (25 records read, ${profs} used)\n    ledger:  query in ledger entry ${submitted.index}; contribution counted in round 1 (ledger entry ${closing.index})`);
  }, 90_000);

  it('participant check passes a good file with its per-field aggregates, and names line, column and fix in a broken one, on this machine only', async () => {
    // A copy of the home whose coordinator is unreachable: check reads local files only.
    const offline = join(cluster.dir, 'homes', 'offline');
    mkdirSync(offline, { recursive: true });
    const identity = JSON.parse(readFileSync(join(sites[0]!.home, 'identity.json'), 'utf8')) as Record<string, unknown>;
    writeFileSync(join(offline, 'identity.json'), JSON.stringify({ ...identity, coordinatorUrl: 'http://127.0.0.1:9', redis: { ...(identity.redis as object), url: 'redis://127.0.0.1:9' } }));
    writeFileSync(join(offline, 'study.json'), readFileSync(join(sites[0]!.home, 'study.json')));
    const good = join(cluster.dir, 'small.csv');
    writeFileSync(good, SMALL);

    const ok = await cluster.cli(['participant', 'check', '--home', offline, '--data', good, '--json'], null);
    expect(ok.code).toBe(0);
    expect(singleJson(ok.stdout)).toEqual({
      file: good,
      study: 'salaries',
      ok: true,
      problems: [],
      truncated: false,
      records: 4,
      fields: [
        { field: 'salary', type: 'number', count: 3, sum: '181500.75', min: '50000.25', max: '70500.5' },
        { field: 'yrs_since_phd', type: 'number', count: 3, sum: '53', min: '3', max: '40' },
        { field: 'rank', type: 'category', count: 4, sum: null, min: null, max: null },
        { field: 'sex', type: 'category', count: 3, sum: null, min: null, max: null },
      ],
    });
    const human = await cluster.cli(['participant', 'check', '--home', offline, '--data', good], null);
    expect(human.stdout).toContain(`${good} matches study salaries: 4 records`);
    expect(human.stdout).toMatch(/salary\s+number\s+3\s+181500\.75\s+50000\.25\s+70500\.5/);

    // Without --data: the file given at enrollment.
    const enrolled = await cluster.cli(['participant', 'check', '--home', sites[0]!.home, '--json'], null);
    expect(enrolled.code).toBe(0);
    expect(singleJson(enrolled.stdout)).toMatchObject({ file: csvOf(sites[0]!), ok: true, records: 25 });

    const broken = join(cluster.dir, 'broken.csv');
    writeFileSync(broken, [HEADER, '50000,3,Prof,Female', '61000,2,Professor,Male', '52000,70,Prof,Male'].join('\n'));
    const bad = await cluster.cli(['participant', 'check', '--home', offline, '--data', broken], null);
    expect(bad.code).toBe(1);
    expect(bad.stdout).toContain(`${broken} does not match study salaries: 2 problems`);
    expect(bad.stdout).toContain(
      'line 3, column "rank": unknown category "Professor" (expected one of "AsstProf", "AssocProf", "Prof") — fix: use one of "AsstProf", "AssocProf", "Prof" exactly as written (case-sensitive), or leave the cell empty if unknown',
    );
    expect(bad.stdout).toContain('line 4, column "yrs_since_phd": "70" is above the study\'s range [0, 60] — fix: correct it to a value in [0, 60], or leave the cell empty if unknown');
    expect(bad.stdout).not.toContain('what a query would contribute');

    const semicolons = join(cluster.dir, 'semicolons.csv');
    writeFileSync(semicolons, 'salary;yrs_since_phd;rank;sex\n"50000,25";3;Prof;Female\n');
    const sep = await cluster.cli(['participant', 'check', '--home', offline, '--data', semicolons, '--json'], null);
    expect(sep.code).toBe(1);
    expect((singleJson(sep.stdout) as { problems: { line: number; message: string }[] }).problems).toEqual([
      expect.objectContaining({ line: 1, column: null, message: 'the file is separated by semicolons (";"), not commas: Confide reads comma-separated CSV' }),
    ]);
  }, 60_000);

  it('re-checks the data file when it changes under a running worker, and logs valid or what is wrong', async () => {
    const site = sites[1]!;
    const checks = (): LogLine[] => logOf(site).filter((l) => l.dataFile === csvOf(site));
    const before = checks().length;
    expect(checks()[0]).toMatchObject({ valid: true, msg: `data file ${csvOf(site)} checked: valid, 25 records` });
    writeFileSync(csvOf(site), [HEADER, '50000,3,Prof,Female', '61000,x,Prof,Male'].join('\n'));
    const broken = await until('the broken file to be logged', 15_000, () => Promise.resolve(checks().slice(before).find((l) => l.valid === false)));
    expect(broken.msg).toContain(`data file ${csvOf(site)} changed, checked again: INVALID, tasks are refused until it is fixed (1 problem): line 3, column "yrs_since_phd": not a number: "x"`);
    writeFileSync(csvOf(site), texts.get(site.name)!);
    const fixed = await until('the fixed file to be logged', 15_000, () => Promise.resolve(checks().slice(before).find((l) => l.valid === true)));
    expect(fixed.msg).toBe(`data file ${csvOf(site)} changed, checked again: valid, 25 records`);
  }, 45_000);

  it('refuses tasks while its data file is missing: the coordinator gets "data file not readable" and never the path; participant log marks the failed query', async () => {
    const site = sites[2]!;
    const path = csvOf(site);
    const moved = `${path}.away`;
    renameSync(path, moved);
    try {
      await until('the missing file to be logged', 15_000, () => Promise.resolve(logOf(site).find((l) => l.dataFile === path && l.valid === false)));
      const q = await cluster.cli(['query', '--study', 'salaries', '--protocol', 'shamir', '--stat', 'count', '--field', 'rank', '--wait', '--json'], researcher.token);
      expect(q.code).toBe(1);
      const out = singleJson(q.stdout) as { id: string; status: string; failureReason: string };
      expect(out.status).toBe('failed');
      expect(out.failureReason).toBe(`round 1: 2 of 3 participants answered, at least 3 needed; refusals: ${site.name} (${site.participantId}): data file not readable (see the participant's log)`);

      // The worker's own line has the reason it sent and, for this machine only, the path.
      const line = await taskLine(site, out.id, 1);
      expect(line).toMatchObject({ outcome: 'refused', reason: "data file not readable (see the participant's log)", records: null, submittedBy: researcher.id });
      expect(line.msg).toBe(
        `query ${out.id} round 1 (shamir.round1): count(rank); fields rank; submitted by ${researcher.id}; no records read; refused: data file not readable (see the participant's log) — data file ${path}: file: cannot read ${path}: no such file — fix: check the path, or give the right file with --data`,
      );

      // Nowhere off this machine: not in the coordinator's API, ledger, database, Redis or log.
      const api = JSON.stringify(await cluster.get(`/v1/queries/${out.id}`, researcher.token));
      const ledger = JSON.stringify(await queryEvents(cluster, out.id));
      expect(ledger).toContain('data file not readable');
      for (const text of [api, ledger, await cluster.databaseDump(), await cluster.redisDump(), readFileSync(join(cluster.dir, 'coordinator.log'), 'utf8')]) {
        expect(text).not.toContain(path);
        expect(text).not.toContain(`${site.name}.csv`);
        expect(text).not.toContain('ENOENT');
      }

      // `participant log`: the refusal, and the query's failure as the ledger records it.
      const failed = (await queryEvents(cluster, out.id)).find((e) => e.type === 'query.failed')!;
      const log = await participantLog(site);
      const task = log.tasks.find((t) => t.queryId === out.id && t.round === 1)!;
      expect(task).toMatchObject({ outcome: 'refused', reason: "data file not readable (see the participant's log)", submittedBy: researcher.id, query: { select: ['count(rank)'], fields: ['rank'] } });
      expect(task.entries).toMatchObject({ state: 'failed', failed: { index: failed.index, reason: String(failed.body.reason) } });
      expect(log.text).toContain(`    outcome: REFUSED: data file not readable (see the participant's log)\n    ledger:  query in ledger entry ${task.entries.submitted}; query failed (ledger entry ${failed.index}): ${String(failed.body.reason)}`);
    } finally {
      renameSync(moved, path);
    }
  }, 90_000);

  it('enroll refuses a broken file with the check report before it uses the invitation, which then still works', async () => {
    const token = await cluster.invite('clinic', 'clinic-1');
    const home = join(cluster.dir, 'homes', 'clinic-1');
    const semicolons = join(cluster.dir, 'clinic-1-semicolons.csv');
    writeFileSync(semicolons, 'salary;yrs_since_phd;rank;sex\n50000;3;Prof;Female\n');
    const refused = await cluster.cli(['participant', 'enroll', '--invite', token, '--home', home, '--data', semicolons, '--accept-settings'], null);
    expect(refused.code).toBe(1);
    expect(refused.stdout).toContain(`${semicolons} does not match study clinic: 1 problem\n  line 1: the file is separated by semicolons (";"), not commas`);
    expect(refused.stdout).toContain('not enrolled: fix the file and run enroll again (the invitation is still unused)');
    expect(existsSync(join(home, 'identity.json'))).toBe(false);
    const json = await cluster.cli(['participant', 'enroll', '--invite', token, '--home', home, '--data', semicolons, '--accept-settings', '--json'], null);
    expect(json.code).toBe(1);
    expect(singleJson(json.stdout)).toMatchObject({ ok: false, enrolled: false, file: semicolons, study: 'clinic', problems: [{ line: 1, column: null }] });
    // Nothing reached the coordinator: no enrollment in the ledger, and the same invitation enrolls the fixed file.
    expect((await cluster.get<{ events: { type: string; body: { name?: string } }[] }>('/v1/events?limit=1000')).events.filter((e) => e.type === 'participant.enrolled' && e.body.name === 'clinic-1')).toEqual([]);
    const fixed = join(cluster.dir, 'clinic-1.csv');
    writeFileSync(fixed, SMALL);
    const enrolled = await cluster.cli(['participant', 'enroll', '--invite', token, '--home', home, '--data', fixed, '--accept-settings', '--json'], null);
    expect(enrolled.code).toBe(0);
    expect(singleJson(enrolled.stdout)).toMatchObject({ study: 'clinic' });
  }, 60_000);
});
