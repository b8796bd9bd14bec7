import pino, { type Logger } from 'pino';

/**
 * Structured logs (pino) with a correlation id per request or job. They go to stderr: stdout belongs to a
 * command's own output (the CLI's JSON, the demo's result line), which an embedded coordinator must not
 * interleave with. Known secret-bearing keys are redacted as a second line of defence; the first is that no
 * code path logs tokens, keys, shares or aggregates.
 */
export function createLogger(level: string, name = 'coordinator'): Logger {
  return pino({
    name,
    level,
    redact: {
      paths: ['token', 'password', 'authorization', 'headers.authorization', '*.token', '*.password', 'privateKey', '*.privateKey'],
      censor: '[redacted]',
    },
  }, pino.destination(2));
}

export type { Logger };
