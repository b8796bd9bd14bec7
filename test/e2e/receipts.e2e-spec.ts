import { readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PARTICIPANT_REQUEST_MAX_SKEW_MS, participantRequestHeaders } from '@confide/protocol';
import { ParticipantHome } from '../../apps/participant/src/home';
import { Cluster, type ParticipantProcess } from '../support/cluster';
import { singleJson } from '../support/cli';
import { generateSalaryCsv, syntheticSalaryStudy } from '../support/synthetic';

interface ReceiptStatus {
  queryId: string;
  index: number | null;
  leafHash: string | null;
  status: string;
  reason: string | null;
}
interface Report {
  ok: boolean;
  treeSize?: number;
  receipts: ReceiptStatus[];
  reason?: string | null;
}

// Participant receipts as a participant meets them: after contributing, `confide participant receipts` stores
// the ledger index and leaf hash of the entry recording each contribution, and `--verify` proves them against
// the coordinator's current signed checkpoint, with requests signed by the participant's own key.
describe('participant receipts', () => {
  let cluster: Cluster;
  let researcher: string;
  const sites: ParticipantProcess[] = [];
  const queries: string[] = [];

  const receipts = async (p: ParticipantProcess, verify: boolean): Promise<{ code: number | null; out: Report }> => {
    const r = await cluster.cli(['participant', 'receipts', '--home', p.home, ...(verify ? ['--verify'] : []), '--json'], null);
    return { code: r.code, out: singleJson(r.stdout) as unknown as Report };
  };
  const receiptsFile = (p: ParticipantProcess): string => join(p.home, 'receipts.json');

  const runQuery = async (): Promise<string> => {
    const q = await cluster.cliJson(['query', '--study', 'salaries', '--stat', 'mean', '--field', 'salary', '--wait'], researcher);
    expect(q.status).toBe('succeeded');
    queries.push(String(q.id));
    return String(q.id);
  };

  /** The index of the `round.closed` entry of a query, as the auditor's event list shows it. */
  const closingIndex = async (queryId: string): Promise<number> => {
    const { events } = await cluster.get<{ events: { index: number; type: string; body: { queryId?: string } }[] }>('/v1/events?limit=1000');
    const e = events.find((x) => x.type === 'round.closed' && x.body.queryId === queryId);
    if (!e) throw new Error(`no round.closed entry for ${queryId}`);
    return e.index;
  };

  beforeAll(async () => {
    cluster = await Cluster.start({ database: 'sqlite' });
    const study = await cluster.createStudy(syntheticSalaryStudy());
    for (let i = 1; i <= 3; i++) {
      const csv = join(cluster.dir, `site-${i}.csv`);
      writeFileSync(csv, generateSalaryCsv(700 + i, 25));
      const p = await cluster.enroll(study, `site-${i}`, csv);
      await cluster.run(p);
      sites.push(p);
    }
    researcher = await cluster.apiKey('researcher');
    await runQuery();
  }, 120_000);
  afterAll(() => cluster?.stop(), 60_000);

  it('stores a receipt naming the entry that records the contribution', async () => {
    const { code, out } = await receipts(sites[0]!, false);
    expect(code).toBe(0);
    const { events } = await cluster.get<{ events: { type: string; body: { queryId?: string; submittedBy?: string } }[] }>('/v1/events');
    const submittedBy = events.find((e) => e.type === 'query.submitted' && e.body.queryId === queries[0])?.body.submittedBy;
    expect(submittedBy).toEqual(expect.any(String));
    // With what the query asked and who submitted it (from the participant's own journal), not its id alone.
    expect(out.receipts).toEqual([{ queryId: queries[0], index: await closingIndex(queries[0]!), leafHash: expect.any(String) as string, status: 'stored', reason: null, asked: 'mean(salary)', submittedBy }]);
  }, 60_000);

  it('verifies every receipt against the current checkpoint after more entries were appended', async () => {
    await runQuery();
    const before = await receipts(sites[0]!, true);
    expect(before.code).toBe(0);
    const { total } = await cluster.get<{ total: number }>('/v1/events');
    expect(before.out).toMatchObject({ ok: true, treeSize: total });
    expect(before.out.receipts.map((r) => [r.queryId, r.status])).toEqual(queries.map((q) => [q, 'verified']));

    // Later appends (another query, and its checkpoints) leave the receipts valid, via a consistency check.
    await runQuery();
    const after = await receipts(sites[0]!, true);
    expect(after.code).toBe(0);
    expect(after.out.receipts.map((r) => r.status)).toEqual(['verified', 'verified', 'verified']);
    expect(after.out.treeSize).toBeGreaterThan(before.out.treeSize!);
  }, 120_000);

  it.each([
    ['points at another entry', (r: { index: number }) => ({ ...r, index: r.index - 1 })],
    ['carries another leaf hash', (r: { leafHash: string }) => ({ ...r, leafHash: Buffer.alloc(32, 7).toString('base64') })],
    ['points beyond the ledger', (r: { index: number }) => ({ ...r, index: 1_000_000 })],
  ])('a forged receipt that %s fails to verify', async (_what, forge) => {
    const p = sites[1]!;
    expect((await receipts(p, true)).code).toBe(0);
    const original = readFileSync(receiptsFile(p), 'utf8');
    const book = JSON.parse(original) as { receipts: { index: number; leafHash: string; queryId: string }[] };
    const forged = { ...book, receipts: book.receipts.map((r, i) => (i === 0 ? forge(r as never) : r)) };
    writeFileSync(receiptsFile(p), JSON.stringify(forged));
    try {
      const { code, out } = await receipts(p, true);
      expect(code).toBe(1);
      expect(out.ok).toBe(false);
      const bad = out.receipts.find((r) => r.queryId === book.receipts[0]!.queryId);
      expect(bad).toMatchObject({ status: 'failed', reason: expect.stringMatching(/not included|beyond the checkpoint/) as string });
      expect(out.receipts.filter((r) => r.status === 'verified')).toHaveLength(book.receipts.length - 1);
    } finally {
      writeFileSync(receiptsFile(p), original);
    }
  }, 60_000);

  it('refuses an entry that records a different contribution than the one the participant signed', async () => {
    // As if the coordinator had recorded another bundle under this participant's name: the participant's own
    // stored contribution no longer hashes to what the entry says.
    const p = sites[2]!;
    const state = join(p.home, 'state');
    const file = readdirSync(state).find((f) => f.startsWith(`${queries[0]}.r1`))!;
    const answer = JSON.parse(readFileSync(join(state, file), 'utf8')) as { bundle: { signature: string } };
    answer.bundle.signature = `${answer.bundle.signature.slice(0, -4)}AAAA`;
    writeFileSync(join(state, file), JSON.stringify(answer));
    const { code, out } = await receipts(p, false);
    expect(code).toBe(1);
    expect(out.receipts.find((r) => r.queryId === queries[0])).toMatchObject({ status: 'failed', reason: expect.stringMatching(/different contribution/) as string });
    expect(out.receipts.filter((r) => r.queryId !== queries[0]).every((r) => r.status === 'stored')).toBe(true);
  }, 60_000);

  it('fails, naming the query, on a contribution to a query the ledger does not record (a task the coordinator forged)', async () => {
    // As if this participant had answered a forged task (an earlier worker that did not check the ledger): its own
    // answer store holds a contribution to a query no query.submitted entry records.
    const p = sites[0]!;
    const state = join(p.home, 'state');
    const genuine = readdirSync(state).find((f) => f.startsWith(`${queries[0]}.r1`))!;
    const forged = `q${'f0'.repeat(12)}`;
    const answer = JSON.parse(readFileSync(join(state, genuine), 'utf8')) as { bundle: { jobId: string } };
    answer.bundle.jobId = forged;
    const planted = join(state, `${forged}.r1.json`);
    writeFileSync(planted, JSON.stringify(answer));
    try {
      const { code, out } = await receipts(p, true);
      expect(code).toBe(1);
      expect(out.ok).toBe(false);
      expect(out.reason).toBe(`query ${forged}: the ledger records no query ${forged}: this participant contributed to a task the ledger does not know (a forged task)`);
      expect(out.receipts.find((r) => r.queryId === forged)).toMatchObject({ status: 'failed', index: null });
      expect(out.receipts.filter((r) => r.queryId !== forged).every((r) => r.status === 'verified')).toBe(true);
    } finally {
      rmSync(planted);
    }
    expect((await receipts(p, true)).code).toBe(0);
  }, 60_000);

  describe('the receipt route', () => {
    const pathFor = (queryId: string) => `/v1/ledger/receipt?queryId=${queryId}`;
    const path = () => pathFor(queries[0]!);
    const call = (headers: Record<string, string>, at = path()) => fetch(`${cluster.url}${at}`, { headers });
    /** A refusal as the coordinator's exception filter writes it: 401, and the reason the guard gave. */
    const refusal = async (res: Response): Promise<[number, string, string]> => {
      const body = (await res.json()) as { error: string; message: string };
      return [res.status, body.error, body.message];
    };
    const signedBy = (p: ParticipantProcess, at: string, time = Date.now()) =>
      participantRequestHeaders(new ParticipantHome(p.home).keys().signing, { method: 'GET', path: at, participantId: p.participantId, time });
    /** A second query the participant contributed to, made here unless an earlier test already made one. */
    let otherQuery: string;
    beforeAll(async () => {
      otherQuery = queries[1] ?? (await runQuery());
    }, 60_000);

    it('serves a participant its receipt for a request signed with its key', async () => {
      const p = sites[0]!;
      const keys = new ParticipantHome(p.home).keys();
      const res = await call(participantRequestHeaders(keys.signing, { method: 'GET', path: path(), participantId: p.participantId, time: Date.now() }));
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({ queryId: queries[0], index: await closingIndex(queries[0]!) });
    });

    it('refuses a request signed with another participant’s key', async () => {
      const other = new ParticipantHome(sites[1]!.home).keys();
      const res = await call(participantRequestHeaders(other.signing, { method: 'GET', path: path(), participantId: sites[0]!.participantId, time: Date.now() }));
      expect(res.status).toBe(401);
      expect(((await res.json()) as { message: string }).message).toMatch(/does not verify/);
    });

    it('refuses a signed request replayed on another query', async () => {
      // The same headers are good for the query they were signed for, and for no other: the path is signed.
      const headers = signedBy(sites[0]!, pathFor(otherQuery));
      const honest = await call(headers, pathFor(otherQuery));
      expect([honest.status, ((await honest.json()) as { queryId: string }).queryId]).toEqual([200, otherQuery]);
      expect(await refusal(await call(headers, path()))).toEqual([401, 'unauthenticated', 'participant request refused: request signature does not verify with the participant’s registered key']);
    });

    it('refuses a stale request, and one from the future', async () => {
      const window = `participant request refused: request time is more than ${PARTICIPANT_REQUEST_MAX_SKEW_MS / 60_000} minutes from the coordinator's clock; check this machine's clock`;
      // Just inside the window it is served: the refusals below are the clock's, not the signature's.
      const inside = await call(signedBy(sites[0]!, path(), Date.now() - PARTICIPANT_REQUEST_MAX_SKEW_MS + 30_000));
      expect(inside.status).toBe(200);
      expect(await refusal(await call(signedBy(sites[0]!, path(), Date.now() - 2 * PARTICIPANT_REQUEST_MAX_SKEW_MS)))).toEqual([401, 'unauthenticated', window]);
      expect(await refusal(await call(signedBy(sites[0]!, path(), Date.now() + 2 * PARTICIPANT_REQUEST_MAX_SKEW_MS)))).toEqual([401, 'unauthenticated', window]);
    });

    it('is not open to API keys or to anonymous callers', async () => {
      expect((await call({ authorization: `Bearer ${cluster.adminToken}` })).status).toBe(403);
      expect((await call({})).status).toBe(401);
    });
  });
});
