import { parseCommandArgs, UsageError } from '../args';
import { CoordinatorClient, GLOBAL_OPTIONS } from '../client';
import type { Output } from '../output';

/** GET /v1/studies/:name/participants. */
interface ParticipantsView {
  study: string;
  onlineWindowSeconds: number;
  participants: { id: string; name: string; enrolledAt: string; lastSeen: string | null; online: boolean }[];
}

/** "3 min ago", "never": when a participant was last seen, relative to now. */
function ago(iso: string | null, now: number): string {
  if (iso === null) return 'never';
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (s < 90) return `${s} s ago`;
  if (s < 90 * 60) return `${Math.round(s / 60)} min ago`;
  if (s < 48 * 3600) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} days ago`;
}

/**
 * `confide participant list --study NAME`: a study's participants by invited name and id, with whether each was seen
 * recently (answered or refused a task, or made a signed request) — what a researcher checks before submitting.
 */
export async function participantListCommand(argv: readonly string[], out: Output): Promise<void> {
  const { values } = parseCommandArgs(argv, { ...GLOBAL_OPTIONS, study: { type: 'string' } });
  out.json = values.json === true;
  if (!values.study) throw new UsageError('--study NAME is required: confide participant list --study NAME');
  const view = await CoordinatorClient.from(values).get<ParticipantsView>(`/v1/studies/${encodeURIComponent(values.study)}/participants`);
  const now = Date.now();
  const width = Math.max(4, ...view.participants.map((p) => p.name.length));
  out.result({ ...view }, () =>
    view.participants.length
      ? [
          `${'NAME'.padEnd(width)}  ${'ID'.padEnd(26)}  ${'STATE'.padEnd(7)}  LAST SEEN`,
          ...view.participants.map((p) => `${p.name.padEnd(width)}  ${p.id.padEnd(26)}  ${(p.online ? 'online' : 'offline').padEnd(7)}  ${ago(p.lastSeen, now)}${p.lastSeen ? ` (${p.lastSeen})` : ''}`),
          `online: heard from in the last ${view.onlineWindowSeconds} s and not stopped since (a running worker sends a heartbeat every 15 s, and says so when it stops)`,
        ].join('\n')
      : `no participants enrolled in ${view.study} yet`,
  );
}
