import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { addCiphertexts, ciphertextFromString, custodianShareFromJson, encryptFast, generateKeyPair, keyFingerprint, privateKeyFromJson, publicKeyBase64Url } from '@confide/crypto';
import { custodianPartials, decryptAggregate, participantRequestHeaders } from '@confide/protocol';
import { ParticipantHome } from '../../apps/participant/src/home';
import { Cluster, type ParticipantProcess, until } from '../support/cluster';
import { ROOT, runCli, singleJson } from '../support/cli';
import { coordinatorProxy } from '../support/proxy';
import { expectedSalaryResults, SALARY_SELECT, type StatResult } from '../support/salary-query';
import { ciphertextForms, LeakScanner, numberForms, withDecodedBase64, type Needle } from '../support/secrets';
import { generateSalaryCsv, plainStats, syntheticSalaryStudy } from '../support/synthetic';
import { queryEvents } from '../support/task-queues';

// DESIGN.md "Protocol paillier", end to end on real processes: the researcher's key is made and kept by the CLI,
// participants answer once and may leave, aggregation runs in the coordinator's aggregation worker processes,
// and the result is released only after the researcher's posted decryption re-encrypts to the aggregate.

/** Every textual form of a Paillier private key file's secrets (its prime factors). */
function paillierKeyNeedles(file: string): Needle[] {
  const json = JSON.parse(readFileSync(file, 'utf8')) as { p: string; q: string };
  return (['p', 'q'] as const).flatMap((k) => {
    const bytes = Buffer.from(json[k], 'base64url');
    const int = BigInt(`0x${bytes.toString('hex')}`);
    return [
      { name: `researcher key ${k} (base64url)`, text: json[k] },
      { name: `researcher key ${k} (base64)`, text: bytes.toString('base64').replace(/=+$/, '') },
      { name: `researcher key ${k} (hex)`, text: bytes.toString('hex') },
      { name: `researcher key ${k} (decimal)`, text: int.toString() },
    ];
  });
}

interface OpenApiRoute {
  readonly path: string;
  readonly parameters: readonly { readonly in: 'path' | 'query'; readonly name: string }[];
}

/** The @Get handlers in the coordinator's controllers: what the OpenAPI document must list at the least. */
function getHandlersInSource(): number {
  const dir = join(ROOT, 'apps/coordinator/src');
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.controller.ts'))
    .reduce((n, f) => n + (readFileSync(join(dir, f), 'utf8').match(/^\s*@Get\(/gm) ?? []).length, 0);
}


/** A response's body; of an event stream (which never ends), its first event, then the stream is cancelled. */
async function bodyOf(res: Response): Promise<string> {
  if (!res.headers.get('content-type')?.startsWith('text/event-stream') || !res.body) return res.text();
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let text = '';
  while (!text.includes('\n\n')) {
    const { value, done } = await reader.read();
    if (done) break;
    text += value;
  }
  await reader.cancel();
  return text;
}

describe('paillier end to end (SQLite)', () => {
  let cluster: Cluster;
  let researcher: string;
  let keyFile: string;
  let identityFile: string;
  const sites: ParticipantProcess[] = [];
  const texts: string[] = [];
  /** The fourth participant: enrolled, but its worker is started only after a deadline has passed. */
  let latecomer: ParticipantProcess;

  const post = async (path: string, token: string, body: unknown): Promise<{ status: number; json: Record<string, unknown> }> => {
    const res = await fetch(`${cluster.url}${path}`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
    return { status: res.status, json: (await res.json()) as Record<string, unknown> };
  };
  const getRaw = async (path: string, token: string): Promise<{ status: number; text: string }> => {
    const res = await fetch(`${cluster.url}${path}`, { headers: { authorization: `Bearer ${token}` } });
    return { status: res.status, text: await res.text() };
  };

  /**
   * Every GET route of the OpenAPI document the coordinator serves (SwaggerModule at /docs, JSON at /docs-json), with
   * its parameters. Fails when the document lists fewer GET routes than the controllers declare, so a document that
   * lost routes cannot shrink the scan unseen.
   */
  const openApiGetRoutes = async (): Promise<OpenApiRoute[]> => {
    const res = await fetch(`${cluster.url}/docs-json`);
    expect(res.status).toBe(200);
    const doc = (await res.json()) as { paths: Record<string, { get?: { parameters?: OpenApiRoute['parameters'] } }> };
    const routes = Object.entries(doc.paths).flatMap(([path, ops]) => (ops.get ? [{ path, parameters: ops.get.parameters ?? [] }] : []));
    const declared = getHandlersInSource();
    expect(declared).toBeGreaterThanOrEqual(10);
    expect(routes.length).toBeGreaterThanOrEqual(declared);
    return routes;
  };

  beforeAll(async () => {
    cluster = await Cluster.start({ database: 'sqlite' });
    const study = await cluster.createStudy(syntheticSalaryStudy());
    for (let i = 1; i <= 4; i++) {
      const csv = join(cluster.dir, `site-${i}.csv`);
      const text = generateSalaryCsv(5100 + i, 40);
      writeFileSync(csv, text);
      const p = await cluster.enroll(study, `site-${i}`, csv);
      if (i <= 3) {
        texts.push(text);
        sites.push(p);
        await cluster.run(p);
      } else {
        latecomer = p;
      }
    }
    ({ token: researcher, identityFile } = await cluster.researcher());
    keyFile = join(cluster.dir, 'researcher-paillier.json');
    const made = await cluster.cliJson(['keys', 'paillier', '--out', keyFile, '--bits', '2048'], null);
    expect(made).toMatchObject({ file: keyFile, bits: 2048, fingerprint: expect.stringMatching(/^[0-9a-f]{16}$/) as string });
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);
  }, 120_000);
  afterAll(() => cluster?.stop(), 60_000);

  let paillierResult: Record<string, unknown>;

  it('computes the same results as shamir and as the plaintext, and the private key never leaves the CLI', async () => {
    const proxy = await coordinatorProxy(cluster.url);
    try {
      const r = await runCli(['query', '--study', 'salaries', '--protocol', 'paillier', '--key', keyFile, '--identity', identityFile, ...SALARY_SELECT, '--deadline', '8', '--wait', '--json'], {
        env: { CONFIDE_URL: proxy.url, CONFIDE_TOKEN: researcher },
        timeoutMs: 90_000,
      });
      expect(r.code).toBe(0);
      paillierResult = singleJson(r.stdout);
      // The latecomer never answered: the result is over the three that did.
      expect(paillierResult).toMatchObject({ status: 'succeeded', participants: 3, results: expectedSalaryResults(texts), ledgerIndex: expect.any(Number) as number });
      // Every request the researcher's CLI made: public key, posted decryption; never a prime factor.
      const scanner = new LeakScanner(paillierKeyNeedles(keyFile));
      for (const body of proxy.bodies) scanner.scan('a request body from the CLI', body);
      expect(scanner.leaks).toEqual([]);
      expect(proxy.bodies.some((b) => b.includes('"publicKey"'))).toBe(true);
      expect(proxy.bodies.some((b) => b.includes('/decryption'))).toBe(true);
    } finally {
      await proxy.close();
    }

    const shamir = await cluster.cliJson(['query', '--study', 'salaries', ...SALARY_SELECT, '--deadline', '8', '--wait'], researcher);
    expect(shamir).toMatchObject({ status: 'succeeded', participants: 3 });
    expect(paillierResult.results as StatResult[]).toEqual(shamir.results as StatResult[]);

    const events = await queryEvents(cluster, String(paillierResult.id));
    const closed = events.find((e) => e.type === 'round.closed')!;
    expect((closed.body.contributors as { id: string }[]).map((c) => c.id).sort()).toEqual(sites.map((s) => s.participantId).sort());
    expect(closed.body.missing).toEqual([latecomer.participantId]);
  }, 120_000);

  it('refuses a submission that reaches the participant after the deadline, and records it', async () => {
    // The latecomer comes online after both queries above closed: it refuses its expired tasks, and the
    // coordinator logs each refusal and records it in the ledger as a late contribution, not counted.
    await cluster.run(latecomer);
    const late = await until('the late refusal in the ledger', 30_000, async () => {
      const events = await queryEvents(cluster, String(paillierResult.id));
      return events.find((e) => e.type === 'contribution.late' && e.body.participantId === latecomer.participantId);
    });
    expect(String(late.body.reason)).toMatch(/refused by the participant: task rejected: task expired/);
    expect(cluster.logText()).toMatch(/late answer/);
    // The released result is untouched.
    const q = await cluster.get<{ participants: number }>(`/v1/queries/${String(paillierResult.id)}`, researcher);
    expect(q.participants).toBe(3);
  }, 60_000);

  it('counts a participant that answered and exited before anyone else answered', async () => {
    await cluster.kill(latecomer);
    const [first, ...others] = sites as [ParticipantProcess, ParticipantProcess, ParticipantProcess];
    for (const p of others) await cluster.kill(p, 'SIGTERM');
    const submitted = await cluster.cliJson(['query', '--study', 'salaries', '--protocol', 'paillier', '--key', keyFile, '--identity', identityFile, ...SALARY_SELECT, '--deadline', '15', '--allow-offline'], researcher);
    const id = String(submitted.id);
    await until(`${first.name} to answer`, 30_000, () => Promise.resolve(existsSync(join(first.home, 'state', `${id}.r1.json`)) ? true : undefined));
    await cluster.kill(first, 'SIGTERM');
    for (const p of others) await cluster.run(p);
    const q = await cluster.cliJson(['query', 'decrypt', id, '--key', keyFile], researcher);
    expect(q).toMatchObject({ status: 'succeeded', participants: 3, results: expectedSalaryResults(texts) });
    await cluster.run(first);
  }, 120_000);

  describe('the aggregate and its decryption', () => {
    let id: string;
    let aggregate: { ciphertexts: string[]; contributors: number; publicKey: { n: string }; contributions: { contribution: { sender: string; ciphertexts: string[] } }[] };
    /** Each participant's own ciphertexts, as it saved them: they may reach the key holder and nobody else. */
    let individual: Needle[];
    /** Each participant's own contribution, as it saved it. */
    let saved: { ciphertexts: string[] }[];

    beforeAll(async () => {
      const submitted = await cluster.cliJson(['query', '--study', 'salaries', '--protocol', 'paillier', '--key', keyFile, '--identity', identityFile, ...SALARY_SELECT, '--deadline', '8'], researcher);
      id = String(submitted.id);
      await until('the aggregate', 60_000, async () => ((await cluster.get<{ awaitingDecryption: boolean }>(`/v1/queries/${id}`, researcher)).awaitingDecryption ? true : undefined));
      const r = await getRaw(`/v1/queries/${id}/aggregate`, researcher);
      expect(r.status).toBe(200);
      aggregate = JSON.parse(r.text) as typeof aggregate;
      saved = sites.map((p) => (JSON.parse(readFileSync(join(p.home, 'state', `${id}.r1.json`), 'utf8')) as { contribution: { ciphertexts: string[] } }).contribution);
      individual = saved.flatMap((a, i) => a.ciphertexts.map((c, j) => ({ name: `${sites[i]!.name} ciphertext ${j}`, text: c.slice(0, 64) })));
    }, 90_000);

    it('is served to the submitting researcher only', async () => {
      const other = await cluster.apiKey('researcher');
      for (const token of [other, cluster.adminToken]) expect((await getRaw(`/v1/queries/${id}/aggregate`, token)).status).toBe(403);
      expect((await getRaw(`/v1/queries/${id}/aggregate`, await cluster.apiKey('auditor'))).status).toBe(403);
    });

    it('serves the individual ciphertexts, signed, to the key holder only, with the aggregate; never from another route, nor in Redis', async () => {
      // The key holder multiplies them again before it decrypts (libs/protocol key-holder.ts): each is there.
      expect(aggregate.contributions.map((c) => c.contribution.sender).sort()).toEqual(sites.map((s) => s.participantId).sort());
      const served = aggregate.contributions.flatMap((c) => c.contribution.ciphertexts.map((text) => text.slice(0, 64)));
      for (const needle of individual) expect(served).toContain(needle.text);
      // Every GET route of the coordinator, as its OpenAPI document lists them, asked by every caller at hand: none
      // answers with a participant's ciphertext, in any encoding, except the aggregate route to the key holder.
      const routes = await openApiGetRoutes();
      const { size } = await cluster.get<{ size: number }>('/v1/ledger/checkpoint');
      // Paged routes are read from their start with their largest page (1000 entries; 200 of a participant's study).
      expect(size).toBeLessThanOrEqual(200);
      const value: Record<string, string> = { id, name: 'salaries', study: 'salaries', mine: 'false', queryId: id, start: '0', limit: '1000', end: String(size), after: '-1', treeSize: String(size), from: '1', to: String(size), index: String(size - 1), type: 'result.released', query: id, before: String(size) };
      const fill = (route: OpenApiRoute): string => {
        const missing = route.parameters.filter((p) => value[p.name] === undefined).map((p) => `${p.in} ${p.name}`);
        if (missing.length) throw new Error(`GET ${route.path}: no value for ${missing.join(', ')}; give this scan one`);
        const path = route.path.replace(/\{(\w+)\}/g, (_m, name: string) => value[name]!);
        // Each route's largest page where it is smaller than the ledger routes' 1000.
        const largest: Record<string, string> = { '/v1/ledger/entries/search': '200', '/v1/queries/events': '100' };
        const param = (name: string): string => (name === 'limit' ? (largest[route.path] ?? value.limit!) : value[name]!);
        const query = route.parameters.filter((p) => p.in === 'query').map((p) => `${p.name}=${encodeURIComponent(param(p.name))}`);
        return query.length ? `${path}?${query.join('&')}` : path;
      };
      const bearer = (token: string) => (): Record<string, string> => ({ authorization: `Bearer ${token}` });
      const callers: [string, (path: string) => Record<string, string>][] = [
        ['anonymous', () => ({})],
        ['the researcher', bearer(researcher)],
        ['another researcher', bearer(await cluster.apiKey('researcher'))],
        ['an auditor', bearer(await cluster.apiKey('auditor'))],
        ['the admin', bearer(cluster.adminToken)],
        ['an invitation', bearer(await cluster.invite('salaries', 'route-scan'))],
        ...sites.map((p): [string, (path: string) => Record<string, string>] => {
          const { signing } = new ParticipantHome(p.home).keys();
          return [p.name, (path) => participantRequestHeaders(signing, { method: 'GET', path, participantId: p.participantId, time: Date.now() })];
        }),
      ];
      const forms = saved.flatMap((contribution, i) => contribution.ciphertexts.flatMap((c, j) => ciphertextForms(`${sites[i]!.name} ciphertext ${j}`, c)));
      // The scan finds them where they are: in the aggregate route's answer to the key holder, as text and decoded.
      const control = new LeakScanner(forms);
      control.scan('the aggregate', withDecodedBase64((await getRaw(`/v1/queries/${id}/aggregate`, researcher)).text));
      expect(control.leaks).toEqual(expect.arrayContaining(forms.filter((n) => /\((base64url|hex)\)$/.test(n.name)).map((n) => `${n.name} in the aggregate`)));
      const scanner = new LeakScanner(forms);
      const answered = new Set<string>();
      for (const route of routes) {
        const path = fill(route);
        for (const [who, headers] of callers) {
          const res = await fetch(`${cluster.url}${path}`, { headers: headers(path) });
          const text = await bodyOf(res);
          if (res.status === 200) answered.add(route.path);
          // The one route that serves them, to the one caller it serves them to (checked above).
          if (route.path === '/v1/queries/{id}/aggregate' && who === 'the researcher') continue;
          scanner.scan(`GET ${path} as ${who} (HTTP ${res.status})`, withDecodedBase64(text));
        }
      }
      // Not a scan of error pages: every route served someone.
      expect(routes.filter((r) => !answered.has(r.path)).map((r) => r.path)).toEqual([]);
      scanner.scan('Redis', await cluster.redisDump());
      expect(scanner.leaks).toEqual([]);

      // Nor any participant's plaintext local aggregate (its salary sum), in Redis, the database or any log.
      const local = new LeakScanner(
        texts.flatMap((text, i) => {
          const salary = plainStats([text]).get('salary')!;
          return numberForms(`${sites[i]!.name} local Σ salary`, salary.sumText, salary.sumScaled);
        }),
      );
      local.scan('Redis', await cluster.redisDump());
      local.scan('the database', await cluster.databaseDump());
      local.scan('the logs', cluster.logText());
      expect(local.leaks).toEqual([]);
      // The aggregate itself is none of them: it is their product.
      expect(aggregate.ciphertexts.some((c) => individual.some((n) => c.includes(n.text)))).toBe(false);
    }, 60_000);

    it('rejects a forged decryption, records it, and then accepts the true one', async () => {
      const keys = privateKeyFromJson(JSON.parse(readFileSync(keyFile, 'utf8')));
      const honest = decryptAggregate(keys.privateKey, aggregate.ciphertexts);
      const forged = { ...honest, plaintexts: honest.plaintexts.map((m, i) => (i === 0 ? (BigInt(m) + 1n).toString() : m)) };
      const refused = await post(`/v1/queries/${id}/decryption`, researcher, forged);
      expect(refused.status).toBe(422);
      expect(refused.json).toMatchObject({ error: 'invalid_decryption', message: expect.stringMatching(/does not re-encrypt/) as string });
      expect((await queryEvents(cluster, id)).some((e) => e.type === 'decryption.rejected')).toBe(true);

      const accepted = await post(`/v1/queries/${id}/decryption`, researcher, honest);
      expect(accepted.status).toBe(201);
      expect(accepted.json).toMatchObject({ status: 'succeeded', participants: 3, results: expectedSalaryResults(texts) });
      expect((await post(`/v1/queries/${id}/decryption`, researcher, honest)).status).toBe(409);
      // Decided: the contributions are dropped from the database too; only their hashes stay, in the ledger.
      const scanner = new LeakScanner(individual);
      scanner.scan('the database', await cluster.databaseDump());
      expect(scanner.leaks).toEqual([]);
    });
  });

  it('refuses an undersized public key and a public key for shamir, before anything is recorded', async () => {
    const small = join(cluster.dir, 'small-key.json');
    const r = await cluster.cli(['keys', 'paillier', '--out', small, '--bits', '1024'], null);
    expect(r.code).toBe(2);
    const res = await post('/v1/queries', researcher, { study: 'salaries', protocol: 'paillier', select: [{ stat: 'mean', field: 'salary' }], publicKey: { n: 'AQAB' } });
    expect(res.status).toBe(400);
    expect(res.json).toMatchObject({ error: 'invalid_public_key', message: expect.stringMatching(/^publicKey: researcher's public key refused/) as string });
  });

  it('binds an identity key that begins with "-" (base64url) with --identity=KEY, the form `keys researcher` prints', async () => {
    let identity = generateKeyPair('ed25519');
    while (!publicKeyBase64Url(identity.publicKey).startsWith('-')) identity = generateKeyPair('ed25519');
    const key = publicKeyBase64Url(identity.publicKey);
    const made = await cluster.cliJson(['admin', 'keys', 'create', '--role', 'researcher', `--identity=${key}`]);
    expect(made).toMatchObject({ role: 'researcher', identityKeyFingerprint: keyFingerprint(identity.publicKey) });
    const printed = await cluster.cli(['keys', 'researcher', '--out', join(cluster.dir, 'another-identity.pem')], null);
    expect(printed.stdout).toMatch(/confide admin keys create --role researcher --identity=[A-Za-z0-9_-]{43}\n/);
  });

  it("refuses a paillier query without the researcher's signed binding, or from an API key no identity is bound to", async () => {
    const publicKey = { n: (JSON.parse(readFileSync(keyFile, 'utf8')) as { n: string }).n };
    const body = { study: 'salaries', protocol: 'paillier', select: [{ stat: 'mean', field: 'salary' }], publicKey };
    const unsigned = await post('/v1/queries', researcher, body);
    expect(unsigned).toMatchObject({ status: 400, json: { error: 'invalid_query', message: expect.stringMatching(/^researcher: a paillier query needs the researcher's signature/) as string } });
    const binding = { identityKey: 'A'.repeat(43), nonce: 'ab'.repeat(32), signature: 'A'.repeat(86) };
    const forged = await post('/v1/queries', researcher, { ...body, researcher: binding });
    expect(forged).toMatchObject({ status: 400, json: { error: 'invalid_signature' } });
    const unbound = await post('/v1/queries', await cluster.apiKey('researcher'), { ...body, researcher: binding });
    expect(unbound).toMatchObject({ status: 400, json: { error: 'no_identity', message: expect.stringMatching(/no identity key bound to it/) as string } });
    // The CLI says what is missing before it sends anything.
    const r = await cluster.cli(['query', '--study', 'salaries', '--protocol', 'paillier', '--key', keyFile, '--stat', 'mean', '--field', 'salary'], researcher);
    expect([r.code, r.stderr]).toEqual([2, expect.stringMatching(/--protocol paillier needs --identity FILE/) as string]);
  });

  describe('threshold decryption by custodians', () => {
    let dir: string;
    let id: string;
    const share = (i: number): string => join(dir, `custodian-${i}.json`);
    const decryptShare = (i: number) => runCli(['query', 'decrypt-share', id, '--share', share(i), '--json'], { env: { CONFIDE_URL: cluster.url, CONFIDE_TOKEN: cluster.adminToken }, timeoutMs: 60_000 });

    beforeAll(async () => {
      dir = join(cluster.dir, 'custodian-keys');
      const made = await cluster.cliJson(['keys', 'paillier', '--out', dir, '--custodians', '3', '--threshold', '2', '--bits', '2048'], null);
      expect(made).toMatchObject({ custodians: 3, threshold: 2, fullKeyFile: null });
      // The dealer kept no whole key: only the public file and one share per custodian, each readable by its owner only.
      expect(existsSync(join(dir, 'full-key.json'))).toBe(false);
      for (const i of [1, 2, 3]) expect(statSync(share(i)).mode & 0o777).toBe(0o600);
      const submitted = await cluster.cliJson(['query', '--study', 'salaries', '--protocol', 'paillier', '--custodians', join(dir, 'custodians.json'), '--identity', identityFile, ...SALARY_SELECT, '--deadline', '8'], researcher);
      id = String(submitted.id);
      await until('the aggregate', 60_000, async () => ((await cluster.get<{ awaitingDecryption: boolean }>(`/v1/queries/${id}`, researcher)).awaitingDecryption ? true : undefined));
    }, 120_000);

    it('refuses a partial decryption whose proof fails, names the custodian and records it; the researcher cannot decrypt alone', async () => {
      // Custodian 1's real share, used on another ciphertext than the aggregate: a wrong partial, caught by its proof.
      const keys = custodianShareFromJson(JSON.parse(readFileSync(share(1), 'utf8')));
      const bundle = (await cluster.get<{ ciphertexts: string[] }>(`/v1/queries/${id}/aggregate`, researcher)).ciphertexts;
      const shifted = bundle.map((c) => addCiphertexts(keys.verification.publicKey, [ciphertextFromString(keys.verification.publicKey, c), encryptFast(keys.verification.publicKey, 1n)]));
      const wrong = custodianPartials(keys, id, shifted);
      const refused = await post(`/v1/queries/${id}/partial-decryptions`, researcher, wrong);
      expect(refused).toMatchObject({ status: 422, json: { error: 'invalid_partial', message: expect.stringMatching(/custodian 1's partial decryption of chunk 0 does not prove it used its share/) as string } });
      expect((await queryEvents(cluster, id)).some((e) => e.type === 'decryption.rejected' && e.body.custodian === 1)).toBe(true);
      // A full-key decryption is not how this query ends.
      expect((await post(`/v1/queries/${id}/decryption`, researcher, { plaintexts: ['1'], randomness: ['1'] })).status).toBe(409);
    });

    it('releases nothing on t − 1 partials, and the exact result on any t, with the third custodian down', async () => {
      const first = await decryptShare(1);
      expect(first.code).toBe(0);
      expect(singleJson(first.stdout)).toMatchObject({ status: 'running', custodian: 1, decryption: { decrypted: 1, threshold: 2 } });
      expect(await cluster.get<{ status: string }>(`/v1/queries/${id}`, researcher)).toMatchObject({ status: 'running', awaitingDecryption: true });
      // Custodian 3 never comes; custodian 2's partial is the t-th.
      const second = await decryptShare(2);
      expect(second.code).toBe(0);
      expect(singleJson(second.stdout)).toMatchObject({ status: 'succeeded', custodian: 2, participants: 3, results: expectedSalaryResults(texts) });
      const released = (await queryEvents(cluster, id)).find((e) => e.type === 'result.released')!;
      expect(released.body.paillier).toEqual({ aggregateHash: expect.stringMatching(/^[0-9a-f]{64}$/) as string, custodians: [1, 2] });
      // Decided: no partial stays in the database (any two would decrypt the aggregate).
      // Nor did any custodian's share reach the coordinator's side, in any form the scanner knows.
      const scanner = new LeakScanner([1, 2].map((i) => ({ name: `custodian ${i}'s share`, text: (JSON.parse(readFileSync(share(i), 'utf8')) as { si: string }).si.slice(0, 40) })));
      scanner.scan('the database', await cluster.databaseDump());
      scanner.scan('Redis', await cluster.redisDump());
      scanner.scan('the logs', cluster.logText());
      expect(scanner.leaks).toEqual([]);
      expect((await cluster.databaseDump()).split('\n').find((l) => l.startsWith('partial_decryptions'))).toBe('partial_decryptions []');
    }, 120_000);
  });
});
