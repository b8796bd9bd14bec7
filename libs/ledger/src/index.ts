/**
 * libs/ledger — the RFC 6962 Merkle audit log, proofs and signed checkpoints (DESIGN.md "Ledger").
 * Empty until the ledger issue; the folder exists so the monorepo layout, build and lint already cover it.
 */
export {};
