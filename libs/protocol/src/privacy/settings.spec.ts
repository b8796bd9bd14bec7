import { PrivacyError, dpCost, effectivePrivacy, parseQueryPrivacy, parseStudyPrivacy, privacyReport, type StudyPrivacy } from './settings';

function privacyError(run: () => unknown): string {
  try {
    run();
  } catch (err) {
    if (err instanceof PrivacyError) return err.message;
    throw err;
  }
  throw new Error('expected a PrivacyError');
}

const laplaceStudy = parseStudyPrivacy({ minGroupSize: 5, dp: { mechanism: 'laplace', epsilon: 0.5, budget: { epsilon: 3 } } });
const gaussianStudy = parseStudyPrivacy({ minParticipants: 4, dp: { mechanism: 'gaussian', epsilon: 1, delta: 1e-6, budget: { epsilon: 10, delta: 1e-5 } } });
const plainStudy = parseStudyPrivacy(undefined);

describe('parseStudyPrivacy', () => {
  it('applies the defaults: minParticipants 3, minGroupSize 5, no DP', () => {
    expect(plainStudy).toEqual({ minParticipants: 3, minGroupSize: 5, dp: null });
    expect(parseStudyPrivacy({})).toEqual(plainStudy);
    expect(parseStudyPrivacy({ dp: null })).toEqual(plainStudy);
  });

  it('reads DP with its per-query default and budget (laplace spends no δ)', () => {
    expect(laplaceStudy).toEqual({ minParticipants: 3, minGroupSize: 5, dp: { mechanism: 'laplace', epsilon: 0.5, budget: { epsilon: 3, delta: 0 } } });
    expect(gaussianStudy.dp).toEqual({ mechanism: 'gaussian', epsilon: 1, delta: 1e-6, budget: { epsilon: 10, delta: 1e-5 } });
  });

  it.each([
    [{ minGroupSize: 0 }, 'privacy.minGroupSize: must be an integer >= 1'],
    [{ minParticipants: 2.5 }, 'privacy.minParticipants: must be an integer >= 1'],
    [{ minGroupsize: 5 }, 'privacy: unknown key "minGroupsize"'],
    [{ dp: { mechanism: 'laplace', epsilon: 0, budget: { epsilon: 1 } } }, 'privacy.dp.epsilon: must be a finite number greater than 0'],
    [{ dp: { mechanism: 'cauchy', epsilon: 1, budget: { epsilon: 1 } } }, 'privacy.dp.mechanism: must be "laplace" or "gaussian"'],
    [{ dp: { mechanism: 'laplace', epsilon: 1 } }, 'privacy.dp.budget: must be { epsilon, delta? }'],
    [{ dp: { mechanism: 'gaussian', epsilon: 1, budget: { epsilon: 1, delta: 1e-5 } } }, 'privacy.dp.delta: the gaussian mechanism needs delta (0 < delta < 1)'],
    [{ dp: { mechanism: 'gaussian', epsilon: 1, delta: 1e-6, budget: { epsilon: 1 } } }, 'privacy.dp.budget.delta: the gaussian mechanism needs delta (0 < delta < 1)'],
    [{ dp: { mechanism: 'gaussian', epsilon: 1, delta: 1, budget: { epsilon: 1, delta: 0.5 } } }, 'privacy.dp.delta: must be a number greater than 0 and less than 1'],
    [{ dp: { mechanism: 'laplace', epsilon: 1, delta: 1e-6, budget: { epsilon: 1 } } }, 'privacy.dp.delta: the laplace mechanism is pure ε-DP and takes no delta'],
    [{ dp: { mechanism: 'laplace', epsilon: 2, budget: { epsilon: 1 } } }, 'privacy.dp.epsilon: the per-query 2 is more than the whole budget 1'],
    [{ dp: { mechanism: 'gaussian', epsilon: 1, delta: 1e-4, budget: { epsilon: 1, delta: 1e-5 } } }, 'privacy.dp.delta: the per-query 0.0001 is more than the whole budget 0.00001'],
  ])('rejects %j', (json, message) => {
    expect(privacyError(() => parseStudyPrivacy(json))).toBe(message);
  });
});

describe('parseQueryPrivacy', () => {
  it('reads an override and nothing else', () => {
    expect(parseQueryPrivacy(undefined)).toEqual({});
    expect(parseQueryPrivacy(null)).toEqual({});
    expect(parseQueryPrivacy({ minGroupSize: 10, dp: { epsilon: 0.1 } })).toEqual({ minGroupSize: 10, dp: { epsilon: 0.1 } });
    expect(privacyError(() => parseQueryPrivacy({ dp: { budget: { epsilon: 5 } } }))).toBe('privacy.dp: unknown key "budget"');
    expect(privacyError(() => parseQueryPrivacy('strict'))).toMatch(/^privacy: /);
  });
});

describe('effectivePrivacy', () => {
  it("runs with the study's settings when the query has no override", () => {
    expect(effectivePrivacy(laplaceStudy, undefined)).toEqual({ minParticipants: 3, minGroupSize: 5, dp: { mechanism: 'laplace', epsilon: 0.5 } });
    expect(effectivePrivacy(gaussianStudy, {})).toEqual({ minParticipants: 4, minGroupSize: 5, dp: { mechanism: 'gaussian', epsilon: 1, delta: 1e-6 } });
    expect(effectivePrivacy(plainStudy, null)).toEqual({ minParticipants: 3, minGroupSize: 5, dp: null });
  });

  it('lets a query tighten: raise the thresholds, lower ε and δ, repeat the mechanism', () => {
    expect(effectivePrivacy(gaussianStudy, { minParticipants: 6, minGroupSize: 10, dp: { mechanism: 'gaussian', epsilon: 0.25, delta: 1e-8 } })).toEqual({
      minParticipants: 6,
      minGroupSize: 10,
      dp: { mechanism: 'gaussian', epsilon: 0.25, delta: 1e-8 },
    });
    expect(effectivePrivacy(laplaceStudy, { minGroupSize: 5, dp: { epsilon: 0.5 } }).dp).toEqual({ mechanism: 'laplace', epsilon: 0.5 });
  });

  it.each([
    [laplaceStudy, { minGroupSize: 3 }, "privacy.minGroupSize: 3 is below the study's minimum 5"],
    [gaussianStudy, { minParticipants: 3 }, "privacy.minParticipants: 3 is below the study's minimum 4"],
    [laplaceStudy, { dp: { epsilon: 1 } }, "privacy.dp.epsilon: 1 is above the study's 0.5"],
    [gaussianStudy, { dp: { delta: 1e-5 } }, "privacy.dp.delta: 0.00001 is above the study's 0.000001"],
    [gaussianStudy, { dp: { mechanism: 'laplace' } }, 'privacy.dp.mechanism: the study uses gaussian; a query cannot change it'],
    [laplaceStudy, { dp: { delta: 1e-9 } }, 'privacy.dp.delta: the study uses laplace, which is pure ε-DP and takes no delta'],
    [laplaceStudy, { minGroupSize: 'ten' }, 'privacy.minGroupSize: must be an integer >= 1'],
  ] as [StudyPrivacy, unknown, string][])('refuses to loosen: %#', (study, query, message) => {
    expect(privacyError(() => effectivePrivacy(study, query))).toBe(message);
  });

  it('lets a query add DP to a study without it, naming the mechanism (there is no budget to charge)', () => {
    expect(effectivePrivacy(plainStudy, { dp: { mechanism: 'laplace', epsilon: 1 } }).dp).toEqual({ mechanism: 'laplace', epsilon: 1 });
    expect(effectivePrivacy(plainStudy, { dp: { mechanism: 'gaussian', epsilon: 1, delta: 1e-7 } }).dp).toEqual({ mechanism: 'gaussian', epsilon: 1, delta: 1e-7 });
    expect(privacyError(() => effectivePrivacy(plainStudy, { dp: { epsilon: 1 } }))).toBe(
      'privacy.dp.mechanism: the study has no differential privacy; a query that asks for it must name the mechanism',
    );
    expect(privacyError(() => effectivePrivacy(plainStudy, { dp: { mechanism: 'laplace' } }))).toBe(
      'privacy.dp.epsilon: the study has no differential privacy; a query that asks for it must give epsilon',
    );
    expect(privacyError(() => effectivePrivacy(plainStudy, { dp: { mechanism: 'gaussian', epsilon: 1 } }))).toBe(
      'privacy.dp.delta: the gaussian mechanism needs delta (0 < delta < 1)',
    );
  });
});

describe('dpCost and privacyReport', () => {
  it('charges ε and δ (0 for laplace)', () => {
    expect(dpCost({ mechanism: 'laplace', epsilon: 0.5 })).toEqual({ epsilon: 0.5, delta: 0 });
    expect(dpCost({ mechanism: 'gaussian', epsilon: 1, delta: 1e-6 })).toEqual({ epsilon: 1, delta: 1e-6 });
    expect(() => dpCost({ mechanism: 'gaussian', epsilon: 1 })).toThrow(RangeError);
  });

  it('says which measures applied', () => {
    expect(privacyReport(effectivePrivacy(gaussianStudy, { minGroupSize: 8 }), 3)).toEqual({
      minParticipants: 4,
      minGroupSize: 8,
      suppressed: 3,
      dp: { mechanism: 'gaussian', epsilon: 1, delta: 1e-6 },
    });
    expect(privacyReport(effectivePrivacy(plainStudy, undefined), 0)).toEqual({ minParticipants: 3, minGroupSize: 5, suppressed: 0, dp: null });
    expect(() => privacyReport(effectivePrivacy(plainStudy, undefined), -1)).toThrow(RangeError);
  });
});
