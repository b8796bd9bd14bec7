import { createHash } from 'node:crypto';
import fc from 'fast-check';
import {
  assertParticipantUsername,
  generateRedisPassword,
  hashRedisPassword,
  participantAclRules,
  participantAclSetUserArgs,
  participantKeyPattern,
  PARTICIPANT_COMMANDS,
} from './acl';
import { AGGREGATION_QUEUE, CONTROL_QUEUE, participantQueue, taskJobId } from './names';

/**
 * Redis's glob matcher (util.c stringmatchlen), which ACL key patterns use: `*`, `?`, `[…]` (with `^` and ranges) and
 * `\` are special, every other character (`{` and `}` included) matches itself. Written out here rather than borrowed
 * from a glob library, whose rules (braces as alternatives, `**`, path separators) differ.
 */
function redisGlobMatch(pattern: string, text: string): boolean {
  const match = (p: number, t: number): boolean => {
    while (p < pattern.length) {
      const c = pattern[p]!;
      if (c === '*') {
        while (pattern[p + 1] === '*') p++;
        if (p + 1 === pattern.length) return true;
        for (let i = t; i <= text.length; i++) if (match(p + 1, i)) return true;
        return false;
      }
      if (t >= text.length) return false;
      if (c === '?') {
        p++;
        t++;
        continue;
      }
      if (c === '[') {
        let q = p + 1;
        const not = pattern[q] === '^';
        if (not) q++;
        let hit = false;
        while (q < pattern.length && pattern[q] !== ']') {
          if (pattern[q] === '\\' && q + 1 < pattern.length) {
            if (pattern[q + 1] === text[t]) hit = true;
            q += 2;
          } else if (pattern[q + 1] === '-' && q + 2 < pattern.length && pattern[q + 2] !== ']') {
            const [lo, hi] = [pattern[q]!, pattern[q + 2]!].sort();
            if (text[t]! >= lo! && text[t]! <= hi!) hit = true;
            q += 3;
          } else {
            if (pattern[q] === text[t]) hit = true;
            q++;
          }
        }
        if (hit === not) return false;
        p = q + 1;
        t++;
        continue;
      }
      const literal = c === '\\' && p + 1 < pattern.length ? pattern[++p]! : c;
      if (literal !== text[t]) return false;
      p++;
      t++;
    }
    return t === text.length;
  };
  return match(0, 0);
}

const queue = participantQueue('hospital-1');

describe('participantAclRules', () => {
  it('grants the queue\'s keys, no channel, and only the listed commands', () => {
    const rules = participantAclRules('confide', queue, 'study-1');
    expect(rules.slice(0, 3)).toEqual(['~confide:{participant.hospital-1}:*', 'resetchannels', '-@all']);
    expect(rules.slice(3, -2)).toEqual(PARTICIPANT_COMMANDS.map((c) => `+${c}`));
    expect(rules.at(-2)).toBe('(%W~confide:coordinator.completions resetchannels -@all +xadd)');
    expect(rules.at(-1)).toBe('(%R~confide:{study.study-1}:part:* resetchannels -@all +get)');
  });

  it.each(['study*', 'a:b', 's{t}', ''])('refuses a study id %p that could widen the parts pattern', (studyId) => {
    expect(() => participantAclRules('confide', queue, studyId)).toThrow(TypeError);
  });

  it('grants no category, no keyless command that reaches the whole keyspace or other clients, and no channel', () => {
    const granted = new Set(PARTICIPANT_COMMANDS);
    for (const command of ['keys', 'scan', 'randomkey', 'dbsize', 'flushall', 'flushdb', 'swapdb', 'move', 'copy', 'sort', 'sort_ro', 'info', 'client', 'config', 'acl', 'monitor', 'debug', 'script', 'function', 'fcall', 'publish', 'subscribe', 'psubscribe', 'ssubscribe', 'wait', 'migrate', 'restore', 'object', 'memory', 'slowlog', 'latency', 'shutdown', 'module']) {
      expect(granted.has(command)).toBe(false);
    }
    expect(participantAclRules('confide', queue, 'study-1').filter((r) => r.startsWith('+@') || r.startsWith('&') || r === 'allkeys' || r === 'allchannels')).toEqual([]);
    expect(new Set(PARTICIPANT_COMMANDS).size).toBe(PARTICIPANT_COMMANDS.length);
  });

  it('grants of CLUSTER only the slot map ioredis reads (GETKEYSINSLOT or COUNTKEYSINSLOT would reach other participants\' keys)', () => {
    expect(PARTICIPANT_COMMANDS.filter((c) => c.startsWith('cluster'))).toEqual(['cluster|slots']);
    for (const command of ['cluster|getkeysinslot', 'cluster|countkeysinslot', 'cluster|info', 'cluster|nodes', 'readonly', 'readwrite']) expect(PARTICIPANT_COMMANDS).not.toContain(command);
  });

  it('gives each participant a pattern that does not cover another participant whose id extends its own', () => {
    const a = participantKeyPattern('confide', participantQueue('hospital-1'));
    expect(a).toBe('confide:{participant.hospital-1}:*');
    expect(redisGlobMatch(a, 'confide:{participant.hospital-1}:wait')).toBe(true);
    expect(redisGlobMatch(a, 'confide:{participant.hospital-10}:wait')).toBe(false);
    expect(redisGlobMatch(a, 'confide:{participant.hospital-1}x:wait')).toBe(false);
    expect(redisGlobMatch(a, 'confide:{coordinator.control}:wait')).toBe(false);
    // The names before hash tags: a participant upgraded in place reaches none of its old keys either.
    expect(redisGlobMatch(a, 'confide:participant.hospital-1:wait')).toBe(false);
  });

  it('matches, as Redis globs do, only its own queue\'s keys: never another participant\'s, whatever the ids, nor the coordinator\'s', () => {
    const idPart = fc.stringMatching(/^[A-Za-z0-9_-]{1,24}$/);
    const suffix = fc.oneof(fc.constantFrom('wait', 'active', 'events', 'meta', 'id', 'stalled', 'marker', ''), fc.string({ maxLength: 30 }));
    fc.assert(
      fc.property(idPart, idPart, suffix, fc.constantFrom('confide', 'confide-test-1'), (a, b, tail, prefix) => {
        const pattern = participantKeyPattern(prefix, participantQueue(a));
        expect(redisGlobMatch(pattern, `${prefix}:${participantQueue(a)}:${tail}`)).toBe(true);
        expect(redisGlobMatch(pattern, `${prefix}:${participantQueue(a)}:${taskJobId('q-1', 1, a)}`)).toBe(true);
        if (a !== b) {
          expect(redisGlobMatch(pattern, `${prefix}:${participantQueue(b)}:${tail}`)).toBe(false);
          expect(redisGlobMatch(pattern, `${prefix}:${participantQueue(b)}:${taskJobId('q-1', 1, b)}`)).toBe(false);
        }
        for (const queue of [CONTROL_QUEUE, AGGREGATION_QUEUE]) expect(redisGlobMatch(pattern, `${prefix}:${queue}:${tail}`)).toBe(false);
        expect(redisGlobMatch(pattern, `other:${participantQueue(a)}:${tail}`)).toBe(false);
      }),
      { numRuns: 500 },
    );
  });

  it('has no glob character but the final "*", so nothing in a queue name or prefix can widen it', () => {
    for (const queue of [participantQueue('hospital-1'), participantQueue('p0123456789abcdef01234567'), CONTROL_QUEUE]) {
      const pattern = participantKeyPattern('confide', queue);
      expect(pattern.slice(0, -1)).not.toMatch(/[*?[\]\\]/);
      expect(pattern.endsWith(':*')).toBe(true);
    }
  });

  it('checks the test\'s own glob matcher against the Redis rules it stands for', () => {
    expect(redisGlobMatch('a*', 'abc')).toBe(true);
    expect(redisGlobMatch('a?c', 'abc')).toBe(true);
    expect(redisGlobMatch('a[bx]c', 'abc')).toBe(true);
    expect(redisGlobMatch('a[^b]c', 'abc')).toBe(false);
    expect(redisGlobMatch('a[a-c]c', 'abc')).toBe(true);
    expect(redisGlobMatch('a\\*c', 'a*c')).toBe(true);
    expect(redisGlobMatch('a\\*c', 'abc')).toBe(false);
    expect(redisGlobMatch('{a}*', '{a}:x')).toBe(true);
    expect(redisGlobMatch('{a,b}*', 'a')).toBe(false);
  });

  it.each([
    ['confide*', queue],
    ['confide:participant.hospital-1', 'x'],
    ['confide', 'participant.*'],
    ['confide', 'participant.[ab]'],
    ['confide', '{participant.*}'],
    ['confide', '{participant.[ab]}'],
    ['confide', '{participant.\\*}'],
    ['{confide}', queue],
    ['confide', 'a:b'],
  ])('refuses a prefix %p or queue %p that could widen the pattern', (prefix, q) => {
    expect(() => participantAclRules(prefix, q, 'study-1')).toThrow(TypeError);
  });
});

describe('passwords', () => {
  it('generates 32 random bytes as base64url', () => {
    const passwords = Array.from({ length: 50 }, generateRedisPassword);
    for (const p of passwords) {
      expect(p).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(Buffer.from(p, 'base64url')).toHaveLength(32);
    }
    expect(new Set(passwords).size).toBe(passwords.length);
  });

  it('hashes a password as ACL SETUSER #<hash> expects: SHA-256, lowercase hex', () => {
    const password = 'correct-horse-battery-staple-0123456789';
    expect(hashRedisPassword(password)).toBe(createHash('sha256').update(password).digest('hex'));
  });

  it('refuses a password shorter than 32 characters, without echoing it', () => {
    expect(() => hashRedisPassword('hunter2')).toThrow(/at least 32 characters/);
    expect(() => hashRedisPassword('hunter2')).not.toThrow(/hunter2/);
  });
});

describe('participantAclSetUserArgs', () => {
  const password = generateRedisPassword();
  const passwordHash = hashRedisPassword(password);

  it('resets the user, then enables it with the hashed password and the participant rules', () => {
    expect(participantAclSetUserArgs({ username: 'confide-hospital-1', passwordHash, prefix: 'confide', queue, studyId: 'study-1' })).toEqual([
      'confide-hospital-1',
      'reset',
      'on',
      `#${passwordHash}`,
      ...participantAclRules('confide', queue, 'study-1'),
    ]);
  });

  it('never holds the plaintext password', () => {
    const args = participantAclSetUserArgs({ username: 'confide-hospital-1', passwordHash, prefix: 'confide', queue, studyId: 'study-1' });
    expect(args.join(' ')).not.toContain(password);
    expect(args.some((a) => a.startsWith('>'))).toBe(false);
  });

  it.each(['default', '', 'a b', 'a:b', 'x'.repeat(101), '>pw'])('refuses the username %p', (username) => {
    expect(() => participantAclSetUserArgs({ username, passwordHash, prefix: 'confide', queue, studyId: 'study-1' })).toThrow(TypeError);
    expect(() => assertParticipantUsername(username)).toThrow(TypeError);
  });

  it.each(['', 'A'.repeat(64), 'ab', `${'0'.repeat(63)} `])('refuses the password hash %p', (hash) => {
    expect(() => participantAclSetUserArgs({ username: 'u', passwordHash: hash, prefix: 'confide', queue, studyId: 'study-1' })).toThrow(TypeError);
  });
});
