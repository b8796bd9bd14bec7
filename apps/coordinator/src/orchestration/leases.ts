import { isDatabaseOutage } from '../db/database';
import type { Lease, LeaseRepository, RepositorySet } from '../db/repositories';
import type { Logger } from '../logging';

/**
 * Coordinator replicas (issue 15): several `confide coordinator start` processes share one PostgreSQL and one Redis,
 * and each running query is driven by exactly one of them at a time, the holder of its lease (db/repositories.ts
 * LeaseRepository). A replica renews its leases every `renewMs`; one that dies stops renewing, and after `leaseMs`
 * another takes its queries over. Every transition's transaction checks the fencing token ({@link LeaseKeeper.fence}),
 * so a replica that was paused past its lease (a long GC, a frozen VM) and lost it cannot commit over the new holder.
 *
 * SQLite is one process: its leases are all taken back at boot, whoever held them, and the same code path then holds
 * them for good.
 */

/** Thrown inside a transition's transaction when this replica no longer holds the query's lease: nothing commits. */
export class LeaseLostError extends Error {
  override readonly name = 'LeaseLostError';
  constructor(readonly queryId: string, message: string) {
    super(message);
  }
}

export interface LeaseSettings {
  /** This replica's name in the leases table. */
  readonly replicaId: string;
  /** How long a lease holds without renewal. */
  readonly leaseMs: number;
  /** How often leases are renewed, free ones taken, and {@link LeaseKeeper}'s `onPass` called. */
  readonly renewMs: number;
  /** At boot, take back every lease whoever held it (SQLite: one process only), not just this replica id's. */
  readonly reclaimAll: boolean;
}

/** How many expired leases one look takes at most: the rest wait a pass, or go to another replica. */
const ACQUIRE_LIMIT = 100;

/** The leases this process holds, kept in memory and renewed in the database on a timer. */
export class LeaseKeeper {
  private readonly held = new Map<string, Lease>();
  private timer?: NodeJS.Timeout;
  private passing?: Promise<string[]>;
  private adoptedAt = 0;
  private stopped = false;

  /**
   * @param repos the repositories over the database (not a transaction)
   * @param onPass called after each pass with the queries it took (or took back after a lapse), to drive them
   * @param clock the time in ms (injected in tests)
   */
  constructor(
    private readonly repos: Pick<RepositorySet, 'leases'>,
    readonly settings: LeaseSettings,
    private readonly logger: Logger,
    private readonly onPass: (taken: readonly string[]) => void = () => undefined,
    private readonly clock: () => number = Date.now,
  ) {}

  private get leases(): LeaseRepository {
    return this.repos.leases;
  }

  get replicaId(): string {
    return this.settings.replicaId;
  }

  /**
   * Boot: takes back the leases this replica id held before a restart (every lease on SQLite), then looks for free
   * ones, and starts the timer.
   * @returns the queries it holds
   */
  async start(): Promise<string[]> {
    // A live lease of this id was this replica's before it restarted (or is held by a process wrongly given the same
    // id, which the new token fences out). On SQLite every lease was this process's, whatever id it had then.
    const mine = await this.leases.reclaim(this.replicaId, this.clock(), this.settings.leaseMs, { every: this.settings.reclaimAll });
    for (const lease of mine) this.held.set(lease.queryId, lease);
    const taken = await this.pass();
    // A database outage is reported once by its own watch (health/dependencies.ts); meanwhile each failed pass is
    // debug only, and the leases lapse here after leaseMs, so this replica stops driving until it renews them.
    const failed = (err: unknown): void => (isDatabaseOutage(err) ? this.logger.debug({ err: (err as Error).message }, 'lease pass waits for the database') : this.logger.warn({ err }, 'lease pass failed; retried on the next one'));
    this.timer = setInterval(() => void this.pass().catch(failed), this.settings.renewMs);
    this.timer.unref();
    if (mine.length) this.logger.info({ replica: this.replicaId, queries: mine.map((l) => l.queryId) }, 'leases taken at boot');
    return [...new Set([...mine.map((l) => l.queryId), ...taken])];
  }

  /** Whether this replica holds the query's lease now (in memory: no database round trip). */
  holds(queryId: string): boolean {
    const lease = this.held.get(queryId);
    return lease !== undefined && lease.expiresAt > this.clock();
  }

  /** The queries this replica holds now. */
  heldQueries(): string[] {
    return [...this.held.keys()].filter((id) => this.holds(id));
  }

  /**
   * Takes a query's lease for a request this replica serves (a submission, a nonce, a decryption): from whoever
   * holds it, who then can no longer commit a transition of it. Keeps the token if this replica already holds it.
   */
  async claim(queryId: string): Promise<void> {
    const before = this.held.get(queryId);
    const now = this.clock();
    const lease = await this.leases.claim(queryId, this.replicaId, now, this.settings.leaseMs, this.holds(queryId) ? before?.token : undefined);
    this.held.set(queryId, { ...lease, expiresAt: now + this.settings.leaseMs });
  }

  /**
   * Takes a query's lease if nobody holds it (free or expired), for a deadline job this replica happened to take.
   * @returns whether this replica holds it now
   */
  async tryAcquire(queryId: string): Promise<boolean> {
    if (this.holds(queryId)) return true;
    const now = this.clock();
    const lease = await this.leases.acquire(queryId, this.replicaId, now, this.settings.leaseMs);
    if (!lease) return false;
    this.held.set(queryId, { ...lease, expiresAt: now + this.settings.leaseMs });
    this.logger.info({ replica: this.replicaId, queryId, fencingToken: lease.token }, 'lease taken');
    return true;
  }

  /**
   * The fencing check, first thing in a transition's transaction: this replica must still hold the query's lease
   * with the token it was granted.
   * @throws LeaseLostError when it does not (the transaction then rolls back, and the lease is dropped here)
   */
  async fence(tx: Pick<RepositorySet, 'leases'>, queryId: string): Promise<void> {
    const lease = this.held.get(queryId);
    if (lease && (await tx.leases.fence(queryId, this.replicaId, lease.token))) return;
    this.held.delete(queryId);
    this.logger.warn({ replica: this.replicaId, queryId, fencingToken: lease?.token ?? null }, 'lease lost: another replica drives this query now; this transition is not committed');
    throw new LeaseLostError(queryId, `replica ${this.replicaId} no longer holds the lease of query ${queryId}`);
  }

  /**
   * One look: renews the leases held, drops those taken over or of decided queries, gives running queries without a
   * lease a free one (once per lease duration), and takes expired leases. One pass at a time.
   * @returns the queries it took, or took back after its lease had lapsed here
   */
  pass(): Promise<string[]> {
    this.passing ??= this.passOnce().finally(() => (this.passing = undefined));
    return this.passing;
  }

  private async passOnce(): Promise<string[]> {
    if (this.stopped) return [];
    const now = this.clock();
    const taken: string[] = [];
    const ids = [...this.held.keys()];
    const renewed = new Map((await this.leases.renew(this.replicaId, ids, now, this.settings.leaseMs)).map((l) => [l.queryId, l]));
    for (const id of ids) {
      const mine = this.held.get(id)!;
      const row = renewed.get(id);
      if (!row || row.token !== mine.token) {
        this.held.delete(id);
        this.logger.info({ replica: this.replicaId, queryId: id }, row ? 'lease taken over by another replica' : 'lease released');
        continue;
      }
      if (mine.expiresAt <= now) taken.push(id);
      this.held.set(id, { ...mine, expiresAt: now + this.settings.leaseMs });
    }
    for (const id of await this.leases.forgetDecided()) this.held.delete(id);
    if (now - this.adoptedAt >= this.settings.leaseMs) {
      this.adoptedAt = now;
      await this.leases.adopt();
    }
    const acquired = await this.leases.acquireExpired(this.replicaId, now, this.settings.leaseMs, ACQUIRE_LIMIT);
    for (const lease of acquired) {
      this.held.set(lease.queryId, { ...lease, expiresAt: now + this.settings.leaseMs });
      taken.push(lease.queryId);
    }
    if (acquired.length) this.logger.info({ replica: this.replicaId, queries: acquired.map((l) => `${l.queryId}@${l.token}`) }, 'leases taken');
    this.onPass(taken);
    return taken;
  }

  /**
   * Stops renewing and hands every lease back (expired at once), so another replica takes them on its next look.
   * Never throws: a lease it cannot hand back expires.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.passing?.catch(() => undefined);
    const ids = [...this.held.keys()];
    this.held.clear();
    // Without the database (a stop during its outage) they are not handed back: they expire after leaseMs instead.
    await this.leases.release(this.replicaId, ids).catch((err: unknown) => this.logger.warn({ err: (err as Error).message, queries: ids.length }, 'leases not handed back; other replicas take them when they expire'));
  }
}
