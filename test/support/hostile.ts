import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateKeyPair, importPrivateKeyPem, publicKeyBase64Url, type KeyPair } from '@confide/crypto';
import { appendLeaves, consistencyProof, emptyFrontier, entryBytes, inclusionProof, ledgerOrigin, leafHash, MemoryNodeStore, frontierRoot, signCheckpoint, type LedgerEntry } from '@confide/ledger';
import {
  bundleHash,
  committeeSeed,
  committeeSize,
  compileQuery,
  deliveriesFor,
  drawCommittee,
  ENTRY,
  entryKey,
  nonceCommitment,
  participantRound1,
  planHash,
  planShamir,
  queryHash,
  canonicalQuery,
  type KeyDirectory,
  type LedgerEvidence,
  type PrivacySettings,
  type QuerySpec,
  type Round1Bundle,
  type Round1Closed,
  type ShamirPlan,
  type StudySchema,
  type ViewUpdate,
} from '@confide/protocol';
import { newParticipantId, newQueryId, roundOf, signTask, signTaskRefs, TASK, taskJobId, type DirectoryEntry, type TaskOf, type TaskPayload } from '@confide/queue';
import { openDatabase, type Database } from '../../apps/coordinator/src/db/database';
import { EventLog } from '../../apps/coordinator/src/db/repositories';
import type { Cluster } from './cluster';
import { TaskQueues, type FinishedJob } from './task-queues';

/**
 * The hostile coordinator of DESIGN.md's trust model, played with what a real operator holds: the coordinator's
 * keys (from its data directory), its database (so it can append anything to the real ledger and sign checkpoints
 * for it) and Redis as administrator (so it can put any signed task in any participant's queue). Tests build a
 * query that breaks exactly one rule, send it to an honest participant's real worker process, and check that the
 * worker refuses it and that nothing it computed left it.
 */

/** A participant as the hostile coordinator addresses it: its id and its registered public keys. */
export interface Target {
  readonly participantId: string;
  readonly keys: DirectoryEntry;
}

/** The parts of a query the hostile coordinator logged and planned. */
export interface ForgedQuery {
  readonly queryId: string;
  readonly studyId: string;
  readonly spec: QuerySpec & { privacy: PrivacySettings };
  readonly plan: ShamirPlan;
  readonly submittedIndex: number;
  readonly drawnIndex: number;
}

/** How a forged query deviates from an honest one; everything left out is as the honest coordinator does it. */
export interface ForgeOptions {
  /** The statistics; default: count and sum of salary. */
  readonly select?: QuerySpec['select'];
  readonly where?: QuerySpec['where'];
  /** Privacy as the query carries (and the ledger records) it; default: the study's own settings. */
  readonly privacy?: PrivacySettings;
  /** Plan participants; default: every participant enrolled in the study. */
  readonly participants?: readonly string[];
  /** Overrides the plan after it was drawn (a threshold of 1, another committee, another seed…). */
  readonly plan?: (honest: ShamirPlan) => ShamirPlan;
  /** Ids that must (or must not) be on the drawn committee: the nonce is re-drawn until they are. */
  readonly onCommittee?: readonly string[];
  readonly offCommittee?: readonly string[];
  /** The query's id; default: a new one. Give it with no committee wishes: each draw tried appends a query.submitted. */
  readonly queryId?: string;
}

const b64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64');

export class HostileCoordinator {
  readonly tasks: TaskQueues;
  private constructor(
    readonly cluster: Cluster,
    readonly key: KeyPair,
    readonly encryptionKey: KeyPair,
    private readonly database: Database,
    readonly events: EventLog,
  ) {
    this.tasks = new TaskQueues(cluster);
  }

  /** Takes over a running cluster's coordinator keys, database and Redis. */
  static async open(cluster: Cluster): Promise<HostileCoordinator> {
    const dir = join(cluster.dir, 'coordinator');
    const key = importPrivateKeyPem('ed25519', readFileSync(join(dir, 'coordinator-ed25519.pem'), 'utf8'));
    const encryptionKey = importPrivateKeyPem('x25519', readFileSync(join(dir, 'coordinator-x25519.pem'), 'utf8'));
    const database = await openDatabase({ url: cluster.databaseUrl, dataDir: dir });
    const origin = ledgerOrigin(key.publicKey);
    const events = new EventLog(database.db, (size, root) => signCheckpoint(key, origin, { origin, size, root }));
    return new HostileCoordinator(cluster, key, encryptionKey, database, events);
  }

  async close(): Promise<void> {
    await this.tasks.close();
    await this.database.close();
  }

  /** Appends any entry to the real ledger, signed like every other (a fresh dedup key, so it is never deduplicated). */
  append(type: string, body: object, studyId: string | null): Promise<number> {
    return this.events.append(type, body, `hostile:${randomBytes(8).toString('hex')}`, Date.now(), studyId);
  }

  /** The index of an entry the honest coordinator appended under a dedup key. */
  async indexOf(type: string, ...parts: (string | number)[]): Promise<number> {
    const found = await this.events.indicesOf([entryKey(type, ...parts)]);
    const index = found.get(entryKey(type, ...parts));
    if (index === undefined) throw new Error(`no ${type} entry for ${parts.join(':')}`);
    return index;
  }

  /**
   * Logs and plans a shamir query as the honest coordinator would (query.submitted with a nonce commitment, the seed
   * from the ledger root after it and the nonce, the draw, committee.drawn with the plan's hash), except for what
   * `options` changes. The hostile coordinator plays the researcher too, so it may re-draw the nonce until the
   * committee suits it.
   */
  async forgeQuery(study: { id: string; schema: StudySchema }, options: ForgeOptions = {}): Promise<ForgedQuery> {
    const select = options.select ?? [{ stat: 'count', field: 'salary' }, { stat: 'sum', field: 'salary' }];
    const privacy: PrivacySettings = options.privacy ?? { minParticipants: study.schema.minParticipants, minGroupSize: study.schema.privacy.minGroupSize, dp: null };
    const spec = { select, ...(options.where ? { where: options.where } : {}), privacy } as QuerySpec & { privacy: PrivacySettings };
    const participants = options.participants ?? (await this.enrolled(study.id));
    const k = committeeSize(participants.length);
    const suits = (seed: string): boolean => {
      const drawn = drawCommittee(participants, k, seed);
      return (options.onCommittee ?? []).every((m) => drawn.includes(m)) && (options.offCommittee ?? []).every((m) => !drawn.includes(m));
    };
    // Grinding, as a coordinator acting with a researcher can: each try is a query submitted with a new nonce
    // commitment, in the ledger for everyone to see, until the draw suits.
    for (let tries = 0; tries < 200; tries++) {
      const queryId = options.queryId ?? newQueryId();
      const nonce = randomBytes(32).toString('hex');
      const submittedIndex = await this.append(
        ENTRY.querySubmitted,
        { queryId, studyId: study.id, study: study.schema.name, protocol: 'shamir', query: canonicalQuery(spec) as object, queryHash: queryHash(spec), submittedBy: 'hostile', seedCommitment: nonceCommitment(nonce) },
        study.id,
      );
      const seed = committeeSeed(await this.events.rootAt(submittedIndex + 1), nonce);
      if (!suits(seed)) continue;
      const now = Date.now();
      const honest = planShamir({
        jobId: queryId,
        queryHash: queryHash(spec),
        vectorLength: compileQuery(study.schema, spec).vectorLength,
        participants,
        minParticipants: privacy.minParticipants,
        seed,
        deadlines: { round1: now + 60_000, round2: now + 120_000 },
        minThreshold: study.schema.minThreshold ?? undefined,
      });
      const plan = options.plan ? options.plan(honest) : honest;
      const drawnIndex = await this.append(
        ENTRY.committeeDrawn,
        { queryId, studyId: study.id, seed: plan.seed, nonce, seedTreeSize: submittedIndex + 1, committee: plan.committee, threshold: plan.threshold, participants: plan.participants, planHash: planHash(plan) },
        study.id,
      );
      return { queryId, studyId: study.id, spec, plan, submittedIndex, drawnIndex };
    }
    throw new Error('no nonce gave the committee asked for in 200 tries');
  }

  /** Every participant enrolled in a study, by the ledger. */
  async enrolled(studyId: string): Promise<string[]> {
    const out: string[] = [];
    for (const e of await this.events.studyEntries(studyId, -1, Number.MAX_SAFE_INTEGER, 10_000)) {
      if (e.type === ENTRY.participantEnrolled) out.push((JSON.parse(e.body) as { participantId: string }).participantId);
    }
    return out.sort();
  }

  /** Ledger evidence for a forged query's tasks: its entries, the study, enrollments of `enrolled`, and `more`. */
  async evidence(q: ForgedQuery, enrolled: readonly string[], more: readonly number[] = []): Promise<LedgerEvidence> {
    const keys = [entryKey(ENTRY.studyCreated, q.studyId), ...enrolled.map((id) => entryKey(ENTRY.participantEnrolled, id))];
    const found = await this.events.indicesOf(keys);
    return this.events.evidence([q.submittedIndex, q.drawnIndex, ...found.values(), ...more], q.submittedIndex + 1);
  }

  /** A round-1 task of a forged query for one participant, with its evidence; `change` deviates from it. */
  async round1Task(q: ForgedQuery, to: string, directory: readonly DirectoryEntry[], change: (t: TaskOf<typeof TASK.shamirRound1>) => TaskOf<typeof TASK.shamirRound1> = (t) => t) {
    const evidence = await this.evidence(q, q.plan.committee);
    const now = Date.now();
    return change({
      kind: TASK.shamirRound1,
      queryId: q.queryId,
      studyId: q.studyId,
      participantId: to,
      issuedAt: now,
      deadline: now + 60_000,
      plan: q.plan,
      query: JSON.parse(JSON.stringify(q.spec)) as TaskOf<typeof TASK.shamirRound1>['query'],
      directory: directory.filter((d) => q.plan.committee.includes(d.id)),
      evidence,
    });
  }

  /**
   * Round 1 of a forged query answered by real workers: sends each of `answering` a valid round-1 task and collects
   * the signed bundles they return.
   */
  async runRound1(q: ForgedQuery, answering: readonly string[], directory: readonly DirectoryEntry[]): Promise<Round1Bundle[]> {
    const bundles: Round1Bundle[] = [];
    for (const id of answering) {
      const job = await this.send(await this.round1Task(q, id, directory));
      if (job.state !== 'completed') throw new Error(`${id} refused a valid round-1 task: ${job.failedReason ?? ''}`);
      bundles.push((job.returnvalue as { bundle: Round1Bundle }).bundle);
    }
    return bundles;
  }

  /** The closed set of round 1 over these bundles, as closeRound1 makes it. */
  closed(q: ForgedQuery, bundles: readonly Round1Bundle[]): Round1Closed {
    return { jobId: q.queryId, planHash: planHash(q.plan), contributors: bundles.map((b) => ({ id: b.sender, bundleHash: bundleHash(b) })).sort((a, b) => (a.id < b.id ? -1 : 1)) };
  }

  /** Appends a round.closed entry for a closed set, as the orchestrator does. */
  appendClosing(q: ForgedQuery, closed: Round1Closed): Promise<number> {
    return this.append(ENTRY.roundClosed, { queryId: q.queryId, round: 1, contributors: closed.contributors.map((c) => ({ ...c })), missing: [], refusals: [] }, q.studyId);
  }

  /** A round-2 task for a committee member over these bundles, with evidence of the closing at `closingIndex`. */
  async round2Task(q: ForgedQuery, member: string, bundles: readonly Round1Bundle[], closed: Round1Closed, closingIndex: number, directory: readonly DirectoryEntry[]) {
    const contributors = closed.contributors.map((c) => c.id);
    const found = await this.events.indicesOf(contributors.map((id) => entryKey(ENTRY.participantEnrolled, id)));
    const now = Date.now();
    const task: TaskOf<typeof TASK.shamirRound2> = {
      kind: TASK.shamirRound2,
      queryId: q.queryId,
      studyId: q.studyId,
      participantId: member,
      issuedAt: now,
      deadline: now + 60_000,
      plan: q.plan,
      query: JSON.parse(JSON.stringify(q.spec)) as TaskOf<typeof TASK.shamirRound2>['query'],
      closed,
      deliveries: deliveriesFor(q.plan, member, bundles),
      directory: directory.filter((d) => contributors.includes(d.id)),
      evidence: await this.evidence(q, [], [closingIndex, ...found.values()]),
    };
    return task;
  }

  /** Signs a task with the real coordinator key, puts it in its participant's queue and waits for the worker. */
  async send(task: TaskPayload, jobId = taskJobId(task.queryId, roundOf(task.kind), task.participantId)): Promise<FinishedJob> {
    await this.tasks.add(task.participantId, task.kind, jobId, signTask(this.key, task));
    return this.tasks.waitForFinished(task.participantId, jobId, 30_000);
  }

  /**
   * Sends a task as the coordinator does, by reference (libs/queue task-refs.ts): its shared parts into Redis under
   * their hashes, then the reference signed with the real key, and waits for the worker. `tamper` plays Redis (or
   * whoever runs it) changing a part's text after the coordinator hashed and signed it; `partsStudy` puts the parts
   * under another study's keys.
   */
  async sendByReference(task: TaskPayload, tamper: (text: string) => string = (t) => t, partsStudy = task.studyId): Promise<FinishedJob> {
    const { refs, parts } = signTaskRefs(this.key, [task]);
    for (const [hash, text] of parts) await this.tasks.putPart(partsStudy, hash, tamper(text));
    const jobId = taskJobId(task.queryId, roundOf(task.kind), task.participantId);
    await this.tasks.add(task.participantId, task.kind, jobId, refs[0]);
    return this.tasks.waitForFinished(task.participantId, jobId, 30_000);
  }

  /**
   * A fork of the ledger: the real first `prefix` entries, then `extra` entries of the hostile coordinator's own
   * (stamped `time`, so that two calls with the same entries give the same fork), signed with the real key. Returns
   * the fork's size, its prefix roots, an evidence builder over it, and the view update (libs/protocol ViewUpdate)
   * that brings a participant's view of its study from a saved size to the fork, as a task carries it.
   */
  async fork(prefix: number, extra: readonly { type: string; body: object; studyId?: string }[], time = new Date().toISOString()) {
    const rows = await this.events.list(0, prefix);
    const studyOf = [...rows.map((r) => r.study_id), ...extra.map((e) => e.studyId ?? null)];
    const entries: LedgerEntry[] = rows.map((r) => ({ v: 1, index: r.idx, type: r.type, body: JSON.parse(r.body) as LedgerEntry['body'], time: new Date(r.created_at).toISOString() }));
    extra.forEach((e, i) => entries.push({ v: 1, index: prefix + i, type: e.type, body: e.body as LedgerEntry['body'], time }));
    const bytes = entries.map((e) => entryBytes(e));
    const store = new MemoryNodeStore();
    const grown = appendLeaves(emptyFrontier(), bytes.map(leafHash));
    store.put(grown.nodes);
    const size = bytes.length;
    const origin = ledgerOrigin(this.key.publicKey);
    const rootAt = (n: number): Uint8Array => frontierRoot(appendLeaves(emptyFrontier(), bytes.slice(0, n).map(leafHash)).frontier);
    const checkpoint = signCheckpoint(this.key, origin, { origin, size, root: frontierRoot(grown.frontier) });
    return {
      size,
      rootAt,
      evidence: async (indices: readonly number[], seedSize?: number): Promise<LedgerEvidence> => ({
        checkpoint,
        entries: await Promise.all(indices.map(async (i) => ({ index: i, entry: b64(bytes[i]!), proof: (await inclusionProof(store, i, size)).map(b64) }))),
        ...(seedSize === undefined ? {} : { seedRoot: { size: seedSize, root: b64(rootAt(seedSize)), proof: seedSize === size ? [] : (await consistencyProof(store, seedSize, size)).map(b64) } }),
      }),
      viewUpdate: async (studyId: string, from: number): Promise<ViewUpdate> => {
        const indices = studyOf.map((s, i) => (s === studyId && i >= from ? i : -1)).filter((i) => i >= 0);
        return {
          from,
          consistency: (await consistencyProof(store, from, size)).map(b64),
          entries: await Promise.all(indices.map(async (i) => ({ index: i, entry: b64(bytes[i]!), proof: (await inclusionProof(store, i, size)).map(b64) }))),
        };
      },
    };
  }
}

/** A participant the hostile coordinator invents: keys it made itself, never enrolled. */
export function inventParticipant(): { id: string; encryption: KeyPair; signing: KeyPair; keys: DirectoryEntry } {
  const encryption = generateKeyPair('x25519');
  const signing = generateKeyPair('ed25519');
  const id = newParticipantId();
  return { id, encryption, signing, keys: { id, encryptionKey: publicKeyBase64Url(encryption.publicKey), signingKey: publicKeyBase64Url(signing.publicKey) } };
}

/** A round-1 bundle made by an invented participant (it signs with its own key over the plan). */
export function inventedBundle(plan: ShamirPlan, who: ReturnType<typeof inventParticipant>, directory: KeyDirectory, vector: bigint[]): Round1Bundle {
  return participantRound1({ plan, self: who.id, signing: who.signing, directory, aggregate: vector });
}
