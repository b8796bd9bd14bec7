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

  /** Builds a client from --coordinator/--token or CONFIDE_URL/CONFIDE_TOKEN. */
  static from(values: { coordinator?: string; token?: string }, needToken = true): CoordinatorClient {
    const url = values.coordinator ?? process.env.CONFIDE_URL;
    if (!url) throw new UsageError('give --coordinator URL or set CONFIDE_URL');
    if (!/^https?:\/\//.test(url)) throw new UsageError(`--coordinator must be an http(s) URL, got ${JSON.stringify(url)}`);
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
} as const;
