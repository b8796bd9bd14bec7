/**
 * The little of the Prometheus text exposition format (0.0.4) the coordinator's /metrics needs: sample lines with
 * escaped labels, and histograms, whether kept in this process ({@link Histogram}) or counted by the database.
 */

/** One sample line; label values escaped as the format requires. */
export function sample(name: string, value: number, labels: Record<string, string> = {}): string {
  const entries = Object.entries(labels);
  const text = entries.length ? `{${entries.map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`).join(',')}}` : '';
  return `${name}${text} ${value}`;
}

/** A histogram's figures: cumulative counts at each upper bound (seconds), then the count and the sum of all. */
export interface HistogramCounts {
  readonly buckets: readonly number[];
  /** `cumulative[i]`: observations ≤ `buckets[i]`. */
  readonly cumulative: readonly number[];
  readonly count: number;
  readonly sum: number;
}

/** The `_bucket` (with `le="+Inf"`), `_sum` and `_count` lines of one labelled series. */
export function histogramLines(name: string, counts: HistogramCounts, labels: Record<string, string> = {}): string[] {
  return [
    ...counts.buckets.map((le, i) => sample(`${name}_bucket`, counts.cumulative[i]!, { ...labels, le: String(le) })),
    sample(`${name}_bucket`, counts.count, { ...labels, le: '+Inf' }),
    sample(`${name}_sum`, Math.round(counts.sum * 1e6) / 1e6, labels),
    sample(`${name}_count`, counts.count, labels),
  ];
}

/** A histogram kept in this process (it starts again at zero when the process does, as Prometheus expects). */
export class Histogram {
  private readonly counts: number[];
  private total = 0;
  private sum = 0;

  constructor(readonly buckets: readonly number[]) {
    this.counts = buckets.map(() => 0);
  }

  observe(seconds: number): void {
    for (let i = 0; i < this.buckets.length; i++) if (seconds <= this.buckets[i]!) this.counts[i]!++;
    this.total++;
    this.sum += seconds;
  }

  snapshot(): HistogramCounts {
    return { buckets: this.buckets, cumulative: [...this.counts], count: this.total, sum: this.sum };
  }
}

/**
 * Wall time of each ledger append (EventLog.append: the lock, the insert, the tree's new nodes and the signed
 * checkpoint), waiting for the append lock included: one histogram for this process.
 */
export const LEDGER_APPEND_SECONDS = new Histogram([0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1]);
