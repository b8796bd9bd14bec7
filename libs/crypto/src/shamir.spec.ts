import fc from 'fast-check';
import { P, add, mul, sub } from './field';
import type { RandomSource } from './random';
import { MAX_HOLDERS, checkConsistency, reconstructSecret, splitAdditive, splitSecret, type ShamirShare } from './shamir';
import { chiSquare, seededRandom } from '../../../test/support/randomness';

const element = fc.oneof(fc.bigInt({ min: 0n, max: P - 1n }), fc.constantFrom(0n, 1n, P - 1n));
const secretVector = fc.array(element, { minLength: 1, maxLength: 4 });

/** Holder x's share with coordinate c replaced by a different field element. */
function corrupt(share: ShamirShare, c = 0, delta = 1n): ShamirShare {
  return { x: share.x, y: share.y.map((v, i) => (i === c ? add(v, delta) : v)) };
}

// ---- χ² test for uniformity, used on share values (STYLE.md: the test must be able to fail) ----

// Critical values at p = 10^-6 (scipy.stats.chi2.isf(1e-6, df)) for 8 and 16 bins.
const CHI2_CRITICAL: Record<number, number> = { 8: 40.52, 16: 56.49 };

/** Bins values 0..bins−1 and reports whether they pass a χ² test against the uniform distribution. */
function looksUniform(binned: readonly number[], bins: number): boolean {
  const critical = CHI2_CRITICAL[bins];
  if (critical === undefined) throw new Error(`no critical value for ${bins} bins`);
  const counts = new Array<number>(bins).fill(0);
  for (const b of binned) counts[b]! += 1;
  return chiSquare(counts) < critical;
}

/**
 * Three ways to cut the field into 2^bits equal cells, so that a χ² test looks at both ends of an element and its
 * middle: by range (the field in equal intervals: the high bits), by bits 61–63, and by residue (x mod 2^bits: the
 * low bits). A uniform element is uniform in each; a bias in any of those bits shows in one of them.
 */
const VIEWS: readonly (readonly [name: string, cell: (x: bigint, bits: number) => number])[] = [
  ['range', (x, bits) => Number((x << BigInt(bits)) / P)],
  ['bits 61+', (x, bits) => Number((x >> 61n) & ((1n << BigInt(bits)) - 1n))],
  ['residue', (x, bits) => Number(x & ((1n << BigInt(bits)) - 1n))],
];

/**
 * What t − 1 = 2 colluding holders see is their whole share vectors: every coordinate of both. Each value a holder
 * holds (holder, coordinate) must look uniform alone (8 cells), and every two of them jointly (4 × 4 cells: two
 * coordinates of one holder, or of two holders), in each of the three views. Returns the cells that fail, by name.
 */
function whatTwoHoldersLearn(splits: readonly ShamirShare[][]): string[] {
  const holders = splits[0]!.length;
  const coordinates = splits[0]![0]!.y.length;
  const seen: { name: string; values: bigint[] }[] = [];
  for (let h = 0; h < holders; h++) {
    for (let c = 0; c < coordinates; c++) seen.push({ name: `holder ${h + 1} coordinate ${c}`, values: splits.map((s) => s[h]!.y[c]!) });
  }
  const failed: string[] = [];
  for (const [view, cell] of VIEWS) {
    for (const a of seen) if (!looksUniform(a.values.map((x) => cell(x, 3)), 8)) failed.push(`${a.name} (${view})`);
    for (let i = 0; i < seen.length; i++) {
      for (let j = i + 1; j < seen.length; j++) {
        const [a, b] = [seen[i]!, seen[j]!];
        if (!looksUniform(a.values.map((x, n) => cell(x, 2) * 4 + cell(b.values[n]!, 2)), 16)) failed.push(`${a.name} with ${b.name} (${view})`);
      }
    }
  }
  return failed;
}

describe('splitSecret / reconstructSecret', () => {
  const setup = fc.integer({ min: 1, max: 12 }).chain((k) =>
    fc.integer({ min: 1, max: k }).chain((t) =>
      fc.record({
        k: fc.constant(k),
        t: fc.constant(t),
        secret: secretVector,
        seed: fc.integer(),
        // A random subset of at least t holders, in random order.
        order: fc.shuffledSubarray(
          Array.from({ length: k }, (_, i) => i),
          { minLength: t, maxLength: k },
        ),
      }),
    ),
  );

  it('any t of k shares, in any order, reconstruct the secret vector', () => {
    fc.assert(
      fc.property(setup, ({ k, t, secret, seed, order }) => {
        const shares = splitSecret(secret, t, k, seededRandom(seed));
        expect(shares.map((s) => s.x)).toEqual(Array.from({ length: k }, (_, i) => i + 1));
        expect(reconstructSecret(
          order.map((i) => shares[i]!),
          t,
        )).toEqual(secret);
      }),
      { numRuns: 150 },
    );
  });

  it('t − 1 shares interpolate to something else, and are refused as too few', () => {
    fc.assert(
      fc.property(
        setup.filter(({ t }) => t >= 2),
        ({ k, t, secret, seed, order }) => {
          const shares = splitSecret(secret, t, k, seededRandom(seed));
          const tooFew = order.slice(0, t - 1).map((i) => shares[i]!);
          const guess = reconstructSecret(tooFew, t - 1);
          guess.forEach((g, c) => expect(g).not.toBe(secret[c]));
          expect(() => reconstructSecret(tooFew, t)).toThrow(RangeError);
        },
      ),
      { numRuns: 100 },
    );
  });

  it('gives holder x the value f(x) of a polynomial with the secret as constant term', () => {
    const a1 = 0x0123456789abcdefn;
    const a2 = (1n << 126n) + 5n;
    const chunks = [a1, a2].map((a) => Uint8Array.from(Buffer.from(a.toString(16).padStart(32, '0'), 'hex')));
    let next = 0;
    const shares = splitSecret([42n], 3, 4, () => chunks[next++]!);
    for (const s of shares) {
      const x = BigInt(s.x);
      expect(s.y).toEqual([add(42n, add(mul(a1, x), mul(a2, mul(x, x))))]);
    }
  });

  it('is deterministic for a given random source and different for another', () => {
    expect(splitSecret([1n, 2n], 3, 5, seededRandom('a'))).toEqual(splitSecret([1n, 2n], 3, 5, seededRandom('a')));
    expect(splitSecret([1n, 2n], 3, 5, seededRandom('a'))).not.toEqual(splitSecret([1n, 2n], 3, 5, seededRandom('b')));
    expect(splitSecret([1n, 2n], 3, 5)).not.toEqual(splitSecret([1n, 2n], 3, 5));
  });

  it('supports the full range of holders', () => {
    const shares = splitSecret([7n], 2, MAX_HOLDERS, seededRandom('max'));
    expect(reconstructSecret([shares[MAX_HOLDERS - 1]!, shares[MAX_HOLDERS - 2]!], 2)).toEqual([7n]);
  });

  it('handles the empty vector', () => {
    const shares = splitSecret([], 2, 3);
    expect(reconstructSecret(shares, 2)).toEqual([]);
  });

  it.each<[string, () => unknown]>([
    ['threshold 0', () => splitSecret([1n], 0, 3)],
    ['threshold above holders', () => splitSecret([1n], 4, 3)],
    ['fractional threshold', () => splitSecret([1n], 1.5, 3)],
    ['no holders', () => splitSecret([1n], 1, 0)],
    ['more than MAX_HOLDERS', () => splitSecret([1n], 1, MAX_HOLDERS + 1)],
    ['a secret equal to p', () => splitSecret([P], 2, 3)],
    ['a negative secret', () => splitSecret([-1n], 2, 3)],
  ])('splitSecret rejects %s', (_what, call) => {
    expect(call).toThrow(RangeError);
  });

  it('reconstructSecret rejects malformed share sets', () => {
    const shares = splitSecret([5n, 6n], 2, 3, seededRandom('m'));
    const [s1, s2] = shares as [ShamirShare, ShamirShare, ShamirShare];
    expect(() => reconstructSecret([], 1)).toThrow(RangeError);
    expect(() => reconstructSecret(shares, 0)).toThrow(RangeError);
    expect(() => reconstructSecret(shares, 1.5)).toThrow(RangeError);
    expect(() => reconstructSecret([s1, { ...s2, x: s1.x }], 2)).toThrow(/two shares for holder 1/);
    expect(() => reconstructSecret([s1, { ...s2, x: 0 }], 2)).toThrow(RangeError);
    expect(() => reconstructSecret([s1, { ...s2, x: MAX_HOLDERS + 1 }], 2)).toThrow(RangeError);
    expect(() => reconstructSecret([s1, { ...s2, x: 2.5 }], 2)).toThrow(RangeError);
    expect(() => reconstructSecret([s1, { ...s2, y: [5n] }], 2)).toThrow(RangeError);
    expect(() => reconstructSecret([s1, { ...s2, y: [P, 0n] }], 2)).toThrow(RangeError);
  });
});

describe('Shamir privacy: t − 1 shares are uniform whatever the secret', () => {
  const SPLITS = 3000;
  const secretA = [0n, 0n];
  const secretB = [P - 1n, (1n << 126n) + 0xdeadbeefn];
  const splitsOf = (secret: readonly bigint[], threshold: number, rng: RandomSource) =>
    Array.from({ length: SPLITS }, () => splitSecret(secret, threshold, 5, rng));

  it('passes the χ² test for two very different secrets (t = 3, k = 5)', () => {
    const rng = seededRandom('privacy');
    expect(whatTwoHoldersLearn(splitsOf(secretA, 3, rng))).toEqual([]);
    expect(whatTwoHoldersLearn(splitsOf(secretB, 3, rng))).toEqual([]);
  });

  it('the same test fails a broken split where the share is the secret (threshold 1)', () => {
    const broken = splitsOf(secretB, 1, seededRandom('broken'));
    expect(broken[0]![0]!.y).toEqual(secretB);
    expect(whatTwoHoldersLearn(broken)).not.toEqual([]);
  });

  it('the same test fails a split whose random source is weak (coefficients below 2^64)', () => {
    const strong = seededRandom('weak');
    const weak: RandomSource = (n) => {
      const bytes = strong(n);
      bytes.fill(0, 0, n - 8);
      return bytes;
    };
    expect(whatTwoHoldersLearn(splitsOf(secretB, 3, weak))).not.toEqual([]);
  });

  it('the same test fails a source whose low bits are fixed (every coefficient a multiple of 8), high bits intact', () => {
    const strong = seededRandom('low bits');
    const even: RandomSource = (n) => {
      const bytes = strong(n);
      bytes[n - 1]! &= 0xf8;
      return bytes;
    };
    const failed = whatTwoHoldersLearn(splitsOf(secretA, 3, even));
    expect(failed).toContain('holder 1 coordinate 0 (residue)');
    expect(failed.filter((f) => f.endsWith('(range)'))).toEqual([]);
  });

  it('the same test fails a split where only coordinate 0 has no random coefficients', () => {
    // splitSecret draws the t − 1 coefficients of each coordinate in turn: with t = 3, draws 0 and 1 of each split
    // are coordinate 0's. Zeroing them leaves coordinate 0's shares equal to its secret; coordinate 1 stays sound.
    const strong = seededRandom('one coordinate');
    let draws = 0;
    const half: RandomSource = (n) => {
      const bytes = strong(n);
      if (draws++ % 4 < 2) bytes.fill(0);
      return bytes;
    };
    const failed = whatTwoHoldersLearn(splitsOf(secretB, 3, half));
    expect(failed).toContain('holder 1 coordinate 0 (range)');
    expect(failed.filter((f) => !f.includes('coordinate 0'))).toEqual([]);
  });
});

describe('checkConsistency', () => {
  const secret = [11n, P - 2n, 1n << 100n];

  it('accepts honest shares and returns the secret', () => {
    const shares = splitSecret(secret, 4, 7, seededRandom('honest'));
    expect(checkConsistency(shares, 4)).toEqual({ consistent: true, secret });
    expect(checkConsistency(shares.slice(2), 4)).toEqual({ consistent: true, secret });
    expect(checkConsistency(shares.slice().reverse(), 4)).toEqual({ consistent: true, secret });
  });

  it('with exactly t shares has nothing to check against: consistent', () => {
    const shares = splitSecret(secret, 4, 7, seededRandom('exact'));
    expect(checkConsistency([shares[1]!, shares[3]!, shares[4]!, shares[6]!], 4)).toEqual({ consistent: true, secret });
  });

  it.each(Array.from({ length: 10 }, (_, i) => i + 1))('names the one corrupted share among k = 10, t = 6 (holder %p)', (bad) => {
    const shares = splitSecret(secret, 6, 10, seededRandom(`one-${bad}`)).map((s) => (s.x === bad ? corrupt(s, bad % 3) : s));
    expect(checkConsistency(shares, 6)).toEqual({ consistent: false, badHolders: [bad], secret });
  });

  it.each([
    [1, 2],
    [3, 9],
    [4, 5],
    [6, 10],
  ])('names the two corrupted shares among k = 10, t = 4 (holders %p and %p)', (a, b) => {
    const shares = splitSecret(secret, 4, 10, seededRandom(`two-${a}-${b}`)).map((s) =>
      s.x === a ? corrupt(s, 0, 7n) : s.x === b ? corrupt(s, 2, P - 1n) : s,
    );
    const result = checkConsistency(shares, 4);
    expect(result).toEqual({ consistent: false, badHolders: [a, b], secret });
  });

  it('names corrupted shares whenever n ≥ t + 2e (property)', () => {
    const setup = fc.integer({ min: 1, max: 9 }).chain((n) =>
      fc.integer({ min: 1, max: n }).chain((t) => {
        const maxBad = Math.floor((n - t) / 2);
        return fc.record({
          n: fc.constant(n),
          t: fc.constant(t),
          secret: secretVector,
          seed: fc.integer(),
          bad: fc.uniqueArray(fc.integer({ min: 1, max: n }), { maxLength: maxBad }),
          delta: fc.bigInt({ min: 1n, max: P - 1n }),
        });
      }),
    );
    fc.assert(
      fc.property(setup, ({ n, t, secret: s, seed, bad, delta }) => {
        const shares = splitSecret(s, t, n, seededRandom(seed)).map((sh) => (bad.includes(sh.x) ? corrupt(sh, sh.x % s.length, delta) : sh));
        const result = checkConsistency(shares, t);
        if (bad.length === 0) expect(result).toEqual({ consistent: true, secret: s });
        else expect(result).toEqual({ consistent: false, badHolders: bad.slice().sort((x, y) => x - y), secret: s });
      }),
      { numRuns: 200 },
    );
  });

  it.each([1, 2, 3, 4, 5])('with n = t + 1 and one bad share (holder %p) reports inconsistency without naming anyone', (bad) => {
    const shares = splitSecret(secret, 4, 5, seededRandom(`tplus1-${bad}`)).map((s) => (s.x === bad ? corrupt(s) : s));
    expect(checkConsistency(shares, 4)).toEqual({ consistent: false, badHolders: [], secret: null });
  });

  it('does not name holders beyond the unique-decoding radius (k = 10, t = 6, three bad)', () => {
    const shares = splitSecret(secret, 6, 10, seededRandom('three')).map((s) => ([2, 5, 8].includes(s.x) ? corrupt(s) : s));
    expect(checkConsistency(shares, 6)).toEqual({ consistent: false, badHolders: [], secret: null });
  });

  it('detects a share corrupted in a single coordinate of the vector', () => {
    const shares = splitSecret(secret, 2, 6, seededRandom('coord')).map((s) => (s.x === 6 ? corrupt(s, 2) : s));
    expect(checkConsistency(shares, 2)).toEqual({ consistent: false, badHolders: [6], secret });
  });

  it('rejects a duplicate holder, too few shares, and an invalid threshold', () => {
    const shares = splitSecret(secret, 2, 4, seededRandom('dup'));
    expect(() => checkConsistency([...shares, { ...shares[0]! }], 2)).toThrow(/two shares for holder 1/);
    expect(() => checkConsistency(shares.slice(0, 1), 2)).toThrow(RangeError);
    expect(() => checkConsistency([], 1)).toThrow(RangeError);
    // Degree-1 shares: a fractional threshold used to slip through (and, with a bad share, loop forever).
    expect(() => checkConsistency(shares, 2.5)).toThrow(RangeError);
    expect(() => checkConsistency(shares, 0)).toThrow(RangeError);
  });
});

describe('splitAdditive', () => {
  it('the parts sum back to the secret', () => {
    fc.assert(
      fc.property(fc.array(element, { maxLength: 4 }), fc.integer({ min: 1, max: 8 }), fc.integer(), (secret, parties, seed) => {
        const parts = splitAdditive(secret, parties, seededRandom(seed));
        expect(parts).toHaveLength(parties);
        const sum = parts.reduce((acc, part) => acc.map((v, i) => add(v, part[i]!)), secret.map(() => 0n));
        expect(sum).toEqual(secret);
      }),
      { numRuns: 200 },
    );
  });

  it('one party is just the secret', () => {
    expect(splitAdditive([3n, 4n], 1)).toEqual([[3n, 4n]]);
  });

  it('every part, including the derived last one, differs from run to run', () => {
    const secret = [5n, 6n];
    const a = splitAdditive(secret, 4);
    const b = splitAdditive(secret, 4);
    a.forEach((part, i) => part.forEach((v, c) => expect(v).not.toBe(b[i]![c])));
    a.forEach((part) => part.forEach((v, c) => expect(v).not.toBe(secret[c])));
  });

  it('each part alone looks uniform (χ²), and the last part is secret − Σ others', () => {
    const rng = seededRandom('additive');
    const secret = [P - 1n];
    const runs = Array.from({ length: 3000 }, () => splitAdditive(secret, 3, rng));
    for (let party = 0; party < 3; party++) {
      for (const [view, cell] of VIEWS) expect([party, view, looksUniform(runs.map((r) => cell(r[party]![0]!, 3)), 8)]).toEqual([party, view, true]);
    }
    for (const [p0, p1, p2] of runs as [bigint[], bigint[], bigint[]][]) expect(p2[0]).toBe(sub(sub(secret[0]!, p0[0]!), p1[0]!));
  });

  it('rejects invalid party counts and secrets', () => {
    expect(() => splitAdditive([1n], 0)).toThrow(RangeError);
    expect(() => splitAdditive([1n], 1.5)).toThrow(RangeError);
    expect(() => splitAdditive([P], 2)).toThrow(RangeError);
  });
});
