import type { KeyPair } from '@confide/crypto';
import { participantRequestHeaders } from '@confide/protocol';

/** The coordinator answered a participant's signed request with an error, or could not be reached (status 0). */
export class CoordinatorRequestError extends Error {
  override readonly name = 'CoordinatorRequestError';
  constructor(
    readonly status: number,
    message: string,
    /** The coordinator's Retry-After, with a 503. */
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}

/** How long one request may take before it counts as unanswered, unless the caller says otherwise. */
export const REQUEST_TIMEOUT_MS = 30_000;
/** How long the worker's requests keep retrying while the coordinator is briefly unavailable (503) or unreachable. */
export const WORKER_OUTAGE_RETRY_MS = 30_000;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * A participant's HTTP requests to the coordinator (reads, and the update of its maximum record count), each signed with the participant's enrolled Ed25519
 * key (libs/protocol participant-request). Nothing secret travels: every answer is public ledger data the
 * participant verifies against the coordinator key it pinned, so plain HTTP carries no secret here.
 */
export class CoordinatorLink {
  private readonly base: string;

  constructor(
    coordinatorUrl: string,
    private readonly participantId: string,
    private readonly signing: KeyPair,
    /** How long to retry through an outage (503 or unreachable): the worker's default; 0 for a command a person waits on. */
    private readonly outageRetryMs = 0,
    /** How long one request may take before it counts as unanswered (`--timeout` of the participant's commands). */
    private readonly timeoutMs = REQUEST_TIMEOUT_MS,
  ) {
    this.base = coordinatorUrl.replace(/\/+$/, '');
  }

  /**
   * GET `path` (with its query string) as this participant. While the coordinator is restarting or its database or
   * Redis is down (503, or no answer), the request is retried with backoff, honouring Retry-After, for up to
   * `outageRetryMs` ({@link WORKER_OUTAGE_RETRY_MS} for the worker): an outage that clears in time does not cost the
   * participant its task.
   * @throws CoordinatorRequestError with the HTTP status and the coordinator's message, or status 0 when unreachable
   */
  async get<T>(path: string): Promise<T> {
    const until = Date.now() + this.outageRetryMs;
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.once<T>(path);
      } catch (err) {
        if (!(err instanceof CoordinatorRequestError) || (err.status !== 0 && err.status !== 503) || Date.now() >= until) throw err;
        const wait = Math.min(err.retryAfterMs ?? 5000, 250 * 2 ** Math.min(attempt - 1, 5), until - Date.now());
        await sleep(Math.max(0, wait));
      }
    }
  }

  /**
   * POST `body` (JSON) to `path` as this participant, once: the one change a participant asks for (its maximum record
   * count) carries its own signed statement in the body; the request signature says who sends it.
   * @throws CoordinatorRequestError with the HTTP status and the coordinator's message, or status 0 when unreachable
   */
  post<T>(path: string, body: unknown): Promise<T> {
    return this.once<T>(path, body);
  }

  private async once<T>(path: string, body?: unknown): Promise<T> {
    const method = body === undefined ? 'GET' : 'POST';
    const headers: Record<string, string> = participantRequestHeaders(this.signing, { method, path, participantId: this.participantId, time: Date.now() });
    if (body !== undefined) headers['content-type'] = 'application/json';
    let res: Response;
    const signal = AbortSignal.timeout(this.timeoutMs);
    try {
      res = await fetch(`${this.base}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal });
    } catch (err) {
      if (signal.aborted) throw new CoordinatorRequestError(0, `no answer from the coordinator at ${this.base} within ${this.timeoutMs / 1000} s (${method} ${path})`);
      throw new CoordinatorRequestError(0, `cannot reach the coordinator at ${this.base}: ${(err as Error).message}`);
    }
    const text = await res.text();
    let answer: unknown;
    try {
      answer = text ? JSON.parse(text) : {};
    } catch {
      throw new CoordinatorRequestError(res.status, `the coordinator answered ${path} with something that is not JSON (HTTP ${res.status})`);
    }
    if (!res.ok) {
      const retryAfter = Number(res.headers.get('retry-after'));
      throw new CoordinatorRequestError(res.status, (answer as { message?: string }).message ?? `HTTP ${res.status} from ${path}`, Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter * 1000 : undefined);
    }
    return answer as T;
  }
}
