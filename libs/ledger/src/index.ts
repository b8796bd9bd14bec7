/**
 * libs/ledger — the RFC 6962 / RFC 9162 Merkle audit log (DESIGN.md "Ledger"): entry format and hashing, an
 * incremental tree over stored perfect subtrees, inclusion and consistency proofs with their verifiers, and
 * checkpoints as C2SP signed notes. Pure functions, bytes at the boundary; no framework, no database (storage
 * plugs in through the NodeStore interface).
 */
export * from './hash';
export * from './tree';
export * from './verify';
export * from './checkpoint';
