/**
 * libs/protocol: the query language (query/), output privacy (privacy/), the shamir and paillier protocols, what
 * the ledger's entries mean to them (ledger/), their rounds as a pure state machine (rounds/), the errors and
 * hashing they share, and the in-process simulation.
 */
export * from './errors';
export * from './hashing';
export * from './frozen';
export * from './query';
export * from './privacy';
export * from './shamir';
export * from './paillier';
export * from './ledger';
export * from './simulation';
export * from './rounds';
