import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { generateKeyPair, importPrivateKeyPem, type KeyPair } from '@confide/crypto';
import { participantRequestHeaders, signUpdateStatement } from '@confide/protocol';
import { Cluster, until, type ParticipantProcess } from '../support/cluster';
import { singleJson } from '../support/cli';
import { closeConnection } from '../support/redis';
import { SALARY_SELECT } from '../support/salary-query';
import { generateSalaryCsv, syntheticSalaryStudy } from '../support/synthetic';
import { eventLog, freeze, thaw, type LoggedEvent } from '../support/task-queues';

// Issue 13, "Enrollment is atomic" and "Names": enrollment leaves nothing behind when either side fails, and the
// same invitation works again; admins list and remove participants (in the ledger, Redis user deleted, out of every
// later plan); a participant changes its maximum record count with a request signed by its key; messages carry the
// invited name beside the id. Real coordinator, workers, Redis and CLI throughout.

const STUDY = syntheticSalaryStudy().name;

describe('enrollment lifecycle end to end (SQLite)', () => {
  let cluster: Cluster;
  let admin: Redis;
  let researcher: string;
  /** Enrolled by the tests below, in order: hospital-1 … hospital-4. */
  const sites: ParticipantProcess[] = [];

  const csv = (name: string, seed: number): string => {
    const file = join(cluster.dir, `${name}.csv`);
    writeFileSync(file, generateSalaryCsv(seed, 30));
    return file;
  };
  const homeOf = (name: string): string => join(cluster.dir, 'homes', name);
  const enroll = (token: string, home: string, data: string, ...extra: string[]) =>
    cluster.cli(['participant', 'enroll', '--invite', token, '--home', home, '--data', data, '--accept-settings', '--json', ...extra], null);
  const enrollments = async (): Promise<LoggedEvent[]> => (await eventLog(cluster)).filter((e) => e.type === 'participant.enrolled');
  const redisUser = (participantId: string): Promise<unknown> => admin.call('ACL', 'GETUSER', `confide-${participantId}`);
  const adopt = (name: string): ParticipantProcess => {
    const p = cluster.adopt(name, homeOf(name));
    sites.push(p);
    return p;
  };

  beforeAll(async () => {
    cluster = await Cluster.start({ database: 'sqlite', round1Seconds: 60, round2Seconds: 60 });
    await cluster.createStudy(syntheticSalaryStudy());
    admin = new Redis(cluster.redisUrl);
    researcher = await cluster.apiKey('researcher');
    mkdirSync(join(cluster.dir, 'homes'), { recursive: true });
  }, 60_000);

  afterAll(async () => {
    // A worker a failed test left frozen would ignore the SIGTERM that stops it.
    for (const p of sites) thaw(p);
    await closeConnection(admin);
    await cluster?.stop();
  }, 60_000);

  it('fails with an unwritable --home before anything is recorded, and the same invitation then enrolls with a good one', async () => {
    const token = await cluster.invite(STUDY, 'hospital-1');
    const data = csv('hospital-1', 1);
    // A home under a regular file: mkdir fails with ENOTDIR, as users found.
    writeFileSync(join(cluster.dir, 'not-a-dir'), 'x');
    const bad = await enroll(token, join(cluster.dir, 'not-a-dir', 'home'), data);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/cannot write the participant home .*not-a-dir\/home: ENOTDIR.*; nothing was sent to the coordinator and the invitation is still unused/);
    expect(await enrollments()).toEqual([]);
    expect(((await cluster.cliJson(['admin', 'participants', 'list', '--study', STUDY])).participants as unknown[]).length).toBe(0);
    expect(((await admin.call('ACL', 'USERS')) as string[]).filter((u) => u.startsWith('confide-p'))).toEqual([]);

    const good = await enroll(token, homeOf('hospital-1'), data);
    expect([good.code, good.stderr]).toEqual([0, '']);
    const out = singleJson(good.stdout) as { participantId: string; name: string };
    expect(out.name).toBe('hospital-1');
    const logged = await enrollments();
    expect(logged.map((e) => [e.body.participantId, e.body.name])).toEqual([[out.participantId, 'hospital-1']]);
    expect(existsSync(join(homeOf('hospital-1'), 'pending.json'))).toBe(false);
    expect(JSON.parse(readFileSync(join(homeOf('hospital-1'), 'identity.json'), 'utf8'))).toMatchObject({ participantId: out.participantId, participantName: 'hospital-1' });
    expect(adopt('hospital-1').participantId).toBe(out.participantId);
  }, 60_000);

  it('leaves no half home and the invitation unused when the coordinator refuses, or the coordinator key is not the one given', async () => {
    const token = await cluster.invite(STUDY, 'hospital-2');
    const data = csv('hospital-2', 2);
    const home = homeOf('hospital-2');

    const refused = await enroll(token, home, data, '--max-records', '200000000');
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/maxRecords: .*\(enrollment refused; nothing was kept in .*hospital-2\)/);
    expect(existsSync(home)).toBe(false);

    const wrongKey = await enroll(token, home, data, '--coordinator-key', 'ab'.repeat(32));
    expect(wrongKey.code).toBe(1);
    expect(wrongKey.stderr).toMatch(/not the abab.* your admin gave you: not enrolling/);
    expect(existsSync(home)).toBe(false);
    expect((await enrollments()).map((e) => e.body.name)).toEqual(['hospital-1']);

    const good = await enroll(token, home, data, '--max-records', '100');
    expect([good.code, good.stderr]).toEqual([0, '']);
    expect(singleJson(good.stdout)).toMatchObject({ name: 'hospital-2', maxRecords: 100 });
    adopt('hospital-2');
  }, 60_000);

  it('finishes a pending enrollment whose answer was lost when the same command runs again, as one participant', async () => {
    const token = await cluster.invite(STUDY, 'hospital-3');
    const home = homeOf('hospital-3');
    const data = csv('hospital-3', 3);
    const first = singleJson((await enroll(token, home, data)).stdout) as { participantId: string };
    // As if the confirmation had never been written: the coordinator committed, the home is still pending.
    renameSync(join(home, 'identity.json'), join(home, 'pending.json'));
    const pendingRun = await cluster.cli(['participant', 'log', '--home', home], null);
    expect(pendingRun.stderr).toMatch(/holds an enrollment that was not confirmed; run 'confide participant enroll' again with the same invitation and --home to finish it/);

    const again = await enroll(token, home, data);
    expect([again.code, again.stderr]).toEqual([0, '']);
    expect(singleJson(again.stdout)).toMatchObject({ participantId: first.participantId, name: 'hospital-3' });
    expect((await enrollments()).filter((e) => e.body.name === 'hospital-3')).toHaveLength(1);
    adopt('hospital-3');

    // A new participant with a used invitation is still refused.
    const other = await enroll(token, homeOf('intruder'), data);
    expect(other.code).toBe(1);
    expect(other.stderr).toMatch(/this invitation was already used to enroll/);
    expect(existsSync(homeOf('intruder'))).toBe(false);
  }, 60_000);

  it('lists the study’s participants with their names, ids, enrollment times and status', async () => {
    const token = await cluster.invite(STUDY, 'hospital-4');
    expect((await enroll(token, homeOf('hospital-4'), csv('hospital-4', 4))).code).toBe(0);
    adopt('hospital-4');

    const listed = (await cluster.cliJson(['admin', 'participants', 'list', '--study', STUDY])).participants as { id: string; name: string; status: string; enrolledAt: string }[];
    expect(listed.map((p) => [p.name, p.id, p.status])).toEqual(sites.map((s) => [s.name, s.participantId, 'active']));
    for (const p of listed) expect(Date.parse(p.enrolledAt)).toBeGreaterThan(Date.now() - 120_000);
    const text = await cluster.cli(['admin', 'participants', 'list', '--study', STUDY]);
    expect(text.stdout).toMatch(new RegExp(`^hospital-1 +${sites[0]!.participantId} +active +enrolled `, 'm'));
  }, 60_000);

  it('removes a participant: a ledger entry with its name, its Redis user gone, and the next query planned and run without it', async () => {
    const [h1, h2, h3, h4] = sites as [ParticipantProcess, ParticipantProcess, ParticipantProcess, ParticipantProcess];
    expect(await redisUser(h4.participantId)).not.toBeNull();
    const removed = await cluster.cli(['admin', 'participants', 'remove', '--study', STUDY, '--participant', 'hospital-4']);
    expect(removed.code).toBe(0);
    expect(removed.stdout).toMatch(new RegExp(`^removed hospital-4 \\(${h4.participantId}\\) from ${STUDY}: ledger entry \\d+`));
    const entry = (await eventLog(cluster)).find((e) => e.type === 'participant.removed');
    expect(entry?.body).toMatchObject({ participantId: h4.participantId, name: 'hospital-4', removedBy: 'bootstrap-admin' });
    expect(await redisUser(h4.participantId)).toBeNull();
    const again = await cluster.cli(['admin', 'participants', 'remove', '--study', STUDY, '--participant', h4.participantId, '--json']);
    expect([again.code, singleJson(again.stdout)]).toEqual([1, { error: 'already_removed', message: `hospital-4 (${h4.participantId}) was already removed` }]);

    // A round-1 deadline of a minute: the query must not wait for hospital-4, and its plan must not list it.
    for (const p of [h1, h2, h3]) await cluster.run(p);
    const r = await cluster.cli(['query', '--study', STUDY, '--protocol', 'shamir', ...SALARY_SELECT, '--wait', '--json'], researcher);
    expect(r.code).toBe(0);
    const q = singleJson(r.stdout) as { id: string; status: string };
    expect(q.status).toBe('succeeded');
    const events = (await eventLog(cluster)).filter((e) => e.body.queryId === q.id);
    expect(events.find((e) => e.type === 'committee.drawn')?.body.participants).toEqual([h1, h2, h3].map((p) => p.participantId).sort());
    expect(events.find((e) => e.type === 'round.closed' && e.body.round === 1)?.body.missing).toEqual([]);

    // Names: a running round says whom it still waits for, by invited name beside the id.
    freeze(h2);
    const held = String((await cluster.cliJson(['query', '--study', STUDY, '--protocol', 'shamir', ...SALARY_SELECT], researcher)).id);
    const waiting = await until('round 1 to wait for hospital-2 alone', 30_000, async () => {
      const v = await cluster.get<{ progress: { answered: unknown[]; waiting: { id: string; name: string }[] } | null }>(`/v1/queries/${held}`, researcher);
      return v.progress?.answered.length === 2 ? v.progress.waiting : undefined;
    });
    expect(waiting).toEqual([{ id: h2.participantId, name: 'hospital-2' }]);
    const status = await cluster.cli(['query', 'status', held], researcher);
    expect(status.stdout).toContain(`2/3 answered; waiting for hospital-2 (${h2.participantId})`);
    thaw(h2);
    expect((await cluster.waitForQuery(held, researcher)).status).toBe('succeeded');

    // Auditors and participants accept the ledger with the new entry, and the participant's view names it.
    const verify = await cluster.cli(['ledger', 'verify', '--json'], await cluster.apiKey('auditor'));
    expect([verify.code, (singleJson(verify.stdout) as { ok: boolean }).ok]).toEqual([0, true]);
    const log = await cluster.cliJson(['participant', 'log', '--home', h1.home], null);
    expect(log.ok).toBe(true);
    expect((log.study as { type: string; summary: string }[]).find((e) => e.type === 'participant.removed')?.summary).toBe(`hospital-4 (${h4.participantId}) removed by bootstrap-admin`);

    // A removed participant does not count toward the study's minimum.
    await cluster.kill(h3, 'SIGTERM');
    await cluster.cliJson(['admin', 'participants', 'remove', '--study', STUDY, '--participant', 'hospital-3']);
    const refused = await cluster.cli(['query', '--study', STUDY, '--protocol', 'shamir', ...SALARY_SELECT, '--json'], researcher);
    expect(refused.code).toBe(1);
    expect(singleJson(refused.stdout)).toMatchObject({ error: 'min_participants', message: `refused: 2 participants enrolled in ${STUDY}, the study requires at least 3` });
  }, 120_000);

  it('updates maxRecords with a request signed by the participant’s key, recorded in the ledger; the data path stays local; forged and unsigned updates are refused', async () => {
    const h1 = sites[0]!;
    const identityFile = join(h1.home, 'identity.json');
    const before = JSON.parse(readFileSync(identityFile, 'utf8')) as { maxRecords: number; dataFile: string };
    const updated = await cluster.cliJson(['participant', 'update', '--home', h1.home, '--max-records', '250'], null);
    expect(updated).toMatchObject({ name: 'hospital-1', maxRecords: 250, dataFileChanged: false });
    const entry = (await eventLog(cluster)).find((e) => e.type === 'participant.updated');
    expect(entry?.index).toBe(updated.maxRecordsEntry);
    expect(entry?.body).toMatchObject({ participantId: h1.participantId, name: 'hospital-1', maxRecords: 250, previousMaxRecords: before.maxRecords });
    expect(JSON.parse(readFileSync(identityFile, 'utf8'))).toMatchObject({ maxRecords: 250 });
    const listed = (await cluster.cliJson(['admin', 'participants', 'list', '--study', STUDY])).participants as { name: string; maxRecords: number }[];
    expect(listed.find((p) => p.name === 'hospital-1')?.maxRecords).toBe(250);

    // The data path is the participant's own: only its home changes.
    const moved = join(cluster.dir, 'moved-hospital-1.csv');
    writeFileSync(moved, readFileSync(before.dataFile));
    const local = await cluster.cliJson(['participant', 'update', '--home', h1.home, '--data', moved], null);
    expect(local).toMatchObject({ dataFileChanged: true, maxRecordsEntry: null });
    expect(JSON.parse(readFileSync(identityFile, 'utf8'))).toMatchObject({ dataFile: moved, maxRecords: 250 });
    expect(await cluster.databaseDump()).not.toContain('moved-hospital-1');
    expect(JSON.stringify(await eventLog(cluster))).not.toContain('moved-hospital-1');
    const unreadable = await cluster.cli(['participant', 'update', '--home', h1.home, '--data', join(cluster.dir, 'nope.csv')], null);
    expect(unreadable.code).toBe(1);
    expect(unreadable.stderr).toMatch(/data file .*nope\.csv is not readable: ENOENT/);

    const signing = importPrivateKeyPem('ed25519', readFileSync(join(h1.home, 'ed25519.pem'), 'utf8'));
    const path = '/v1/participant/max-records';
    const post = async (headers: Record<string, string>, key: KeyPair) => {
      const statement = { participantId: h1.participantId, studyId: String(entry?.body.studyId), maxRecords: 999, previousMaxRecords: 250, time: Date.now() };
      const res = await fetch(`${cluster.url}${path}`, { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body: JSON.stringify({ ...statement, signature: signUpdateStatement(key, statement) }) });
      return { status: res.status, body: (await res.json()) as { error: string; message: string } };
    };
    const sign = (key: KeyPair) => participantRequestHeaders(key, { method: 'POST', path, participantId: h1.participantId, time: Date.now() });
    const stranger = generateKeyPair('ed25519');
    const unsigned = await post({}, signing);
    expect([unsigned.status, unsigned.body.error]).toEqual([401, 'unauthenticated']);
    expect(unsigned.body.message).toMatch(/^this route takes a request signed with an enrolled participant's key/);
    const forgedRequest = await post(sign(stranger), stranger);
    expect([forgedRequest.status, forgedRequest.body.message]).toEqual([401, 'participant request refused: request signature does not verify with the participant’s registered key']);
    const forgedStatement = await post(sign(signing), stranger);
    expect([forgedStatement.status, forgedStatement.body.error, forgedStatement.body.message]).toEqual([400, 'bad_signature', 'update refused: the update is not signed by the participant’s enrolled signing key']);
    expect((await eventLog(cluster)).filter((e) => e.type === 'participant.updated')).toHaveLength(1);
    const verify = await cluster.cli(['ledger', 'verify', '--json'], await cluster.apiKey('auditor'));
    expect([verify.code, (singleJson(verify.stdout) as { ok: boolean }).ok]).toEqual([0, true]);
  }, 60_000);
});
