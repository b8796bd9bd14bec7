/**
 * What the ledger's entries mean to the protocol (DESIGN.md "Ledger", "Trust model"): the entry types and body
 * schemas the coordinator appends, the participant's checks of a task against ledger evidence before it computes
 * (authorize.ts), the auditor's rules over the whole ledger (ledger-rules.ts), and the signed requests a participant
 * reads the coordinator's ledger routes with (participant-request.ts). The tree, checkpoints and proofs themselves
 * are @confide/ledger.
 */
export * from './ledger-entries';
export * from './authorize';
export * from './ledger-rules';
export * from './participant-request';
export * from './participant-statements';
