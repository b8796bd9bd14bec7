import { loadavg } from 'node:os';
import {
  ciphertextFromString,
  combinePartialDecryptions,
  decryptFast,
  encryptFast,
  encryptWithProof,
  generateKeyPair,
  generatePaillierKeyPair,
  generateThresholdPaillierKey,
  keyFingerprint,
  partialDecrypt,
  prepareModPow,
  publicKeyBase64Url,
  publicKeyToJson,
  verifyPartialDecryption,
  verifyPlaintextKnowledge,
  type KeyPair,
  type ThresholdPaillierKey,
} from '@confide/crypto';
import {
  aggregateContributions,
  checkAggregate,
  compileQuery,
  contributionHash,
  effectivePrivacy,
  ENTRY,
  ledgerSchema,
  paillierContext,
  paillierContribute,
  paillierPlanHash,
  parseStudySchema,
  planPaillier,
  canonicalQuery,
  queryHash,
  type AggregateBundle,
  type QuerySpec,
} from '@confide/protocol';
import { MemoryLedger } from '../test/support/memory-ledger';
import { fmt, measure, type BenchSection, type Timing } from './harness';

/**
 * Paillier without trusting the coordinator (issue 11), at 3072 bits: what a custodian's partial decryption with its
 * proof, the coordinator's verification of it and the combination of t = 3 of 5 cost against one whole-key CRT
 * decryption; each proof against the modular exponentiations it is made of; key generation with custodians (safe
 * primes) against the whole key; and the key holder's check of an aggregate before it decrypts, at N = 10 and 50.
 */

const BITS = 3072;
const CUSTODIANS = 5;
const THRESHOLD = 3;
/** Safe-prime key generation takes seconds to a minute at 3072 bits: a few runs, reported as median and range. */
const KEYGEN_RUNS = 3;
const quick = { minIterations: 7, minMs: 1500, warmup: 2 } as const;

const ms = (t: Timing): string => fmt(t.medianMs);
const ratio = (a: Timing | number, b: Timing | number): string => `${fmt((typeof a === 'number' ? a : a.medianMs) / (typeof b === 'number' ? b : b.medianMs))}×`;

/** A signed aggregate of `n` contributions with its ledger evidence, as GET /v1/queries/:id/aggregate serves it. */
async function bundleOf(n: number, key: ThresholdPaillierKey, coordinator: KeyPair): Promise<AggregateBundle> {
  const schema = parseStudySchema({ name: 'salaries', minParticipants: 3, fields: [{ name: 'salary', type: 'number', min: 30000, max: 400000, decimals: 2 }] });
  const spec = { select: [{ stat: 'mean', field: 'salary' }], privacy: effectivePrivacy(schema.privacy, undefined) } as unknown as QuerySpec;
  const compiled = compileQuery(schema, spec);
  const ids = Array.from({ length: n }, (_, i) => `site-${String(i + 1).padStart(3, '0')}`);
  const signing = new Map(ids.map((id) => [id, generateKeyPair('ed25519')]));
  const pk = publicKeyToJson(key.publicKey);
  const plan = planPaillier({ jobId: 'q-bench', queryHash: queryHash(spec), compiled, publicKey: pk, participants: ids, minParticipants: 3, maxRecords: 100n, deadline: 0, dp: null });
  const context = paillierContext(plan, compiled);
  const contributions = ids.map((id, i) =>
    paillierContribute({ plan, context, self: id, signing: signing.get(id)!, aggregate: Array.from({ length: compiled.vectorLength }, (_, j) => BigInt(10 + i + j)), randomnessPower: () => encryptFast(key.publicKey, 0n) }),
  );
  const ledger = new MemoryLedger(coordinator, '2030-01-01T00:00:00.000Z');
  const at = [ledger.append(ENTRY.studyCreated, { studyId: 's', name: 'salaries', schema: ledgerSchema(schema) }).index];
  for (const id of ids) at.push(ledger.append(ENTRY.participantEnrolled, { participantId: id, studyId: 's', name: id, encryptionKeyFingerprint: 'x', signingKeyFingerprint: keyFingerprint(signing.get(id)!.publicKey), maxRecords: 100 }).index);
  at.push(ledger.append(ENTRY.querySubmitted, { queryId: 'q-bench', studyId: 's', study: 'salaries', protocol: 'paillier', query: canonicalQuery(spec), queryHash: queryHash(spec), submittedBy: 'r', publicKey: pk }).index);
  at.push(ledger.append(ENTRY.paillierPlanned, { queryId: 'q-bench', studyId: 's', participants: ids, publicKey: pk, maxRecords: '100', deadline: 0, planHash: paillierPlanHash(plan) }).index);
  at.push(ledger.append(ENTRY.roundClosed, { queryId: 'q-bench', round: 1, contributors: contributions.map((c) => ({ id: c.sender, bundleHash: contributionHash(c) })), missing: [], refusals: [] }).index);
  const aggregate = aggregateContributions(context, contributions.map((c) => ({ ciphertexts: c.ciphertexts.map((t) => ciphertextFromString(key.publicKey, t)) })));
  return {
    queryId: 'q-bench',
    publicKey: pk,
    ciphertexts: aggregate,
    contributors: n,
    deadline: 0,
    contributions: contributions.map((contribution) => ({ contribution, signingKey: publicKeyBase64Url(signing.get(contribution.sender)!.publicKey) })),
    noise: null,
    evidence: await ledger.evidence(at),
  };
}

export async function custodiansBench(): Promise<BenchSection> {
  const load = loadavg()[0]!;
  const say = (what: string) => process.stderr.write(`  paillier-custodians: ${what}…\n`);

  say(`key generation with ${CUSTODIANS} custodians (safe primes), ${KEYGEN_RUNS} runs`);
  const keygens: number[] = [];
  let key: ThresholdPaillierKey | undefined;
  for (let i = 0; i < KEYGEN_RUNS; i++) {
    const t = performance.now();
    key = await generateThresholdPaillierKey(BITS, CUSTODIANS, THRESHOLD, { keepFullKey: true });
    keygens.push(performance.now() - t);
  }
  const k = key!;
  const sortedKeygen = [...keygens].sort((a, b) => a - b);
  const wholeKeygen = await measure(() => generatePaillierKeyPair(BITS), { minIterations: 5, minMs: 2000, warmup: 1 });

  const { publicKey } = k;
  const full = k.fullKey!;
  const n2 = publicKey.n * publicKey.n;
  const c = encryptFast(publicKey, 123456789n);
  const context = 'confide/paillier/partial/q-bench/0';
  const share = k.shares[0]!;
  partialDecrypt(share, c, context); // the share's prepared exponentiation, once, as a custodian process does on load

  say('whole-key decryption, partial decryption, verification, combination');
  const crt = await measure(() => decryptFast(full.privateKey, c), quick);
  const partial = await measure(() => partialDecrypt(share, c, context), quick);
  const partials = k.shares.map((s) => partialDecrypt(s, c, context));
  const verify = await measure(() => verifyPartialDecryption(k.verification, c, partials[0]!, context), quick);
  const combine = await measure(() => combinePartialDecryptions(k.verification, c, partials.slice(0, THRESHOLD)), quick);
  if (combinePartialDecryptions(k.verification, c, partials.slice(1, 1 + THRESHOLD)) !== decryptFast(full.privateKey, c)) throw new Error('custodians and the whole key disagree');

  // The exponentiations a partial decryption is made of, each timed alone with an exponent of its real size.
  say('the exponentiations inside');
  const shareExp = prepareModPow(2n * k.verification.delta * share.si, n2);
  shareExp(c);
  const nonce = partials[0]!.proof.z; // as long as a proof's nonce r and response z
  const nonceExp = prepareModPow(nonce, n2);
  nonceExp(c);
  const expShare = await measure(() => shareExp(c), quick);
  const expNonce = await measure(() => nonceExp(c), quick);
  const sumPartial = expShare.medianMs + 2 * expNonce.medianMs;
  const sumVerify = 2 * expNonce.medianMs;

  say('proof of plaintext knowledge (DP noise)');
  const enc = await measure(() => encryptFast(publicKey, 42n), quick);
  const encProof = await measure(() => encryptWithProof(publicKey, 42n, 'ctx'), quick);
  const proved = encryptWithProof(publicKey, 42n, 'ctx');
  const verifyProof = await measure(() => verifyPlaintextKnowledge(publicKey, proved.ciphertext, proved.proof, 'ctx'), quick);

  say('the key holder checks an aggregate at N = 10 and 50');
  const coordinator = generateKeyPair('ed25519');
  const checks: [number, Timing][] = [];
  for (const n of [10, 50]) {
    const bundle = JSON.parse(JSON.stringify(await bundleOf(n, k, coordinator))) as unknown;
    checks.push([n, await measure(() => checkAggregate(bundle, { coordinatorKey: coordinator.publicKey, publicKey }), { minIterations: 5, minMs: 1500, warmup: 1 })]);
  }
  const custodianChain = THRESHOLD * partial.medianMs + THRESHOLD * verify.medianMs + combine.medianMs;

  return {
    id: 'paillier-custodians',
    title: `Paillier without trusting the coordinator: custodians, proofs and the key holder's check (${BITS}-bit key)`,
    method: [
      `One ${BITS}-bit key made by \`generateThresholdPaillierKey\` (safe primes from OpenSSL, d split among ${CUSTODIANS} custodians, any ${THRESHOLD} decrypt; libs/crypto threshold-paillier.ts), with the whole key kept for comparison. Each operation on one ciphertext (one chunk), timed with the harness's \`measure\` (median call, ≥ 7 calls and 1.5 s, after warm-up), in one process. A partial decryption is c^(2Δs_i) mod n² plus a Fiat–Shamir proof of equality of discrete logs (two more exponentiations with a nonce of |n²| + |Δ| + 256 bits); verifying it is two exponentiations with the response z, two short ones with the 128-bit challenge and one inversion. "Sum of its exponentiations" times each large exponentiation alone through the same native path (OpenSSL's Montgomery exponentiation through node:crypto) with an exponent of its real size: the goal is within 1.5× of it.`,
      `Key generation: ${KEYGEN_RUNS} runs with custodians (median, then min–max: safe primes make it vary a lot), against \`generatePaillierKeyPair\` (two ordinary primes). The key holder's check (\`checkAggregate\`, libs/protocol key-holder.ts) runs on the JSON a coordinator serves: ledger evidence (checkpoint signature, inclusion proofs of study.created, query.submitted, paillier.planned, round.closed and every contributor's enrollment, on a ledger made in memory as the coordinator makes it), every contribution's Ed25519 signature and hash, every ciphertext parsed and checked as a unit mod n², and the product recomputed.`,
    ].join('\n\n'),
    columns: ['operation', 'ms (median)', 'against'],
    rows: [
      ['whole-key decryption (`decryptFast`, CRT)', ms(crt), '1× (the reference)'],
      [`partial decryption with its proof (one custodian)`, ms(partial), `${ratio(partial, crt)} a CRT decryption; ${ratio(partial.medianMs, sumPartial)} the sum of its exponentiations (${fmt(sumPartial)} ms)`],
      ['verify one partial decryption (coordinator)', ms(verify), `${ratio(verify, crt)} a CRT decryption; ${ratio(verify.medianMs, sumVerify)} the sum of its two large exponentiations (${fmt(sumVerify)} ms)`],
      [`combine t = ${THRESHOLD} of ${CUSTODIANS} verified partials`, ms(combine), `${ratio(combine, crt)} a CRT decryption`],
      [`custodian decryption of one chunk, all told: ${THRESHOLD} partials, ${THRESHOLD} verifications, combination`, fmt(custodianChain), `${ratio(custodianChain, crt.medianMs)} a CRT decryption (the partials run on ${THRESHOLD} machines in parallel)`],
      ['  exponentiation c^(2Δs_i) mod n² (share exponent)', ms(expShare), ''],
      ['  exponentiation with a proof-sized exponent mod n²', ms(expNonce), ''],
      [`key generation with ${CUSTODIANS} custodians (safe primes)`, `${fmt(sortedKeygen[Math.floor(KEYGEN_RUNS / 2)]!)} (${fmt(sortedKeygen[0]!)}–${fmt(sortedKeygen[KEYGEN_RUNS - 1]!)})`, `${ratio(sortedKeygen[Math.floor(KEYGEN_RUNS / 2)]!, wholeKeygen.medianMs)} a whole key (${fmt(wholeKeygen.medianMs)} ms)`],
      ['encrypt DP noise with a proof of plaintext knowledge (coordinator)', ms(encProof), `${ratio(encProof, enc)} a plain encryption (${ms(enc)} ms)`],
      ['verify that proof (key holder)', ms(verifyProof), `${ratio(verifyProof, crt)} a CRT decryption`],
      ...checks.map(([n, t]): (string | number)[] => [`key holder's check of an aggregate of ${n} contributions`, ms(t), `${ratio(t, crt)} a CRT decryption; ${fmt(t.medianMs / n)} ms per contribution`]),
    ],
    notes: `Load average at start: ${fmt(load)} on 2 vCPUs.`,
  };
}
