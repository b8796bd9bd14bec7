import { parseStudySchema, type StudySchema } from '@confide/protocol';
import { parseCommandArgs, UsageError } from '../args';
import { CoordinatorClient, GLOBAL_OPTIONS, GLOBAL_USAGE } from '../client';
import type { Output } from '../output';

export const STUDY_USAGE = `Usage: confide study list [--json]
       confide study show NAME|ID [--json]
list shows every study: its name, id, participants enrolled and minimum participants per result.
show prints what an analyst needs to write a query: each field with its type and range (numbers, with their
decimals) or its categories, and the study's privacy settings: minimum participants, minimum group size,
shamir threshold floor and differential privacy (mechanism, ε and δ per query, and the budget).
${GLOBAL_USAGE}`;

/** GET /v1/studies, one item. */
interface StudyItem {
  id: string;
  name: string;
  minParticipants: number;
  participants: number;
  createdAt: string;
}

/** GET /v1/studies/:name. */
interface StudyView {
  id: string;
  name: string;
  minParticipants: number;
  participants: number;
  schema: unknown;
}

/** A study's fields and settings as the analyst reads them. */
function describeStudy(view: StudyView, study: StudySchema): string {
  const dp = study.privacy.dp;
  const width = Math.max(...study.fields.map((f) => f.name.length), 5);
  const lines = [
    `study ${study.name} (${view.id}): ${view.participants} participants enrolled`,
    'fields:',
    ...study.fields.map((f) =>
      f.type === 'number'
        ? `  ${f.name.padEnd(width)}  number    ${f.min} to ${f.max}${f.decimals ? `, ${f.decimals} decimals` : ', integers'}`
        : `  ${f.name.padEnd(width)}  category  ${f.values.join(' | ')}`,
    ),
    'privacy:',
    `  at least ${study.minParticipants} participants in every result`,
    `  cells with fewer than ${study.privacy.minGroupSize} records suppressed`,
    `  shamir threshold at least ${study.minThreshold ?? 'a majority of the committee'}`,
    `  values out of range: ${study.outOfRange}`,
    dp ? `  differential privacy: ${dp.mechanism}, ε ≤ ${dp.epsilon}${dp.delta ? `, δ ≤ ${dp.delta}` : ''} per query, budget ε ${dp.budget.epsilon}${dp.budget.delta ? `, δ ${dp.budget.delta}` : ''}` : '  no differential privacy',
  ];
  return lines.join('\n');
}

/** `confide study list|show`: what studies exist and what their fields are. */
export async function studyCommand(argv: readonly string[], out: Output): Promise<void> {
  const [action, ...args] = argv;
  if (action === 'list') {
    const { values } = parseCommandArgs(args, { ...GLOBAL_OPTIONS });
    out.json = values.json === true;
    const studies = await CoordinatorClient.from(values).get<StudyItem[]>('/v1/studies');
    out.result({ studies }, () =>
      studies.length
        ? [`${'NAME'.padEnd(24)} ${'ID'.padEnd(36)} PARTICIPANTS  MIN`, ...studies.map((s) => `${s.name.padEnd(24)} ${s.id.padEnd(36)} ${String(s.participants).padStart(12)}  ${s.minParticipants}`)].join('\n')
        : "no studies yet; an admin creates one with 'confide admin study create --file study.json'",
    );
    return;
  }
  if (action === 'show') {
    const { values, positionals } = parseCommandArgs(args, { ...GLOBAL_OPTIONS }, true);
    out.json = values.json === true;
    const [name, ...extra] = positionals;
    if (!name || extra.length) throw new UsageError("give one study name or id: confide study show NAME (see 'confide study list')");
    const view = await CoordinatorClient.from(values).get<StudyView>(`/v1/studies/${encodeURIComponent(name)}`);
    const study = parseStudySchema(view.schema, `study ${name}`);
    out.result({ id: view.id, name: view.name, participants: view.participants, schema: view.schema }, () => describeStudy(view, study));
    return;
  }
  throw new UsageError(`unknown study command ${JSON.stringify(action ?? '')} (list, show)`);
}
