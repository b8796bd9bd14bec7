import { createHash, randomBytes } from 'node:crypto';
import { generateKeyPair, type KeyPair, type RandomSource } from '@confide/crypto';
import { aggregateLocal } from './query/aggregate';
import type { DataRecord } from './query/csv';
import { assertNoOverflow, compileQuery, deriveResults, type CompiledQuery, type QuerySpec, type StatResult } from './query/query';
import { ProtocolError } from './errors';
import { queryHash } from './hashing';
import { openRound, run, type RoundEffect, type RoundEvent, type Transition } from './rounds/machine';
import { roundSpec } from './rounds/specs';
import type { StudySchema } from './query/schema';
import {
  closeRound1,
  committeeRound2,
  deliveriesFor,
  finalizeShamir,
  participantRound1,
  planShamir,
  verifyRound1Bundle,
  type KeyDirectory,
  type Round1Bundle,
  type Round2Result,
} from './shamir';

/** One simulated participant: an id and its records (e.g. from `readRecordsFromFile`). */
export interface SimulatedParticipant {
  readonly id: string;
  readonly records: AsyncIterable<DataRecord> | Iterable<DataRecord>;
}

/** Options of {@link simulateShamir}. */
export interface SimulationOptions {
  readonly schema: StudySchema;
  readonly query: QuerySpec;
  readonly participants: readonly SimulatedParticipant[];
  readonly committeeSize?: number;
  readonly threshold?: number;
  /** How many participants fail to send round 1 (they are left out of the result). */
  readonly dropRound1?: number;
  /** How many committee members fail to answer round 2 (up to k − t may). */
  readonly dropRound2?: number;
  /** Hex seed for the committee draw and the choice of who drops; random when absent. */
  readonly seed?: string;
  /** Randomness for shares and envelopes (tests inject a deterministic one). */
  readonly rng?: RandomSource;
  /** Called as the simulation moves through its phases. */
  readonly onProgress?: (event: SimulationProgress) => void;
}

/** A progress report: which phase, and how far through it. */
export interface SimulationProgress {
  readonly phase: 'local' | 'round1' | 'round2' | 'finalize';
  readonly done: number;
  readonly total: number;
}

/** What a simulation run produced, with the protocol parameters it used and how long each phase took. */
export interface SimulationReport {
  readonly results: StatResult[];
  readonly participants: number;
  readonly contributors: number;
  readonly committee: string[];
  readonly threshold: number;
  readonly droppedRound1: string[];
  readonly droppedRound2: string[];
  readonly badMembers: string[];
  readonly records: number;
  readonly timingsMs: { readonly local: number; readonly round1: number; readonly round2: number; readonly finalize: number };
}

/** Picks `count` ids deterministically from a seed and a purpose label (which ones drop out). */
function pick(ids: readonly string[], count: number, seed: string, purpose: string): string[] {
  if (!Number.isInteger(count) || count < 0) throw new RangeError(`${purpose}: count must be a non-negative integer`);
  if (count > ids.length) throw new RangeError(`${purpose}: cannot drop ${count} of ${ids.length}`);
  const score = (id: string): string => createHash('sha256').update(`${purpose}\n${seed}\n${id}`).digest('hex');
  return [...ids].sort((a, b) => (score(a) < score(b) ? -1 : 1)).slice(0, count);
}

/** Local aggregation for every participant, shared by the secure run and the plaintext baseline. */
async function localAggregates(
  compiled: CompiledQuery,
  participants: readonly SimulatedParticipant[],
  onProgress?: (e: SimulationProgress) => void,
): Promise<{ id: string; vector: bigint[]; records: number }[]> {
  const out: { id: string; vector: bigint[]; records: number }[] = [];
  for (const p of participants) {
    const local = await aggregateLocal(compiled, p.records);
    out.push({ id: p.id, vector: local.vector, records: local.records });
    onProgress?.({ phase: 'local', done: out.length, total: participants.length });
  }
  return out;
}

/**
 * Runs the whole `shamir` protocol in memory (DESIGN.md "Protocol shamir"): local aggregation, round 1 by
 * every participant (share, encrypt, sign), the coordinator's checks and round-1 close, round 2 by every
 * committee member (verify, decrypt, sum, sign), and finalize (reconstruct, check, derive statistics).
 * Every message passes through the same validation a networked run uses; nothing is shortcut.
 * @throws ProtocolError when a round cannot reach its quorum or the minimum participant count, with the
 *   counts in the message; QueryError for a query the schema cannot answer or that could overflow
 */
export async function simulateShamir(options: SimulationOptions): Promise<SimulationReport> {
  const ids = options.participants.map((p) => p.id);
  if (new Set(ids).size !== ids.length) throw new RangeError('participant ids must be unique');
  const seed = options.seed ?? randomBytes(16).toString('hex');
  const compiled = compileQuery(options.schema, options.query);
  const t0 = performance.now();
  const locals = await localAggregates(compiled, options.participants, options.onProgress);
  const records = locals.reduce((n, l) => n + l.records, 0);
  assertNoOverflow(compiled, BigInt(records));
  const t1 = performance.now();

  const keys = new Map<string, { encryption: KeyPair; signing: KeyPair }>();
  for (const id of ids) keys.set(id, { encryption: generateKeyPair('x25519', options.rng), signing: generateKeyPair('ed25519', options.rng) });
  const directory: KeyDirectory = new Map([...keys].map(([id, k]) => [id, { encryption: k.encryption.publicKey, signing: k.signing.publicKey }]));

  const now = Date.now();
  const plan = planShamir({
    jobId: `sim-${seed.slice(0, 12)}`,
    queryHash: queryHash(options.query),
    vectorLength: compiled.vectorLength,
    participants: ids,
    minParticipants: options.schema.minParticipants,
    seed,
    deadlines: { round1: now + 60_000, round2: now + 120_000 },
    committeeSize: options.committeeSize,
    threshold: options.threshold,
    minThreshold: options.schema.minThreshold ?? undefined,
  });
  // The coordinator's X25519 key: round-2 share sums are sealed to it, as in a networked run.
  const reader = generateKeyPair('x25519', options.rng);

  // Round 1: everyone but the injected dropouts shares, encrypts and signs; the coordinator verifies.
  const droppedRound1 = pick(ids, options.dropRound1 ?? 0, seed, 'drop-round1');
  const accepted: { bundle: Round1Bundle; hash: string }[] = [];
  for (const local of locals) {
    if (droppedRound1.includes(local.id)) continue;
    const bundle = participantRound1({ plan, self: local.id, signing: keys.get(local.id)!.signing, directory, aggregate: local.vector, rng: options.rng });
    accepted.push(verifyRound1Bundle(plan, directory, JSON.parse(JSON.stringify(bundle))));
    options.onProgress?.({ phase: 'round1', done: accepted.length, total: ids.length - droppedRound1.length });
  }
  // The same round machine as the coordinator's decides when and over whom the round closes: everyone not dropped
  // answered, then the deadline passes.
  const round1 = closing(run(openRound(roundSpec(plan, 1)), [...accepted.map((a): RoundEvent => ({ type: 'answer', round: 1, from: a.bundle.sender })), { type: 'deadline', round: 1 }]));
  const closed = closeRound1(
    plan,
    accepted.filter((a) => round1.answered.includes(a.bundle.sender)),
  );
  const t2 = performance.now();

  // Round 2: each committee member still online answers once over exactly the closed set.
  const droppedRound2 = pick(plan.committee, options.dropRound2 ?? 0, seed, 'drop-round2');
  const bundles = accepted.map((a) => a.bundle);
  const answers: Round2Result[] = [];
  for (const member of plan.committee) {
    if (droppedRound2.includes(member)) continue;
    const k = keys.get(member)!;
    const { result } = committeeRound2({
      plan,
      self: member,
      encryption: k.encryption,
      signing: k.signing,
      directory,
      closed,
      deliveries: deliveriesFor(plan, member, bundles),
      memory: { answeredFor: () => undefined },
      reader: reader.publicKey,
      rng: options.rng,
    });
    answers.push(JSON.parse(JSON.stringify(result)) as Round2Result);
    options.onProgress?.({ phase: 'round2', done: answers.length, total: plan.committee.length - droppedRound2.length });
  }
  const t3 = performance.now();

  const round2 = closing(run(openRound(roundSpec(plan, 2)), [...answers.map((a): RoundEvent => ({ type: 'answer', round: 2, from: a.sender })), { type: 'deadline', round: 2 }]));
  const outcome = finalizeShamir(
    plan,
    closed,
    directory,
    answers.filter((a) => round2.answered.includes(a.sender)),
    reader,
  );
  const results = deriveResults(compiled, outcome.totals);
  const t4 = performance.now();
  options.onProgress?.({ phase: 'finalize', done: 1, total: 1 });

  return {
    results,
    participants: ids.length,
    contributors: outcome.contributors,
    committee: [...plan.committee],
    threshold: plan.threshold,
    droppedRound1,
    droppedRound2,
    badMembers: outcome.badMembers,
    records,
    timingsMs: { local: t1 - t0, round1: t2 - t1, round2: t3 - t2, finalize: t4 - t3 },
  };
}

/**
 * The close a round machine decided, or the failure it decided as the ProtocolError the coordinator's own checks
 * would throw (round 1 below the study's minimum, round 2 below the threshold).
 */
function closing(t: Transition): Extract<RoundEffect, { type: 'close' }> {
  const decision = t.effects.find((e) => e.type === 'close' || e.type === 'fail');
  if (decision?.type === 'close') return decision;
  const reason = decision?.type === 'fail' ? decision.reason : `round ${t.state.spec.round} did not end`;
  throw new ProtocolError(t.state.spec.round === 1 ? 'MIN_PARTICIPANTS' : 'QUORUM', reason);
}

/**
 * The plaintext baseline for benchmarks: the same local aggregation, then a plain sum of the vectors.
 * Bench-only — it is what the secure protocol is measured against, never a way to run a query.
 */
export async function simulatePlaintext(options: Pick<SimulationOptions, 'schema' | 'query' | 'participants'>): Promise<StatResult[]> {
  const compiled = compileQuery(options.schema, options.query);
  const locals = await localAggregates(compiled, options.participants);
  const totals = new Array<bigint>(compiled.vectorLength).fill(0n);
  for (const l of locals) l.vector.forEach((v, i) => (totals[i]! += v));
  return deriveResults(compiled, totals);
}
