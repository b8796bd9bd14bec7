import { stat, unwatchFile, watchFile, type Stats } from 'node:fs';
import type { Logger } from 'pino';
import { checkDataFile, describeProblems, type DataCheck, type StudySchema } from '@confide/protocol';

/**
 * The refusal a task gets while the data file is broken. Its message is all the coordinator sees: no path, row or
 * cell (the file is the participant's own business); the details are in the participant's log.
 */
export class DataFileRefusal extends Error {
  override readonly name = 'DataFileRefusal';
  static readonly UNREADABLE = "data file not readable (see the participant's log)";
  static readonly INVALID = "data file failed validation (see the participant's log)";

  /**
   * @param message one of the two fixed texts above
   * @param details what is wrong, for this machine's log only
   */
  constructor(
    message: string,
    readonly details: string,
  ) {
    super(message);
  }
}

/** A data file that failed its check where that stops the command (enrollment): the report says what to fix. */
export class DataCheckFailed extends Error {
  override readonly name = 'DataCheckFailed';
  constructor(
    readonly path: string,
    readonly study: StudySchema,
    readonly check: DataCheck,
  ) {
    super(`${path} does not match study ${study.name}: ${describeProblems(check).join('; ')}`);
  }
}

/**
 * Checks a data file against a study schema, on this machine only.
 * @throws DataCheckFailed with the report when it has any problem
 */
export async function assertDataFile(path: string, schema: StudySchema): Promise<DataCheck> {
  const check = await checkDataFile(path, schema);
  if (!check.ok) throw new DataCheckFailed(path, schema, check);
  return check;
}

/** What identifies a version of the file: a change to any of these means it must be checked again. */
function signature(s: Stats | undefined): string {
  return s ? `${s.dev}:${s.ino}:${s.size}:${s.mtimeMs}:${s.ctimeMs}` : 'missing';
}

function statOf(path: string): Promise<Stats | undefined> {
  return new Promise((resolve) => stat(path, (err, s) => resolve(err ? undefined : s)));
}

/** How often the file's metadata is polled between tasks (fs.watchFile: survives editors replacing the file). */
const POLL_MS = 1000;

/**
 * The worker's view of its data file: checked against the pinned schema (libs/protocol checkDataFile) when the
 * worker starts and again whenever the file changes, found either by polling its metadata or by the stat taken
 * before each task, with one log line per check saying valid or what is wrong. A task is refused while the last
 * check failed. Polling (fs.watchFile) rather than fs.watch: it follows the path, so a file replaced by rename,
 * deleted and re-created, or on a network share is still seen.
 */
export class DataFileMonitor {
  private checked: { signature: string; result: DataCheck } | undefined;
  private running: Promise<DataCheck> | undefined;
  private watching = false;

  constructor(
    readonly path: string,
    private readonly schema: StudySchema,
    private readonly logger: Logger,
  ) {}

  /** Checks the file now and keeps checking it when it changes. */
  async start(): Promise<DataCheck> {
    const first = await this.current();
    if (!this.watching) {
      watchFile(this.path, { interval: POLL_MS, persistent: false }, () => void this.current().catch((err: unknown) => this.logger.error({ err: (err as Error).message }, 'data file check failed')));
      this.watching = true;
    }
    return first;
  }

  stop(): void {
    if (this.watching) unwatchFile(this.path);
    this.watching = false;
  }

  /** The check of the file as it is now: the last one if the file has not changed since, else a new one (logged). */
  async current(): Promise<DataCheck> {
    // One check at a time: a change seen while checking is picked up by the next call.
    while (this.running) await this.running.catch(() => undefined);
    const sig = signature(await statOf(this.path));
    if (this.checked?.signature === sig) return this.checked.result;
    this.running = this.recheck(sig);
    try {
      return await this.running;
    } finally {
      this.running = undefined;
    }
  }

  /**
   * Throws the refusal for a task while the file is broken.
   * @throws DataFileRefusal
   */
  async assertUsable(): Promise<DataCheck> {
    const result = await this.current();
    if (!result.ok) throw DataFileMonitor.refusalFor(this.path, result);
    return result;
  }

  /** The refusal for a failed check: "not readable" when the file could not be read at all, else "failed validation". */
  static refusalFor(path: string, result: DataCheck): DataFileRefusal {
    const unreadable = result.problems.some((p) => p.line === null);
    return new DataFileRefusal(unreadable ? DataFileRefusal.UNREADABLE : DataFileRefusal.INVALID, `data file ${path}: ${describeProblems(result).join('; ')}`);
  }

  private async recheck(sig: string): Promise<DataCheck> {
    const previous = this.checked?.result;
    // The per-field aggregates are not kept: the worker needs only valid or not, and they are the data's sums.
    const result: DataCheck = { ...(await checkDataFile(this.path, this.schema)), fields: null };
    // The file may have changed while it was read: keep the signature from before, so the next call reads it again.
    this.checked = { signature: sig, result };
    const first = previous === undefined;
    if (result.ok) {
      this.logger.info(
        { dataFile: this.path, valid: true, records: result.records },
        `data file ${this.path} ${first ? 'checked' : 'changed, checked again'}: valid, ${result.records} record${result.records === 1 ? '' : 's'}`,
      );
    } else {
      const problems = describeProblems(result);
      this.logger.error(
        { dataFile: this.path, valid: false, problems: result.problems },
        `data file ${this.path} ${first ? 'checked' : 'changed, checked again'}: ${result.problems.some((p) => p.line === null) ? 'NOT READABLE' : 'INVALID'}, tasks are refused until it is fixed (${result.problems.length} problem${result.problems.length === 1 ? '' : 's'}): ${problems.join('; ')}`,
      );
    }
    return result;
  }
}
