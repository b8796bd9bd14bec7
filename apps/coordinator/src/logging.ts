import pino, { type Logger } from 'pino';

/**
 * Structured logs (pino) with a correlation id per request or job. Known secret-bearing keys are redacted
 * as a second line of defence; the first is that no code path logs tokens, keys, shares or aggregates.
 */
export function createLogger(level: string, name = 'coordinator'): Logger {
  return pino({
    name,
    level,
    redact: {
      paths: ['token', 'password', 'authorization', 'headers.authorization', '*.token', '*.password', 'privateKey', '*.privateKey'],
      censor: '[redacted]',
    },
  });
}

export type { Logger };
