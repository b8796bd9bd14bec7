import { runCli, singleJson } from '../support/cli';
import { REDIS_URL } from '../support/cluster';

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

  it('refuses an unknown protocol with a usage error', async () => {
    const r = await runCli(['demo', '--protocol', 'plaintext'], { env: { REDIS_URL } });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--protocol must be shamir or paillier/);
  });
});
