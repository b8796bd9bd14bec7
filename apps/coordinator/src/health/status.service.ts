import { Inject, Injectable } from '@nestjs/common';
import type { CoordinatorConfig } from '../config';
import { isOnline } from '../participants/presence';
import { Repositories } from '../storage';
import { CONFIG } from '../tokens';
import type { StatusView } from './status.view';

/** The window over which `GET /v1/status` counts finished queries. */
export const STATUS_WINDOW_MS = 60 * 60 * 1000;

/**
 * The consortium at a glance (`confide admin status`): per study, participants enrolled and online, queries running,
 * and queries that failed or succeeded in the last hour; and the ledger's size. Counts only: no result, input, share
 * or key is read.
 */
@Injectable()
export class StatusService {
  constructor(
    private readonly repos: Repositories,
    @Inject(CONFIG) private readonly config: CoordinatorConfig,
  ) {}

  /**
   * Builds the status view at `now`. Online is what `GET /v1/studies/:name/participants` calls online
   * ({@link isOnline}: heard from within CONFIDE_ONLINE_SECONDS, not stopped since); removed participants are
   * neither enrolled nor online.
   */
  async view(now = Date.now()): Promise<StatusView> {
    const since = now - STATUS_WINDOW_MS;
    const [studies, participants, queries, ledgerSize] = await Promise.all([
      this.repos.studies.list(),
      this.repos.participants.listAll(),
      this.repos.queries.countByStudyAndStatus(since),
      this.repos.events.count(),
    ]);
    return {
      onlineWindowSeconds: this.config.onlineSeconds,
      windowSeconds: STATUS_WINDOW_MS / 1000,
      ledgerSize,
      studies: studies.map((s) => {
        const enrolled = participants.filter((p) => p.study_id === s.id && p.removed_at === null);
        const count = (status: 'running' | 'failed' | 'succeeded'): number => queries.find((q) => q.studyId === s.id && q.status === status)?.count ?? 0;
        return {
          name: s.name,
          participants: enrolled.length,
          online: enrolled.filter((p) => isOnline(p, now, this.config.onlineSeconds * 1000)).length,
          running: count('running'),
          failedLastHour: count('failed'),
          succeededLastHour: count('succeeded'),
        };
      }),
    };
  }
}
