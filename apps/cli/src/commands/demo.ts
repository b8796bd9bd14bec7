import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { generateKeyPair, generatePaillierKeyPair, publicKeyBase64Url, type PaillierKeyPair } from '@confide/crypto';
import { removeRunKeys, stopSignal } from '@confide/queue';
import { loadConfig } from '../../../coordinator/src/config';
import { enrollParticipant } from '../../../participant/src/enroll';
import { ParticipantWorker } from '../../../participant/src/worker';
import { intOption, parseCommandArgs, UsageError } from '../args';
import { CoordinatorClient, submitQuery } from '../client';
import { checkDecryptAndPost, submitPaillierQuery } from '../paillier';
import { hasRedisServer, startLocalRedis } from '../local-redis';
import { generateSalaryCsv, plainStats, syntheticSalaryStudy } from '../demo-data';
import type { Output } from '../output';

export const DEMO_USAGE = `Usage: confide demo [--participants N] [--rows N] [--protocol shamir|paillier] [--keep [--port N]] [--json]

A real secure aggregation on this machine: an embedded-SQLite coordinator, N participant workers with
generated salary data (each with its own keys and Redis credentials), and a secure mean of salary over
the shamir protocol (or paillier, with a 3072-bit researcher key made here), printed beside the plaintext mean
the demo computes from its own data. It starts a private redis-server (default user off, an administrator
user with a fresh password) and stops it at the end; without redis-server installed it uses REDIS_URL, which
must name a Redis administrator user.

--keep leaves the service running after the query, and prints the browser console's URL with an admin key,
an auditor key and the coordinator key's fingerprint to pin (--port: the coordinator's port, default 8080; 0 picks a free one).
Ctrl-C stops it and deletes everything the demo made.`;

/**
 * A Redis for the demo: a private, locked-down redis-server when one is installed (its default user off, as the
 * coordinator requires), else the one at REDIS_URL, which must then name an administrator user.
 */
async function obtainRedis(out: Output): Promise<{ url: string; publicUrl: string; stop: () => Promise<void> }> {
  if (hasRedisServer()) {
    const local = await startLocalRedis();
    out.progress(`started a private redis-server on port ${local.port}`);
    return { url: local.adminUrl, publicUrl: local.publicUrl, stop: () => local.stop() };
  }
  const url = process.env.REDIS_URL;
  if (!url) {
    throw new Error(
      'redis-server is not installed and REDIS_URL is not set. Install redis-server (Debian/Ubuntu: sudo apt-get install redis-server), ' +
        'or set REDIS_URL to a Redis administrator user (redis://USER:PASSWORD@host:port); then run the demo again.',
    );
  }
  return { url, publicUrl: url.replace(/\/\/[^@]*@/, '//'), stop: () => Promise.resolve() };
}

/** `confide demo`: the whole service on one machine, end to end, with nothing to set up. */
export async function demoCommand(argv: readonly string[], out: Output): Promise<void> {
  const { values } = parseCommandArgs(argv, { participants: { type: 'string' }, rows: { type: 'string' }, protocol: { type: 'string' }, keep: { type: 'boolean' }, port: { type: 'string' }, json: { type: 'boolean' } });
  out.json = values.json === true;
  const n = intOption(values.participants, 'participants', 3) ?? 5;
  const rows = intOption(values.rows, 'rows', 1) ?? 200;
  const protocol = values.protocol ?? 'shamir';
  if (protocol !== 'shamir' && protocol !== 'paillier') throw new UsageError(`--protocol must be shamir or paillier, got ${JSON.stringify(protocol)}`);
  if (n > 50) throw new UsageError('--participants is at most 50 in the demo');
  const keep = values.keep === true;
  if (values.port !== undefined && !keep) throw new UsageError('--port goes with --keep: without it the demo stops when its query is done');
  const port = intOption(values.port, 'port', 0) ?? (keep ? 8080 : 0);
  if (port > 65535) throw new UsageError(`--port must be at most 65535, got ${port}`);

  const dir = mkdtempSync(join(tmpdir(), 'confide-demo-'));
  const redis = await obtainRedis(out);
  const prefix = `confide-demo-${randomBytes(4).toString('hex')}`;
  const adminToken = randomBytes(24).toString('base64url');
  const workers: ParticipantWorker[] = [];
  const redisUsers: string[] = [];
  let coordinator: { url: string; close(): Promise<void> } | undefined;
  try {
    out.progress('starting the coordinator (embedded SQLite)…');
    const { startCoordinator } = await import('../../../coordinator/src/bootstrap.js');
    const running = await startCoordinator(
      loadConfig({
        PORT: String(port),
        REDIS_URL: redis.url,
        CONFIDE_PUBLIC_REDIS_URL: redis.publicUrl,
        CONFIDE_ADMIN_TOKEN: adminToken,
        CONFIDE_DATA_DIR: join(dir, 'coordinator'),
        CONFIDE_QUEUE_PREFIX: prefix,
        CONFIDE_ROUND1_SECONDS: '60',
        CONFIDE_ROUND2_SECONDS: '60',
        LOG_LEVEL: 'warn',
      }),
    );
    coordinator = running;
    const admin = new CoordinatorClient(running.url, adminToken);
    const study = syntheticSalaryStudy();
    await admin.post('/v1/studies', study);
    // The researcher's identity key, bound to its API key by the admin: paillier queries are signed with it.
    const identity = generateKeyPair('ed25519');
    const researcher = new CoordinatorClient(running.url, (await admin.post<{ token: string }>('/v1/api-keys', { role: 'researcher', identityKey: publicKeyBase64Url(identity.publicKey) })).token);

    const texts: string[] = [];
    for (let i = 1; i <= n; i++) {
      out.progress(`enrolling participant ${i}/${n}…`);
      const csv = join(dir, `hospital-${i}.csv`);
      texts.push(generateSalaryCsv(1000 + i, rows));
      writeFileSync(csv, texts[i - 1]!, { mode: 0o600 });
      const { token } = await admin.post<{ token: string }>(`/v1/studies/${study.name}/invitations`, { participant: `hospital-${i}` });
      const home = join(dir, `hospital-${i}`);
      // The demo accepts the study's settings on the participant's behalf: it made the study itself.
      const enrolled = await enrollParticipant({ coordinatorUrl: running.url, invitation: token, home, dataFile: csv });
      redisUsers.push(enrolled.redis.username);
      const worker = new ParticipantWorker({ home, logger: (await import('pino')).default({ level: 'silent' }) });
      await worker.start();
      workers.push(worker);
    }

    let keys: PaillierKeyPair | undefined;
    if (protocol === 'paillier') {
      out.progress('generating the researcher’s 3072-bit Paillier key…');
      keys = await generatePaillierKeyPair(3072);
    }
    out.progress('secure mean of salary: round 1…');
    const started = Date.now();
    const body = { study: study.name, protocol, select: [{ stat: 'mean', field: 'salary' }, { stat: 'count', field: 'salary' }] };
    const { id } = keys ? await submitPaillierQuery(researcher, body, keys.publicKey, identity) : await submitQuery(researcher, body);
    type View = { status: string; round: number; answered: number; expected: number; awaitingDecryption?: boolean; results: { stat: string; value: number | null; count: number }[] | null; participants: number | null; failureReason: string | null; ledgerIndex: number | null };
    let q: View;
    for (;;) {
      q = await researcher.get(`/v1/queries/${id}`);
      if (q.status !== 'running') break;
      if (q.awaitingDecryption && keys) {
        // As `confide query --wait` does: check the aggregate, decrypt it here, post plaintext and randomness.
        q = await checkDecryptAndPost<View>(researcher, id, keys, running.coordinatorKey, out);
        break;
      }
      out.progress(`secure mean of salary: round ${q.round}/2, ${q.answered}/${q.expected} answered`);
      if (Date.now() - started > 180_000) throw new Error('the demo query did not finish in 3 minutes');
      await new Promise((r) => setTimeout(r, 200));
    }
    if (q.status !== 'succeeded' || !q.results) throw new Error(`the demo query failed: ${q.failureReason ?? 'unknown reason'}`);
    const plain = plainStats(texts).get('salary')!;
    const secureMean = q.results[0]!.value;
    const consoleAccess = keep ? await keepOpen(admin, running, adminToken) : undefined;
    const json = {
      participants: q.participants,
      records: plain.count,
      secureMean,
      plaintextMean: plain.mean,
      difference: secureMean === null || plain.mean === null ? null : Math.abs(secureMean - plain.mean),
      queryId: id,
      ledgerIndex: q.ledgerIndex,
      elapsedMs: Date.now() - started,
      ...(consoleAccess ? { console: consoleAccess } : {}),
    };
    out.result(json, () =>
      [
        `${n} participants, ${plain.count} salaries (each file stayed with its participant)`,
        `secure mean salary:    ${secureMean?.toFixed(6) ?? 'n/a'}   (${protocol === 'paillier' ? 'paillier, 3072-bit key, verified decryption' : `shamir, committee of ${Math.min(n, 10)}`}, ${json.elapsedMs} ms)`,
        `plaintext mean salary: ${plain.mean?.toFixed(6) ?? 'n/a'}   (computed by the demo from the data it generated)`,
        `recorded in the event log at index ${q.ledgerIndex ?? '-'}`,
        ...(consoleAccess
          ? [
              '',
              `console:          ${consoleAccess.url}`,
              `  admin key:      ${consoleAccess.adminKey}`,
              `  auditor key:    ${consoleAccess.auditorKey}`,
              `  pin ledger key: ${consoleAccess.fingerprint}   (the coordinator key's fingerprint)`,
              `The service keeps running (${n} participant workers, the coordinator on ${running.url}); Ctrl-C stops it and deletes its data.`,
            ]
          : []),
      ].join('\n'),
    );
    if (keep) await stopSignal();
  } finally {
    await Promise.allSettled(workers.map((w) => w.stop()));
    await coordinator?.close().catch(() => undefined);
    await cleanupRedis(redis.url, prefix, redisUsers).catch(() => undefined);
    await redis.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * What an operator needs to open the demo's console: its URL, the demo's admin key, a new auditor key (read-only),
 * and the coordinator key's fingerprint, which the console checks the ledger's checkpoints against once pinned.
 */
async function keepOpen(admin: CoordinatorClient, running: { url: string }, adminToken: string): Promise<{ url: string; adminKey: string; auditorKey: string; fingerprint: string }> {
  const auditor = await admin.post<{ token: string }>('/v1/api-keys', { role: 'auditor', label: 'demo console' });
  const { fingerprint } = await admin.get<{ fingerprint: string }>('/v1/coordinator');
  return { url: `${running.url}/console/`, adminKey: adminToken, auditorKey: auditor.token, fingerprint };
}

/** Removes the demo's own keys and ACL users (and nothing else) from the Redis it used. */
async function cleanupRedis(url: string, prefix: string, users: readonly string[]): Promise<void> {
  const r = new Redis(url, { maxRetriesPerRequest: 1 });
  // Its failure is the command's (caught by the caller); without a listener ioredis would also print each retry's stack.
  r.on('error', () => undefined);
  try {
    await removeRunKeys(r, prefix, users);
  } finally {
    r.disconnect();
  }
}
