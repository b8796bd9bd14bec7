import { intOption, orderedOptions, parseCommandArgs, UsageError } from '../args';
import { CoordinatorClient, GLOBAL_OPTIONS } from '../client';
import type { Output } from '../output';
import { readStatPairs } from './simulate';

export const QUERY_USAGE = `Usage: confide query --study NAME --protocol shamir --stat STAT --field FIELD [--stat STAT --field FIELD ...]
                     [--threshold T] [--deadline SECONDS] [--wait] [--json]
       confide query status ID [--json]
STAT is count, sum or mean. With --wait it follows the query to its result (a progress bar on a terminal).
Global: --coordinator URL (CONFIDE_URL), --token TOKEN (CONFIDE_TOKEN)`;

/** GET /v1/queries/:id as the CLI reads it. */
interface QueryView {
  id: string;
  status: 'running' | 'succeeded' | 'failed';
  round: number;
  answered: number;
  expected: number;
  participants: number | null;
  results: { stat: string; field: string; value: number | null; count: number }[] | null;
  ledgerIndex: number | null;
  failureReason: string | null;
}

function bar(done: number, total: number, width = 20): string {
  const filled = total > 0 ? Math.round((done / total) * width) : 0;
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}]`;
}

function toJson(q: QueryView): Record<string, unknown> {
  const base = { id: q.id, status: q.status, participants: q.participants, results: q.results ?? [], ledgerIndex: q.ledgerIndex };
  return q.failureReason ? { ...base, failureReason: q.failureReason } : base;
}

function human(q: QueryView): string {
  if (q.status === 'running') return `query ${q.id}: running, round ${q.round}, ${q.answered}/${q.expected} answered`;
  if (q.status === 'failed') return `query ${q.id} failed: ${q.failureReason ?? 'unknown reason'}`;
  const lines = [`query ${q.id}: ${q.participants ?? 0} participants contributed (event log index ${q.ledgerIndex ?? '-'})`];
  for (const r of q.results ?? []) lines.push(`${r.stat}(${r.field}) = ${r.value ?? 'n/a'}   (n = ${r.count})`);
  return lines.join('\n');
}

/** Polls a query until it finishes (with a deadline), drawing progress on a terminal. */
async function follow(client: CoordinatorClient, id: string, out: Output, timeoutMs: number): Promise<QueryView> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const q = await client.get<QueryView>(`/v1/queries/${id}`);
    if (q.status !== 'running') return q;
    out.progress(`round ${q.round}/2 ${bar(q.answered, q.expected)} ${q.answered}/${q.expected} answered`);
    if (Date.now() > until) throw new Error(`query ${id} still running after ${Math.round(timeoutMs / 1000)} s; check it later with 'confide query status ${id}'`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** `confide query …`: submit a query (optionally wait for it), or show one. */
export async function queryCommand(argv: readonly string[], out: Output): Promise<void> {
  if (argv[0] === 'status') {
    const { values, positionals } = parseCommandArgs(argv.slice(1), { ...GLOBAL_OPTIONS }, true);
    out.json = values.json === true;
    const id = positionals[0];
    if (!id) throw new UsageError('give the query id: confide query status ID');
    const q = await CoordinatorClient.from(values).get<QueryView>(`/v1/queries/${encodeURIComponent(id)}`);
    out.result(toJson(q), () => human(q));
    return;
  }
  const { values, tokens } = parseCommandArgs(argv, {
    ...GLOBAL_OPTIONS,
    study: { type: 'string' },
    protocol: { type: 'string' },
    stat: { type: 'string', multiple: true },
    field: { type: 'string', multiple: true },
    threshold: { type: 'string' },
    deadline: { type: 'string' },
    wait: { type: 'boolean' },
  });
  out.json = values.json === true;
  if (!values.study) throw new UsageError('--study is required');
  const protocol = values.protocol ?? 'shamir';
  if (protocol !== 'shamir') throw new UsageError(`--protocol ${protocol} is not available yet (shamir is)`);
  const select = readStatPairs(orderedOptions(tokens, ['stat', 'field']));
  const deadline = intOption(values.deadline, 'deadline', 1);
  const client = CoordinatorClient.from(values);
  const submitted = await client.post<{ id: string; status: string }>('/v1/queries', {
    study: values.study,
    protocol,
    select,
    threshold: intOption(values.threshold, 'threshold', 1),
    deadlineSeconds: deadline,
  });
  if (!values.wait) {
    out.result({ id: submitted.id, status: submitted.status }, () => `submitted query ${submitted.id}; follow it with 'confide query status ${submitted.id}'`);
    return;
  }
  const q = await follow(client, submitted.id, out, ((deadline ?? 120) * 2 + 60) * 1000);
  out.result(toJson(q), () => human(q));
  if (q.status === 'failed') process.exitCode = 1;
}
