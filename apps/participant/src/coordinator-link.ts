import type { KeyPair } from '@confide/crypto';
import { participantRequestHeaders } from '@confide/protocol';

/** The coordinator answered a participant's signed request with an error, or could not be reached (status 0). */
export class CoordinatorRequestError extends Error {
  override readonly name = 'CoordinatorRequestError';
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** How long one request may take before it counts as unanswered. */
const REQUEST_TIMEOUT_MS = 30_000;

/**
 * A participant's read-only HTTP requests to the coordinator, each signed with the participant's enrolled Ed25519
 * key (libs/protocol participant-request). Nothing secret travels: every answer is public ledger data the
 * participant verifies against the coordinator key it pinned, so plain HTTP carries no secret here.
 */
export class CoordinatorLink {
  private readonly base: string;

  constructor(
    coordinatorUrl: string,
    private readonly participantId: string,
    private readonly signing: KeyPair,
  ) {
    this.base = coordinatorUrl.replace(/\/+$/, '');
  }

  /**
   * GET `path` (with its query string) as this participant.
   * @throws CoordinatorRequestError with the HTTP status and the coordinator's message, or status 0 when unreachable
   */
  async get<T>(path: string): Promise<T> {
    const headers = participantRequestHeaders(this.signing, { method: 'GET', path, participantId: this.participantId, time: Date.now() });
    let res: Response;
    try {
      res = await fetch(`${this.base}${path}`, { headers, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
    } catch (err) {
      throw new CoordinatorRequestError(0, `cannot reach the coordinator at ${this.base}: ${(err as Error).message}`);
    }
    const text = await res.text();
    let body: unknown;
    try {
      body = text ? JSON.parse(text) : {};
    } catch {
      throw new CoordinatorRequestError(res.status, `the coordinator answered ${path} with something that is not JSON (HTTP ${res.status})`);
    }
    if (!res.ok) throw new CoordinatorRequestError(res.status, (body as { message?: string }).message ?? `HTTP ${res.status} from ${path}`);
    return body as T;
  }
}
