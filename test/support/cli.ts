import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';

export const ROOT = resolve(__dirname, '..', '..');
/** The built `confide` binary (package.json "bin"); `npm test` builds before the e2e tier runs. */
export const CLI = join(ROOT, 'dist/apps/cli/apps/cli/src/main.js');
export const COORDINATOR = join(ROOT, 'dist/apps/coordinator/apps/coordinator/src/main.js');

/** Fails loudly when the apps were not built, rather than letting every e2e test fail obscurely. */
export function assertBuilt(): void {
  for (const f of [CLI, COORDINATOR]) {
    if (!existsSync(f)) throw new Error(`${f} is missing: run \`npm run build\` before the e2e tier (npm test does)`);
  }
}

export interface RunResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs the built CLI as a user would, with a deadline; resolves with exit code and both streams. */
export function runCli(args: readonly string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<RunResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`confide ${args.join(' ')} did not finish in ${opts.timeoutMs ?? 60_000} ms\n${stderr}`));
    }, opts.timeoutMs ?? 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolvePromise({ code, stdout, stderr });
    });
  });
}

/** Parses stdout that must be exactly one JSON object on one line. */
export function singleJson(stdout: string): Record<string, unknown> {
  const lines = stdout.trim().split('\n');
  if (lines.length !== 1) throw new Error(`expected exactly one line of JSON on stdout, got ${lines.length}:\n${stdout}`);
  return JSON.parse(lines[0]!) as Record<string, unknown>;
}

/**
 * The events `query --wait --json` writes to stderr, one JSON line each ({"event":"submitted","id"}, "waiting",
 * "unreachable", "reachable"). Throws on any other line: with --json, stderr carries nothing else on success.
 */
export function stderrEvents(stderr: string): ({ event: string; id: string } & Record<string, unknown>)[] {
  return stderr
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => {
      const e = JSON.parse(l) as { event?: unknown; id?: unknown };
      if (typeof e.event !== 'string' || typeof e.id !== 'string') throw new Error(`not a query --wait event on stderr: ${l}`);
      return e as { event: string; id: string } & Record<string, unknown>;
    });
}
