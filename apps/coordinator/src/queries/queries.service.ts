import { Injectable } from '@nestjs/common';
import { assertNoOverflow, compileQuery, MAX_COMMITTEE, type QuerySpec } from '@confide/protocol';
import { ApiError } from '../http/error.filter';
import { newQueryId } from '../orchestration/ids';
import { Orchestrator } from '../orchestration/orchestrator';
import { StudiesService } from '../studies/studies.service';
import { Repositories } from '../storage';

/** A query as submitted over the API. */
export interface QueryRequest {
  readonly study: string;
  readonly protocol: 'shamir';
  readonly select: QuerySpec['select'];
  readonly threshold?: number;
  readonly deadlineSeconds?: number;
}

/** What GET /v1/queries/:id answers. */
export interface QueryView {
  readonly id: string;
  readonly study: string;
  readonly protocol: string;
  readonly status: 'running' | 'succeeded' | 'failed';
  readonly round: number;
  readonly answered: number;
  readonly expected: number;
  readonly participants: number | null;
  readonly results: unknown[] | null;
  readonly ledgerIndex: number | null;
  readonly failureReason: string | null;
  readonly createdAt: string;
  readonly finishedAt: string | null;
}

/** Submitting and reading queries. The protocol work is the orchestrator's. */
@Injectable()
export class QueriesService {
  constructor(
    private readonly repos: Repositories,
    private readonly studies: StudiesService,
    private readonly orchestrator: Orchestrator,
  ) {}

  /**
   * Validates a query against the study (fields, statistics, overflow from declared record counts) and
   * the study's minimum participant count, records it, and starts round 1.
   * @throws ApiError 400 with the problem named; nothing is dispatched for a refused query
   */
  async submit(req: QueryRequest, createdBy: string): Promise<{ id: string; status: string }> {
    const study = await this.studies.get(req.study);
    const spec: QuerySpec = { select: req.select };
    const compiled = compileQuery(study.schema, spec);
    const participants = await this.repos.participants.listByStudy(study.id);
    if (participants.length < study.minParticipants) {
      throw new ApiError(400, 'min_participants', `refused: ${participants.length} participant${participants.length === 1 ? '' : 's'} enrolled in ${study.name}, the study requires at least ${study.minParticipants}`);
    }
    const committee = Math.min(participants.length, MAX_COMMITTEE);
    if (req.threshold !== undefined && req.threshold > committee) {
      throw new ApiError(400, 'invalid_query', `threshold: ${req.threshold} exceeds the committee size ${committee}`);
    }
    assertNoOverflow(compiled, participants.reduce((n, p) => n + BigInt(p.max_records), 0n));
    const id = newQueryId();
    const now = Date.now();
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
      current_round: 1,
      failure_reason: null,
      result_json: null,
      contributors: null,
    });
    await this.repos.events.append('query.submitted', { queryId: id, study: study.name, protocol: req.protocol, select: spec.select, submittedBy: createdBy }, `query.submitted:${id}`, now);
    try {
      await this.orchestrator.start({ queryId: id, studyId: study.id, spec, schema: study.schema, threshold: req.threshold, deadlineSeconds: req.deadlineSeconds });
    } catch (err) {
      await this.repos.queries.finish(id, { status: 'failed', failure_reason: err instanceof Error ? err.message : String(err) }, Date.now());
      throw err;
    }
    return { id, status: 'running' };
  }

  /** A query's status, progress and, when finished, results or failure reason. @throws ApiError 404 */
  async view(id: string): Promise<QueryView> {
    const q = await this.repos.queries.get(id);
    if (!q) throw new ApiError(404, 'not_found', `no query ${id}`);
    const study = await this.repos.studies.getById(q.study_id);
    const round = await this.repos.rounds.get(id, q.current_round);
    const answered = (await this.repos.contributions.list(id, q.current_round)).length;
    const result = q.result_json ? (JSON.parse(q.result_json) as { results: unknown[]; ledgerIndex: number }) : null;
    return {
      id: q.id,
      study: study?.name ?? q.study_id,
      protocol: q.protocol,
      status: q.status,
      round: q.current_round,
      answered,
      expected: round?.expected ?? 0,
      participants: q.contributors,
      results: result?.results ?? null,
      ledgerIndex: result?.ledgerIndex ?? null,
      failureReason: q.failure_reason,
      createdAt: new Date(q.created_at).toISOString(),
      finishedAt: q.finished_at ? new Date(q.finished_at).toISOString() : null,
    };
  }
}
