import { Inject, Injectable } from '@nestjs/common';
import { importPublicKeyBase64Url, keyFingerprint, publicKeyBase64Url, type KeyPair } from '@confide/crypto';
import { ENTRY, entryKey, toStudySchemaJson } from '@confide/protocol';
import { generateRedisPassword, hashRedisPassword, newParticipantId, participantQueue, provisionParticipantUser, revokeParticipantUser, withRedis } from '@confide/queue';
import { hashToken } from '../auth/tokens';
import type { CoordinatorConfig } from '../config';
import { readStudySchema } from '../db/columns';
import { ApiError } from '../http/error.filter';
import type { RedisConnections } from '../orchestration/orchestrator';
import { Orchestrator } from '../orchestration/orchestrator';
import { Repositories } from '../storage';
import { CONFIG, COORDINATOR_ENCRYPTION_KEY, COORDINATOR_KEY, REDIS } from '../tokens';

/** What a participant sends to enroll: its public keys and how many records it may contribute at most. */
export interface EnrollRequest {
  readonly encryptionKey: string;
  readonly signingKey: string;
  readonly maxRecords: number;
}

/** What an invitation shows before it is used: the study's settings to accept, and the coordinator's keys to pin. */
export interface InvitationPreview {
  readonly studyId: string;
  readonly study: unknown;
  readonly participantName: string;
  readonly expiresAt: string;
  readonly coordinatorKey: string;
  readonly coordinatorKeyFingerprint: string;
  readonly coordinatorEncryptionKey: string;
}

/** What it gets back: its id, the study, the coordinator's keys to pin, and its own Redis credentials. */
export interface EnrollResponse {
  readonly participantId: string;
  readonly studyId: string;
  readonly study: unknown;
  readonly coordinatorKey: string;
  readonly coordinatorKeyFingerprint: string;
  /** X25519: the committee seals round-2 share sums to it. */
  readonly coordinatorEncryptionKey: string;
  readonly redis: { readonly url: string; readonly username: string; readonly password: string; readonly prefix: string; readonly queue: string };
}

/** Enrollment with a one-time invitation (DESIGN.md "Who uses it": participant enrolls once). */
@Injectable()
export class EnrollmentService {
  constructor(
    private readonly repos: Repositories,
    private readonly orchestrator: Orchestrator,
    @Inject(CONFIG) private readonly config: CoordinatorConfig,
    @Inject(REDIS) private readonly redis: RedisConnections,
    @Inject(COORDINATOR_KEY) private readonly key: KeyPair,
    @Inject(COORDINATOR_ENCRYPTION_KEY) private readonly encryptionKey: KeyPair,
  ) {}

  /**
   * What an invitation is for, without using it: the study's settings (which the participant pins and must accept
   * before it enrolls) and the coordinator's public keys (which it compares with what its admin handed over).
   * @throws ApiError 401 unknown or expired invitation, 409 already used
   */
  async preview(token: string): Promise<InvitationPreview> {
    const invitation = await this.repos.invitations.get(hashToken(token));
    if (!invitation) throw new ApiError(401, 'unauthenticated', 'unknown invitation token');
    if (invitation.used_at !== null) throw new ApiError(409, 'invitation_used', 'this invitation was already used to enroll');
    if (invitation.expires_at <= Date.now()) throw new ApiError(401, 'invitation_expired', 'this invitation has expired; ask the study admin for a new one');
    const study = await this.repos.studies.getById(invitation.study_id);
    if (!study) throw new ApiError(404, 'not_found', 'the study of this invitation no longer exists');
    return {
      studyId: study.id,
      study: toStudySchemaJson(readStudySchema(study.schema_json, `studies.schema_json of study ${study.id}`)),
      participantName: invitation.participant_name,
      expiresAt: new Date(invitation.expires_at).toISOString(),
      ...this.coordinatorKeys(),
    };
  }

  private coordinatorKeys() {
    return {
      coordinatorKey: publicKeyBase64Url(this.key.publicKey),
      coordinatorKeyFingerprint: keyFingerprint(this.key.publicKey),
      coordinatorEncryptionKey: publicKeyBase64Url(this.encryptionKey.publicKey),
    };
  }

  /**
   * Consumes the invitation, registers the participant's public keys (refusing small-order or malformed
   * keys), provisions its own Redis ACL user limited to its task queue, and records the enrollment with
   * key fingerprints in the event log. The Redis password is returned once and never stored.
   * @throws ApiError 400 bad key, 401 unknown or expired invitation, 409 invitation already used
   */
  async enroll(token: string, req: EnrollRequest): Promise<EnrollResponse> {
    let encryption, signing;
    try {
      encryption = importPublicKeyBase64Url('x25519', req.encryptionKey);
      signing = importPublicKeyBase64Url('ed25519', req.signingKey);
    } catch (err) {
      throw new ApiError(400, 'invalid_key', `rejected public key: ${(err as Error).message}`);
    }
    const participantId = newParticipantId();
    const now = Date.now();
    const username = `confide-${participantId}`;
    const password = generateRedisPassword();
    const queue = participantQueue(participantId);
    // Check the invitation before touching Redis, so an unauthenticated caller cannot create users even briefly;
    // it is consumed atomically below, which settles any race between two enrollments with one token.
    const invitation0 = await this.repos.invitations.get(hashToken(token));
    if (!invitation0) throw new ApiError(401, 'unauthenticated', 'unknown invitation token');
    if (invitation0.used_at !== null) throw new ApiError(409, 'invitation_used', 'this invitation was already used to enroll');
    if (invitation0.expires_at <= now) throw new ApiError(401, 'invitation_expired', 'this invitation has expired; ask the study admin for a new one');
    // Then the Redis user: if the database refuses the enrollment, the user is removed again and nothing is left half-done.
    // A connection that is reconnecting (a blip, a Redis restart just ending) is waited for briefly: 503 only if it stays down.
    await withRedis(this.redis.producer, () => provisionParticipantUser(this.redis.producer, { username, password, prefix: this.config.queuePrefix, queue }));
    const enrolled = await this.repos.participants.enroll(hashToken(token), now, {
      id: participantId,
      encryption_key: publicKeyBase64Url(encryption),
      signing_key: publicKeyBase64Url(signing),
      encryption_fingerprint: keyFingerprint(encryption),
      signing_fingerprint: keyFingerprint(signing),
      redis_user: username,
      redis_password_sha256: hashRedisPassword(password),
      max_records: req.maxRecords,
    }).catch(async (err: unknown) => {
      await revokeParticipantUser(this.redis.producer, username);
      throw err;
    });
    if (!enrolled.ok) {
      await revokeParticipantUser(this.redis.producer, username);
      if (enrolled.reason === 'used') throw new ApiError(409, 'invitation_used', 'this invitation was already used to enroll');
      if (enrolled.reason === 'expired') throw new ApiError(401, 'invitation_expired', 'this invitation has expired; ask the study admin for a new one');
      throw new ApiError(401, 'unauthenticated', 'unknown invitation token');
    }
    const { invitation } = enrolled;
    const study = await this.repos.studies.getById(invitation.study_id);
    if (!study) throw new ApiError(404, 'not_found', 'the study of this invitation no longer exists');
    await this.repos.events.append(
      ENTRY.participantEnrolled,
      {
        participantId,
        studyId: study.id,
        name: invitation.participant_name,
        encryptionKeyFingerprint: keyFingerprint(encryption),
        signingKeyFingerprint: keyFingerprint(signing),
        maxRecords: req.maxRecords,
      },
      entryKey(ENTRY.participantEnrolled, participantId),
      now,
      study.id,
    );
    this.orchestrator.watch(participantId);
    return {
      participantId,
      studyId: study.id,
      study: toStudySchemaJson(readStudySchema(study.schema_json, `studies.schema_json of study ${study.id}`)),
      ...this.coordinatorKeys(),
      redis: { url: this.config.publicRedisUrl, username, password, prefix: this.config.queuePrefix, queue },
    };
  }
}
