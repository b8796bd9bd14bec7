import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { SchemaError, fieldIndex, loadStudySchema, parseStudySchema, toStudySchemaJson, type StudySchemaJson } from './schema';

const valid = (): StudySchemaJson => ({
  name: 'pima',
  fields: [
    { name: 'glu', type: 'number', min: 0, max: 300, decimals: 0 },
    { name: 'bmi', type: 'number', min: 10, max: 80.5, decimals: 1 },
    { name: 'temp', type: 'number', min: -40.25, max: 45, decimals: 2 },
    { name: 'type', type: 'category', values: ['No', 'Yes'] },
  ],
});

/** The SchemaError thrown for `json`, for asserting its issues. */
function schemaError(json: unknown): SchemaError {
  try {
    parseStudySchema(json);
  } catch (err) {
    if (err instanceof SchemaError) return err;
    throw err;
  }
  throw new Error('expected parseStudySchema to throw');
}

/** valid() with one field replaced. */
function withField(index: number, field: unknown): unknown {
  const json = valid() as { fields: unknown[] };
  json.fields[index] = field;
  return json;
}

describe('parseStudySchema', () => {
  it('applies the defaults and carries numeric bounds as scaled bigints', () => {
    const schema = parseStudySchema(valid());
    expect(schema.name).toBe('pima');
    expect(schema.minParticipants).toBe(3);
    expect(schema.outOfRange).toBe('reject');
    expect(schema.fields).toEqual([
      { name: 'glu', type: 'number', min: 0, max: 300, decimals: 0, bounds: { min: 0n, max: 300n } },
      { name: 'bmi', type: 'number', min: 10, max: 80.5, decimals: 1, bounds: { min: 100n, max: 805n } },
      { name: 'temp', type: 'number', min: -40.25, max: 45, decimals: 2, bounds: { min: -4025n, max: 4500n } },
      { name: 'type', type: 'category', values: ['No', 'Yes'] },
    ]);
  });

  it('keeps explicit minParticipants and outOfRange', () => {
    const schema = parseStudySchema({ ...valid(), minParticipants: 1, outOfRange: 'clamp' });
    expect(schema.minParticipants).toBe(1);
    expect(schema.outOfRange).toBe('clamp');
  });

  it('returns a deeply frozen schema', () => {
    const schema = parseStudySchema(valid());
    expect(Object.isFrozen(schema)).toBe(true);
    expect(Object.isFrozen(schema.fields)).toBe(true);
    expect(Object.isFrozen(schema.fields[0])).toBe(true);
    const category = schema.fields[3];
    expect(category?.type === 'category' && Object.isFrozen(category.values)).toBe(true);
  });

  it('does not share arrays with the input', () => {
    const json = valid();
    const schema = parseStudySchema(json);
    (json.fields[3] as { values: string[] }).values.push('Maybe');
    expect(schema.fields[3]).toEqual({ name: 'type', type: 'category', values: ['No', 'Yes'] });
  });

  it.each<[string, unknown, string]>([
    ['a non-object', 42, '(root): '],
    ['null', null, '(root): '],
    ['a missing name', { fields: valid().fields }, 'name: must be a string'],
    ['an empty name', { ...valid(), name: '' }, 'name: must not be empty'],
    ['minParticipants 0', { ...valid(), minParticipants: 0 }, 'minParticipants: must be an integer >= 1'],
    ['fractional minParticipants', { ...valid(), minParticipants: 2.5 }, 'minParticipants: must be an integer >= 1'],
    ['an unknown outOfRange', { ...valid(), outOfRange: 'wrap' }, 'outOfRange: must be "reject" or "clamp"'],
    ['an unknown top-level key', { ...valid(), owner: 'x' }, '(root): unknown key "owner"'],
    ['no fields', { ...valid(), fields: [] }, 'fields: must list at least one field'],
    ['fields not an array', { ...valid(), fields: {} }, 'fields: must be an array of fields'],
    ['decimals 19', withField(2, { name: 'x', type: 'number', min: 0, max: 1, decimals: 19 }), 'fields[2].decimals: must be an integer from 0 to 18'],
    ['decimals -1', withField(2, { name: 'x', type: 'number', min: 0, max: 1, decimals: -1 }), 'fields[2].decimals: must be an integer from 0 to 18'],
    ['decimals 1.5', withField(2, { name: 'x', type: 'number', min: 0, max: 1, decimals: 1.5 }), 'fields[2].decimals: must be an integer from 0 to 18'],
    ['a missing min', withField(1, { name: 'x', type: 'number', max: 1, decimals: 0 }), 'fields[1].min: must be a finite number'],
    ['a string max', withField(1, { name: 'x', type: 'number', min: 0, max: '1', decimals: 0 }), 'fields[1].max: must be a finite number'],
    ['an unknown field type', withField(0, { name: 'x', type: 'date' }), 'fields[0].type: must be "number" or "category"'],
    ['an unknown key in a field', withField(0, { name: 'x', type: 'number', min: 0, max: 1, decimals: 0, unit: 'mg' }), 'fields[0]: unknown key "unit"'],
    ['a field name with a space', withField(0, { name: 'blood pressure', type: 'number', min: 0, max: 1, decimals: 0 }), 'fields[0].name: must start with a letter'],
    ['a field name starting with a digit', withField(0, { name: '2h_glucose', type: 'number', min: 0, max: 1, decimals: 0 }), 'fields[0].name: must start with a letter'],
    ['an empty field name', withField(0, { name: '', type: 'number', min: 0, max: 1, decimals: 0 }), 'fields[0].name: must start with a letter'],
    ['no category values', withField(3, { name: 'type', type: 'category', values: [] }), 'fields[3].values: must list at least one value'],
    ['an empty category value', withField(3, { name: 'type', type: 'category', values: ['No', ''] }), 'fields[3].values[1]: must not be empty'],
    ['a non-string category value', withField(3, { name: 'type', type: 'category', values: ['No', 1] }), 'fields[3].values[1]: must be a string'],
    ['a duplicate category value', withField(3, { name: 'type', type: 'category', values: ['No', 'Yes', 'No'] }), 'fields[3].values[2]: duplicate value "No"'],
    ['a duplicate field name', withField(2, { name: 'glu', type: 'number', min: 0, max: 1, decimals: 0 }), 'fields[2].name: duplicate field name "glu" (also fields[0])'],
    ['min above max', withField(1, { name: 'x', type: 'number', min: 5, max: 4, decimals: 0 }), 'fields[1].min: min 5 is greater than max 4'],
    ['a min with too many decimals', withField(1, { name: 'x', type: 'number', min: 0.05, max: 4, decimals: 1 }), 'fields[1].min: 0.05 has more decimal places than decimals (1) allows'],
    ['a max with decimals on an integer field', withField(1, { name: 'x', type: 'number', min: 0, max: 4.5, decimals: 0 }), 'fields[1].max: 4.5 has more decimal places than decimals (0) allows'],
  ])('rejects %s, naming the JSON path', (_what, json, expected) => {
    const err = schemaError(json);
    expect(err.message).toContain(expected);
    expect(err.issues.map((i) => `${i.path}: ${i.message}`).some((line) => line.startsWith(expected))).toBe(true);
  });

  it('reports every problem at once', () => {
    const json = {
      name: 'x',
      fields: [
        { name: 'a', type: 'number', min: 2, max: 1, decimals: 0 },
        { name: 'a', type: 'category', values: ['u', 'u'] },
      ],
    };
    expect(schemaError(json).issues).toEqual([
      { path: 'fields[0].min', message: 'min 2 is greater than max 1' },
      { path: 'fields[1].name', message: 'duplicate field name "a" (also fields[0])' },
      { path: 'fields[1].values[1]', message: 'duplicate value "u"' },
    ]);
  });

  it('accepts the edge values of decimals and exact decimal bounds', () => {
    const schema = parseStudySchema({
      name: 'edge',
      fields: [
        { name: 'a', type: 'number', min: 0.000000000000000001, max: 1, decimals: 18 },
        { name: 'b', type: 'number', min: -5, max: -5, decimals: 0 },
        { name: 'c', type: 'number', min: 0.1, max: 0.30000000000000004, decimals: 17 },
      ],
    });
    expect(schema.fields.map((f) => (f.type === 'number' ? f.bounds : null))).toEqual([
      { min: 1n, max: 10n ** 18n },
      { min: -5n, max: -5n },
      { min: 10n ** 16n, max: 30000000000000004n },
    ]);
  });

  it('round-trips through toStudySchemaJson', () => {
    const identifier = fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_]{0,8}$/);
    const numberField = fc
      .record({ a: fc.integer({ min: -1e9, max: 1e9 }), b: fc.integer({ min: -1e9, max: 1e9 }), decimals: fc.integer({ min: 0, max: 6 }) })
      .map(({ a, b, decimals }) => ({
        type: 'number' as const,
        min: Math.min(a, b) / 10 ** decimals,
        max: Math.max(a, b) / 10 ** decimals,
        decimals,
      }));
    const categoryField = fc
      .uniqueArray(fc.string({ minLength: 1, maxLength: 5 }), { minLength: 1, maxLength: 4 })
      .map((values) => ({ type: 'category' as const, values }));
    const schemaJson = fc.record({
      name: fc.string({ minLength: 1 }),
      minParticipants: fc.integer({ min: 1, max: 50 }),
      outOfRange: fc.constantFrom('reject' as const, 'clamp' as const),
      fields: fc
        .uniqueArray(fc.tuple(identifier, fc.oneof(numberField, categoryField)), { minLength: 1, maxLength: 6, selector: ([n]) => n })
        .map((fs) => fs.map(([name, f]) => ({ name, ...f }))),
      privacy: fc.record({ minGroupSize: fc.integer({ min: 1, max: 20 }), spend: fc.integer({ min: 1, max: 100 }), share: fc.integer({ min: 1, max: 10 }), kind: fc.constantFrom('none', 'laplace', 'gaussian') }).map(({ minGroupSize, spend, share, kind }) => {
        if (kind === 'none') return { minGroupSize };
        const budget = spend / 10;
        const epsilon = budget / share;
        return kind === 'laplace'
          ? { minGroupSize, dp: { mechanism: 'laplace' as const, epsilon, budget: { epsilon: budget } } }
          : { minGroupSize, dp: { mechanism: 'gaussian' as const, epsilon: Math.min(epsilon, 1), delta: 1e-6, budget: { epsilon: budget, delta: 1e-5 } } };
      }),
    });
    fc.assert(
      fc.property(schemaJson, (json) => {
        const schema = parseStudySchema(json);
        expect(toStudySchemaJson(schema)).toEqual(json);
        expect(parseStudySchema(toStudySchemaJson(schema))).toEqual(schema);
      }),
    );
  });
});

describe('fieldIndex', () => {
  it('finds fields by exact name and position', () => {
    const schema = parseStudySchema(valid());
    expect(fieldIndex(schema, 'glu')).toBe(0);
    expect(fieldIndex(schema, 'type')).toBe(3);
    expect(fieldIndex(schema, 'GLU')).toBeUndefined();
    expect(fieldIndex(schema, 'toString')).toBeUndefined();
  });
});

describe('loadStudySchema', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'confide-schema-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('loads and validates a JSON file', async () => {
    const path = join(dir, 'ok.json');
    await writeFile(path, JSON.stringify(valid()));
    await expect(loadStudySchema(path)).resolves.toEqual(parseStudySchema(valid()));
  });

  it('names the file and the JSON path of a problem', async () => {
    const path = join(dir, 'bad.json');
    await writeFile(path, JSON.stringify(withField(2, { name: 'x', type: 'number', min: 0, max: 1, decimals: 20 })));
    const err = await loadStudySchema(path).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SchemaError);
    expect((err as SchemaError).message).toBe(`${path}: invalid study schema: fields[2].decimals: must be an integer from 0 to 18`);
    expect((err as SchemaError).source).toBe(path);
  });

  it('reports malformed JSON as a SchemaError with the cause', async () => {
    const path = join(dir, 'broken.json');
    await writeFile(path, '{ "name": "x", ');
    const err = await loadStudySchema(path).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SchemaError);
    expect((err as SchemaError).message).toContain(`${path}: invalid study schema: (root): not valid JSON`);
    expect((err as SchemaError).cause).toBeInstanceOf(SyntaxError);
  });

  it('reports a missing file as a SchemaError', async () => {
    const path = join(dir, 'absent.json');
    const err = await loadStudySchema(path).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SchemaError);
    expect((err as SchemaError).message).toContain('cannot read the file');
    expect(((err as SchemaError).cause as NodeJS.ErrnoException).code).toBe('ENOENT');
  });

  it('accepts the Pima example study', async () => {
    const schema = await loadStudySchema(join(__dirname, '../../../../examples/pima/study.json'));
    expect(schema.name).toBe('pima');
    expect(schema.minParticipants).toBe(3);
    expect(schema.fields.map((f) => f.name)).toEqual(['npreg', 'glu', 'bp', 'skin', 'bmi', 'ped', 'age', 'type']);
  });
});
