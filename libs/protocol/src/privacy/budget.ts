import { decimalOf, ratioToNumber, type Rational } from '../exact';
import { PrivacyError, type PrivacyCost } from './settings';

/**
 * The per-study privacy budget under basic sequential composition (Dwork, Roth, "The Algorithmic Foundations
 * of Differential Privacy", 2014, Theorem 3.16): k queries that are (εᵢ, δᵢ)-DP together are (Σεᵢ, Σδᵢ)-DP.
 *
 * Arithmetic is exact: every ε and δ is read as the decimal it was written as (`0.1` is 1/10, exact.ts
 * `decimalOf`), sums are exact rationals, so ten queries of ε = 0.1 spend exactly a budget of 1 and an
 * eleventh is refused, with no floating-point drift either way.
 */

function add(a: Rational, b: Rational): Rational {
  return a.d === b.d ? { n: a.n + b.n, d: a.d } : { n: a.n * b.d + b.n * a.d, d: a.d * b.d };
}

function compare(a: Rational, b: Rational): number {
  const x = a.n * b.d;
  const y = b.n * a.d;
  return x < y ? -1 : x > y ? 1 : 0;
}

const ZERO: Rational = { n: 0n, d: 1n };

/** An ε or δ as an exact decimal. */
function amount(value: number, what: string): Rational {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) throw new RangeError(`${what} must be a finite number >= 0, got ${String(value)}`);
  return decimalOf(value);
}

/** The exact value, printed as the shortest decimal of the nearest double (0.3, not 0.30000000000000004). */
function show(r: Rational): string {
  return String(ratioToNumber(r.n, r.d));
}

/** Σ of the spent amounts, exact. */
function total(spent: readonly PrivacyCost[]): { epsilon: Rational; delta: Rational } {
  let epsilon = ZERO;
  let delta = ZERO;
  spent.forEach((s, i) => {
    epsilon = add(epsilon, amount(s.epsilon, `spent[${i}].epsilon`));
    delta = add(delta, amount(s.delta, `spent[${i}].delta`));
  });
  return { epsilon, delta };
}

function remaining(spent: readonly PrivacyCost[], budget: PrivacyCost): { epsilon: Rational; delta: Rational; budget: { epsilon: Rational; delta: Rational } } {
  const budgetTotal = { epsilon: amount(budget.epsilon, 'budget.epsilon'), delta: amount(budget.delta, 'budget.delta') };
  const used = total(spent);
  const epsilon = add(budgetTotal.epsilon, { n: -used.epsilon.n, d: used.epsilon.d });
  const delta = add(budgetTotal.delta, { n: -used.delta.n, d: used.delta.d });
  return {
    epsilon: compare(epsilon, ZERO) < 0 ? ZERO : epsilon,
    delta: compare(delta, ZERO) < 0 ? ZERO : delta,
    budget: budgetTotal,
  };
}

/**
 * Refuses a query whose DP cost would take the study past its budget (the issue: "a query that would exceed
 * the budget is refused before anyone computes anything"). Basic sequential composition: allowed exactly
 * when Σ spent ε + request ε ≤ budget ε and likewise for δ; a request that spends the budget exactly to the
 * last decimal is allowed.
 *
 * @param spent what earlier queries of the study spent (from the event log), each {@link dpCost}
 * @param request what this query would spend
 * @param budget the study's total (`StudyDp.budget`)
 * @throws PrivacyError `privacy budget exhausted: this query needs ε = 0.5, 0.3 of 1 remains` (or the same for δ);
 *   RangeError for a negative, NaN or infinite amount
 */
export function assertBudget(spent: readonly PrivacyCost[], request: PrivacyCost, budget: PrivacyCost): void {
  const left = remaining(spent, budget);
  const epsilon = amount(request.epsilon, 'request.epsilon');
  const delta = amount(request.delta, 'request.delta');
  if (compare(epsilon, left.epsilon) > 0) {
    throw new PrivacyError(`privacy budget exhausted: this query needs ε = ${show(epsilon)}, ${show(left.epsilon)} of ${show(left.budget.epsilon)} remains`);
  }
  if (compare(delta, left.delta) > 0) {
    throw new PrivacyError(`privacy budget exhausted: this query needs δ = ${show(delta)}, ${show(left.delta)} of ${show(left.budget.delta)} remains`);
  }
}

/**
 * What is left of a study's budget after the spent queries (basic sequential composition, exact as in
 * {@link assertBudget}), each rounded once to the nearest double; never below 0.
 *
 * @throws RangeError for a negative, NaN or infinite amount
 */
export function budgetRemaining(spent: readonly PrivacyCost[], budget: PrivacyCost): PrivacyCost {
  const left = remaining(spent, budget);
  return { epsilon: ratioToNumber(left.epsilon.n, left.epsilon.d), delta: ratioToNumber(left.delta.n, left.delta.d) };
}

/**
 * What a study's queries have spent together (basic sequential composition: Σεᵢ, Σδᵢ), summed exactly as
 * {@link budgetRemaining} sums them and rounded once to the nearest double, so spent and remaining shown side by
 * side add up to the budget as the decimals written (ten spends of 0.1 show 1, not 0.9999999999999999).
 *
 * @throws RangeError for a negative, NaN or infinite amount
 */
export function budgetSpent(spent: readonly PrivacyCost[]): PrivacyCost {
  const used = total(spent);
  return { epsilon: ratioToNumber(used.epsilon.n, used.epsilon.d), delta: ratioToNumber(used.delta.n, used.delta.d) };
}
