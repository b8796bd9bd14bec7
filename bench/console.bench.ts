/// <reference lib="dom" />
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import pino from 'pino';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { appendLeaves, emptyFrontier, frontierRoot, inclusionProof, leafHash, MemoryNodeStore, verifyInclusion as nodeVerifyInclusion } from '@confide/ledger';
import type * as Protocol from '@confide/protocol';
import type * as CliClient from '../apps/cli/src/client';
import type * as Bootstrap from '../apps/coordinator/src/bootstrap';
import type { QueryView } from '../apps/coordinator/src/queries/queries.service';
import type * as ParticipantWorkerModule from '../apps/participant/src/worker';
import { verifyInclusion as webVerifyInclusion } from '../apps/console/src/ledger-verify';
// How often the coordinator's event stream checks for changed queries.
import { POLL_MS as STREAM_PERIOD_MS } from '../apps/coordinator/src/queries/query-stream';
import { benchCoordinatorEnv, checkResult, cleanupRedis, type Expected, expectedOf, inTempDir, loadBuilt, loadNote, median, percentile, REPO, runPrefix, setUpStudy, sleep, SPEC, writeData } from './e2e-support';
import { fmt, measure, type BenchSection } from './harness';

/**
 * The browser console (issue 14), measured in real headless Chromium (Debian's, driven by playwright-core as
 * test/e2e/console.e2e-spec.ts drives it) against a real coordinator (the built dist, embedded SQLite, in this
 * process as bench/e2e.bench.ts runs it) and three participant workers: the bundle's size, the login, the ledger
 * page's in-browser verification at 10^2–10^4 entries against the same data fetched unverified, the verifier's
 * WebCrypto compute against libs/ledger's node:crypto, and live query status over server-sent events against a
 * polling client. Every in-page time is taken in the page (performance.now or Date.now), not across the DevTools
 * protocol.
 */

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const CONSOLE_DIST = join(REPO, 'dist', 'console');
/** Ledger sizes the ledger page is measured at. */
const SIZES = [100, 1_000, 10_000];
/** Fresh pages, and ledger page visits of each kind, per figure (the median is reported). */
const VISITS = 5;
/** The entries one ledger page lists (apps/console/src/ui/ledger.tsx's PAGE). */
const PAGE = 25;
/** A later visit's saved checkpoint is the one at this share of the size: the ledger grew by a tenth since. */
const EARLIER = 0.9;
/** Concurrent POST /v1/api-keys while growing the ledger. */
const GROW_CONCURRENCY = 4;
/** The compute comparison: proofs verified, out of a tree of this many leaves. */
const COMPUTE_PROOFS = 1_000;
const COMPUTE_TREE = 10_000;
/** Queries followed live. */
const QUERIES = 20;
/** The polling client's period: `confide query --wait` polls GET /v1/queries/:id every 250 ms (apps/cli/src/commands/query.ts, follow). */
const CLI_POLL_MS = 250;
/** How long any one thing the bench waits for in the browser may take before the bench fails. */
const WAIT_MS = 60_000;
/** The localStorage keys of apps/console/src/ui/ledger.tsx: the pinned key and the checkpoint of the last visit. */
const PIN = 'confide.console.verifierKey';
const LAST = 'confide.console.lastCheckpoint';

/** Fails with what to do when Chromium or the built console is missing. */
function preflight(): void {
  if (!existsSync(CHROMIUM)) throw new Error(`the console bench drives Chromium and there is none at ${CHROMIUM}: install Debian's chromium (apt-get install chromium), or set CHROMIUM_PATH`);
  if (!existsSync(join(CONSOLE_DIST, 'index.html')) || !existsSync(join(CONSOLE_DIST, 'assets'))) {
    throw new Error(`the console bench measures the built console and ${CONSOLE_DIST} is missing or incomplete: run \`npm run build\` first`);
  }
}

/** 1. The bundle as the coordinator serves it: every .js and .css under dist/console/assets, raw and gzip -9. */
function bundleRows(): (string | number)[][] {
  const files = readdirSync(join(CONSOLE_DIST, 'assets'));
  const rows: (string | number)[][] = [];
  for (const ext of ['js', 'css']) {
    const bytes = files.filter((f) => f.endsWith(`.${ext}`)).map((f) => readFileSync(join(CONSOLE_DIST, 'assets', f)));
    if (bytes.length === 0) throw new Error(`no .${ext} file in ${CONSOLE_DIST}/assets: run \`npm run build\``);
    const raw = bytes.reduce((n, b) => n + b.length, 0);
    const gz = bytes.reduce((n, b) => n + gzipSync(b, { level: 9 }).length, 0);
    rows.push([`bundle: ${ext.toUpperCase()} (${bytes.length} file${bytes.length > 1 ? 's' : ''})`, 'bytes raw / gzip', `${raw.toLocaleString('en-US')} / ${gz.toLocaleString('en-US')}`, '—', '—']);
  }
  return rows;
}

/** 4. verifyInclusion over the same proofs: the console's (WebCrypto, async) and libs/ledger's (node:crypto). */
async function computeRows(): Promise<(string | number)[][]> {
  const store = new MemoryNodeStore();
  const leaves = Array.from({ length: COMPUTE_TREE }, (_, i) => leafHash(new TextEncoder().encode(`{"body":{"n":${i}},"index":${i},"time":"2026-01-01T00:00:00.000Z","type":"bench","v":1}`)));
  const { frontier, nodes } = appendLeaves(emptyFrontier(), leaves);
  store.put(nodes);
  const root = frontierRoot(frontier);
  const step = COMPUTE_TREE / COMPUTE_PROOFS;
  const cases = await Promise.all(Array.from({ length: COMPUTE_PROOFS }, async (_, k) => ({ index: k * step + (k % step), proof: await inclusionProof(store, k * step + (k % step), COMPUTE_TREE) })));
  const web = await measure(
    async () => {
      for (const c of cases) await webVerifyInclusion(leaves[c.index]!, c.index, COMPUTE_TREE, c.proof, root);
    },
    { minIterations: 5, minMs: 2000 },
  );
  const node = await measure(
    () => {
      for (const c of cases) nodeVerifyInclusion(leaves[c.index]!, c.index, COMPUTE_TREE, c.proof, root);
    },
    { minIterations: 5, minMs: 2000 },
  );
  const us = (ms: number): number => (ms * 1000) / COMPUTE_PROOFS;
  return [
    [
      `verifyInclusion compute, ${COMPUTE_PROOFS.toLocaleString('en-US')} proofs of a ${COMPUTE_TREE.toLocaleString('en-US')}-leaf tree`,
      'µs per proof',
      fmt(us(web.medianMs)),
      `${fmt(us(node.medianMs))} (libs/ledger, node:crypto)`,
      `${fmt(web.medianMs / node.medianMs)}×`,
    ],
  ];
}

/** The running service: an in-process coordinator on the built dist, three workers, an auditor key, the study. */
interface Service {
  readonly url: string;
  readonly admin: CliClient.CoordinatorClient;
  readonly auditorToken: string;
  readonly researcher: CliClient.CoordinatorClient;
  readonly study: string;
  readonly fingerprint: string;
  readonly expected: Expected;
  /** Submits the salary mean as `confide query` does (shamir: a committed nonce, revealed once logged); its id. */
  submit(): Promise<string>;
  /** The Chromium version the browser reports. */
  readonly browserVersion: string;
}

/** Appends `apikey.created` entries (one per POST /v1/api-keys) until the ledger holds `target` entries. */
async function growLedger(s: Service, target: number): Promise<void> {
  let size = (await s.admin.get<{ size: number }>('/v1/ledger/checkpoint')).size;
  if (size > target) throw new Error(`the ledger already holds ${size} entries, more than the ${target} to measure at`);
  while (size < target) {
    const batch = Math.min(GROW_CONCURRENCY, target - size);
    await Promise.all(Array.from({ length: batch }, () => s.admin.post('/v1/api-keys', { role: 'auditor', label: 'console bench' })));
    size = (await s.admin.get<{ size: number }>('/v1/ledger/checkpoint')).size;
  }
  if (size !== target) throw new Error(`the ledger grew to ${size} entries, not ${target}: something else appended meanwhile`);
}

/** The checkpoint now, as its signed note states it (origin, size, root): what a browser saves after verifying it. */
async function checkpointNow(s: Service): Promise<{ origin: string; size: number; root: string }> {
  const { note } = await s.admin.get<{ note: string }>('/v1/ledger/checkpoint');
  const [origin, size, root] = note.split('\n') as [string, string, string];
  return { origin, size: Number(size), root };
}

/** Opens the console in a new document (not a reload of the hash route), optionally clearing its storage first. */
async function openConsole(page: Page, url: string, clear = false): Promise<void> {
  await page.goto('about:blank');
  await page.goto(`${url}/console/`);
  if (clear) await page.evaluate(() => localStorage.clear());
}

/** Logs in with Enter, as a user does, and waits for the Studies page. */
async function logIn(page: Page, token: string): Promise<void> {
  await page.getByLabel('API key').fill(token);
  await page.getByLabel('API key').press('Enter');
  await page.getByRole('heading', { name: 'Studies' }).waitFor({ timeout: WAIT_MS });
}

/**
 * Times in the page, with performance.now, from the first `click` the page sees after this is called until an
 * element matching `selector` has a text starting with each of `texts` (measured separately, in order of arrival).
 * With `fresh`, a text already on the page counts only after it has gone once (a list re-verified in place).
 * `act` does the click, through playwright as a user's.
 */
async function timeClick(page: Page, selector: string, texts: readonly string[], fresh: boolean, act: () => Promise<void>): Promise<number[]> {
  await page.evaluate(
    ({ selector, texts, fresh }) => {
      const w = window as unknown as { __bench: { start?: number; done: (number | undefined)[]; gone: boolean[] } };
      const state: { start?: number; done: (number | undefined)[]; gone: boolean[] } = { done: texts.map(() => undefined), gone: texts.map(() => !fresh) };
      w.__bench = state;
      const check = (): void => {
        if (state.start === undefined) return;
        const shown = [...document.querySelectorAll(selector)].map((e) => e.textContent ?? '');
        texts.forEach((t, i) => {
          const there = shown.some((s) => s.startsWith(t));
          if (!there) state.gone[i] = true;
          else if (state.gone[i] && state.done[i] === undefined) state.done[i] = performance.now() - state.start!;
        });
        if (state.done.every((d) => d !== undefined)) observer.disconnect();
      };
      const observer = new MutationObserver(check);
      observer.observe(document, { subtree: true, childList: true, characterData: true, attributes: true });
      document.addEventListener(
        'click',
        () => {
          state.start ??= performance.now();
          check();
        },
        { capture: true, once: true },
      );
    },
    { selector, texts, fresh },
  );
  await act();
  const done = await page.waitForFunction(
    () => {
      const s = (window as unknown as { __bench: { done: (number | undefined)[] } }).__bench;
      return s.done.every((d) => d !== undefined) ? s.done : undefined;
    },
    undefined,
    { timeout: WAIT_MS },
  );
  return (await done.jsonValue()) as number[];
}

/**
 * A browser context whose documents can run the functions this bench passes to page.evaluate: tsx compiles them
 * with esbuild's keepNames, which wraps every named function in a `__name(fn, "name")` helper that exists only in
 * Node, so the page gets one that does nothing.
 */
async function newContext(browser: Browser): Promise<BrowserContext> {
  const context = await browser.newContext();
  await context.addInitScript({ content: 'globalThis.__name = (fn) => fn;' });
  return context;
}

/** 2. Navigation to the login form, and Enter to the Studies table, each in a fresh context (cold cache, no storage). */
async function loginRows(browser: Browser, s: Service): Promise<(string | number)[][]> {
  const form: number[] = [];
  const studies: number[] = [];
  for (let i = 0; i < VISITS; i++) {
    const context = await newContext(browser);
    try {
      const page = await context.newPage();
      // Installed before any of the page's scripts run (through DevTools, which the page's CSP does not govern).
      await page.addInitScript((study: string) => {
        const t: { form?: number; enter?: number; studies?: number } = {};
        (window as unknown as { __login: typeof t }).__login = t;
        document.addEventListener('keydown', (e) => e.key === 'Enter' && (t.enter ??= performance.now()), { capture: true });
        new MutationObserver(() => {
          if (t.form === undefined && document.getElementById('api-key')) t.form = performance.now();
          if (t.enter !== undefined && t.studies === undefined && document.querySelector(`a[href="#/studies/${study}"]`)) t.studies = performance.now();
        }).observe(document, { subtree: true, childList: true });
      }, s.study);
      await page.goto(`${s.url}/console/`);
      await page.getByLabel('API key').fill(s.auditorToken);
      await page.getByLabel('API key').press('Enter');
      const t = await page.waitForFunction(
        () => {
          const l = (window as unknown as { __login: { form?: number; enter?: number; studies?: number } }).__login;
          return l.studies !== undefined ? l : undefined;
        },
        undefined,
        { timeout: WAIT_MS },
      );
      const v = (await t.jsonValue()) as { form: number; enter: number; studies: number };
      form.push(v.form);
      studies.push(v.studies - v.enter);
    } finally {
      await context.close();
    }
  }
  process.stderr.write(`  login: form ${form.map((x) => fmt(x)).join(', ')} ms; studies ${studies.map((x) => fmt(x)).join(', ')} ms\n`);
  return [
    ['login form shown (navigation → form in the DOM), fresh context', 'ms, median of 5', fmt(median(form)), '—', '—'],
    ['login (Enter → Studies table with the study listed)', 'ms, median of 5', fmt(median(studies)), '—', '—'],
  ];
}

const CHECKPOINT_OK = '✔ Checkpoint verified';
const CONSISTENT_OK = '✔ Consistent with the checkpoint this browser verified';
const ALL_OK = `✔ All ${PAGE} entries on this page verified`;
const STATUS = 'p[role="status"].verified';

/** Clicks Filter (same filter) and times the re-listing of the newest page, every entry's proof verified again. */
async function timeFilter(page: Page): Promise<number> {
  await page.getByText(ALL_OK).waitFor({ timeout: WAIT_MS });
  const [ms] = await timeClick(page, STATUS, [ALL_OK], true, () => page.getByRole('button', { name: 'Filter' }).click());
  return ms!;
}

/** The unverified baseline in the page: the same search request the ledger page makes (and, second, its 25 proofs too). */
async function timeUnverified(page: Page, token: string, size: number): Promise<{ search: number; withProofs: number }> {
  return page.evaluate(
    async ({ token, size, limit }) => {
      const headers = { authorization: `Bearer ${token}`, accept: 'application/json' };
      const t0 = performance.now();
      const listed = (await (await fetch(`/v1/ledger/entries/search?limit=${limit}&before=${size}`, { headers, cache: 'no-store' })).json()) as { entries: { index: number }[] };
      const search = performance.now() - t0;
      if (listed.entries.length !== limit) throw new Error(`the search listed ${listed.entries.length} entries, not ${limit}`);
      const t1 = performance.now();
      const again = (await (await fetch(`/v1/ledger/entries/search?limit=${limit}&before=${size}`, { headers, cache: 'no-store' })).json()) as { entries: { index: number }[] };
      await Promise.all(again.entries.map(async (e) => (await fetch(`/v1/ledger/proof/inclusion?index=${e.index}&treeSize=${size}`, { headers, cache: 'no-store' })).json() as Promise<unknown>));
      return { search, withProofs: performance.now() - t1 };
    },
    { token, size, limit: PAGE },
  );
}

/** 3. The ledger page at each size: first visits (nothing saved) and later visits (key pinned, checkpoint saved). */
async function ledgerRows(browser: Browser, s: Service): Promise<(string | number)[][]> {
  const rows: (string | number)[][] = [];
  const context = await newContext(browser);
  try {
    const page = await context.newPage();
    for (const size of SIZES) {
      const t = Date.now();
      await growLedger(s, Math.round(size * EARLIER));
      const earlier = await checkpointNow(s);
      await growLedger(s, size);
      process.stderr.write(`  ledger grown to ${size.toLocaleString('en-US')} entries in ${fmt((Date.now() - t) / 1000)} s\n`);

      const pinFirst: number[] = [];
      const filterFirst: number[] = [];
      for (let i = 0; i < VISITS; i++) {
        await openConsole(page, s.url, true);
        await logIn(page, s.auditorToken);
        await page.getByRole('navigation', { name: 'Console pages' }).getByRole('link', { name: 'Ledger', exact: true }).click();
        await page.getByLabel('Ledger key to pin').fill(s.fingerprint);
        const [ms] = await timeClick(page, STATUS, [CHECKPOINT_OK], false, () => page.getByRole('button', { name: 'Pin this key' }).click());
        const shown = await page.getByText(CHECKPOINT_OK).textContent();
        if (!shown?.includes(`: ${size} entries`)) throw new Error(`the ledger page verified a checkpoint other than ${size} entries: ${shown}`);
        pinFirst.push(ms!);
        filterFirst.push(await timeFilter(page));
      }

      const openLater: number[] = [];
      const consistentLater: number[] = [];
      const filterLater: number[] = [];
      for (let i = 0; i < VISITS; i++) {
        await openConsole(page, s.url);
        // The key pinned on the first visits stays; the saved checkpoint is the one at 90 %, as if seen then.
        await page.evaluate(({ key, saved }) => localStorage.setItem(key, JSON.stringify(saved)), { key: LAST, saved: { ...earlier, verifiedAt: new Date().toISOString() } });
        if (!(await page.evaluate((key) => localStorage.getItem(key), PIN))) throw new Error('the pinned key is not in localStorage after the first visits');
        await logIn(page, s.auditorToken);
        const link = page.getByRole('navigation', { name: 'Console pages' }).getByRole('link', { name: 'Ledger', exact: true });
        const [cp, cons] = await timeClick(page, STATUS, [CHECKPOINT_OK, CONSISTENT_OK], false, () => link.click());
        const shown = await page.getByText(CONSISTENT_OK).textContent();
        if (!shown?.includes(`(${earlier.size} entries): the ledger only grew`)) throw new Error(`the later visit checked consistency against something else: ${shown}`);
        openLater.push(cp!);
        consistentLater.push(cons!);
        filterLater.push(await timeFilter(page));
      }

      const search: number[] = [];
      const withProofs: number[] = [];
      for (let i = 0; i < VISITS; i++) {
        const u = await timeUnverified(page, s.auditorToken, size);
        search.push(u.search);
        withProofs.push(u.withProofs);
      }
      const n = size.toLocaleString('en-US');
      process.stderr.write(
        `  ledger ${n}: pin ${pinFirst.map((x) => fmt(x)).join(', ')}; filter first ${filterFirst.map((x) => fmt(x)).join(', ')}; later open ${openLater.map((x) => fmt(x)).join(', ')}; consistent ${consistentLater.map((x) => fmt(x)).join(', ')}; filter later ${filterLater.map((x) => fmt(x)).join(', ')}; unverified ${search.map((x) => fmt(x)).join(', ')}; +proofs ${withProofs.map((x) => fmt(x)).join(', ')} ms\n`,
      );
      const base = median(search);
      const ratio = (ms: number): string => `${fmt(ms / base)}×`;
      const unverified = `${fmt(base)} (search only)`;
      rows.push(
        [`ledger ${n}: first visit, Pin this key → ✔ Checkpoint verified`, 'ms, median of 5', fmt(median(pinFirst)), '—', '—'],
        [`ledger ${n}: first visit, Filter → ✔ All ${PAGE} entries verified`, 'ms, median of 5', fmt(median(filterFirst)), unverified, ratio(median(filterFirst))],
        [`ledger ${n}: later visit, Ledger link → ✔ Checkpoint verified`, 'ms, median of 5', fmt(median(openLater)), '—', '—'],
        [`ledger ${n}: later visit, Ledger link → ✔ Consistent (from ${earlier.size.toLocaleString('en-US')})`, 'ms, median of 5', fmt(median(consistentLater)), '—', '—'],
        [`ledger ${n}: later visit, Filter → ✔ All ${PAGE} entries verified`, 'ms, median of 5', fmt(median(filterLater)), unverified, ratio(median(filterLater))],
        [`ledger ${n}: unverified, search + its ${PAGE} inclusion proofs fetched`, 'ms, median of 5', fmt(median(withProofs)), unverified, ratio(median(withProofs))],
      );
    }
  } finally {
    await context.close();
  }
  return rows;
}

/** 5. Live status: each query's finishedAt to the Queries page showing it succeeded, and to a 250 ms poller seeing it. */
async function liveRows(browser: Browser, s: Service): Promise<(string | number)[][]> {
  const context = await newContext(browser);
  try {
    const page = await context.newPage();
    await openConsole(page, s.url);
    await logIn(page, s.auditorToken);
    await page.getByRole('navigation', { name: 'Console pages' }).getByRole('link', { name: 'Queries', exact: true }).click();
    await page.getByText('Live: updates as the coordinator records them.').waitFor({ timeout: WAIT_MS });
    await page.evaluate(() => {
      const seen: Record<string, number> = {};
      (window as unknown as { __seen: typeof seen }).__seen = seen;
      const check = (): void => {
        const now = Date.now();
        for (const row of document.querySelectorAll('tr[data-query]')) {
          const id = row.getAttribute('data-query')!;
          if (seen[id] === undefined && row.querySelector('.state.succeeded')) seen[id] = now;
        }
      };
      check();
      new MutationObserver(check).observe(document, { subtree: true, childList: true, characterData: true, attributes: true });
    });
    const live: number[] = [];
    const polled: number[] = [];
    // One untimed query first: JIT, the workers' connections, the stream's first change.
    for (let i = -1; i < QUERIES; i++) {
      // Each query would otherwise start just after the stream's last push and take about as long as the one before,
      // so it would end at the same point of the stream's 1 s period (and of the poller's) every time: query i waits
      // i/QUERIES of the stream's period before it is submitted, and the poller's first look i/QUERIES of its own.
      const spread = Math.max(0, i) / QUERIES;
      await sleep(spread * STREAM_PERIOD_MS);
      const id = await s.submit();
      await sleep(spread * CLI_POLL_MS);
      let view: QueryView;
      let polledAt: number;
      const deadline = Date.now() + WAIT_MS;
      for (;;) {
        view = await s.researcher.get<QueryView>(`/v1/queries/${id}`);
        polledAt = Date.now();
        if (view.status !== 'running') break;
        if (Date.now() > deadline) throw new Error(`query ${id} still running after ${WAIT_MS / 1000} s`);
        await sleep(CLI_POLL_MS);
      }
      if (view.status !== 'succeeded') throw new Error(`query ${id} ${view.status}: ${view.failureReason ?? 'no reason given'}`);
      checkResult(`query ${id}`, view.results as Protocol.StatResult[], s.expected);
      const seenAt = (await (
        await page.waitForFunction((q) => (window as unknown as { __seen: Record<string, number> }).__seen[q], id, { timeout: WAIT_MS })
      ).jsonValue()) as number;
      if (i < 0) continue;
      const finished = Date.parse(view.finishedAt!);
      live.push(seenAt - finished);
      polled.push(polledAt - finished);
    }
    process.stderr.write(`  live: SSE ${live.map((x) => fmt(x)).join(', ')} ms; polling ${polled.map((x) => fmt(x)).join(', ')} ms\n`);
    const row = (p: number): (string | number)[] => [
      `live status: query finishedAt → Queries page shows succeeded (SSE), p${p}`,
      `ms, ${QUERIES} queries`,
      fmt(percentile(live, p)),
      `${fmt(percentile(polled, p))} (poll every ${CLI_POLL_MS} ms)`,
      `${fmt(percentile(live, p) / percentile(polled, p))}×`,
    ];
    return [row(50), row(95)];
  } finally {
    await context.close();
  }
}

/**
 * Starts the coordinator (built dist, embedded SQLite, a private Redis) and three workers in this process, as
 * bench/e2e.bench.ts does, runs `fn` against it with Chromium, and stops all of it whatever happens.
 */
async function withService<T>(fn: (s: Service, browser: Browser) => Promise<T>): Promise<T> {
  const b = loadBuilt();
  return inTempDir(
    b,
    async (dir, redis) => {
      const prefix = runPrefix();
      const adminToken = randomBytes(24).toString('base64url');
      const workers: ParticipantWorkerModule.ParticipantWorker[] = [];
      const users: string[] = [];
      let coordinator: Bootstrap.RunningCoordinator | undefined;
      let browser: Browser | undefined;
      try {
        coordinator = await b.startCoordinator(
          b.loadConfig(benchCoordinatorEnv({ redis, dir, prefix, adminToken })),
        );
        const url = coordinator.url;
        const { files, texts } = writeData(b, join(dir, 'data'), 3);
        const logger = pino({ level: 'silent' });
        const study = await setUpStudy(b, url, adminToken, dir, files, users, async (home) => {
          const worker = new b.ParticipantWorker({ home, logger });
          workers.push(worker);
          await worker.start();
        });
        const admin = new b.CoordinatorClient(url, adminToken, 120_000);
        const auditorToken = (await admin.post<{ token: string }>('/v1/api-keys', { role: 'auditor', label: 'console bench auditor' })).token;
        const fingerprint = (await admin.get<{ fingerprint: string }>('/v1/coordinator')).fingerprint;
        browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
        const submit = async (): Promise<string> => (await b.submitQuery(study.researcher, { study: study.name, protocol: 'shamir', ...SPEC })).id;
        const service: Service = { url, admin, auditorToken, researcher: study.researcher, study: study.name, fingerprint, expected: expectedOf(b, texts), submit, browserVersion: browser.version() };
        return await fn(service, browser);
      } finally {
        await browser?.close().catch(() => undefined);
        await Promise.allSettled(workers.map((w) => w.stop()));
        await coordinator?.close().catch(() => undefined);
        await cleanupRedis(redis.adminUrl, prefix, users).catch(() => undefined);
      }
    },
    'console',
  );
}

/** `npm run bench -- console`. */
export async function consoleBench(): Promise<BenchSection> {
  preflight();
  const started = Date.now();
  const loadBefore = loadNote();
  const rows: (string | number)[][] = bundleRows();
  process.stderr.write('  compute: verifyInclusion, WebCrypto vs node:crypto…\n');
  const compute = await computeRows();
  const version = await withService(async (s, browser) => {
    process.stderr.write('  login…\n');
    rows.push(...(await loginRows(browser, s)));
    rows.push(...(await ledgerRows(browser, s)));
    process.stderr.write('  live status…\n');
    rows.push(...(await liveRows(browser, s)));
    return s.browserVersion;
  });
  rows.push(...compute);
  return {
    id: 'console',
    title: 'Browser console (issue 14): bundle, login, in-browser ledger verification, live status',
    method: [
      `Headless Chromium ${version} (${CHROMIUM}, \`--no-sandbox\`, driven by playwright-core as test/e2e/console.e2e-spec.ts does) against a real coordinator: the built dist (\`startCoordinator\` in the bench's process, as bench/e2e.bench.ts runs it), embedded SQLite, a private redis-server, three participant workers enrolled in the synthetic salary study. The console is the Vite bundle in dist/console the coordinator serves at /console. Times in the browser are taken in the page (performance.now, or Date.now for the live status), by a MutationObserver on the document and a capturing click/keydown listener, not across the DevTools protocol; the clicks and keys themselves are playwright's, as a user's.`,
      `**Bundle**: every .js and .css file in dist/console/assets, raw and gzip (node:zlib, level 9). **Login**: ${VISITS} fresh browser contexts (cold cache, empty storage): from the navigation's start (performance.now's origin) to the key field being in the DOM; then from Enter in the key field to the Studies table listing the study (GET /v1/whoami, then GET /v1/studies); medians.`,
      `**Ledger**: the ledger is grown by POST /v1/api-keys as admin (${GROW_CONCURRENCY} at a time, one \`apikey.created\` entry each) to 90 % of each size, its checkpoint noted, then to the size. At each size, ${VISITS} **first visits** (localStorage cleared, logged in as an auditor): from clicking "Pin this key" with the fingerprint of GET /v1/coordinator (GET the public key, check its fingerprint, GET and verify the signed checkpoint with Ed25519) to "✔ Checkpoint verified"; then, the newest ${PAGE} entries having been listed and verified once, from clicking Filter (same filter: the list is fetched and verified again) to "✔ All ${PAGE} entries on this page verified" (GET /v1/ledger/entries/search, ${PAGE} GET /v1/ledger/proof/inclusion concurrently, each entry's leaf hash and proof recomputed to the signed root with WebCrypto). Then ${VISITS} **later visits**: the key stays pinned in localStorage (so there is no Pin click: the timer starts at the click on the Ledger link, which starts the same checkpoint check), and the saved checkpoint is the one at 90 % of the size, so the page also fetches and verifies a consistency proof: to "✔ Checkpoint verified", to "✔ Consistent with…", and Filter as above. **Unverified baseline**, in the same page: \`fetch\` of the same /v1/ledger/entries/search?limit=${PAGE}&before=SIZE with the bearer key, JSON parsed, median of ${VISITS}; the ratio column is verified/unverified. A further row fetches the search and its ${PAGE} inclusion proofs without verifying them, which splits the verified time into requests and compute.`,
      `**Live status**: the auditor's Queries page open (GET /v1/queries/events over fetch; the coordinator checks for changes every ${STREAM_PERIOD_MS} ms and pushes the newest 20 views), ${QUERIES} shamir queries (mean and count of salary, 3 participants, submitted as \`confide query\` does) one after another, after one untimed; each checked exact against the plaintext. Query i (0–${QUERIES - 1}) is submitted i/${QUERIES} of the stream's ${STREAM_PERIOD_MS} ms period after the previous one was seen done, and its poller's first look comes i/${QUERIES} of ${CLI_POLL_MS} ms after submission, so that the queries end at points spread over both periods rather than at the same point each time. For each, from its finishedAt (the coordinator's clock, same machine) to the page's row showing "succeeded" (Date.now in a MutationObserver); baseline on the same queries, a client in the bench process polling GET /v1/queries/:id every ${CLI_POLL_MS} ms, as \`confide query --wait\` does (apps/cli/src/commands/query.ts polls every 250 ms), to the first answer saying succeeded. p50/p95 nearest-rank. **Compute**: in this Node process, apps/console/src/ledger-verify.ts's verifyInclusion (crypto.subtle SHA-256, awaited per node hash) against libs/ledger's verifyInclusion (node:crypto createHash) over the same ${COMPUTE_PROOFS.toLocaleString('en-US')} inclusion proofs (every ${COMPUTE_TREE / COMPUTE_PROOFS}th leaf, offset) of a ${COMPUTE_TREE.toLocaleString('en-US')}-leaf tree built with appendLeaves into a MemoryNodeStore; median of repeated passes over all of them.`,
    ].join('\n\n'),
    columns: ['measured', 'unit', 'console', 'baseline', 'ratio'],
    rows,
    notes: `The whole run took ${fmt((Date.now() - started) / 60_000)} min. ${loadBefore} At its end: ${loadNote().replace('Load average when the run started: ', '')}`,
  };
}
