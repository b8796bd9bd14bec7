import { toZn } from 'bigint-crypto-utils';
import { mod, mul, P, randomElement } from '@confide/crypto';
import { fmt, measure, type BenchSection } from './harness';

/**
 * Which reduction for products in GF(2^127 − 1): the Mersenne fold in libs/crypto (kept), bigint `%`,
 * or bigint-crypto-utils' generic toZn. Measured on the hot path's shape: products of two elements.
 */
export async function fieldBench(): Promise<BenchSection> {
  const n = 10_000;
  const a = Array.from({ length: n }, () => randomElement());
  const b = Array.from({ length: n }, () => randomElement());
  const variants: [string, () => void][] = [
    ['Mersenne fold (libs/crypto `mul`)', () => { for (let i = 0; i < n; i++) mul(a[i]!, b[i]!); }],
    ['bigint `%` P', () => { for (let i = 0; i < n; i++) void ((a[i]! * b[i]!) % P); }],
    ['bigint-crypto-utils `toZn`', () => { for (let i = 0; i < n; i++) toZn(a[i]! * b[i]!, P); }],
    ['`mod` of a signed value (libs/crypto)', () => { for (let i = 0; i < n; i++) mod(-(a[i]! * b[i]!)); }],
  ];
  const rows: (string | number)[][] = [];
  let base = 0;
  for (const [name, fn] of variants) {
    const t = await measure(fn, { minMs: 700 });
    const perSec = (t.opsPerSec * n) / 1e6;
    if (base === 0) base = perSec;
    rows.push([name, fmt(perSec), fmt(perSec / base)]);
  }
  return {
    id: 'field',
    title: 'Field reduction: Mersenne fold vs generic',
    method: `Products of two random elements of GF(2^127 − 1), ${n.toLocaleString('en-US')} per iteration, reduced each way. The fastest generic routine decides whether libs/crypto keeps its Mersenne-specific \`mod\`.`,
    columns: ['reduction', 'M mul+reduce/s', 'relative to Mersenne fold'],
    rows,
  };
}
