import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { generateKeyPair, publicKeyBase64Url } from '@confide/crypto';
import { nonceCommitment, parseStudySchema, planSchema, planShamir, sha256Hex, toStudySchemaJson } from '@confide/protocol';
import { newParticipantId, newQueryId, signTask, TASK } from '@confide/queue';
import { seededRandom } from '../../../../test/support/randomness';
import {
  closedMembersColumn,
  CorruptColumnError,
  dispatchPayloadColumn,
  eventBodyColumn,
  paillierOptionsColumn,
  paillierRound1ClosedColumn,
  partialsColumn,
  planColumn,
  readColumn,
  readQuerySpec,
  readStudySchema,
  resultColumn,
  roundClosedColumn,
  shamirOptionsColumn,
  shamirRound1ClosedColumn,
} from './columns';

// Stands for what a column may hold next to a secret: no error message may ever carry it.
const SECRET = 'SECRET-share-sum-7f3a';
const rng = seededRandom('coordinator/columns');
const q = newQueryId();
const sites = [newParticipantId(), newParticipantId(), newParticipantId()];
const hex = (s: string) => sha256Hex(s);
const PRIVACY = { minParticipants: 3, minGroupSize: 5, dp: null };

function errorOf(read: () => unknown): CorruptColumnError {
  try {
    read();
  } catch (err) {
    if (err instanceof CorruptColumnError) return err;
    throw err;
  }
  throw new Error('expected a CorruptColumnError');
}

describe('readColumn', () => {
  const column = z.strictObject({ submittedIndex: z.number().int(), seedCommitment: z.string().optional() });

  it('returns the stored value', () => {
    expect(readColumn(column, '{"submittedIndex":4,"seedCommitment":"ab"}', 'queries.options_json')).toEqual({ submittedIndex: 4, seedCommitment: 'ab' });
  });

  it('returns the parsed JSON itself, never a copy zod stripped: hashes and signatures cover every key', () => {
    const stripping = z.object({ a: z.number() });
    expect(readColumn(stripping, '{"a":1,"b":2}', 'x.y')).toEqual({ a: 1, b: 2 });
  });

  it.each([
    ['cut short', `{"sealed":"${SECRET}"`],
    ['not JSON at all', SECRET],
    ['empty', ''],
  ])('refuses text that is %s, naming the column and never quoting the text', (_what, text) => {
    const err = errorOf(() => readColumn(column, text, 'rounds.closed_json of query q1 round 2'));
    expect(err.message).toContain('rounds.closed_json of query q1 round 2');
    expect(err.message).toContain('not valid JSON');
    expect(err.message).not.toContain(SECRET);
    expect(err.cause).toBeUndefined();
  });

  it.each([
    ['a field of the wrong type', `{"submittedIndex":"${SECRET}"}`, 'submittedIndex: invalid_type, expected number'],
    ['a missing field', `{"seedCommitment":"${SECRET}"}`, 'submittedIndex: invalid_type'],
    ['an unknown field', `{"submittedIndex":1,"${SECRET}":"${SECRET}"}`, '(root): unrecognized_keys'],
    ['another type altogether', `["${SECRET}"]`, '(root): invalid_type, expected object'],
  ])('refuses %s, naming the column, where and what kind of problem, never the value', (_what, text, problem) => {
    const err = errorOf(() => readColumn(column, text, 'queries.options_json of query q1'));
    expect(err.message).toContain('queries.options_json of query q1');
    expect(err.message).toContain(problem);
    expect(err.message).not.toContain(SECRET);
  });

  it('names the first three problems and counts the rest', () => {
    const wide = z.strictObject({ a: z.string(), b: z.string(), c: z.string(), d: z.string(), e: z.string() });
    expect(errorOf(() => readColumn(wide, '{}', 'x.y')).message).toMatch(/a: invalid_type.*b: invalid_type.*c: invalid_type.*and 2 more$/);
  });
});

describe('readStudySchema', () => {
  const studies = [
    JSON.parse(readFileSync(join(__dirname, '../../../../examples/salaries/study.json'), 'utf8')) as unknown,
    JSON.parse(readFileSync(join(__dirname, '../../../../examples/pima/study.json'), 'utf8')) as unknown,
    {
      name: 'dp-study',
      minThreshold: 3,
      fields: [{ name: 'x', type: 'number', min: 0.5, max: 2.5, decimals: 1 }],
      privacy: { minGroupSize: 7, dp: { mechanism: 'gaussian', epsilon: 0.5, delta: 1e-6, budget: { epsilon: 4, delta: 1e-5 } } },
    },
  ];

  it.each(studies.map((s) => [(s as { name: string }).name, s]))('reads the study %s as the studies service stores it', (_name, json) => {
    const schema = parseStudySchema(json);
    const stored = JSON.stringify(toStudySchemaJson(schema));
    expect(readStudySchema(stored, 'studies.schema_json')).toEqual(schema);
    // And the JSON written back from it is the stored JSON (what the orchestrator puts in an aggregation job).
    expect(toStudySchemaJson(readStudySchema(stored, 'studies.schema_json'))).toEqual(JSON.parse(stored));
    // What the enrollment service shows a participant is unchanged from reading the column with a cast.
    expect(JSON.stringify(toStudySchemaJson(readStudySchema(stored, 'studies.schema_json')))).toBe(JSON.stringify(toStudySchemaJson(JSON.parse(stored) as never)));
  });

  it('refuses a stored study that no longer validates as corruption, naming the column and the paths, never the values', () => {
    const err = errorOf(() => readStudySchema(JSON.stringify({ name: SECRET, fields: [{ name: 'x', type: 'number', min: SECRET, max: 1, decimals: 0 }] }), 'studies.schema_json of study s-1'));
    expect(err.message).toContain('studies.schema_json of study s-1');
    expect(err.message).toContain('fields[0].min');
    expect(err.message).not.toContain(SECRET);
    expect(errorOf(() => readStudySchema(`{"name":"${SECRET}"`, 'studies.schema_json')).message).not.toContain(SECRET);
  });
});

describe('the column schemas accept what the coordinator writes', () => {
  const shamirPlan = planShamir({
    jobId: q,
    queryHash: hex('query'),
    vectorLength: 3,
    participants: sites,
    minParticipants: 3,
    seed: 'c0ffee'.repeat(6),
    deadlines: { round1: 1_900_000_000_000, round2: 1_900_000_060_000 },
  });
  const paillierPlan = {
    protocol: 'paillier',
    version: 1,
    jobId: q,
    queryHash: hex('query'),
    vectorLength: 3,
    publicKey: { n: 'AQAB' },
    participants: sites,
    minParticipants: 3,
    maxRecords: '1000',
    deadline: 1_900_000_000_000,
    dp: { mechanism: 'laplace', epsilon: '0.5' },
  };
  const contribution = { jobId: q, planHash: hex('plan'), sender: sites[0]!, ciphertexts: ['AQID'], signature: 'c2ln' };
  const stored = (value: unknown) => JSON.stringify(value);

  it('queries.spec_json, as querySpecFor makes it, with and without its privacy', () => {
    const spec = { select: [{ stat: 'mean', field: 'salary' }], where: [{ field: 'rank', op: 'eq', value: 'Prof' }], groupBy: 'sex', privacy: PRIVACY };
    expect(readQuerySpec(stored(spec), 'queries.spec_json')).toEqual(spec);
    expect(readQuerySpec(stored({ select: spec.select }), 'queries.spec_json')).toEqual({ select: spec.select });
    expect(() => readQuerySpec(stored({ where: spec.where, privacy: PRIVACY }), 'queries.spec_json')).toThrow(CorruptColumnError);
  });

  it('queries.plan_json of both protocols', () => {
    expect(readColumn(planColumn, stored(shamirPlan), 'queries.plan_json')).toEqual(planSchema.parse(shamirPlan));
    expect(readColumn(planColumn, stored(paillierPlan), 'queries.plan_json')).toEqual(paillierPlan);
    expect(() => readColumn(planColumn, stored({ ...paillierPlan, protocol: 'shamir' }), 'queries.plan_json')).toThrow(CorruptColumnError);
  });

  it('queries.options_json of both protocols', () => {
    const shamir = { threshold: undefined, deadlineSeconds: 30, seedCommitment: nonceCommitment('ab'.repeat(32)), submittedIndex: 12 };
    expect(readColumn(shamirOptionsColumn, stored(shamir), 'queries.options_json')).toEqual({ deadlineSeconds: 30, seedCommitment: shamir.seedCommitment, submittedIndex: 12 });
    expect(readColumn(paillierOptionsColumn, stored({ custodians: { n: 'AQAB', threshold: 2 } }), 'queries.options_json').custodians).toEqual({ n: 'AQAB', threshold: 2 });
  });

  it('queries.result_json, with whatever details the protocol adds', () => {
    const result = { results: [{ stat: 'mean', value: '1.5' }], privacy: { minGroupSize: 5, suppressed: 0, dp: null }, contributors: 3, committee: sites, answered: sites, badMembers: [], threshold: 2, ledgerIndex: 41 };
    expect(readColumn(resultColumn, stored(result), 'queries.result_json')).toEqual(result);
  });

  it('rounds.closed_json of every round, and who it counts', () => {
    const round1 = { jobId: q, planHash: hex('plan'), contributors: sites.map((id) => ({ id, bundleHash: hex(id) })) };
    const paillier = { contributors: round1.contributors, contributions: [contribution], noise: { ciphertexts: ['AQID'], proofs: [{ e: '1' }] }, aggregate: ['AQID'] };
    expect(readColumn(shamirRound1ClosedColumn, stored(round1), 'rounds.closed_json')).toEqual(round1);
    expect(readColumn(paillierRound1ClosedColumn, stored(paillier), 'rounds.closed_json')).toEqual(paillier);
    // After the query is decided (forgetContributions).
    expect(readColumn(paillierRound1ClosedColumn, stored({ ...paillier, contributions: [], noise: null }), 'rounds.closed_json').contributions).toEqual([]);
    for (const closed of [round1, paillier, { answered: sites, badMembers: [] }, { decrypted: true, custodians: [1, 2] }, { decrypted: true }, { nonce: 'ab' }]) {
      expect(readColumn(closedMembersColumn, stored(closed), 'rounds.closed_json')).toEqual(closed);
    }
  });

  it('partial_decryptions.partials_json', () => {
    const posted = { index: 2, partials: [{ index: 2, ci: '12', proof: { e: '1', z: '2' } }] };
    expect(readColumn(partialsColumn, stored(posted), 'partial_decryptions.partials_json')).toEqual(posted);
  });

  it('dispatches.payload_json: the signed task, exactly as signed', () => {
    const plan = planSchema.parse(shamirPlan);
    const key = generateKeyPair('ed25519', rng);
    const directory = sites.map((id) => ({ id, encryptionKey: publicKeyBase64Url(generateKeyPair('x25519', rng).publicKey), signingKey: publicKeyBase64Url(key.publicKey) }));
    const signed = signTask(key, {
      kind: TASK.shamirRound1,
      queryId: q,
      studyId: 'salaries-2030',
      participantId: sites[0]!,
      issuedAt: 1_899_999_990_000,
      deadline: plan.deadlines.round1,
      plan,
      query: { select: [{ stat: 'sum', field: 'salary' }], privacy: PRIVACY },
      directory,
      evidence: { checkpoint: 'confide/0\n8\nAAAA\n', entries: [{ index: 7, entry: Buffer.from('{}').toString('base64'), proof: [] }] },
    });
    expect(readColumn(dispatchPayloadColumn, stored(signed), 'dispatches.payload_json')).toEqual(signed);
    expect(() => readColumn(dispatchPayloadColumn, stored({ ...signed, signature: undefined }), 'dispatches.payload_json')).toThrow(CorruptColumnError);
  });

  it('events.body, and a round.closed entry’s body', () => {
    const body = { queryId: q, round: 1, contributors: [{ id: sites[0]!, bundleHash: hex('b') }], missing: sites.slice(1), refusals: [] };
    expect(readColumn(eventBodyColumn, stored(body), 'events.body')).toEqual(body);
    expect(readColumn(roundClosedColumn, stored(body), 'events.body')).toEqual(body);
    expect(() => readColumn(eventBodyColumn, '[1,2]', 'events.body')).toThrow(CorruptColumnError);
  });
});
