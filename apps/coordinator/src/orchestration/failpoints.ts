/**
 * Fault points for crash tests, in the spirit of FoundationDB's and TiKV's failpoints: `CONFIDE_FAILPOINT` names
 * points in the orchestrator's transitions where the process dies (SIGKILL, as a power cut) or the step throws,
 * so the tests can show that every query still ends exact or failed with its reason, and the ledger verifies.
 * TEST ONLY: never set it in production. Unset, {@link Failpoints.hit} is one Set lookup.
 *
 *   CONFIDE_FAILPOINT=round1.committed:crash
 *   CONFIDE_FAILPOINT=plan.appended:crash,result.committed:error
 */

/**
 * Every point, in the order a query meets them. `*.appended`: inside the transition's transaction, after its ledger
 * entry (a crash rolls the whole transition back). `*.committed`: after the commit, before any effect on Redis.
 */
export const FAILPOINTS = [
  'plan.appended',
  'plan.committed',
  'aggregation.queued',
  'round1.appended',
  'round1.committed',
  'result.appended',
  'result.committed',
  'failed.committed',
] as const;

export type FailpointName = (typeof FAILPOINTS)[number];
type Action = 'crash' | 'error';

/** Thrown at a point whose action is `error`. */
export class FailpointError extends Error {
  override readonly name = 'FailpointError';
}

export class Failpoints {
  private readonly actions = new Map<FailpointName, Action>();

  /**
   * @param spec `name:action[,name:action]`, action `crash` or `error`; empty or undefined for none
   * @throws TypeError naming an unknown point or action, so a typo does not silently test nothing
   */
  constructor(spec: string | undefined) {
    for (const item of (spec ?? '').split(',').map((s) => s.trim()).filter(Boolean)) {
      const [name, action = 'crash'] = item.split(':');
      if (!(FAILPOINTS as readonly string[]).includes(name!)) throw new TypeError(`CONFIDE_FAILPOINT: unknown point "${name}" (known: ${FAILPOINTS.join(', ')})`);
      if (action !== 'crash' && action !== 'error') throw new TypeError(`CONFIDE_FAILPOINT: unknown action "${action}" for ${name} (crash or error)`);
      this.actions.set(name as FailpointName, action);
    }
  }

  /** The points that are set, for the boot warning. */
  get armed(): string[] {
    return [...this.actions].map(([name, action]) => `${name}:${action}`);
  }

  /** Dies or throws here when this point is set. */
  hit(name: FailpointName): void {
    const action = this.actions.get(name);
    if (action === undefined) return;
    if (action === 'error') throw new FailpointError(`failpoint ${name}`);
    // What a crash looks like from outside: no exit handlers, no flush, no graceful close.
    process.stderr.write(`failpoint ${name}: crashing\n`);
    process.kill(process.pid, 'SIGKILL');
  }
}
