import { randomBytes } from 'node:crypto';

/** Query ids: "q" + 24 hex digits — safe inside Redis keys, job ids and ACL patterns. */
export const newQueryId = (): string => `q${randomBytes(12).toString('hex')}`;
/** Participant ids: "p" + 24 hex digits. */
export const newParticipantId = (): string => `p${randomBytes(12).toString('hex')}`;

const JOB_ID = /^(q[0-9a-f]{24})-r([12])-(p[0-9a-f]{24})$/;

/** Reads a task job id back into its parts, or undefined for ids Confide did not make. */
export function parseTaskJobId(jobId: string): { queryId: string; round: number; participantId: string } | undefined {
  const m = JOB_ID.exec(jobId);
  return m ? { queryId: m[1]!, round: Number(m[2]), participantId: m[3]! } : undefined;
}
