import { z } from 'zod';

/**
 * Output privacy settings (DESIGN.md "Trust model": output privacy; "Queries": per-query privacy). A study
 * fixes the floor; a query may only tighten it. What a query finally runs with is a {@link PrivacySettings}.
 */

/** A privacy rule broken: a setting that loosens the study's, a malformed setting, or an exhausted budget. */
export class PrivacyError extends Error {
  override readonly name = 'PrivacyError';
}

export const DEFAULT_MIN_PARTICIPANTS = 3;
export const DEFAULT_MIN_GROUP_SIZE = 5;

export type DpMechanism = 'laplace' | 'gaussian';

/**
 * Differential privacy for one query: pure ε-DP with discrete Laplace noise, or (ε, δ)-DP with discrete
 * Gaussian noise. `delta` is set exactly when the mechanism is gaussian (0 < δ < 1).
 */
export interface DpSettings {
  readonly mechanism: DpMechanism;
  readonly epsilon: number;
  readonly delta?: number;
}

/** The privacy a query runs with, after {@link effectivePrivacy}. */
export interface PrivacySettings {
  readonly minParticipants: number;
  readonly minGroupSize: number;
  readonly dp: DpSettings | null;
}

/** An amount of privacy loss: spent by a query, or a study's total budget. δ is 0 for pure ε-DP. */
export interface PrivacyCost {
  readonly epsilon: number;
  readonly delta: number;
}

/** A study's differential privacy: the per-query default and the total budget all its queries draw from. */
export interface StudyDp extends DpSettings {
  readonly budget: PrivacyCost;
}

/** A study's output privacy, from {@link parseStudyPrivacy}. */
export interface StudyPrivacy {
  readonly minParticipants: number;
  readonly minGroupSize: number;
  readonly dp: StudyDp | null;
}

/** A query's `privacy` override, from {@link parseQueryPrivacy}; absent keys keep the study's value. */
export interface QueryPrivacy {
  readonly minParticipants?: number;
  readonly minGroupSize?: number;
  readonly dp?: { readonly mechanism?: DpMechanism; readonly epsilon?: number; readonly delta?: number };
}

const count = (least: number) =>
  z.int({ error: `must be an integer >= ${least}` }).min(least, { error: `must be an integer >= ${least}` }).max(1_000_000_000, { error: 'must be at most 1000000000' });
const epsilon = z.number({ error: 'must be a finite number greater than 0' }).gt(0, { error: 'must be a finite number greater than 0' });
const delta = z
  .number({ error: 'must be a number greater than 0 and less than 1' })
  .gt(0, { error: 'must be a number greater than 0 and less than 1' })
  .lt(1, { error: 'must be a number greater than 0 and less than 1' });
const mechanism = z.enum(['laplace', 'gaussian'], { error: 'must be "laplace" or "gaussian"' });

const studyPrivacyJson = z.strictObject({
  minParticipants: count(1).default(DEFAULT_MIN_PARTICIPANTS),
  minGroupSize: count(1).default(DEFAULT_MIN_GROUP_SIZE),
  dp: z
    .strictObject({
      mechanism,
      epsilon,
      delta: delta.optional(),
      budget: z.strictObject({ epsilon, delta: delta.optional() }, { error: 'must be { epsilon, delta? }' }),
    })
    .nullable()
    .optional(),
});

const queryPrivacyJson = z.strictObject({
  minParticipants: count(1).optional(),
  minGroupSize: count(1).optional(),
  dp: z.strictObject({ mechanism: mechanism.optional(), epsilon: epsilon.optional(), delta: delta.optional() }).optional(),
});

function formatPath(path: readonly PropertyKey[]): string {
  return ['privacy', ...path].map((key, i) => (typeof key === 'number' ? `[${key}]` : i === 0 ? String(key) : `.${String(key)}`)).join('');
}

function parseWith<T>(schema: z.ZodType<T>, json: unknown): T {
  const parsed = schema.safeParse(json ?? {});
  if (parsed.success) return parsed.data;
  throw new PrivacyError(
    parsed.error.issues
      .map((issue) => {
        const message = issue.code === 'unrecognized_keys' ? `unknown key${issue.keys.length === 1 ? '' : 's'} ${issue.keys.map((k) => JSON.stringify(k)).join(', ')}` : issue.message;
        return `${formatPath(issue.path)}: ${message}`;
      })
      .join('; '),
  );
}

/** The δ rules shared by a study's settings and a query's: gaussian needs δ, laplace has none. */
function checkDelta(mechanismName: DpMechanism, value: number | undefined, at: string): void {
  if (mechanismName === 'gaussian' && value === undefined) throw new PrivacyError(`${at}: the gaussian mechanism needs delta (0 < delta < 1)`);
  if (mechanismName === 'laplace' && value !== undefined) throw new PrivacyError(`${at}: the laplace mechanism is pure ε-DP and takes no delta`);
}

/**
 * Reads a study's `privacy` block (parsed JSON): `{ minParticipants?, minGroupSize?, dp?: { mechanism,
 * epsilon, delta?, budget: { epsilon, delta? } } }`, with defaults minParticipants 3, minGroupSize 5, no DP.
 * `dp.epsilon`/`dp.delta` are what a query gets unless it asks for less; `dp.budget` is the total all the
 * study's queries may spend (basic sequential composition, {@link assertBudget}).
 *
 * Rules: unknown keys are rejected; counts are integers ≥ 1; ε > 0; 0 < δ < 1; gaussian needs `delta` and
 * `budget.delta`, laplace takes neither; the per-query ε (and δ) must fit in the budget.
 *
 * @param json the study's `privacy` value; undefined or null for all defaults
 * @throws PrivacyError naming each problem with its path (`privacy.dp.epsilon: must be a finite number greater than 0`)
 */
export function parseStudyPrivacy(json: unknown): StudyPrivacy {
  const data = parseWith(studyPrivacyJson, json);
  const dp = data.dp ?? null;
  if (dp !== null) {
    checkDelta(dp.mechanism, dp.delta, 'privacy.dp.delta');
    checkDelta(dp.mechanism, dp.budget.delta, 'privacy.dp.budget.delta');
    if (dp.epsilon > dp.budget.epsilon) {
      throw new PrivacyError(`privacy.dp.epsilon: the per-query ${dp.epsilon} is more than the whole budget ${dp.budget.epsilon}`);
    }
    if (dp.delta !== undefined && dp.budget.delta !== undefined && dp.delta > dp.budget.delta) {
      throw new PrivacyError(`privacy.dp.delta: the per-query ${dp.delta} is more than the whole budget ${dp.budget.delta}`);
    }
  }
  return Object.freeze({
    minParticipants: data.minParticipants,
    minGroupSize: data.minGroupSize,
    dp:
      dp === null
        ? null
        : Object.freeze({
            mechanism: dp.mechanism,
            epsilon: dp.epsilon,
            ...(dp.delta === undefined ? {} : { delta: dp.delta }),
            budget: Object.freeze({ epsilon: dp.budget.epsilon, delta: dp.budget.delta ?? 0 }),
          }),
  });
}

/**
 * Reads a query's `privacy` override (parsed JSON): `{ minParticipants?, minGroupSize?, dp?: { mechanism?,
 * epsilon?, delta? } }`. Only the shape is checked here; whether it tightens the study's settings is
 * {@link effectivePrivacy}'s job.
 *
 * @param json the query's `privacy` value; undefined or null for no override
 * @throws PrivacyError naming each problem with its path (`privacy.minGroupSize: must be an integer >= 1`)
 */
export function parseQueryPrivacy(json: unknown): QueryPrivacy {
  const data = parseWith(queryPrivacyJson, json);
  const out: { -readonly [K in keyof QueryPrivacy]: QueryPrivacy[K] } = {};
  if (data.minParticipants !== undefined) out.minParticipants = data.minParticipants;
  if (data.minGroupSize !== undefined) out.minGroupSize = data.minGroupSize;
  if (data.dp !== undefined) {
    out.dp = Object.freeze({
      ...(data.dp.mechanism === undefined ? {} : { mechanism: data.dp.mechanism }),
      ...(data.dp.epsilon === undefined ? {} : { epsilon: data.dp.epsilon }),
      ...(data.dp.delta === undefined ? {} : { delta: data.dp.delta }),
    });
  }
  return Object.freeze(out);
}

/** A count a query may only raise. */
function atLeast(name: string, study: number, query: number | undefined): number {
  if (query === undefined) return study;
  if (query < study) throw new PrivacyError(`privacy.${name}: ${query} is below the study's minimum ${study}`);
  return query;
}

/** An ε or δ a query may only lower. */
function atMost(name: string, study: number, query: number | undefined): number {
  if (query === undefined) return study;
  if (query > study) throw new PrivacyError(`privacy.dp.${name}: ${query} is above the study's ${study}`);
  return query;
}

/**
 * The privacy a query runs with (DESIGN.md "Queries": privacy): the study's settings, tightened by the
 * query's override and never loosened. A query may raise minParticipants and minGroupSize and lower ε and δ.
 *
 * DP when the study has none: a query may ask for noise on its own (more noise only tightens), naming the
 * mechanism, ε and, for gaussian, δ. The study keeps no budget then, so nothing is charged for it.
 * DP when the study has it: the mechanism is the study's; a query may repeat it but not change it (the
 * study's budget is kept in one kind of guarantee). What it spends is {@link dpCost} of the result.
 *
 * @param study the study's settings ({@link parseStudyPrivacy})
 * @param query the query's raw `privacy` value (parsed JSON, undefined or null for none) or a {@link QueryPrivacy}
 * @throws PrivacyError naming the field, e.g. `privacy.minGroupSize: 3 is below the study's minimum 5`,
 *   `privacy.dp.epsilon: 2 is above the study's 1`, `privacy.dp.mechanism: the study uses laplace; a query
 *   cannot change it`, or a malformed override ({@link parseQueryPrivacy}); RangeError for a gaussian study
 *   setting without δ (one not made by {@link parseStudyPrivacy})
 */
export function effectivePrivacy(study: StudyPrivacy, query: unknown): PrivacySettings {
  const override = parseQueryPrivacy(query);
  const minParticipants = atLeast('minParticipants', study.minParticipants, override.minParticipants);
  const minGroupSize = atLeast('minGroupSize', study.minGroupSize, override.minGroupSize);
  const asked = override.dp;
  let dp: DpSettings | null = null;
  if (study.dp !== null) {
    const { mechanism: studyMechanism } = study.dp;
    if (asked?.mechanism !== undefined && asked.mechanism !== studyMechanism) {
      throw new PrivacyError(`privacy.dp.mechanism: the study uses ${studyMechanism}; a query cannot change it`);
    }
    if (studyMechanism === 'laplace' && asked?.delta !== undefined) {
      throw new PrivacyError('privacy.dp.delta: the study uses laplace, which is pure ε-DP and takes no delta');
    }
    if (studyMechanism === 'gaussian' && study.dp.delta === undefined) throw new RangeError("the study's gaussian DP has no delta; parse it with parseStudyPrivacy");
    const epsilonValue = atMost('epsilon', study.dp.epsilon, asked?.epsilon);
    dp =
      studyMechanism === 'gaussian'
        ? { mechanism: studyMechanism, epsilon: epsilonValue, delta: atMost('delta', study.dp.delta!, asked?.delta) }
        : { mechanism: studyMechanism, epsilon: epsilonValue };
  } else if (asked !== undefined) {
    if (asked.mechanism === undefined) {
      throw new PrivacyError('privacy.dp.mechanism: the study has no differential privacy; a query that asks for it must name the mechanism');
    }
    if (asked.epsilon === undefined) {
      throw new PrivacyError('privacy.dp.epsilon: the study has no differential privacy; a query that asks for it must give epsilon');
    }
    checkDelta(asked.mechanism, asked.delta, 'privacy.dp.delta');
    dp = asked.mechanism === 'gaussian' ? { mechanism: 'gaussian', epsilon: asked.epsilon, delta: asked.delta! } : { mechanism: 'laplace', epsilon: asked.epsilon };
  }
  return Object.freeze({ minParticipants, minGroupSize, dp: dp === null ? null : Object.freeze(dp) });
}

/**
 * What a query with these DP settings spends from the study's budget: its ε, and its δ (0 for laplace).
 *
 * @throws RangeError for a gaussian setting without δ
 */
export function dpCost(dp: DpSettings): PrivacyCost {
  if (dp.mechanism === 'gaussian' && dp.delta === undefined) throw new RangeError('a gaussian DP setting needs delta');
  return { epsilon: dp.epsilon, delta: dp.mechanism === 'gaussian' ? dp.delta! : 0 };
}

/** The `privacy` part of a query's result: which measures applied. */
export interface PrivacyReport {
  readonly minParticipants: number;
  readonly minGroupSize: number;
  /** How many released values were withheld (see suppress). */
  readonly suppressed: number;
  readonly dp: { readonly mechanism: DpMechanism; readonly epsilon: number; readonly delta: number } | null;
}

/**
 * Says which privacy measures applied to a result (DESIGN.md "Queries"; the issue: "the result says which
 * privacy measures applied"): the thresholds, how many values suppression withheld, and the DP mechanism with
 * the ε and δ this query spent (δ 0 for laplace), or null without DP.
 *
 * @param settings what the query ran with ({@link effectivePrivacy})
 * @param suppressedCells `suppressedCells` from suppress
 * @throws RangeError for a negative or fractional count
 */
export function privacyReport(settings: PrivacySettings, suppressedCells: number): PrivacyReport {
  if (!Number.isSafeInteger(suppressedCells) || suppressedCells < 0) throw new RangeError(`suppressedCells must be a non-negative integer, got ${suppressedCells}`);
  return {
    minParticipants: settings.minParticipants,
    minGroupSize: settings.minGroupSize,
    suppressed: suppressedCells,
    dp: settings.dp === null ? null : { mechanism: settings.dp.mechanism, ...dpCost(settings.dp) },
  };
}

/**
 * The effective privacy settings as a query carries them to participants and as its hash covers them
 * ({@link PrivacySettings}): every field present, `dp` null when there is no noise.
 */
export const privacySettingsSchema = z.strictObject({
  minParticipants: count(1),
  minGroupSize: count(1),
  dp: z
    .strictObject({
      mechanism,
      epsilon: z.number().gt(0),
      delta: z.number().gt(0).lt(1).optional(),
    })
    .nullable(),
});

/**
 * Refuses settings looser than the study's (DESIGN.md "Trust model": a plan may be stricter than the settings a
 * participant pinned at enrollment, never looser). A participant calls it with the study it pinned and the
 * settings a task's query carries: at least the pinned minimum participants and group size, and when the study
 * has differential privacy, the same mechanism with ε (and δ) no larger than the study's per-query values.
 * @throws PrivacyError naming the setting and both values
 */
export function assertNotLooser(study: StudyPrivacy, settings: PrivacySettings): void {
  if (settings.minParticipants < study.minParticipants) {
    throw new PrivacyError(`minParticipants ${settings.minParticipants} is below the ${study.minParticipants} pinned at enrollment`);
  }
  if (settings.minGroupSize < study.minGroupSize) {
    throw new PrivacyError(`minGroupSize ${settings.minGroupSize} is below the ${study.minGroupSize} pinned at enrollment`);
  }
  const pinned = study.dp;
  if (pinned === null) {
    if (settings.dp !== null) checkDelta(settings.dp.mechanism, settings.dp.delta, 'dp.delta');
    return;
  }
  const dp = settings.dp;
  if (dp === null) throw new PrivacyError(`differential privacy is off, the study pinned at enrollment has ${pinned.mechanism} with ε ${pinned.epsilon}`);
  if (dp.mechanism !== pinned.mechanism) throw new PrivacyError(`dp.mechanism ${dp.mechanism} is not the ${pinned.mechanism} pinned at enrollment`);
  if (dp.epsilon > pinned.epsilon) throw new PrivacyError(`dp.epsilon ${dp.epsilon} is above the ${pinned.epsilon} pinned at enrollment`);
  if (pinned.mechanism === 'gaussian' && (dp.delta === undefined || dp.delta > pinned.delta!)) {
    throw new PrivacyError(`dp.delta ${String(dp.delta)} is above the ${pinned.delta} pinned at enrollment`);
  }
  if (pinned.mechanism === 'laplace' && dp.delta !== undefined) throw new PrivacyError('dp.delta: the laplace mechanism pinned at enrollment takes no delta');
}
