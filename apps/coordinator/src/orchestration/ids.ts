/**
 * Job ids are built and read back in libs/queue (names.ts). This re-export keeps orchestrator.ts compiling until its
 * import moves to '@confide/queue'; then this file goes.
 */
export { parseTaskJobId } from '@confide/queue';
