import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** The roles an API key can have (DESIGN.md "Who uses it"). */
export const ROLES = ['admin', 'researcher', 'auditor'] as const;
export type Role = (typeof ROLES)[number];

/** A new bearer secret: a readable prefix and 32 random bytes. Only its hash is stored. */
export function newToken(kind: 'key' | 'invite'): string {
  return `cfd_${kind}_${randomBytes(32).toString('base64url')}`;
}

/** SHA-256 (hex) of a token: what the database keeps instead of the token. */
export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** Constant-time comparison of two tokens (by their hashes, so lengths never leak). */
export function tokensEqual(a: string, b: string): boolean {
  return timingSafeEqual(Buffer.from(hashToken(a), 'hex'), Buffer.from(hashToken(b), 'hex'));
}
