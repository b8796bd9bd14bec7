import fc from 'fast-check';
import {
  AGGREGATE,
  AGGREGATION_QUEUE,
  aggregationJobId,
  assertIdPart,
  assertKeyPrefix,
  assertQueueName,
  CONTROL,
  CONTROL_QUEUE,
  deadlineJobId,
  DEFAULT_PREFIX,
  hashTagOf,
  newParticipantId,
  newQueryId,
  parseAggregationJobId,
  parseTaskJobId,
  participantIdOf,
  participantQueue,
  queryOfJob,
  roundOf,
  TASK,
  TASK_ROUND,
  taskJobId,
} from './names';

describe('queue and job names', () => {
  // Renamed once, to Redis Cluster hash tags (README "Redis Cluster"): an upgrade in place re-sends open rounds' tasks.
  it('keeps every name that is already in Redis and in participant ACLs (renaming strands jobs)', () => {
    expect({ DEFAULT_PREFIX, CONTROL_QUEUE, AGGREGATION_QUEUE, AGGREGATE, TASK, CONTROL, queue: participantQueue('hospital-1'), aggregation: aggregationJobId('q-1') }).toEqual({
      DEFAULT_PREFIX: 'confide',
      CONTROL_QUEUE: '{coordinator.control}',
      AGGREGATION_QUEUE: '{coordinator.aggregation}',
      AGGREGATE: 'paillier.aggregate',
      TASK: { shamirRound1: 'shamir.round1', shamirRound2: 'shamir.round2', paillierContribute: 'paillier.contribute' },
      CONTROL: { deadline: 'round.deadline' },
      queue: '{participant.hospital-1}',
      aggregation: 'q-1-aggregate',
    });
  });

  it('gives each participant its own queue', () => {
    expect(participantQueue('hospital-1')).not.toBe(participantQueue('hospital-10'));
  });

  it('gives every queue a Redis Cluster hash tag of its own, so its keys share one slot and queues spread over slots', () => {
    const prefix = DEFAULT_PREFIX;
    const queues = [participantQueue('hospital-1'), participantQueue('hospital-10'), participantQueue(newParticipantId()), CONTROL_QUEUE, AGGREGATION_QUEUE];
    for (const queue of queues) {
      // BullMQ's keys: `<prefix>:<queue>:<suffix>`, a job's hash `<prefix>:<queue>:<job id>`.
      const keys = ['wait', 'active', 'events', 'meta', 'id', taskJobId('q-1', 1, 'hospital-1')].map((suffix) => `${prefix}:${queue}:${suffix}`);
      expect(new Set(keys.map(hashTagOf))).toEqual(new Set([queue.slice(1, -1)]));
    }
    expect(new Set(queues.map((q) => hashTagOf(`${prefix}:${q}:wait`))).size).toBe(queues.length);
  });

  it.each(['a:b', 'a b', ' a', 'a\n', '', 'a*', 'a?', '[a]', 'a\\b', 'é', 'x'.repeat(101)])('rejects the id %p', (id) => {
    expect(() => assertIdPart(id, 'participant id')).toThrow(TypeError);
    expect(() => participantQueue(id)).toThrow(TypeError);
    expect(() => taskJobId(id, 1, 'hospital-1')).toThrow(TypeError);
    expect(() => taskJobId('q-1', 1, id)).toThrow(TypeError);
    expect(() => deadlineJobId(id, 1)).toThrow(TypeError);
  });

  it('accepts ids of letters, digits, "-" and "_" up to 100 characters', () => {
    for (const id of ['a', 'hospital-1', 'HOSPITAL_1', '42', 'x'.repeat(100)]) expect(() => assertIdPart(id, 'id')).not.toThrow();
  });
});

describe('job ids', () => {
  it('are deterministic, so a retried dispatch finds the job already there', () => {
    expect(taskJobId('q-7f3a', 1, 'hospital-1')).toBe('q-7f3a-r1-hospital-1');
    expect(taskJobId('q-7f3a', 1, 'hospital-1')).toBe(taskJobId('q-7f3a', 1, 'hospital-1'));
    expect(deadlineJobId('q-7f3a', 2)).toBe('q-7f3a-r2-deadline');
  });

  it('differ by query and round within a participant\'s queue, even when query ids contain "-r<n>"', () => {
    // Unique per queue is what BullMQ needs: each participant has its own queue.
    for (const participant of ['p', 'r1-p', 'p-2']) {
      const ids = ['q-1', 'q-1-r1', 'q-1-r1-r2', 'q-2'].flatMap((query) => [1, 2, 11].map((round) => taskJobId(query, round, participant)));
      expect(new Set(ids).size).toBe(ids.length);
    }
  });

  it('are never all digits and never contain ":" (both are refused by BullMQ custom ids)', () => {
    for (const id of [taskJobId('1', 1, '2'), deadlineJobId('7', 1)]) {
      expect(id).not.toMatch(/^\d+$/);
      expect(id).not.toContain(':');
    }
  });

  it.each([0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53])('rejects the round %p', (round) => {
    expect(() => taskJobId('q-1', round, 'hospital-1')).toThrow(TypeError);
    if (round !== 0) expect(() => deadlineJobId('q-1', round)).toThrow(TypeError);
  });

  it('names the deadline of round 0, the wait for a shamir query’s committee nonce', () => {
    expect(deadlineJobId('q-1', 0)).toBe('q-1-r0-deadline');
  });
});

describe('assertKeyPrefix / assertQueueName', () => {
  it.each(['confide', 'confide-test-0a1b', 'tenant_2.confide'])('accepts the prefix %p', (prefix) => {
    expect(() => assertKeyPrefix(prefix)).not.toThrow();
  });

  // ':' would nest one prefix inside another's ACL pattern; glob characters would widen the pattern.
  it.each(['', 'confide:participant.a', 'confide*', 'c?nfide', 'c[o]nfide', 'con\\fide', 'con fide', 'x'.repeat(101)])(
    'rejects the prefix %p',
    (prefix) => {
      expect(() => assertKeyPrefix(prefix)).toThrow(TypeError);
    },
  );

  it('accepts every participant queue and the control queue, and rejects glob characters and ":"', () => {
    expect(() => assertQueueName(participantQueue('hospital-1'))).not.toThrow();
    expect(() => assertQueueName(CONTROL_QUEUE)).not.toThrow();
    expect(() => assertQueueName(AGGREGATION_QUEUE)).not.toThrow();
    expect(() => assertQueueName('participant.hospital-1')).not.toThrow();
    for (const queue of ['', 'a:b', 'participant.*', 'participant.?', 'q[1]', 'q 1', '{participant.*}', '{participant.?}', '{q[1]}', '{a\\b}', '{a:b}']) {
      expect(() => assertQueueName(queue)).toThrow(TypeError);
    }
  });

  // A brace anywhere but around the whole name: a tag that hashes a part of the name, or two names alike.
  it.each(['{}', '{a', 'a}', 'a{b}', '{a}b', '{a}{b}', '{{a}}', 'x{participant.p1}'])('rejects the queue name %p', (queue) => {
    expect(() => assertQueueName(queue)).toThrow(TypeError);
  });

  it.each(['{confide}', 'con{fide}', '{', '}'])('rejects the prefix %p: a hash tag there would put every queue in one slot', (prefix) => {
    expect(() => assertKeyPrefix(prefix)).toThrow(TypeError);
  });
});

describe('hashTagOf', () => {
  it.each([
    ['confide:{participant.p1}:wait', 'participant.p1'],
    ['confide:{participant.p1}:q1-r1-p1', 'participant.p1'],
    ['{a}{b}', 'a'],
    ['a{}b{c}', 'a{}b{c}'],
    ['a{b', 'a{b'],
    ['a}b{c}', 'c'],
    ['plain:key', 'plain:key'],
  ])('reads the slot-deciding part of %p as Redis Cluster does', (key, tag) => {
    expect(hashTagOf(key)).toBe(tag);
  });
});

describe('ids Confide makes', () => {
  it('are "q" or "p" and 24 hex digits, fresh each time, and fit in job ids and ACL patterns', () => {
    const queries = Array.from({ length: 50 }, newQueryId);
    expect(new Set(queries).size).toBe(queries.length);
    for (const id of queries) expect(id).toMatch(/^q[0-9a-f]{24}$/);
    for (const id of Array.from({ length: 50 }, newParticipantId)) {
      expect(id).toMatch(/^p[0-9a-f]{24}$/);
      expect(() => participantQueue(id)).not.toThrow();
    }
  });
});

describe('reading job ids back', () => {
  const hex24 = fc.string({ unit: fc.constantFrom(...'0123456789abcdef'), minLength: 24, maxLength: 24 });
  const queryId = hex24.map((h) => `q${h}`);
  const participantId = hex24.map((h) => `p${h}`);
  const kind = fc.constantFrom(...Object.values(TASK));

  it('gives back the query, round and participant of every task job id taskJobId makes', () => {
    fc.assert(
      fc.property(queryId, kind, participantId, (q, k, p) => {
        const id = taskJobId(q, roundOf(k), p);
        expect(parseTaskJobId(id)).toEqual({ queryId: q, round: roundOf(k), participantId: p });
        expect(queryOfJob(id)).toBe(q);
        expect(parseAggregationJobId(id)).toBeUndefined();
      }),
    );
    expect(parseTaskJobId(taskJobId(newQueryId(), 2, newParticipantId()))?.round).toBe(2);
  });

  it('gives back the query of every aggregation job id aggregationJobId makes', () => {
    fc.assert(
      fc.property(queryId, (q) => {
        expect(parseAggregationJobId(aggregationJobId(q))).toEqual({ queryId: q });
        expect(queryOfJob(aggregationJobId(q))).toBe(q);
        expect(parseTaskJobId(aggregationJobId(q))).toBeUndefined();
      }),
    );
  });

  const q = 'q0123456789abcdef01234567';
  const p = 'p0123456789abcdef01234567';
  it.each([
    ['an id of test ids', taskJobId('q-1', 1, 'hospital-1')],
    ['a query id with "-r1-" in it', taskJobId(`${q}-r1-${p}`, 1, p)],
    ['a round no task has', taskJobId(q, 3, p)],
    ['a round written with a leading zero', `${q}-r01-${p}`],
    ['round 0', `${q}-r0-${p}`],
    ['a deadline job id', deadlineJobId(q, 1)],
    ['the nonce deadline job id', deadlineJobId(q, 0)],
    ['an aggregation job id', aggregationJobId(q)],
    ['upper-case hex', taskJobId(q.toUpperCase().replace('Q', 'q'), 1, p)],
    ['a replayed copy of a real id', `${taskJobId(q, 1, p)}-replayed`],
    ['a prefix before a real id', `x${taskJobId(q, 1, p)}`],
    ['a participant and query swapped', `${p}-r1-${q}`],
    ['the empty string', ''],
  ])('refuses %s as a task job id', (_what, id) => {
    expect(parseTaskJobId(id)).toBeUndefined();
  });

  it.each([
    ['an id of a test query', aggregationJobId('q-1')],
    ['the regex the orchestrator used to accept', 'anything-aggregate'],
    ['a task job id', taskJobId(q, 1, p)],
    ['a suffix after a real id', `${aggregationJobId(q)}-2`],
  ])('refuses %s as an aggregation job id', (_what, id) => {
    expect(parseAggregationJobId(id)).toBeUndefined();
  });

  it('names no query for a job id Confide did not make, nor for a deadline job (no events to scrub there)', () => {
    for (const id of ['', 'q-1-r1-hospital-1', deadlineJobId(q, 2), `${q}-`, q]) expect(queryOfJob(id)).toBeUndefined();
  });
});

describe('the round of each task kind', () => {
  it('never changes: job ids and stored answers carry it', () => {
    expect(TASK_ROUND).toEqual({ 'shamir.round1': 1, 'shamir.round2': 2, 'paillier.contribute': 1 });
    expect(Object.values(TASK).map(roundOf)).toEqual([1, 2, 1]);
  });
});

describe('participantIdOf', () => {
  it('derives the id of an enrolling signing key: "p" and the first 24 hex digits of its fingerprint, readable back from job ids', () => {
    const id = participantIdOf('0123456789abcdef'.repeat(4));
    expect(id).toBe('p0123456789abcdef01234567');
    expect(parseTaskJobId(taskJobId(newQueryId(), 1, id))?.participantId).toBe(id);
  });

  it('refuses anything but a 64-hex-digit fingerprint', () => {
    expect(() => participantIdOf('ABCD'.repeat(16))).toThrow(/64 lowercase hex digits/);
    expect(() => participantIdOf('ab')).toThrow(TypeError);
  });
});
