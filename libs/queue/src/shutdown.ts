/**
 * Stopping a process that holds Redis and database connections within a deadline. A clean stop drains BullMQ, which
 * needs Redis: while Redis (or the database) is unreachable it would wait for its return. Each process drains for a
 * grace period, drops what did not close, and as a last resort exits at the deadline, saying what was still open.
 */

/** SIGTERM ends every Confide process within this, whatever Redis or the database do. */
export const STOP_DEADLINE_MS = 10_000;

/** How long a stop drains before it drops the connections that have not closed (leaves time to drop them). */
export const DRAIN_GRACE_MS = 6_000;

/** Resolves on the first SIGTERM or SIGINT, with its name. */
export function stopSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const on = (signal: NodeJS.Signals): void => {
      process.off('SIGTERM', on);
      process.off('SIGINT', on);
      resolve(signal);
    };
    process.once('SIGTERM', on);
    process.once('SIGINT', on);
  });
}

/** Options of {@link stopWithin}. */
export interface StopWithinOptions {
  readonly logger: { error(obj: object, msg: string): void };
  /** What has not closed yet, by name, for the line logged when the deadline passes. */
  readonly stillOpen: () => readonly string[];
  /** Measured from the call; a little under {@link STOP_DEADLINE_MS}, so the exit itself fits. */
  readonly deadlineMs?: number;
  readonly exit?: (code: number) => void;
}

/**
 * Runs `stop`, and if it has not finished by the deadline, logs what is still open and exits with code 1 (it never
 * returns then). The timer does not keep the process alive.
 * @throws whatever `stop` throws
 */
export async function stopWithin(stop: () => Promise<void>, options: StopWithinOptions): Promise<void> {
  const deadlineMs = options.deadlineMs ?? STOP_DEADLINE_MS - 500;
  const exit = options.exit ?? ((code: number) => process.exit(code));
  const timer = setTimeout(() => {
    const open = options.stillOpen();
    options.logger.error({ stillOpen: open, deadlineMs }, `did not stop within ${deadlineMs / 1000} s; still open: ${open.length ? open.join(', ') : 'nothing named'}; exiting now`);
    exit(1);
  }, deadlineMs);
  timer.unref();
  try {
    await stop();
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Waits for `work` for at most `ms`.
 * @returns true when it settled in time (fulfilled or rejected), false when it did not
 */
export async function settledWithin(work: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<false>((resolve) => {
    timer = setTimeout(resolve, ms, false);
    timer.unref();
  });
  try {
    return await Promise.race([work.then(() => true as const, () => true as const), late]);
  } finally {
    clearTimeout(timer);
  }
}
