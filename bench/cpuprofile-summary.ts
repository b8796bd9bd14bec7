import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { fmt } from './harness';

/**
 * Summarises a V8 CPU profile (`node --cpu-prof`, the `.cpuprofile` JSON) without a viewer: where the process spent
 * its CPU time by area (this repo's libs and apps, each node_modules package, Node's own code, native calls, GC) and
 * the functions with the most self time and the most inclusive time, over the whole profile or a slice of it. bench/soak.bench.ts prints it for the profiles
 * it asked for; by hand: `npx tsx bench/cpuprofile-summary.ts FILE.cpuprofile… [--top N] [--from S] [--to S]` (seconds from the
 * profile's start).
 */

interface ProfileNode {
  readonly id: number;
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number };
  readonly children?: readonly number[];
}

interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly startTime: number;
  readonly endTime: number;
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

/** One line of a summary: a function or an area, and its time in ms. */
export interface ProfileLine {
  readonly name: string;
  readonly ms: number;
}

/** What {@link summariseCpuProfile} finds. */
export interface ProfileSummary {
  /** Wall time the profile covers, ms. */
  readonly wallMs: number;
  /** Sampled time not idle, ms: the process's CPU time, roughly. */
  readonly busyMs: number;
  readonly byArea: ProfileLine[];
  readonly topSelf: ProfileLine[];
  readonly topInclusive: ProfileLine[];
}

/** The area a frame belongs to: `libs/ledger`, `apps/coordinator`, `node_modules/bullmq`, `node:internal`, `native`, or a V8 pseudo-frame. */
function areaOf(frame: ProfileNode['callFrame']): string {
  const { url, functionName } = frame;
  if (!url) return /^\(.*\)$/.test(functionName) ? functionName : 'native (C++ bindings: crypto, better-sqlite3, …)';
  if (url.startsWith('node:')) return 'node: (Node internals: streams, net, http, timers)';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return `node_modules/${pkg[1]}`;
  const own = /\/(libs\/[^/]+|apps\/[^/]+)\/src\/(?:([^/]+)\/)?/.exec(url);
  if (own) return own[1]!.startsWith('apps/') && own[2] && !own[2].endsWith('.js') ? `${own[1]}/${own[2]}` : own[1]!;
  return url;
}

/** A function's name with where it is defined (file:line, 1-based), as a profiler shows it. */
function nameOf(frame: ProfileNode['callFrame']): string {
  const file = frame.url ? `${basename(frame.url)}:${frame.lineNumber + 1}` : '';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(frame.url)?.[1];
  return `${frame.functionName || '(anonymous)'}${file ? ` ${pkg ? `${pkg}/` : ''}${file}` : ''}`;
}

/** A part of a profile's time: ms since the profile started, `from` included, `to` excluded. */
export interface ProfileSlice {
  readonly fromMs?: number;
  readonly toMs?: number;
}

/**
 * Reads a `.cpuprofile` and sums each sample's time delta to its frame (self time), to every distinct function on
 * its stack (inclusive time: a recursive function counts once per sample), and to the frame's area; only the samples
 * in `slice` when one is given.
 * @param top how many functions to list in each ranking
 * @throws Error when the file is not a CPU profile
 */
export function summariseCpuProfile(file: string, top = 25, slice: ProfileSlice = {}): ProfileSummary {
  const parsed = JSON.parse(readFileSync(file, 'utf8')) as Partial<CpuProfile> | null;
  if (!parsed?.nodes || !parsed.samples || !parsed.timeDeltas || parsed.startTime === undefined || parsed.endTime === undefined) throw new Error(`${file} is not a V8 CPU profile`);
  const profile = parsed as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const self = new Map<string, number>();
  const inclusive = new Map<string, number>();
  const areas = new Map<string, number>();
  const add = (m: Map<string, number>, k: string, v: number): void => void m.set(k, (m.get(k) ?? 0) + v);
  let busy = 0;
  let at = 0;
  const from = (slice.fromMs ?? 0) * 1000;
  const to = (slice.toMs ?? Infinity) * 1000;
  profile.samples.forEach((id, i) => {
    const us = profile.timeDeltas[i] ?? 0;
    at += us;
    if (at < from || at >= to) return;
    const node = byId.get(id);
    if (!node) return;
    const frame = node.callFrame;
    if (frame.functionName === '(idle)') return;
    busy += us;
    add(self, nameOf(frame), us);
    add(areas, areaOf(frame), us);
    const seen = new Set<string>();
    for (let up: number | undefined = id; up !== undefined; up = parent.get(up)) {
      const f = byId.get(up)!.callFrame;
      const key = nameOf(f);
      if (f.functionName === '(root)' || seen.has(key)) continue;
      seen.add(key);
      add(inclusive, key, us);
    }
  });
  const ranked = (m: Map<string, number>, n: number): ProfileLine[] =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([name, us]) => ({ name, ms: us / 1000 }));
  const wallMs = (Math.min(to, profile.endTime - profile.startTime) - Math.min(from, profile.endTime - profile.startTime)) / 1000;
  return { wallMs, busyMs: busy / 1000, byArea: ranked(areas, 40), topSelf: ranked(self, top), topInclusive: ranked(inclusive, top) };
}

/** A summary as text: the areas, then the top self and inclusive functions, each with its share of busy time. */
export function formatSummary(title: string, s: ProfileSummary): string {
  const pct = (ms: number): string => `${fmt((100 * ms) / s.busyMs)}%`;
  const lines = (xs: readonly ProfileLine[]): string[] => xs.map((x) => `  ${fmt(x.ms).padStart(9)} ms  ${pct(x.ms).padStart(6)}  ${x.name}`);
  return [
    `${title}: ${fmt(s.busyMs)} ms busy over ${fmt(s.wallMs)} ms (${fmt((100 * s.busyMs) / s.wallMs)}% of one core)`,
    'by area (self time):',
    ...lines(s.byArea),
    'top functions by self time:',
    ...lines(s.topSelf),
    'top functions by inclusive time:',
    ...lines(s.topInclusive),
  ].join('\n');
}

if (require.main === module) {
  const args = process.argv.slice(2);
  const option = (name: string): number | undefined => {
    const i = args.indexOf(name);
    return i >= 0 ? Number(args.splice(i, 2)[1]) : undefined;
  };
  const top = option('--top') ?? 25;
  const from = option('--from');
  const to = option('--to');
  if (!args.length) {
    process.stderr.write('usage: npx tsx bench/cpuprofile-summary.ts FILE.cpuprofile… [--top N] [--from SECONDS] [--to SECONDS]\n');
    process.exitCode = 2;
  }
  const slice = { fromMs: from === undefined ? undefined : from * 1000, toMs: to === undefined ? undefined : to * 1000 };
  for (const file of args) process.stdout.write(`${formatSummary(file, summariseCpuProfile(file, top, slice))}\n\n`);
}
