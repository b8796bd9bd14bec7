/** libs/protocol: study schemas, CSV loading, query compilation, local aggregation and the protocols. */
export * from './errors';
export * from './hashing';
export * from './schema';
export * from './csv';
export * from './query';
export * from './aggregate';
export * from './shamir';
export * from './simulation';
export * from './participant-request';
export * from './paillier';
export * from './privacy';
export * from './ledger-entries';
export * from './authorize';
export * from './ledger-rules';
