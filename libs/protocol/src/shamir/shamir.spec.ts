import { createHash } from 'node:crypto';
import { EnvelopeError, generateKeyPair, openEnvelope, sealEnvelope, signMessage, type KeyPair } from '@confide/crypto';
import {
  closeRound1,
  committeeRound2,
  committeeSeed,
  committeeSize,
  drawCommittee,
  MAX_COMMITTEE,
  nonceCommitment,
  thresholdFloor,
  decodeShareVector,
  deliveriesFor,
  DOMAIN,
  encodeShareVector,
  ROUND2_READER,
  finalizeShamir,
  participantRound1,
  planHash,
  planShamir,
  verifyRound1Bundle,
  type KeyDirectory,
  type MemberMemory,
  type Round1Bundle,
  type Round2Result,
  type ShamirPlan,
} from './index';
import { ProtocolError } from '../errors';

interface Party {
  id: string;
  encryption: KeyPair;
  signing: KeyPair;
}

const noMemory: MemberMemory = { answeredFor: () => undefined };
/** The coordinator's X25519 key: members seal their round-2 share sums to it. */
const COORDINATOR = generateKeyPair('x25519');
const SEED = 'a'.repeat(32);

function setup(n: number, opts: { committeeSize?: number; threshold?: number; minParticipants?: number; jobId?: string } = {}) {
  const parties: Party[] = Array.from({ length: n }, (_, i) => ({
    id: `p${String(i + 1).padStart(2, '0')}`,
    encryption: generateKeyPair('x25519'),
    signing: generateKeyPair('ed25519'),
  }));
  const directory: KeyDirectory = new Map(parties.map((p) => [p.id, { encryption: p.encryption.publicKey, signing: p.signing.publicKey }]));
  const plan = planShamir({
    jobId: opts.jobId ?? 'job-1',
    queryHash: createHash('sha256').update('query').digest('hex'),
    vectorLength: 3,
    participants: parties.map((p) => p.id),
    minParticipants: opts.minParticipants ?? 3,
    seed: SEED,
    deadlines: { round1: 1, round2: 2 },
    committeeSize: opts.committeeSize,
    threshold: opts.threshold,
  });
  const party = (id: string): Party => parties.find((p) => p.id === id)!;
  return { parties, directory, plan, party, reader: COORDINATOR };
}

const aggregateOf = (i: number): bigint[] => [BigInt(i + 1), BigInt(100 * (i + 1)), -BigInt(7 * i)];

function runRound1(ctx: ReturnType<typeof setup>, who = ctx.parties) {
  return who.map((p) => {
    const bundle = participantRound1({
      plan: ctx.plan,
      self: p.id,
      signing: p.signing,
      directory: ctx.directory,
      aggregate: aggregateOf(ctx.parties.indexOf(p)),
    });
    return verifyRound1Bundle(ctx.plan, ctx.directory, bundle);
  });
}

function runRound2(ctx: ReturnType<typeof setup>, accepted: { bundle: Round1Bundle; hash: string }[], members = ctx.plan.committee) {
  const closed = closeRound1(ctx.plan, accepted);
  const answers = members.map((m) => {
    const p = ctx.party(m);
    return committeeRound2({
      plan: ctx.plan,
      self: m,
      encryption: p.encryption,
      signing: p.signing,
      directory: ctx.directory,
      closed,
      deliveries: deliveriesFor(
        ctx.plan,
        m,
        accepted.map((a) => a.bundle),
      ),
      memory: noMemory,
      reader: COORDINATOR.publicKey,
    }).result;
  });
  return { closed, answers };
}

function expectedTotals(indices: number[]): bigint[] {
  return indices.map(aggregateOf).reduce((acc, v) => acc.map((a, i) => a + v[i]!), [0n, 0n, 0n]);
}

function expectProtocolError(fn: () => unknown, code: ProtocolError['code'], message?: RegExp): void {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(ProtocolError);
  expect((caught as ProtocolError).code).toBe(code);
  if (message) expect((caught as ProtocolError).message).toMatch(message);
}

describe('shamir protocol rounds', () => {
  it('reconstructs the exact sum of every contributor, negatives included', () => {
    const ctx = setup(6);
    const accepted = runRound1(ctx);
    const { closed, answers } = runRound2(ctx, accepted);
    const outcome = finalizeShamir(ctx.plan, closed, ctx.directory, answers, COORDINATOR);
    expect(outcome.totals).toEqual(expectedTotals([0, 1, 2, 3, 4, 5]));
    expect(outcome.contributors).toBe(6);
    expect(outcome.badMembers).toEqual([]);
  });

  it('draws a committee of 10 deterministically from the seed when there are more participants', () => {
    const ctx = setup(14);
    expect(ctx.plan.committee).toHaveLength(10);
    expect(ctx.plan.threshold).toBe(6);
    const again = planShamir({ ...ctx.plan, participants: [...ctx.plan.participants].reverse(), committeeSize: undefined, threshold: undefined });
    expect(again.committee).toEqual(ctx.plan.committee);
  });

  it('leaves a participant missing round 1 out of the result', () => {
    const ctx = setup(5);
    const accepted = runRound1(ctx, ctx.parties.slice(0, 4));
    const { closed, answers } = runRound2(ctx, accepted);
    const outcome = finalizeShamir(ctx.plan, closed, ctx.directory, answers, COORDINATOR);
    expect(outcome.totals).toEqual(expectedTotals([0, 1, 2, 3]));
    expect(outcome.contributors).toBe(4);
  });

  it('tolerates k − t committee members missing round 2 and fails with the counts beyond that', () => {
    const ctx = setup(5); // k = 5, t = 3
    const accepted = runRound1(ctx);
    const { closed, answers } = runRound2(ctx, accepted, ctx.plan.committee.slice(0, 3));
    expect(finalizeShamir(ctx.plan, closed, ctx.directory, answers, COORDINATOR).totals).toEqual(expectedTotals([0, 1, 2, 3, 4]));
    expectProtocolError(
      () => finalizeShamir(ctx.plan, closed, ctx.directory, answers.slice(0, 2), COORDINATOR),
      'QUORUM',
      /round 2: 2 of 5 committee members answered, 3 needed/,
    );
  });

  it('fails round 1 below the study minimum, naming the counts', () => {
    const ctx = setup(5, { minParticipants: 3 });
    const accepted = runRound1(ctx, ctx.parties.slice(0, 2));
    expectProtocolError(() => closeRound1(ctx.plan, accepted), 'MIN_PARTICIPANTS', /round 1: 2 of 5 participants answered, at least 3 needed/);
  });

  it('committee members refuse round 2 below the study minimum even if the coordinator does not', () => {
    const ctx = setup(5, { minParticipants: 3 });
    const accepted = runRound1(ctx, ctx.parties.slice(0, 2));
    const forgedClosed = { jobId: ctx.plan.jobId, planHash: planHash(ctx.plan), contributors: accepted.map((a) => ({ id: a.bundle.sender, bundleHash: a.hash })) };
    const member = ctx.party(ctx.plan.committee[0]!);
    expectProtocolError(
      () =>
        committeeRound2({
          plan: ctx.plan,
          self: member.id,
          encryption: member.encryption,
          signing: member.signing,
          directory: ctx.directory,
          closed: forgedClosed,
          deliveries: deliveriesFor(
            ctx.plan,
            member.id,
            accepted.map((a) => a.bundle),
          ),
          memory: noMemory,
          reader: COORDINATOR.publicKey,
        }),
      'MIN_PARTICIPANTS',
    );
  });

  it('rejects a round-1 bundle replayed in another job', () => {
    const ctx = setup(4, { jobId: 'job-A' });
    const other = { ...ctx, plan: { ...ctx.plan, jobId: 'job-B' } as ShamirPlan };
    const [first] = runRound1(ctx);
    expectProtocolError(() => verifyRound1Bundle(other.plan, ctx.directory, first!.bundle), 'WRONG_JOB');
    // Even relabelled with the new job id and plan hash, the old signature does not cover it.
    const relabelled = { ...first!.bundle, jobId: 'job-B', planHash: planHash(other.plan) };
    expectProtocolError(() => verifyRound1Bundle(other.plan, ctx.directory, relabelled), 'BAD_SIGNATURE');
  });

  it('rejects a round-1 signature from another participant', () => {
    const ctx = setup(4);
    const [a, b] = ctx.parties;
    const bundle = participantRound1({ plan: ctx.plan, self: a!.id, signing: b!.signing, directory: ctx.directory, aggregate: [1n, 2n, 3n] });
    expectProtocolError(() => verifyRound1Bundle(ctx.plan, ctx.directory, bundle), 'BAD_SIGNATURE');
  });

  it('rejects a share envelope swapped for another recipient’s', () => {
    const ctx = setup(4);
    const accepted = runRound1(ctx);
    const swapped = { ...accepted[0]!.bundle, envelopes: [accepted[0]!.bundle.envelopes[1]!, accepted[0]!.bundle.envelopes[0]!, ...accepted[0]!.bundle.envelopes.slice(2)] };
    expectProtocolError(() => verifyRound1Bundle(ctx.plan, ctx.directory, swapped), 'INVALID_MESSAGE', /does not match its signed digest/);
  });

  it('a committee member cannot open a share addressed to another member', () => {
    const ctx = setup(4);
    const [accepted] = runRound1(ctx);
    const [m0, m1] = ctx.plan.committee;
    const envelope = accepted!.bundle.envelopes[0]!;
    const context = (recipient: string) => ({ jobId: ctx.plan.jobId, round: 1, sender: accepted!.bundle.sender, recipient });
    // The member it is addressed to opens it: one 16-byte field element per coordinate.
    expect(openEnvelope(ctx.party(m0!).encryption, envelope, context(m0!))).toHaveLength(16 * ctx.plan.vectorLength);
    // Another member's key does not, whichever recipient it claims: the AEAD refuses, and says nothing more.
    const refused = expect.objectContaining({ name: 'EnvelopeError', message: 'envelope does not open with this key and context' }) as Error;
    expect(() => openEnvelope(ctx.party(m1!).encryption, envelope, context(m0!))).toThrow(refused);
    expect(() => openEnvelope(ctx.party(m1!).encryption, envelope, context(m1!))).toThrow(refused);
    expect(() => openEnvelope(ctx.party(m1!).encryption, envelope, context(m1!))).toThrow(EnvelopeError);
  });

  it('refuses a second round 2 for the same job with another contributor set (no differencing)', () => {
    const ctx = setup(5);
    const accepted = runRound1(ctx);
    const member = ctx.party(ctx.plan.committee[0]!);
    const answered = new Map<string, string>();
    const memory: MemberMemory = { answeredFor: (job) => answered.get(job) };
    const ask = (subset: typeof accepted) =>
      committeeRound2({
        plan: ctx.plan,
        self: member.id,
        encryption: member.encryption,
        signing: member.signing,
        directory: ctx.directory,
        closed: closeRound1(ctx.plan, subset),
        deliveries: deliveriesFor(
          ctx.plan,
          member.id,
          subset.map((a) => a.bundle),
        ),
        memory,
        reader: COORDINATOR.publicKey,
      });
    const first = ask(accepted);
    answered.set(ctx.plan.jobId, first.closedHash);
    // A redelivered task gets the same share sum (sealed afresh; the worker replays the answer it stored).
    const again = ask(accepted).result;
    const open = (r: Round2Result) => decodeShareVector(openEnvelope(COORDINATOR, r.sealed, { jobId: r.jobId, round: 2, sender: r.sender, recipient: ROUND2_READER }), 3);
    expect({ ...again, sealed: open(again), signature: '' }).toEqual({ ...first.result, sealed: open(first.result), signature: '' });
    expectProtocolError(() => ask(accepted.slice(0, 4)), 'ALREADY_ANSWERED');
  });

  it('refuses round 2 when the deliveries differ from the closed set', () => {
    const ctx = setup(5);
    const accepted = runRound1(ctx);
    const closed = closeRound1(ctx.plan, accepted);
    const member = ctx.party(ctx.plan.committee[0]!);
    const input = {
      plan: ctx.plan,
      self: member.id,
      encryption: member.encryption,
      signing: member.signing,
      directory: ctx.directory,
      closed,
      memory: noMemory,
      reader: COORDINATOR.publicKey,
    };
    const all = deliveriesFor(
      ctx.plan,
      member.id,
      accepted.map((a) => a.bundle),
    );
    expectProtocolError(() => committeeRound2({ ...input, deliveries: all.slice(1) }), 'SET_MISMATCH');
    expectProtocolError(() => committeeRound2({ ...input, deliveries: [...all, all[0]] }), 'SET_MISMATCH');
  });

  it('refuses a share the coordinator re-encrypted (its digest no longer matches the signed bundle)', () => {
    const ctx = setup(4);
    const accepted = runRound1(ctx);
    const closed = closeRound1(ctx.plan, accepted);
    const member = ctx.party(ctx.plan.committee[0]!);
    const deliveries = deliveriesFor(
      ctx.plan,
      member.id,
      accepted.map((a) => a.bundle),
    );
    const forged = sealEnvelope(member.encryption.publicKey, encodeShareVector([0n, 0n, 0n]), {
      jobId: ctx.plan.jobId,
      round: 1,
      sender: deliveries[0]!.sender,
      recipient: member.id,
    });
    const tampered = [{ ...deliveries[0]!, envelope: forged }, ...deliveries.slice(1)];
    expectProtocolError(
      () =>
        committeeRound2({
          plan: ctx.plan,
          self: member.id,
          encryption: member.encryption,
          signing: member.signing,
          directory: ctx.directory,
          closed,
          deliveries: tampered,
          memory: noMemory,
          reader: COORDINATOR.publicKey,
        }),
      'INVALID_MESSAGE',
    );
  });

  it('detects and names a committee member whose share sum is off', () => {
    const ctx = setup(7); // k = 7, t = 4: one bad answer is nameable (7 ≥ 4 + 2)
    const accepted = runRound1(ctx);
    const { closed, answers } = runRound2(ctx, accepted);
    const cheater = ctx.party(answers[2]!.sender);
    const { signature: _sig, ...signed } = answers[2]!;
    const context = { jobId: ctx.plan.jobId, round: 2, sender: cheater.id, recipient: ROUND2_READER };
    const shareSum = decodeShareVector(openEnvelope(COORDINATOR, signed.sealed, context), 3);
    const bumped = { ...signed, sealed: sealEnvelope(COORDINATOR.publicKey, encodeShareVector(shareSum.map((v, i) => (i === 1 ? v + 1n : v))), context) };
    const bad: Round2Result = { ...bumped, signature: signMessage(cheater.signing.privateKey, DOMAIN.round2, bumped) };
    const outcome = finalizeShamir(ctx.plan, closed, ctx.directory, [...answers.slice(0, 2), bad, ...answers.slice(3)], COORDINATOR);
    expect(outcome.badMembers).toEqual([cheater.id]);
    expect(outcome.totals).toEqual(expectedTotals([0, 1, 2, 3, 4, 5, 6]));
  });

  it('ignores a round-2 answer signed by someone other than the member', () => {
    const ctx = setup(5);
    const accepted = runRound1(ctx);
    const { closed, answers } = runRound2(ctx, accepted);
    const { signature: _sig, ...signed } = answers[0]!;
    const impostor = ctx.party(answers[1]!.sender);
    const forged = { ...signed, signature: signMessage(impostor.signing.privateKey, DOMAIN.round2, signed) };
    const swappedSignature = { ...answers[2]!, signature: answers[3]!.signature };
    expectProtocolError(() => finalizeShamir(ctx.plan, closed, ctx.directory, [forged, answers[1]!, swappedSignature], COORDINATOR), 'QUORUM', /1 of 5/);
  });

  it('validates plans: threshold and committee bounds, enrolled minimum', () => {
    const base = {
      jobId: 'j',
      queryHash: '0'.repeat(64),
      vectorLength: 1,
      participants: ['a', 'b', 'c'],
      minParticipants: 3,
      seed: SEED,
      deadlines: { round1: 1, round2: 2 },
    };
    expect(() => planShamir({ ...base, threshold: 4 })).toThrow(/threshold must be from 2 to 3/);
    expect(() => planShamir({ ...base, committeeSize: 4 })).toThrow(/committee size/);
    expect(() => planShamir({ ...base, minParticipants: 4 })).toThrow(/3 participants enrolled, the study requires at least 4/);
    expect(() => planShamir({ ...base, participants: ['a', 'a', 'b'] })).toThrow(/duplicate/);
  });

  it('refuses a threshold below a majority of the committee, and below the study floor', () => {
    const base = {
      jobId: 'j',
      queryHash: '0'.repeat(64),
      vectorLength: 1,
      participants: ['a', 'b', 'c', 'd', 'e'],
      minParticipants: 3,
      seed: SEED,
      deadlines: { round1: 1, round2: 2 },
    };
    expect(() => planShamir({ ...base, threshold: 1 })).toThrow('threshold 1 is below the floor: a majority of the committee of 5 (⌊k/2⌋ + 1) is 3');
    expect(() => planShamir({ ...base, threshold: 2 })).toThrow(/below the floor/);
    expect(planShamir(base).threshold).toBe(3);
    expect(planShamir({ ...base, minThreshold: 4 }).threshold).toBe(4);
    expect(() => planShamir({ ...base, minThreshold: 4, threshold: 3 })).toThrow("threshold 3 is below the floor: the study's floor is 4");
    expect(() => planShamir({ ...base, minThreshold: 6 })).toThrow('threshold: the study requires at least 6, more than the committee of 5');
    for (let k = 1; k <= 10; k++) expect(thresholdFloor(k)).toBe(Math.floor(k / 2) + 1);
    // Two disjoint sets of members of size ≥ the floor cannot exist in one committee.
    for (let k = 1; k <= 10; k++) expect(2 * thresholdFloor(k)).toBeGreaterThan(k);
  });

  it('derives the committee seed from the ledger root and the nonce the researcher committed to', () => {
    const nonce = 'ab'.repeat(32);
    const root = new Uint8Array(32).fill(7);
    const seed = committeeSeed(root, nonce);
    expect(seed).toMatch(/^[0-9a-f]{64}$/);
    expect(committeeSeed(root, nonce)).toBe(seed);
    // Either party's input alone changes the seed.
    expect(committeeSeed(new Uint8Array(32).fill(8), nonce)).not.toBe(seed);
    expect(committeeSeed(root, 'ac'.repeat(32))).not.toBe(seed);
    expect(nonceCommitment(nonce)).toMatch(/^[0-9a-f]{64}$/);
    expect(nonceCommitment(nonce)).not.toBe(nonceCommitment('ac'.repeat(32)));
    expect(() => nonceCommitment('AB'.repeat(32))).toThrow(/64 lowercase hex/);
    expect(() => committeeSeed(new Uint8Array(31), nonce)).toThrow(/32 bytes/);
    // The draw from a seed is fixed: the same participants, in any order, give the same committee.
    const ids = Array.from({ length: 14 }, (_, i) => `p${i}`);
    expect(drawCommittee([...ids].reverse(), 10, seed)).toEqual(drawCommittee(ids, 10, seed));
    expect(drawCommittee(ids, 10, seed)).not.toEqual(drawCommittee(ids, 10, committeeSeed(root, 'cd'.repeat(32))));
    expect(committeeSize(3)).toBe(3);
    expect(committeeSize(25)).toBe(MAX_COMMITTEE);
  });
});
