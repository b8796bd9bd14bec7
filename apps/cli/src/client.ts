import { randomBytes } from 'node:crypto';
import { nonceCommitment } from '@confide/protocol';
import { UsageError } from './args';
import { selectProfile } from './profiles';

/** An error answered by the coordinator: HTTP status, stable code, and its message. */
export class ApiCallError extends Error {
  override readonly name = 'ApiCallError';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** How long one HTTP request may take unless --timeout says otherwise. */
export const DEFAULT_TIMEOUT_SECONDS = 30;

/** Where a networked command connects, and how, once flags, environment and profile are merged. */
export interface Connection {
  readonly url: string;
  readonly token: string | undefined;
  readonly insecure: boolean;
  readonly timeoutMs: number;
}

/** The common flags as a command parsed them (see {@link GLOBAL_OPTIONS}). */
export interface ConnectionFlags {
  coordinator?: string;
  token?: string;
  profile?: string;
  timeout?: string;
  insecure?: boolean;
}

/**
 * Merges a command's connection settings, each from the first that has it: the flag (--coordinator, --token,
 * --timeout), the environment (CONFIDE_URL, CONFIDE_TOKEN, CONFIDE_TIMEOUT), then the profile (--profile, else
 * CONFIDE_PROFILE, else "default" if stored). A token from a profile goes only to that profile's coordinator: with
 * another URL from a flag or the environment, the profile's token is not used.
 * @throws UsageError for a missing URL or token, a bad --timeout, an unknown profile or an unsafe profiles file
 */
export function resolveConnection(flags: ConnectionFlags, needToken = true, env: NodeJS.ProcessEnv = process.env): Connection {
  const selected = selectProfile(flags.profile, env);
  const profile = selected?.profile;
  const url = flags.coordinator ?? env.CONFIDE_URL ?? profile?.coordinator;
  if (!url) throw new UsageError("give --coordinator URL, set CONFIDE_URL, or store a profile with 'confide login --coordinator URL'");
  const insecure = flags.insecure === true || (profile !== undefined && url === profile.coordinator && profile.insecure === true);
  assertTransport(url, insecure);
  const profileToken = profile !== undefined && trimUrl(url) === trimUrl(profile.coordinator) ? profile.token : undefined;
  const token = flags.token ?? env.CONFIDE_TOKEN ?? profileToken;
  if (needToken && !token) throw new UsageError("give --token, set CONFIDE_TOKEN, or store one with 'confide login'");
  return { url: trimUrl(url), token, insecure, timeoutMs: requestTimeoutMs(flags.timeout, env) };
}

/**
 * How long each request may take: --timeout SECONDS, else CONFIDE_TIMEOUT, else {@link DEFAULT_TIMEOUT_SECONDS}.
 * @throws UsageError naming the flag or variable, for anything but a number of seconds in (0, 3600]
 */
export function requestTimeoutMs(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): number {
  const text = flag ?? env.CONFIDE_TIMEOUT;
  const source = flag !== undefined ? '--timeout' : 'CONFIDE_TIMEOUT';
  if (text !== undefined && !/^\d+(\.\d+)?$/.test(text)) throw new UsageError(`${source} must be a number of seconds, got ${JSON.stringify(text)}`);
  const seconds = text !== undefined ? Number(text) : DEFAULT_TIMEOUT_SECONDS;
  if (!(seconds > 0) || seconds > 3600) throw new UsageError(`${source} must be more than 0 and at most 3600 seconds, got ${JSON.stringify(text)}`);
  return seconds * 1000;
}

function trimUrl(url: string): string {
  return url.replace(/\/+$/, '');
}

/** "30 s", "2.5 s": a duration as the CLI's messages say it. */
function seconds(ms: number): string {
  return `${Number((ms / 1000).toFixed(3))} s`;
}

/** A small JSON client for the coordinator's REST API (bearer token, stable error body, a timeout on every call). */
export class CoordinatorClient {
  constructor(
    readonly baseUrl: string,
    private readonly token: string | undefined,
    readonly timeoutMs = DEFAULT_TIMEOUT_SECONDS * 1000,
  ) {}

  /** Builds a client from the common flags, the environment and the selected profile ({@link resolveConnection}). */
  static from(values: ConnectionFlags, needToken = true): CoordinatorClient {
    const c = resolveConnection(values, needToken);
    return new CoordinatorClient(c.url, c.token, c.timeoutMs);
  }

  get<T>(path: string): Promise<T> {
    return this.call<T>('GET', path);
  }

  post<T>(path: string, body: unknown): Promise<T> {
    return this.call<T>('POST', path, body);
  }

  delete<T>(path: string): Promise<T> {
    return this.call<T>('DELETE', path);
  }

  /**
   * One request, aborted after the client's timeout: the whole exchange, answer body included, must finish in time.
   * @throws ApiCallError: status 0 with code "timeout" or "unreachable", else the coordinator's status and error code
   */
  private async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const signal = AbortSignal.timeout(this.timeoutMs);
    let res: Response;
    let text: string;
    try {
      res = await fetch(`${this.baseUrl}${path}`, {
        method,
        headers: { ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...(this.token ? { authorization: `Bearer ${this.token}` } : {}) },
        body: body !== undefined ? JSON.stringify(body) : undefined,
        signal,
      });
      text = await res.text();
    } catch (err) {
      if (signal.aborted) throw new ApiCallError(0, 'timeout', `no answer from the coordinator at ${this.baseUrl} within ${seconds(this.timeoutMs)} (${method} ${path}); is it up? --timeout SECONDS waits longer`);
      const cause = (err as Error & { cause?: { message?: string } }).cause?.message;
      throw new ApiCallError(0, 'unreachable', `cannot reach the coordinator at ${this.baseUrl}: ${(err as Error).message}${cause ? ` (${cause})` : ''}`);
    }
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      parsed = undefined;
    }
    if (!res.ok) {
      const e = (parsed ?? {}) as { error?: string; message?: string };
      throw new ApiCallError(res.status, e.error ?? 'http_error', e.message ?? `HTTP ${res.status} from ${method} ${path}`);
    }
    return parsed as T;
  }
}

/** The global flags every networked command accepts. */
export const GLOBAL_OPTIONS = {
  coordinator: { type: 'string' },
  token: { type: 'string' },
  profile: { type: 'string' },
  timeout: { type: 'string' },
  json: { type: 'boolean' },
  insecure: { type: 'boolean' },
} as const;

/** The common flags as usage strings show them. */
export const GLOBAL_USAGE = `Global: --coordinator URL (CONFIDE_URL), --token TOKEN (CONFIDE_TOKEN), --profile NAME (CONFIDE_PROFILE; from
'confide login'), --timeout SECONDS (CONFIDE_TIMEOUT, default ${DEFAULT_TIMEOUT_SECONDS}), --json, --insecure (plain http beyond loopback)`;

/** True for a host name or address that never leaves this machine. */
function isLoopback(hostname: string): boolean {
  const host = hostname.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/**
 * Refuses a coordinator URL that would send bearer tokens (API keys, invitations) and the Redis password enrollment
 * returns in clear over a network: http:// is accepted only on loopback, or with --insecure (e.g. a private network
 * inside docker-compose). Ledger data itself is signed and checked either way.
 * @throws UsageError naming the URL and the way out
 */
export function assertTransport(url: string, insecure: boolean): void {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new UsageError(`--coordinator must be an http(s) URL, got ${JSON.stringify(url)}`);
  }
  if (parsed.protocol === 'https:') return;
  if (parsed.protocol !== 'http:') throw new UsageError(`--coordinator must be an http(s) URL, got ${JSON.stringify(url)}`);
  if (!insecure && !isLoopback(parsed.hostname)) {
    throw new UsageError(`refusing plain http:// to ${parsed.host}: tokens would cross the network in clear; use https://, or --insecure on a network you trust`);
  }
}

/** What POST /v1/queries answers. */
export interface Submitted {
  readonly id: string;
  readonly status: string;
  /** How many of the study's participants were online at submission, of how many asked. */
  readonly online?: { readonly count: number; readonly of: number };
}

/**
 * Submits a query as POST /v1/queries takes it. For shamir, the researcher's side of the committee coin toss
 * (libs/protocol committeeSeed): a fresh 32-byte nonce is committed to with the query and revealed only once the
 * coordinator has recorded the commitment in its signed ledger, so neither side chooses the committee alone.
 */
export async function submitQuery(client: CoordinatorClient, body: Record<string, unknown>, onId?: (id: string) => void): Promise<Submitted> {
  if (body.protocol !== undefined && body.protocol !== 'shamir') return client.post<Submitted>('/v1/queries', body);
  const nonce = randomBytes(32).toString('hex');
  const submitted = await client.post<Submitted>('/v1/queries', { ...body, seedCommitment: nonceCommitment(nonce) });
  onId?.(submitted.id);
  await client.post(`/v1/queries/${encodeURIComponent(submitted.id)}/nonce`, { nonce });
  return { id: submitted.id, status: 'running', ...(submitted.online ? { online: submitted.online } : {}) };
}
