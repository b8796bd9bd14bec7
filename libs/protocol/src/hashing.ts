import { createHash } from 'node:crypto';
import { canonicalJson, type CanonicalValue } from '@confide/crypto';

/**
 * The hashing both protocols and the ledger share: the digest every plan, message and ledger hash is made with
 * ({@link sha256Hex}), the number encoding that makes a value canonical JSON ({@link ledgerValue}), and the query
 * hash ({@link queryHash}) built from the two.
 */

/** Hex SHA-256 of a UTF-8 string. */
export function sha256Hex(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

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

/**
 * The one definition of a query's hash (STYLE.md "Every wire convention has one owner"). The researcher's
 * submission, the coordinator's plan, the `query.submitted` ledger entry, every participant that computes over the
 * query and every auditor derive it the same way, from the query as it runs: its statistics, `where`, `groupBy`
 * and the effective `privacy` settings (minimum participants, minimum group size, differential privacy). A task
 * whose query does not hash to the ledger's value is refused, so the coordinator cannot narrow one participant's
 * query (an extra `where`) or loosen its privacy without the change being in the ledger for everyone to see.
 *
 * The bytes hashed are canonical JSON (libs/crypto canonicalJson: sorted keys, no whitespace, safe integers only)
 * of the query after a JSON round trip (which drops `undefined` members) and {@link ledgerValue}, which writes any
 * number that is not a safe integer (an ε of 0.5, a bin edge of 1e21) as its ECMAScript `Number#toString` text.
 * That is also exactly how the ledger entry shows the query. A number and the string of its text hash alike
 * (`0.5` and `"0.5"`); the participant compiles the query it computes over against its own schema, which refuses a
 * string where a number field needs a number and the reverse, so the two can never mean different computations.
 */

/** The query in the form every party hashes and the ledger shows. @throws TypeError for a value JSON cannot carry */
export function canonicalQuery(spec: unknown): CanonicalValue {
  if (spec === null || typeof spec !== 'object' || Array.isArray(spec)) throw new TypeError('a query must be a JSON object');
  return ledgerValue(JSON.parse(JSON.stringify(spec)) as unknown) as CanonicalValue;
}

/**
 * SHA-256 (64 lowercase hex digits) of the {@link canonicalQuery} form, with the domain `confide/query/v1`.
 * @throws TypeError for a query that is not a JSON object
 */
export function queryHash(spec: unknown): string {
  return sha256Hex(`confide/query/v1\n${canonicalJson(canonicalQuery(spec))}`);
}
