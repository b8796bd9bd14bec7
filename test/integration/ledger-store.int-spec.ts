import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import { generateKeyPair } from '@confide/crypto';
import { consistencyProof, inclusionProof, leafHash, merkleTreeHash, signCheckpoint, verifyCheckpoint, verifyConsistency, verifyInclusion } from '@confide/ledger';
import { openDatabase, type Database } from '../../apps/coordinator/src/db/database';
import { DbNodeStore, EventLog, eventEntryBytes } from '../../apps/coordinator/src/db/repositories';

const POSTGRES_URL = process.env.CONFIDE_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

// The event log as a Merkle ledger in the real databases: concurrent writers, stored subtree hashes, proofs.
describe.each(['sqlite', 'postgres'] as const)('ledger storage on %s', (dialect) => {
  let database: Database;
  let dir: string;
  let schema: string | undefined;
  const key = generateKeyPair('ed25519');
  const origin = 'confide/test-ledger';

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'confide-ledger-'));
    schema = dialect === 'postgres' ? `test_${randomBytes(6).toString('hex')}` : undefined;
    database = await openDatabase(dialect === 'postgres' ? { url: POSTGRES_URL, dataDir: dir, schema } : { dataDir: dir });
  });
  afterAll(async () => {
    if (schema) await sql`drop schema ${sql.id(schema)} cascade`.execute(database.db);
    await database.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('takes 1,000 appends from several concurrent writers as contiguous leaves of one valid, signed tree', async () => {
    const writers = Array.from({ length: 4 }, () => new EventLog(database.db, (size, root) => signCheckpoint(key, origin, { origin, size, root })));
    const indices = await Promise.all(
      Array.from({ length: 1000 }, (_, i) => writers[i % writers.length]!.append('test.event', { n: i, writer: i % writers.length }, `test:${i}`, 1_750_000_000_000 + i)),
    );
    expect([...indices].sort((a, b) => a - b)).toEqual(Array.from({ length: 1000 }, (_, i) => i));

    const events = await writers[0]!.list(0, 1000);
    const leaves = events.map((e) => leafHash(eventEntryBytes(e)));
    const root = merkleTreeHash(leaves);
    const store = new DbNodeStore(database.db);
    const latest = await database.db.selectFrom('checkpoints').selectAll().orderBy('size', 'desc').limit(1).executeTakeFirstOrThrow();
    expect(latest.size).toBe(1000);
    const signed = verifyCheckpoint(latest.note, key.publicKey, origin);
    expect(Buffer.from(signed.root).equals(Buffer.from(root))).toBe(true);

    for (const index of [0, 1, 499, 998, 999]) verifyInclusion(leaves[index]!, index, 1000, await inclusionProof(store, index, 1000), root);
    for (const size1 of [1, 7, 512, 999]) verifyConsistency(size1, 1000, await consistencyProof(store, size1, 1000), merkleTreeHash(leaves.slice(0, size1)), root);
  }, 120_000);
});
