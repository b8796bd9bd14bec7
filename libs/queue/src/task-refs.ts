import { createHash } from 'node:crypto';
import { z } from 'zod';
import { canonicalJson, signCanonicalJson, verifyMessage, type KeyPair } from '@confide/crypto';
import { deepFreeze, ledgerValue, round1DeliverySchema, viewUpdateSchema } from '@confide/protocol';
import { TASK } from './names';
import { checkAddressed, checkTask, openTask, paillierTaskSchema, shamirRound1TaskSchema, shamirRound2TaskSchema, signedTaskSchema, TaskRejected, type TaskPayload } from './payloads';

/**
 * Tasks by reference (issue 15, "N = 1,000"): the parts of a round's tasks that every participant gets alike go to
 * Redis once per round, not once per participant. A round's tasks all hold the same plan (which lists every
 * participant), query, committee or contributor keys and ledger evidence, and most hold the same view update (the
 * previous query's `round.closed`, listing every contributor): O(N) bytes each, so O(N²) a round for the coordinator
 * to sign, store and queue, and for Redis to carry. Sent by reference, a task is its few per-participant fields
 * and the SHA-256 of each shared part; the coordinator signs that (domain "task-ref"), so its signature covers the
 * parts through their hashes, and the full task a worker puts together from them is exactly what it would have been
 * sent whole (and is checked by the same schema and the same authorisation).
 *
 * A part lives in Redis under `<prefix>:{study.<id>}:part:<sha256>` (taskPartKey), which the participants of that
 * study may GET and nothing else (acl.ts partsSelector): a part holds what the study's ledger already shows them
 * (plan, query, keys, evidence), never a share or an answer. Round 2's deliveries, sealed to one member, stay in that
 * member's own task. A worker checks a part's hash before it reads it, so a part can come from anywhere: the
 * coordinator's Redis, or a cache of parts this process already checked (SharedParts), which is why a host running
 * many participants parses a round's parts once.
 */

const TASK_REF_DOMAIN = 'task-ref';
const hex64 = z.string().regex(/^[0-9a-f]{64}$/);
const id = z.string().regex(/^[A-Za-z0-9_-]{1,100}$/);
const b64u = z.string().regex(/^[A-Za-z0-9_-]+$/);

/** What a task by reference carries itself; `shared` and `view` name its parts by their SHA-256 (lowercase hex). */
export const taskRefSchema = z.strictObject({
  kind: z.enum([TASK.shamirRound1, TASK.shamirRound2, TASK.paillierContribute]),
  queryId: id,
  studyId: id,
  participantId: id,
  issuedAt: z.number().int(),
  deadline: z.number().int(),
  /** The round's shared part: plan, query, evidence, and for shamir the directory (and in round 2 the closed set). */
  shared: hex64,
  /** The participant's view update, shared by every participant whose view starts at the same size. */
  view: hex64.optional(),
  /** Round 2 only: the shares sealed to this member. */
  deliveries: z.array(round1DeliverySchema).optional(),
});
export type TaskRef = z.infer<typeof taskRefSchema>;

/** A task by reference as it goes into a participant's queue: the reference and the coordinator's signature over it. */
export const signedTaskRefSchema = z.strictObject({ ref: taskRefSchema, signature: b64u });
export type SignedTaskRef = z.infer<typeof signedTaskRefSchema>;

/** What a participant's queue holds: a whole signed task (libs/queue payloads.ts) or a signed task by reference. */
export const dispatchedTaskSchema = z.union([signedTaskSchema, signedTaskRefSchema]);
export type DispatchedTask = z.infer<typeof dispatchedTaskSchema>;


/** A task's fields that the reference carries itself (as `omit` masks for the parts' schemas): no shared part holds one. */
const OWN = { kind: true, queryId: true, studyId: true, participantId: true, issuedAt: true, deadline: true, view: true } as const;
/** Every key a shared part may not hold: the reference's own fields, round 2's deliveries and the part's own hash. */
const OWN_FIELDS = new Set([...Object.keys(OWN), 'deliveries', 'shared']);

const sha256 = (text: string): string => createHash('sha256').update(text, 'utf8').digest('hex');

/** A round's tasks by reference: one signed reference per task, and each distinct part once, by its hash. */
export interface TaskRefs {
  readonly refs: SignedTaskRef[];
  /** Each part's exact text by its SHA-256: what goes into Redis (and the coordinator's outbox). */
  readonly parts: Map<string, string>;
}

/**
 * Splits tasks into references and shared parts, and signs each reference with the coordinator key (domain
 * "task-ref"). A task's shared part is every field it does not carry itself; two tasks whose such fields are the same
 * objects (as a round's tasks are: prepared from one plan, one query, one evidence) share one part, which is encoded
 * and hashed once, so a round costs O(N) and not O(N²). Views are shared the same way (one per starting size).
 */
export function signTaskRefs(coordinatorKey: KeyPair, tasks: readonly TaskPayload[]): TaskRefs {
  const parts = new Map<string, string>();
  const encoded = new Map<object, { json: string; digest: string }>();
  const byIdentity = new Map<string, string>();
  // Each distinct field object is encoded and hashed once; a field that is a fresh but equal object in each task (a
  // small query, say) costs its own size per task, never the whole part's.
  const encode = (value: unknown): { json: string; digest: string } => {
    if (value === null || typeof value !== 'object') {
      const json = JSON.stringify(value);
      return { json, digest: json };
    }
    let e = encoded.get(value);
    if (e === undefined) {
      const json = JSON.stringify(value);
      encoded.set(value, (e = { json, digest: sha256(json) }));
    }
    return e;
  };
  // One part per distinct content: its identity is its fields' names and their encodings' digests, so the part's
  // whole text is put together and hashed once, however many tasks share it.
  const partOf = (fields: [string, unknown][]): string => {
    const each = fields.map(([k, v]) => [k, encode(v)] as const);
    const identity = each.map(([k, e]) => `${k}:${e.digest}`).join(',');
    let hash = byIdentity.get(identity);
    if (hash === undefined) {
      const text = `{${each.map(([k, e]) => `${JSON.stringify(k)}:${e.json}`).join(',')}}`;
      hash = sha256(text);
      parts.set(hash, text);
      byIdentity.set(identity, hash);
    }
    return hash;
  };
  const refs = tasks.map((task) => {
    const record = task as unknown as Record<string, unknown>;
    const shared = Object.keys(record)
      .filter((k) => !OWN_FIELDS.has(k) && record[k] !== undefined)
      .sort()
      .map((k): [string, unknown] => [k, record[k]]);
    const ref: TaskRef = {
      kind: task.kind,
      queryId: task.queryId,
      studyId: task.studyId,
      participantId: task.participantId,
      issuedAt: task.issuedAt,
      deadline: task.deadline,
      shared: partOf(shared),
      ...(task.view ? { view: partOf([['view', task.view]]) } : {}),
      ...(task.kind === TASK.shamirRound2 ? { deliveries: task.deliveries } : {}),
    };
    return { ref, signature: signCanonicalJson(coordinatorKey.privateKey, TASK_REF_DOMAIN, canonicalJson(ledgerValue(ref))) };
  });
  return { refs, parts };
}

/** A part a worker could not get: not in Redis (yet, or any more). A retry may find it: not a refusal. */
export class TaskPartMissing extends Error {
  override readonly name = 'TaskPartMissing';
}

/**
 * Parts this process has fetched, checked against their hash and validated, by hash and by what they were validated
 * as, most recent last: every participant worker of a process takes a round's parts from here after the first has
 * fetched them. Content-addressed, so an entry is the same whoever put it here. Each is frozen all the way down
 * (libs/protocol deepFreeze), so no worker can change what the others read, and the checks that only depend on it
 * (the plan's hash, the evidence's proofs) are done once too. Bounded by count and by bytes.
 */
export class SharedParts {
  private readonly parts = new Map<string, { value: unknown; bytes: number }>();
  private bytes = 0;
  /** Fetches under way, by key: concurrent workers wait for one fetch. */
  private readonly pending = new Map<string, Promise<unknown>>();

  constructor(
    private readonly maxParts = 16,
    private readonly maxBytes = 64 * 1024 * 1024,
  ) {}

  /**
   * The part with this hash, from here or from `fetch` (its text, or null when there is none), checked: its SHA-256 is
   * the hash, it is one JSON object, and `check` (named `as`, which keys the cache beside the hash) accepts it.
   * @returns what `check` returned, deeply frozen
   * @throws TaskRejected when the text does not hash to the reference or is not a JSON object, or what `check` throws;
   *   TaskPartMissing when there is no such part; whatever `fetch` throws
   */
  async get<T>(hash: string, as: string, fetch: (hash: string) => Promise<string | null>, check: (part: Record<string, unknown>) => T): Promise<T> {
    const key = `${as}:${hash}`;
    const found = this.parts.get(key);
    if (found) {
      this.parts.delete(key);
      this.parts.set(key, found);
      return found.value as T;
    }
    let loading = this.pending.get(key);
    if (!loading) {
      loading = this.load(key, hash, fetch, check).finally(() => this.pending.delete(key));
      this.pending.set(key, loading);
    }
    return loading as Promise<T>;
  }

  private async load<T>(key: string, hash: string, fetch: (hash: string) => Promise<string | null>, check: (part: Record<string, unknown>) => T): Promise<T> {
    const text = await fetch(hash);
    if (text === null) throw new TaskPartMissing(`the task's part ${hash.slice(0, 16)}… is not in Redis`);
    if (sha256(text) !== hash) throw new TaskRejected(`the task's part ${hash.slice(0, 16)}… does not hash to its reference`);
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      throw new TaskRejected(`the task's part ${hash.slice(0, 16)}… is not JSON`);
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new TaskRejected(`the task's part ${hash.slice(0, 16)}… is not a JSON object`);
    const part = { value: deepFreeze(check(value as Record<string, unknown>)), bytes: text.length };
    this.parts.set(key, part);
    this.bytes += part.bytes;
    for (const [old, entry] of this.parts) {
      if (this.parts.size <= this.maxParts && this.bytes <= this.maxBytes) break;
      this.parts.delete(old);
      this.bytes -= entry.bytes;
    }
    return part.value;
  }
}

/** The parts cache of this process ({@link SharedParts}). */
export const sharedParts = new SharedParts();


/** What a shared part holds, by task kind: the kind's task schema without the fields the reference carries. */
const sharedSchemas = {
  [TASK.shamirRound1]: shamirRound1TaskSchema.omit(OWN),
  [TASK.shamirRound2]: shamirRound2TaskSchema.omit({ ...OWN, deliveries: true }),
  [TASK.paillierContribute]: paillierTaskSchema.omit(OWN),
} as const;

const viewPartSchema = z.strictObject({ view: viewUpdateSchema });

const malformed = (what: string, error: z.ZodError): TaskRejected =>
  new TaskRejected(`malformed task: ${what}${error.issues[0]?.path.length ? ` ${error.issues[0].path.join('.')}` : ''} ${error.issues[0]?.message ?? ''}`.trim());

/**
 * Validates a job's data as a worker receives it, whole (openTask) or by reference: the reference's schema and
 * coordinator signature, then its parts (each checked against its hash and validated by its kind's schema,
 * {@link SharedParts}), then the task they make up, exactly as a whole task is checked (addressed to this
 * participant and study, not expired, not issued in the future).
 * @throws TaskRejected naming the first problem; TaskPartMissing when a part is not to be found (a retry may)
 */
export async function openDispatchedTask(
  data: unknown,
  expect: Parameters<typeof openTask>[1],
  fetchPart: (hash: string) => Promise<string | null>,
  parts: SharedParts = sharedParts,
): Promise<TaskPayload> {
  if (data === null || typeof data !== 'object' || !('ref' in data)) return openTask(data, expect);
  const parsed = signedTaskRefSchema.safeParse(data);
  if (!parsed.success) throw malformed('', parsed.error);
  const { ref, signature } = parsed.data;
  if (!verifyMessage(expect.coordinatorKey, TASK_REF_DOMAIN, ledgerValue(ref), signature)) throw new TaskRejected('task signature does not verify with the coordinator key');
  // Addressed and dated before anything is fetched: a task for someone else costs no request, and one that waited
  // past its deadline (its parts may be gone from Redis by then) is refused as expired, not failed as missing parts.
  checkAddressed(ref, expect);
  if ((ref.kind === TASK.shamirRound2) !== (ref.deliveries !== undefined)) throw new TaskRejected('malformed task: deliveries belong to round-2 tasks, and every round-2 task has them');
  const shared = await parts.get(ref.shared, ref.kind, fetchPart, (part) => {
    const own = Object.keys(part).filter((k) => OWN_FIELDS.has(k));
    if (own.length) throw new TaskRejected(`the task's shared part holds ${own.join(', ')}, which only the signed reference may`);
    const checked = sharedSchemas[ref.kind].safeParse(part);
    if (!checked.success) throw malformed('shared part', checked.error);
    return checked.data;
  });
  const view = ref.view
    ? await parts.get(ref.view, 'view', fetchPart, (part) => {
        const checked = viewPartSchema.safeParse(part);
        if (!checked.success) throw new TaskRejected(`the task's view part must hold its view and nothing else: ${checked.error.issues[0]?.path.join('.') ?? ''} ${checked.error.issues[0]?.message ?? ''}`.trim());
        return checked.data.view;
      })
    : undefined;
  const { shared: _shared, view: _view, ...fields } = ref;
  // Each piece is validated by its schema, and their keys are disjoint: together they are a task of this kind.
  const task = { ...shared, ...fields, ...(view === undefined ? {} : { view }) } as TaskPayload;
  return checkTask(task, expect);
}
