import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:net';
import { Redis } from 'ioredis';
import { removeRunKeys } from '@confide/queue';
import { assertBuilt, COORDINATOR, ROOT } from '../support/cli';

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address();
      srv.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

async function waitForHealth(url: string, deadlineMs: number): Promise<Response> {
  const until = Date.now() + deadlineMs;
  for (;;) {
    try {
      return await fetch(url);
    } catch (err) {
      if (Date.now() > until) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

describe('coordinator (built app)', () => {
  beforeAll(assertBuilt);

  it('boots on embedded SQLite, answers /health with database and Redis up, and exits cleanly on SIGTERM', async () => {
    const port = await freePort();
    const dataDir = mkdtempSync(join(tmpdir(), 'confide-boot-'));
    const env = { ...process.env, PORT: String(port), CONFIDE_ADMIN_TOKEN: 'boot-test-admin-token-0123456789', CONFIDE_DATA_DIR: dataDir, CONFIDE_QUEUE_PREFIX: `confide-boot-${port}`, DATABASE_URL: '' };
    delete (env as Record<string, string | undefined>).DATABASE_URL;
    const child = spawn(process.execPath, [COORDINATOR], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      const res = await waitForHealth(`http://127.0.0.1:${port}/health`, 15_000);
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ status: 'ok', database: 'ok', redis: 'ok' });
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
    rmSync(dataDir, { recursive: true, force: true });
    const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
    await removeRunKeys(redis, env.CONFIDE_QUEUE_PREFIX);
    redis.disconnect();
  }, 30_000);
});
