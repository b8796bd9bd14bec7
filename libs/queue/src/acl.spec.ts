import { createHash } from 'node:crypto';
import {
  assertParticipantUsername,
  generateRedisPassword,
  hashRedisPassword,
  participantAclRules,
  participantAclSetUserArgs,
  participantKeyPattern,
  PARTICIPANT_COMMANDS,
} from './acl';
import { participantQueue } from './names';

const queue = participantQueue('hospital-1');

describe('participantAclRules', () => {
  it('grants the queue\'s keys, no channel, and only the listed commands', () => {
    const rules = participantAclRules('confide', queue);
    expect(rules.slice(0, 3)).toEqual(['~confide:participant.hospital-1:*', 'resetchannels', '-@all']);
    expect(rules.slice(3, -1)).toEqual(PARTICIPANT_COMMANDS.map((c) => `+${c}`));
    expect(rules.at(-1)).toBe('(%W~confide:coordinator.completions resetchannels -@all +xadd)');
  });

  it('grants no category, no keyless command that reaches the whole keyspace or other clients, and no channel', () => {
    const granted = new Set(PARTICIPANT_COMMANDS);
    for (const command of ['keys', 'scan', 'randomkey', 'dbsize', 'flushall', 'flushdb', 'swapdb', 'move', 'copy', 'sort', 'sort_ro', 'info', 'client', 'config', 'acl', 'monitor', 'debug', 'script', 'function', 'fcall', 'publish', 'subscribe', 'psubscribe', 'ssubscribe', 'wait', 'migrate', 'restore', 'object', 'memory', 'slowlog', 'latency', 'shutdown', 'module']) {
      expect(granted.has(command)).toBe(false);
    }
    expect(participantAclRules('confide', queue).filter((r) => r.startsWith('+@') || r.startsWith('&') || r === 'allkeys' || r === 'allchannels')).toEqual([]);
    expect(new Set(PARTICIPANT_COMMANDS).size).toBe(PARTICIPANT_COMMANDS.length);
  });

  it('gives each participant a pattern that does not cover another participant whose id extends its own', () => {
    const a = participantKeyPattern('confide', participantQueue('hospital-1'));
    const globToRegExp = (glob: string) => new RegExp(`^${glob.replace(/[.+^${}()|\\-]/g, '\\$&').replace(/\*/g, '.*')}$`);
    expect(globToRegExp(a).test('confide:participant.hospital-1:wait')).toBe(true);
    expect(globToRegExp(a).test('confide:participant.hospital-10:wait')).toBe(false);
    expect(globToRegExp(a).test('confide:coordinator.control:wait')).toBe(false);
  });

  it.each([
    ['confide*', queue],
    ['confide:participant.hospital-1', 'x'],
    ['confide', 'participant.*'],
    ['confide', 'participant.[ab]'],
    ['confide', 'a:b'],
  ])('refuses a prefix %p or queue %p that could widen the pattern', (prefix, q) => {
    expect(() => participantAclRules(prefix, q)).toThrow(TypeError);
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
    expect(participantAclSetUserArgs({ username: 'confide-hospital-1', passwordHash, prefix: 'confide', queue })).toEqual([
      'confide-hospital-1',
      'reset',
      'on',
      `#${passwordHash}`,
      ...participantAclRules('confide', queue),
    ]);
  });

  it('never holds the plaintext password', () => {
    const args = participantAclSetUserArgs({ username: 'confide-hospital-1', passwordHash, prefix: 'confide', queue });
    expect(args.join(' ')).not.toContain(password);
    expect(args.some((a) => a.startsWith('>'))).toBe(false);
  });

  it.each(['default', '', 'a b', 'a:b', 'x'.repeat(101), '>pw'])('refuses the username %p', (username) => {
    expect(() => participantAclSetUserArgs({ username, passwordHash, prefix: 'confide', queue })).toThrow(TypeError);
    expect(() => assertParticipantUsername(username)).toThrow(TypeError);
  });

  it.each(['', 'A'.repeat(64), 'ab', `${'0'.repeat(63)} `])('refuses the password hash %p', (hash) => {
    expect(() => participantAclSetUserArgs({ username: 'u', passwordHash: hash, prefix: 'confide', queue })).toThrow(TypeError);
  });
});
