/**
 * Why the orchestrator refuses a request about a query, in its own terms; the HTTP layer gives each its status
 * (http/error.filter.ts), so round logic never speaks HTTP.
 * - `not_found`: no such query;
 * - `forbidden`: the caller is not the query's key holder;
 * - `not_paillier`, `not_custodial`, `custodial`: the request is for another protocol or way of decrypting;
 * - `not_ready`, `not_awaiting_nonce`: the query is not in the state the request needs (yet, or any more);
 * - `invalid_partial`, `invalid_decryption`: what was posted does not verify (and is recorded in the ledger).
 */
export type QueryRefusalCode =
  | 'not_found'
  | 'forbidden'
  | 'not_paillier'
  | 'not_custodial'
  | 'custodial'
  | 'not_ready'
  | 'not_awaiting_nonce'
  | 'invalid_partial'
  | 'invalid_decryption';

/** A request about a query the orchestrator refuses, with a sentence naming why. */
export class QueryRefusal extends Error {
  override readonly name = 'QueryRefusal';
  constructor(
    readonly code: QueryRefusalCode,
    message: string,
  ) {
    super(message);
  }
}
