import { readFile } from 'node:fs/promises';
import { parseFixed, type FixedBounds } from '@confide/crypto';
import { z } from 'zod';
import { parseStudyPrivacy, PrivacyError, type StudyPrivacy } from '../privacy/settings';
import { MAX_COMMITTEE } from '../shamir/plan';

/**
 * The study schema (DESIGN.md "Who uses it": the admin defines studies with a field schema and bounds).
 * One JSON format is used everywhere: the admin's file, the coordinator's database, the participant's
 * CSV check and the query compiler's overflow guard.
 */

const FIELD_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const MAX_DECIMALS = 18;
const DEFAULT_MIN_PARTICIPANTS = 3;

const fieldName = z
  .string({ error: 'must be a string' })
  .regex(FIELD_NAME, { error: 'must start with a letter or _ and contain only letters, digits and _' });

const numberFieldJson = z.strictObject({
  name: fieldName,
  type: z.literal('number'),
  min: z.number({ error: 'must be a finite number' }),
  max: z.number({ error: 'must be a finite number' }),
  decimals: z
    .int({ error: `must be an integer from 0 to ${MAX_DECIMALS}` })
    .min(0, { error: `must be an integer from 0 to ${MAX_DECIMALS}` })
    .max(MAX_DECIMALS, { error: `must be an integer from 0 to ${MAX_DECIMALS}` }),
});

const categoryFieldJson = z.strictObject({
  name: fieldName,
  type: z.literal('category'),
  values: z
    .array(z.string({ error: 'must be a string' }).min(1, { error: 'must not be empty' }), { error: 'must be an array of strings' })
    .min(1, { error: 'must list at least one value' }),
});

const studySchemaJson = z.strictObject({
  name: z.string({ error: 'must be a string' }).min(1, { error: 'must not be empty' }),
  minParticipants: z
    .int({ error: 'must be an integer >= 1' })
    .min(1, { error: 'must be an integer >= 1' })
    .default(DEFAULT_MIN_PARTICIPANTS),
  outOfRange: z.enum(['reject', 'clamp'], { error: 'must be "reject" or "clamp"' }).default('reject'),
  /**
   * A shamir threshold floor above the majority every committee already needs (⌊k/2⌋ + 1): more of the committee
   * must collude to open a share. At most the largest committee, or no query could ever run.
   */
  minThreshold: z
    .int({ error: `must be an integer from 1 to ${MAX_COMMITTEE}` })
    .min(1, { error: `must be an integer from 1 to ${MAX_COMMITTEE}` })
    .max(MAX_COMMITTEE, { error: `must be an integer from 1 to ${MAX_COMMITTEE}` })
    .optional(),
  /** Output privacy beyond minParticipants: `{ minGroupSize?, dp? }` (privacy/settings.ts parseStudyPrivacy). */
  privacy: z.unknown().optional(),
  fields: z
    .array(
      z.discriminatedUnion('type', [numberFieldJson, categoryFieldJson], { error: 'must be "number" or "category"' }),
      { error: 'must be an array of fields' },
    )
    .min(1, { error: 'must list at least one field' }),
});

/** The study schema as written in JSON (before defaults are applied). */
export type StudySchemaJson = z.input<typeof studySchemaJson>;

/** What a value outside a numeric field's [min, max] does: fail the participant's data check, or clamp. */
export type OutOfRangePolicy = 'reject' | 'clamp';

/** A numeric field: the JSON's min/max/decimals, plus the bounds as fixed-point integers scaled by 10^decimals. */
export interface NumberField {
  readonly name: string;
  readonly type: 'number';
  readonly min: number;
  readonly max: number;
  readonly decimals: number;
  readonly bounds: FixedBounds;
}

/** A categorical field with its allowed values (non-empty, unique, in the order the schema lists them). */
export interface CategoryField {
  readonly name: string;
  readonly type: 'category';
  readonly values: readonly string[];
}

export type StudyField = NumberField | CategoryField;

/** A validated study schema (deeply frozen). Produced only by {@link parseStudySchema}. */
export interface StudySchema {
  readonly name: string;
  readonly minParticipants: number;
  readonly outOfRange: OutOfRangePolicy;
  /** The study's shamir threshold floor above a committee majority, or null for the majority alone. */
  readonly minThreshold: number | null;
  readonly fields: readonly StudyField[];
  /** Output privacy: minParticipants (the field above), minGroupSize (default 5), optional DP with its budget. */
  readonly privacy: StudyPrivacy;
}

/** One problem in a study schema: `path` is the JSON path (`fields[2].decimals`), `(root)` for the whole document. */
export interface SchemaIssue {
  readonly path: string;
  readonly message: string;
}

/** A study schema that does not validate. The message lists every problem found, each with its JSON path. */
export class SchemaError extends Error {
  override readonly name = 'SchemaError';

  constructor(
    readonly issues: readonly SchemaIssue[],
    readonly source?: string,
    options?: ErrorOptions,
  ) {
    const lines = issues.map((i) => `${i.path}: ${i.message}`);
    const head = source === undefined ? 'invalid study schema' : `${source}: invalid study schema`;
    super(lines.length === 1 ? `${head}: ${lines[0]}` : `${head}:\n  ${lines.join('\n  ')}`, options);
  }
}

/** Formats a zod path as a JSON path: ['fields', 2, 'decimals'] -> "fields[2].decimals". */
function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const key of path) {
    if (typeof key === 'number') out += `[${key}]`;
    else out += out === '' ? String(key) : `.${String(key)}`;
  }
  return out === '' ? '(root)' : out;
}

function zodIssueMessage(issue: z.core.$ZodIssue): string {
  if (issue.code === 'unrecognized_keys') {
    return `unknown key${issue.keys.length === 1 ? '' : 's'} ${issue.keys.map((k) => JSON.stringify(k)).join(', ')}`;
  }
  return issue.message;
}

/**
 * Validates a study schema given as parsed JSON and returns it typed, with defaults applied
 * (`minParticipants` 3, `outOfRange` "reject") and each numeric field's bounds as scaled bigints.
 *
 * Rules: unknown keys are rejected; field names match /^[A-Za-z_][A-Za-z0-9_]*$/ and are unique;
 * `decimals` is an integer 0..18; `min` <= `max` and neither has more fractional digits than `decimals`
 * (bounds are exact fixed-point values, DESIGN.md "Queries": encoding); category values are non-empty
 * and unique.
 *
 * @param json the parsed JSON document (e.g. `JSON.parse` of the admin's file or a request body)
 * @throws SchemaError listing every problem with its JSON path, e.g. `fields[2].decimals: must be an integer from 0 to 18`
 */
export function parseStudySchema(json: unknown, source?: string): StudySchema {
  const parsed = studySchemaJson.safeParse(json);
  if (!parsed.success) {
    throw new SchemaError(
      parsed.error.issues.map((issue) => ({ path: formatPath(issue.path), message: zodIssueMessage(issue) })),
      source,
    );
  }
  const issues: SchemaIssue[] = [];
  const firstIndexByName = new Map<string, number>();
  const fields = parsed.data.fields.map((field, i): StudyField => {
    const at = `fields[${i}]`;
    const first = firstIndexByName.get(field.name);
    if (first === undefined) firstIndexByName.set(field.name, i);
    else issues.push({ path: `${at}.name`, message: `duplicate field name "${field.name}" (also fields[${first}])` });

    if (field.type === 'category') {
      const seen = new Set<string>();
      field.values.forEach((value, j) => {
        if (seen.has(value)) issues.push({ path: `${at}.values[${j}]`, message: `duplicate value ${JSON.stringify(value)}` });
        seen.add(value);
      });
      return Object.freeze({ name: field.name, type: 'category', values: Object.freeze([...field.values]) });
    }

    const scaled = (key: 'min' | 'max'): bigint | undefined => {
      try {
        return parseFixed(field[key], field.decimals);
      } catch {
        issues.push({
          path: `${at}.${key}`,
          message: `${field[key]} has more decimal places than decimals (${field.decimals}) allows`,
        });
        return undefined;
      }
    };
    const min = scaled('min');
    const max = scaled('max');
    if (field.min > field.max) issues.push({ path: `${at}.min`, message: `min ${field.min} is greater than max ${field.max}` });
    return Object.freeze({
      name: field.name,
      type: 'number',
      min: field.min,
      max: field.max,
      decimals: field.decimals,
      bounds: Object.freeze({ min: min ?? 0n, max: max ?? 0n }),
    });
  });
  let privacy: StudyPrivacy | undefined;
  const block = parsed.data.privacy;
  if (block !== undefined && (typeof block !== 'object' || block === null || Array.isArray(block))) {
    issues.push({ path: 'privacy', message: 'must be an object { minGroupSize?, dp? }' });
  } else if (block !== undefined && 'minParticipants' in block) {
    issues.push({ path: 'privacy.minParticipants', message: 'give minParticipants once, at the top level' });
  } else {
    try {
      privacy = parseStudyPrivacy({ ...(block ?? {}), minParticipants: parsed.data.minParticipants });
    } catch (err) {
      if (!(err instanceof PrivacyError)) throw err;
      for (const line of err.message.split('; ')) {
        const colon = line.indexOf(': ');
        issues.push({ path: line.slice(0, colon), message: line.slice(colon + 2) });
      }
    }
  }
  if (issues.length > 0 || privacy === undefined) throw new SchemaError(issues, source);
  return Object.freeze({
    name: parsed.data.name,
    minParticipants: parsed.data.minParticipants,
    outOfRange: parsed.data.outOfRange,
    minThreshold: parsed.data.minThreshold ?? null,
    fields: Object.freeze(fields),
    privacy,
  });
}

/**
 * Reads a study schema from a JSON file and validates it with {@link parseStudySchema}.
 *
 * @param path file path of the JSON document
 * @throws SchemaError when the file cannot be read, is not JSON, or does not validate; the message starts with the path
 *   (the I/O or syntax error is kept as `cause`)
 */
export async function loadStudySchema(path: string): Promise<StudySchema> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new SchemaError([{ path: '(root)', message: `cannot read the file: ${reason}` }], path, { cause: err });
  }
  let json: unknown;
  try {
    json = JSON.parse(text) as unknown;
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new SchemaError([{ path: '(root)', message: `not valid JSON: ${reason}` }], path, { cause: err });
  }
  return parseStudySchema(json, path);
}

/**
 * The JSON form of a parsed schema (defaults written out, bounds dropped): what the coordinator stores and
 * the ledger's "study created" entry records. `parseStudySchema(toStudySchemaJson(s))` equals `s`.
 */
export function toStudySchemaJson(schema: StudySchema): StudySchemaJson {
  return {
    name: schema.name,
    minParticipants: schema.minParticipants,
    outOfRange: schema.outOfRange,
    ...(schema.minThreshold !== null ? { minThreshold: schema.minThreshold } : {}),
    fields: schema.fields.map((f) =>
      f.type === 'number'
        ? { name: f.name, type: 'number', min: f.min, max: f.max, decimals: f.decimals }
        : { name: f.name, type: 'category', values: [...f.values] },
    ),
    privacy: {
      minGroupSize: schema.privacy.minGroupSize,
      ...(schema.privacy.dp
        ? {
            dp: {
              mechanism: schema.privacy.dp.mechanism,
              epsilon: schema.privacy.dp.epsilon,
              ...(schema.privacy.dp.delta !== undefined ? { delta: schema.privacy.dp.delta } : {}),
              budget: { epsilon: schema.privacy.dp.budget.epsilon, ...(schema.privacy.dp.mechanism === 'gaussian' ? { delta: schema.privacy.dp.budget.delta } : {}) },
            },
          }
        : {}),
    },
  };
}

const indexCache = new WeakMap<StudySchema, ReadonlyMap<string, number>>();

/**
 * Position of the field named `name` in `schema.fields` (which is also its position in every {@link DataRecord}),
 * or undefined when the study has no such field. Names are case-sensitive.
 */
export function fieldIndex(schema: StudySchema, name: string): number | undefined {
  let index = indexCache.get(schema);
  if (index === undefined) {
    index = new Map(schema.fields.map((f, i) => [f.name, i]));
    indexCache.set(schema, index);
  }
  return index.get(name);
}
