import { assertBudget, budgetRemaining, budgetSpent } from './budget';
import { PrivacyError } from './settings';

const budget = { epsilon: 1, delta: 1e-5 };
const laplace = (epsilon: number) => ({ epsilon, delta: 0 });

function refusal(run: () => void): string {
  try {
    run();
  } catch (err) {
    if (err instanceof PrivacyError) return err.message;
    throw err;
  }
  throw new Error('expected the budget to refuse');
}

describe('assertBudget (basic sequential composition)', () => {
  it('allows a query that spends the budget exactly, to the last decimal', () => {
    expect(() => assertBudget(Array.from({ length: 9 }, () => laplace(0.1)), laplace(0.1), budget)).not.toThrow();
    // In doubles 0.1 + 0.1 + 0.1 is 0.30000000000000004 > 0.3; as the decimals written it is exactly 0.3.
    expect(0.1 + 0.1 + 0.1).toBeGreaterThan(0.3);
    expect(() => assertBudget([laplace(0.1), laplace(0.1)], laplace(0.1), { epsilon: 0.3, delta: 0 })).not.toThrow();
    expect(() => assertBudget([], { epsilon: 1, delta: 1e-5 }, budget)).not.toThrow();
  });

  it('refuses a query that would go past it, saying what it needs and what remains', () => {
    expect(refusal(() => assertBudget([laplace(0.7)], laplace(0.5), budget))).toBe('privacy budget exhausted: this query needs ε = 0.5, 0.3 of 1 remains');
    expect(refusal(() => assertBudget(Array.from({ length: 10 }, () => laplace(0.1)), laplace(0.1), budget))).toBe(
      'privacy budget exhausted: this query needs ε = 0.1, 0 of 1 remains',
    );
  });

  it('refuses on δ too', () => {
    expect(refusal(() => assertBudget([{ epsilon: 0.1, delta: 6e-6 }], { epsilon: 0.1, delta: 5e-6 }, budget))).toBe(
      'privacy budget exhausted: this query needs δ = 0.000005, 0.000004 of 0.00001 remains',
    );
    expect(() => assertBudget([{ epsilon: 0.1, delta: 5e-6 }], { epsilon: 0.1, delta: 5e-6 }, budget)).not.toThrow();
  });

  it('reports 0 remaining when earlier queries overspent', () => {
    expect(refusal(() => assertBudget([laplace(0.6), laplace(0.6)], laplace(0.01), budget))).toBe('privacy budget exhausted: this query needs ε = 0.01, 0 of 1 remains');
  });

  it('rejects amounts that are not finite non-negative numbers', () => {
    expect(() => assertBudget([], laplace(-0.1), budget)).toThrow(RangeError);
    expect(() => assertBudget([laplace(Number.NaN)], laplace(0.1), budget)).toThrow(RangeError);
    expect(() => assertBudget([], laplace(0.1), { epsilon: Number.POSITIVE_INFINITY, delta: 0 })).toThrow(RangeError);
  });
});

describe('budgetRemaining', () => {
  it('is the budget minus the exact sum spent, never below 0', () => {
    expect(budgetRemaining([laplace(0.1), laplace(0.2)], budget)).toEqual({ epsilon: 0.7, delta: 1e-5 });
    expect(budgetRemaining([{ epsilon: 2, delta: 1 }], budget)).toEqual({ epsilon: 0, delta: 0 });
    expect(budgetRemaining([], budget)).toEqual(budget);
  });
});

describe('budgetSpent', () => {
  it('is the exact sum of what was spent, rounded once: ten spends of 0.1 are 1 and three are 0.3', () => {
    expect(budgetSpent(Array.from({ length: 10 }, () => laplace(0.1)))).toEqual({ epsilon: 1, delta: 0 });
    expect(budgetSpent([laplace(0.1), laplace(0.1), laplace(0.1)])).toEqual({ epsilon: 0.3, delta: 0 });
    expect(budgetSpent([{ epsilon: 0.25, delta: 1e-6 }, { epsilon: 0.5, delta: 2e-6 }])).toEqual({ epsilon: 0.75, delta: 3e-6 });
  });

  it('is zero for nothing spent, and spent plus remaining is the budget', () => {
    expect(budgetSpent([])).toEqual({ epsilon: 0, delta: 0 });
    const spent = [laplace(0.1), laplace(0.2), { epsilon: 0.3, delta: 4e-6 }];
    const left = budgetRemaining(spent, budget);
    expect(budgetSpent(spent)).toEqual({ epsilon: 0.6, delta: 4e-6 });
    expect(budgetSpent([budgetSpent(spent), left])).toEqual(budget);
  });

  it('refuses a negative or non-finite amount, naming it', () => {
    expect(() => budgetSpent([laplace(0.1), { epsilon: -1, delta: 0 }])).toThrow('spent[1].epsilon must be a finite number >= 0, got -1');
    expect(() => budgetSpent([{ epsilon: 0.1, delta: Number.NaN }])).toThrow('spent[0].delta must be a finite number >= 0, got NaN');
  });
});
