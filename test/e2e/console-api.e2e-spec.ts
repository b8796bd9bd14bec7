import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { nonceCommitment, participantRequestHeaders } from '@confide/protocol';
import { ParticipantHome } from '../../apps/participant/src/home';
import { Cluster, until, type ParticipantProcess } from '../support/cluster';
import { generateSalaryCsv, syntheticSalaryStudy } from '../support/synthetic';

// Issue 14, the browser console's routes: a study's privacy budget (GET /v1/studies/:name), the health page
// (GET /v1/status/health) and live query status over server-sent events (GET /v1/queries/events), read from a real
// coordinator on SQLite with three real participant workers and a private Redis, as the console's fetch() reads them.

/** Each DP query spends ε = 0.1 of 1: three of them spend exactly 0.3, which doubles would make 0.30000000000000004. */
const DP = { mechanism: 'laplace', epsilon: 0.1, budget: { epsilon: 1 } };
const COUNT = ['--stat', 'count', '--field', 'yrs_since_phd'];

interface View {
  id: string;
  status: string;
  round: number;
  awaitingNonce: boolean;
  results: { stat: string; value: number | null }[] | null;
  ledgerIndex: number | null;
  failureReason: string | null;
}

/**
 * A server-sent event stream read as the console reads it: fetch() with the bearer key in the Authorization header
 * (EventSource cannot send one), parsed per the WHATWG event stream format.
 */
class Stream {
  readonly events: { type: string; data: string }[] = [];
  readonly comments: string[] = [];
  private buffer = '';
  private ended = false;

  private constructor(
    readonly res: Response,
    private readonly abort: AbortController,
  ) {}

  static async open(url: string, token: string): Promise<Stream> {
    const abort = new AbortController();
    const res = await fetch(url, { headers: { authorization: `Bearer ${token}` }, signal: abort.signal });
    const s = new Stream(res, abort);
    if (res.ok && res.body) void s.read(res.body);
    return s;
  }

  private async read(body: ReadableStream<Uint8Array>): Promise<void> {
    const decoder = new TextDecoder();
    try {
      for await (const chunk of body) {
        this.buffer += decoder.decode(chunk, { stream: true });
        let end: number;
        while ((end = this.buffer.indexOf('\n\n')) >= 0) {
          const frame = this.buffer.slice(0, end);
          this.buffer = this.buffer.slice(end + 2);
          let type = 'message';
          const data: string[] = [];
          for (const line of frame.split('\n')) {
            if (line.startsWith(':')) this.comments.push(line.slice(1).trim());
            else if (line.startsWith('event: ')) type = line.slice(7);
            else if (line.startsWith('data: ')) data.push(line.slice(6));
          }
          if (data.length > 0) this.events.push({ type, data: data.join('\n') });
        }
      }
    } catch {
      // Aborted by the test.
    } finally {
      this.ended = true;
    }
  }

  /** The first `queries` event from index `from` on whose views satisfy `ok`. */
  next(what: string, ok: (views: View[]) => boolean, from = 0, timeoutMs = 30_000): Promise<{ views: View[]; index: number }> {
    return until(what, timeoutMs, () => {
      for (let i = from; i < this.events.length; i++) {
        const e = this.events[i]!;
        const views = JSON.parse(e.data) as View[];
        if (e.type === 'queries' && ok(views)) return Promise.resolve({ views, index: i });
      }
      return Promise.resolve(this.ended ? Promise.reject(new Error(`the stream ended waiting for ${what}`)) : undefined);
    }, { intervalMs: 50 });
  }

  close(): void {
    this.abort.abort();
  }
}

describe('console API: study privacy budget, health page, live query status (three participant processes, SQLite)', () => {
  let cluster: Cluster;
  let researcher: string;
  let auditor: string;
  const sites: ParticipantProcess[] = [];
  let first = '';

  const health = () => cluster.get<{ database: string; redis: string; connections: { name: string; state: string }[]; queues: unknown; failures: { windowSeconds: number; byReason: unknown[] }; recent: Record<string, unknown>[]; eventStreams: number }>('/v1/status/health', auditor);

  beforeAll(async () => {
    cluster = await Cluster.start({ database: 'sqlite' });
    await cluster.createStudy({ ...syntheticSalaryStudy(), privacy: { dp: DP } } as { name: string });
    await cluster.createStudy({ ...syntheticSalaryStudy(), name: 'plain' });
    for (let i = 1; i <= 3; i++) {
      const file = join(cluster.dir, `site-${i}.csv`);
      writeFileSync(file, generateSalaryCsv(2600 + i, 30));
      const p = await cluster.enroll('salaries', `site-${i}`, file);
      await cluster.run(p);
      sites.push(p);
    }
    researcher = await cluster.apiKey('researcher');
    auditor = await cluster.apiKey('auditor');
    const ok = await cluster.cliJson(['query', '--study', 'salaries', ...COUNT, '--wait'], researcher);
    expect(ok.status).toBe('succeeded');
    first = String(ok.id);
  }, 180_000);

  afterAll(() => cluster?.stop(), 60_000);

  it("shows a study's DP settings, budget, what its one query spent and what remains; a study without DP has none", async () => {
    const dp = await cluster.get<Record<string, unknown>>('/v1/studies/salaries', auditor);
    expect(dp).toMatchObject({ name: 'salaries', participants: 3, minParticipants: 3 });
    expect(dp.privacy).toEqual({ dp: DP, budget: { epsilon: 1, delta: 0 }, spent: { epsilon: 0.1, delta: 0, queries: 1 }, remaining: { epsilon: 0.9, delta: 0 } });
    const plain = await cluster.get<Record<string, unknown>>('/v1/studies/plain', researcher);
    expect(plain.privacy).toEqual({ dp: null, budget: null, spent: { epsilon: 0, delta: 0, queries: 0 }, remaining: null });
  });

  it('streams the newest queries on connect, then a submitted query running and then succeeded with its results and ledger index', async () => {
    const stream = await Stream.open(`${cluster.url}/v1/queries/events?study=salaries&limit=5`, auditor);
    try {
      expect(stream.res.status).toBe(200);
      expect(stream.res.headers.get('content-type')).toMatch(/^text\/event-stream/);
      expect(stream.res.headers.get('cache-control')).toContain('no-cache');
      expect(stream.res.headers.get('x-accel-buffering')).toBe('no');
      expect(stream.res.headers.get('content-encoding')).toBeNull();
      const hello = await stream.next('the first queries event', () => true);
      expect(hello.index).toBe(0);
      expect(hello.views.map((v) => [v.id, v.status])).toEqual([[first, 'succeeded']]);
      // The full view, as GET /v1/queries/:id shows it.
      expect(hello.views[0]).toEqual(await cluster.get(`/v1/queries/${first}`, auditor));

      // Submitted by hand, so the query waits for its committee nonce until the stream has shown it running.
      const nonce = randomBytes(32).toString('hex');
      const post = (path: string, body: unknown) =>
        fetch(`${cluster.url}${path}`, { method: 'POST', headers: { authorization: `Bearer ${researcher}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
      const submitted = await post('/v1/queries', { study: 'salaries', protocol: 'shamir', select: [{ stat: 'count', field: 'yrs_since_phd' }], seedCommitment: nonceCommitment(nonce) });
      expect(submitted.status).toBe(201);
      const id = String(((await submitted.json()) as { id: string }).id);
      const running = await stream.next('the new query running', (vs) => vs[0]?.id === id, hello.index + 1);
      expect(running.views[0]).toMatchObject({ status: 'running', awaitingNonce: true, results: null, ledgerIndex: null });
      expect(running.views.map((v) => v.id)).toEqual([id, first]);
      expect((await post(`/v1/queries/${id}/nonce`, { nonce })).status).toBe(201);
      const done = await stream.next('the new query succeeded', (vs) => vs[0]?.id === id && vs[0].status === 'succeeded', running.index + 1);
      expect(done.views[0]).toMatchObject({ status: 'succeeded', results: [expect.objectContaining({ stat: 'count', value: expect.any(Number) as number })], ledgerIndex: expect.any(Number) as number });
      expect(done.views[0]).toEqual(await cluster.get(`/v1/queries/${id}`, researcher));
      // Only on change: every event after the first differs from the one before it.
      const data = stream.events.map((e) => e.data);
      for (let i = 1; i < data.length; i++) expect(data[i]).not.toBe(data[i - 1]);
    } finally {
      stream.close();
    }
  }, 60_000);

  it('refuses the stream without an API key, with a participant-signed request, and for an unknown study', async () => {
    const none = await fetch(`${cluster.url}/v1/queries/events`);
    expect(none.status).toBe(401);
    expect(await none.json()).toMatchObject({ error: 'unauthenticated' });
    const path = '/v1/queries/events';
    const signed = await fetch(`${cluster.url}${path}`, {
      headers: participantRequestHeaders(new ParticipantHome(sites[0]!.home).keys().signing, { method: 'GET', path, participantId: sites[0]!.participantId, time: Date.now() }),
    });
    // A participant holds no API key: the route takes a bearer key only, like every route without @ParticipantAuth.
    expect(signed.status).toBe(401);
    expect(signed.headers.get('content-type')).toMatch(/^application\/json/);
    const unknown = await fetch(`${cluster.url}/v1/queries/events?study=nope`, { headers: { authorization: `Bearer ${auditor}` } });
    expect(unknown.status).toBe(404);
    const tooMany = await fetch(`${cluster.url}/v1/queries/events?limit=101`, { headers: { authorization: `Bearer ${auditor}` } });
    expect(tooMany.status).toBe(400);
  });

  it('stops polling for streams whose clients left: the open stream count goes back to 0', async () => {
    expect((await health()).eventStreams).toBe(0);
    const streams = await Promise.all(Array.from({ length: 12 }, () => Stream.open(`${cluster.url}/v1/queries/events`, auditor)));
    await Promise.all(streams.map((s) => s.next('the first event', () => true)));
    expect((await health()).eventStreams).toBe(12);
    for (const s of streams) s.close();
    await until('every stream to stop', 10_000, async () => ((await health()).eventStreams === 0 ? true : undefined));
  }, 60_000);

  it('health: database and Redis up, every connection ready, the queues, and a failed query by kind and by its reason', async () => {
    // site-3 stops (and says so): a query submitted anyway fails at its 3 s deadline with 2 of the 3 answers it needs.
    await cluster.kill(sites[2]!, 'SIGTERM');
    const r = await cluster.cli(['query', '--study', 'salaries', ...COUNT, '--deadline', '3', '--allow-offline', '--wait', '--json'], researcher);
    const failed = String((JSON.parse(r.stderr.split('\n')[0]!) as { id: string }).id);
    const view = await cluster.waitForQuery(failed, researcher);
    expect(view.status).toBe('failed');

    const h = await health();
    expect([h.database, h.redis]).toEqual(['up', 'up']);
    expect(h.connections.length).toBeGreaterThan(1);
    expect(h.connections.every((c) => c.state === 'ready' && c.name.length > 0)).toBe(true);
    // site-3's round-1 task waits in its queue, never taken.
    expect(h.queues).toEqual({ tasks: { waiting: 1, active: 0, delayed: 0 }, aggregation: { waiting: 0, active: 0, delayed: 0 } });
    expect(h.failures).toEqual({ windowSeconds: 3600, byReason: [{ protocol: 'shamir', reason: 'too_few_answers', count: 1 }] });
    expect(h.recent).toEqual([{ queryId: failed, study: 'salaries', protocol: 'shamir', reason: 'too_few_answers', message: view.failureReason, finishedAt: view.finishedAt }]);
    expect(String(view.failureReason)).toMatch(/^round 1: 2 of 3 participants answered, at least 3 needed/);
    // The same kind /metrics counts.
    const metrics = await (await fetch(`${cluster.url}/metrics`, { headers: { authorization: `Bearer ${auditor}` } })).text();
    expect(metrics).toContain('confide_query_failures_total{protocol="shamir",reason="too_few_answers"} 1');
    // The OpenAPI document's response schema names exactly what the route answers.
    const doc = (await (await fetch(`${cluster.url}/docs-json`)).json()) as { paths: Record<string, { get?: { responses: Record<string, { content?: Record<string, { schema: { properties?: object } }> }> } }> };
    const documented = doc.paths['/v1/status/health']?.get?.responses['200']?.content?.['application/json']?.schema.properties ?? {};
    expect(Object.keys(documented).sort()).toEqual(Object.keys(h).sort());
    // Admins and auditors only.
    expect((await fetch(`${cluster.url}/v1/status/health`, { headers: { authorization: `Bearer ${researcher}` } })).status).toBe(403);

    // Three queries have spent 0.1 each, exactly: the failed one too, as it was charged before anything ran.
    const study = await cluster.get<{ privacy: unknown }>('/v1/studies/salaries', auditor);
    expect(study.privacy).toMatchObject({ spent: { epsilon: 0.3, delta: 0, queries: 3 }, remaining: { epsilon: 0.7, delta: 0 } });
  }, 90_000);

  it('health reports Redis down, with no queue depths, instead of refusing with 503', async () => {
    await cluster.killRedis();
    type Health = { database: string; redis: string; queues: unknown; connections: { state: string }[] };
    // Every answer while Redis is down is a 200 saying so; the connections' own states follow as ioredis sees the close.
    const h = await until('a connection to show Redis gone', 10_000, async () => {
      const res = await fetch(`${cluster.url}/v1/status/health`, { headers: { authorization: `Bearer ${auditor}` } });
      expect(res.status).toBe(200);
      const body = (await res.json()) as Health;
      expect([body.database, body.redis, body.queues]).toEqual(['up', 'down', null]);
      return body.connections.some((c) => c.state !== 'ready') ? body : undefined;
    }, { tolerant: false });
    expect(h.connections.length).toBeGreaterThan(1);
    // /health, for a load balancer, still says 503.
    expect((await fetch(`${cluster.url}/health`)).status).toBe(503);
  }, 30_000);
});
