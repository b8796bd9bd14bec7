import { Inject, Injectable } from '@nestjs/common';
import { importPublicKeyBase64Url } from '@confide/crypto';
import { ENTRY, entryKey, ParticipantStatementError, verifyUpdateStatement } from '@confide/protocol';
import { revokeParticipantUser, withRedis } from '@confide/queue';
import type { Participant } from '../db/schema';
import { ApiError } from '../http/error.filter';
import type { RedisConnections } from '../orchestration/orchestrator';
import { Orchestrator } from '../orchestration/orchestrator';
import { Repositories } from '../storage';
import { CONFIG, REDIS } from '../tokens';
import type { CoordinatorConfig } from '../config';
import type { Heartbeat } from './presence';

/** A participant as the admin sees it: its invited name beside its id. */
export interface ParticipantView {
  readonly id: string;
  readonly name: string;
  readonly status: 'active' | 'removed';
  readonly enrolledAt: string;
  readonly removedAt: string | null;
  readonly maxRecords: number;
  readonly encryptionKeyFingerprint: string;
  readonly signingKeyFingerprint: string;
}

/** What a participant signs to change its maximum record count (libs/protocol participant-statements.ts). */
export interface MaxRecordsUpdate {
  readonly participantId: string;
  readonly studyId: string;
  readonly maxRecords: number;
  readonly previousMaxRecords: number;
  readonly time: number;
  readonly signature: string;
}

/** How messages name a participant: its invited name, then its id. */
export const participantLabel = (p: Pick<Participant, 'id' | 'name'>): string => `${p.name} (${p.id})`;

/** A participant row as the API shows it. */
export function participantView(p: Participant): ParticipantView {
  return {
    id: p.id,
    name: p.name,
    status: p.removed_at === null ? 'active' : 'removed',
    enrolledAt: new Date(p.enrolled_at).toISOString(),
    removedAt: p.removed_at === null ? null : new Date(p.removed_at).toISOString(),
    maxRecords: p.max_records,
    encryptionKeyFingerprint: p.encryption_fingerprint,
    signingKeyFingerprint: p.signing_fingerprint,
  };
}

/** A study's participants after enrollment: the admin lists and removes them; a participant updates its own limits. */
@Injectable()
export class ParticipantsService {
  constructor(
    private readonly repos: Repositories,
    private readonly orchestrator: Orchestrator,
    @Inject(REDIS) private readonly redis: RedisConnections,
    @Inject(CONFIG) private readonly config: CoordinatorConfig,
  ) {}

  private async study(name: string) {
    const study = await this.repos.studies.getByName(name);
    if (!study) throw new ApiError(404, 'not_found', `no study named ${JSON.stringify(name)}`);
    return study;
  }

  /**
   * Removes a participant from its study (issue 13): its row is marked removed and `participant.removed` appended in
   * one transaction, then its Redis ACL user is deleted and its events are no longer read. No plan made after the
   * entry lists it, and honest participants refuse one that does (libs/protocol checkStudyView). A query already
   * running keeps its plan: the removed participant cannot answer any more, so the round closes without it at its
   * deadline, or fails below the study's minimum, with the reason in the ledger.
   * @param who the participant's id, or its name in the study
   * @throws ApiError 404 unknown study or participant, 409 already removed
   */
  async remove(studyName: string, who: string, removedBy: string): Promise<ParticipantView & { ledgerIndex: number }> {
    const study = await this.study(studyName);
    const rows = await this.repos.participants.listByStudy(study.id);
    const row = rows.find((p) => p.id === who) ?? rows.find((p) => p.name === who);
    if (!row) throw new ApiError(404, 'not_found', `study ${study.name} has no participant with id or name ${JSON.stringify(who)}`);
    const now = Date.now();
    const index = await this.repos.transaction(async (tx) => {
      if (!(await tx.participants.remove(row.id, now))) return undefined;
      return tx.events.append(ENTRY.participantRemoved, { participantId: row.id, studyId: study.id, name: row.name, removedBy }, entryKey(ENTRY.participantRemoved, row.id), now, study.id);
    });
    if (index === undefined) throw new ApiError(409, 'already_removed', `${participantLabel(row)} was already removed`);
    // After the commit: should Redis be down now, the coordinator deletes the user when Redis comes back (recover).
    await withRedis(this.redis.producer, () => revokeParticipantUser(this.redis.producer, row.redis_user));
    return { ...participantView({ ...row, removed_at: now }), ledgerIndex: index };
  }

  /**
   * Changes a participant's declared maximum record count, on a statement it signed with its enrolled key, and
   * records it (with the statement) in `participant.updated`. The request itself is already authenticated as this
   * participant (libs/protocol participant-request); the statement is what the ledger keeps.
   * @throws ApiError 400 bad_signature (signed with another key, or for another participant), stale, 403 removed,
   *   409 conflict (made for another current value)
   */
  /**
   * Keeps a worker's heartbeat (its sighting is recorded by the guard, as for every signed request); one that says
   * it is stopping marks the participant offline from now until it is seen again.
   * @returns how often to send the next, and how long a silence makes it offline
   */
  async heartbeat(caller: string, beat: Heartbeat): Promise<{ ok: true; onlineSeconds: number; ledgerSize: number }> {
    const { stopping, ...kept } = beat;
    await this.repos.participants.heartbeat(caller, JSON.stringify(kept), stopping ? Date.now() : null);
    // The signed ledger's size, so that a worker whose view fell far behind catches up while it is idle rather than
    // in its next task (a hint: the worker checks whatever it fetches against the signed checkpoint).
    const newest = await this.repos.database.db.selectFrom('checkpoints').select('size').orderBy('size', 'desc').limit(1).executeTakeFirst();
    return { ok: true, onlineSeconds: this.config.onlineSeconds, ledgerSize: newest?.size ?? 0 };
  }

  async updateMaxRecords(caller: string, update: MaxRecordsUpdate): Promise<ParticipantView & { ledgerIndex: number }> {
    const row = await this.repos.participants.get(caller);
    if (!row) throw new ApiError(404, 'not_found', 'unknown participant');
    if (update.participantId !== row.id || update.studyId !== row.study_id) {
      throw new ApiError(400, 'bad_signature', `update refused: it is signed for participant ${update.participantId}, not for ${participantLabel(row)}`);
    }
    if (row.removed_at !== null) throw new ApiError(403, 'participant_removed', `update refused: ${participantLabel(row)} was removed from the study`);
    const statement = { participantId: row.id, studyId: row.study_id, maxRecords: update.maxRecords, previousMaxRecords: update.previousMaxRecords, time: update.time };
    try {
      verifyUpdateStatement(importPublicKeyBase64Url('ed25519', row.signing_key), statement, update.signature, row.max_records, Date.now());
    } catch (err) {
      if (err instanceof ParticipantStatementError) throw new ApiError(err.code === 'conflict' ? 409 : 400, err.code, `update refused: ${err.message}`);
      throw err;
    }
    const now = Date.now();
    const index = await this.repos.transaction(async (tx) => {
      if (!(await tx.participants.setMaxRecords(row.id, update.previousMaxRecords, update.maxRecords))) return undefined;
      return tx.events.append(
        ENTRY.participantUpdated,
        { ...statement, name: row.name, signingKey: row.signing_key, signature: update.signature },
        entryKey(ENTRY.participantUpdated, row.id, update.time, update.signature.slice(0, 16)),
        now,
        row.study_id,
      );
    });
    if (index === undefined) throw new ApiError(409, 'conflict', `update refused: maxRecords of ${participantLabel(row)} changed meanwhile; sign the update again`);
    return { ...participantView({ ...row, max_records: update.maxRecords }), ledgerIndex: index };
  }
}
