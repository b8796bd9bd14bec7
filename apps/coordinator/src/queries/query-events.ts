import { Injectable } from '@nestjs/common';
import type { Observable } from 'rxjs';
import { Repositories } from '../storage';
import { StudiesService } from '../studies/studies.service';
import { QueriesService, type QueryView } from './queries.service';
import { queryStream, type QueryStreamEvent } from './query-stream';

/**
 * Live query status for the console (`GET /v1/queries/events`, server-sent events): the newest queries' full views
 * (what `GET /v1/queries/:id` shows), sent on connect and again whenever one of them changes ({@link queryStream}).
 * Each stream checks every 250 ms (POLL_MS) with one cheap statement (QueryRepository.activity) and reads the views only
 * when that changed. Nothing is kept between streams: every coordinator process over one database sees every change.
 */
@Injectable()
export class QueryEvents {
  /** The poll timer of every open stream in this process. */
  private readonly polling = new Set<NodeJS.Timeout>();

  constructor(
    private readonly repos: Repositories,
    private readonly studies: StudiesService,
    private readonly queries: QueriesService,
  ) {}

  /** Streams open in this process, each polling the database until its client leaves. */
  get open(): number {
    return this.polling.size;
  }

  /**
   * The stream of the `limit` newest queries (of `study`, when given), newest first. Nest unsubscribes when the
   * client disconnects, which stops its timers; a database error ends it with Nest's `error` event.
   * @throws ApiError 404 for an unknown study, before anything is streamed
   */
  async watch(filter: { study?: string; limit: number }): Promise<Observable<QueryStreamEvent<QueryView>>> {
    const studyId = filter.study === undefined ? undefined : (await this.studies.get(filter.study)).id;
    return queryStream({ activity: () => this.repos.queries.activity({ studyId, limit: filter.limit }), view: (id) => this.queries.view(id) }, this.polling);
  }
}
