import { randomBytes } from 'node:crypto';
import { nonceCommitment } from '@confide/protocol';
import { UsageError } from './args';

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

/** A small JSON client for the coordinator's REST API (bearer token, stable error body). */
export class CoordinatorClient {
  constructor(
    readonly baseUrl: string,
    private readonly token: string | undefined,
  ) {}

  /** Builds a client from --coordinator/--token or CONFIDE_URL/CONFIDE_TOKEN; plain http only on loopback or with --insecure. */
  static from(values: { coordinator?: string; token?: string; insecure?: boolean }, needToken = true): CoordinatorClient {
    const url = values.coordinator ?? process.env.CONFIDE_URL;
    if (!url) throw new UsageError('give --coordinator URL or set CONFIDE_URL');
    assertTransport(url, values.insecure === true);
    const token = values.token ?? process.env.CONFIDE_TOKEN;
    if (needToken && !token) throw new UsageError('give --token or set CONFIDE_TOKEN');
    return new CoordinatorClient(url.replace(/\/+$/, ''), token);
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

  private async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    let res: Response;
    try {
      res = await fetch(`${this.baseUrl}${path}`, {
        method,
        headers: { ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...(this.token ? { authorization: `Bearer ${this.token}` } : {}) },
        body: body !== undefined ? JSON.stringify(body) : undefined,
      });
    } catch (err) {
      throw new ApiCallError(0, 'unreachable', `cannot reach the coordinator at ${this.baseUrl}: ${(err as Error).message}`);
    }
    const text = await res.text();
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
  json: { type: 'boolean' },
  insecure: { type: 'boolean' },
} as const;

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
}

/**
 * Submits a query as POST /v1/queries takes it. For shamir, the researcher's side of the committee coin toss
 * (libs/protocol committeeSeed): a fresh 32-byte nonce is committed to with the query and revealed only once the
 * coordinator has recorded the commitment in its signed ledger, so neither side chooses the committee alone.
 */
export async function submitQuery(client: CoordinatorClient, body: Record<string, unknown>): Promise<Submitted> {
  if (body.protocol !== undefined && body.protocol !== 'shamir') return client.post<Submitted>('/v1/queries', body);
  const nonce = randomBytes(32).toString('hex');
  const submitted = await client.post<Submitted>('/v1/queries', { ...body, seedCommitment: nonceCommitment(nonce) });
  await client.post(`/v1/queries/${encodeURIComponent(submitted.id)}/nonce`, { nonce });
  return { id: submitted.id, status: 'running' };
}
