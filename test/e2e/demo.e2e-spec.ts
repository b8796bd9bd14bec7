import { spawn } from 'node:child_process';
import { CLI, ROOT, runCli, singleJson } from '../support/cli';
import { REDIS_URL, until } from '../support/cluster';

// The README's first command: `npm run demo` runs `confide demo`, a real secure aggregation on this machine.
describe('confide demo', () => {
  it.each(['shamir', 'paillier'] as const)('computes the secure mean of salary with %s, equal to the plaintext mean', async (protocol) => {
    const r = await runCli(['demo', '--participants', '3', '--rows', '60', '--protocol', protocol, '--json'], { env: { REDIS_URL }, timeoutMs: 120_000 });
    expect(r.code).toBe(0);
    // A healthy run logs no error: a round that failed to advance and was retried is a defect even when the
    // retry lands the right answer.
    expect(r.stderr.split('\n').filter((l) => /"level":(50|60)\b/.test(l))).toEqual([]);
    const out = singleJson(r.stdout) as { participants: number; records: number; secureMean: number; plaintextMean: number; difference: number; ledgerIndex: number };
    expect(out.participants).toBe(3);
    expect(out.records).toBeGreaterThan(100);
    expect(out.difference).toBeLessThan(1e-6);
    expect(out.secureMean).toBeCloseTo(out.plaintextMean, 6);
    expect(typeof out.ledgerIndex).toBe('number');
  }, 150_000);

  it('with --keep, keeps the service up after its query and prints the console URL and keys that open it, until Ctrl-C', async () => {
    const child = spawn(process.execPath, [CLI, 'demo', '--participants', '3', '--rows', '40', '--keep', '--port', '0', '--json'], { cwd: ROOT, env: { ...process.env, REDIS_URL }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      const out = await until('the demo to print its result', 90_000, () => Promise.resolve(stdout.includes('\n') ? (singleJson(stdout) as { difference: number; console: { url: string; adminKey: string; auditorKey: string; fingerprint: string } }) : undefined));
      expect(out.difference).toBeLessThan(1e-6);
      const page = await fetch(out.console.url);
      expect(page.status).toBe(200);
      expect(await page.text()).toContain('<div id="app"></div>');
      const base = out.console.url.replace(/\/console\/$/, '');
      const me = (await (await fetch(`${base}/v1/whoami`, { headers: { authorization: `Bearer ${out.console.auditorKey}` } })).json()) as { role: string };
      expect(me.role).toBe('auditor');
      const coordinator = (await (await fetch(`${base}/v1/coordinator`, { headers: { authorization: `Bearer ${out.console.adminKey}` } })).json()) as { fingerprint: string };
      expect(coordinator.fingerprint).toBe(out.console.fingerprint);
      // Still running a while later: the demo waits for Ctrl-C.
      await new Promise((r) => setTimeout(r, 1500));
      expect(child.exitCode).toBeNull();
      child.kill('SIGINT');
      expect(await exited).toBe(0);
      await expect(fetch(out.console.url)).rejects.toThrow();
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  }, 150_000);

  it('refuses --port without --keep', async () => {
    const r = await runCli(['demo', '--port', '8080'], { env: { REDIS_URL } });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--port goes with --keep/);
  });

  it('refuses an unknown protocol with a usage error', async () => {
    const r = await runCli(['demo', '--protocol', 'plaintext'], { env: { REDIS_URL } });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--protocol must be shamir or paillier/);
  });
});
