import { resolve } from 'node:path';
import { ParticipantHome } from '../../../participant/src/home';
import { participantStatus, type ParticipantStatus } from '../../../participant/src/status';
import { parseCommandArgs, UsageError } from '../args';
import { requestTimeoutMs } from '../client';
import type { Output } from '../output';

const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;

/**
 * A participant's status for people: who it is, its task queue (or that Redis could not be reached), its latest
 * tasks and its receipts as stored. Shapes and counts only: no data value, share or aggregate is in the view.
 */
export function participantStatusLines(s: ParticipantStatus): string {
  const p = s.participant;
  const q = s.queue;
  const lines = [
    `participant ${p.name ?? '(unnamed)'} (${p.id}) in study ${p.study}, coordinator ${p.coordinatorUrl}`,
    q.reachable
      ? `task queue: ${q.waiting} waiting, ${q.active} active, ${q.delayed} delayed, ${q.failed} failed${q.waiting > 0 && q.active === 0 ? ' (tasks wait and none is active: is the worker running?)' : ''}`
      : `task queue: Redis unreachable at ${q.url}: ${q.reason}`,
    `last ${plural(s.tasks.length, 'task')}${s.tasks.length ? ', newest first:' : ''}`,
  ];
  for (const t of s.tasks) {
    const records = t.records !== null ? `, ${plural(t.records, 'record')} read${t.used !== null ? `, ${t.used} used` : ''}` : '';
    const outcome = t.outcome === 'answered' ? 'answered' : `${t.outcome.toUpperCase()}${t.reason ? `: ${t.reason}` : ''}`;
    lines.push(`  ${t.time}  ${t.queryId} round ${t.round}  ${t.statistics.join(', ') || t.task}  ${outcome}${records}`);
  }
  const r = s.receipts;
  lines.push(
    `receipts: ${plural(r.contributions, 'contribution')}, ${r.stored} with a receipt stored, ${r.withoutReceipt} without` +
      `${r.verifiedTreeSize !== null ? `; last verified against a checkpoint of ${r.verifiedTreeSize} entries` : ''}` +
      `${r.withoutReceipt ? " ('confide participant receipts' fetches them)" : ''}`,
  );
  return lines.join('\n');
}

/** `confide participant status --home DIR`: this participant's own view; exits 0 whether or not Redis answers. */
export async function participantStatusCommand(argv: readonly string[], out: Output): Promise<void> {
  const { values } = parseCommandArgs(argv, { home: { type: 'string' }, redis: { type: 'string' }, timeout: { type: 'string' }, json: { type: 'boolean' } });
  out.json = values.json === true;
  if (!values.home) throw new UsageError('--home is required');
  const status = await participantStatus(new ParticipantHome(resolve(values.home)), { redisUrl: values.redis ?? (process.env.CONFIDE_REDIS_URL || undefined), timeoutMs: requestTimeoutMs(values.timeout) });
  out.result({ ...status }, () => participantStatusLines(status));
}
