import { Histogram, histogramLines, sample } from './prometheus';

describe('Prometheus text format', () => {
  it('escapes label values: backslash, quote and newline', () => {
    expect(sample('confide_participants_online', 2, { study: 'a "b"\\c\nd' })).toBe('confide_participants_online{study="a \\"b\\"\\\\c\\nd"} 2');
    expect(sample('confide_ledger_entries', 7)).toBe('confide_ledger_entries 7');
  });

  it('keeps cumulative buckets, a +Inf bucket equal to the count, and the sum', () => {
    const h = new Histogram([0.01, 0.1, 1]);
    for (const s of [0.005, 0.01, 0.05, 0.5, 3]) h.observe(s);
    expect(histogramLines('x_seconds', h.snapshot(), { kind: 'k' })).toEqual([
      'x_seconds_bucket{kind="k",le="0.01"} 2',
      'x_seconds_bucket{kind="k",le="0.1"} 3',
      'x_seconds_bucket{kind="k",le="1"} 4',
      'x_seconds_bucket{kind="k",le="+Inf"} 5',
      'x_seconds_sum{kind="k"} 3.565',
      'x_seconds_count{kind="k"} 5',
    ]);
  });
});
