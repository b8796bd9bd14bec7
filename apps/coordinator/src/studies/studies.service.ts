import { randomUUID } from 'node:crypto';
import { participantView, type ParticipantView } from '../participants/participants.service';
import { Inject, Injectable } from '@nestjs/common';
import { importPublicKeyBase64Url, keyFingerprint } from '@confide/crypto';
import { budgetRemaining, budgetSpent, ENTRY, entryKey, ledgerSchema, parseStudySchema, toStudySchemaJson, type PrivacyCost, type StudySchema } from '@confide/protocol';
import { hashToken, newToken, type Role } from '../auth/tokens';
import type { CoordinatorConfig } from '../config';
import { readStudySchema } from '../db/columns';
import type { ApiKey } from '../db/schema';
import { ApiError } from '../http/error.filter';
import { Repositories } from '../storage';
import { CONFIG } from '../tokens';
import { isOnline, readHeartbeat, type Heartbeat } from '../participants/presence';

/** Study names the routes that address a study (`/v1/studies/:name`) accept; a study must be creatable only with one. */
export const STUDY_NAME = /^[A-Za-z0-9_.-]{1,100}$/;
/** A study's id (a UUID): the routes that take a name take it too. */
const STUDY_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** A study as the API shows it. */
export interface StudyView {
  readonly id: string;
  readonly name: string;
  readonly minParticipants: number;
  readonly participants: number;
  readonly schema: unknown;
  readonly privacy: StudyPrivacyView;
}

/**
 * A study's differential privacy budget as the console shows it. Every amount is the exact decimal sum (libs/protocol
 * budget.ts) rounded once, so spent and remaining add up to the budget. Without DP: dp, budget and remaining null,
 * spent zero.
 */
export interface StudyPrivacyView {
  /** The study's DP settings as its schema gives them, or null. */
  readonly dp: unknown;
  readonly budget: PrivacyCost | null;
  /** Σ over the queries that spent (basic sequential composition), and how many did. */
  readonly spent: PrivacyCost & { readonly queries: number };
  readonly remaining: PrivacyCost | null;
}

/** GET /v1/studies/:name/participants. */
export interface ParticipantsView {
  readonly study: string;
  /** Online: seen within this many seconds (CONFIDE_ONLINE_SECONDS; workers send a heartbeat every 15 s) and not stopped since. */
  readonly onlineWindowSeconds: number;
  readonly participants: readonly (ParticipantView & { lastSeen: string | null; online: boolean; heartbeat: Omit<Heartbeat, 'stopping'> | null })[];
}

/** An API key as GET /v1/api-keys lists it: never its token or the token's hash. */
export interface ApiKeyView {
  readonly id: string;
  readonly role: Role;
  readonly label: string | null;
  readonly createdAt: string;
  readonly revokedAt: string | null;
  readonly identityKeyFingerprint: string | null;
}

/** Studies, invitations and API keys: the admin's side of the service. */
@Injectable()
export class StudiesService {
  constructor(
    private readonly repos: Repositories,
    @Inject(CONFIG) private readonly config: CoordinatorConfig,
  ) {}

  /**
   * Creates a study from its schema file; the name is unique. Appends "study created" to the event log.
   * @throws SchemaError (400) for an invalid schema; ApiError 400 for a name no study route accepts
   */
  async create(json: unknown): Promise<{ id: string; name: string }> {
    const schema = parseStudySchema(json, 'study');
    if (!STUDY_NAME.test(schema.name)) throw new ApiError(400, 'invalid_study', 'name: 1–100 letters, digits, ".", "-" and "_" only');
    const id = randomUUID();
    const now = Date.now();
    await this.repos.studies.create({
      id,
      name: schema.name,
      schema_json: JSON.stringify(toStudySchemaJson(schema)),
      min_participants: schema.minParticipants,
      created_at: now,
    });
    await this.repos.events.append(ENTRY.studyCreated, { studyId: id, name: schema.name, schema: ledgerSchema(schema) }, entryKey(ENTRY.studyCreated, id), now, id);
    return { id, name: schema.name };
  }

  /** The study and its parsed schema, by name (or by id, when no study has that name), or 404. */
  async get(name: string): Promise<{ id: string; name: string; schema: StudySchema; minParticipants: number }> {
    const row = (await this.repos.studies.getByName(name)) ?? (STUDY_ID.test(name) ? await this.repos.studies.getById(name) : undefined);
    if (!row) throw new ApiError(404, 'not_found', `no study named ${JSON.stringify(name)}`);
    return { id: row.id, name: row.name, schema: readStudySchema(row.schema_json, `studies.schema_json of study ${row.id}`), minParticipants: row.min_participants };
  }

  /** GET /v1/studies/:name: the study, its size, its schema and its privacy budget ({@link StudyPrivacyView}). @throws ApiError 404 */
  async view(name: string): Promise<StudyView> {
    const s = await this.get(name);
    const schema = toStudySchemaJson(s.schema);
    const [participants, spent] = await Promise.all([this.repos.participants.countByStudy(s.id), this.repos.privacyBudget.spent(s.id)]);
    const budget = s.schema.privacy.dp?.budget ?? null;
    const privacy: StudyPrivacyView = {
      // The schema's own words (as GET shows them under schema.privacy.dp): its JSON type leaves privacy unknown.
      dp: (schema.privacy as { dp?: unknown } | undefined)?.dp ?? null,
      budget: budget && { epsilon: budget.epsilon, delta: budget.delta },
      spent: { ...budgetSpent(spent), queries: spent.length },
      remaining: budget && budgetRemaining(spent, budget),
    };
    return { id: s.id, name: s.name, minParticipants: s.minParticipants, participants, schema, privacy };
  }

  /** Every study with its size: what `confide study list` shows. */
  async list(): Promise<{ id: string; name: string; minParticipants: number; participants: number; createdAt: string }[]> {
    const rows = await this.repos.studies.list();
    return Promise.all(
      rows.map(async (s) => ({ id: s.id, name: s.name, minParticipants: s.min_participants, participants: await this.repos.participants.countByStudy(s.id), createdAt: new Date(s.created_at).toISOString() })),
    );
  }

  /**
   * A study's participants as researchers, auditors and admins see them (removed ones too): invited name, id, status
   * (active or removed), limits and key fingerprints (all in the ledger already), when each was last seen (a signed
   * request, or a task answered or refused) and whether it is online ({@link isOnline}), with its worker's last
   * heartbeat (version, queue, last task, refusals by kind).
   * @throws ApiError 404 for an unknown study
   */
  async participants(name: string, now = Date.now()): Promise<ParticipantsView> {
    const study = await this.get(name);
    const rows = await this.repos.participants.listByStudy(study.id);
    return {
      study: study.name,
      onlineWindowSeconds: this.config.onlineSeconds,
      participants: rows.map((p) => ({
        ...participantView(p),
        lastSeen: p.last_seen_at !== null ? new Date(Number(p.last_seen_at)).toISOString() : null,
        online: p.removed_at === null && isOnline(p, now, this.config.onlineSeconds * 1000),
        heartbeat: readHeartbeat(p.heartbeat_json),
      })),
    };
  }

  /** A one-time invitation for a named participant; only the token's hash is stored. */
  async invite(studyName: string, participantName: string): Promise<{ token: string; expiresAt: string }> {
    const study = await this.get(studyName);
    const token = newToken('invite');
    const now = Date.now();
    const expiresAt = now + this.config.inviteTtlSeconds * 1000;
    await this.repos.invitations.create({ token_hash: hashToken(token), study_id: study.id, participant_name: participantName, created_at: now, expires_at: expiresAt, used_at: null, participant_id: null });
    return { token, expiresAt: new Date(expiresAt).toISOString() };
  }

  /**
   * A new API key with one role; the token is shown once and stored hashed. A researcher key may be bound to the
   * researcher's Ed25519 identity key (needed for paillier queries): the binding and the key's fingerprint go into
   * the `apikey.created` ledger entry, which participants check a paillier query's signature against.
   * @throws ApiError 400 for an identity key on another role, or one that is not a valid Ed25519 public key
   */
  async createApiKey(role: Role, label: string | undefined, createdBy: string, identityKey?: string): Promise<{ id: string; role: Role; token: string; identityKeyFingerprint?: string }> {
    let fingerprint: string | undefined;
    if (identityKey !== undefined) {
      if (role !== 'researcher') throw new ApiError(400, 'invalid_key', 'identityKey: only researcher keys carry an identity key');
      try {
        fingerprint = keyFingerprint(importPublicKeyBase64Url('ed25519', identityKey));
      } catch (err) {
        throw new ApiError(400, 'invalid_key', `identityKey: not an Ed25519 public key (${(err as Error).message})`);
      }
    }
    const token = newToken('key');
    const id = randomUUID();
    const now = Date.now();
    await this.repos.apiKeys.create({ id, token_hash: hashToken(token), role, label: label ?? null, created_at: now, revoked_at: null, identity_key: identityKey ?? null });
    const binding = fingerprint ? { identityKey, identityKeyFingerprint: fingerprint } : {};
    await this.repos.events.append(ENTRY.apiKeyCreated, { keyId: id, role, createdBy, ...binding }, entryKey(ENTRY.apiKeyCreated, id), now);
    return { id, role, token, ...(fingerprint ? { identityKeyFingerprint: fingerprint } : {}) };
  }

  /** Every API key (bootstrap admin aside), oldest first: id, role, label, dates, bound identity key's fingerprint. */
  async listApiKeys(): Promise<ApiKeyView[]> {
    return (await this.repos.apiKeys.list()).map(apiKeyView);
  }

  /**
   * Revokes an API key: from the next request on, it fails authentication with 401 naming the key and when it was
   * revoked.
   * @throws ApiError 404 for an unknown key, 409 for one already revoked
   */
  async revokeApiKey(id: string, now = Date.now()): Promise<ApiKeyView> {
    if (!(await this.repos.apiKeys.revoke(id, now))) {
      const key = await this.repos.apiKeys.get(id);
      if (!key) throw new ApiError(404, 'not_found', `no API key ${id}`);
      throw new ApiError(409, 'already_revoked', `API key ${id} was already revoked at ${new Date(key.revoked_at ?? now).toISOString()}`);
    }
    return apiKeyView((await this.repos.apiKeys.get(id))!);
  }
}

function apiKeyView(k: ApiKey): ApiKeyView {
  return {
    id: k.id,
    role: k.role,
    label: k.label,
    createdAt: new Date(k.created_at).toISOString(),
    revokedAt: k.revoked_at !== null ? new Date(k.revoked_at).toISOString() : null,
    identityKeyFingerprint: k.identity_key ? keyFingerprint(importPublicKeyBase64Url('ed25519', k.identity_key)) : null,
  };
}
