import { randomBytes, createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { canonicalJson } from '@confide/crypto';
import { compileQuery, parseStudySchema, planShamir } from '@confide/protocol';
import { newQueryId, signTask, TASK, taskJobId, type TaskOf } from '@confide/queue';
import { Cluster, type ParticipantProcess } from '../support/cluster';
import { singleJson } from '../support/cli';
import { closeConnection } from '../support/redis';
import { expectedSalaryResults, SALARY_SELECT } from '../support/salary-query';
import { generateSalaryCsv, syntheticSalaryStudy } from '../support/synthetic';
import { coordinatorKey, directoryEntry, freeze, queryEvents, studyIdOf, TaskQueues, thaw, type FinishedJob } from '../support/task-queues';

// Bad input from every side, each refused with a clear error and nothing lost: a participant's CSV broken after
// enrollment (which checks it), a replayed task, a task for another study, an expired or
// reused invitation. Four real participant processes on SQLite (minimum 3, so one may drop out).
//
// Where a refused task must still be in Redis to be inspected, one good participant (the holder) is frozen with
// SIGSTOP before the query is submitted: round 1 cannot close without it, so nothing is cleaned up until it is
// let go. Workers answer within milliseconds; this is what makes the order of events deterministic.

const HEADER = 'salary,yrs_since_phd,rank,sex';
/** A small valid CSV for the salary study (row i on physical line i + 2). */
const goodRows = (rows: number): string[] => Array.from({ length: rows }, (_, i) => `${52000 + i * 1375}.25,${1 + (i % 30)},${i % 2 ? 'Prof' : 'AssocProf'},${i % 3 ? 'Male' : 'Female'}`);

interface BadCsv {
  readonly what: string;
  readonly csv: string;
  /** Distinctive text of the bad input that must stay on the participant's machine. */
  readonly secrets: readonly string[];
  /** What the participant's own log says about it: line and column. */
  readonly logged: string;
}

const BAD_CSVS: readonly BadCsv[] = [
  {
    what: 'an unknown column',
    csv: [`${HEADER},bonus_x7q`, ...goodRows(8).map((r, i) => `${r},${31337 + i}.73`)].join('\n'),
    secrets: ['bonus_x7q', '31337.73'],
    logged: 'line 1, column "bonus_x7q": unknown column; the study "salaries" has salary, yrs_since_phd, rank, sex',
  },
  {
    what: 'a non-numeric cell',
    csv: [HEADER, ...goodRows(8).map((r, i) => (i === 3 ? r.replace(/^[^,]*/, '87654three.21') : r))].join('\n'),
    secrets: ['87654three.21'],
    logged: 'line 5, column "salary": not a number: "87654three.21"',
  },
  {
    what: 'an out-of-range value',
    csv: [HEADER, ...goodRows(8).map((r, i) => (i === 5 ? r.replace(/^[^,]*/, '987654321.12') : r))].join('\n'),
    secrets: ['987654321.12', '98765432112'],
    logged: `line 7, column "salary": "987654321.12" is above the study's range`,
  },
];

/** The JSON lines of a process's log file (pino), skipping anything else (and a line still being written). */
function logEntries(file: string): { queryId?: string; outcome?: string; msg?: string }[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .flatMap((line) => {
      try {
        const entry: unknown = JSON.parse(line);
        return typeof entry === 'object' && entry !== null ? [entry] : [];
      } catch {
        return [];
      }
    });
}

/** Polls `probe` every 50 ms until it gives a value, failing after 10 s. */
async function until<T>(what: string, probe: () => T | undefined): Promise<T> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('bad input end to end (four participant processes, SQLite)', () => {
  let cluster: Cluster;
  let tasks: TaskQueues;
  let researcher: string;
  let sites: ParticipantProcess[] = [];
  const texts = new Map<string, string>();
  const csvOf = (p: ParticipantProcess): string => join(cluster.dir, `${p.name}.csv`);
  const textsOf = (ps: readonly ParticipantProcess[]): string[] => ps.map((p) => texts.get(p.participantId)!);

  beforeAll(async () => {
    cluster = await Cluster.start({ database: 'sqlite' });
    tasks = new TaskQueues(cluster);
    const study = await cluster.createStudy(syntheticSalaryStudy());
    sites = await Promise.all(
      [1, 2, 3, 4].map(async (i) => {
        const name = `site-${i}`;
        const text = generateSalaryCsv(500 + i, 50);
        writeFileSync(join(cluster.dir, `${name}.csv`), text);
        const p = await cluster.enroll(study, name, join(cluster.dir, `${name}.csv`));
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

  async function submit(): Promise<string> {
    return String((await cluster.cliJson(['query', '--study', 'salaries', '--protocol', 'shamir', ...SALARY_SELECT], researcher)).id);
  }

  describe.each(BAD_CSVS)('a participant whose CSV has $what', (bad) => {
    afterEach(() => writeFileSync(csvOf(sites[3]!), texts.get(sites[3]!.participantId)!));

    it('enrolls, refuses its task with the details only in its own log, and the query completes over the other three', async () => {
      const [holder, , , broken] = sites as [ParticipantProcess, ParticipantProcess, ParticipantProcess, ParticipantProcess];
      // The file is broken after enrollment (done in beforeAll with a good file, which enroll checks).
      writeFileSync(csvOf(broken), bad.csv);
      let id: string;
      let redisWhileOpen: string;
      freeze(holder);
      try {
        id = await submit();
        const refused = await tasks.waitForFinished(broken.participantId, taskJobId(id, 1, broken.participantId));
        expect(refused.state).toBe('failed');
        expect(refused.failedReason).toBe("data file failed validation (see the participant's log)");
        redisWhileOpen = await cluster.redisDump();
        expect(redisWhileOpen).toContain('data file failed validation'); // the refused job is in the scan
      } finally {
        thaw(holder);
      }

      const q = (await cluster.waitForQuery(id, researcher)) as { status: string; participants: number; results: unknown };
      expect(q.status).toBe('succeeded');
      expect(q.participants).toBe(3);
      const others = sites.filter((p) => p !== broken);
      expect(q.results).toEqual(expectedSalaryResults(textsOf(others)));
      const closed = (await queryEvents(cluster, id)).find((e) => e.type === 'round.closed' && e.body.round === 1)!.body;
      expect(closed.missing).toEqual([broken.participantId]);

      // The participant's own log names the line and the column (its operator has to fix the file) ...
      const explained = await until('the refusal in the participant log', () => {
        // Its round-1 task's line (its round-2 task, as a committee member, is answered: it reads no data).
        const mine = logEntries(join(cluster.dir, `participant-${broken.name}.log`)).filter((l) => l.queryId === id && l.outcome === 'refused');
        return mine.length > 0 ? mine.map((l) => l.msg ?? '') : undefined;
      });
      expect(explained).toHaveLength(1);
      expect(explained[0]).toContain(bad.logged);
      // ... and the bad cell never leaves the machine: not in Redis (while the refused job was there, and after),
      // not in the coordinator's database, not in its log.
      const elsewhere = [redisWhileOpen, await cluster.redisDump(), await cluster.databaseDump(), readFileSync(join(cluster.dir, 'coordinator.log'), 'utf8')];
      for (const secret of bad.secrets) for (const text of elsewhere) expect(text).not.toContain(secret);
    }, 45_000);
  });

  it('refuses a replayed task under another job id, and answers a redelivery under its own id with the stored answer', async () => {
    const [holder, target] = sites as [ParticipantProcess, ParticipantProcess];
    const jobId = (id: string) => taskJobId(id, 1, target.participantId);
    let id: string;
    let original: FinishedJob;
    freeze(holder);
    try {
      id = await submit();
      original = await tasks.waitForFinished(target.participantId, jobId(id));
    } finally {
      thaw(holder);
    }
    expect(original.state).toBe('completed');
    const q = await cluster.waitForQuery(id, researcher);
    expect(q).toMatchObject({ status: 'succeeded', participants: 4, results: expectedSalaryResults(textsOf(sites)) });
    // The coordinator removes a finished query's tasks; the signed task data is what an attacker could have copied.
    await tasks.waitForRemoved(target.participantId, jobId(id));

    const replayed = `${jobId(id)}-replayed`;
    await tasks.add(target.participantId, TASK.shamirRound1, replayed, original.data);
    const refused = await tasks.waitForFinished(target.participantId, replayed);
    expect(refused.state).toBe('failed');
    expect(refused.failedReason).toBe('task rejected: job id does not match the signed task');

    await tasks.add(target.participantId, TASK.shamirRound1, jobId(id), original.data);
    const redelivered = await tasks.waitForFinished(target.participantId, jobId(id));
    expect(redelivered.state).toBe('completed');
    // Equal to the byte: a new sharing would have fresh random shares and ephemeral keys.
    expect(redelivered.returnvalue).toEqual(original.returnvalue);

    // Nothing was counted twice: the query and its log entries are as they were.
    expect(await cluster.get(`/v1/queries/${id}`, researcher)).toEqual(q);
    const types = (await queryEvents(cluster, id)).map((e) => e.type);
    expect(types.filter((t) => t === 'round.closed')).toHaveLength(1);
    expect(types.filter((t) => t === 'result.released')).toHaveLength(1);
  }, 45_000);

  it('refuses a coordinator-signed task for another study', async () => {
    const file = join(cluster.dir, 'study-other.json');
    writeFileSync(file, JSON.stringify({ ...syntheticSalaryStudy(), name: 'other-study' }));
    const otherStudyId = String((await cluster.cliJson(['admin', 'study', 'create', '--file', file])).id);
    const target = sites[1]!;
    const queryId = newQueryId();
    const spec = { select: [{ stat: 'count' as const, field: 'salary' }] };
    const now = Date.now();
    const plan = planShamir({
      jobId: queryId,
      queryHash: createHash('sha256').update(canonicalJson(spec)).digest('hex'),
      vectorLength: compileQuery(parseStudySchema(syntheticSalaryStudy()), spec).vectorLength,
      participants: sites.map((p) => p.participantId),
      minParticipants: 3,
      seed: randomBytes(16).toString('hex'),
      deadlines: { round1: now + 30_000, round2: now + 60_000 },
    });
    const task: TaskOf<typeof TASK.shamirRound1> = {
      kind: TASK.shamirRound1,
      queryId,
      studyId: otherStudyId,
      participantId: target.participantId,
      issuedAt: now,
      deadline: plan.deadlines.round1,
      plan,
      query: { ...spec, privacy: { minParticipants: 3, minGroupSize: 5, dp: null } },
      directory: sites.filter((p) => plan.committee.includes(p.participantId)).map(directoryEntry),
      // Refused before its evidence is looked at: the task names another study.
      evidence: { checkpoint: '', entries: [] },
    };
    const jobId = taskJobId(queryId, 1, target.participantId);
    await tasks.add(target.participantId, TASK.shamirRound1, jobId, signTask(coordinatorKey(cluster), task));
    const refused = await tasks.waitForFinished(target.participantId, jobId);
    expect(refused.state).toBe('failed');
    expect(refused.failedReason).toBe(`task rejected: task is for study ${otherStudyId}, this worker serves ${studyIdOf(target)}`);
    expect(existsSync(join(target.home, 'state', `${queryId}.r1.json`))).toBe(false);
  }, 30_000);

  it('refuses a second enrollment with one invitation (already used); the first participant still works', async () => {
    const token = await cluster.invite('salaries', 'site-5');
    const text = generateSalaryCsv(505, 50);
    writeFileSync(join(cluster.dir, 'site-5.csv'), text);
    const home = join(cluster.dir, 'homes', 'site-5');
    // Without accepting the study's settings, or against another coordinator key than the admin's, nothing is
    // registered and the invitation stays unused.
    const csv = join(cluster.dir, 'site-5.csv');
    const unaccepted = await cluster.cli(['participant', 'enroll', '--invite', token, '--home', home, '--data', csv], null);
    expect([unaccepted.code, unaccepted.stderr]).toEqual([2, expect.stringMatching(/^confide: enrolling needs your acceptance of the study's settings:\nstudy salaries:\n {2}at least 3 participants in every result\n {2}cells with fewer than 5 records suppressed\n/) as string]);
    const { fingerprint } = await cluster.get<{ fingerprint: string }>('/v1/coordinator');
    const impostor = await cluster.cli(['participant', 'enroll', '--invite', token, '--home', home, '--data', csv, '--accept-settings', '--coordinator-key', 'ab'.repeat(32)], null);
    expect([impostor.code, impostor.stderr]).toEqual([1, `confide: the coordinator's key is ${fingerprint}, not the ${'ab'.repeat(32)} your admin gave you: not enrolling (is this the right coordinator?)\n`]);
    expect(existsSync(join(home, 'identity.json'))).toBe(false);
    const first = await cluster.cliJson(['participant', 'enroll', '--invite', token, '--home', home, '--data', csv, '--accept-settings', '--coordinator-key', fingerprint], null);
    const again = join(cluster.dir, 'homes', 'site-5-again');
    const second = await cluster.cli(['participant', 'enroll', '--invite', token, '--home', again, '--data', csv, '--accept-settings'], null);
    expect(second.code).toBe(1);
    expect(second.stderr).toBe('confide: this invitation was already used to enroll\n');
    expect(existsSync(join(again, 'identity.json'))).toBe(false);

    const fifth: ParticipantProcess = { name: 'site-5', home, participantId: String(first.participantId), process: undefined };
    cluster.participants.push(fifth);
    texts.set(fifth.participantId, text);
    await cluster.run(fifth);
    const r = await cluster.cli(['query', '--study', 'salaries', '--protocol', 'shamir', ...SALARY_SELECT, '--wait', '--json'], researcher);
    expect(r.code).toBe(0);
    const out = singleJson(r.stdout);
    expect(out).toMatchObject({ status: 'succeeded', participants: 5, results: expectedSalaryResults(textsOf([...sites, fifth])) });
  }, 45_000);
});

describe('an expired invitation (invitations valid for 1 s)', () => {
  let cluster: Cluster;

  beforeAll(async () => {
    cluster = await Cluster.start({ database: 'sqlite', env: { CONFIDE_INVITE_TTL_SECONDS: '1' } });
    await cluster.createStudy(syntheticSalaryStudy());
  }, 60_000);
  afterAll(() => cluster?.stop(), 60_000);

  it('is refused at enrollment with exit 1 and a clear message, and leaves no identity and no Redis user', async () => {
    const invitation = await cluster.cliJson(['admin', 'invite', '--study', 'salaries', '--participant', 'late']);
    // Wait out exactly the invitation's validity (about a second), as it reports it.
    const expiresAt = Date.parse(String(invitation.expiresAt));
    await new Promise((r) => setTimeout(r, Math.max(0, expiresAt - Date.now()) + 100));
    const csv = join(cluster.dir, 'late.csv');
    writeFileSync(csv, generateSalaryCsv(77, 10));
    const home = join(cluster.dir, 'homes', 'late');
    const r = await cluster.cli(['participant', 'enroll', '--invite', String(invitation.token), '--home', home, '--data', csv, '--accept-settings'], null);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('confide: this invitation has expired; ask the study admin for a new one\n');
    expect(existsSync(join(home, 'identity.json'))).toBe(false);

    const admin = new Redis(cluster.redisUrl);
    try {
      const users = (await admin.call('ACL', 'LIST')) as string[];
      expect(users.filter((u) => u.includes(`${cluster.prefix}:`))).toEqual([]);
    } finally {
      await closeConnection(admin);
    }
  }, 30_000);
});
