import { MAX_SIGNED } from '@confide/crypto';
import fc from 'fast-check';
import {
  MAX_HISTOGRAM_BINS,
  MAX_VECTOR_LENGTH,
  assertNoOverflow,
  compileQuery,
  coordinateKey,
  deriveResults,
  ratioToNumber,
  termKey,
  termMagnitudes,
  type QuerySpec,
} from './query';
import { QueryError } from '../errors';
import { parseStudySchema, type StudySchema } from './schema';
import { parseStudyPrivacy } from '../privacy/settings';

const pima = parseStudySchema({
  name: 'pima',
  fields: [
    { name: 'glu', type: 'number', min: 0, max: 300, decimals: 0 },
    { name: 'bmi', type: 'number', min: 10, max: 80, decimals: 1 },
    { name: 'temp', type: 'number', min: -50, max: 50, decimals: 2 },
    { name: 'type', type: 'category', values: ['No', 'Yes'] },
  ],
});

function queryError(schema: StudySchema, spec: unknown): QueryError {
  try {
    compileQuery(schema, spec as QuerySpec);
  } catch (err) {
    if (err instanceof QueryError) return err;
    throw err;
  }
  throw new Error('expected compileQuery to throw');
}

describe('compileQuery', () => {
  it('compiles statistics to deduplicated linear terms and records where each one reads', () => {
    const compiled = compileQuery(pima, {
      select: [
        { stat: 'mean', field: 'glu' },
        { stat: 'count', field: 'glu' },
        { stat: 'sum', field: 'glu' },
        { stat: 'sum', field: 'bmi' },
        { stat: 'mean', field: 'glu' },
      ],
    });
    expect(compiled.terms).toEqual([
      { kind: 'count', field: 'glu' },
      { kind: 'sum', field: 'glu' },
      { kind: 'count', field: 'bmi' },
      { kind: 'sum', field: 'bmi' },
    ]);
    expect(compiled.vectorLength).toBe(4);
    expect(compiled.select.map((s) => s.termIndices)).toEqual([[0, 1], [0], [0, 1], [2, 3], [0, 1]]);
    expect(compiled.select.map((s) => s.spec)).toEqual([
      { stat: 'mean', field: 'glu' },
      { stat: 'count', field: 'glu' },
      { stat: 'sum', field: 'glu' },
      { stat: 'sum', field: 'bmi' },
      { stat: 'mean', field: 'glu' },
    ]);
    expect(compiled.schema).toBe(pima);
  });

  it('shares the count term whichever statistic asks for it first', () => {
    const compiled = compileQuery(pima, {
      select: [
        { stat: 'count', field: 'bmi' },
        { stat: 'mean', field: 'bmi' },
      ],
    });
    expect(compiled.terms.map(termKey)).toEqual(['count(bmi)', 'sum(bmi)']);
    expect(compiled.select.map((s) => s.termIndices)).toEqual([[0], [0, 1]]);
  });

  it('counts the non-missing values of a category field', () => {
    const compiled = compileQuery(pima, { select: [{ stat: 'count', field: 'type' }] });
    expect(compiled.terms).toEqual([{ kind: 'count', field: 'type' }]);
  });

  it('returns a frozen plan', () => {
    const compiled = compileQuery(pima, { select: [{ stat: 'mean', field: 'glu' }] });
    expect(Object.isFrozen(compiled)).toBe(true);
    expect(Object.isFrozen(compiled.terms)).toBe(true);
    expect(Object.isFrozen(compiled.select[0]?.termIndices)).toBe(true);
  });

  it('ignores extra keys of the spec object it was given', () => {
    const spec = { select: [{ stat: 'count', field: 'glu', note: 'x' }] };
    expect(compileQuery(pima, spec as QuerySpec).select[0]?.spec).toEqual({ stat: 'count', field: 'glu' });
  });

  it.each<[string, unknown, string]>([
    ['an empty select', { select: [] }, 'select: must list at least one statistic'],
    ['a missing select', {}, 'select: must list at least one statistic'],
    ['a null spec', null, 'select: must list at least one statistic'],
    ['an unknown statistic', { select: [{ stat: 'count', field: 'glu' }, { stat: 'median', field: 'glu' }] }, 'select[1].stat: unknown statistic "median" (known: count, sum, mean, variance, stddev, histogram, correlation, regression)'],
    ['an inherited property as statistic', { select: [{ stat: 'toString', field: 'glu' }] }, 'select[0].stat: unknown statistic "toString"'],
    ['a missing statistic', { select: [{ field: 'glu' }] }, 'select[0].stat: unknown statistic undefined'],
    ['a null select item', { select: [null] }, 'select[0].stat: unknown statistic undefined'],
    ['an unknown field', { select: [{ stat: 'mean', field: 'insulin' }] }, 'select[0].field: unknown field "insulin" in study "pima"'],
    ['a field that differs in case', { select: [{ stat: 'mean', field: 'GLU' }] }, 'select[0].field: unknown field "GLU" in study "pima"'],
    ['a missing field', { select: [{ stat: 'mean' }] }, 'select[0].field: must name a field of study "pima"'],
    ['the mean of a category field', { select: [{ stat: 'mean', field: 'type' }] }, 'select[0]: mean needs a number field; "type" is a category field'],
    ['the sum of a category field', { select: [{ stat: 'count', field: 'glu' }, { stat: 'sum', field: 'type' }] }, 'select[1]: sum needs a number field; "type" is a category field'],
  ])('rejects %s', (_what, spec, message) => {
    const err = queryError(pima, spec);
    expect(err.message.startsWith(message)).toBe(true);
    expect(err.name).toBe('QueryError');
  });
});

describe('compileQuery: the full query language', () => {
  it('compiles variance, stddev, histogram, correlation and regression to shared linear terms', () => {
    const compiled = compileQuery(pima, {
      select: [
        { stat: 'variance', field: 'glu' },
        { stat: 'stddev', field: 'glu' },
        { stat: 'histogram', field: 'bmi', bins: { min: 20, max: 40, width: 10 } },
        { stat: 'correlation', x: 'bmi', y: 'glu' },
        { stat: 'regression', x: 'bmi', y: 'glu' },
        { stat: 'mean', field: 'glu' },
      ],
    });
    expect(compiled.terms.map(termKey)).toEqual([
      'count(glu)',
      'sum(glu)',
      'sumsq(glu)',
      'bin(bmi, (-∞, 20))',
      'bin(bmi, [20, 30))',
      'bin(bmi, [30, 40))',
      'bin(bmi, [40, ∞))',
      'count(bmi, glu)',
      'sum(bmi | glu)',
      'sum(glu | bmi)',
      'sumsq(bmi | glu)',
      'sumsq(glu | bmi)',
      'sumxy(bmi, glu)',
    ]);
    expect(compiled.select.map((s) => s.termIndices)).toEqual([
      [0, 1, 2],
      [0, 1, 2],
      [3, 4, 5, 6],
      [7, 8, 9, 10, 11, 12],
      [7, 8, 9, 10, 11, 12],
      [0, 1],
    ]);
    expect(compiled.terms[4]).toEqual({ kind: 'bin', field: 'bmi', from: 200n, to: 300n, decimals: 1 });
    expect(compiled.select[3]?.spec).toEqual({ stat: 'correlation', x: 'bmi', y: 'glu' });
    expect(compiled.groups).toEqual([null]);
    expect(compiled.groupBy).toBeNull();
    expect(compiled.where).toEqual([]);
    expect(compiled.vectorLength).toBe(13);
  });

  it('lays the vector out as terms × groups, group-major, in the category’s declared order', () => {
    const compiled = compileQuery(pima, {
      select: [{ stat: 'mean', field: 'glu' }, { stat: 'count', field: 'type' }],
      where: [{ field: 'glu', op: '>=', value: 100 }],
      groupBy: 'type',
    });
    expect(compiled.groupBy).toBe('type');
    expect(compiled.groups).toEqual(['No', 'Yes']);
    expect(compiled.vectorLength).toBe(6);
    expect(Array.from({ length: 6 }, (_, i) => coordinateKey(compiled, i))).toEqual([
      'count(glu) in group type = "No"',
      'sum(glu) in group type = "No"',
      'count(type) in group type = "No"',
      'count(glu) in group type = "Yes"',
      'sum(glu) in group type = "Yes"',
      'count(type) in group type = "Yes"',
    ]);
    expect(compiled.where).toEqual([{ type: 'number', field: 'glu', min: 100n, max: null, only: null, not: [] }]);
    expect(() => coordinateKey(compiled, 6)).toThrow(RangeError);
  });

  it('derives grouped rows group by group, each with its group', () => {
    const compiled = compileQuery(pima, { select: [{ stat: 'mean', field: 'glu' }, { stat: 'count', field: 'type' }], groupBy: 'type' });
    expect(deriveResults(compiled, [2n, 300n, 2n, 1n, 99n, 1n])).toEqual([
      { stat: 'mean', field: 'glu', group: 'No', value: 150, count: 2 },
      { stat: 'count', field: 'type', group: 'No', value: 2, count: 2 },
      { stat: 'mean', field: 'glu', group: 'Yes', value: 99, count: 1 },
      { stat: 'count', field: 'type', group: 'Yes', value: 1, count: 1 },
    ]);
  });

  it('derives each statistic from hand-made totals', () => {
    const compiled = compileQuery(pima, {
      select: [
        { stat: 'variance', field: 'glu' },
        { stat: 'stddev', field: 'glu' },
        { stat: 'histogram', field: 'bmi', edges: [20, 30, 40] },
        { stat: 'correlation', x: 'bmi', y: 'glu' },
        { stat: 'regression', x: 'bmi', y: 'glu' },
      ],
    });
    // glu: 1, 2, 3, 4 (n 4, Σ 10, Σ² 30); bins 1, 2, 3, 4; pairs (bmi 2.0, glu 1), (3.0, 3), (4.0, 2).
    const totals = [4n, 10n, 30n, 1n, 2n, 3n, 4n, 3n, 90n, 6n, 2900n, 14n, 190n];
    expect(compiled.terms.map(termKey)).toHaveLength(totals.length);
    expect(deriveResults(compiled, totals)).toEqual([
      { stat: 'variance', field: 'glu', group: null, value: 5 / 3, count: 4 },
      { stat: 'stddev', field: 'glu', group: null, value: Math.sqrt(5 / 3), count: 4 },
      { stat: 'histogram', field: 'bmi', group: null, value: { bins: [{ min: 20, max: 30, count: 2 }, { min: 30, max: 40, count: 3 }], underflow: 1, overflow: 4 }, count: 10 },
      { stat: 'correlation', x: 'bmi', y: 'glu', group: null, value: 0.5, count: 3 },
      { stat: 'regression', x: 'bmi', y: 'glu', group: null, value: { slope: 0.5, intercept: 0.5, r2: 0.25 }, count: 3 },
    ]);
  });

  it('returns one magnitude per coordinate: Σx² from the bounds squared, Σxy from both, repeated per group', () => {
    const compiled = compileQuery(pima, {
      select: [{ stat: 'variance', field: 'temp' }, { stat: 'correlation', x: 'glu', y: 'temp' }, { stat: 'histogram', field: 'glu', edges: [0, 100] }],
      groupBy: 'type',
    });
    const perGroup = [
      10n, // count(temp)
      10n * 5000n, // sum(temp): |±50.00| = 5000 at 2 decimals
      10n * 5000n * 5000n, // sumsq(temp)
      10n, // count(glu, temp)
      10n * 300n, // sum(glu | temp)
      10n * 5000n, // sum(temp | glu)
      10n * 300n * 300n, // sumsq(glu | temp)
      10n * 5000n * 5000n, // sumsq(temp | glu)
      10n * 300n * 5000n, // sumxy(glu, temp)
      10n,
      10n,
      10n, // three bins
    ];
    expect(compiled.terms).toHaveLength(perGroup.length);
    expect(termMagnitudes(compiled, 10n)).toEqual([...perGroup, ...perGroup]);
    expect(termMagnitudes(compiled, 10n)).toHaveLength(compiled.vectorLength);
  });

  it('names the overflowing square and its group', () => {
    const schema = parseStudySchema({
      name: 'wide',
      fields: [
        { name: 'x', type: 'number', min: -1e15, max: 1e15, decimals: 3 },
        { name: 'site', type: 'category', values: ['north', 'south'] },
      ],
    });
    // Σx² reaches n·10^36 > 2^126 ≈ 8.5·10^37 from n = 100; Σx stays far below.
    const compiled = compileQuery(schema, { select: [{ stat: 'stddev', field: 'x' }], groupBy: 'site' });
    expect(() => assertNoOverflow(compiled, 85n)).not.toThrow();
    expect(() => assertNoOverflow(compiled, 100n)).toThrow(/^sumsq\(x\) in group site = "north" can reach 100000000000000000000000000000000000000 over 100 records/);
  });

  it('deduplicates bins that two histograms share and keys bins by their fixed-point thresholds', () => {
    const compiled = compileQuery(pima, {
      select: [
        { stat: 'histogram', field: 'glu', edges: [0, 100, 200] },
        { stat: 'histogram', field: 'glu', edges: [-0.5, 99.2, 200] },
      ],
    });
    // On an integer field, v ≥ 99.2 exactly when v ≥ 100, and v ≥ −0.5 when v ≥ 0: the same bins.
    expect(compiled.terms.map(termKey)).toEqual(['bin(glu, (-∞, 0))', 'bin(glu, [0, 100))', 'bin(glu, [100, 200))', 'bin(glu, [200, ∞))']);
    expect(deriveResults(compiled, [1n, 2n, 3n, 4n]).map((r) => r.value)).toEqual([
      { bins: [{ min: 0, max: 100, count: 2 }, { min: 100, max: 200, count: 3 }], underflow: 1, overflow: 4 },
      { bins: [{ min: -0.5, max: 99.2, count: 2 }, { min: 99.2, max: 200, count: 3 }], underflow: 1, overflow: 4 },
    ]);
  });

  it(`allows ${MAX_HISTOGRAM_BINS} bins and no more`, () => {
    expect(compileQuery(pima, { select: [{ stat: 'histogram', field: 'temp', bins: { min: -5, max: 5, width: 0.01 } }] }).vectorLength).toBe(MAX_HISTOGRAM_BINS + 2);
    const edges = Array.from({ length: MAX_HISTOGRAM_BINS + 1 }, (_, i) => i);
    expect(compileQuery(pima, { select: [{ stat: 'histogram', field: 'glu', edges }] }).vectorLength).toBe(MAX_HISTOGRAM_BINS + 2);
  });

  it('keeps the spec it was given, reduced to the keys it knows, and ignores privacy', () => {
    const spec = {
      select: [{ stat: 'histogram', field: 'glu', bins: { min: 0, max: 300, width: 50, colour: 'red' }, note: 1 }],
      privacy: { minGroupSize: 5 },
      study: 'pima',
    };
    const compiled = compileQuery(pima, spec as unknown as QuerySpec);
    expect(compiled.select[0]?.spec).toEqual({ stat: 'histogram', field: 'glu', bins: { min: 0, max: 300, width: 50 } });
    expect(Object.isFrozen(compiled.select[0]?.spec)).toBe(true);
    expect(Object.isFrozen(compiled.where)).toBe(true);
  });

  it.each<[string, unknown, string]>([
    ['a histogram of a category field', { select: [{ stat: 'mean', field: 'glu' }, { stat: 'count', field: 'glu' }, { stat: 'histogram', field: 'type', edges: [0, 1] }] }, 'select[2]: histogram needs a number field; "type" is a category field'],
    ['the variance of a category field', { select: [{ stat: 'variance', field: 'type' }] }, 'select[0]: variance needs a number field; "type" is a category field'],
    ['the stddev of an unknown field', { select: [{ stat: 'stddev', field: 'insulin' }] }, 'select[0].field: unknown field "insulin" in study "pima"'],
    ['a histogram with neither bins nor edges', { select: [{ stat: 'histogram', field: 'glu' }] }, 'select[0]: histogram needs either bins { min, max, width } or edges, not neither'],
    ['a histogram with both bins and edges', { select: [{ stat: 'histogram', field: 'glu', bins: { min: 0, max: 1, width: 1 }, edges: [0, 1] }] }, 'select[0]: histogram needs either bins { min, max, width } or edges, not both'],
    ['bins that are not an object', { select: [{ stat: 'histogram', field: 'glu', bins: [0, 10, 1] }] }, 'select[0].bins: must be { min, max, width }'],
    ['a zero width', { select: [{ stat: 'histogram', field: 'glu', bins: { min: 0, max: 300, width: 0 } }] }, 'select[0].bins.width: must be greater than 0, got 0'],
    ['a negative width', { select: [{ stat: 'histogram', field: 'glu', bins: { min: 0, max: 300, width: -5 } }] }, 'select[0].bins.width: must be greater than 0, got -5'],
    ['a missing width', { select: [{ stat: 'histogram', field: 'glu', bins: { min: 0, max: 300 } }] }, 'select[0].bins.width: must be a finite number'],
    ['a string min', { select: [{ stat: 'histogram', field: 'glu', bins: { min: '0', max: 300, width: 5 } }] }, 'select[0].bins.min: must be a finite number'],
    ['min equal to max', { select: [{ stat: 'histogram', field: 'glu', bins: { min: 100, max: 100, width: 5 } }] }, 'select[0].bins: min (100) must be less than max (100)'],
    ['min above max', { select: [{ stat: 'histogram', field: 'glu', bins: { min: 200, max: 100, width: 5 } }] }, 'select[0].bins: min (200) must be less than max (100)'],
    ['too many equal-width bins', { select: [{ stat: 'histogram', field: 'glu', bins: { min: 0, max: 300, width: 0.29 } }] }, `select[0].bins: (max − min) / width makes 1035 bins, more than the ${MAX_HISTOGRAM_BINS} allowed`],
    ['a width so small the bins cannot be counted in doubles', { select: [{ stat: 'histogram', field: 'glu', bins: { min: 0, max: 300, width: 1e-300 } }] }, 'select[0].bins: (max − min) / width makes 3'],
    ['too many edges', { select: [{ stat: 'histogram', field: 'glu', edges: Array.from({ length: 1002 }, (_, i) => i) }] }, `select[0].edges: 1002 edges make 1001 bins, more than the ${MAX_HISTOGRAM_BINS} allowed`],
    ['a single edge', { select: [{ stat: 'histogram', field: 'glu', edges: [5] }] }, 'select[0].edges: must be a list of at least 2 numbers'],
    ['edges that are not a list', { select: [{ stat: 'histogram', field: 'glu', edges: '0,1' }] }, 'select[0].edges: must be a list of at least 2 numbers'],
    ['edges not strictly increasing', { select: [{ stat: 'histogram', field: 'glu', edges: [0, 50, 50, 100] }] }, 'select[0].edges[2]: 50 is not greater than the edge before it (50); edges must be strictly increasing'],
    ['decreasing edges', { select: [{ stat: 'histogram', field: 'glu', edges: [0, 100, 50] }] }, 'select[0].edges[2]: 50 is not greater than the edge before it (100)'],
    ['a non-number edge', { select: [{ stat: 'histogram', field: 'glu', edges: [0, null] }] }, 'select[0].edges[1]: must be a finite number'],
    ['a correlation with a category x', { select: [{ stat: 'correlation', x: 'type', y: 'glu' }] }, 'select[0]: correlation needs number fields; "type" (x) is a category field'],
    ['a regression with a category y', { select: [{ stat: 'regression', x: 'glu', y: 'type' }] }, 'select[0]: regression needs number fields; "type" (y) is a category field'],
    ['a regression without y', { select: [{ stat: 'regression', x: 'glu' }] }, 'select[0].y: must name a field of study "pima"'],
    ['a correlation given field instead of x', { select: [{ stat: 'correlation', field: 'glu', y: 'bmi' }] }, 'select[0].x: must name a field of study "pima"'],
    ['a correlation of an unknown field', { select: [{ stat: 'correlation', x: 'glu', y: 'insulin' }] }, 'select[0].y: unknown field "insulin" in study "pima"'],
    ['a group-by on a number field', { select: [{ stat: 'count', field: 'glu' }], groupBy: 'bmi' }, 'groupBy: "bmi" is a number field; only a category field can group'],
    ['a group-by on an unknown field', { select: [{ stat: 'count', field: 'glu' }], groupBy: 'site' }, 'groupBy: unknown field "site" in study "pima"'],
    ['a group-by that is not a name', { select: [{ stat: 'count', field: 'glu' }], groupBy: ['type'] }, 'groupBy: must name a category field of study "pima"'],
    ['a contradictory where', { select: [{ stat: 'count', field: 'glu' }], where: [{ field: 'glu', op: '>=', value: 40 }, { field: 'glu', op: '<', value: 30 }] }, 'where: conditions on "glu" can never all hold'],
    ['a where with an unknown operator', { select: [{ stat: 'count', field: 'glu' }], where: [{ field: 'glu', op: '=>', value: 40 }] }, 'where[0].op: unknown operator "=>"'],
    ['a where on an unknown field', { select: [{ stat: 'count', field: 'glu' }], where: [{ field: 'age', op: '>=', value: 40 }] }, 'where[0].field: unknown field "age" in study "pima"'],
  ])('rejects %s, naming it', (_what, spec, message) => {
    const err = queryError(pima, spec);
    expect(err.message.startsWith(message)).toBe(true);
    expect(err.name).toBe('QueryError');
  });

  it(`refuses a vector longer than ${MAX_VECTOR_LENGTH}`, () => {
    const values = Array.from({ length: 500 }, (_, i) => `v${i}`);
    const schema = parseStudySchema({ name: 'many', fields: [{ name: 'x', type: 'number', min: 0, max: 1, decimals: 2 }, { name: 'c', type: 'category', values }] });
    const edges = Array.from({ length: MAX_HISTOGRAM_BINS + 1 }, (_, i) => i);
    const select = [0, 0.5, 0.25].map((shift) => ({ stat: 'histogram' as const, field: 'x', edges: edges.map((e) => e + shift) }));
    expect(compileQuery(schema, { select: select.slice(0, 1), groupBy: 'c' }).vectorLength).toBe(1002 * 500);
    expect(queryError(schema, { select, groupBy: 'c' }).message).toMatch(/^the query needs \d+ aggregate values \(\d+ terms × 500 groups\), more than the 1000000 allowed/);
  });
});

/** A one-field schema with bounds set directly, for overflow boundaries a JSON number cannot express exactly. */
function boundedSchema(min: bigint, max: bigint): StudySchema {
  return {
    name: 'edge',
    minParticipants: 3,
    outOfRange: 'reject',
    minThreshold: null,
    privacy: parseStudyPrivacy(undefined),
    fields: [{ name: 'x', type: 'number', min: Number(min), max: Number(max), decimals: 0, bounds: { min, max } }],
  };
}

describe('assertNoOverflow', () => {
  it('accepts a count over exactly (p − 1)/2 records and refuses one more', () => {
    const compiled = compileQuery(pima, { select: [{ stat: 'count', field: 'glu' }] });
    expect(() => assertNoOverflow(compiled, MAX_SIGNED)).not.toThrow();
    expect(() => assertNoOverflow(compiled, MAX_SIGNED + 1n)).toThrow(
      new QueryError(
        `count(glu) can reach ${MAX_SIGNED + 1n} over ${MAX_SIGNED + 1n} records, more than the field holds as a signed ` +
          `integer (${MAX_SIGNED}); narrow the field's bounds or lower the participants' maximum record counts`,
      ),
    );
  });

  it('accepts a sum whose bound times the record count is exactly (p − 1)/2, and refuses a bound one larger', () => {
    // (p − 1)/2 = 2^126 − 1 is divisible by 3.
    const bound = MAX_SIGNED / 3n;
    expect(bound * 3n).toBe(MAX_SIGNED);
    const fits = compileQuery(boundedSchema(-bound, bound), { select: [{ stat: 'sum', field: 'x' }] });
    expect(() => assertNoOverflow(fits, 3n)).not.toThrow();
    expect(() => assertNoOverflow(fits, 4n)).toThrow(/^sum\(x\) can reach \d+ over 4 records/);
    for (const [min, max] of [
      [-bound, bound + 1n],
      [-bound - 1n, bound],
    ] as const) {
      const over = compileQuery(boundedSchema(min, max), { select: [{ stat: 'mean', field: 'x' }] });
      expect(() => assertNoOverflow(over, 3n)).toThrow(new RegExp(`^sum\\(x\\) can reach ${MAX_SIGNED + 3n} over 3 records`));
    }
  });

  it('checks bounds parsed from a schema at their fixed-point scale', () => {
    // max 1e19 at 18 decimals is 10^37 scaled; (2^126 − 1) / 10^37 ≈ 8.5, so 8 records fit and 9 do not.
    const schema = parseStudySchema({ name: 'big', fields: [{ name: 'x', type: 'number', min: 0, max: 1e19, decimals: 18 }] });
    const compiled = compileQuery(schema, { select: [{ stat: 'mean', field: 'x' }] });
    expect(() => assertNoOverflow(compiled, 8n)).not.toThrow();
    expect(() => assertNoOverflow(compiled, 9n)).toThrow(/^sum\(x\) can reach 90000000000000000000000000000000000000 over 9 records/);
  });

  it('passes realistic studies with room to spare', () => {
    const compiled = compileQuery(pima, {
      select: [
        { stat: 'mean', field: 'glu' },
        { stat: 'sum', field: 'temp' },
        { stat: 'count', field: 'type' },
      ],
    });
    expect(() => assertNoOverflow(compiled, 10n ** 12n)).not.toThrow();
  });

  it('rejects a negative record count', () => {
    const compiled = compileQuery(pima, { select: [{ stat: 'count', field: 'glu' }] });
    expect(() => assertNoOverflow(compiled, -1n)).toThrow(RangeError);
  });
});

describe('deriveResults', () => {
  const compiled = compileQuery(pima, {
    select: [
      { stat: 'mean', field: 'glu' },
      { stat: 'count', field: 'glu' },
      { stat: 'sum', field: 'bmi' },
      { stat: 'mean', field: 'bmi' },
      { stat: 'sum', field: 'temp' },
      { stat: 'mean', field: 'temp' },
      { stat: 'count', field: 'type' },
    ],
  });
  it('derives count, exact sums and correctly rounded means', () => {
    expect(compiled.terms.map(termKey)).toEqual(['count(glu)', 'sum(glu)', 'count(bmi)', 'sum(bmi)', 'count(temp)', 'sum(temp)', 'count(type)']);
    const results = deriveResults(compiled, [532n, 64388n, 532n, 174976n, 3n, -1001n, 530n]);
    expect(results).toEqual([
      { stat: 'mean', field: 'glu', group: null, value: 121.03007518796993, count: 532 },
      { stat: 'count', field: 'glu', group: null, value: 532, count: 532 },
      { stat: 'sum', field: 'bmi', group: null, value: 17497.6, count: 532 },
      { stat: 'mean', field: 'bmi', group: null, value: 32.89022556390977, count: 532 },
      { stat: 'sum', field: 'temp', group: null, value: -10.01, count: 3 },
      { stat: 'mean', field: 'temp', group: null, value: -3.3366666666666664, count: 3 },
      { stat: 'count', field: 'type', group: null, value: 530, count: 530 },
    ]);
  });

  it('gives a null mean and a zero sum when no value was present', () => {
    const results = deriveResults(compiled, [0n, 0n, 0n, 0n, 0n, 0n, 0n]);
    expect(results.map((r) => [r.stat, r.value, r.count])).toEqual([
      ['mean', null, 0],
      ['count', 0, 0],
      ['sum', 0, 0],
      ['mean', null, 0],
      ['sum', 0, 0],
      ['mean', null, 0],
      ['count', 0, 0],
    ]);
  });

  it('refuses a totals vector of the wrong length', () => {
    expect(() => deriveResults(compiled, [1n, 2n])).toThrow(new RangeError('expected 7 totals, got 2'));
  });

  it('refuses a negative or unsafe count, which only a corrupt aggregate can hold', () => {
    expect(() => deriveResults(compiled, [-1n, 0n, 0n, 0n, 0n, 0n, 0n])).toThrow(/count total -1 is not a valid count/);
    expect(() => deriveResults(compiled, [2n ** 53n, 0n, 0n, 0n, 0n, 0n, 0n])).toThrow(RangeError);
  });

  it('matches the exact decimal value of any sum', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: -(10n ** 30n), max: 10n ** 30n }), (total) => {
        const sum = deriveResults(compiled, [0n, 0n, 1n, total, 0n, 0n, 0n])[2];
        expect(sum?.stat).toBe('sum');
        const digits = (total < 0n ? -total : total).toString().padStart(2, '0');
        const exact = `${total < 0n ? '-' : ''}${digits.slice(0, -1)}.${digits.slice(-1)}`;
        expect(sum?.value).toBe(Number(exact));
      }),
    );
  });
});

// ---------------------------------------------------------------------------------------------------------
// ratioToNumber against exact arithmetic.

const view = new DataView(new ArrayBuffer(8));
const bitsOf = (x: number): bigint => {
  view.setFloat64(0, x);
  return view.getBigUint64(0);
};
const fromBits = (bits: bigint): number => {
  view.setBigUint64(0, bits);
  return view.getFloat64(0);
};

/** The exact value of a finite non-negative double as numerator / 2^shift. */
function exact(x: number): { num: bigint; shift: bigint } {
  const bits = bitsOf(x);
  const exponent = (bits >> 52n) & 0x7ffn;
  const fraction = bits & ((1n << 52n) - 1n);
  return exponent === 0n ? { num: fraction, shift: 1074n } : { num: fraction | (1n << 52n), shift: 1075n - exponent };
}

/** |n/d − x| compared as exact rationals with a common denominator d·2^1074 (every double is a multiple of 2^−1074). */
function distance(n: bigint, d: bigint, x: number): bigint {
  const { num, shift } = exact(x);
  const diff = (n << 1074n) - ((num * d) << (1074n - shift));
  return diff < 0n ? -diff : diff;
}

/** Asserts that r is n/d (n ≥ 0, d > 0) rounded to nearest, ties to even. */
function expectNearest(n: bigint, d: bigint, r: number): void {
  expect(r >= 0 && Number.isFinite(r)).toBe(true);
  const here = distance(n, d, r);
  const up = distance(n, d, fromBits(bitsOf(r) + 1n));
  expect(here <= up).toBe(true);
  if (r > 0) {
    const down = distance(n, d, fromBits(bitsOf(r) - 1n));
    expect(here <= down).toBe(true);
    if (here === down || here === up) expect(bitsOf(r) & 1n).toBe(0n);
  } else if (here === up) {
    expect(bitsOf(r) & 1n).toBe(0n);
  }
}

describe('ratioToNumber', () => {
  it.each<[bigint, bigint, number]>([
    [64388n, 532n, 121.03007518796993],
    [1n, 3n, 1 / 3],
    [-1n, 3n, -1 / 3],
    [1n, -3n, -1 / 3],
    [-2n, -4n, 0.5],
    [0n, 7n, 0],
    [0n, -7n, 0],
    [174976n, 10n, 17497.6],
    [2n ** 53n + 1n, 1n, 2 ** 53], // a tie: to even
    [2n ** 53n + 3n, 1n, 2 ** 53 + 4], // a tie: to even, upwards
    [2n ** 54n + 3n, 2n, 2 ** 53 + 2], // just above a tie
    [1n, 2n ** 1074n, Number.MIN_VALUE],
    [1n, 2n ** 1075n, 0], // half the smallest subnormal: a tie, to even (zero)
    [3n, 2n ** 1076n, Number.MIN_VALUE], // 0.75 of it
    [1n, 10n ** 400n, 0],
    [10n ** 400n, 1n, Infinity],
    [-(10n ** 400n), 3n, -Infinity],
    [10n ** 308n * 17976931348623157n, 10n ** 16n, Number.MAX_VALUE],
  ])('%p / %p = %p', (n, d, expected) => {
    expect(ratioToNumber(n, d)).toBe(expected);
  });

  it('refuses a zero denominator', () => {
    expect(() => ratioToNumber(1n, 0n)).toThrow(RangeError);
  });

  it('equals IEEE division when both operands are exact doubles', () => {
    const safe = fc.bigInt({ min: -(2n ** 53n), max: 2n ** 53n });
    fc.assert(
      fc.property(safe, safe.filter((d) => d !== 0n), (n, d) => {
        // IEEE gives −0 for 0 / −1; a statistic of zero is +0.
        expect(ratioToNumber(n, d)).toBe(n === 0n ? 0 : Number(n) / Number(d));
      }),
      { numRuns: 2000 },
    );
  });

  it('is the nearest double, ties to even, for large and tiny ratios', () => {
    const big = fc.bigInt({ min: 1n, max: 2n ** 400n });
    fc.assert(
      fc.property(big, big, (n, d) => {
        expectNearest(n, d, ratioToNumber(n, d));
      }),
      { numRuns: 1000 },
    );
  });

  it('is the nearest double near ties and in the subnormal range', () => {
    // n = odd · 2^k over a power of two (exact ties and their neighbours), and denominators down to 2^−1100.
    const arb = fc.record({
      m: fc.bigInt({ min: 2n ** 53n, max: 2n ** 55n }),
      nudge: fc.constantFrom(-1n, 0n, 1n),
      k: fc.integer({ min: 0, max: 60 }),
      s: fc.integer({ min: 0, max: 1200 }),
      odd: fc.bigInt({ min: 1n, max: 1000n }),
    });
    fc.assert(
      fc.property(arb, ({ m, nudge, k, s, odd }) => {
        const n = (m << BigInt(k)) + nudge;
        if (n <= 0n) return;
        const d = odd << BigInt(s);
        const r = ratioToNumber(n, d);
        if (Number.isFinite(r)) expectNearest(n, d, r);
        expect(ratioToNumber(-n, d)).toBe(-r);
      }),
      { numRuns: 2000 },
    );
  });
});
