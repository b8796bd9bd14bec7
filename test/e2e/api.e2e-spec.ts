import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { generateKeyPair, publicKeyBase64Url } from '@confide/crypto';
import { signEnrollStatement } from '@confide/protocol';
import { generateRedisPassword, hashRedisPassword } from '@confide/queue';
import { ROOT } from '../support/cli';
import { Cluster } from '../support/cluster';
import { closeConnection } from '../support/redis';
import { syntheticSalaryStudy } from '../support/synthetic';

// DESIGN.md "Interfaces": REST under /v1 with OpenAPI at /docs, JSON errors with a stable shape, bearer API keys
// with roles, default deny. Every route the coordinator serves is taken from its own OpenAPI document, so a new
// route that forgets its guard fails here; the hard-coded table below checks that enumeration itself.

type Role = 'admin' | 'researcher' | 'auditor';
const ROLES: readonly Role[] = ['admin', 'researcher', 'auditor'];
type Access = readonly Role[] | 'invitation' | 'public';

/** Every route, as `METHOD /path` in OpenAPI form, and who may call it. */
const ROUTES: Readonly<Record<string, Access>> = {
  'GET /health': 'public',
  'GET /metrics': ['admin', 'auditor'],
  // Counts per study and the ledger size, for `confide admin status` (test/e2e/status-views).
  'GET /v1/status': ['admin', 'auditor'],
  // The console's health page: dependencies, queues, recent failures (test/e2e/console-api).
  'GET /v1/status/health': ['admin', 'auditor'],
  'POST /v1/studies': ['admin'],
  'GET /v1/studies': ['admin', 'researcher', 'auditor'],
  'GET /v1/studies/{name}': ['admin', 'researcher', 'auditor'],
  'POST /v1/studies/{name}/invitations': ['admin'],
  'POST /v1/api-keys': ['admin'],
  // Listing and revoking keys (test/e2e/cli-views): admins only.
  'GET /v1/api-keys': ['admin'],
  'POST /v1/api-keys/{id}/revoke': ['admin'],
  // Names, last seen and online state of a study's participants (test/e2e/cli-views).
  'GET /v1/studies/{name}/participants': ['admin', 'researcher', 'auditor'],
  'GET /v1/queries': ['admin', 'researcher', 'auditor'],
  'POST /v1/enroll': 'invitation',
  // What an invitation is for, before it is used (test/e2e/enrollment): its token is the bearer.
  'GET /v1/invitation': 'invitation',
  'POST /v1/queries': ['admin', 'researcher'],
  // Shamir: the submitting researcher reveals its committee nonce (test/e2e/hostile-coordinator); others get 403.
  'POST /v1/queries/{id}/nonce': ['admin', 'researcher'],
  'GET /v1/queries/{id}': ['admin', 'researcher', 'auditor'],
  // Live query status as server-sent events, for the console (test/e2e/console-api).
  'GET /v1/queries/events': ['admin', 'researcher', 'auditor'],
  // Paillier: and then only for the key that submitted the query (test/e2e/paillier).
  'GET /v1/queries/{id}/aggregate': ['admin', 'researcher', 'auditor'],
  'POST /v1/queries/{id}/decryption': ['admin', 'researcher'],
  'POST /v1/queries/{id}/partial-decryptions': ['admin', 'researcher', 'auditor'],
  'GET /v1/events': ['admin', 'auditor'],
  'GET /v1/coordinator': ['admin', 'researcher', 'auditor'],
  'GET /v1/ledger/checkpoint': ['admin', 'auditor'],
  'GET /v1/ledger/public-key': ['admin', 'researcher', 'auditor'],
  'GET /v1/ledger/entries': ['admin', 'auditor'],
  // The console's ledger page: entries newest first, by type and query (test/e2e/console).
  'GET /v1/ledger/entries/search': ['admin', 'auditor'],
  // The console's login: the key's role, to show admin actions to admins only (test/e2e/console).
  'GET /v1/whoami': ['admin', 'researcher', 'auditor'],
  'GET /v1/ledger/proof/inclusion': ['admin', 'researcher', 'auditor'],
  'GET /v1/ledger/proof/consistency': ['admin', 'researcher', 'auditor'],
  // Participants only, by a request signed with their enrolled key (test/e2e/receipts): no API key may call it.
  'GET /v1/ledger/receipt': [],
  'GET /v1/ledger/study': [],
  // Removing a study's participant (test/e2e/enrollment-lifecycle).
  'DELETE /v1/studies/{name}/participants/{participant}': ['admin'],
  // A participant's own maximum record count, signed with its enrolled key (test/e2e/enrollment-lifecycle).
  'POST /v1/participant/max-records': [],
  // A worker's heartbeat, signed with its enrolled key (test/e2e/heartbeats).
  'POST /v1/participant/heartbeat': [],
};

const STUDY = syntheticSalaryStudy().name;
const UNKNOWN_QUERY = `q${'0123456789abcdef'.repeat(2).slice(0, 24)}`;

/** The id of the study the tests enroll in: an enrollment is signed for it. */
let studyId = '';

/** Fresh public keys as base64url, signed with the new signing key as `confide participant enroll` sends them. */
const enrollBody = () => {
  const signing = generateKeyPair('ed25519');
  const body = {
    encryptionKey: publicKeyBase64Url(generateKeyPair('x25519').publicKey),
    signingKey: publicKeyBase64Url(signing.publicKey),
    maxRecords: 100,
    redisPasswordSha256: hashRedisPassword(generateRedisPassword()),
  };
  return { ...body, signature: signEnrollStatement(signing, { ...body, studyId }) };
};
const queryBody = { study: STUDY, protocol: 'shamir', select: [{ stat: 'mean', field: 'salary' }], seedCommitment: 'c0'.repeat(32) };

/** A request body each route accepts, so that a refusal in the access checks can only be the guard's. */
const VALID_BODIES: Readonly<Record<string, () => unknown>> = {
  'POST /v1/studies': () => ({ ...syntheticSalaryStudy(), name: 'refused-study' }),
  'POST /v1/studies/{name}/invitations': () => ({ participant: 'refused participant' }),
  'POST /v1/api-keys': () => ({ role: 'admin' }),
  'POST /v1/enroll': enrollBody,
  'POST /v1/queries': () => queryBody,
  'POST /v1/queries/{id}/nonce': () => ({ nonce: 'ab'.repeat(32) }),
};

interface Reply {
  readonly status: number;
  readonly type: string;
  readonly text: string;
  readonly json: unknown;
}

/** The problem with an error reply, or undefined when it is `{error, message, requestId}` and nothing else. */
function errorShapeProblem(reply: Reply, error?: string): string | undefined {
  const body = reply.json as Record<string, unknown> | undefined;
  const text = reply.text.slice(0, 300);
  if (!reply.type.startsWith('application/json') || typeof body !== 'object' || body === null) return `not a JSON object: ${text}`;
  if (Object.keys(body).sort().join() !== 'error,message,requestId') return `keys ${Object.keys(body).join()}: ${text}`;
  if (typeof body.error !== 'string' || typeof body.message !== 'string' || body.message === '') return `error/message not strings: ${text}`;
  if (typeof body.requestId !== 'string' || !/^[0-9a-f-]{36}$/.test(body.requestId)) return `requestId ${String(body.requestId)}`;
  if (error !== undefined && body.error !== error) return `error ${body.error}, expected ${error}`;
  return undefined;
}

describe('coordinator HTTP API: routes, authentication, authorisation and input validation (sqlite)', () => {
  let cluster: Cluster;
  const keys = {} as Record<Role, string>;
  const enrolled: string[] = [];

  async function call(method: string, path: string, opts: { token?: string | null; authorization?: string; body?: unknown; raw?: string } = {}): Promise<Reply> {
    const headers: Record<string, string> = {};
    const authorization = opts.authorization ?? (opts.token ? `Bearer ${opts.token}` : undefined);
    if (authorization !== undefined) headers.authorization = authorization;
    let body: string | undefined = opts.raw;
    if (opts.body !== undefined) body = JSON.stringify(opts.body);
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(`${cluster.url}${path}`, { method, headers, body });
    // An event stream never ends: its status and headers are the answer, and the client leaves.
    if (res.headers.get('content-type')?.startsWith('text/event-stream')) {
      await res.body?.cancel();
      return { status: res.status, type: res.headers.get('content-type') ?? '', text: '', json: undefined };
    }
    const text = await res.text();
    let json: unknown;
    try {
      json = JSON.parse(text) as unknown;
    } catch {
      json = undefined;
    }
    return { status: res.status, type: res.headers.get('content-type') ?? '', text, json };
  }

  /** The documented routes, from the OpenAPI document the coordinator serves. */
  async function documentedRoutes(): Promise<string[]> {
    const doc = (await call('GET', '/docs-json')).json as { paths: Record<string, Record<string, unknown>> };
    return Object.entries(doc.paths).flatMap(([path, operations]) => Object.keys(operations).map((method) => `${method.toUpperCase()} ${path}`));
  }

  beforeAll(async () => {
    cluster = await Cluster.start({ database: 'sqlite' });
    const created = await call('POST', '/v1/studies', { token: cluster.adminToken, body: syntheticSalaryStudy() });
    if (created.status !== 201) throw new Error(`creating the study: ${created.status} ${created.text}`);
    studyId = (created.json as { id: string }).id;
    for (const role of ROLES) {
      const r = await call('POST', '/v1/api-keys', { token: cluster.adminToken, body: { role } });
      if (r.status !== 201) throw new Error(`creating a ${role} key: ${r.status} ${r.text}`);
      keys[role] = (r.json as { token: string }).token;
    }
  }, 60_000);

  afterAll(async () => {
    // Participants enrolled over HTTP here got Redis ACL users; Cluster.stop() removes only those it enrolled.
    const admin = new Redis(cluster.redisUrl);
    for (const id of enrolled) await admin.call('ACL', 'DELUSER', `confide-${id}`).catch(() => 0);
    await closeConnection(admin);
    await cluster?.stop();
  }, 60_000);

  it('documents exactly the expected routes in its OpenAPI document (GET /docs-json, no token), one per route handler in the source', async () => {
    const reply = await call('GET', '/docs-json');
    expect(reply.status).toBe(200);
    expect((reply.json as { openapi: string }).openapi).toMatch(/^3\./);
    expect((await documentedRoutes()).sort()).toEqual(Object.keys(ROUTES).sort());

    // A handler hidden from the document (@ApiExcludeEndpoint) would escape the checks below: count the handlers.
    const sources = (dir: string): string[] =>
      readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') && !e.name.endsWith('.spec.ts') ? [join(dir, e.name)] : []));
    const handlers = sources(join(ROOT, 'apps/coordinator/src')).flatMap((f) => readFileSync(f, 'utf8').match(/^\s*@(Get|Post|Put|Patch|Delete|All|Head|Options|Search|Sse)\(/gm) ?? []);
    expect(handlers).toHaveLength(Object.keys(ROUTES).length);
  });

  it('documents the status view as counts only: GET /v1/status answers what its OpenAPI response schema says', async () => {
    type Schema = { type?: string; properties?: Record<string, Schema>; items?: Schema };
    const doc = (await call('GET', '/docs-json')).json as { paths: Record<string, Record<string, { responses: Record<string, { content?: Record<string, { schema: Schema }> }> }>> };
    const schema = doc.paths['/v1/status']?.get?.responses['200']?.content?.['application/json']?.schema;
    expect(Object.keys(schema?.properties ?? {}).sort()).toEqual(['ledgerSize', 'onlineWindowSeconds', 'studies', 'windowSeconds']);
    const row = schema?.properties?.studies?.items;
    expect(Object.entries(row?.properties ?? {}).map(([k, v]) => `${k}:${v.type ?? ''}`).sort()).toEqual(
      ['failedLastHour:integer', 'name:string', 'online:integer', 'participants:integer', 'running:integer', 'succeededLastHour:integer'],
    );
    const served = (await call('GET', '/v1/status', { token: keys.auditor })).json as { studies: Record<string, unknown>[] } & Record<string, unknown>;
    expect(Object.keys(served).sort()).toEqual(Object.keys(schema!.properties!).sort());
    expect(served.studies.map((s) => Object.keys(s).sort())).toEqual([Object.keys(row!.properties!).sort()]);
  });

  it('serves the OpenAPI UI at /docs without a token', async () => {
    const reply = await call('GET', '/docs');
    expect(reply.status).toBe(200);
    expect(reply.type).toMatch(/^text\/html/);
    expect(reply.text).toMatch(/swagger-ui/i);
  });

  it('answers /health without a token: 200 with the database and Redis ok', async () => {
    const reply = await call('GET', '/health');
    expect(reply.status).toBe(200);
    expect(reply.json).toEqual({ status: 'ok', database: 'ok', redis: 'ok', connections: expect.any(Number) as number });
  });

  it('serves Prometheus metrics to an auditor key: counts only, in the text exposition format', async () => {
    const reply = await call('GET', '/metrics', { token: keys.auditor });
    expect(reply.status).toBe(200);
    const { total } = (await call('GET', '/v1/events?limit=1', { token: keys.auditor })).json as { total: number };
    expect(reply.text).toContain('# TYPE confide_ledger_entries gauge');
    expect(reply.text).toMatch(new RegExp(`^confide_ledger_entries ${total}$`, 'm'));
    expect(reply.text).toMatch(/^confide_participants \d+$/m);
    expect(reply.text).toMatch(/^process_resident_memory_bytes \d+$/m);
    expect(reply.text).not.toContain(cluster.adminToken);
  });

  it('refuses every documented route but /health without a token or with one that is not a key (401), and with a key of a role the route does not allow (403), all without a trace', async () => {
    const eventsBefore = ((await call('GET', '/v1/events?limit=1', { token: cluster.adminToken })).json as { total: number }).total;
    const problems: string[] = [];
    const expectStatus = (what: string, reply: Reply, status: number, error: string): void => {
      const shape = errorShapeProblem(reply, error);
      if (reply.status !== status || shape) problems.push(`${what}: expected ${status} ${error}, got ${reply.status} ${shape ?? ''}`);
    };
    const routes = await documentedRoutes();
    expect(routes.length).toBeGreaterThan(1);
    for (const route of routes) {
      const access = ROUTES[route];
      if (access === 'public') continue;
      const [method, template] = route.split(' ') as [string, string];
      const path = template.replace('{name}', STUDY).replace('{id}', UNKNOWN_QUERY).replace('{participant}', 'nobody');
      const valid = VALID_BODIES[route];
      const send = (opts: { token?: string; authorization?: string }) => call(method, path, { ...opts, body: valid?.() ?? (method === 'GET' ? undefined : {}) });

      expectStatus(`${route} without a token`, await send({}), 401, 'unauthenticated');
      expectStatus(`${route} with a token that is no key`, await send({ token: `cfd_key_${randomBytes(32).toString('base64url')}` }), 401, 'unauthenticated');
      expectStatus(`${route} with a Basic authorization`, await send({ authorization: `Basic ${Buffer.from('admin:admin').toString('base64')}` }), 401, 'unauthenticated');
      expectStatus(`${route} with an empty Bearer`, await send({ authorization: 'Bearer' }), 401, 'unauthenticated');
      expectStatus(`${route} with an oversized bearer`, await send({ token: 'A'.repeat(600) }), 401, 'unauthenticated');

      if (access === 'invitation') {
        // An API key, even the admin's, is not an invitation.
        for (const token of [cluster.adminToken, ...ROLES.map((r) => keys[r])]) expectStatus(`${route} with an API key as the invitation`, await send({ token }), 401, 'unauthenticated');
        continue;
      }
      if (access === undefined) continue; // not in the table: the enumeration test fails, the 401s above still ran
      for (const role of ROLES) {
        if (access.includes(role)) {
          // Allowed: past the guard (an empty body is then a 400, a GET answers), never 401/403/5xx.
          const reply = await call(method, path, { token: keys[role], body: method === 'GET' ? undefined : {} });
          if ([401, 403].includes(reply.status) || reply.status >= 500) problems.push(`${route} as ${role}: allowed, got ${reply.status} ${reply.text}`);
        } else {
          expectStatus(`${route} as ${role}`, await send({ token: keys[role] }), 403, 'forbidden');
        }
      }
    }
    expect(problems).toEqual([]);

    // Nothing refused left a trace: no study, no key, no enrollment, no query in the event log.
    const studies = (await call('GET', '/v1/studies', { token: cluster.adminToken })).json as { name: string }[];
    expect(studies.map((s) => s.name)).toEqual([STUDY]);
    expect(((await call('GET', '/v1/events?limit=1', { token: cluster.adminToken })).json as { total: number }).total).toBe(eventsBefore);
  }, 60_000);

  it('answers malformed requests with 400 naming the field (never 500), an unknown query with 404 and a taken study name with 409, all as {error, message, requestId}', async () => {
    const invitation = (await call('POST', `/v1/studies/${STUDY}/invitations`, { token: cluster.adminToken, body: { participant: 'site-a' } })).json as { token: string };
    const study = syntheticSalaryStudy();
    const numberField = { name: 'a', type: 'number', min: 0, max: 10, decimals: 0 };
    const cases: { what: string; method: string; path: string; token: string; body?: unknown; raw?: string; status: number; error?: string; message: RegExp }[] = [
      { what: 'query with an unknown field', method: 'POST', path: '/v1/queries', token: keys.researcher, body: { ...queryBody, bogus: 1 }, status: 400, message: /"bogus"/ },
      { what: 'query with an unknown protocol', method: 'POST', path: '/v1/queries', token: keys.researcher, body: { ...queryBody, protocol: 'homomorphic' }, status: 400, message: /^protocol: / },
      { what: 'paillier query without a public key', method: 'POST', path: '/v1/queries', token: keys.researcher, body: { ...queryBody, protocol: 'paillier' }, status: 400, message: /^publicKey: / },
      { what: 'shamir query with a public key', method: 'POST', path: '/v1/queries', token: keys.researcher, body: { ...queryBody, publicKey: { n: 'AQAB' } }, status: 400, message: /^publicKey: only the paillier protocol/ },
      { what: 'paillier query with a malformed public key', method: 'POST', path: '/v1/queries', token: keys.researcher, body: { ...queryBody, protocol: 'paillier', publicKey: { n: 'not base64url!' } }, status: 400, message: /^publicKey\.n: / },
      { what: 'histogram on a category field', method: 'POST', path: '/v1/queries', token: keys.researcher, body: { ...queryBody, select: [{ stat: 'histogram', field: 'rank', bins: { min: 0, max: 10, width: 1 } }] }, status: 400, message: /histogram needs a number field; "rank" is a category field/ },
      { what: 'histogram with width 0', method: 'POST', path: '/v1/queries', token: keys.researcher, body: { ...queryBody, select: [{ stat: 'histogram', field: 'salary', bins: { min: 0, max: 10, width: 0 } }] }, status: 400, message: /width/ },
      { what: 'regression on a category field', method: 'POST', path: '/v1/queries', token: keys.researcher, body: { ...queryBody, select: [{ stat: 'regression', x: 'rank', y: 'salary' }] }, status: 400, message: /regression needs number fields; "rank" \(x\) is a category field/ },
      { what: 'contradictory where', method: 'POST', path: '/v1/queries', token: keys.researcher, body: { ...queryBody, where: [{ field: 'yrs_since_phd', op: '>=', value: 40 }, { field: 'yrs_since_phd', op: '<', value: 30 }] }, status: 400, message: /can never all hold/ },
      { what: 'group-by on a numeric field', method: 'POST', path: '/v1/queries', token: keys.researcher, body: { ...queryBody, groupBy: 'salary' }, status: 400, message: /groupBy/ },
      { what: 'query without select', method: 'POST', path: '/v1/queries', token: keys.researcher, body: { study: STUDY, protocol: 'shamir' }, status: 400, message: /^select: / },
      { what: 'query with stat median', method: 'POST', path: '/v1/queries', token: keys.researcher, body: { ...queryBody, select: [{ stat: 'median', field: 'salary' }] }, status: 400, message: /^select\.0\.stat: / },
      { what: 'query on a field the study lacks', method: 'POST', path: '/v1/queries', token: keys.researcher, body: { ...queryBody, select: [{ stat: 'mean', field: 'bonus' }] }, status: 400, message: /select\[0\]\.field: unknown field "bonus"/ },
      { what: 'query with threshold 0', method: 'POST', path: '/v1/queries', token: keys.researcher, body: { ...queryBody, threshold: 0 }, status: 400, message: /^threshold: / },
      { what: 'query that is not JSON', method: 'POST', path: '/v1/queries', token: keys.researcher, raw: '{"study": "salaries", protocol', status: 400, error: 'bad_request', message: /JSON/ },
      { what: 'study with min > max', method: 'POST', path: '/v1/studies', token: cluster.adminToken, body: { name: 's1', fields: [{ ...numberField, min: 11 }] }, status: 400, message: /fields\[0\]\.min: min 11 is greater than max 10/ },
      { what: 'study with duplicate field names', method: 'POST', path: '/v1/studies', token: cluster.adminToken, body: { name: 's1', fields: [numberField, numberField] }, status: 400, message: /fields\[1\]\.name: duplicate field name "a"/ },
      { what: 'study with an unknown key', method: 'POST', path: '/v1/studies', token: cluster.adminToken, body: { name: 's1', fields: [numberField], owner: 'x' }, status: 400, message: /unknown key "owner"/ },
      { what: 'study with a name no route can address', method: 'POST', path: '/v1/studies', token: cluster.adminToken, body: { name: 'my study/2', fields: [numberField] }, status: 400, message: /^name: / },
      { what: 'study that is an array', method: 'POST', path: '/v1/studies', token: cluster.adminToken, body: [study], status: 400, error: 'bad_request', message: /record|object/ },
      { what: 'study name taken', method: 'POST', path: '/v1/studies', token: cluster.adminToken, body: study, status: 409, error: 'conflict', message: /"salaries" already exists/ },
      { what: 'API key with role root', method: 'POST', path: '/v1/api-keys', token: cluster.adminToken, body: { role: 'root' }, status: 400, error: 'bad_request', message: /^role: / },
      { what: 'enrollment with a 10-byte key', method: 'POST', path: '/v1/enroll', token: invitation.token, body: { ...enrollBody(), encryptionKey: randomBytes(10).toString('base64url') }, status: 400, error: 'bad_request', message: /^encryptionKey: / },
      { what: 'enrollment with a small-order X25519 key', method: 'POST', path: '/v1/enroll', token: invitation.token, body: { ...enrollBody(), encryptionKey: Buffer.alloc(32).toString('base64url') }, status: 400, error: 'invalid_key', message: /X25519 .*small order/ },
      { what: 'enrollment with a small-order Ed25519 key', method: 'POST', path: '/v1/enroll', token: invitation.token, body: { ...enrollBody(), signingKey: Buffer.alloc(32).toString('base64url') }, status: 400, error: 'invalid_key', message: /Ed25519 .*small order/ },
      { what: 'enrollment with extra fields', method: 'POST', path: '/v1/enroll', token: invitation.token, body: { ...enrollBody(), admin: true }, status: 400, error: 'bad_request', message: /"admin"/ },
      { what: 'enrollment with maxRecords 0', method: 'POST', path: '/v1/enroll', token: invitation.token, body: { ...enrollBody(), maxRecords: 0 }, status: 400, error: 'bad_request', message: /^maxRecords: / },
      { what: 'enrollment signed for other keys', method: 'POST', path: '/v1/enroll', token: invitation.token, body: { ...enrollBody(), signature: enrollBody().signature }, status: 400, error: 'bad_signature', message: /^enrollment refused: the enrollment is not signed by the signing key it registers$/ },
      { what: 'invitation for a malformed participant name', method: 'POST', path: `/v1/studies/${STUDY}/invitations`, token: cluster.adminToken, body: { participant: '<script>' }, status: 400, error: 'bad_request', message: /^participant: / },
      { what: 'invitation to an unknown study', method: 'POST', path: '/v1/studies/no-such-study/invitations', token: cluster.adminToken, body: { participant: 'x' }, status: 404, error: 'not_found', message: /no-such-study/ },
      { what: 'query id that is not one', method: 'GET', path: '/v1/queries/not-an-id', token: keys.researcher, status: 400, error: 'bad_request', message: /query id/ },
      { what: 'unknown query', method: 'GET', path: `/v1/queries/${UNKNOWN_QUERY}`, token: keys.researcher, status: 404, error: 'not_found', message: new RegExp(UNKNOWN_QUERY) },
      { what: 'revoking a key id that is not one', method: 'POST', path: '/v1/api-keys/not-a-key/revoke', token: cluster.adminToken, body: {}, status: 400, error: 'bad_request', message: /not an API key id/ },
      { what: 'revoking an unknown key', method: 'POST', path: '/v1/api-keys/0b0e1e3c-5d0f-4f43-9c3c-1f1e2d3c4b5a/revoke', token: cluster.adminToken, body: {}, status: 404, error: 'not_found', message: /no API key 0b0e1e3c/ },
      { what: 'queries of an unknown study', method: 'GET', path: '/v1/queries?study=no-such-study', token: keys.researcher, status: 404, error: 'not_found', message: /no-such-study/ },
      { what: 'queries with mine=yes', method: 'GET', path: '/v1/queries?mine=yes', token: keys.researcher, status: 400, error: 'bad_request', message: /^mine: / },
      { what: 'participants of an unknown study', method: 'GET', path: '/v1/studies/no-such-study/participants', token: keys.researcher, status: 404, error: 'not_found', message: /no-such-study/ },
      { what: 'events with limit 0', method: 'GET', path: '/v1/events?limit=0', token: keys.auditor, status: 400, error: 'bad_request', message: /^limit: / },
      { what: 'events with an unknown parameter', method: 'GET', path: '/v1/events?from=0', token: keys.auditor, status: 400, error: 'bad_request', message: /"from"/ },
      { what: 'study name with a bad character', method: 'GET', path: '/v1/studies/a%20b', token: keys.auditor, status: 400, error: 'bad_request', message: /letters, digits/ },
      { what: 'an unknown route', method: 'GET', path: '/v1/nothing-here', token: keys.researcher, status: 404, error: 'not_found', message: /\/v1\/nothing-here/ },
    ];
    const problems: string[] = [];
    for (const c of cases) {
      const reply = await call(c.method, c.path, { token: c.token, body: c.body, raw: c.raw });
      const message = (reply.json as { message?: unknown } | undefined)?.message;
      const shape = errorShapeProblem(reply, c.error);
      if (reply.status !== c.status || shape || typeof message !== 'string' || !c.message.test(message)) {
        problems.push(`${c.what}: expected ${c.status} ${c.error ?? ''} ${String(c.message)}, got ${reply.status} ${reply.text}`);
      }
    }
    expect(problems).toEqual([]);

    // None of the refused enrollments used up the invitation.
    const enrolledReply = await call('POST', '/v1/enroll', { token: invitation.token, body: enrollBody() });
    expect(enrolledReply.status).toBe(201);
    enrolled.push((enrolledReply.json as { participantId: string }).participantId);
    const again = await call('POST', '/v1/enroll', { token: invitation.token, body: enrollBody() });
    expect([again.status, errorShapeProblem(again, 'invitation_used')]).toEqual([409, undefined]);
  }, 60_000);

  it('creates a study whose bounds are not integers (e.g. BMI 10.5 to 80.25), and records it in the event log', async () => {
    // Regression: the event log's canonical JSON holds only safe integers, and the study row used to be written
    // before the event was refused, so this answered 500 and left a study with no "study created" event.
    const schema = { name: 'clinic', fields: [{ name: 'bmi', type: 'number', min: 10.5, max: 80.25, decimals: 2 }] };
    const created = await call('POST', '/v1/studies', { token: cluster.adminToken, body: schema });
    expect(created.status).toBe(201);
    const { id } = created.json as { id: string };
    expect(((await call('GET', '/v1/studies/clinic', { token: keys.researcher })).json as { schema: unknown }).schema).toEqual({ ...schema, minParticipants: 3, outOfRange: 'reject', privacy: { minGroupSize: 5 } });
    const { events } = (await call('GET', '/v1/events?limit=1000', { token: keys.auditor })).json as { events: { type: string; body: { studyId?: string; schema?: { fields: unknown[] } } }[] };
    const event = events.find((e) => e.type === 'study.created' && e.body.studyId === id);
    expect(event?.body.schema?.fields).toEqual([{ name: 'bmi', type: 'number', min: '10.5', max: '80.25', decimals: 2 }]);
  });

  it('logged no internal error for any request above', async () => {
    // The log reaches its file through a pipe: wait until a last, refused request's line is there, so every earlier one is too.
    const { requestId } = (await call('GET', '/v1/last-request')).json as { requestId: string };
    const deadline = Date.now() + 10_000;
    const readLog = () => readFileSync(join(cluster.dir, 'coordinator.log'), 'utf8');
    let log: string;
    while (!(log = readLog()).includes(requestId)) {
      if (Date.now() > deadline) throw new Error(`request ${requestId} never reached the coordinator's log`);
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(log.split('\n').filter((line) => line.includes('"msg":"request failed"'))).toEqual([]);
  });
});
