import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { Client } from 'pg';
import { canonicalJson, generateKeyPair, importPrivateKeyPem } from '@confide/crypto';
import { appendLeaves, emptyFrontier, frontierRoot, leafHash, signCheckpoint } from '@confide/ledger';
import { eventEntryBytes } from '../../apps/coordinator/src/db/repositories';
import { Cluster } from '../support/cluster';
import { singleJson } from '../support/cli';
import { generateSalaryCsv, syntheticSalaryStudy } from '../support/synthetic';

// The audit ledger as an auditor meets it: `confide ledger verify|proof` against a real coordinator whose
// database is then tampered with directly, as someone who runs the coordinator could.
describe.each(['sqlite', 'postgres'] as const)('ledger on %s', (database) => {
  let cluster: Cluster;
  let auditor: string;
  let stateFile: string;

  /** Runs one SQL statement against the coordinator's own database, behind its back. */
  async function tamper(statement: string): Promise<void> {
    if (cluster.databaseUrl) {
      const client = new Client({ connectionString: cluster.databaseUrl });
      await client.connect();
      await client.query(statement);
      await client.end();
    } else {
      const db = new Database(join(cluster.dir, 'coordinator', 'confide.sqlite'));
      db.exec(statement);
      db.close();
    }
  }

  /** Reads rows from the coordinator's database, behind its back. */
  async function rows<T>(statement: string): Promise<T[]> {
    if (cluster.databaseUrl) {
      const client = new Client({ connectionString: cluster.databaseUrl });
      await client.connect();
      const result = await client.query(statement);
      await client.end();
      return result.rows as T[];
    }
    const db = new Database(join(cluster.dir, 'coordinator', 'confide.sqlite'), { readonly: true });
    try {
      return db.prepare(statement).all() as T[];
    } finally {
      db.close();
    }
  }

  const verify = async (): Promise<{ code: number | null; out: { ok: boolean; treeSize: number; root: string | null; firstBadIndex: number | null; reason: string | null } }> => {
    const r = await cluster.cli(['ledger', 'verify', '--state', stateFile, '--json'], auditor);
    return { code: r.code, out: singleJson(r.stdout) as never };
  };

  beforeAll(async () => {
    cluster = await Cluster.start({ database });
    stateFile = join(cluster.dir, 'auditor-state.json');
    const study = await cluster.createStudy(syntheticSalaryStudy());
    for (let i = 1; i <= 3; i++) {
      const csv = join(cluster.dir, `site-${i}.csv`);
      writeFileSync(csv, generateSalaryCsv(900 + i, 30));
      await cluster.run(await cluster.enroll(study, `site-${i}`, csv));
    }
    auditor = await cluster.apiKey('auditor');
    const researcher = await cluster.apiKey('researcher');
    const q = await cluster.cli(['query', '--study', 'salaries', '--stat', 'mean', '--field', 'salary', '--wait', '--json'], researcher);
    expect(q.code).toBe(0);
  }, 120_000);
  afterAll(() => cluster?.stop(), 60_000);

  it('verifies a clean ledger, saves its checkpoint, and proves an entry’s inclusion', async () => {
    const { code, out } = await verify();
    const events = await cluster.get<{ total: number }>('/v1/events');
    expect(out).toMatchObject({ ok: true, treeSize: events.total, firstBadIndex: null, reason: null });
    expect(code).toBe(0);
    const proof = await cluster.cli(['ledger', 'proof', '--index', '2', '--json'], auditor);
    expect(proof.code).toBe(0);
    expect(singleJson(proof.stdout)).toMatchObject({ index: 2, treeSize: events.total, verified: true });
  }, 60_000);

  it('stays consistent with the saved checkpoint as the ledger grows', async () => {
    await cluster.apiKey('auditor'); // one more event
    const { code, out } = await verify();
    expect(out.ok).toBe(true);
    expect(code).toBe(0);
  }, 60_000);

  it('agrees with the checkpoints other parties verified: a participant’s receipts and another auditor’s state', async () => {
    const receipts = join(cluster.participants[0]!.home, 'receipts.json');
    const r = await cluster.cli(['participant', 'receipts', '--home', cluster.participants[0]!.home, '--verify', '--json'], null);
    expect(r.code).toBe(0);
    await cluster.apiKey('auditor'); // the ledger grows past both saved checkpoints
    const compared = await cluster.cli(['ledger', 'verify', '--compare', receipts, '--compare', stateFile, '--json'], auditor);
    expect(singleJson(compared.stdout)).toMatchObject({ ok: true, reason: null });
    expect(compared.code).toBe(0);

    // A note signed by any other key is not this coordinator's word about anything.
    const { origin } = await cluster.get<{ origin: string }>('/v1/ledger/public-key', auditor);
    const foreign = join(cluster.dir, 'foreign-checkpoint.txt');
    writeFileSync(foreign, signCheckpoint(generateKeyPair('ed25519'), origin, { origin, size: 1, root: new Uint8Array(32) }));
    const refused = await cluster.cli(['ledger', 'verify', '--compare', foreign, '--json'], auditor);
    expect(refused.code).toBe(1);
    expect((singleJson(refused.stdout) as { reason: string }).reason).toMatch(/does not verify with this coordinator's key/);

    const missing = await cluster.cli(['ledger', 'verify', '--compare', join(cluster.dir, 'nothing-here.json')], auditor);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/--compare .*nothing-here\.json: no such file/);
  }, 60_000);

  it('detects one changed byte in one stored entry and names its index', async () => {
    await tamper(`UPDATE events SET body = replace(body, '"role":"auditor"', '"role":"admin"') WHERE idx = (SELECT max(idx) FROM events)`);
    const { out: before } = await verify();
    const events = await cluster.get<{ total: number }>('/v1/events');
    expect(before.ok).toBe(false);
    expect(before.firstBadIndex).toBe(events.total - 1);
    await tamper(`UPDATE events SET body = replace(body, '"role":"admin"', '"role":"auditor"') WHERE idx = (SELECT max(idx) FROM events)`);
    expect((await verify()).out.ok).toBe(true);
  }, 60_000);

  it('detects two entries swapped and names the first', async () => {
    // Stored bodies are canonical JSON, so re-encoding what /v1/events returns gives the stored text back.
    const { events } = await cluster.get<{ events: { index: number; type: string; body: unknown }[] }>('/v1/events?start=1&limit=2');
    const literal = (text: string): string => `'${text.replace(/'/g, "''")}'`;
    const put = (idx: number, e: { type: string; body: unknown }) => tamper(`UPDATE events SET type = ${literal(e.type)}, body = ${literal(canonicalJson(e.body))} WHERE idx = ${idx}`);
    const swap = async (a: number, b: number) => {
      await put(a, events[b - 1]!);
      await put(b, events[a - 1]!);
    };
    await swap(1, 2);
    const { code, out } = await verify();
    expect(code).toBe(1);
    expect(out).toMatchObject({ ok: false, firstBadIndex: 1 });
    await put(1, events[0]!);
    await put(2, events[1]!);
    expect((await verify()).out.ok).toBe(true);
  }, 60_000);

  it('catches a history rewritten and re-signed with the coordinator’s own key, by the saved checkpoint', async () => {
    expect((await verify()).out.ok).toBe(true); // the auditor's state now holds the current tree
    // Whoever runs the coordinator rewrites a result and rebuilds the whole tree and checkpoint with the real key.
    const key = importPrivateKeyPem('ed25519', readFileSync(join(cluster.dir, 'coordinator', 'coordinator-ed25519.pem'), 'utf8'));
    const { origin } = await cluster.get<{ origin: string }>('/v1/ledger/public-key', auditor);
    // The released result, now from 4 contributors. (An entry before a query's submission would change the root its
    // committee seed was drawn from, which `ledger verify` checks on its own: the rewrite must come after.)
    const { events: before } = await cluster.get<{ events: { index: number; type: string }[] }>('/v1/events?limit=1000');
    const rewritten = before.find((e) => e.type === 'result.released')!.index;
    await tamper(`UPDATE events SET body = replace(body, '"contributors":3', '"contributors":4') WHERE idx = ${rewritten}`);
    const stored = await rows<{ idx: number | string; type: string; body: string; created_at: number | string }>('SELECT idx, type, body, created_at FROM events ORDER BY idx');
    const leaves = stored.map((e) => leafHash(eventEntryBytes({ idx: Number(e.idx), type: e.type, body: e.body, created_at: Number(e.created_at) })));
    const { frontier, nodes } = appendLeaves(emptyFrontier(), leaves);
    const root = frontierRoot(frontier);
    const note = signCheckpoint(key, origin, { origin, size: leaves.length, root });
    const values = nodes.map((n) => `(${n.level}, ${n.index}, '${Buffer.from(n.hash).toString('hex')}')`).join(', ');
    await tamper(`DELETE FROM ledger_nodes`);
    await tamper(`INSERT INTO ledger_nodes (level, idx, hash) VALUES ${values}`);
    await tamper(`DELETE FROM checkpoints`);
    await tamper(`INSERT INTO checkpoints (size, root, note, created_at) VALUES (${leaves.length}, '${Buffer.from(root).toString('hex')}', '${note.replace(/'/g, "''")}', 1)`);

    // A fresh auditor, with nothing saved, is satisfied: the forgery is internally consistent and validly signed.
    const fresh = await cluster.cli(['ledger', 'verify', '--json'], auditor);
    expect(singleJson(fresh.stdout)).toMatchObject({ ok: true, reason: null });
    // Unless it compares with a checkpoint a participant verified before the rewrite: two signed histories.
    const receipts = join(cluster.participants[0]!.home, 'receipts.json');
    const compared = await cluster.cli(['ledger', 'verify', '--compare', receipts, '--json'], auditor);
    expect(compared.code).toBe(1);
    expect((singleJson(compared.stdout) as { reason: string }).reason).toMatch(/not a prefix of the ledger served here: the coordinator signed two different histories/);
    // Or with one signed for more entries than are served now.
    const ahead = join(cluster.dir, 'ahead-checkpoint.txt');
    writeFileSync(ahead, signCheckpoint(key, origin, { origin, size: leaves.length + 5, root: new Uint8Array(randomBytes(32)) }));
    const rolledBack = await cluster.cli(['ledger', 'verify', '--compare', ahead, '--json'], auditor);
    expect(rolledBack.code).toBe(1);
    expect((singleJson(rolledBack.stdout) as { reason: string }).reason).toMatch(/signed for \d+ entries but the ledger served here has \d+: the coordinator rolled back or forked/);
    // The auditor who kept the earlier checkpoint is not, and is told which entry changed.
    const { code, out } = await verify();
    expect(code).toBe(1);
    expect(out).toMatchObject({ ok: false, firstBadIndex: rewritten });
    expect(out.reason).toMatch(/rewritten/);
  }, 60_000);

  it('detects deleted last entries', async () => {
    const events = await cluster.get<{ total: number }>('/v1/events');
    await tamper(`DELETE FROM events WHERE idx = ${events.total - 1}`);
    const { code, out } = await verify();
    expect(code).toBe(1);
    expect(out).toMatchObject({ ok: false, firstBadIndex: events.total - 1 });
  }, 60_000);
});
