import { basename } from 'node:path';
import { loadStudySchema, readRecordsFromFile, simulateShamir, type QuerySpec, type SimulationReport } from '@confide/protocol';
import { intOption, orderedOptions, parseCommandArgs, UsageError } from '../args';
import type { Output } from '../output';
import { QUERY_OPTIONS, readSelect, readWhere, SELECT_FLAGS } from '../query-spec';
import { renderRow } from '../render';

export const SIMULATE_USAGE = `Usage: confide simulate --study-schema FILE --data FILE.csv [FILE.csv ...] [--data FILE.csv ...]
         --stat STAT (--field F | --x X --y Y) [--bins MIN:MAX:WIDTH | --edges E1,…] ...
         [--where COND ...] [--group-by FIELD]
         [--committee K] [--threshold T] [--drop-round1 N] [--drop-round2 N] [--seed HEX] [--json]

Runs the whole shamir protocol in one process, one participant per CSV file: each participant
aggregates its file locally, secret-shares and encrypts the aggregate to the committee, the committee
sums and signs its shares, and the result is reconstructed. The query options are those of 'confide query'.
--data takes one or more files (--data site-{1..4}.csv), and may be repeated. --threshold may raise the
threshold, never lower it below a majority of the committee.`;

/**
 * The CSV files of a simulate command line: every --data value, and every bare argument that follows a --data
 * (so a shell's `--data site-{1..4}.csv` expansion works), in order.
 * @throws UsageError for a bare argument that follows anything else
 */
export function dataFiles(tokens: ReturnType<typeof parseCommandArgs>['tokens']): string[] {
  const files: string[] = [];
  let afterData = false;
  for (const t of tokens ?? []) {
    if (t.kind === 'option') {
      afterData = t.name === 'data';
      if (afterData && typeof t.value === 'string') files.push(t.value);
    } else if (t.kind === 'positional') {
      if (!afterData) throw new UsageError(`unexpected argument ${JSON.stringify(t.value)}: CSV files follow --data`);
      files.push(t.value);
    }
  }
  return files;
}

/** `confide simulate`: the in-memory protocol run over CSV files. */
export async function simulateCommand(argv: readonly string[], out: Output): Promise<void> {
  const { values, tokens } = parseCommandArgs(argv, {
    'study-schema': { type: 'string' },
    data: { type: 'string', multiple: true },
    ...QUERY_OPTIONS,
    committee: { type: 'string' },
    threshold: { type: 'string' },
    'drop-round1': { type: 'string' },
    'drop-round2': { type: 'string' },
    seed: { type: 'string' },
    json: { type: 'boolean' },
  }, true);
  out.json = values.json === true;
  if (!values['study-schema']) throw new UsageError('--study-schema is required');
  const files = dataFiles(tokens);
  if (files.length === 0) throw new UsageError('give at least one --data FILE.csv');
  const query = {
    select: readSelect(orderedOptions(tokens, SELECT_FLAGS)),
    ...(values.where?.length ? { where: values.where.map(readWhere) } : {}),
    ...(values['group-by'] ? { groupBy: values['group-by'] } : {}),
  } as unknown as QuerySpec;
  if (values.seed !== undefined && !/^[0-9a-f]{32,128}$/.test(values.seed)) throw new UsageError('--seed must be 32–128 lowercase hex digits');

  const schema = await loadStudySchema(values['study-schema']);
  const ids = files.map((f) => basename(f).replace(/\.csv$/i, ''));
  if (new Set(ids).size !== ids.length) throw new UsageError('two --data files have the same name; participants are named after their files');
  const report = await simulateShamir({
    schema,
    query,
    participants: files.map((file, i) => ({ id: ids[i]!, records: readRecordsFromFile(file, schema) })),
    committeeSize: intOption(values.committee, 'committee', 1),
    threshold: intOption(values.threshold, 'threshold', 1),
    dropRound1: intOption(values['drop-round1'], 'drop-round1'),
    dropRound2: intOption(values['drop-round2'], 'drop-round2'),
    seed: values.seed,
    onProgress: (e) => out.progress(`${e.phase}: ${e.done}/${e.total}`),
  });
  out.result(toJson(report), () => renderHuman(report));
}

function toJson(r: SimulationReport): Record<string, unknown> {
  return {
    results: r.results,
    participants: r.participants,
    contributors: r.contributors,
    committee: r.committee,
    threshold: r.threshold,
    droppedRound1: r.droppedRound1,
    droppedRound2: r.droppedRound2,
    badMembers: r.badMembers,
    timingsMs: Object.fromEntries(Object.entries(r.timingsMs).map(([k, v]) => [k, Math.round(v * 100) / 100])),
  };
}

function renderHuman(r: SimulationReport): string {
  const lines = [
    `participants ${r.participants}, contributed ${r.contributors}, committee ${r.committee.length} (threshold ${r.threshold})`,
  ];
  if (r.droppedRound1.length) lines.push(`dropped in round 1: ${r.droppedRound1.join(', ')}`);
  if (r.droppedRound2.length) lines.push(`dropped in round 2: ${r.droppedRound2.join(', ')}`);
  if (r.badMembers.length) lines.push(`bad share sums from: ${r.badMembers.join(', ')}`);
  for (const res of r.results) lines.push(renderRow(res));
  return lines.join('\n');
}
