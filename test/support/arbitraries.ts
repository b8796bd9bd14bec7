import fc from 'fast-check';

/**
 * Any value canonical JSON can encode (null, booleans, safe integers, strings, arrays, plain objects), for
 * property tests of canonicalJson, signatures and ledger entries.
 */
export function canonicalValue(opts: { unit?: 'binary' | 'grapheme'; keyUnit?: 'binary' | 'grapheme'; size?: number } = {}): fc.Arbitrary<unknown> {
  const { unit = 'binary', keyUnit = 'grapheme', size = 4 } = opts;
  return fc.letrec<{ value: unknown }>((tie) => ({
    value: fc.oneof(
      { depthSize: 'small' },
      fc.constant(null),
      fc.boolean(),
      fc.maxSafeInteger(),
      fc.string({ unit }),
      fc.array(tie('value'), { maxLength: size }),
      fc.dictionary(fc.string({ unit: keyUnit, maxLength: 5 }), tie('value'), { maxKeys: size }),
    ),
  })).value;
}
