import { SetMetadata } from '@nestjs/common';
import type { Role } from './tokens';

export const ROLES_KEY = 'confide:roles';
export const PUBLIC_KEY = 'confide:public';
export const INVITATION_KEY = 'confide:invitation';
export const PARTICIPANT_KEY = 'confide:participant';

/** Roles allowed on a route. A route with no @Roles, @Public or @InvitationAuth is denied to everyone. */
export const Roles = (...roles: Role[]) => SetMetadata(ROLES_KEY, roles);

/** Open to anyone: only /health (and /docs, served outside the router). */
export const Public = () => SetMetadata(PUBLIC_KEY, true);

/** Authenticated by a one-time invitation token as the bearer, checked by the handler's service. */
export const InvitationAuth = () => SetMetadata(INVITATION_KEY, true);

/**
 * Also open to enrolled participants, authenticated by a request signed with their registered Ed25519 key
 * (libs/protocol participant-request) instead of a bearer API key. Read-only routes only.
 */
export const ParticipantAuth = () => SetMetadata(PARTICIPANT_KEY, true);
