import { createHash } from 'node:crypto';
import { UnrecoverableError } from 'bullmq';
import { generateKeyPair, publicKeyBase64Url, signMessage } from '@confide/crypto';
import { isDeeplyFrozen, ledgerValue, planSchema, planShamir, sha256Hex } from '@confide/protocol';
import { seededRandom } from '../../../test/support/randomness';
import { TASK } from './names';
import { signTask, TaskRejected, type TaskOf, type TaskPayload } from './payloads';
import { openDispatchedTask, SharedParts, signTaskRefs, TaskPartMissing, type TaskRef } from './task-refs';

const rng = seededRandom('queue/task-refs');
const coordinator = generateKeyPair('ed25519', rng);
const mallory = generateKeyPair('ed25519', rng);
const NOW = Date.UTC(2030, 0, 15, 12);
const STUDY = 'salaries-2030';
const SITES = Array.from({ length: 40 }, (_, i) => `hospital-${i + 1}`);
const PRIVACY = { minParticipants: 3, minGroupSize: 5, dp: { mechanism: 'laplace' as const, epsilon: 0.5 } };
const EVIDENCE = { checkpoint: 'confide/0\n8\nAAAA\n', entries: [{ index: 7, entry: Buffer.from('{}').toString('base64'), proof: [] }] };
const VIEW = { from: 3, consistency: [], entries: [{ index: 5, entry: Buffer.from('{"x":1}').toString('base64'), proof: [] }] };
const member = { encryption: generateKeyPair('x25519', rng), signing: generateKeyPair('ed25519', rng) };
const directory = [{ id: 'hospital-1', encryptionKey: publicKeyBase64Url(member.encryption.publicKey), signingKey: publicKeyBase64Url(member.signing.publicKey) }];

const plan = planSchema.parse(
  planShamir({
    jobId: 'q-7f3a',
    queryHash: sha256Hex('query q-7f3a'),
    vectorLength: 2,
    participants: SITES,
    minParticipants: 3,
    seed: 'c0ffee'.repeat(6),
    deadlines: { round1: NOW + 60_000, round2: NOW + 120_000 },
  }),
);
const query = { select: [{ stat: 'mean', field: 'salary' }], privacy: PRIVACY };

/** A round's tasks as the coordinator prepares them: one plan, query and evidence object shared by all. */
function round1Tasks(): TaskOf<'shamir.round1'>[] {
  return SITES.map((participantId, i) => ({
    kind: TASK.shamirRound1,
    queryId: 'q-7f3a',
    studyId: STUDY,
    participantId,
    issuedAt: NOW,
    deadline: plan.deadlines.round1,
    plan,
    query,
    directory,
    evidence: EVIDENCE,
    ...(i % 2 === 0 ? { view: VIEW } : {}),
  }));
}

function round2Task(): TaskOf<'shamir.round2'> {
  return {
    kind: TASK.shamirRound2,
    queryId: 'q-7f3a',
    studyId: STUDY,
    participantId: plan.committee[0]!,
    issuedAt: NOW + 61_000,
    deadline: plan.deadlines.round2,
    plan,
    query,
    closed: { jobId: 'q-7f3a', planHash: sha256Hex('plan'), contributors: [] },
    deliveries: [],
    directory,
    evidence: EVIDENCE,
  };
}

/** JSON as Redis gives it back: no object shared with what was signed. */
const viaRedis = (data: unknown): unknown => JSON.parse(JSON.stringify(data));
const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');
const expectFor = (participantId: string, now = NOW) => ({ coordinatorKey: coordinator.publicKey, participantId, studyId: STUDY, now });

/** Redis as a worker sees it: the parts by hash, and how many GETs it was asked. */
function store(parts: Map<string, string>) {
  const counted = { gets: 0 };
  const fetch = (hash: string): Promise<string | null> => {
    counted.gets++;
    return Promise.resolve(parts.get(hash) ?? null);
  };
  return { fetch, counted };
}

/** Signs a reference as a (malicious) coordinator could: anything, with the real key. */
const signRef = (ref: TaskRef) => ({ ref, signature: signMessage(coordinator.privateKey, 'task-ref', ledgerValue(ref)) });

async function rejection(open: Promise<unknown>): Promise<Error> {
  try {
    await open;
  } catch (err) {
    return err as Error;
  }
  throw new Error('the task was accepted');
}

describe('signTaskRefs / openDispatchedTask', () => {
  it('sends a round by reference: each task opens to exactly the task signed whole, its shared parts stored once', async () => {
    const tasks: TaskPayload[] = [...round1Tasks(), round2Task()];
    const { refs, parts } = signTaskRefs(coordinator, tasks);
    // One part for round 1's plan, query, directory and evidence; one for the view half of them share; one for round 2.
    expect(parts.size).toBe(3);
    for (const [hash, text] of parts) expect(sha256(text)).toBe(hash);
    const { fetch, counted } = store(parts);
    const cache = new SharedParts();
    for (const [i, ref] of refs.entries()) {
      const task = tasks[i]!;
      expect(await openDispatchedTask(viaRedis(ref), expectFor(task.participantId, task.issuedAt), fetch, cache)).toEqual(viaRedis(task));
    }
    // Fetched once each for the whole round, by every worker of this process.
    expect(counted.gets).toBe(3);
    // A reference is its own fields and hashes: the plan listing every participant is not in it.
    const whole = JSON.stringify(signTask(coordinator, tasks[0]!)).length;
    expect(JSON.stringify(refs[0]).length).toBeLessThan(whole / 4);
    expect(JSON.stringify(refs[0])).not.toContain('hospital-40');
  });

  it('shares one part among tasks whose fields are fresh but equal objects (a query built for each task)', () => {
    const tasks = round1Tasks().map((t) => ({ ...t, query: JSON.parse(JSON.stringify(t.query)) as typeof t.query }));
    const { refs, parts } = signTaskRefs(coordinator, tasks);
    expect(parts.size).toBe(2);
    expect(new Set(refs.map((r) => r.ref.shared)).size).toBe(1);
    // And a task whose field differs gets a part of its own.
    const other = signTaskRefs(coordinator, [...tasks, { ...tasks[0]!, query: { ...tasks[0]!.query, select: [{ stat: 'sum', field: 'salary' }] } }]);
    expect(new Set(other.refs.map((r) => r.ref.shared)).size).toBe(2);
  });

  it('still opens a task signed whole (an older coordinator\'s outbox, and every test that forges one)', async () => {
    const task = round1Tasks()[1]!;
    const { fetch, counted } = store(new Map());
    expect(await openDispatchedTask(viaRedis(signTask(coordinator, task)), expectFor(task.participantId), fetch, new SharedParts())).toEqual(viaRedis(task));
    expect(counted.gets).toBe(0);
  });

  it('rejects a reference signed by another key, and a whole task\'s signature moved onto a reference (domains differ)', async () => {
    const task = round1Tasks()[1]!;
    const { refs, parts } = signTaskRefs(coordinator, [task]);
    const { fetch } = store(parts);
    const forged = signTaskRefs(mallory, [task]).refs[0]!;
    expect((await rejection(openDispatchedTask(viaRedis(forged), expectFor(task.participantId), fetch, new SharedParts()))).message).toBe('task signature does not verify with the coordinator key');
    const moved = { ref: refs[0]!.ref, signature: signTask(coordinator, task).signature };
    expect(await rejection(openDispatchedTask(viaRedis(moved), expectFor(task.participantId), fetch, new SharedParts()))).toBeInstanceOf(TaskRejected);
  });

  it('rejects a part whose text does not hash to the signed reference (Redis or its operator swapped it), and caches nothing', async () => {
    const task = round1Tasks()[1]!;
    const { refs, parts } = signTaskRefs(coordinator, [task]);
    const [hash, text] = [...parts][0]!;
    const swapped = new Map([[hash, text.replace('"hospital-2"', '"hospital-x"')]]);
    const cache = new SharedParts();
    const err = await rejection(openDispatchedTask(viaRedis(refs[0]), expectFor(task.participantId), store(swapped).fetch, cache));
    expect(err).toBeInstanceOf(TaskRejected);
    expect(err).toBeInstanceOf(UnrecoverableError);
    expect(err.message).toMatch(/does not hash to its reference/);
    // The real part is fetched afresh, not taken from a cache the forged text went into.
    expect(await openDispatchedTask(viaRedis(refs[0]), expectFor(task.participantId), store(parts).fetch, cache)).toEqual(viaRedis(task));
  });

  it('fails, for a retry and not as a refusal, when a part is not in Redis', async () => {
    const task = round1Tasks()[1]!;
    const { refs } = signTaskRefs(coordinator, [task]);
    const err = await rejection(openDispatchedTask(viaRedis(refs[0]), expectFor(task.participantId), store(new Map()).fetch, new SharedParts()));
    expect(err).toBeInstanceOf(TaskPartMissing);
    expect(err).not.toBeInstanceOf(UnrecoverableError);
  });

  it('rejects a task for someone else, or expired, before it fetches anything', async () => {
    const task = round1Tasks()[1]!;
    const { refs, parts } = signTaskRefs(coordinator, [task]);
    const { fetch, counted } = store(parts);
    expect((await rejection(openDispatchedTask(viaRedis(refs[0]), expectFor('hospital-3'), fetch, new SharedParts()))).message).toBe('task is addressed to participant hospital-2');
    expect((await rejection(openDispatchedTask(viaRedis(refs[0]), { ...expectFor(task.participantId), studyId: 'other' }, fetch, new SharedParts()))).message).toMatch(/is for study salaries-2030/);
    expect(counted.gets).toBe(0);
    expect((await rejection(openDispatchedTask(viaRedis(refs[0]), expectFor(task.participantId, task.deadline + 1), fetch, new SharedParts()))).message).toMatch(/task expired/);
    // Expired is a refusal even when its parts are gone from Redis (they expire an hour after the deadline): a worker
    // back after a long absence says "expired", not "part missing", and asks Redis nothing.
    const gone = await rejection(openDispatchedTask(viaRedis(refs[0]), expectFor(task.participantId, task.deadline + 7_200_000), store(new Map()).fetch, new SharedParts()));
    expect(gone).toBeInstanceOf(TaskRejected);
    expect(gone.message).toMatch(/task expired/);
    expect(counted.gets).toBe(0);
  });

  it.each<[string, (part: Record<string, unknown>) => Record<string, unknown>]>([
    ['names another participant', (p) => ({ ...p, participantId: 'hospital-3' })],
    ['carries round 2\'s deliveries', (p) => ({ ...p, deliveries: [] })],
    ['carries a view beside the reference\'s', (p) => ({ ...p, view: VIEW })],
  ])('rejects a shared part that %s: only the signed reference holds a task\'s own fields', async (_, change) => {
    const task = round1Tasks()[1]!;
    const { plan: p, query: q, directory: d, evidence: e } = task;
    const text = JSON.stringify(change({ directory: d, evidence: e, plan: p, query: q }));
    const hash = sha256(text);
    const ref: TaskRef = { kind: task.kind, queryId: task.queryId, studyId: STUDY, participantId: task.participantId, issuedAt: NOW, deadline: task.deadline, shared: hash };
    const err = await rejection(openDispatchedTask(viaRedis(signRef(ref)), expectFor(task.participantId), store(new Map([[hash, text]])).fetch, new SharedParts()));
    expect(err.message).toMatch(/shared part holds/);
  });

  it('rejects a view part that holds more than the view, and a part that is not a JSON object', async () => {
    const task = round1Tasks()[0]!;
    const { refs, parts } = signTaskRefs(coordinator, [task]);
    const viewText = JSON.stringify({ view: VIEW, plan: 'extra' });
    const viewHash = sha256(viewText);
    const withView = new Map([...parts, [viewHash, viewText]]);
    const ref = signRef({ ...refs[0]!.ref, view: viewHash });
    expect((await rejection(openDispatchedTask(viaRedis(ref), expectFor(task.participantId), store(withView).fetch, new SharedParts()))).message).toMatch(/view part must hold its view and nothing else/);
    const array = '[1,2]';
    const arrayRef = signRef({ ...refs[0]!.ref, shared: sha256(array) });
    expect((await rejection(openDispatchedTask(viaRedis(arrayRef), expectFor(task.participantId), store(new Map([[sha256(array), array]])).fetch, new SharedParts()))).message).toMatch(/not a JSON object/);
  });

  it('rejects deliveries on a reference that is not round 2\'s, and a round-2 reference without them', async () => {
    const [one, two] = [round1Tasks()[1]!, round2Task()];
    const { refs, parts } = signTaskRefs(coordinator, [one, two]);
    const { fetch, counted } = store(parts);
    const withDeliveries = signRef({ ...refs[0]!.ref, deliveries: [] });
    expect((await rejection(openDispatchedTask(viaRedis(withDeliveries), expectFor(one.participantId), fetch, new SharedParts()))).message).toMatch(/deliveries belong to round-2 tasks/);
    const { deliveries: _d, ...bare } = refs[1]!.ref;
    expect((await rejection(openDispatchedTask(viaRedis(signRef(bare)), expectFor(two.participantId, two.issuedAt), fetch, new SharedParts()))).message).toMatch(/every round-2 task has them/);
    expect(counted.gets).toBe(0);
  });

  it('rejects a task the parts make up that its schema refuses (a strict schema: no extra field)', async () => {
    const task = round1Tasks()[1]!;
    const text = JSON.stringify({ directory: task.directory, evidence: task.evidence, plan: task.plan, query: task.query, surprise: 1 });
    const ref = signRef({ kind: task.kind, queryId: task.queryId, studyId: STUDY, participantId: task.participantId, issuedAt: NOW, deadline: task.deadline, shared: sha256(text) });
    const err = await rejection(openDispatchedTask(viaRedis(ref), expectFor(task.participantId), store(new Map([[sha256(text), text]])).fetch, new SharedParts()));
    expect(err.message).toMatch(/^malformed task/);
  });
});

describe('SharedParts', () => {
  const asIs = (part: Record<string, unknown>) => part;

  it('fetches a part once for workers asking at the same time, and keeps at most its count of parts', async () => {
    const texts = ['{"a":1}', '{"a":2}', '{"a":3}'];
    const parts = new Map(texts.map((t) => [sha256(t), t]));
    const { fetch, counted } = store(parts);
    const cache = new SharedParts(2);
    const [first] = texts.map(sha256);
    const got = await Promise.all(Array.from({ length: 10 }, () => cache.get(first!, 'x', fetch, asIs)));
    expect(counted.gets).toBe(1);
    expect(new Set(got).size).toBe(1);
    for (const t of texts) await cache.get(sha256(t), 'x', fetch, asIs);
    expect(counted.gets).toBe(3);
    // The first went out when the third came in (two kept): asked again, it is fetched again.
    await cache.get(first!, 'x', fetch, asIs);
    expect(counted.gets).toBe(4);
  });

  it('hands every worker the same part frozen all the way down: none can change what the others read', async () => {
    const text = '{"plan":{"participants":["a","b"]}}';
    const cache = new SharedParts();
    const part = await cache.get(sha256(text), 'x', store(new Map([[sha256(text), text]])).fetch, asIs);
    expect(isDeeplyFrozen(part)).toBe(true);
    const participants = (part.plan as { participants: string[] }).participants;
    expect(() => participants.push('mallory')).toThrow(TypeError);
    expect(() => {
      (part.plan as { participants: string[] }).participants = ['mallory'];
    }).toThrow(TypeError);
  });

  it('keeps nothing a check refused: the next worker checks afresh', async () => {
    const text = '{"a":1}';
    const { fetch, counted } = store(new Map([[sha256(text), text]]));
    const cache = new SharedParts();
    await expect(cache.get(sha256(text), 'x', fetch, () => { throw new TaskRejected('no'); })).rejects.toThrow('no');
    expect(await cache.get(sha256(text), 'x', fetch, asIs)).toEqual({ a: 1 });
    expect(counted.gets).toBe(2);
  });
});
