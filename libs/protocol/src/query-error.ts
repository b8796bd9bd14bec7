/** A query that cannot run: the message names the offending part (`select[1].field: unknown field "x"`). */
export class QueryError extends Error {
  override readonly name = 'QueryError';
}
