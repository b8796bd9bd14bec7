/**
 * The coordinator's API as the console calls it: same origin, the API key as the bearer, held in this object only
 * (never in storage, a cookie or a URL, so it leaves with the tab). Errors carry the coordinator's message, which
 * names what is wrong (a revoked key says which and when).
 */

export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export type Role = 'admin' | 'auditor' | 'researcher';

export class Api {
  constructor(private readonly key: string) {}

  private headers(json: boolean): Record<string, string> {
    return { authorization: `Bearer ${this.key}`, accept: 'application/json', ...(json ? { 'content-type': 'application/json' } : {}) };
  }

  async get<T>(path: string, signal?: AbortSignal): Promise<T> {
    return this.read<T>(await fetch(path, { headers: this.headers(false), signal, cache: 'no-store' }));
  }

  async post<T>(path: string, body: unknown): Promise<T> {
    return this.read<T>(await fetch(path, { method: 'POST', headers: this.headers(true), body: JSON.stringify(body ?? {}), cache: 'no-store' }));
  }

  private async read<T>(res: Response): Promise<T> {
    const text = await res.text();
    let body: unknown = text;
    try {
      body = text ? JSON.parse(text) : null;
    } catch {
      // Not JSON (a proxy's page): the text is the message.
    }
    if (!res.ok) {
      const message = typeof body === 'object' && body !== null && 'message' in body ? String((body).message) : String(text || res.statusText);
      throw new ApiError(res.status, `${res.status}: ${message}`);
    }
    return body as T;
  }

  /**
   * Follows a server-sent event stream with fetch (EventSource cannot send the key as a header, and the key must not
   * go into a URL, where logs keep it). Calls `onEvent` for each event; reconnects after 2 s when the stream ends or
   * fails, until `signal` aborts. `onError` hears of each failure.
   */
  async follow(path: string, onEvent: (event: string, data: string) => void, onError: (err: Error) => void, signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      try {
        const res = await fetch(path, { headers: { ...this.headers(false), accept: 'text/event-stream' }, signal, cache: 'no-store' });
        if (!res.ok || !res.body) {
          await this.read(res);
          throw new ApiError(res.status, `${res.status}: no event stream`);
        }
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value;
          let end: number;
          while ((end = buffer.search(/\r?\n\r?\n/)) >= 0) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end).replace(/^\r?\n\r?\n/, '');
            const parsed = parseEvent(block);
            if (parsed) onEvent(parsed.event, parsed.data);
          }
        }
      } catch (err) {
        if (signal.aborted) return;
        onError(err as Error);
        // A revoked or unknown key will not come back by retrying.
        if (err instanceof ApiError && (err.status === 401 || err.status === 403)) return;
      }
      await new Promise((resolve) => setTimeout(resolve, 2000));
    }
  }
}

/** One event of the text/event-stream format: `event:` and `data:` lines (data lines joined), comments skipped. */
export function parseEvent(block: string): { event: string; data: string } | undefined {
  let event = 'message';
  const data: string[] = [];
  for (const line of block.split(/\r?\n/)) {
    if (line.startsWith(':')) continue;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
    if (field === 'event') event = value;
    else if (field === 'data') data.push(value);
  }
  return data.length > 0 ? { event, data: data.join('\n') } : undefined;
}

/** Seconds or minutes since an ISO time, for "last seen". */
export function ago(iso: string | null, now = Date.now()): string {
  if (!iso) return 'never';
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (s < 90) return `${s} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  return `${Math.round(s / 3600)} h ago`;
}
