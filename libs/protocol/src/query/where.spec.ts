import { aggregateLocal } from './aggregate';
import type { DataRecord } from './csv';
import { QueryError } from '../errors';
import { compileQuery, type QuerySpec } from './query';
import { parseStudySchema } from './schema';
import { compileWhere } from './where';

const schema = parseStudySchema({
  name: 'clinic',
  fields: [
    { name: 'age', type: 'number', min: 18, max: 120, decimals: 0 },
    { name: 'bmi', type: 'number', min: 10, max: 80, decimals: 1 },
    { name: 'type', type: 'category', values: ['No', 'Yes', 'Unsure'] },
  ],
});

function whereError(where: unknown): QueryError {
  try {
    compileWhere(schema, where);
  } catch (err) {
    if (err instanceof QueryError) return err;
    throw err;
  }
  throw new Error('expected compileWhere to throw');
}

/** How many of the records pass the where (through aggregateLocal, as a participant evaluates it). */
async function passing(where: QuerySpec['where'], records: readonly DataRecord[]): Promise<number> {
  const compiled = compileQuery(schema, { select: [{ stat: 'count', field: 'age' }], where });
  const { vector } = await aggregateLocal(
    compiled,
    // Every record has an age, so count(age) counts the records that pass.
    records.map((r) => [r[0] ?? 50n, r[1] ?? null, r[2] ?? null]),
  );
  return Number(vector[0]);
}

describe('compileWhere', () => {
  it('gives no filters for no where', () => {
    expect(compileWhere(schema, undefined)).toEqual([]);
    expect(compileWhere(schema, null)).toEqual([]);
    expect(compileWhere(schema, [])).toEqual([]);
  });

  it('merges the conditions on each field into one filter in fixed-point units, in order of first appearance', () => {
    const filters = compileWhere(schema, [
      { field: 'bmi', op: '>=', value: 25 },
      { field: 'type', op: '!=', value: 'Unsure' },
      { field: 'bmi', op: '<', value: 30.05 },
      { field: 'bmi', op: '!=', value: 27.5 },
      { field: 'bmi', op: '!=', value: 99 },
    ]);
    expect(filters).toEqual([
      // bmi < 30.05 at one decimal is bmi ≤ 30.0; the exclusion outside the limits is dropped.
      { type: 'number', field: 'bmi', min: 250n, max: 300n, only: null, not: [275n] },
      { type: 'category', field: 'type', values: ['No', 'Yes'] },
    ]);
  });

  it.each<[string, unknown, { min: bigint | null; max: bigint | null; only: bigint[] | null }]>([
    ['> a value between two representable ones', { op: '>', value: 39.5 }, { min: 40n, max: null, only: null }],
    ['>= a value between two representable ones', { op: '>=', value: 39.5 }, { min: 40n, max: null, only: null }],
    ['< a value between two representable ones', { op: '<', value: 39.5 }, { min: null, max: 39n, only: null }],
    ['<= a value between two representable ones', { op: '<=', value: 39.5 }, { min: null, max: 39n, only: null }],
    ['> a representable value', { op: '>', value: 40 }, { min: 41n, max: null, only: null }],
    ['< a representable value', { op: '<', value: 40 }, { min: null, max: 39n, only: null }],
    ['in, keeping only the representable values', { op: 'in', value: [39.5, 40, 41, 40] }, { min: null, max: null, only: [40n, 41n] }],
  ])('compares exactly as rationals: age %s', (_what, condition, expected) => {
    expect(compileWhere(schema, [{ field: 'age', ...(condition as object) }])).toEqual([{ type: 'number', field: 'age', not: [], ...expected }]);
  });

  it('rounds limits between representable values toward the condition for negative values too', () => {
    const temps = parseStudySchema({ name: 't', fields: [{ name: 't', type: 'number', min: -50, max: 50, decimals: 1 }] });
    expect(compileWhere(temps, [{ field: 't', op: '<', value: -0.55 }, { field: 't', op: '>', value: -10.05 }])).toEqual([
      { type: 'number', field: 't', min: -100n, max: -6n, only: null, not: [] },
    ]);
    expect(compileWhere(temps, [{ field: 't', op: '<=', value: -0.55 }, { field: 't', op: '>=', value: -10.05 }])).toEqual([
      { type: 'number', field: 't', min: -100n, max: -6n, only: null, not: [] },
    ]);
  });

  it('intersects = and in on the same field, and drops excluded or out-of-limit values from the allowed set', () => {
    const [filter] = compileWhere(schema, [
      { field: 'age', op: 'in', value: [30, 40, 50, 60] },
      { field: 'age', op: 'in', value: [40, 50, 60, 70] },
      { field: 'age', op: '!=', value: 50 },
      { field: 'age', op: '<', value: 60 },
    ]);
    expect(filter).toEqual({ type: 'number', field: 'age', min: null, max: null, only: [40n], not: [] });
  });

  it.each<[string, unknown[], string]>([
    ['a lower limit above the upper one', [{ field: 'age', op: '>=', value: 40 }, { field: 'age', op: '<', value: 30 }], 'where: conditions on "age" can never all hold (where[0] age >= 40; where[1] age < 30)'],
    ['two different category values', [{ field: 'type', op: '=', value: 'Yes' }, { field: 'type', op: '=', value: 'No' }], 'where: conditions on "type" can never all hold (where[0] type = "Yes"; where[1] type = "No")'],
    ['an empty in', [{ field: 'type', op: 'in', value: [] }], 'where: conditions on "type" can never all hold (where[0] type in [])'],
    ['an empty numeric in', [{ field: 'age', op: 'in', value: [] }], 'where: conditions on "age" can never all hold (where[0] age in [])'],
    ['every category value excluded', [{ field: 'type', op: '!=', value: 'Yes' }, { field: 'type', op: 'in', value: ['Yes', 'No'] }, { field: 'type', op: '!=', value: 'No' }], 'where: conditions on "type" can never all hold'],
    ['= a value finer than the field', [{ field: 'age', op: '=', value: 39.5 }], 'where: conditions on "age" can never all hold (where[0] age = 39.5)'],
    ['a range whose every value is excluded', [{ field: 'age', op: '>=', value: 40 }, { field: 'age', op: '<=', value: 41 }, { field: 'age', op: '!=', value: 40 }, { field: 'age', op: '!=', value: 41 }], 'where: conditions on "age" can never all hold'],
    ['a limit outside the study bounds', [{ field: 'age', op: '>', value: 120 }], 'where: conditions on "age" can never all hold within its range 18 to 120 (where[0] age > 120)'],
    ['an = outside the study bounds', [{ field: 'bmi', op: '=', value: 5 }], 'where: conditions on "bmi" can never all hold within its range 10 to 80'],
  ])('refuses %s', (_what, where, message) => {
    const err = whereError(where);
    expect(err.message.startsWith(message)).toBe(true);
  });

  it('accepts conditions that only just hold', () => {
    expect(() => compileWhere(schema, [{ field: 'age', op: '>=', value: 120 }])).not.toThrow();
    expect(() => compileWhere(schema, [{ field: 'age', op: '>', value: 119.9 }, { field: 'age', op: '<', value: 120.1 }])).not.toThrow();
    expect(() => compileWhere(schema, [{ field: 'age', op: '>=', value: 40 }, { field: 'age', op: '<=', value: 41 }, { field: 'age', op: '!=', value: 40 }])).not.toThrow();
    expect(() => compileWhere(schema, [{ field: 'type', op: '!=', value: 'Yes' }, { field: 'type', op: '!=', value: 'No' }])).not.toThrow();
  });

  it.each<[string, unknown, string]>([
    ['a where that is not a list', { field: 'age' }, 'where: must be a list of conditions { field, op, value }'],
    ['a condition that is not an object', [1], 'where[0]: must be a condition { field, op, value }'],
    ['a missing field', [{ op: '=', value: 1 }], 'where[0].field: must name a field of study "clinic"'],
    ['an unknown field', [{ field: 'age', op: '>', value: 20 }, { field: 'weight', op: '>', value: 1 }], 'where[1].field: unknown field "weight" in study "clinic"'],
    ['an unknown operator', [{ field: 'age', op: '~', value: 1 }], 'where[0].op: unknown operator "~" (known: =, !=, <, <=, >, >=, in)'],
    ['a missing operator', [{ field: 'age', value: 1 }], 'where[0].op: unknown operator undefined'],
    ['an order comparison on a category', [{ field: 'type', op: '<', value: 'Yes' }], 'where[0].op: "<" needs a number field; "type" is a category field (use =, != or in)'],
    ['a string for a number field', [{ field: 'age', op: '>', value: '40' }], 'where[0].value: must be a finite number; "age" is a number field'],
    ['a non-finite number', [{ field: 'age', op: '>', value: null }], 'where[0].value: must be a finite number'],
    ['a number for a category field', [{ field: 'type', op: '=', value: 1 }], 'where[0].value: must be a string; "type" is a category field'],
    ['an undeclared category value', [{ field: 'type', op: '=', value: 'yes' }], 'where[0].value: "yes" is not a value of "type" (expected one of "No", "Yes", "Unsure")'],
    ['in without a list', [{ field: 'type', op: 'in', value: 'Yes' }], 'where[0].value: "in" needs a list of values'],
    ['a list for =', [{ field: 'type', op: '=', value: ['Yes'] }], 'where[0].value: "=" compares with one value; use "in" for a list'],
    ['a bad value inside in', [{ field: 'age', op: 'in', value: [40, 'x'] }], 'where[0].value[1]: must be a finite number'],
  ])('refuses %s, naming it', (_what, where, message) => {
    const err = whereError(where);
    expect(err.message.startsWith(message)).toBe(true);
    expect(err.name).toBe('QueryError');
  });
});

describe('where, evaluated by the participant', () => {
  const records: DataRecord[] = [
    [39n, 250n, 'No'],
    [40n, null, 'Yes'],
    [41n, 301n, null],
    [60n, 300n, 'Unsure'],
    [18n, 100n, 'Yes'],
  ];

  it.each<[string, number, QuerySpec['where']]>([
    ['no where', 5, undefined],
    ['age >= 40', 3, [{ field: 'age', op: '>=', value: 40 }]],
    ['age > 39.5', 3, [{ field: 'age', op: '>', value: 39.5 }]],
    ['age < 40', 2, [{ field: 'age', op: '<', value: 40 }]],
    ['age in [18, 60, 61]', 2, [{ field: 'age', op: 'in', value: [18, 60, 61] }]],
    ['age != 40', 4, [{ field: 'age', op: '!=', value: 40 }]],
    ['bmi <= 30 (missing bmi fails)', 3, [{ field: 'bmi', op: '<=', value: 30 }]],
    ['bmi != 30 (missing bmi fails even !=)', 3, [{ field: 'bmi', op: '!=', value: 30 }]],
    ['bmi = 30.0', 1, [{ field: 'bmi', op: '=', value: 30 }]],
    ['type = Yes', 2, [{ field: 'type', op: '=', value: 'Yes' }]],
    ['type != Yes (missing type fails)', 2, [{ field: 'type', op: '!=', value: 'Yes' }]],
    ['type in [No, Unsure]', 2, [{ field: 'type', op: 'in', value: ['No', 'Unsure'] }]],
    ['age >= 40 and type = Yes', 1, [{ field: 'age', op: '>=', value: 40 }, { field: 'type', op: '=', value: 'Yes' }]],
  ])('%s keeps %p records', async (_what, expected, where) => {
    expect(await passing(where, records)).toBe(expected);
  });

  it('refuses a compared value that is not a fixed-point integer', async () => {
    const compiled = compileQuery(schema, { select: [{ stat: 'count', field: 'type' }], where: [{ field: 'age', op: '>', value: 1 }] });
    await expect(aggregateLocal(compiled, [['40', null, 'No']])).rejects.toThrow(new TypeError('record 1: a filtered value is not a fixed-point integer'));
  });
});
