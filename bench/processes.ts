import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { REPO } from './e2e-support';

/** The benches' own processes (bench/soak.bench.ts, bench/scale.bench.ts): started, measured from /proc, stopped. */

const CLOCK_TICKS = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** CPU time (user + system) a process has used so far, ms, from /proc/<pid>/stat. */
export function cpuMsOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[0] is the state (field 3 of proc(5)): utime and stime are fields 14 and 15.
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS;
}

/** The live children of a process (the coordinator's forked aggregation worker). */
export function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid) out.push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/**
 * Starts a Node process with its stdout and stderr appended to `log` directly (a file descriptor, as a shell
 * redirect or a service manager's file output gives it: no pipe through this process, whose event loop is busy with
 * the lanes and would hold a writer up once the pipe's buffer filled), and resolves once the log matches `ready`.
 * @throws Error when it exits first or `timeoutMs` passes (the process is then killed)
 */
export function startProcess(role: string, args: readonly string[], env: NodeJS.ProcessEnv, log: string, ready: RegExp, timeoutMs = 60_000): Promise<{ child: ChildProcess; match: RegExpExecArray }> {
  const fd = openSync(log, 'a');
  const start = statSync(log).size;
  const child = spawn(process.execPath, args, { cwd: REPO, env, stdio: ['ignore', fd, fd] });
  closeSync(fd);
  const output = (): string => {
    const text = readFileSync(log).subarray(start).toString('utf8');
    return text.slice(-8192);
  };
  return new Promise((resolve, reject) => {
    const poll = setInterval(() => {
      const match = ready.exec(output());
      if (!match) return;
      finish();
      resolve({ child, match });
    }, 50);
    const timer = setTimeout(() => {
      finish();
      child.kill('SIGKILL');
      reject(new Error(`${role} was not ready after ${timeoutMs} ms (log: ${log})`));
    }, timeoutMs);
    const exited = (code: number | null, signal: NodeJS.Signals | null): void => {
      finish();
      reject(new Error(`${role} exited (${signal ?? code}) before it was ready; last output: ${output().slice(-600)}`));
    };
    const finish = (): void => {
      clearInterval(poll);
      clearTimeout(timer);
      child.off('exit', exited);
    };
    child.once('exit', exited);
  });
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves when the process is gone. */
export async function stopProcess(child: ChildProcess, graceMs = 20_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

/** Resident memory of a process now and at its peak (VmRSS, VmHWM), MiB, from /proc/<pid>/status. */
export function memoryMiBOf(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rss: kib('VmRSS') / 1024, peak: kib('VmHWM') / 1024 };
}
