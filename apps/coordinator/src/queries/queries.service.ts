import { Inject, Injectable } from '@nestjs/common';
import {
  assertNoOverflow,
  canonicalQuery,
  committeeSize,
  compileQuery,
  dpCost,
  effectivePrivacy,
  ENTRY,
  entryKey,
  ledgerValue,
  nonceCommitment,
  planPaillier,
  PrivacyError,
  ProtocolError,
  queryHash,
  querySpecFor,
  checkResearcherBinding,
  custodiansHash,
  thresholdBelowFloor,
  thresholdFloor,
  type PaillierDecryption,
  type PrivacySettings,
  type QuerySpec,
  type PostedPartials,
  type ResearcherBinding,
} from '@confide/protocol';
import { importPublicKeyBase64Url, keyFingerprint, publicKeyToJson, thresholdVerificationFromJson } from '@confide/crypto';
import { newQueryId } from '@confide/queue';
import { planColumn, readColumn, readQuerySpec, readStudySchema, resultColumn, shamirOptionsColumn, type PaillierOptions, type ShamirOptions } from '../db/columns';
import { ApiError } from '../http/error.filter';
import { Orchestrator } from '../orchestration/orchestrator';
import { StudiesService } from '../studies/studies.service';
import { Repositories } from '../storage';
import type { CoordinatorConfig } from '../config';
import { isOnline } from '../participants/presence';
import { CONFIG } from '../tokens';

/** A query as submitted over the API. */
export interface QueryRequest {
  readonly study: string;
  readonly protocol: 'shamir' | 'paillier';
  readonly select: readonly Record<string, unknown>[];
  readonly where?: readonly Record<string, unknown>[];
  readonly groupBy?: string;
  readonly privacy?: Readonly<Record<string, unknown>>;
  /** Paillier only: the researcher's public key `{ n }` (base64url). Never a private key. */
  readonly publicKey?: { readonly n: string };
  readonly threshold?: number;
  readonly deadlineSeconds?: number;
  /**
   * Shamir: SHA-256 commitment to the researcher's committee nonce (libs/protocol nonceCommitment). The nonce is
   * revealed with POST /v1/queries/:id/nonce once the commitment is in the ledger; with the ledger's root it
   * seeds the committee draw, so the coordinator cannot choose the committee alone.
   */
  readonly seedCommitment?: string;
  /** Paillier: the researcher's signed binding of the key to this query (libs/protocol paillier/researcher.ts). */
  readonly researcher?: ResearcherBinding;
  /** Paillier with custodians: their verification keys, which the binding names. */
  readonly custodians?: Readonly<Record<string, unknown>>;
  /** Submit even when fewer than the query's minimum of participants are online: the round waits for them until its deadline. */
  readonly allowOffline?: boolean;
}

/** What POST /v1/queries answers. */
export interface SubmittedQuery {
  readonly id: string;
  readonly status: 'running';
  /** Shamir: the query waits for the researcher's committee nonce (POST /v1/queries/:id/nonce). */
  readonly awaitingNonce: boolean;
  /** The ledger index of its `query.submitted` entry. */
  readonly ledgerIndex: number;
  /** How many of the study's participants were online when it was submitted, of how many asked. */
  readonly online: { readonly count: number; readonly of: number };
}

/** What GET /v1/queries/:id answers. */
export interface QueryView {
  readonly id: string;
  readonly study: string;
  readonly protocol: string;
  readonly status: 'running' | 'succeeded' | 'failed';
  readonly round: number;
  /** Shamir: the query waits for the submitting researcher's committee nonce before anything is dispatched. */
  readonly awaitingNonce: boolean;
  /** Paillier: the aggregate is ready and waits for the submitting researcher's decryption. */
  readonly awaitingDecryption: boolean;
  readonly answered: number;
  readonly expected: number;
  readonly participants: number | null;
  readonly results: unknown[] | null;
  /** Which output-privacy measures applied to the released results (thresholds, suppressed cells, DP). */
  readonly privacy: unknown;
  readonly ledgerIndex: number | null;
  readonly failureReason: string | null;
  readonly createdAt: string;
  readonly finishedAt: string | null;
  /**
   * While a round with participant tasks is open: who answered it, who refused it and who has not yet, by invited
   * name and id. Only who, never what.
   */
  readonly progress: RoundProgress | null;
}

/** A participant as the query views name it. */
export interface NamedParticipant {
  readonly id: string;
  readonly name: string;
}

/** Who answered the open round of a query. */
export interface RoundProgress {
  readonly round: number;
  readonly answered: readonly NamedParticipant[];
  readonly refused: readonly NamedParticipant[];
  readonly waiting: readonly NamedParticipant[];
}

/** A query as GET /v1/queries lists it. */
export interface QuerySummary {
  readonly id: string;
  readonly study: string;
  readonly protocol: string;
  /** The statistics, as `mean(salary)` or `correlation(x, y)`. */
  readonly statistics: readonly string[];
  readonly status: 'running' | 'succeeded' | 'failed';
  readonly submittedBy: string | null;
  readonly createdAt: string;
  readonly finishedAt: string | null;
}

/** One statistic of a query as its list shows it: `mean(salary)`, `regression(y, x)`. */
function statLabel(item: Readonly<Record<string, unknown>>): string {
  const field = typeof item.field === 'string' ? item.field : [item.x, item.y].filter((v) => typeof v === 'string').join(', ');
  return `${String(item.stat)}(${field})`;
}

/** Submitting and reading queries. The protocol work is the orchestrator's. */
@Injectable()
export class QueriesService {
  constructor(
    private readonly repos: Repositories,
    private readonly studies: StudiesService,
    private readonly orchestrator: Orchestrator,
    @Inject(CONFIG) private readonly config: CoordinatorConfig,
  ) {}

  /**
   * Validates a query against the study (fields, statistics, overflow from declared record counts, the threshold
   * floor) and the study's minimum participant count, and records it in the ledger. A paillier query starts at
   * once; a shamir query waits for the researcher's committee nonce ({@link revealNonce}).
   * @throws ApiError 400 with the problem named; nothing is dispatched for a refused query
   */
  async submit(req: QueryRequest, createdBy: string): Promise<SubmittedQuery> {
    const study = await this.studies.get(req.study);
    let privacy: PrivacySettings;
    try {
      // Per-query settings may only tighten the study's (DESIGN.md "Trust model": output privacy).
      privacy = effectivePrivacy(study.schema.privacy, req.privacy);
    } catch (err) {
      if (err instanceof PrivacyError) throw new ApiError(400, 'invalid_privacy', err.message);
      throw err;
    }
    // The query as stored and run: its privacy is the effective settings, which the release applies.
    const spec = querySpecFor(study.schema, req);
    const compiled = compileQuery(study.schema, spec);
    if (req.protocol === 'paillier' && !req.publicKey) throw new ApiError(400, 'invalid_query', 'publicKey: the paillier protocol needs the researcher’s public key');
    if (req.protocol !== 'paillier' && (req.publicKey || req.researcher || req.custodians)) {
      throw new ApiError(400, 'invalid_query', `${req.publicKey ? 'publicKey' : req.researcher ? 'researcher' : 'custodians'}: only the paillier protocol takes it`);
    }
    const participants = await this.repos.participants.listByStudy(study.id, { active: true });
    if (participants.length < privacy.minParticipants) {
      throw new ApiError(400, 'min_participants', `refused: ${participants.length} participant${participants.length === 1 ? '' : 's'} enrolled in ${study.name}, the study requires at least ${privacy.minParticipants}`);
    }
    if (req.protocol === 'shamir') {
      const committee = committeeSize(participants.length);
      const floor = thresholdFloor(committee, study.schema.minThreshold ?? 1);
      if (floor > committee) throw new ApiError(400, 'invalid_query', `threshold: the study requires at least ${floor}, more than the committee of ${committee}`);
      if (req.threshold !== undefined && req.threshold > committee) {
        throw new ApiError(400, 'invalid_query', `threshold: ${req.threshold} exceeds the committee size ${committee}`);
      }
      if (req.threshold !== undefined && req.threshold < floor) throw new ApiError(400, 'invalid_query', `threshold: ${thresholdBelowFloor(req.threshold, floor, committee)}`);
      if (req.seedCommitment === undefined) {
        throw new ApiError(400, 'invalid_query', "seedCommitment: a shamir query needs the researcher's commitment to its committee nonce (the confide CLI sends it)");
      }
    } else {
      if (req.threshold !== undefined) throw new ApiError(400, 'invalid_query', 'threshold: only the shamir protocol takes a threshold');
      if (req.seedCommitment !== undefined) throw new ApiError(400, 'invalid_query', 'seedCommitment: only the shamir protocol draws a committee');
    }
    assertNoOverflow(compiled, participants.reduce((n, p) => n + BigInt(p.max_records), 0n));
    if (req.protocol === 'paillier' && req.publicKey) {
      try {
        // The same checks the orchestrator makes, before anything is recorded: the key, and that every slot fits it.
        planPaillier({
          jobId: 'check',
          queryHash: '0'.repeat(64),
          compiled,
          publicKey: req.publicKey,
          participants: participants.map((p) => p.id),
          minParticipants: privacy.minParticipants,
          maxRecords: participants.reduce((m, p) => (BigInt(p.max_records) > m ? BigInt(p.max_records) : m), 0n),
          deadline: 0,
          dp: privacy.dp,
        });
      } catch (err) {
        if (err instanceof ProtocolError) throw new ApiError(400, err.code === 'OVERFLOW' ? 'overflow' : 'invalid_public_key', `publicKey: ${err.message}`);
        throw err;
      }
      await this.checkBinding(req, study.name, spec, createdBy);
    }
    // Before anything is recorded: a query that cannot reach its minimum with the workers running now would only
    // wait out its deadline and fail, with its privacy budget spent.
    const now0 = Date.now();
    const online = participants.filter((p) => isOnline(p, now0, this.config.onlineSeconds * 1000));
    if (online.length < privacy.minParticipants && req.allowOffline !== true) {
      const offline = participants.filter((p) => !online.includes(p)).map((p) => `${p.name} (${p.id})`);
      throw new ApiError(
        409,
        'too_few_online',
        `refused, nothing recorded: ${online.length} of the ${participants.length} participants of ${study.name} are online (seen in the last ${this.config.onlineSeconds} s), the query needs at least ${privacy.minParticipants}; offline: ${offline.join(', ')}. Start their workers, or submit with --allow-offline (allowOffline: true) to wait for them until the deadline`,
      );
    }
    const onlineCount = { count: online.length, of: participants.length };
    const id = newQueryId();
    const now = Date.now();
    const budget = study.schema.privacy.dp?.budget;
    if (privacy.dp && budget) {
      // Spent before anything is recorded or dispatched: a query over budget is refused with nothing computed. A
      // study without DP has no budget to charge: a query that opts into DP there spends nothing (the ledger still
      // records its ε below), so the next one is not refused.
      try {
        await this.repos.privacyBudget.spend(study.id, id, dpCost(privacy.dp), budget, now);
      } catch (err) {
        if (err instanceof PrivacyError) throw new ApiError(409, 'privacy_budget_exhausted', err.message);
        throw err;
      }
    }
    await this.repos.queries.create({
      id,
      study_id: study.id,
      protocol: req.protocol,
      spec_json: JSON.stringify(spec),
      status: 'running',
      created_by: createdBy,
      created_at: now,
      finished_at: null,
      plan_json: null,
      current_round: req.protocol === 'shamir' ? 0 : 1,
      failure_reason: null,
      result_json: null,
      contributors: null,
      options_json: null,
    });
    // Ledger entries hold integers only: numbers in the query (histogram edges, where values) go in as decimal strings.
    // The query hash is the one every participant recomputes from the query its task carries (libs/protocol queryHash).
    const submittedIndex = await this.repos.events.append(
      ENTRY.querySubmitted,
      {
        queryId: id,
        studyId: study.id,
        study: study.name,
        protocol: req.protocol,
        query: canonicalQuery(spec) as object,
        queryHash: queryHash(spec),
        submittedBy: createdBy,
        ...(req.seedCommitment !== undefined ? { seedCommitment: req.seedCommitment } : {}),
        ...(req.threshold !== undefined ? { threshold: req.threshold } : {}),
        ...(req.protocol === 'paillier' ? { publicKey: { n: req.publicKey!.n }, researcher: req.researcher, ...(req.custodians ? { custodians: req.custodians } : {}) } : {}),
      },
      entryKey(ENTRY.querySubmitted, id),
      now,
      study.id,
    );
    if (privacy.dp) {
      await this.repos.events.append(ENTRY.privacySpent, { queryId: id, study: study.name, ...(ledgerValue({ mechanism: privacy.dp.mechanism, ...dpCost(privacy.dp) }) as object) }, entryKey(ENTRY.privacySpent, id), now, study.id);
    }
    try {
      if (req.protocol === 'paillier') {
        if (req.custodians) await this.repos.queries.setOptions(id, JSON.stringify({ custodians: req.custodians } satisfies PaillierOptions));
        await this.orchestrator.startPaillier({ queryId: id, studyId: study.id, spec, schema: study.schema, publicKey: req.publicKey!, deadlineSeconds: req.deadlineSeconds, submittedIndex, submittedBy: createdBy });
        return { id, status: 'running', awaitingNonce: false, ledgerIndex: submittedIndex, online: onlineCount };
      }
      const options: ShamirOptions = { threshold: req.threshold, deadlineSeconds: req.deadlineSeconds, seedCommitment: req.seedCommitment, submittedIndex };
      await this.repos.queries.setOptions(id, JSON.stringify(options));
      await this.orchestrator.awaitNonce(id);
    } catch (err) {
      await this.repos.queries.finish(id, { status: 'failed', failure_reason: err instanceof Error ? err.message : String(err) }, Date.now());
      throw err;
    }
    return { id, status: 'running', awaitingNonce: true, ledgerIndex: submittedIndex, online: onlineCount };
  }

  /**
   * A paillier query's binding (libs/protocol paillier/researcher.ts): signed with the identity key an admin bound
   * to the submitting API key, over this study, exactly this query, this public key and these custodians. Every
   * participant checks the same against the ledger; checking here refuses a mistake before anything is recorded.
   * @throws ApiError 400 naming what does not hold
   */
  private async checkBinding(req: QueryRequest, studyName: string, spec: QuerySpec, createdBy: string): Promise<void> {
    if (!req.publicKey) return;
    if (!req.researcher) throw new ApiError(400, 'invalid_query', "researcher: a paillier query needs the researcher's signature over its public key (the confide CLI sends it with --identity)");
    const key = await this.repos.apiKeys.get(createdBy);
    if (!key?.identity_key) {
      throw new ApiError(400, 'no_identity', "researcher: this API key has no identity key bound to it; ask an admin for a researcher key created with 'confide admin keys create --role researcher --identity KEY'");
    }
    let custodians: string | null = null;
    if (req.custodians) {
      try {
        const verification = thresholdVerificationFromJson(req.custodians);
        if (publicKeyToJson(verification.publicKey).n !== req.publicKey.n) throw new Error("their modulus is not the query's public key");
      } catch (err) {
        throw new ApiError(400, 'invalid_custodians', `custodians: ${(err as Error).message}`);
      }
      custodians = custodiansHash(req.custodians);
    }
    const statement = { study: studyName, queryHash: queryHash(spec), publicKey: { n: req.publicKey.n }, custodians, nonce: req.researcher.nonce };
    const problem = checkResearcherBinding(req.researcher, statement, keyFingerprint(importPublicKeyBase64Url('ed25519', key.identity_key)));
    if (problem) throw new ApiError(400, 'invalid_signature', `researcher: ${problem}`);
  }

  /**
   * Starts a shamir query with the researcher's committee nonce (DESIGN.md "Protocol shamir": a committee seed the
   * coordinator cannot choose alone): the nonce must match the commitment recorded in `query.submitted`; the seed
   * is then derived from it and the ledger's root right after that entry, and round 1 is dispatched.
   * @throws ApiError 404 unknown query, 403 another caller than the submitter, 409 not waiting for a nonce,
   *   422 a nonce that does not match the commitment
   */
  async revealNonce(id: string, keyId: string, nonce: string): Promise<QueryView> {
    const q = await this.repos.queries.get(id);
    if (!q) throw new ApiError(404, 'not_found', `no query ${id}`);
    if (q.created_by !== keyId) throw new ApiError(403, 'forbidden', 'only the researcher who submitted the query reveals its committee nonce');
    if (q.protocol !== 'shamir' || q.status !== 'running' || q.current_round !== 0 || !q.options_json) {
      throw new ApiError(409, 'not_awaiting_nonce', `query ${id} is not waiting for a committee nonce`);
    }
    const options = readColumn(shamirOptionsColumn, q.options_json, `queries.options_json of query ${id}`);
    if (nonceCommitment(nonce) !== options.seedCommitment) {
      throw new ApiError(422, 'nonce_mismatch', "nonce: it does not match the commitment recorded when the query was submitted");
    }
    const study = await this.repos.studies.getById(q.study_id);
    if (!study) throw new ApiError(404, 'not_found', `the study of query ${id} no longer exists`);
    const schema = readStudySchema(study.schema_json, `studies.schema_json of study ${study.id}`);
    try {
      await this.orchestrator.start({
        queryId: id,
        studyId: q.study_id,
        spec: readQuerySpec(q.spec_json, `queries.spec_json of query ${id}`),
        schema,
        threshold: options.threshold,
        deadlineSeconds: options.deadlineSeconds,
        nonce,
        submittedIndex: options.submittedIndex,
      });
    } catch (err) {
      if (err instanceof ApiError) throw err;
      await this.orchestrator.failUnstarted(id, err instanceof Error ? err.message : String(err));
      throw err;
    }
    return this.view(id);
  }

  /** The aggregate ciphertexts of a paillier query, for the researcher who submitted it only. */
  aggregate(id: string, keyId: string) {
    return this.orchestrator.aggregateFor(id, keyId);
  }

  /** Verifies and keeps one custodian's partial decryptions; the t-th releases the result. Answers with the query. */
  async partials(id: string, keyId: string, posted: PostedPartials): Promise<QueryView & { decryption: { decrypted: number; threshold: number } }> {
    const { decrypted, threshold } = await this.orchestrator.acceptPartials(id, keyId, posted);
    return { ...(await this.view(id)), decryption: { decrypted, threshold } };
  }

  /** Verifies and accepts the submitting researcher's decryption, releasing the result; answers with the query. */
  async decryption(id: string, keyId: string, posted: PaillierDecryption): Promise<QueryView> {
    await this.orchestrator.acceptDecryption(id, keyId, posted);
    return this.view(id);
  }

  /** A query's status, progress and, when finished, results or failure reason. @throws ApiError 404 */
  async view(id: string): Promise<QueryView> {
    const q = await this.repos.queries.get(id);
    if (!q) throw new ApiError(404, 'not_found', `no query ${id}`);
    const study = await this.repos.studies.getById(q.study_id);
    const round = await this.repos.rounds.get(id, q.current_round);
    const contributions = await this.repos.contributions.list(id, q.current_round);
    const answered = contributions.length;
    const result = q.result_json ? readColumn(resultColumn, q.result_json, `queries.result_json of query ${id}`) : null;
    return {
      id: q.id,
      study: study?.name ?? q.study_id,
      protocol: q.protocol,
      status: q.status,
      round: q.current_round,
      awaitingNonce: q.protocol === 'shamir' && q.status === 'running' && q.current_round === 0,
      awaitingDecryption: q.protocol === 'paillier' && q.status === 'running' && round?.round === 2 && round.status === 'open',
      answered,
      expected: round?.expected ?? 0,
      participants: q.contributors,
      results: result?.results ?? null,
      privacy: result?.privacy ?? null,
      ledgerIndex: result?.ledgerIndex ?? null,
      failureReason: q.failure_reason,
      createdAt: new Date(q.created_at).toISOString(),
      finishedAt: q.finished_at ? new Date(q.finished_at).toISOString() : null,
      progress: q.status === 'running' && round?.status === 'open' ? await this.progress(q, round.round) : null,
    };
  }

  /**
   * Who answered, refused or is still awaited in an open round: round 1's participants, or shamir round 2's
   * committee, from the plan; null for a round with no participant tasks (the nonce, a paillier decryption).
   */
  private async progress(q: { id: string; study_id: string; protocol: string; plan_json: string | null }, round: number): Promise<RoundProgress | null> {
    if (!q.plan_json || round < 1) return null;
    const plan = readColumn(planColumn, q.plan_json, `queries.plan_json of query ${q.id}`);
    const expected = round === 1 ? plan.participants : plan.protocol === 'shamir' && round === 2 ? plan.committee : null;
    if (!expected) return null;
    const names = new Map((await this.repos.participants.listByStudy(q.study_id)).map((p) => [p.id, p.name]));
    const outcomes = new Map((await this.repos.taskOutcomes.list(q.id, round)).map((o) => [o.participant_id, o.outcome]));
    const named = (id: string): NamedParticipant => ({ id, name: names.get(id) ?? id });
    return {
      round,
      answered: expected.filter((id) => outcomes.get(id) === 'answered').map(named),
      refused: expected.filter((id) => outcomes.get(id) === 'refused').map(named),
      waiting: expected.filter((id) => !outcomes.has(id)).map(named),
    };
  }

  /** Queries, newest first: of a study (by name), of one API key, or all, at most `limit`. @throws ApiError 404 for an unknown study */
  async list(filter: { study?: string; createdBy?: string; limit: number }): Promise<QuerySummary[]> {
    const studies = new Map((await this.repos.studies.list()).map((st) => [st.id, st.name]));
    let studyId: string | undefined;
    if (filter.study !== undefined) {
      studyId = [...studies].find(([, name]) => name === filter.study)?.[0];
      if (studyId === undefined) throw new ApiError(404, 'not_found', `no study named ${JSON.stringify(filter.study)}`);
    }
    const rows = await this.repos.queries.list({ studyId, createdBy: filter.createdBy, limit: filter.limit });
    return rows.map((q) => ({
      id: q.id,
      study: studies.get(q.study_id) ?? q.study_id,
      protocol: q.protocol,
      statistics: readQuerySpec(q.spec_json, `queries.spec_json of query ${q.id}`).select.map((item) => statLabel(item as Readonly<Record<string, unknown>>)),
      status: q.status,
      submittedBy: q.created_by,
      createdAt: new Date(q.created_at).toISOString(),
      finishedAt: q.finished_at ? new Date(q.finished_at).toISOString() : null,
    }));
  }
}
