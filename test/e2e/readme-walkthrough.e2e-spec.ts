import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI, ROOT } from '../support/cli';
import { freePort } from '../support/cluster';
import { startLocalRedis, type LocalRedis } from '../../apps/cli/src/local-redis';

/**
 * Issue 13, "The README's walk-through takes a new person from clone to a first result with only the README": the
 * block of "Run a consortium by hand" marked `<!-- walkthrough -->` runs here as it is written, as one bash script
 * (`set -euo pipefail`) in an empty directory with `examples/` linked in and `npx confide` on the PATH, with a
 * fresh HOME and none of the test's environment. Its one substitution: the ports, 6379 to a fresh redis-server as it
 * comes out of the box (its default user on, no password) and 8080 to a free port. Every role's commands run,
 * from creating the Redis user to stopping the workers; the results must be the exact means of the example files.
 */

/** The walk-through: the sh block after `<!-- walkthrough -->`. @throws Error when there is none */
function walkthrough(markdown: string): string {
  const lines = markdown.split('\n');
  const marker = lines.findIndex((l) => l.trim() === '<!-- walkthrough -->');
  if (marker === -1 || lines[marker + 1]?.trim() !== '```sh') throw new Error('README has no <!-- walkthrough --> marker followed by a ```sh fence');
  const end = lines.findIndex((l, j) => j > marker + 1 && l.trim() === '```');
  return lines.slice(marker + 2, end).join('\n');
}

/** The mean and count of salary over the example files, read here from the CSV text (their columns in any order, some quoted, CRLF or LF). */
function plainSalaries(): { mean: number; count: number } {
  let cents = 0n;
  let count = 0;
  for (const n of [1, 2, 3]) {
    const [header, ...rows] = readFileSync(join(ROOT, `examples/salaries/hospital-${n}.csv`), 'utf8').trim().split(/\r?\n/);
    const column = header!.split(',').map((h) => h.replace(/"/g, '')).indexOf('salary');
    for (const row of rows) {
      const cell = row.split(',')[column]!.replace(/"/g, '').trim();
      if (cell === '') continue; // a missing value: not counted, by the study's rules as by R's na.rm
      cents += BigInt(Math.round(Number(cell) * 100));
      count++;
    }
  }
  return { mean: Number(cents) / 100 / count, count };
}

describe('the README walk-through, run as it is written', () => {
  let redis: LocalRedis | undefined;
  let dir: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'confide-walkthrough-'));
  });
  afterAll(async () => {
    await redis?.stop();
    rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it('takes every role from a fresh Redis to exact results, receipts, an audit and a removal, and stops cleanly', async () => {
    redis = await startLocalRedis({ openDefaultUser: true });
    const script = walkthrough(readFileSync(join(ROOT, 'README.md'), 'utf8'))
      .replaceAll('6379', String(redis.port))
      .replaceAll('8080', String(await freePort()));
    symlinkSync(join(ROOT, 'examples'), join(dir, 'examples'));
    const bin = join(dir, '.bin');
    mkdirSync(bin);
    writeFileSync(join(bin, 'npx'), `#!/bin/sh\nif [ "$1" = confide ]; then shift; exec "${process.execPath}" "${CLI}" "$@"; fi\necho "npx $1: only npx confide is available here" >&2; exit 127\n`);
    chmodSync(join(bin, 'npx'), 0o755);
    const env = { PATH: `${bin}:${process.env.PATH ?? ''}`, HOME: dir, LANG: 'C.UTF-8' };

    // Its own process group: the background coordinator and workers go with it if the script fails half-way.
    const child = spawn('bash', ['-c', `set -euo pipefail\n${script}`], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((resolve) => {
      const timer = setTimeout(() => {
        stderr += '\n(the walk-through did not finish in 6 minutes)';
        process.kill(-child.pid!, 'SIGKILL');
      }, 360_000);
      child.on('close', (c) => {
        clearTimeout(timer);
        resolve(c);
      });
    });
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // the whole group is gone: the script stopped everything it started
    }
    const logs = ['coordinator.log', 'hospital-1.log'].map((f) => `--- ${f}\n${(() => { try { return readFileSync(join(dir, f), 'utf8').slice(-3000); } catch { return '(none)'; } })()}`).join('\n');
    expect({ code, stderr: code === 0 ? '' : `--- stdout\n${stdout.slice(-3000)}\n--- stderr\n${stderr.slice(-4000)}\n${logs}` }).toEqual({ code: 0, stderr: '' });

    const plain = plainSalaries();
    // The secure means: shamir, paillier with the whole key, and paillier with two of three custodians (printed by
    // the custodian whose share released it, and by `query status`).
    const means = [...stdout.matchAll(/^mean\(salary\) = ([0-9.]+)\s+\(n = (\d+)\)$/gm)].map((m) => [Number(m[1]), Number(m[2])]);
    expect(means).toHaveLength(4);
    for (const [mean, n] of means) {
      expect(n).toBe(plain.count);
      expect(Math.abs(mean! - plain.mean)).toBeLessThan(1e-6);
    }
    // Custodian 1 was asked right after the submission: it waited for the aggregate, then decrypted its share.
    expect(stdout).toMatch(/^custodian 1 decrypted its share of query \S+: 1 of the 2 custodians needed so far$/m);
    expect(stdout).toMatch(new RegExp(`^count\\(salary\\) = ${plain.count}\\b`, 'm'));
    expect(stdout).toMatch(/^ledger verified: \d+ entries, root /m);
    expect(stdout).toMatch(/^removed hospital-1 \(p[0-9a-f]+\) from salaries: ledger entry \d+/m);
    // Every worker stopped on the script's SIGTERM (its `wait` returned), and said so.
    for (const n of [1, 2, 3]) expect(readFileSync(join(dir, `hospital-${n}.log`), 'utf8')).toContain('worker stopped');
  }, 420_000);
});
