import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { ciphertextToString, thresholdVerificationToJson, type CustodianShare, importPrivateKeyPem, importPublicKeyBase64Url, keyFingerprint, publicKeyToJson, type KeyPair, type PaillierKeyPair, type PaillierPublicKey, type PublicKey } from '@confide/crypto';
import {
  AggregateRefusal,
  checkAggregate,
  custodianPartials,
  custodiansHash,
  decryptAggregate,
  parseStudySchema,
  querySpecFor,
  researcherStatement,
  signResearcherStatement,
  type CheckedAggregate,
} from '@confide/protocol';
import { UsageError } from './args';
import type { CoordinatorClient, Submitted } from './client';
import type { Output } from './output';

/**
 * The researcher's side of a paillier query (DESIGN.md "Protocol paillier"): the key binding signed with the
 * researcher's identity key on submission, and the checks the key holder runs before it decrypts anything.
 */

/** The key holder refused the aggregate: nothing was decrypted. Exit status 1, with the reason. */
export class AggregateRefused extends Error {
  override readonly name = 'AggregateRefused';
  readonly code = 'aggregate_refused';
}

/** Reads an identity key file written by `confide keys researcher`. @throws UsageError naming the file's problem */
export function readIdentityFile(file: string): KeyPair {
  if (!existsSync(file)) throw new UsageError(`--identity ${file}: no such file (create one with 'confide keys researcher --out ${file}')`);
  try {
    return importPrivateKeyPem('ed25519', readFileSync(file, 'utf8'));
  } catch (err) {
    throw new UsageError(`--identity ${file}: not an Ed25519 identity key from 'confide keys researcher' (${(err as Error).message})`);
  }
}

/**
 * Submits a paillier query with the researcher's signed binding: over the study's name, the hash of the query as
 * the coordinator will run it (the study's privacy settings, tightened by the query's, fetched from the
 * coordinator: if it lies about them the hash will not match what participants compute, and they refuse), the
 * public key and the custodians' verification keys. Participants check the binding before they encrypt.
 */
export async function submitPaillierQuery(client: CoordinatorClient, body: Record<string, unknown>, publicKey: PaillierPublicKey, identity: KeyPair, custodians?: Record<string, unknown>): Promise<Submitted> {
  const study = await client.get<{ name: string; schema: unknown }>(`/v1/studies/${encodeURIComponent(String(body.study))}`);
  const spec = querySpecFor(parseStudySchema(study.schema, study.name), body as Parameters<typeof querySpecFor>[1]);
  const n = publicKeyToJson(publicKey);
  const statement = researcherStatement(study.name, spec, n, custodians ? custodiansHash(custodians) : null, randomBytes(32).toString('hex'));
  return client.post<Submitted>('/v1/queries', { ...body, protocol: 'paillier', publicKey: n, researcher: signResearcherStatement(identity, statement), ...(custodians ? { custodians } : {}) });
}

/**
 * The coordinator's ledger key, as it serves it; with `pinned` (a fingerprint given out of band), only that key.
 * A hostile coordinator signs with its real key anyway: what the evidence gives the key holder is that the facts it
 * checks are in the one ledger participants and auditors verify too.
 * @throws UsageError when the served key is not the pinned one
 */
export async function ledgerKey(client: CoordinatorClient, pinned?: string): Promise<PublicKey> {
  const served = await client.get<{ publicKey: string }>('/v1/ledger/public-key');
  const key = importPublicKeyBase64Url('ed25519', served.publicKey);
  if (pinned !== undefined && keyFingerprint(key) !== pinned) throw new UsageError(`--coordinator-key: the coordinator serves a ledger key with fingerprint ${keyFingerprint(key)}, not ${pinned}`);
  return key;
}

/**
 * Fetches a paillier query's aggregate and checks it (libs/protocol key-holder.ts): the ledger evidence, the
 * contributor set against `round.closed` and the study's minimum, every contribution's signature with its
 * participant's enrolled key, the noise proofs, and the product recomputed here.
 * @throws AggregateRefused naming the first check that fails; nothing is decrypted then
 */
export async function fetchCheckedAggregate(client: CoordinatorClient, id: string, publicKey: PaillierPublicKey, coordinatorKey: PublicKey, custodians?: Record<string, unknown>): Promise<CheckedAggregate> {
  const bundle = await client.get<unknown>(`/v1/queries/${encodeURIComponent(id)}/aggregate`);
  try {
    return checkAggregate(bundle, { coordinatorKey, publicKey, ...(custodians ? { custodians } : {}) });
  } catch (err) {
    if (err instanceof AggregateRefusal) throw new AggregateRefused(`refusing to decrypt query ${id}'s aggregate: ${err.message}`);
    throw err;
  }
}

/**
 * A custodian's part: checks the aggregate exactly as a full-key holder does (against the custodians the query was
 * submitted for, too), computes its partial decryption of each chunk with the proof that it used its share, and
 * posts them. The share itself never leaves this machine.
 */
export async function decryptShareAndPost<T>(client: CoordinatorClient, id: string, share: CustodianShare, coordinatorKey: PublicKey, out: Pick<Output, 'progress'>): Promise<T> {
  out.progress('checking the aggregate against the ledger and the signed contributions…');
  const custodians = thresholdVerificationToJson(share.verification) as unknown as Record<string, unknown>;
  const checked = await fetchCheckedAggregate(client, id, share.verification.publicKey, coordinatorKey, custodians);
  out.progress(`computing custodian ${share.index}'s partial decryption of the aggregate of ${checked.contributors.length} checked contributions…`);
  return client.post<T>(`/v1/queries/${encodeURIComponent(id)}/partial-decryptions`, custodianPartials(share, id, checked.aggregate));
}

/**
 * The full-key path: checks the aggregate, decrypts the checked product with the local private key and posts the
 * plaintexts with their recovered randomness, which the coordinator verifies before it releases the result.
 */
export async function checkDecryptAndPost<T>(client: CoordinatorClient, id: string, keys: PaillierKeyPair, coordinatorKey: PublicKey, out: Pick<Output, 'progress'>): Promise<T> {
  out.progress('checking the aggregate against the ledger and the signed contributions…');
  const checked = await fetchCheckedAggregate(client, id, keys.publicKey, coordinatorKey);
  out.progress(`decrypting the aggregate of ${checked.contributors.length} checked contributions locally…`);
  const posted = decryptAggregate(keys.privateKey, checked.aggregate.map((c) => ciphertextToString(keys.publicKey, c)));
  return client.post<T>(`/v1/queries/${encodeURIComponent(id)}/decryption`, posted);
}
