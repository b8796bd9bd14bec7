/**
 * A value as a ledger entry may hold it. Entries are canonical JSON with safe integers only (libs/crypto
 * canonicalJson), so that any verifier in any language re-encodes them byte for byte: every other number (a
 * statistic, an ε, a histogram edge) goes in as its shortest decimal string, at any depth.
 */
export function ledgerValue(value: unknown): unknown {
  if (typeof value === 'number') return Number.isSafeInteger(value) ? value : String(value);
  if (Array.isArray(value)) return value.map(ledgerValue);
  if (value !== null && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, ledgerValue(v)]));
  return value;
}
