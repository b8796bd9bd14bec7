import { termKey, type AggregateTerm, type CompiledQuery, type HistogramBin, type StatName, type StatResult, type StatResultOf } from '../query/query';

/**
 * Small-cell suppression of released statistics (DESIGN.md "Trust model": output privacy, "suppressed below a
 * minimum group size"), after the threshold rule and complementary (secondary) cell suppression of
 * statistical disclosure control for frequency tables (Hundepool et al., "Statistical Disclosure Control",
 * Wiley 2012, the chapter on frequency tables; Willenborg, de Waal, "Elements of Statistical Disclosure
 * Control", Springer 2001).
 *
 * Cells. A statistic of one group is computed over a population: the records of that group (after where) that
 * have its field, or both fields for correlation and regression. Its size n is the statistic's count. Every
 * statistic over the same field in the same group shares that population (count, sum, mean, variance,
 * stddev and histogram of glu in group A are one cell), so they are suppressed together. A histogram row
 * also has one cell per bin, underflow and overflow.
 *
 * Primary suppression (the threshold rule). A cell with 0 < n < minGroupSize is suppressed. Since every
 * population is part of its group, all statistics of a group with fewer than minGroupSize records are
 * suppressed; a statistic over few non-missing values in a large group is suppressed too. An empty cell
 * (n = 0) is released: it describes no one, and hiding it would not hide it (the others add up to the total).
 *
 * Complementary suppression. A suppressed cell must not be the difference of a known total and released
 * cells. The tables whose totals a researcher knows or can get:
 * - one population across the groups (total: the same statistic ungrouped, from another query);
 * - one histogram row across its cells, underflow to overflow (total: the row's released count);
 * - one histogram cell across the groups (total: the ungrouped histogram's cell, from another query).
 * Whenever a table has exactly one suppressed cell and some released cell, the smallest released non-empty
 * cell is suppressed too (ties: the first in order; an empty one only when there is no other). This repeats
 * until no table changes, since suppressing a cell in one table can leave another with exactly one.
 * Suppressing a population also suppresses its histogram rows' cells (they would add up to its count).
 * Every table then has no suppressed cell or at least two (or nothing left to suppress), so no suppressed cell
 * equals a total minus released cells. This is the per-table rule the issue asks for,
 * not a full audit against every linear combination of tables (an LP attack on a grouped histogram);
 * differential privacy is the defence against that, and against differencing two queries (DESIGN.md).
 *
 * Primary and complementary suppressions look the same in the result, so a reader cannot tell which cell
 * is the small one. With DP, pass the noised totals and the rows derived from them: the sizes are then noisy
 * counts, and suppression is post-processing.
 */

/** A histogram as released: a suppressed bin, underflow or overflow has count null. */
export interface ReleasedHistogram {
  readonly bins: readonly (Omit<HistogramBin, 'count'> & { readonly count: number | null })[];
  readonly underflow: number | null;
  readonly overflow: number | null;
}

/**
 * A result row as released. `suppressed: true` withholds the whole row (value and count null). A histogram row
 * with `suppressed: false` may still have suppressed cells (count null).
 */
export type ReleasedResultOf<S extends StatName> = Omit<StatResultOf<S>, 'value' | 'count'> & {
  readonly value: (S extends 'histogram' ? ReleasedHistogram : StatResultOf<S>['value']) | null;
  readonly count: number | null;
  readonly suppressed: boolean;
};

export type ReleasedResult = { [S in StatName]: ReleasedResultOf<S> }[StatName];

/** The released rows and how many values suppression withheld. */
export interface SuppressionResult {
  readonly rows: ReleasedResult[];
  /** Each suppressed row counts once; each suppressed histogram cell of a row that is otherwise released counts once. */
  readonly suppressedCells: number;
}

interface Cell {
  readonly size: bigint;
  suppressed: boolean;
}

/**
 * Applies the minimum group size to derived result rows (module comment: cells, primary and complementary
 * suppression). Cell sizes are read from the totals (the statistics' count terms and a histogram's bins);
 * the values released are the rows'.
 *
 * @param compiled the compiled query
 * @param totals the revealed totals the rows were derived from (with DP: noised and clamped), length `vectorLength`
 * @param rows `deriveResults(compiled, totals)`: group-major, select order
 * @param minGroupSize the effective minimum group size (an integer ≥ 1)
 * @returns the released rows in the same order, and the number of withheld values
 * @throws RangeError for totals or rows that do not match the query, or a minGroupSize that is not an integer ≥ 1;
 *   TypeError for a statistic without a count term (a new statistic needs a rule here)
 */
export function suppress(compiled: CompiledQuery, totals: readonly bigint[], rows: readonly StatResult[], minGroupSize: number): SuppressionResult {
  if (!Number.isSafeInteger(minGroupSize) || minGroupSize < 1) throw new RangeError(`minGroupSize must be an integer >= 1, got ${minGroupSize}`);
  if (totals.length !== compiled.vectorLength) throw new RangeError(`expected ${compiled.vectorLength} totals, got ${totals.length}`);
  const { select, groups, terms } = compiled;
  if (rows.length !== select.length * groups.length) throw new RangeError(`expected ${select.length * groups.length} result rows, got ${rows.length}`);
  rows.forEach((row, i) => {
    const g = Math.floor(i / select.length);
    const spec = select[i % select.length]!.spec;
    if (row.stat !== spec.stat || row.group !== groups[g]) throw new RangeError(`result row ${i} is not ${spec.stat} of group ${String(groups[g])}`);
  });

  const k = BigInt(minGroupSize);
  const width = terms.length;
  const total = (g: number, t: number): bigint => {
    const v = totals[g * width + t]!;
    return v < 0n ? 0n : v;
  };
  const cells: Cell[] = [];
  const newCell = (size: bigint): number => cells.push({ size, suppressed: size > 0n && size < k }) - 1;

  // Populations, keyed like the count term of the records they cover: count(glu), count(bmi, glu).
  const populationKey = select.map(({ spec, termIndices }) => {
    if (spec.stat === 'histogram') return termKey({ kind: 'count', field: spec.field });
    const countTerm = termIndices.map((t) => terms[t]!).find((term): term is AggregateTerm<'count'> => term.kind === 'count');
    if (countTerm === undefined) throw new TypeError(`${spec.stat} has no count term; suppression needs one`);
    return termKey(countTerm);
  });
  const populationSize = (i: number, g: number): bigint => {
    const { spec, termIndices } = select[i]!;
    if (spec.stat === 'histogram') return termIndices.reduce((n, t) => n + total(g, t), 0n);
    return total(g, termIndices.find((t) => terms[t]!.kind === 'count')!);
  };
  // populationCell[i][g]; statistics sharing a population share the cell (the smallest size if noise made them differ).
  const byKey = new Map<string, number[]>();
  const populationCell = select.map((_, i) => {
    const key = populationKey[i]!;
    let perGroup = byKey.get(key);
    if (perGroup === undefined) {
      perGroup = groups.map(() => -1);
      byKey.set(key, perGroup);
    }
    return perGroup;
  });
  const sizes = new Map<string, bigint[]>();
  select.forEach((_, i) => {
    const key = populationKey[i]!;
    const current = sizes.get(key);
    const own = groups.map((_g, g) => populationSize(i, g));
    sizes.set(key, current === undefined ? own : current.map((n, g) => (own[g]! < n ? own[g]! : n)));
  });
  for (const [key, perGroup] of byKey) {
    const size = sizes.get(key)!;
    perGroup.forEach((_, g) => (perGroup[g] = newCell(size[g]!)));
  }

  // Histogram cells: binCell[i][g][c], c over [underflow, bins…, overflow] (the terms' order).
  const binCell = select.map(({ spec, termIndices }) =>
    spec.stat === 'histogram' ? groups.map((_, g) => termIndices.map((t) => newCell(total(g, t)))) : null,
  );

  const lines: number[][] = [];
  if (groups.length > 1) {
    for (const perGroup of byKey.values()) lines.push(perGroup);
  }
  const links: { population: number; cells: number[] }[] = [];
  binCell.forEach((perGroup, i) => {
    if (perGroup === null) return;
    perGroup.forEach((row, g) => {
      lines.push(row);
      links.push({ population: populationCell[i]![g]!, cells: row });
    });
    if (groups.length > 1) perGroup[0]!.forEach((_, c) => lines.push(perGroup.map((row) => row[c]!)));
  });

  for (let changed = true; changed; ) {
    changed = false;
    for (const { population, cells: row } of links) {
      if (!cells[population]!.suppressed) continue;
      for (const c of row) {
        if (!cells[c]!.suppressed) {
          cells[c]!.suppressed = true;
          changed = true;
        }
      }
    }
    for (const line of lines) {
      if (line.filter((c) => cells[c]!.suppressed).length !== 1) continue;
      let pick = -1;
      for (const c of line) {
        const cell = cells[c]!;
        if (cell.suppressed) continue;
        const best = pick < 0 ? undefined : cells[pick]!;
        // Prefer non-empty cells, then the smallest; ties keep the first.
        if (best === undefined || (best.size === 0n && cell.size > 0n) || (cell.size > 0n && cell.size < best.size)) pick = c;
      }
      if (pick >= 0) {
        cells[pick]!.suppressed = true;
        changed = true;
      }
    }
  }

  let suppressedCells = 0;
  const released = rows.map((row, r): ReleasedResult => {
    const i = r % select.length;
    const g = Math.floor(r / select.length);
    if (cells[populationCell[i]![g]!]!.suppressed) {
      suppressedCells++;
      return { ...row, value: null, count: null, suppressed: true };
    }
    const histogramCells = binCell[i]?.[g];
    if (row.stat !== 'histogram' || histogramCells === undefined) return { ...row, suppressed: false };
    const shown = (c: number, count: number): number | null => {
      if (!cells[histogramCells[c]!]!.suppressed) return count;
      suppressedCells++;
      return null;
    };
    const value = row.value;
    const last = histogramCells.length - 1;
    return {
      ...row,
      value: {
        underflow: shown(0, value.underflow),
        bins: value.bins.map((bin, b) => ({ ...bin, count: shown(b + 1, bin.count) })),
        overflow: shown(last, value.overflow),
      },
      suppressed: false,
    };
  });
  return { rows: released, suppressedCells };
}
