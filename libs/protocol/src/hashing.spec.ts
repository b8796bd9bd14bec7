import fc from 'fast-check';
import { canonicalJson } from '@confide/crypto';
import { entryBytes, parseEntry } from '@confide/ledger';
import { ENTRY } from './ledger/ledger-entries';
import { canonicalQuery, queryHash, sha256Hex } from './hashing';

/** A query as a task carries it: statistics, filters, grouping and the effective privacy settings (ε 0.5 is not an integer). */
const QUERY = {
  select: [
    { stat: 'mean', field: 'salary' },
    { stat: 'histogram', field: 'salary', edges: [30000, 50000.5, 100000] },
  ],
  where: [{ field: 'rank', op: 'in', value: ['AssocProf', 'Prof'] }],
  groupBy: 'sex',
  privacy: { minParticipants: 3, minGroupSize: 5, dp: { mechanism: 'laplace', epsilon: 0.5 } },
};

/** Any JSON object, with floats, nesting and arbitrary keys. */
const jsonObject = fc.dictionary(fc.string({ maxLength: 6 }), fc.jsonValue({ maxDepth: 3 }), { maxKeys: 5 });

/** The same value with every object's keys inserted in reverse order, at every depth. */
function reversedKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(reversedKeys);
  if (value !== null && typeof value === 'object') return Object.fromEntries(Object.entries(value).reverse().map(([k, v]) => [k, reversedKeys(v)]));
  return value;
}

/** JSON.stringify then JSON.parse: what a query looks like after a trip through Redis or an HTTP body. */
const viaJson = (value: unknown): unknown => JSON.parse(JSON.stringify(value));

describe('queryHash', () => {
  it('hashes a fixed query to a pinned value', () => {
    // A wire contract: researchers, the coordinator, participants and auditors all derive this hash, and every
    // query.submitted entry already in a ledger records it. Changing the canonical form or the domain changes it.
    const text = '{"groupBy":"sex","privacy":{"dp":{"epsilon":"0.5","mechanism":"laplace"},"minGroupSize":5,"minParticipants":3},"select":[{"field":"salary","stat":"mean"},{"edges":[30000,"50000.5",100000],"field":"salary","stat":"histogram"}],"where":[{"field":"rank","op":"in","value":["AssocProf","Prof"]}]}';
    expect(canonicalJson(canonicalQuery(QUERY))).toBe(text);
    expect(queryHash(QUERY)).toBe('9dc6a6e700bf7c5f6c0d30375e7cc96fac236aa980cd83d5e491fd6f5f1c5f4a');
    expect(sha256Hex(`confide/query/v1\n${text}`)).toBe(queryHash(QUERY));
  });

  it('does not depend on key order, at any depth', () => {
    expect(queryHash(reversedKeys(QUERY))).toBe(queryHash(QUERY));
    fc.assert(fc.property(jsonObject, (query) => queryHash(reversedKeys(query)) === queryHash(query)));
  });

  it('hashes a query the same after a JSON round trip, as through Redis', () => {
    expect(queryHash(viaJson(QUERY))).toBe(queryHash(QUERY));
    fc.assert(fc.property(jsonObject, (query) => queryHash(viaJson(query)) === queryHash(query)));
  });

  it('hashes a query as JSON writes it, for values JSON rewrites (NaN, a Date, an undefined array element)', () => {
    const held = { select: [undefined], since: new Date(0), epsilon: NaN };
    expect(viaJson(held)).toEqual({ select: [null], since: '1970-01-01T00:00:00.000Z', epsilon: null });
    expect(queryHash(held)).toBe(queryHash(viaJson(held)));
  });

  it('drops undefined members, as the JSON round trip does', () => {
    const { groupBy: _groupBy, ...ungrouped } = QUERY;
    expect(queryHash({ ...QUERY, groupBy: undefined })).toBe(queryHash(ungrouped));
    expect(queryHash({ ...QUERY, privacy: { ...QUERY.privacy, budget: undefined } })).toBe(queryHash(QUERY));
    expect(canonicalQuery({ ...QUERY, groupBy: undefined })).not.toHaveProperty('groupBy');
  });

  it('writes a number that is not a safe integer as its Number#toString text, the form the ledger shows', () => {
    const query = { select: [{ stat: 'histogram', field: 'x', edges: [-0.25, 0, 1e21, 2 ** 53] }], privacy: { dp: { epsilon: 0.5 }, minGroupSize: 5 } };
    expect(canonicalQuery(query)).toEqual({ select: [{ stat: 'histogram', field: 'x', edges: ['-0.25', 0, '1e+21', '9007199254740992'] }], privacy: { dp: { epsilon: '0.5' }, minGroupSize: 5 } });
  });

  it('keeps every finite number exactly: its text reads back as the same number', () => {
    fc.assert(
      fc.property(fc.double({ noNaN: true, noDefaultInfinity: true }), (x) => {
        const written = (canonicalQuery({ x }) as { x: unknown }).x;
        return typeof written === 'string' ? Number(written) === x && !Number.isSafeInteger(x) : written === x && Number.isSafeInteger(x);
      }),
    );
  });

  it('hashes the canonical form (the query as the ledger shows it) the same as the query itself', () => {
    expect(queryHash(canonicalQuery(QUERY))).toBe(queryHash(QUERY));
    fc.assert(fc.property(jsonObject, (query) => queryHash(canonicalQuery(query)) === queryHash(query)));
  });

  it("lets an auditor recompute the hash from the query.submitted entry's bytes", () => {
    const bytes = entryBytes({ index: 5, type: ENTRY.querySubmitted, body: { queryId: 'q-7f3a', query: canonicalQuery(QUERY), queryHash: queryHash(QUERY) }, time: '2030-01-15T12:00:00.000Z' });
    const { body } = parseEntry(bytes);
    expect(queryHash(body.query)).toBe(body.queryHash);
  });

  it.each<[string, unknown]>([
    ['an extra where', { ...QUERY, where: [...QUERY.where, { field: 'salary', op: '>=', value: 200000 }] }],
    ['another minGroupSize', { ...QUERY, privacy: { ...QUERY.privacy, minGroupSize: 6 } }],
    ['another ε', { ...QUERY, privacy: { ...QUERY.privacy, dp: { mechanism: 'laplace', epsilon: 0.25 } } }],
    ['no differential privacy', { ...QUERY, privacy: { ...QUERY.privacy, dp: null } }],
    ['the statistics in another order', { ...QUERY, select: [...QUERY.select].reverse() }],
    ['no groupBy', { select: QUERY.select, where: QUERY.where, privacy: QUERY.privacy }],
  ])('tells a query apart from the same query with %s', (_name, other) => {
    expect(queryHash(other)).not.toBe(queryHash(QUERY));
  });

  it('hashes 0.5 and "0.5" alike, as documented: the participant compiles the query against its schema, which tells them apart', () => {
    expect(queryHash({ privacy: { dp: { epsilon: '0.5' } } })).toBe(queryHash({ privacy: { dp: { epsilon: 0.5 } } }));
  });

  it.each<[string, unknown]>([
    ['null', null],
    ['undefined', undefined],
    ['an array', [QUERY]],
    ['a string', JSON.stringify(QUERY)],
    ['a number', 42],
  ])('refuses %s: a query is a JSON object', (_name, value) => {
    expect(() => queryHash(value)).toThrow(new TypeError('a query must be a JSON object'));
  });

  it('refuses a value JSON cannot carry (a bigint)', () => {
    expect(() => queryHash({ select: [], maxRecords: 10n })).toThrow(TypeError);
  });
});
