import { writeFileSync } from 'node:fs';
import { queryOfJob } from '@confide/queue';
import { join } from 'node:path';
import { Cluster, type ParticipantProcess, until } from './cluster';
import { singleJson } from './cli';
import { expectedSalaryResults, SALARY_SELECT, salaryResultsMismatch } from './salary-query';
import { generateSalaryCsv, syntheticSalaryStudy } from './synthetic';
import { thaw } from './task-queues';

/**
 * The cluster the issue-12 fault tests play their faults on (test/e2e/faults.e2e-spec.ts), here so that
 * bench/recovery.bench.ts times recovery on the same set-up the tests check it on. The `expect*` methods use Jest's
 * global `expect` and are for the tests only; the others run anywhere.
 */

export type Protocol = 'shamir' | 'paillier';
export const SITES = 3;
/** How long after a fault clears a new query must be done (the issue's bound). */
export const RECOVERY_MS = 10_000;

export interface Query {
  id: string;
  status: string;
  results?: unknown;
  participants?: number;
  failureReason?: string;
}

/** A cluster with three salary sites, a researcher who can run both protocols, and helpers to drive queries. */
export class Harness {
  readonly texts: string[] = [];
  readonly sites: ParticipantProcess[] = [];
  researcher = '';
  auditor = '';
  identityFile = '';
  keyFile = '';

  private constructor(readonly cluster: Cluster) {}

  static async start(options: Parameters<typeof Cluster.start>[0]): Promise<Harness> {
    const h = new Harness(await Cluster.start({ round1Seconds: 20, round2Seconds: 20, ...options, env: { CONFIDE_SWEEP_SECONDS: '2', ...options.env } }));
    const study = await h.cluster.createStudy(syntheticSalaryStudy());
    for (let i = 1; i <= SITES; i++) {
      const csv = join(h.cluster.dir, `site-${i}.csv`);
      const text = generateSalaryCsv(7300 + i, 30);
      writeFileSync(csv, text);
      h.texts.push(text);
      const p = await h.cluster.enroll(study, `site-${i}`, csv);
      h.sites.push(p);
      await h.cluster.run(p);
    }
    let token: string;
    ({ token, identityFile: h.identityFile } = await h.cluster.researcher());
    h.researcher = token;
    h.auditor = await h.cluster.apiKey('auditor');
    h.keyFile = join(h.cluster.dir, 'researcher-paillier.json');
    await h.cluster.cliJson(['keys', 'paillier', '--out', h.keyFile, '--bits', '2048'], null);
    return h;
  }

  /**
   * Submits a query with the CLI, as a researcher does (to the coordinator at `url`, by default the cluster's); the
   * id, or undefined when the coordinator died first.
   */
  async submit(protocol: Protocol, deadlineSeconds = 20, url = this.cluster.url): Promise<string | undefined> {
    const extra = protocol === 'paillier' ? ['--protocol', 'paillier', '--key', this.keyFile, '--identity', this.identityFile] : ['--protocol', 'shamir'];
    const r = await this.cluster.cli(['query', '--study', 'salaries', ...extra, ...SALARY_SELECT, '--deadline', String(deadlineSeconds), '--json'], this.researcher, undefined, url);
    if (r.code !== 0) return undefined;
    return String(singleJson(r.stdout).id);
  }

  async query(id: string): Promise<Query> {
    return this.cluster.get<Query>(`/v1/queries/${id}`, this.researcher);
  }

  /**
   * Follows a query to its end, decrypting a paillier aggregate as its key holder when it is ready (again after a
   * crash: `query decrypt` is what the researcher reruns). Tolerates a coordinator that is down for a while.
   */
  async finish(id: string, timeoutMs = 60_000, intervalMs = 250): Promise<Query> {
    return until(`query ${id} to end`, timeoutMs, async () => {
      const q = await this.cluster.get<Query & { awaitingDecryption?: boolean }>(`/v1/queries/${id}`, this.researcher);
      if (q.status !== 'running') return q;
      if (q.awaitingDecryption) await this.cluster.cli(['query', 'decrypt', id, '--key', this.keyFile, '--json'], this.researcher);
      return undefined;
    }, { intervalMs });
  }

  /** Every query the ledger knows of. */
  async loggedQueries(): Promise<string[]> {
    const { events } = await this.cluster.get<{ events: { type: string; body: { queryId?: string } }[] }>('/v1/events?limit=1000', this.auditor);
    return events.filter((e) => e.type === 'query.submitted').map((e) => String(e.body.queryId));
  }

  /**
   * What every fault test ends with: no query in the ledger is still running once its deadline and the sweep have
   * passed, each one ended exact (over all sites: none may be counted twice or left out) or failed with a reason,
   * and the ledger verifies.
   * @returns how many succeeded and failed
   */
  async expectSettled(): Promise<{ succeeded: number; failed: number }> {
    const counts = { succeeded: 0, failed: 0 };
    for (const id of await this.loggedQueries()) {
      const q = await this.finish(id, 90_000);
      if (q.status === 'succeeded') {
        expect({ id, participants: q.participants, results: q.results }).toEqual({ id, participants: SITES, results: expectedSalaryResults(this.texts) });
        counts.succeeded++;
      } else {
        expect({ id, status: q.status, reason: q.failureReason }).toEqual({ id, status: 'failed', reason: expect.stringMatching(/\S/) as string });
        counts.failed++;
      }
    }
    await this.expectLedgerVerifies();
    await this.expectNoAnswersLeft();
    return counts;
  }

  /**
   * Once every query ended, none of their answers stays in a BullMQ events stream (each `completed` entry carries its
   * job's return value), across the fault: entries written before a restart, which no listener of the new process read,
   * included. Waits a few seconds for cleanups under way, well under the timer's whole-stream backstop (5 minutes).
   */
  async expectNoAnswersLeft(): Promise<void> {
    const ended = new Set(await this.loggedQueries());
    const left = async (): Promise<string[]> => (await this.cluster.completedInStreams()).filter((jobId) => ended.has(queryOfJob(jobId) ?? ''));
    await until('no ended query left answers in the events streams', 8_000, async () => ((await left()).length === 0 ? true : undefined)).catch(() => undefined);
    expect(await left()).toEqual([]);
  }

  async expectLedgerVerifies(): Promise<void> {
    const r = await this.cluster.cli(['ledger', 'verify', '--json'], this.auditor);
    expect({ code: r.code, out: r.code === 0 ? 'ok' : r.stdout + r.stderr }).toEqual({ code: 0, out: 'ok' });
    // No ledger index skipped or taken twice.
    const { events } = await this.cluster.get<{ events: { index: number }[] }>('/v1/events?limit=1000', this.auditor);
    expect(events.map((e) => e.index)).toEqual(events.map((_, i) => i));
  }

  /**
   * Submits a new query of `protocol`, again and again until the coordinator accepts one (within `acceptMs`), and
   * follows it to its end (within `finishMs`, polling every `intervalMs`). Judges nothing: `took` is from `since` to
   * the poll that saw it end, whatever its outcome.
   */
  async freshQuery(protocol: Protocol, since: number, { acceptMs = RECOVERY_MS, finishMs = RECOVERY_MS + 20_000, intervalMs = 250 } = {}): Promise<{ query: Query; took: number }> {
    const id = await until('a new query to be accepted', acceptMs, () => this.submit(protocol));
    const query = await this.finish(id, finishMs, intervalMs);
    return { query, took: Date.now() - since };
  }

  /** Why a query did not succeed exactly over every site (the fault tests' bar, without Jest), or undefined when it did. */
  inexact(q: Query): string | undefined {
    if (q.status !== 'succeeded') return `query ${q.id} ended ${q.status}${q.failureReason ? `: ${q.failureReason}` : ''}`;
    if (q.participants !== SITES) return `query ${q.id} counted ${q.participants} participants, not ${SITES}`;
    const mismatch = salaryResultsMismatch(q.results, this.texts);
    return mismatch && `query ${q.id}: ${mismatch}`;
  }

  /** A new query of `protocol` succeeds, exact, within {@link RECOVERY_MS} of `since`. */
  async expectFreshQueryBy(protocol: Protocol, since: number): Promise<number> {
    const { query: q, took } = await this.freshQuery(protocol, since);
    expect({ status: q.status, participants: q.participants, results: q.results }).toEqual({ status: 'succeeded', participants: SITES, results: expectedSalaryResults(this.texts) });
    expect(took).toBeLessThan(RECOVERY_MS);
    return took;
  }

  async stop(): Promise<void> {
    this.sites.forEach(thaw);
    await this.cluster.stop();
  }
}
