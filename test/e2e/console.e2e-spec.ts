/// <reference lib="dom" />
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import axe from 'axe-core';
import Database from 'better-sqlite3';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { ROOT } from '../support/cli';
import { Cluster, type ParticipantProcess, until } from '../support/cluster';

/**
 * Issue 14, the console, in real headless Chromium (Debian's `chromium`, driven by playwright-core) against a real
 * coordinator on SQLite and three real participant workers: log in, watch a participant go offline, follow a query
 * to its result over server-sent events, verify ledger entries in the browser and see a tampered one fail, and
 * revoke a key and see its next request refused. Every page is checked with axe-core, and the screenshots land in
 * dist/console-screenshots (the README's come from there).
 */

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const SHOTS = join(ROOT, 'dist', 'console-screenshots');
const BEAT = { CONFIDE_HEARTBEAT_SECONDS: '1' };

/** Ten records per site; site 1 holds the only two assistant professors, a group below the minimum of 5. */
function csv(site: number): string {
  const rows = ['salary,yrs_since_phd,rank,sex'];
  for (let i = 0; i < 10; i++) {
    const rank = site === 1 && i < 2 ? 'AsstProf' : i % 2 === 0 ? 'Prof' : 'AssocProf';
    rows.push(`${60000 + 1000 * site + 137 * i},${5 + i},${rank},${i % 3 === 0 ? 'Female' : 'Male'}`);
  }
  return `${rows.join('\n')}\n`;
}

describe('console in a real browser (Chromium, three participant processes, SQLite)', () => {
  let cluster: Cluster;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let auditor: string;
  let researcher: string;
  let fingerprint: string;
  /** The query the live-status test followed to its result. */
  let followed = '';
  const sites: ParticipantProcess[] = [];

  const url = (hash = ''): string => `${cluster.url}/console/${hash}`;
  const shot = (name: string, p: Page = page) => p.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });

  /** axe-core in the page: no violation of WCAG 2.x A/AA rules (labels, names, contrast, landmarks). */
  async function accessible(p: Page, where: string): Promise<void> {
    // Evaluated through the DevTools protocol, which the page's CSP does not govern (the page itself allows no inline script).
    await p.evaluate(axe.source);
    const violations = await p.evaluate(async () => {
      const result = await (window as unknown as { axe: typeof axe }).axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } });
      return result.violations.map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(' ')).join('; ')})`);
    });
    expect({ where, violations }).toEqual({ where, violations: [] });
  }

  /** A link of the console's page navigation. */
  const nav = (p: Page, name: string) => p.getByRole('navigation', { name: 'Console pages' }).getByRole('link', { name, exact: true });

  /** Logs in as a user does: Tab to the key field, type, Enter. */
  async function logIn(p: Page, key: string): Promise<void> {
    await p.goto(url());
    await p.keyboard.press('Tab');
    await expect(p.evaluate(() => document.activeElement?.id)).resolves.toBe('api-key');
    await p.keyboard.type(key);
    await p.keyboard.press('Enter');
  }

  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: install Debian's chromium (apt-get install chromium; .ci/run does), or set CHROMIUM_PATH`);
    mkdirSync(SHOTS, { recursive: true });
    cluster = await Cluster.start({ database: 'sqlite', env: { CONFIDE_ONLINE_SECONDS: '5' } });
    const fields = [
      { name: 'salary', type: 'number', min: 30000, max: 400000, decimals: 2 },
      { name: 'yrs_since_phd', type: 'number', min: 0, max: 60, decimals: 0 },
      { name: 'rank', type: 'category', values: ['AsstProf', 'AssocProf', 'Prof'] },
      { name: 'sex', type: 'category', values: ['Female', 'Male'] },
    ];
    await cluster.createStudy({ name: 'salaries', minParticipants: 3, outOfRange: 'reject', fields, privacy: { minGroupSize: 5 } } as { name: string });
    await cluster.createStudy({ name: 'cohort', minParticipants: 3, fields, privacy: { minGroupSize: 5, dp: { mechanism: 'laplace', epsilon: 0.5, budget: { epsilon: 2 } } } } as { name: string });
    for (let i = 1; i <= 3; i++) {
      const file = join(cluster.dir, `site-${i}.csv`);
      writeFileSync(file, csv(i));
      const p = await cluster.enroll('salaries', `site-${i}`, file);
      await cluster.run(p, BEAT);
      sites.push(p);
    }
    auditor = await cluster.apiKey('auditor');
    researcher = await cluster.apiKey('researcher');
    fingerprint = (await cluster.get<{ fingerprint: string }>('/v1/coordinator')).fingerprint;
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
    context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    page = await context.newPage();
  }, 180_000);
  afterAll(async () => {
    await browser?.close();
    await cluster?.stop();
  }, 60_000);

  it('serves the console under a CSP of its own origin only, and refuses a researcher key and an unknown one at the login', async () => {
    const res = await page.goto(url());
    expect(res?.status()).toBe(200);
    expect(res?.headers()['content-security-policy']).toMatch(/default-src 'none'; script-src 'self'; style-src 'self'/);
    await accessible(page, 'login');
    await logIn(page, researcher);
    await expect(page.getByRole('alert').textContent()).resolves.toMatch(/the console is for admin and auditor keys; this is a researcher key/);
    await logIn(page, 'cfd_key_not-a-key-at-all');
    await expect(page.getByRole('alert').textContent()).resolves.toMatch(/Refused: unknown API key/);
  }, 60_000);

  it('logs an auditor in with the key held in memory only: nothing in storage or cookies, and gone on reload', async () => {
    await logIn(page, auditor);
    await page.getByRole('heading', { name: 'Studies' }).waitFor();
    // An auditor sees no admin page.
    await expect(nav(page, 'API keys').count()).resolves.toBe(0);
    await expect(nav(page, 'Ledger').count()).resolves.toBe(1);
    const stored = await page.evaluate(() => JSON.stringify({ local: { ...localStorage }, session: { ...sessionStorage }, cookie: document.cookie }));
    expect(stored).not.toContain(auditor);
    await accessible(page, 'studies');
    await page.reload();
    await page.getByLabel('API key').waitFor();
    await logIn(page, auditor);
    await page.getByRole('heading', { name: 'Studies' }).waitFor();
  }, 60_000);

  it("shows a study's participants online, one offline once its worker is stopped, and a DP study's budget", async () => {
    await page.getByRole('link', { name: 'salaries' }).click();
    const state = (name: string) => page.locator(`tr[data-participant="${name}"] .state`);
    for (const s of ['site-1', 'site-2', 'site-3']) await expect(state(s).textContent()).resolves.toBe('online');
    await expect(page.getByRole('heading', { name: /Participants: 3 of 3 online/ }).count()).resolves.toBe(1);
    await accessible(page, 'study');
    await shot('study-online');

    await cluster.kill(sites[2]!, 'SIGTERM');
    // The page refreshes every 3 s; a stopped worker says goodbye and is offline at once.
    await page.locator('tr[data-participant="site-3"] .state', { hasText: 'offline' }).waitFor({ timeout: 8_000 });
    await expect(page.getByRole('heading', { name: /Participants: 2 of 3 online/ }).count()).resolves.toBe(1);
    await shot('study-offline');

    await page.goto(url('#/studies/cohort'));
    await expect(page.getByTestId('budget-left').textContent()).resolves.toBe('ε 2 of 2, δ 0 of 0');
  }, 60_000);

  it("follows a query over server-sent events from its open round to its result, with suppressed cells marked", async () => {
    await page.goto(url('#/queries'));
    await page.getByText('Live: updates as the coordinator records them.').waitFor();
    // site-3 is stopped: round 1 waits for it, and the page shows 2 of 3 answered, live.
    const submitted = await cluster.cliJson(['query', '--study', 'salaries', '--stat', 'count', '--field', 'salary', '--stat', 'mean', '--field', 'salary', '--group-by', 'rank', '--deadline', '60', '--allow-offline'], researcher);
    const id = String(submitted.id);
    followed = id;
    const row = page.locator(`tr[data-query="${id}"]`);
    await row.locator('td', { hasText: '2 of 3' }).waitFor({ timeout: 15_000 });
    await expect(row.locator('.state').textContent()).resolves.toBe('running');
    await shot('query-running');
    await cluster.run(sites[2]!, BEAT);
    await row.locator('.state', { hasText: 'succeeded' }).waitFor({ timeout: 30_000 });
    const view = await cluster.get<{ ledgerIndex: number; results: { stat: string; group: string; value: number | null; suppressed: boolean }[] }>(`/v1/queries/${id}`, auditor);
    await expect(row.locator('td').last().textContent()).resolves.toBe(String(view.ledgerIndex));
    await row.getByRole('button', { name: id }).click();
    const detail = page.locator(`#detail-${id}`);
    await expect(detail.locator('caption').textContent()).resolves.toMatch(/cell\(s\) suppressed below the minimum group size/);
    // AsstProf (2 records) is suppressed, and with it its complement; the released counts are the service's.
    expect(view.results.find((r) => r.group === 'AsstProf' && r.stat === 'count')).toMatchObject({ value: null, suppressed: true });
    await expect(detail.locator('tr.suppressed').count()).resolves.toBe(view.results.filter((r) => r.suppressed).length);
    for (const r of view.results.filter((x) => !x.suppressed && x.stat === 'count')) {
      const cells = detail.locator('tbody tr').filter({ has: page.locator('th', { hasText: 'count(salary)' }) }).filter({ has: page.getByRole('cell', { name: r.group, exact: true }) }).locator('td');
      await expect(cells.nth(1).textContent()).resolves.toBe(String(r.value));
    }
    await accessible(page, 'queries');
    await shot('query-result');
  }, 90_000);

  it('refuses to pin a fingerprint the served key does not have, then verifies the checkpoint and every listed entry in the browser against the pinned one', async () => {
    await nav(page, 'Ledger').click();
    const wrong = `${fingerprint.slice(0, 63)}${fingerprint.endsWith('0') ? '1' : '0'}`;
    await page.getByLabel('Ledger key to pin').fill(wrong);
    await page.getByRole('button', { name: 'Pin this key' }).click();
    await page.getByRole('alert').filter({ hasText: `the coordinator's key has fingerprint ${fingerprint}, not the pinned ${wrong}` }).waitFor();
    await expect(page.evaluate(() => localStorage.getItem('confide.console.verifierKey'))).resolves.toBeNull();
    await page.getByLabel('Ledger key to pin').fill(fingerprint);
    await page.getByRole('button', { name: 'Pin this key' }).click();
    const verified = page.getByText(/✔ Checkpoint verified: \d+ entries/);
    await verified.waitFor();
    const size = Number(/(\d+) entries/.exec((await verified.textContent())!)![1]);
    expect(size).toBeGreaterThanOrEqual(12);
    // The newest page (up to 25 entries), each recomputed to the signed root in the page.
    await page.getByText(`✔ All ${Math.min(25, size)} entries on this page verified against the signed checkpoint.`).waitFor();
    await expect(page.locator('tr[data-entry] .state.verified').count()).resolves.toBe(Math.min(25, size));
    await page.locator('tr[data-entry="1"]').getByRole('button', { name: '1' }).click();
    await expect(page.locator('#entry-1 pre').textContent()).resolves.toMatch(/"name": "salaries"/);
    // Its inclusion proof, as served and recomputed: the coordinator's own proof for the same entry and size.
    const served = await cluster.get<{ proof: string[] }>(`/v1/ledger/proof/inclusion?index=1&treeSize=${size}`, auditor);
    await expect(page.locator('#entry-1 ol.proof code').allTextContents()).resolves.toEqual(served.proof);
    await accessible(page, 'ledger');
    await shot('ledger-verified');
    // Filtered by query: only that query's entries, each verified.
    await page.getByLabel('Type').selectOption('result.released');
    await page.getByRole('button', { name: 'Filter' }).click();
    await page.getByText(/✔ All 1 entries on this page verified/).waitFor();
    // Filtered by query: exactly the entries that name it (submitted, committee, rounds, result), each verified.
    const events = await cluster.get<{ events: { index: number; body: { queryId?: string } }[] }>('/v1/events?limit=1000', auditor);
    const ofQuery = events.events.filter((e) => e.body.queryId === followed).map((e) => String(e.index));
    expect(ofQuery.length).toBeGreaterThanOrEqual(4);
    await page.getByLabel('Type').selectOption('');
    await page.getByLabel('Query id').fill(followed);
    await page.getByRole('button', { name: 'Filter' }).click();
    await page.getByText(`✔ All ${ofQuery.length} entries on this page verified against the signed checkpoint.`).waitFor();
    await expect(page.locator('tr[data-entry]').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-entry')))).resolves.toEqual([...ofQuery].reverse());
  }, 60_000);

  it('shows an entry altered in the database as failed after a reload, naming its index, while the checkpoint still verifies', async () => {
    const db = new Database(join(cluster.dir, 'coordinator', 'confide.sqlite'));
    const row = db.prepare('select body from events where idx = 3').get() as { body: string };
    db.prepare('update events set body = ? where idx = 3').run(row.body.replace('"name":"site-1"', '"name":"site-X"'));
    db.close();
    expect(row.body).toContain('"name":"site-1"');

    await page.reload();
    await logIn(page, auditor);
    await nav(page, 'Ledger').click();
    await page.getByText(/✔ Checkpoint verified/).waitFor();
    // The checkpoint saved on the last visit: the ledger only grew since.
    await page.getByText(/✔ Consistent with the checkpoint this browser verified at/).waitFor();
    // The newest page (the whole ledger here) names the one entry that fails; filtered to enrollments, the same.
    await page.getByRole('alert').filter({ hasText: /^✘ 1 of \d+ entries on this page FAILED verification: entry 3\.$/ }).waitFor();
    await page.getByLabel('Type').selectOption('participant.enrolled');
    await page.getByRole('button', { name: 'Filter' }).click();
    await page.getByRole('alert').filter({ hasText: '✘ 1 of 3 entries on this page FAILED verification: entry 3.' }).waitFor();
    await expect(page.locator('tr[data-entry="3"] .state.failed').textContent()).resolves.toMatch(/failed: entry 3 does not match the signed checkpoint/);
    await expect(page.locator('tr[data-entry] .state.verified').count()).resolves.toBe(2);
    await shot('ledger-tampered');
  }, 60_000);

  it('reports a ledger that does not extend the checkpoint verified on the last visit', async () => {
    // What a forked ledger looks like from this browser: the checkpoint it saved is not in the coordinator's history.
    await page.evaluate(() => {
      const saved = JSON.parse(localStorage.getItem('confide.console.lastCheckpoint')!) as { size: number; root: string };
      localStorage.setItem('confide.console.lastCheckpoint', JSON.stringify({ ...saved, size: saved.size - 1, root: btoa(String.fromCharCode(...new Uint8Array(32).fill(7))) }));
    });
    await page.getByRole('button', { name: 'Check again' }).click();
    await page.getByText(/✘ The consistency with your last visit FAILED verification: the ledger at \d+ entries does not extend the one verified at \d+: it was rewritten/).waitFor();
  }, 30_000);

  it('lets an admin create and revoke a key; the revoked key’s open session is logged out on its next request, saying why', async () => {
    const admin = await context.browser()!.newContext();
    const adminPage = await admin.newPage();
    await logIn(adminPage, cluster.adminToken);
    await nav(adminPage, 'API keys').click();
    await adminPage.getByLabel('Role').selectOption('auditor');
    await adminPage.getByLabel('Label').fill('temporary auditor');
    await adminPage.getByRole('button', { name: 'Create key' }).click();
    const token = (await adminPage.locator('code.secret').textContent())!;
    expect(token).toMatch(/^cfd_key_/);
    await accessible(adminPage, 'keys');

    const temp = await context.browser()!.newContext();
    const tempPage = await temp.newPage();
    await logIn(tempPage, token);
    await tempPage.goto(url('#/health'));
    await tempPage.getByRole('heading', { name: 'Health' }).waitFor();

    adminPage.once('dialog', (d) => void d.accept());
    await adminPage.getByRole('button', { name: 'Revoke key temporary auditor' }).click();
    await adminPage.getByText(/Revoked auditor key temporary auditor at/).waitFor();
    await shot('keys-revoked', adminPage);
    // The health page polls every 5 s: its next request is refused, and the session ends with the reason.
    await tempPage.getByText(/Logged out: 401: API key [0-9a-f-]{36} was revoked at \d{4}-/).waitFor({ timeout: 10_000 });
    await admin.close();
    await temp.close();
  }, 60_000);

  it('shows the health page: database and Redis up, queue depths, and failures by reason', async () => {
    // A query that cannot finish: site-3 stopped, a 2 s deadline.
    await cluster.kill(sites[2]!, 'SIGTERM');
    const failing = await cluster.cliJson(['query', '--study', 'salaries', '--stat', 'count', '--field', 'salary', '--deadline', '2', '--allow-offline'], researcher);
    await until('the query to fail', 30_000, async () => ((await cluster.get<{ status: string }>(`/v1/queries/${String(failing.id)}`, auditor)).status === 'failed' ? true : undefined));
    await page.goto(url('#/health'));
    const deps = page.getByRole('region', { name: 'Dependencies' });
    await deps.locator('.state').first().waitFor();
    await expect(deps.locator('.state').allTextContents()).resolves.toEqual(['up', 'up']);
    await page.getByRole('table', { name: /Failures in the last 60 minutes, by reason/ }).locator('tbody tr', { hasText: 'too_few_answers' }).waitFor({ timeout: 10_000 });
    await page.getByRole('table', { name: 'Recent failures' }).getByText(String(failing.id)).waitFor();
    await accessible(page, 'health');
    await shot('health');
    await cluster.run(sites[2]!, BEAT);
  }, 60_000);
});
