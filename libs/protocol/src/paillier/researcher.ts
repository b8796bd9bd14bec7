import { canonicalJson, importPublicKeyBase64Url, keyFingerprint, publicKeyBase64Url, signMessage, verifyMessage, type KeyPair } from '@confide/crypto';
import { z } from 'zod';
import { effectivePrivacy } from '../privacy/settings';
import type { QuerySpec } from '../query/query';
import { queryHash } from '../hashing';
import { sha256Hex } from '../hashing';
import type { StudySchema } from '../query/schema';

/**
 * Binding a paillier query's public key to a researcher (DESIGN.md "Protocol paillier"). Participants encrypt to
 * the key in the coordinator's plan; without a binding, a coordinator could put its own n there, decrypt every
 * contribution and re-encrypt the sum under the researcher's key. So the researcher holds an Ed25519 identity key,
 * generated on its machine, whose fingerprint an admin binds to its API key (the `apikey.created` ledger entry),
 * and signs a statement naming the study, the hash of exactly the query it runs, the Paillier key n, and for a
 * custodian key the custodians' verification keys. The `query.submitted` entry records the statement and the
 * signature; every participant checks both against the ledger before it encrypts (ledger/authorize.ts).
 */

const RESEARCHER_DOMAIN = 'paillier/query';

const b64u = z.string().regex(/^[A-Za-z0-9_-]+$/, 'expected base64url');

/** What `query.submitted` records of the researcher's binding, and what the API takes on submission. */
export const researcherBindingSchema = z.strictObject({
  /** The researcher's Ed25519 identity key (base64url of the raw 32 bytes). */
  identityKey: b64u.max(64),
  /** 32 random bytes (64 hex digits) the researcher picks, so no two submissions sign the same statement. */
  nonce: z.string().regex(/^[0-9a-f]{64}$/, 'expected 64 hex digits'),
  signature: b64u.max(200),
});
export type ResearcherBinding = z.infer<typeof researcherBindingSchema>;

/** The statement a researcher signs for one paillier query. */
export interface ResearcherStatement {
  /** The study's name. */
  readonly study: string;
  /** {@link queryHash} of the query as it runs (its effective privacy included). */
  readonly queryHash: string;
  /** The Paillier public key participants will encrypt to. */
  readonly publicKey: { readonly n: string };
  /** For a key split among custodians: SHA-256 (hex) of their verification keys' canonical JSON; null otherwise. */
  readonly custodians: string | null;
  readonly nonce: string;
}

/**
 * The query exactly as the coordinator stores, plans and hashes it: the request's statistics, conditions and
 * grouping, with the effective privacy settings (the study's, tightened by the request's). The researcher's CLI
 * builds the same object to sign its hash, so the two can never disagree on what was signed.
 * @throws PrivacyError when the request would loosen the study's privacy settings
 */
export function querySpecFor(schema: StudySchema, req: { readonly select: unknown; readonly where?: unknown; readonly groupBy?: unknown; readonly privacy?: unknown }): QuerySpec {
  const privacy = effectivePrivacy(schema.privacy, req.privacy);
  return { select: req.select, ...(req.where ? { where: req.where } : {}), ...(req.groupBy ? { groupBy: req.groupBy } : {}), privacy } as unknown as QuerySpec;
}

/** SHA-256 (hex) of custodians' verification keys in canonical JSON: what a researcher's statement names. */
export function custodiansHash(verification: unknown): string {
  return sha256Hex(`confide/custodians/v1\n${canonicalJson(verification)}`);
}

/** The statement for `spec` in `study` under `publicKey`, with a fresh nonce the caller supplies. */
export function researcherStatement(study: string, spec: unknown, publicKey: { readonly n: string }, custodians: string | null, nonce: string): ResearcherStatement {
  return { study, queryHash: queryHash(spec), publicKey: { n: publicKey.n }, custodians, nonce };
}

/** The statement a `query.submitted` entry's fields make (study name, query hash, key, custodians), for checking its signature. */
export function researcherStatementOf(body: { readonly study: string; readonly queryHash: string; readonly publicKey?: { readonly n: string }; readonly custodians?: unknown }, nonce: string): ResearcherStatement {
  return { study: body.study, queryHash: body.queryHash, publicKey: { n: body.publicKey?.n ?? '' }, custodians: body.custodians ? custodiansHash(body.custodians) : null, nonce };
}

/** Signs a statement with the researcher's identity key; the binding to send with the query. */
export function signResearcherStatement(identity: KeyPair, statement: ResearcherStatement): ResearcherBinding {
  return { identityKey: publicKeyBase64Url(identity.publicKey), nonce: statement.nonce, signature: signMessage(identity.privateKey, RESEARCHER_DOMAIN, statement) };
}

/**
 * Checks a binding: the identity key is a valid Ed25519 key whose fingerprint is `expectedFingerprint` (the one an
 * admin bound to the submitting API key), and the signature covers exactly `statement`.
 * @returns null when it holds, else the reason it does not
 */
export function checkResearcherBinding(binding: ResearcherBinding, statement: ResearcherStatement, expectedFingerprint: string): string | null {
  let key;
  try {
    key = importPublicKeyBase64Url('ed25519', binding.identityKey);
  } catch (err) {
    return `the researcher's identity key is invalid: ${(err as Error).message}`;
  }
  const fingerprint = keyFingerprint(key);
  if (fingerprint !== expectedFingerprint) return `the researcher's identity key (${fingerprint.slice(0, 16)}…) is not the one bound to the submitting API key (${expectedFingerprint.slice(0, 16)}…)`;
  if (binding.nonce !== statement.nonce) return 'the binding is for another nonce';
  if (!verifyMessage(key, RESEARCHER_DOMAIN, statement, binding.signature)) return "the researcher's signature does not cover this study, query, public key and custodians";
  return null;
}
