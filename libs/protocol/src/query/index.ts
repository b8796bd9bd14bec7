/**
 * The query language (DESIGN.md "Queries"): study schemas, CSV records read against them, `where` filters, the
 * compilation of a query to linear aggregate terms, a participant's local aggregation of those terms, and the
 * statistics derived from the summed totals.
 */
export * from './schema';
export * from './csv';
export * from './query';
export * from './aggregate';
export * from './check';
