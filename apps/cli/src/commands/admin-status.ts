import { parseCommandArgs } from '../args';
import { CoordinatorClient, GLOBAL_OPTIONS } from '../client';
import type { Output } from '../output';

/** GET /v1/status (apps/coordinator/src/health/status.view.ts): counts only. */
export interface StatusView {
  onlineWindowSeconds: number;
  windowSeconds: number;
  ledgerSize: number;
  studies: { name: string; participants: number; online: number; running: number; failedLastHour: number; succeededLastHour: number }[];
}

/** Whole minutes or hours as people say them: "10 min", "1 h". */
function span(seconds: number): string {
  return seconds % 3600 === 0 ? `${seconds / 3600} h` : seconds % 60 === 0 ? `${seconds / 60} min` : `${seconds} s`;
}

/**
 * The status as a table, one row per study (name left, counts right-aligned), then the ledger's size and what
 * "online" and the finished-query window mean.
 */
export function statusLines(view: StatusView): string {
  const window = span(view.windowSeconds);
  const header = ['STUDY', 'PARTICIPANTS', 'ONLINE', 'RUNNING', `FAILED (${window})`, `SUCCEEDED (${window})`];
  const rows = view.studies.map((s) => [s.name, String(s.participants), String(s.online), String(s.running), String(s.failedLastHour), String(s.succeededLastHour)]);
  const table = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...table.map((r) => r[i]!.length)));
  const lines = view.studies.length ? table.map((r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ')) : ['no studies yet'];
  return [
    ...lines,
    `ledger: ${view.ledgerSize} entr${view.ledgerSize === 1 ? 'y' : 'ies'}`,
    `online: heard from in the last ${span(view.onlineWindowSeconds)} (heartbeats) and not stopped since; failed and succeeded: queries that finished in the last ${window}`,
  ].join('\n');
}

/** `confide admin status`: every study's participants and queries, and the ledger's size, from GET /v1/status. */
export async function adminStatusCommand(argv: readonly string[], out: Output): Promise<void> {
  const { values } = parseCommandArgs(argv, { ...GLOBAL_OPTIONS });
  out.json = values.json === true;
  const view = await CoordinatorClient.from(values).get<StatusView>('/v1/status');
  out.result({ ...view }, () => statusLines(view));
}
