import { Inject, Injectable } from '@nestjs/common';
import { importPublicKeyBase64Url, keyFingerprint, publicKeyBase64Url, type KeyPair } from '@confide/crypto';
import { ENTRY, entryKey, ParticipantStatementError, toStudySchemaJson, verifyEnrollStatement } from '@confide/protocol';
import { participantIdOf, participantQueue, provisionParticipantUser, revokeParticipantUser, withRedis } from '@confide/queue';
import { hashToken } from '../auth/tokens';
import type { CoordinatorConfig } from '../config';
import { readStudySchema } from '../db/columns';
import { ApiError } from '../http/error.filter';
import type { RedisConnections } from '../orchestration/orchestrator';
import { Orchestrator } from '../orchestration/orchestrator';
import { Repositories } from '../storage';
import { CONFIG, COORDINATOR_ENCRYPTION_KEY, COORDINATOR_KEY, REDIS } from '../tokens';

/**
 * What a participant sends to enroll: its public keys, how many records it may contribute at most, the SHA-256 of
 * the Redis password it chose (the password itself stays in its home), and its signature over all of it with the
 * signing key it registers (libs/protocol participant-statements.ts), made after it wrote its home.
 */
export interface EnrollRequest {
  readonly encryptionKey: string;
  readonly signingKey: string;
  readonly maxRecords: number;
  readonly redisPasswordSha256: string;
  readonly signature: string;
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

/**
 * What it gets back: its id and name, the study, the coordinator's keys to pin, and where its Redis user is (the
 * password is the one it chose).
 */
export interface EnrollResponse {
  readonly participantId: string;
  /** The name the invitation gave it. */
  readonly name: string;
  readonly studyId: string;
  readonly study: unknown;
  readonly coordinatorKey: string;
  readonly coordinatorKeyFingerprint: string;
  /** X25519: the committee seals round-2 share sums to it. */
  readonly coordinatorEncryptionKey: string;
  readonly redis: { readonly url: string; readonly username: string; readonly prefix: string; readonly queue: string };
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
   * Enrolls the participant that signed this request (DESIGN.md "Who uses it"; issue 13, "Enrollment is atomic"):
   * checks its keys (refusing small-order or malformed ones) and its signature over them with the signing key it
   * registers, provisions its own Redis ACL user with the password hash it chose, then consumes the invitation,
   * stores the participant and appends `participant.enrolled` in one transaction. Nothing is recorded unless all of
   * it commits; the Redis user is removed again when the transaction fails. The participant id is derived from the
   * signing key (libs/queue participantIdOf), so the participant wrote its whole home before this call; the same
   * participant asking again with the same invitation (it never saw the answer) gets the same answer.
   * @throws ApiError 400 bad key or signature, 401 unknown or expired invitation, 409 invitation used by another
   *   participant, or this key already enrolled
   */
  async enroll(token: string, req: EnrollRequest): Promise<EnrollResponse> {
    let encryption, signing;
    try {
      encryption = importPublicKeyBase64Url('x25519', req.encryptionKey);
      signing = importPublicKeyBase64Url('ed25519', req.signingKey);
    } catch (err) {
      throw new ApiError(400, 'invalid_key', `rejected public key: ${(err as Error).message}`);
    }
    const participantId = participantIdOf(keyFingerprint(signing));
    const now = Date.now();
    // Check the invitation before touching Redis, so an unauthenticated caller cannot create users even briefly;
    // it is consumed atomically below, which settles any race between two enrollments with one token.
    const invitation = await this.repos.invitations.get(hashToken(token));
    if (!invitation) throw new ApiError(401, 'unauthenticated', 'unknown invitation token');
    const study = await this.repos.studies.getById(invitation.study_id);
    if (!study) throw new ApiError(404, 'not_found', 'the study of this invitation no longer exists');
    try {
      verifyEnrollStatement(signing, { studyId: study.id, encryptionKey: req.encryptionKey, signingKey: req.signingKey, maxRecords: req.maxRecords, redisPasswordSha256: req.redisPasswordSha256 }, req.signature);
    } catch (err) {
      if (err instanceof ParticipantStatementError) throw new ApiError(400, 'bad_signature', `enrollment refused: ${err.message}`);
      throw err;
    }
    const response = (): EnrollResponse => ({
      participantId,
      name: invitation.participant_name,
      studyId: study.id,
      study: toStudySchemaJson(readStudySchema(study.schema_json, `studies.schema_json of study ${study.id}`)),
      ...this.coordinatorKeys(),
      redis: { url: this.config.publicRedisUrl, username: `confide-${participantId}`, prefix: this.config.queuePrefix, queue: participantQueue(participantId) },
    });
    if (invitation.used_at !== null) {
      // The participant this invitation enrolled, asking again: it wrote its home but did not see the answer.
      const existing = invitation.participant_id === participantId ? await this.repos.participants.get(participantId) : undefined;
      if (existing && existing.removed_at === null && existing.encryption_key === req.encryptionKey && existing.redis_password_sha256 === req.redisPasswordSha256) return response();
      throw new ApiError(409, 'invitation_used', 'this invitation was already used to enroll');
    }
    if (invitation.expires_at <= now) throw new ApiError(401, 'invitation_expired', 'this invitation has expired; ask the study admin for a new one');
    if (await this.repos.participants.get(participantId)) throw new ApiError(409, 'key_in_use', 'this signing key is already enrolled; enroll with new keys (a new --home)');
    const username = `confide-${participantId}`;
    const queue = participantQueue(participantId);
    // Then the Redis user: if the database refuses the enrollment, the user is removed again and nothing is left half-done.
    // A connection that is reconnecting (a blip, a Redis restart just ending) is waited for briefly: 503 only if it stays down.
    await withRedis(this.redis.producer, () => provisionParticipantUser(this.redis.producer, { username, passwordHash: req.redisPasswordSha256, prefix: this.config.queuePrefix, queue, studyId: invitation.study_id }));
    const enrolled = await this.repos
      .transaction(async (tx) => {
        const done = await tx.participants.enroll(hashToken(token), now, {
          id: participantId,
          encryption_key: publicKeyBase64Url(encryption),
          signing_key: publicKeyBase64Url(signing),
          encryption_fingerprint: keyFingerprint(encryption),
          signing_fingerprint: keyFingerprint(signing),
          redis_user: username,
          redis_password_sha256: req.redisPasswordSha256,
          max_records: req.maxRecords,
        });
        if (!done.ok) return done;
        await tx.events.append(
          ENTRY.participantEnrolled,
          {
            participantId,
            studyId: study.id,
            name: done.invitation.participant_name,
            encryptionKeyFingerprint: keyFingerprint(encryption),
            signingKeyFingerprint: keyFingerprint(signing),
            maxRecords: req.maxRecords,
          },
          entryKey(ENTRY.participantEnrolled, participantId),
          now,
          study.id,
        );
        return done;
      })
      .catch(async (err: unknown) => {
        await revokeParticipantUser(this.redis.producer, username);
        throw err;
      });
    if (!enrolled.ok) {
      await revokeParticipantUser(this.redis.producer, username);
      if (enrolled.reason === 'used') throw new ApiError(409, 'invitation_used', 'this invitation was already used to enroll');
      if (enrolled.reason === 'expired') throw new ApiError(401, 'invitation_expired', 'this invitation has expired; ask the study admin for a new one');
      throw new ApiError(401, 'unauthenticated', 'unknown invitation token');
    }
    return response();
  }
}
