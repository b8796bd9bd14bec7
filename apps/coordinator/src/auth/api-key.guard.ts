import { ForbiddenException, Inject, Injectable, UnauthorizedException, type CanActivate, type ExecutionContext } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { Request } from 'express';
import { CONFIG } from '../tokens';
import type { CoordinatorConfig } from '../config';
import { Repositories } from '../storage';
import { importPublicKeyBase64Url } from '@confide/crypto';
import { PARTICIPANT_REQUEST_HEADERS, ParticipantRequestError, readParticipantRequestHeaders, verifyParticipantRequest } from '@confide/protocol';
import { INVITATION_KEY, PARTICIPANT_KEY, PUBLIC_KEY, ROLES_KEY } from './decorators';
import { hashToken, tokensEqual, type Role } from './tokens';

/** Who made a request, as the guard established it. */
export interface Principal {
  readonly role: Role;
  /** api_keys.id, or "bootstrap-admin" for CONFIDE_ADMIN_TOKEN. */
  readonly keyId: string;
}

/** An enrolled participant, authenticated by a request signed with its registered key. */
export interface ParticipantPrincipal {
  readonly participantId: string;
  readonly studyId: string;
}

export type AuthedRequest = Request & { principal?: Principal; participant?: ParticipantPrincipal; bearer?: string };

/** The bearer token of a request, if it has one. */
export function bearerOf(req: Request): string | undefined {
  const h = req.headers.authorization;
  if (typeof h !== 'string') return undefined;
  const m = /^Bearer ([A-Za-z0-9_.~+/=-]{1,512})$/.exec(h.trim());
  return m?.[1];
}

/**
 * Default-deny authentication and authorisation for every route (registered as APP_GUARD): a route must
 * say who may call it. Bearer API keys are looked up by hash; CONFIDE_ADMIN_TOKEN is the bootstrap admin.
 */
@Injectable()
export class ApiKeyGuard implements CanActivate {
  constructor(
    private readonly reflector: Reflector,
    @Inject(CONFIG) private readonly config: CoordinatorConfig,
    private readonly repos: Repositories,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const targets = [context.getHandler(), context.getClass()];
    if (this.reflector.getAllAndOverride<boolean>(PUBLIC_KEY, targets)) return true;
    const req = context.switchToHttp().getRequest<AuthedRequest>();
    const token = bearerOf(req);
    if (this.reflector.getAllAndOverride<boolean>(INVITATION_KEY, targets)) {
      if (!token) throw new UnauthorizedException('an invitation token is required as the bearer');
      req.bearer = token;
      return true;
    }
    if (this.reflector.getAllAndOverride<boolean>(PARTICIPANT_KEY, targets)) {
      const participant = await this.authenticateParticipant(req);
      if (participant) {
        req.participant = participant;
        await this.repos.participants.seen(participant.participantId, Date.now());
        return true;
      }
    }
    const roles = this.reflector.getAllAndOverride<Role[] | undefined>(ROLES_KEY, targets);
    if (!roles && !token && this.reflector.getAllAndOverride<boolean>(PARTICIPANT_KEY, targets)) {
      throw new UnauthorizedException(`this route takes a request signed with an enrolled participant's key (headers ${Object.values(PARTICIPANT_REQUEST_HEADERS).join(', ')})`);
    }
    if (!token) throw new UnauthorizedException('a bearer API key is required');
    const principal = await this.authenticate(token);
    if (!principal) throw new UnauthorizedException(await this.refusal(token));
    if (!roles || !roles.includes(principal.role)) throw new ForbiddenException(`role ${principal.role} may not call this route`);
    req.principal = principal;
    return true;
  }

  /** A participant-signed request's participant, undefined when the request is not signed by a participant. */
  private async authenticateParticipant(req: Request): Promise<ParticipantPrincipal | undefined> {
    try {
      const headers = readParticipantRequestHeaders(req.headers);
      if (!headers) return undefined;
      const row = await this.repos.participants.get(headers.participantId);
      if (!row) throw new ParticipantRequestError('unknown participant');
      const signing = importPublicKeyBase64Url('ed25519', row.signing_key);
      verifyParticipantRequest(signing, { method: req.method, path: req.originalUrl, participantId: headers.participantId, time: headers.time }, headers.signature, Date.now());
      return { participantId: row.id, studyId: row.study_id };
    } catch (err) {
      if (err instanceof ParticipantRequestError) throw new UnauthorizedException(`participant request refused: ${err.message}`);
      throw err;
    }
  }

  /** Why a bearer token is not a key: revoked (naming the key and when), or unknown. */
  private async refusal(token: string): Promise<string> {
    const key = await this.repos.apiKeys.findByHash(hashToken(token));
    if (key?.revoked_at != null) return `API key ${key.id} was revoked at ${new Date(key.revoked_at).toISOString()}`;
    return 'unknown API key';
  }

  private async authenticate(token: string): Promise<Principal | undefined> {
    if (tokensEqual(token, this.config.adminToken)) return { role: 'admin', keyId: 'bootstrap-admin' };
    const key = await this.repos.apiKeys.findActiveByHash(hashToken(token));
    return key ? { role: key.role, keyId: key.id } : undefined;
  }
}
