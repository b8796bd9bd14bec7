import {
  ciphertextFromString,
  importPublicKeyBase64Url,
  keyFingerprint,
  PaillierError,
  plaintextProofFromJson,
  publicKeyToJson,
  verifyMessage,
  verifyPlaintextKnowledge,
  type PaillierPublicKey,
  type PublicKey,
} from '@confide/crypto';
import { z } from 'zod';
import { ledgerEvidenceSchema, onlyEntry, openEvidence, TaskRefusal, type VerifiedEvidence } from '../ledger/authorize';
import { ENTRY } from '../ledger/ledger-entries';
import { contributionHash, CONTRIBUTION_SIGNATURE_DOMAIN, paillierContributionSchema, type PaillierContribution } from './protocol';
import { custodiansHash } from './researcher';
import { encryptedNoiseSchema, noiseProofContext } from './noise';

/**
 * What the key holder checks before it decrypts anything (DESIGN.md "Protocol paillier"). A coordinator that hands
 * the key holder one participant's ciphertext, re-randomised, instead of the product of all of them would use it as
 * a decryption oracle for that participant's vector; so the aggregate comes with every contribution it multiplies,
 * each signed by its participant, and the ledger facts that say who contributed. The key holder (the researcher's
 * CLI with the full key, or each custodian with its share) recomputes the product itself and decrypts only when
 * every check holds:
 *
 * - the ledger evidence verifies (checkpoint signed with the coordinator's key, every entry included in it);
 * - the query was submitted (`query.submitted`) and planned (`paillier.planned`) for this key;
 * - the contributors are exactly the ledger's `round.closed` set, at least the study's and the query's
 *   `minParticipants`, each enrolled in the study with the signing key that signed its contribution, and each
 *   contribution is the one whose hash the ledger recorded;
 * - the aggregate is the product of the contributions (one multiplication mod n² per contribution and chunk), times
 *   the coordinator's differential-privacy noise when the query asks for it, whose ciphertexts carry proofs that the
 *   coordinator knows what they encrypt (so the noise cannot be built from other contributions to cancel them out).
 */

const b64u = z.string().regex(/^[A-Za-z0-9_-]+$/, 'expected base64url');

/** GET /v1/queries/:id/aggregate: the aggregate, what it multiplies, and the ledger facts to check it against. */
export const aggregateBundleSchema = z.strictObject({
  queryId: z.string().min(1).max(200),
  publicKey: z.strictObject({ n: b64u }),
  ciphertexts: z.array(b64u).min(1).max(1000),
  contributors: z.number().int().min(0),
  deadline: z.number().int(),
  contributions: z.array(z.strictObject({ contribution: paillierContributionSchema, signingKey: b64u.max(64) })).max(100_000),
  noise: encryptedNoiseSchema.nullable(),
  evidence: ledgerEvidenceSchema,
  /** For a key split among custodians: their verification keys (as recorded in `query.submitted`). */
  custodians: z.record(z.string(), z.unknown()).nullable().optional(),
});
export type AggregateBundle = z.infer<typeof aggregateBundleSchema>;

/** Why the key holder will not decrypt; nothing was decrypted when this is thrown. */
export class AggregateRefusal extends Error {
  override readonly name = 'AggregateRefusal';
  constructor(
    readonly code: 'EVIDENCE' | 'KEY' | 'CONTRIBUTORS' | 'MIN_PARTICIPANTS' | 'SIGNATURE' | 'PRODUCT' | 'NOISE',
    message: string,
  ) {
    super(message);
  }
}

/** What the key holder knows independently of the coordinator. */
export interface KeyHolderExpectations {
  /** The coordinator's ledger key (the caller may pin its fingerprint). */
  readonly coordinatorKey: PublicKey;
  /** The key holder's own Paillier public key. */
  readonly publicKey: PaillierPublicKey;
  /** For custodians: the verification keys of the share they hold; the query must record exactly these. */
  readonly custodians?: Readonly<Record<string, unknown>>;
}

/** What the checks established. */
export interface CheckedAggregate {
  readonly queryId: string;
  readonly studyId: string;
  readonly contributors: readonly string[];
  readonly aggregate: readonly bigint[];
  readonly checkpointSize: number;
}

const refuse = (code: AggregateRefusal['code'], message: string): never => {
  throw new AggregateRefusal(code, message);
};

/** A positive integer count, or 1 when the ledger records none. */
function countOf(n: unknown): number {
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 1 ? n : 1;
}

function hasDp(query: unknown): boolean {
  const dp = (query as { privacy?: { dp?: unknown } } | null)?.privacy?.dp;
  return dp !== undefined && dp !== null;
}

/**
 * Runs every check above on a bundle as the coordinator served it.
 * @returns the aggregate ciphertexts (recomputed, so exactly the product of the checked contributions) and who contributed
 * @throws AggregateRefusal naming the first check that fails
 */
export function checkAggregate(raw: unknown, expect: KeyHolderExpectations): CheckedAggregate {
  const parsed = aggregateBundleSchema.safeParse(raw);
  if (!parsed.success) return refuse('EVIDENCE', `the aggregate is malformed: ${parsed.error.issues[0]?.path.join('.') ?? ''} ${parsed.error.issues[0]?.message ?? ''}`);
  const bundle = parsed.data;
  const { queryId } = bundle;
  const n = publicKeyToJson(expect.publicKey).n;
  if (bundle.publicKey.n !== n) refuse('KEY', `query ${queryId}'s aggregate is under another public key than this one`);

  let evidence: VerifiedEvidence;
  let facts: ReturnType<typeof ledgerFacts>;
  try {
    evidence = openEvidence(bundle.evidence, expect.coordinatorKey);
    facts = ledgerFacts(evidence, queryId);
  } catch (err) {
    if (err instanceof TaskRefusal) return refuse('EVIDENCE', err.message);
    throw err;
  }
  const { submitted, planned, closed, study } = facts;
  if (submitted.body.publicKey?.n !== n || planned.body.publicKey.n !== n) refuse('KEY', `the ledger records query ${queryId} with another public key (entries ${submitted.entry.index}, ${planned.entry.index})`);
  if (expect.custodians !== undefined) {
    const recorded = submitted.body.custodians;
    if (!recorded || custodiansHash(recorded) !== custodiansHash(expect.custodians)) refuse('KEY', `query ${queryId} was submitted for other custodians than the ones this share belongs to (entry ${submitted.entry.index})`);
  }

  // The contributor set: exactly the ledger's, and large enough.
  const logged = new Map(closed.body.contributors.map((c) => [c.id, c.bundleHash]));
  const served = bundle.contributions.map((c) => c.contribution.sender);
  if (new Set(served).size !== served.length) refuse('CONTRIBUTORS', 'the aggregate lists a contribution twice');
  const extra = served.filter((id) => !logged.has(id));
  if (extra.length) refuse('CONTRIBUTORS', `contribution${extra.length === 1 ? '' : 's'} from ${extra.join(', ')} ${extra.length === 1 ? 'is' : 'are'} not in the ledger's round.closed entry ${closed.entry.index}`);
  const missing = [...logged.keys()].filter((id) => !served.includes(id));
  if (missing.length) refuse('CONTRIBUTORS', `the ledger's round.closed entry ${closed.entry.index} records ${missing.join(', ')}, missing from the aggregate`);
  // The study's minimum is its schema's top-level minParticipants (ledgerSchema); the query's, its effective privacy.
  const studyMin = countOf((study.body.schema as { minParticipants?: unknown }).minParticipants);
  const min = Math.max(studyMin, countOf((submitted.body.query as { privacy?: { minParticipants?: unknown } } | null)?.privacy?.minParticipants));
  if (served.length < min) refuse('MIN_PARTICIPANTS', `${served.length} contributor${served.length === 1 ? '' : 's'}, the study requires at least ${min}`);

  // Each contribution: this plan, signed with the key its participant enrolled with, and the one the ledger hashed.
  const chunks = bundle.ciphertexts.length;
  const factors: bigint[][] = [];
  for (const { contribution, signingKey } of bundle.contributions) {
    factors.push(checkContribution(contribution, signingKey, { queryId, planHash: planned.body.planHash, chunks, bundleHash: logged.get(contribution.sender)!, evidence, studyId: submitted.body.studyId, before: closed.entry.index, publicKey: expect.publicKey }));
  }

  // The noise, when the query has differential privacy; none otherwise.
  const wantsNoise = hasDp(submitted.body.query);
  if (wantsNoise && !bundle.noise) refuse('NOISE', `query ${queryId} asks for differential privacy, and the aggregate carries no noise`);
  if (!wantsNoise && bundle.noise) refuse('NOISE', `query ${queryId} has no differential privacy, and the aggregate carries noise`);
  if (bundle.noise) {
    const { ciphertexts, proofs } = bundle.noise;
    if (ciphertexts.length !== chunks || proofs.length !== chunks) refuse('NOISE', `expected ${chunks} noise ciphertexts with their proofs`);
    factors.push(
      ciphertexts.map((text, i) => {
        const c = parseCiphertext(expect.publicKey, text, 'NOISE', `noise ciphertext ${i}`);
        let proof;
        try {
          proof = plaintextProofFromJson(proofs[i]);
        } catch (err) {
          return refuse('NOISE', `noise proof ${i} is malformed: ${(err as Error).message}`);
        }
        if (!verifyPlaintextKnowledge(expect.publicKey, c, proof, noiseProofContext(queryId, i))) {
          refuse('NOISE', `noise ciphertext ${i} comes without a valid proof that the coordinator knows what it encrypts: it may be built from contributions`);
        }
        return c;
      }),
    );
  }

  // The product, recomputed here: one multiplication mod n² per factor and chunk.
  const n2 = expect.publicKey.n * expect.publicKey.n;
  const aggregate = bundle.ciphertexts.map((text, chunk) => {
    const served = parseCiphertext(expect.publicKey, text, 'PRODUCT', `aggregate ciphertext ${chunk}`);
    let product = 1n;
    for (const f of factors) product = (product * f[chunk]!) % n2;
    if (product !== served) refuse('PRODUCT', `aggregate ciphertext ${chunk} is not the product of the ${bundle.contributions.length} logged contributions${bundle.noise ? ' and the noise' : ''}`);
    return product;
  });
  return { queryId, studyId: submitted.body.studyId, contributors: served, aggregate, checkpointSize: evidence.checkpoint.size };
}

function ledgerFacts(evidence: VerifiedEvidence, queryId: string) {
  const submitted = onlyEntry(evidence, ENTRY.querySubmitted, (b) => b.queryId === queryId, `query ${queryId}`);
  if (submitted.body.protocol !== 'paillier') throw new TaskRefusal('PLAN', `query ${queryId} is a ${submitted.body.protocol} query`);
  const planned = onlyEntry(evidence, ENTRY.paillierPlanned, (b) => b.queryId === queryId, `query ${queryId}`);
  const closed = onlyEntry(evidence, ENTRY.roundClosed, (b) => b.queryId === queryId && b.round === 1, `round 1 of query ${queryId}`);
  const study = onlyEntry(evidence, ENTRY.studyCreated, (b) => b.studyId === submitted.body.studyId, `study ${submitted.body.study}`);
  if (planned.body.studyId !== submitted.body.studyId) throw new TaskRefusal('WRONG_STUDY', `query ${queryId} was planned in another study than it was submitted to`);
  if (!(submitted.entry.index < planned.entry.index && planned.entry.index < closed.entry.index)) throw new TaskRefusal('PLAN', `query ${queryId}'s entries are out of order`);
  return { submitted, planned, closed, study };
}

function parseCiphertext(publicKey: PaillierPublicKey, text: string, code: AggregateRefusal['code'], what: string): bigint {
  try {
    return ciphertextFromString(publicKey, text);
  } catch (err) {
    if (err instanceof PaillierError) return refuse(code, `${what} is not a ciphertext under this key: ${err.message}`);
    throw err;
  }
}

function checkContribution(
  c: PaillierContribution,
  signingKey: string,
  at: { queryId: string; planHash: string; chunks: number; bundleHash: string; evidence: VerifiedEvidence; studyId: string; before: number; publicKey: PaillierPublicKey },
): bigint[] {
  const who = c.sender;
  if (c.jobId !== at.queryId || c.planHash !== at.planHash) refuse('SIGNATURE', `${who}'s contribution is for another query or plan`);
  let enrolled;
  try {
    enrolled = onlyEntry(at.evidence, ENTRY.participantEnrolled, (b) => b.participantId === who, `contributor ${who}`);
  } catch (err) {
    if (err instanceof TaskRefusal) return refuse('EVIDENCE', err.message);
    throw err;
  }
  if (enrolled.body.studyId !== at.studyId || enrolled.entry.index >= at.before) refuse('SIGNATURE', `${who} is not enrolled in the query's study before its round closed (entry ${enrolled.entry.index})`);
  let key: PublicKey;
  try {
    key = importPublicKeyBase64Url('ed25519', signingKey);
  } catch (err) {
    return refuse('SIGNATURE', `${who}'s signing key is invalid: ${(err as Error).message}`);
  }
  if (keyFingerprint(key) !== enrolled.body.signingKeyFingerprint) refuse('SIGNATURE', `${who}'s signing key is not the one logged at its enrollment (entry ${enrolled.entry.index})`);
  const { signature, ...signed } = c;
  if (!verifyMessage(key, CONTRIBUTION_SIGNATURE_DOMAIN, signed, signature)) refuse('SIGNATURE', `${who}'s contribution signature does not verify`);
  if (contributionHash(c) !== at.bundleHash) refuse('SIGNATURE', `${who}'s contribution is not the one whose hash the ledger recorded`);
  if (c.ciphertexts.length !== at.chunks) refuse('PRODUCT', `${who}'s contribution has ${c.ciphertexts.length} ciphertexts, the aggregate ${at.chunks}`);
  return c.ciphertexts.map((text, i) => parseCiphertext(at.publicKey, text, 'SIGNATURE', `${who}'s ciphertext ${i}`));
}
