import { UnrecoverableError } from 'bullmq';
import { generateKeyPair, publicKeyBase64Url, signMessage, type KeyPair } from '@confide/crypto';
import { planSchema, planShamir, sha256Hex } from '@confide/protocol';
import { seededRandom } from '../../../test/support/randomness';
import { TASK } from './names';
import { openTask, signTask, TaskRejected, type SignedTask, type TaskOf, type TaskPayload } from './payloads';

const rng = seededRandom('queue/payloads');
const coordinator = generateKeyPair('ed25519', rng);
const mallory = generateKeyPair('ed25519', rng);
const NOW = Date.UTC(2030, 0, 15, 12);
const STUDY = 'salaries-2030';
const SITES = ['hospital-1', 'hospital-2', 'hospital-3'];
const members = new Map(SITES.map((id) => [id, { encryption: generateKeyPair('x25519', rng), signing: generateKeyPair('ed25519', rng) }]));
const PRIVACY = { minParticipants: 3, minGroupSize: 5, dp: null };
/** Ledger evidence as a task carries it; openTask checks only its shape (participants verify it, libs/protocol authorize). */
const EVIDENCE = { checkpoint: 'confide/0\n8\nAAAA\n', entries: [{ index: 7, entry: Buffer.from('{}').toString('base64'), proof: [] }] };
const directory = SITES.map((id) => ({
  id,
  encryptionKey: publicKeyBase64Url(members.get(id)!.encryption.publicKey),
  signingKey: publicKeyBase64Url(members.get(id)!.signing.publicKey),
}));

function planFor(queryId: string) {
  const plan = planShamir({
    jobId: queryId,
    queryHash: sha256Hex(`query ${queryId}`),
    vectorLength: 2,
    participants: SITES,
    minParticipants: 3,
    seed: 'c0ffee'.repeat(6),
    deadlines: { round1: NOW + 60_000, round2: NOW + 120_000 },
  });
  // The wire form (mutable arrays), exactly as a worker parses it.
  return planSchema.parse(plan);
}

function round1Task(overrides: Partial<TaskOf<'shamir.round1'>> = {}): TaskOf<'shamir.round1'> {
  const plan = planFor('q-7f3a');
  return {
    kind: TASK.shamirRound1,
    queryId: 'q-7f3a',
    studyId: STUDY,
    participantId: 'hospital-1',
    issuedAt: NOW,
    deadline: plan.deadlines.round1,
    plan,
    query: { select: [{ stat: 'sum', field: 'salary' }, { stat: 'count', field: 'salary' }], privacy: PRIVACY },
    directory,
    evidence: EVIDENCE,
    ...overrides,
  };
}

function round2Task(): TaskOf<'shamir.round2'> {
  const plan = planFor('q-7f3a');
  return {
    kind: TASK.shamirRound2,
    queryId: 'q-7f3a',
    studyId: STUDY,
    participantId: plan.committee[0]!,
    issuedAt: NOW + 61_000,
    deadline: plan.deadlines.round2,
    plan,
    query: { select: [{ stat: 'sum', field: 'salary' }], privacy: PRIVACY },
    closed: { jobId: 'q-7f3a', planHash: sha256Hex('plan'), contributors: [] },
    deliveries: [],
    directory,
    evidence: EVIDENCE,
  };
}

type Expectation = Parameters<typeof openTask>[1];
const expectFor = (participantId = 'hospital-1'): Expectation => ({ coordinatorKey: coordinator.publicKey, participantId, studyId: STUDY, now: NOW });

/** Job data as it comes back out of Redis: plain JSON, no shared references with what was signed. */
const viaRedis = (data: unknown): unknown => JSON.parse(JSON.stringify(data));

function rejection(data: unknown, expect = expectFor()): TaskRejected {
  try {
    openTask(data, expect);
  } catch (err) {
    if (err instanceof TaskRejected) return err;
    throw err;
  }
  throw new Error('the task was accepted');
}

describe('signTask / openTask', () => {
  it.each<[string, () => TaskPayload]>([
    ['round 1', () => round1Task()],
    ['round 2', () => round2Task()],
  ])('opens a %s task the coordinator signed, as it comes out of Redis', (_, build) => {
    const task = build();
    const opened = openTask(viaRedis(signTask(coordinator, task)), { ...expectFor(task.participantId), now: task.issuedAt });
    expect(opened).toEqual(task);
  });

  it('rejects a task signed by someone other than the coordinator', () => {
    expect(rejection(viaRedis(signTask(mallory, round1Task()))).message).toMatch(/signature/);
  });

  it('rejects a coordinator signature made for another message type (domain separation)', () => {
    const task = round1Task();
    const signed: SignedTask = { task, signature: signMessage(coordinator.privateKey, 'shamir/round1', task) };
    expect(rejection(viaRedis(signed)).message).toMatch(/signature/);
  });

  it.each<[string, (t: TaskOf<'shamir.round1'>) => void]>([
    ['the deadline', (t) => (t.deadline += 3_600_000)],
    ['the participant', (t) => (t.participantId = 'hospital-2')],
    ['the query', (t) => (t.query = { select: [{ stat: 'mean', field: 'salary' }], privacy: PRIVACY })],
    ['the ledger evidence', (t) => (t.evidence = { ...t.evidence, entries: [] })],
    ['a directory key', (t) => (t.directory[1]!.encryptionKey = directory[0]!.encryptionKey)],
    ['the committee', (t) => (t.plan = { ...t.plan, committee: [...t.plan.committee].reverse() })],
  ])('rejects a signed task whose %s was changed in Redis', (_, tamper) => {
    const signed = viaRedis(signTask(coordinator, round1Task())) as { task: TaskOf<'shamir.round1'>; signature: string };
    tamper(signed.task);
    expect(rejection(signed, expectFor(signed.task.participantId)).message).toMatch(/signature/);
  });

  it('signs and opens a task whose query holds numbers that are not integers (an ε of 0.5, a bin edge of 2.5)', () => {
    const query = {
      select: [{ stat: 'histogram', field: 'salary', edges: [0, 2.5, 1e21] }],
      where: [{ field: 'salary', op: '>=', value: 50000.5 }],
      privacy: { minParticipants: 3, minGroupSize: 5, dp: { mechanism: 'laplace' as const, epsilon: 0.5 } },
    };
    const task = round1Task({ query });
    const signed = viaRedis(signTask(coordinator, task)) as { task: TaskOf<'shamir.round1'>; signature: string };
    expect(openTask(signed, expectFor())).toEqual(task);
    // Changed in Redis, the same fractional ε no longer verifies.
    signed.task.query.privacy.dp = { mechanism: 'laplace', epsilon: 0.25 };
    expect(rejection(signed).message).toMatch(/signature/);
  });

  it('rejects a task for another participant', () => {
    const signed = signTask(coordinator, round1Task({ participantId: 'hospital-2' }));
    expect(rejection(viaRedis(signed), expectFor('hospital-1')).message).toMatch(/addressed to participant hospital-2/);
  });

  it('rejects a task for another study', () => {
    const signed = signTask(coordinator, round1Task({ studyId: 'other-study' }));
    expect(rejection(viaRedis(signed)).message).toMatch(/for study other-study/);
  });

  it('rejects a task whose plan is for another query', () => {
    const signed = signTask(coordinator, round1Task({ plan: planFor('q-other') }));
    expect(rejection(viaRedis(signed)).message).toMatch(/plan is for another query/);
  });

  it('rejects an expired task, and accepts one up to its deadline', () => {
    const task = round1Task();
    const signed = viaRedis(signTask(coordinator, task));
    expect(openTask(signed, { ...expectFor(), now: task.deadline })).toEqual(task);
    expect(rejection(signed, { ...expectFor(), now: task.deadline + 1 }).message).toMatch(/expired/);
  });

  it('rejects an expired task with a deadline outside the Date range as a TaskRejected', () => {
    const signed = viaRedis(signTask(coordinator, round1Task({ deadline: -9_000_000_000_000_000 })));
    expect(rejection(signed).message).toMatch(/expired/);
  });

  it('rejects a task issued in the future, beyond the allowed clock skew', () => {
    const early = viaRedis(signTask(coordinator, round1Task({ issuedAt: NOW + 30_000 })));
    expect(openTask(early, expectFor()).issuedAt).toBe(NOW + 30_000);
    const future = viaRedis(signTask(coordinator, round1Task({ issuedAt: NOW + 61_000 })));
    expect(rejection(future).message).toMatch(/issued in the future/);
    expect(rejection(early, { ...expectFor(), skewMs: 0 }).message).toMatch(/issued in the future/);
  });

  it.each<[string, (signed: { task: Record<string, unknown>; signature: string } & Record<string, unknown>) => unknown]>([
    ['an extra key in the task', (s) => ({ ...s, task: { ...s.task, note: 'x' } })],
    ['an extra key beside the task', (s) => ({ ...s, replyTo: 'elsewhere' })],
    ['an extra key in the plan', (s) => ({ ...s, task: { ...s.task, plan: { ...(s.task.plan as object), extra: 1 } } })],
    ['an unknown kind', (s) => ({ ...s, task: { ...s.task, kind: 'shamir.round3' } })],
    ['a round-1 body under the round-2 kind', (s) => ({ ...s, task: { ...s.task, kind: TASK.shamirRound2 } })],
    ['a missing signature', (s) => ({ task: s.task })],
    ['a signature that is not base64url', (s) => ({ ...s, signature: 'not base64url!' })],
    ['a participant id with a colon', (s) => ({ ...s, task: { ...s.task, participantId: 'hospital:1' } })],
    ['a fractional deadline', (s) => ({ ...s, task: { ...s.task, deadline: NOW + 0.5 } })],
    ['an empty directory', (s) => ({ ...s, task: { ...s.task, directory: [] } })],
  ])('rejects a malformed task: %s', (_, mangle) => {
    const signed = viaRedis(signTask(coordinator, round1Task())) as Parameters<typeof mangle>[0];
    expect(rejection(mangle(signed)).message).toMatch(/^malformed task/);
  });

  it.each([null, undefined, 'task', 42, [], {}])('rejects job data that is not a signed task: %p', (data) => {
    expect(rejection(data).message).toMatch(/^malformed task/);
  });

  it('makes a rejected task an UnrecoverableError, so BullMQ fails the job without retrying it', () => {
    const err = rejection(viaRedis(signTask(mallory, round1Task())));
    expect(err).toBeInstanceOf(UnrecoverableError);
    expect(err.name).toBe('TaskRejected');
  });

  it('refuses to sign with a key that is not Ed25519', () => {
    const x25519: KeyPair = members.get('hospital-1')!.encryption;
    expect(() => signTask(x25519, round1Task())).toThrow(TypeError);
  });
});
