import fc from 'fast-check';
import { aggregatingRound, closedRound, failureKind, openRound, quorumReason, run, step, sweepAction, type RoundEffect, type RoundEvent, type RoundNumber, type RoundSpec, type RoundState } from './machine';
import { NONCE_ROUND, roundSpec } from './specs';

const P = ['pa', 'pb', 'pc', 'pd', 'pe'];
const shamir1: RoundSpec = { protocol: 'shamir', round: 1, expected: P, quorum: 3 };
const shamir2: RoundSpec = { protocol: 'shamir', round: 2, expected: ['pb', 'pc', 'pd'], quorum: 2 };
const paillier1: RoundSpec = { protocol: 'paillier', round: 1, expected: P, quorum: 3 };
const decryption: RoundSpec = { protocol: 'paillier', round: 2, expected: [], quorum: 0, custodians: null };
const custodial: RoundSpec = { protocol: 'paillier', round: 2, expected: [], quorum: 0, custodians: { threshold: 2 } };

const answer = (round: RoundNumber, from: string): RoundEvent => ({ type: 'answer', round, from });
const refusal = (round: RoundNumber, from: string, reason = 'no'): RoundEvent => ({ type: 'refusal', round, from, reason });
const deadline = (round: RoundNumber): RoundEvent => ({ type: 'deadline', round });
const DECISIVE = new Set<RoundEffect['type']>(['plan', 'aggregate', 'close', 'fail']);
const decisions = (effects: readonly RoundEffect[]) => effects.filter((e) => DECISIVE.has(e.type));

/** Freezes a state all the way down, so a step that changed its input would throw. */
function frozen<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const v of Object.values(value)) frozen(v);
    Object.freeze(value);
  }
  return value;
}

describe('round machine: the paths, as the coordinator takes them', () => {
  it('shamir round 1 closes over the answered set once every participant answered or refused, and not before', () => {
    const before = run(openRound(shamir1), [answer(1, 'pa'), answer(1, 'pb'), refusal(1, 'pc', 'task expired'), answer(1, 'pd')]);
    expect(before.effects).toEqual([]);
    expect(before.state.status).toBe('open');
    const after = step(before.state, answer(1, 'pe'));
    expect(after.effects).toEqual([{ type: 'close', round: 1, answered: ['pa', 'pb', 'pd', 'pe'], refused: [{ participantId: 'pc', reason: 'task expired' }] }]);
    expect(after.state.status).toBe('closing');
  });

  it('a round below its quorum at the deadline fails, with the counts and the refusals', () => {
    const t = run(openRound(shamir1), [answer(1, 'pa'), refusal(1, 'pb', 'outside the window'), answer(1, 'pc'), deadline(1)]);
    expect(t.effects).toEqual([{ type: 'fail', round: 1, reason: 'round 1: 2 of 5 participants answered, at least 3 needed', refused: [{ participantId: 'pb', reason: 'outside the window' }] }]);
    expect(t.state.status).toBe('failed');
  });

  it('a round at its quorum when the deadline passes closes over whoever answered', () => {
    const t = run(openRound(shamir1), [answer(1, 'pc'), answer(1, 'pa'), answer(1, 'pe'), deadline(1)]);
    expect(t.effects).toEqual([{ type: 'close', round: 1, answered: ['pc', 'pa', 'pe'], refused: [] }]);
  });

  it("shamir round 2 fails below the threshold in the words finalizeShamir uses", () => {
    const t = run(openRound(shamir2), [answer(2, 'pb'), refusal(2, 'pc', 'malformed round-2 answer'), deadline(2)]);
    expect(t.effects).toEqual([
      { type: 'fail', round: 2, reason: 'round 2: 1 of 3 committee members answered, 2 needed (at most 1 may be missing)', refused: [{ participantId: 'pc', reason: 'malformed round-2 answer' }] },
    ]);
  });

  it("a close the caller's checks refuse (closeRound1, reconstruction) fails the query with their reason", () => {
    const closing = run(openRound(shamir2), [answer(2, 'pb'), answer(2, 'pc'), answer(2, 'pd')]).state;
    const t = step(closing, { type: 'refused', round: 2, reason: 'round 2: the committee share sums do not lie on one polynomial' });
    expect(t.effects).toEqual([{ type: 'fail', round: 2, reason: 'round 2: the committee share sums do not lie on one polynomial', refused: [] }]);
    expect(step(t.state, deadline(2)).effects).toEqual([]);
  });

  it('paillier round 1 hands the answered set to one aggregation, closes when it is done, and fails when it fails', () => {
    const queued = run(openRound(paillier1), P.map((p) => answer(1, p)));
    expect(queued.effects).toEqual([{ type: 'aggregate', answered: P, refused: [] }]);
    expect(queued.state.status).toBe('aggregating');
    // More answers while the aggregation runs change nothing: its set is fixed.
    expect(step(queued.state, answer(1, 'pa')).effects).toEqual([]);
    expect(step(queued.state, deadline(1)).effects).toEqual([]);
    expect(step(queued.state, { type: 'aggregated', round: 1 }).effects).toEqual([{ type: 'close', round: 1, answered: P, refused: [] }]);
    const loaded = aggregatingRound(paillier1, [], [{ participantId: 'pb', reason: 'bad proof' }]);
    expect(step(loaded, { type: 'refused', round: 1, reason: 'aggregation failed: worker crashed' }).effects).toEqual([
      { type: 'fail', round: 1, reason: 'aggregation failed: worker crashed', refused: [{ participantId: 'pb', reason: 'bad proof' }] },
    ]);
  });

  it('shamir round 0 plans on the revealed nonce, and fails at its deadline without one', () => {
    expect(step(openRound(NONCE_ROUND), answer(0, 'q1')).effects).toEqual([{ type: 'plan' }]);
    expect(step(openRound(NONCE_ROUND), deadline(0)).effects).toEqual([{ type: 'fail', round: 0, reason: 'the researcher did not reveal the committee nonce before the deadline', refused: [] }]);
    expect(run(openRound(NONCE_ROUND), [answer(0, 'q1'), deadline(0)]).effects).toEqual([{ type: 'plan' }]);
  });

  it("paillier round 2 closes on the researcher's decryption, or on t distinct custodians, and names who decrypted at the deadline", () => {
    expect(step(openRound(decryption), { type: 'decryption', round: 2 }).effects).toEqual([{ type: 'close', round: 2, answered: [], refused: [] }]);
    expect(step(openRound(decryption), deadline(2)).effects).toEqual([{ type: 'fail', round: 2, reason: 'the researcher did not post the decryption of the aggregate before the deadline', refused: [] }]);
    // With custodians, the researcher's single decryption is not a way in.
    expect(step(openRound(custodial), { type: 'decryption', round: 2 }).effects).toEqual([]);
    const one = run(openRound(custodial), [{ type: 'partial', round: 2, custodian: 3 }, { type: 'partial', round: 2, custodian: 3 }]);
    expect(one.effects).toEqual([]);
    expect(step(one.state, deadline(2)).effects).toEqual([{ type: 'fail', round: 2, reason: '1 of the 2 custodians needed decrypted the aggregate before the deadline (custodian 3)', refused: [] }]);
    expect(step(one.state, { type: 'partial', round: 2, custodian: 1 }).effects).toEqual([{ type: 'close', round: 2, answered: [], refused: [] }]);
    expect(step(openRound(custodial), deadline(2)).effects[0]).toMatchObject({ reason: '0 of the 2 custodians needed decrypted the aggregate before the deadline' });
  });

  it('an answer to a closed round is late unless it was counted; strangers and other rounds are ignored', () => {
    const closed = closedRound(shamir1, ['pa', 'pb', 'pc']);
    expect(step(closed, answer(1, 'pd')).effects).toEqual([{ type: 'late', round: 1, from: 'pd' }]);
    expect(step(closed, refusal(1, 'pe')).effects).toEqual([{ type: 'late', round: 1, from: 'pe' }]);
    expect(step(closed, answer(1, 'pa')).effects).toEqual([]);
    expect(step(closed, answer(1, 'stranger')).effects).toEqual([]);
    expect(step(closed, answer(2, 'pd')).effects).toEqual([]);
  });

  it('plans map to rounds: who is asked and how many answers each round needs', () => {
    const shamirPlan = { protocol: 'shamir', participants: P, committee: ['pb', 'pd'], threshold: 2, minParticipants: 3 } as unknown as Parameters<typeof roundSpec>[0];
    expect(roundSpec(shamirPlan, 1)).toEqual({ protocol: 'shamir', round: 1, expected: P, quorum: 3 });
    expect(roundSpec(shamirPlan, 2)).toEqual({ protocol: 'shamir', round: 2, expected: ['pb', 'pd'], quorum: 2 });
    const paillierPlan = { protocol: 'paillier', participants: P, minParticipants: 4 } as unknown as Parameters<typeof roundSpec>[0];
    expect(roundSpec(paillierPlan, 2, { threshold: 3 })).toEqual({ protocol: 'paillier', round: 2, expected: [], quorum: 0, custodians: { threshold: 3 } });
    expect(() => roundSpec(paillierPlan, 0)).toThrow('a planned paillier query has no round 0');
  });

  it('refuses specs it cannot run: a participant asked twice, a negative quorum, custodians outside paillier round 2', () => {
    expect(() => openRound({ ...shamir1, expected: ['pa', 'pa'] })).toThrow('a round expects each participant once');
    expect(() => openRound({ ...shamir1, quorum: -1 })).toThrow('quorum must be a non-negative integer, got -1');
    expect(() => openRound({ ...shamir1, custodians: { threshold: 2 } })).toThrow('only paillier round 2 is decrypted by custodians');
  });
});

// Property tests: arbitrary orders of answers, refusals, duplicates, strangers, other rounds' events and deadlines.
const answering: RoundSpec[] = [shamir1, shamir2, paillier1, { ...shamir1, quorum: 0 }, { ...paillier1, quorum: 5 }];
const specArb = fc.constantFrom(...answering);
const eventArb = (spec: RoundSpec): fc.Arbitrary<RoundEvent> => {
  const who = fc.constantFrom(...spec.expected, 'stranger');
  const round = fc.constantFrom<RoundNumber>(spec.round, spec.round, spec.round, spec.round === 1 ? 2 : 1);
  return fc.oneof(
    { weight: 5, arbitrary: fc.record({ type: fc.constant('answer' as const), round, from: who }) },
    { weight: 3, arbitrary: fc.record({ type: fc.constant('refusal' as const), round, from: who, reason: fc.constantFrom('expired', 'bad signature') }) },
    { weight: 1, arbitrary: fc.record({ type: fc.constant('deadline' as const), round }) },
  );
};
const scenario = specArb.chain((spec) => fc.tuple(fc.constant(spec), fc.array(eventArb(spec), { maxLength: 25 })));

/** Who answered or refused first, per participant, among this round's events before `until` (exclusive). */
function firstWords(spec: RoundSpec, events: readonly RoundEvent[]) {
  const answered: string[] = [];
  const refused: string[] = [];
  for (const e of events) {
    if (e.round !== spec.round || (e.type !== 'answer' && e.type !== 'refusal') || !spec.expected.includes(e.from)) continue;
    if (answered.includes(e.from) || refused.includes(e.from)) continue;
    (e.type === 'answer' ? answered : refused).push(e.from);
  }
  return { answered, refused };
}

describe('round machine: properties over event orders, duplicates and deadlines', () => {
  it('decides at most once, whatever arrives, and never changes the state it is given', () => {
    fc.assert(
      fc.property(scenario, ([spec, events]) => {
        const start = frozen(openRound(spec));
        const t = run(start, frozen(events));
        expect(decisions(t.effects).length).toBeLessThanOrEqual(1);
        expect(start.status).toBe('open');
      }),
    );
  });

  it('a round decides before its deadline only once everyone asked has answered or refused', () => {
    fc.assert(
      fc.property(scenario, ([spec, events]) => {
        let state: RoundState = openRound(spec);
        for (let i = 0; i < events.length; i++) {
          const t = step(state, events[i]!);
          if (decisions(t.effects).length) {
            const seen = events.slice(0, i + 1);
            const { answered, refused } = firstWords(spec, seen);
            const deadlineSeen = seen.some((e) => e.type === 'deadline' && e.round === spec.round);
            expect(deadlineSeen || answered.length + refused.length === spec.expected.length).toBe(true);
            return;
          }
          state = t.state;
        }
      }),
    );
  });

  it('every round has ended once its deadline is seen: never open after it', () => {
    fc.assert(
      fc.property(scenario, fc.nat(25), ([spec, events], at) => {
        const withDeadline = [...events.slice(0, at), deadline(spec.round), ...events.slice(at)];
        const t = run(openRound(spec), withDeadline);
        expect(t.state.status).not.toBe('open');
        expect(decisions(t.effects)).toHaveLength(1);
      }),
    );
  });

  it('the decision counts each participant once, only the asked, by its first word, and meets the quorum or fails naming the counts', () => {
    fc.assert(
      fc.property(scenario, ([spec, events]) => {
        const all = [...events, deadline(spec.round)];
        const t = run(openRound(spec), all);
        const [decision] = decisions(t.effects);
        // The decision is taken at the first point the round could end; what came before that point is what counts.
        let cut = 0;
        let s: RoundState = openRound(spec);
        for (; cut < all.length; cut++) {
          const next = step(s, all[cut]!);
          s = next.state;
          if (decisions(next.effects).length) break;
        }
        const { answered, refused } = firstWords(spec, all.slice(0, cut + 1));
        if (answered.length >= spec.quorum) {
          expect(decision?.type).toBe(spec.protocol === 'paillier' ? 'aggregate' : 'close');
          expect(decision && 'answered' in decision ? decision.answered : undefined).toEqual(answered);
        } else {
          expect(decision).toMatchObject({ type: 'fail', round: spec.round, reason: quorumReason(spec, answered.length) });
        }
        const refusedIds = decision && 'refused' in decision ? decision.refused.map((r) => r.participantId) : [];
        expect(refusedIds).toEqual(refused);
        expect(new Set([...answered, ...refusedIds]).size).toBe(answered.length + refusedIds.length);
      }),
    );
  });

  it('the order answers arrive in does not change the decision when everyone answers or refuses', () => {
    const complete = specArb.chain((spec) =>
      fc.tuple(
        fc.constant(spec),
        fc.tuple(...spec.expected.map((p) => fc.boolean().map((ok) => (ok ? answer(spec.round, p) : refusal(spec.round, p, `refused by ${p}`))))),
        fc.func(fc.integer()),
      ),
    );
    fc.assert(
      fc.property(complete, fc.array(fc.nat()), ([spec, events, order], dupes) => {
        const shuffled = [...events].sort((a, b) => order(a) - order(b) || 0);
        // Replays (a redelivered job, a second nudge) of anything already seen, anywhere after it.
        const replayed = [...shuffled, ...dupes.map((d) => shuffled[d % shuffled.length]!)];
        const canonical = decisions(run(openRound(spec), events).effects)[0]!;
        const other = decisions(run(openRound(spec), replayed).effects)[0]!;
        expect(other.type).toBe(canonical.type);
        const norm = (e: RoundEffect) => ({
          answered: 'answered' in e ? [...e.answered].sort() : [],
          refused: 'refused' in e ? [...e.refused].sort((a, b) => a.participantId.localeCompare(b.participantId)) : [],
          reason: 'reason' in e ? e.reason : '',
        });
        expect(norm(other)).toEqual(norm(canonical));
      }),
    );
  });

  it("events for another round, or from strangers, change nothing while a round is open", () => {
    fc.assert(
      fc.property(scenario, ([spec, events]) => {
        const state = openRound(spec);
        for (const e of events) {
          const stray = e.round !== spec.round || ('from' in e && !spec.expected.includes(e.from));
          if (!stray) continue;
          expect(step(state, e)).toEqual({ state, effects: [] });
        }
      }),
    );
  });

  it('a closed round reports each uncounted participant late every time it is heard from, and never a counted one', () => {
    fc.assert(
      fc.property(specArb, fc.subarray(P), fc.constantFrom(...P, 'stranger'), (spec, counted, from) => {
        const t = step(closedRound(spec, counted), answer(spec.round, from));
        const late = spec.expected.includes(from) && !counted.includes(from);
        expect(t.effects).toEqual(late ? [{ type: 'late', round: spec.round, from }] : []);
      }),
    );
  });

  it('custodians: the aggregate is combined exactly when t distinct custodians have posted, before the deadline', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 4 }), fc.array(fc.oneof(fc.integer({ min: 1, max: 5 }), fc.constant(0)), { maxLength: 12 }), (threshold, posts) => {
        const spec: RoundSpec = { ...custodial, custodians: { threshold } };
        // 0 stands for the deadline.
        const events: RoundEvent[] = posts.map((c) => (c === 0 ? deadline(2) : { type: 'partial', round: 2, custodian: c }));
        const t = run(openRound(spec), events);
        const first = posts.indexOf(0);
        const before = new Set(first < 0 ? posts : posts.slice(0, first));
        const decision = decisions(t.effects)[0];
        if (before.size >= threshold) expect(decision).toEqual({ type: 'close', round: 2, answered: [], refused: [] });
        else if (first >= 0) expect(decision).toMatchObject({ type: 'fail', round: 2 });
        else expect(decision).toBeUndefined();
      }),
    );
  });
});

describe('sweepAction: what the deadline sweep does with a running query', () => {
  const at = Date.parse('2026-12-07T12:00:00Z');
  const open = { round: 1, status: 'open' as const, deadline: at, openedAt: at - 20_000, closedAt: null };

  it('waits until an open round is a grace period past its deadline, then forces it', () => {
    expect(sweepAction({ round: open, currentRound: 1, createdAt: 0 }, at + 30_000, 30_000)).toEqual({ action: 'wait' });
    expect(sweepAction({ round: open, currentRound: 1, createdAt: 0 }, at + 30_001, 30_000)).toEqual({
      action: 'force',
      reason: 'round 1 did not end by its deadline (2026-12-07T12:00:00.000Z); the deadline sweep ended the query',
    });
  });

  it('fails a query left between states once the grace has passed since its round closed, or since it was created', () => {
    const closed = { ...open, status: 'closed' as const, closedAt: at };
    expect(sweepAction({ round: closed, currentRound: 1, createdAt: 0 }, at + 30_000, 30_000)).toEqual({ action: 'wait' });
    expect(sweepAction({ round: closed, currentRound: 1, createdAt: 0 }, at + 30_001, 30_000)).toEqual({
      action: 'fail',
      reason: 'round 1 is closed and the query never moved on: the coordinator stopped between two steps; the deadline sweep ended it',
    });
    const never = sweepAction({ currentRound: 0, createdAt: at }, at + 30_001, 30_000);
    expect(never.action).toBe('fail');
    expect('reason' in never ? never.reason : '').toMatch(/^round 0 never opened/);
    expect(sweepAction({ currentRound: 0, createdAt: at }, at + 29_000, 30_000)).toEqual({ action: 'wait' });
  });
});

describe('failureKind: what /metrics counts a failed query as', () => {
  const at = Date.parse('2026-12-07T12:00:00Z');
  const open = { round: 1, status: 'open' as const, deadline: at, openedAt: at - 20_000, closedAt: null };
  const reasonOf = (action: ReturnType<typeof sweepAction>): string => (action.action === 'wait' ? '' : action.reason);

  it('names each reason this file builds by its kind', () => {
    expect(failureKind(quorumReason(shamir1, 1))).toBe('too_few_answers');
    expect(failureKind(quorumReason({ protocol: 'shamir', round: 2, expected: ['pb', 'pd', 'pe'], quorum: 2 }, 1))).toBe('too_few_answers');
    expect(failureKind(reasonOf(sweepAction({ round: open, currentRound: 1, createdAt: 0 }, at + 60_000, 30_000)))).toBe('deadline');
    expect(failureKind(reasonOf(sweepAction({ round: { ...open, status: 'closed', closedAt: at }, currentRound: 1, createdAt: 0 }, at + 60_000, 30_000)))).toBe('interrupted');
  });

  it('names a paillier query nobody decrypted, with or without custodians, before the deadline words match', () => {
    const undecrypted = (threshold?: number): string => {
      const spec: RoundSpec = { protocol: 'paillier', round: 2, expected: [], quorum: 0, ...(threshold ? { custodians: { threshold } } : {}) };
      const t = run(openRound(spec), [{ type: 'deadline', round: 2 }]);
      const fail = t.effects.find((e) => e.type === 'fail');
      return fail?.type === 'fail' ? fail.reason : '';
    };
    expect(undecrypted()).toMatch(/deadline/);
    expect(failureKind(undecrypted())).toBe('not_decrypted');
    expect(failureKind(undecrypted(2))).toBe('not_decrypted');
  });

  it('names the aggregation step’s refusals, and anything else as other', () => {
    expect(failureKind('aggregation failed: job stalled more than allowable limit')).toBe('aggregation');
    expect(failureKind('round 1: no aggregate')).toBe('aggregation');
    expect(failureKind('the coordinator was asked to stop')).toBe('other');
  });
});
