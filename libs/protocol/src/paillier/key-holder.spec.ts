import {
  addCiphertexts,
  ciphertextFromString,
  ciphertextToString,
  encryptFast,
  generateKeyPair,
  generatePaillierKeyPair,
  keyFingerprint,
  publicKeyBase64Url,
  publicKeyToJson,
  signMessage,
  type PaillierKeyPair,
} from '@confide/crypto';
import { MemoryLedger } from '../../../../test/support/memory-ledger';
import { ENTRY, ledgerSchema } from '../ledger/ledger-entries';
import { dpNoise } from '../privacy/dp';
import { effectivePrivacy } from '../privacy/settings';
import { compileQuery, type QuerySpec } from '../query/query';
import { canonicalQuery, queryHash } from '../hashing';
import { parseStudySchema, type StudySchemaJson } from '../query/schema';
import { AggregateRefusal, checkAggregate, type AggregateBundle } from './key-holder';
import { addEncryptedNoise, aggregateContributions, contributionHash, CONTRIBUTION_SIGNATURE_DOMAIN, paillierContext, paillierContribute, paillierPlanHash, planPaillier, type PaillierContribution } from './protocol';

// The key holder's checks before it decrypts (key-holder.ts), against a coordinator that serves it something other
// than the product of the contributions the ledger records: each test forges one thing and names the check it trips.

const TIME = '2030-01-15T12:00:00.000Z';
const STUDY_ID = 'salaries-2030';
const QUERY_ID = 'q-paillier-1';
const STUDY: StudySchemaJson = { name: 'salaries', minParticipants: 3, fields: [{ name: 'salary', type: 'number', min: 30000, max: 400000, decimals: 2 }] };
const SPEC: QuerySpec = { select: [{ stat: 'sum', field: 'salary' }, { stat: 'count', field: 'salary' }] };
const SITES = ['hospital-1', 'hospital-2', 'hospital-3', 'hospital-4'];

const coordinator = generateKeyPair('ed25519');
const signing = new Map(SITES.map((id) => [id, generateKeyPair('ed25519')]));
let keys: PaillierKeyPair;

beforeAll(async () => {
  keys = await generatePaillierKeyPair(2048);
});

interface Scenario {
  readonly bundle: AggregateBundle;
  readonly contributions: PaillierContribution[];
}

/** An honest aggregate as the coordinator serves it: contributions of every site, the ledger facts, optional DP noise added as the coordinator adds it. */
async function honest(options: { dp?: boolean; contributors?: readonly string[]; queryMinParticipants?: number } = {}): Promise<Scenario> {
  const schema = parseStudySchema(options.dp ? { ...STUDY, privacy: { dp: { mechanism: 'laplace', epsilon: 1, budget: { epsilon: 10 } } } } : STUDY);
  const privacy = effectivePrivacy(schema.privacy, undefined);
  const spec = { ...SPEC, privacy } as QuerySpec;
  const compiled = compileQuery(schema, spec);
  const n = publicKeyToJson(keys.publicKey);
  const plan = planPaillier({ jobId: QUERY_ID, queryHash: queryHash(spec), compiled, publicKey: n, participants: SITES, minParticipants: 3, maxRecords: 100n, deadline: Date.parse(TIME) + 60_000, dp: schema.privacy.dp ?? null });
  const context = paillierContext(plan, compiled);
  const contributors = options.contributors ?? SITES;
  const contributions = contributors.map((id, i) =>
    paillierContribute({ plan, context, self: id, signing: signing.get(id)!, aggregate: Array.from({ length: compiled.vectorLength }, (_, j) => BigInt(10 * (i + 1) + j)), randomnessPower: () => encryptFast(keys.publicKey, 0n) }),
  );
  const ledger = new MemoryLedger(coordinator, TIME);
  const studyIndex = ledger.append(ENTRY.studyCreated, { studyId: STUDY_ID, name: schema.name, schema: ledgerSchema(schema) }).index;
  const enrolled = SITES.map(
    (id) =>
      ledger.append(ENTRY.participantEnrolled, { participantId: id, studyId: STUDY_ID, name: id, encryptionKeyFingerprint: 'x', signingKeyFingerprint: keyFingerprint(signing.get(id)!.publicKey), maxRecords: 100 }).index,
  );
  // A coordinator may record a query that asks for fewer participants than the study (workers would refuse its tasks).
  const recorded = options.queryMinParticipants === undefined ? spec : ({ ...spec, privacy: { ...(spec as { privacy: object }).privacy, minParticipants: options.queryMinParticipants } } as QuerySpec);
  const submitted = ledger.append(ENTRY.querySubmitted, { queryId: QUERY_ID, studyId: STUDY_ID, study: schema.name, protocol: 'paillier', query: canonicalQuery(recorded), queryHash: queryHash(recorded), submittedBy: 'r', publicKey: n }).index;
  const planned = ledger.append(ENTRY.paillierPlanned, { queryId: QUERY_ID, studyId: STUDY_ID, participants: SITES, publicKey: n, maxRecords: '100', deadline: plan.deadline, planHash: paillierPlanHash(plan) }).index;
  const closed = ledger.append(ENTRY.roundClosed, { queryId: QUERY_ID, round: 1, contributors: contributions.map((c) => ({ id: c.sender, bundleHash: contributionHash(c) })), missing: [], refusals: [] }).index;
  let aggregate = aggregateContributions(context, contributions.map((c) => ({ ciphertexts: c.ciphertexts.map((t) => ciphertextFromString(keys.publicKey, t)) })));
  let noise: AggregateBundle['noise'] = null;
  if (privacy.dp) ({ aggregate, noise } = addEncryptedNoise(context, QUERY_ID, aggregate, dpNoise(compiled, privacy.dp)));
  const evidence = await ledger.evidence([studyIndex, ...enrolled, submitted, planned, closed]);
  const bundle: AggregateBundle = {
    queryId: QUERY_ID,
    publicKey: n,
    ciphertexts: aggregate,
    contributors: contributions.length,
    deadline: 0,
    contributions: contributions.map((contribution) => ({ contribution, signingKey: publicKeyBase64Url(signing.get(contribution.sender)!.publicKey) })),
    noise,
    evidence,
  };
  return { bundle, contributions };
}

const check = (bundle: unknown) => () => checkAggregate(bundle, { coordinatorKey: coordinator.publicKey, publicKey: keys.publicKey });
const mul = (...cs: string[]): string => ciphertextToString(keys.publicKey, addCiphertexts(keys.publicKey, cs.map((c) => ciphertextFromString(keys.publicKey, c))));
const inverse = (c: string): bigint => {
  const n2 = keys.publicKey.n * keys.publicKey.n;
  let [a, m, x0, x1] = [ciphertextFromString(keys.publicKey, c), n2, 0n, 1n];
  while (a > 1n) {
    const q = a / m;
    [a, m] = [m, a % m];
    [x0, x1] = [x1 - q * x0, x0];
  }
  return x1 < 0n ? x1 + n2 : x1;
};

function expectRefused(run: () => unknown, code: AggregateRefusal['code'], message: RegExp): void {
  let caught: unknown;
  try {
    run();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(AggregateRefusal);
  expect([(caught as AggregateRefusal).code, (caught as AggregateRefusal).message]).toEqual([code, expect.stringMatching(message) as string]);
}

describe('checkAggregate', () => {
  it('accepts the honest product, and returns it recomputed with the contributors', async () => {
    const { bundle } = await honest();
    const checked = check(bundle)();
    expect(checked.contributors).toEqual(SITES);
    expect(checked.aggregate.map((c) => ciphertextToString(keys.publicKey, c))).toEqual(bundle.ciphertexts);
  });

  it('accepts the noised product the coordinator makes (addEncryptedNoise), its noise carrying proofs of plaintext knowledge', async () => {
    const { bundle } = await honest({ dp: true });
    expect(check(bundle)().contributors).toEqual(SITES);
  });

  it('refuses a single contribution, re-randomised, passed off as the aggregate', async () => {
    const { bundle } = await honest();
    const victim = bundle.contributions[0]!.contribution.ciphertexts.map((c) => mul(c, ciphertextToString(keys.publicKey, encryptFast(keys.publicKey, 0n))));
    expectRefused(check({ ...bundle, ciphertexts: victim }), 'PRODUCT', /aggregate ciphertext 0 is not the product of the 4 logged contributions/);
  });

  it('refuses a product with a contributor left out', async () => {
    const { bundle } = await honest();
    const kept = bundle.contributions.slice(1);
    const product = kept[0]!.contribution.ciphertexts.map((_, i) => mul(...kept.map((c) => c.contribution.ciphertexts[i]!)));
    expectRefused(check({ ...bundle, contributions: kept, ciphertexts: product }), 'CONTRIBUTORS', /records hospital-1, missing from the aggregate/);
  });

  it('refuses an extra contribution the ledger does not record', async () => {
    const { bundle, contributions } = await honest();
    const mallory = generateKeyPair('ed25519');
    const signed = { jobId: QUERY_ID, planHash: contributions[0]!.planHash, sender: 'mallory', ciphertexts: contributions[0]!.ciphertexts.map(() => ciphertextToString(keys.publicKey, encryptFast(keys.publicKey, 0n))) };
    const extra = { contribution: { ...signed, signature: signMessage(mallory.privateKey, CONTRIBUTION_SIGNATURE_DOMAIN, signed) }, signingKey: publicKeyBase64Url(mallory.publicKey) };
    expectRefused(check({ ...bundle, contributions: [...bundle.contributions, extra] }), 'CONTRIBUTORS', /contribution from mallory is not in the ledger's round.closed entry/);
  });

  it('refuses a contributor set below the study minimum, even one the ledger records', async () => {
    const { bundle } = await honest({ contributors: SITES.slice(0, 2) });
    expectRefused(check(bundle), 'MIN_PARTICIPANTS', /2 contributors, the study requires at least 3/);
  });

  it("holds the set to the study's own minimum when the query the ledger records asks for less", async () => {
    const { bundle } = await honest({ contributors: SITES.slice(0, 2), queryMinParticipants: 1 });
    expectRefused(check(bundle), 'MIN_PARTICIPANTS', /2 contributors, the study requires at least 3/);
  });

  it('refuses a contribution signed with a key other than its enrolled one, or altered after signing', async () => {
    const { bundle } = await honest();
    const forged = bundle.contributions.map((c, i) => (i === 1 ? { ...c, signingKey: publicKeyBase64Url(generateKeyPair('ed25519').publicKey) } : c));
    expectRefused(check({ ...bundle, contributions: forged }), 'SIGNATURE', /hospital-2's signing key is not the one logged at its enrollment/);
    const altered = bundle.contributions.map((c, i) => (i === 1 ? { ...c, contribution: { ...c.contribution, ciphertexts: bundle.contributions[0]!.contribution.ciphertexts } } : c));
    expectRefused(check({ ...bundle, contributions: altered }), 'SIGNATURE', /hospital-2's contribution signature does not verify/);
  });

  it('refuses "noise" built from the other contributions to cancel them out: it has no valid proof', async () => {
    const { bundle } = await honest({ dp: true });
    // The coordinator wants hospital-1's vector: it sends the product of everyone, times a "noise" that divides out
    // everyone else, times a fresh encryption it knows, and reuses an honest proof.
    const others = bundle.contributions.slice(1).map((c) => c.contribution.ciphertexts[0]!);
    const cancel = ciphertextToString(keys.publicKey, addCiphertexts(keys.publicKey, [inverse(mul(...others)), encryptFast(keys.publicKey, 7n)]));
    const product = mul(...bundle.contributions.map((c) => c.contribution.ciphertexts[0]!), cancel);
    const forged = { ...bundle, ciphertexts: [product, ...bundle.ciphertexts.slice(1)], noise: { ...bundle.noise!, ciphertexts: [cancel, ...bundle.noise!.ciphertexts.slice(1)] } };
    expectRefused(check(forged), 'NOISE', /noise ciphertext 0 comes without a valid proof that the coordinator knows what it encrypts/);
  });

  it('refuses noise on a query without differential privacy, and a DP query served without noise', async () => {
    const plain = await honest();
    const noised = await honest({ dp: true });
    expectRefused(check({ ...plain.bundle, noise: noised.bundle.noise }), 'NOISE', /has no differential privacy, and the aggregate carries noise/);
    expectRefused(check({ ...noised.bundle, noise: null }), 'NOISE', /asks for differential privacy, and the aggregate carries no noise/);
  });

  it('refuses evidence signed by another key, and an aggregate under another public key', async () => {
    const { bundle } = await honest();
    expect(() => checkAggregate(bundle, { coordinatorKey: generateKeyPair('ed25519').publicKey, publicKey: keys.publicKey })).toThrow(/checkpoint does not verify/);
    const other = await generatePaillierKeyPair(2048);
    expectRefused(() => checkAggregate(bundle, { coordinatorKey: coordinator.publicKey, publicKey: other.publicKey }), 'KEY', /under another public key/);
  });

  it('refuses a bundle of the wrong shape, naming the field', () => {
    expectRefused(check({ queryId: QUERY_ID }), 'EVIDENCE', /the aggregate is malformed: publicKey/);
  });
});
