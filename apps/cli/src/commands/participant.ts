import { createInterface } from 'node:readline/promises';
import { resolve } from 'node:path';
import { checkDataFile, describeProblems, type DataCheck, type StudySchema } from '@confide/protocol';
import { stopSignal, stopWithin } from '@confide/queue';
import { DataCheckFailed } from '../../../participant/src/data-file';
import { enrollParticipant } from '../../../participant/src/enroll';
import { ParticipantHome } from '../../../participant/src/home';
import { Journal } from '../../../participant/src/journal';
import { participantLog, type ParticipantLog } from '../../../participant/src/log';
import { ReceiptBook, type ReceiptStatus } from '../../../participant/src/receipts';
import { updateParticipant } from '../../../participant/src/update';
import { ParticipantWorker } from '../../../participant/src/worker';
import { intOption, parseCommandArgs, UsageError } from '../args';
import { assertTransport, requestTimeoutMs } from '../client';
import type { Output } from '../output';
import { participantListCommand } from './participant-list';
import { participantStatusCommand } from './participant-status';

export const PARTICIPANT_USAGE = `Usage: confide participant enroll --invite TOKEN --home DIR --data FILE.csv [--max-records N]
           [--coordinator-key FINGERPRINT] [--accept-settings] [--coordinator URL] [--insecure] [--timeout SECONDS] [--json]
       confide participant update --home DIR [--data FILE.csv] [--max-records N] [--json]
       confide participant run --home DIR [--redis URL]
       confide participant receipts --home DIR [--verify] [--timeout SECONDS] [--json]
       confide participant log --home DIR [--timeout SECONDS] [--json]
       confide participant check --home DIR [--data FILE.csv] [--json]
       confide participant status --home DIR [--redis URL] [--timeout SECONDS] [--json]
       confide participant list --study NAME [--json]

enroll shows the study's settings (minimum participants, minimum group size, threshold floor, differential
privacy) and asks you to accept them, or takes --accept-settings; the worker then refuses any task looser than
what you accepted. --coordinator-key is the coordinator key fingerprint your admin gave you out of band:
enrollment stops if the coordinator has another key. enroll generates this participant's keys in DIR (private
keys stay there, mode 0600) and registers only the public keys. Enrollment is all or nothing: DIR is written
first, marked pending, and confirmed only once the coordinator has recorded the enrollment in its ledger; a
failure on either side leaves no enrollment behind, and the same invitation works again. update points the
home at another data file (kept on this machine only) and changes the maximum record count, with a request
signed by this participant's key that the ledger records; restart the worker after it. run is the long-running worker; SIGTERM
finishes the task in hand and exits. receipts fetches and stores, for each contribution, the index and leaf
hash of the ledger entry that records it (checked against the contribution this participant signed); --verify
then checks every receipt against the coordinator's current signed checkpoint with an inclusion proof, and the
checkpoint against the one verified last time, and fails on any contribution to a query the ledger does not
record. log lists every task this participant received (what was asked, by whom, answered or refused and why)
beside its study's ledger: queries, committees, closings, results and enrollments. Requests are signed with the
participant's own key, to the coordinator the home pinned at enrollment; each request gives up after --timeout
(CONFIDE_TIMEOUT, default 30 s). receipts and log exit 1 if anything fails to verify. check validates the data file
(default: the one given at enrollment) against the study schema pinned in DIR, naming the line, column and a fix
for every problem, and prints what a query would contribute from it (per field: count, sum, min, max); it reads
only local files and exits 1 on any problem. enroll runs the same check before it uses the invitation.
status shows this participant's own view, from its home and its own Redis user only: who it is (name, id, study,
coordinator), its task queue (waiting, active, delayed, failed; or, in one line, that Redis is unreachable), its
last 10 tasks from the journal (time, query, round, statistics, outcome, records read and used) and its receipts
as stored (fetch them with receipts). Whether its worker runs is not knowable from here: tasks waiting with none
active say it does not. It shows no data value, share or aggregate, asks the coordinator nothing, waits at most
--timeout for Redis (--redis or CONFIDE_REDIS_URL override its address, as for run) and exits 0.
list (for researchers, auditors and admins, with an API key) shows a study's participants by invited name and id,
online (heard from within the coordinator's CONFIDE_ONLINE_SECONDS, default 45: a running worker sends a signed
heartbeat every 15 s with its version, queue and last task, and a last one when it stops) or offline, and when each
was last seen. It takes the global options: --coordinator, --token, --profile, --timeout, --json.`;

/** The study's settings as a participant is asked to accept them. */
export function describeSettings(study: StudySchema): string {
  const dp = study.privacy.dp;
  return [
    `study ${study.name}:`,
    `  at least ${study.minParticipants} participants in every result`,
    `  cells with fewer than ${study.privacy.minGroupSize} records suppressed`,
    `  shamir threshold at least ${study.minThreshold ?? 'a majority of the committee'}${study.minThreshold ? ' (and always a majority of the committee)' : ''}`,
    dp ? `  differential privacy: ${dp.mechanism}, ε ≤ ${dp.epsilon}${dp.delta !== undefined ? `, δ ≤ ${dp.delta}` : ''} per query, budget ε ${dp.budget.epsilon}` : '  no differential privacy',
    `  fields: ${study.fields.map((f) => (f.type === 'number' ? `${f.name} [${f.min}, ${f.max}]` : `${f.name} (${f.values.join('|')})`)).join(', ')}`,
  ].join('\n');
}

/** Asks on the terminal whether to accept the study's settings. */
async function askToAccept(study: StudySchema): Promise<boolean> {
  if (!process.stdin.isTTY || !process.stderr.isTTY) {
    throw new UsageError(`enrolling needs your acceptance of the study's settings:\n${describeSettings(study)}\nrun again with --accept-settings to accept them, or from a terminal to be asked`);
  }
  process.stderr.write(`${describeSettings(study)}\nYour worker will refuse any query looser than these settings.\n`);
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return /^y(es)?$/i.test((await rl.question('Accept these settings and enroll? [y/N] ')).trim());
  } finally {
    rl.close();
  }
}

function logLines(log: ParticipantLog): string {
  const lines: string[] = [log.reason ? `LEDGER VIEW NOT VERIFIED: ${log.reason}` : `ledger verified up to ${log.treeSize} entries`];
  lines.push('tasks:');
  if (!log.tasks.length) lines.push('  none yet');
  for (const t of log.tasks) {
    const what = t.query ? `${t.query.select.join(', ')}${t.query.where.length ? ` where ${t.query.where.join(' and ')}` : ''}${t.query.groupBy ? ` by ${t.query.groupBy}` : ''}` : '(no query)';
    const used = typeof t.matched === 'number' ? `, ${t.matched} used` : '';
    const records = typeof t.records === 'number' ? ` (${t.records} record${t.records === 1 ? '' : 's'} read${used})` : '';
    lines.push(
      `  ${t.time} query ${t.queryId} round ${t.round} (${t.task})`,
      `    asked:   ${what}`,
      `    fields:  ${t.query?.fields?.join(', ') || 'none'}`,
      `    by:      ${t.submittedBy ?? 'unknown (the task was not authorised)'}`,
      `    outcome: ${t.outcome === 'answered' ? 'answered' : `${t.outcome.toUpperCase()}: ${t.reason ?? ''}`}${records}`,
      `    ledger:  ${t.entries.state === 'none' ? t.entries.text.replace(/^no ledger entry/, 'NO LEDGER ENTRY') : t.entries.text}`,
    );
  }
  lines.push('study ledger:');
  for (const e of log.study) lines.push(`  ${String(e.index).padStart(6)} ${e.time} ${e.type.padEnd(20)} ${e.summary}`);
  return lines.join('\n');
}

/** A data check for people: the problems with their fixes, or the per-field aggregates a query would contribute. */
export function checkLines(file: string, study: StudySchema, check: DataCheck): string {
  if (!check.ok) {
    const n = check.problems.length;
    return [`${file} does not match study ${study.name}: ${n}${check.truncated ? '+' : ''} problem${n === 1 ? '' : 's'}`, ...describeProblems(check).map((l) => `  ${l}`)].join('\n');
  }
  const rows = (check.fields ?? []).map((f) => [f.field, f.type, String(f.count), f.sum ?? '', f.min ?? '', f.max ?? '']);
  const table = [['field', 'type', 'count', 'sum', 'min', 'max'], ...rows];
  const widths = table[0]!.map((_, i) => Math.max(...table.map((r) => r[i]!.length)));
  return [
    `${file} matches study ${study.name}: ${check.records} record${check.records === 1 ? '' : 's'}`,
    'what a query would contribute from this file, per field (computed here; never sent as such):',
    ...table.map((r) => `  ${r.map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ')}`.trimEnd()),
  ].join('\n');
}

/** What the participant's journal says a query asked and who submitted it, by query id (its round-1 task). */
function askedByQuery(home: ParticipantHome): Map<string, { asked: string; by: string | null }> {
  const out = new Map<string, { asked: string; by: string | null }>();
  for (const r of new Journal(home.dir).read()) {
    if (r.round !== 1 || !r.query || out.has(r.queryId)) continue;
    out.set(r.queryId, { asked: [r.query.select.join(', '), r.query.where.length ? `where ${r.query.where.join(' and ')}` : '', r.query.groupBy ? `by ${r.query.groupBy}` : ''].filter(Boolean).join(' '), by: r.submittedBy });
  }
  return out;
}

/** A receipt with what its query asked and who submitted it, so the list says what the data was used for. */
function withAsked(r: ReceiptStatus, asked: Map<string, { asked: string; by: string | null }>): ReceiptStatus & { asked: string | null; submittedBy: string | null } {
  const a = asked.get(r.queryId);
  return { ...r, asked: a?.asked ?? null, submittedBy: a?.by ?? null };
}

function receiptLine(r: ReceiptStatus & { asked: string | null; submittedBy: string | null }): string {
  const where =
    r.index !== null ? `entry ${r.index}` : r.status === 'pending' ? 'no receipt yet: the query is still running, or ended without it (--verify reads the ledger to tell)' : 'not in the ledger';
  const what = r.asked ? `  ${r.asked}${r.submittedBy ? ` (by ${r.submittedBy})` : ''}` : '';
  return `${r.status.toUpperCase().padEnd(11)} ${r.queryId}${what}  ${where}${r.reason && r.status !== 'pending' ? `  (${r.reason})` : ''}`;
}

/** `confide participant …`: enroll once, then run the worker. */
export async function participantCommand(argv: readonly string[], out: Output): Promise<void> {
  const [action, ...args] = argv;
  if (action === 'list') return participantListCommand(args, out);
  if (action === 'status') return participantStatusCommand(args, out);
  if (action === 'enroll') {
    const { values } = parseCommandArgs(args, {
      invite: { type: 'string' },
      home: { type: 'string' },
      data: { type: 'string' },
      'max-records': { type: 'string' },
      'coordinator-key': { type: 'string' },
      'accept-settings': { type: 'boolean' },
      coordinator: { type: 'string' },
      insecure: { type: 'boolean' },
      timeout: { type: 'string' },
      json: { type: 'boolean' },
    });
    out.json = values.json === true;
    const coordinatorUrl = values.coordinator ?? process.env.CONFIDE_URL;
    if (!values.invite || !values.home || !values.data) throw new UsageError('--invite, --home and --data are required');
    if (!coordinatorUrl) throw new UsageError('give --coordinator URL or set CONFIDE_URL');
    assertTransport(coordinatorUrl, values.insecure === true);
    const pinned = values['coordinator-key'];
    if (pinned !== undefined && !/^[0-9a-f]{64}$/.test(pinned)) throw new UsageError(`--coordinator-key must be the coordinator key fingerprint (64 hex digits), got ${JSON.stringify(pinned)}`);
    let identity;
    try {
      identity = await enrollParticipant({
        coordinatorUrl,
        invitation: values.invite,
        home: values.home,
        dataFile: values.data,
        maxRecords: intOption(values['max-records'], 'max-records', 1),
        coordinatorKeyFingerprint: pinned,
        confirmSettings: values['accept-settings'] ? undefined : askToAccept,
        timeoutMs: requestTimeoutMs(values.timeout),
      });
    } catch (err) {
      if (!(err instanceof DataCheckFailed)) throw err;
      // The same report as `participant check`; the invitation was only read, so it still works once the file is fixed.
      out.result({ enrolled: false, file: err.path, study: err.study.name, ...err.check }, () => `${checkLines(err.path, err.study, err.check)}\nnot enrolled: fix the file and run enroll again (the invitation is still unused)`);
      process.exitCode = 1;
      return;
    }
    out.result({ participantId: identity.participantId, name: identity.participantName, study: identity.studyName, maxRecords: identity.maxRecords, coordinatorKeyFingerprint: identity.coordinatorKeyFingerprint }, () =>
      [
        `enrolled as ${identity.participantName ?? ''} (${identity.participantId}) in study ${identity.studyName}, at most ${identity.maxRecords} records`,
        `coordinator key fingerprint ${identity.coordinatorKeyFingerprint} (compare it with your admin's)`,
        `start the worker with: confide participant run --home ${values.home}`,
      ].join('\n'),
    );
    return;
  }
  if (action === 'update') {
    const { values } = parseCommandArgs(args, { home: { type: 'string' }, data: { type: 'string' }, 'max-records': { type: 'string' }, json: { type: 'boolean' } });
    out.json = values.json === true;
    if (!values.home) throw new UsageError('--home is required');
    if (values.data === undefined && values['max-records'] === undefined) throw new UsageError('give --data FILE.csv, --max-records N, or both');
    const res = await updateParticipant({ home: values.home, dataFile: values.data, maxRecords: intOption(values['max-records'], 'max-records', 1) });
    const { identity } = res;
    const who = `${identity.participantName ?? ''} (${identity.participantId})`;
    out.result({ participantId: identity.participantId, name: identity.participantName, dataFileChanged: res.dataFileChanged, maxRecords: identity.maxRecords, maxRecordsEntry: res.maxRecordsEntry }, () =>
      [
        res.dataFileChanged ? `${who} now reads ${identity.dataFile} (kept on this machine only)` : `${who}: data file unchanged`,
        res.maxRecordsEntry !== null ? `maxRecords is now ${identity.maxRecords}, recorded in the ledger at entry ${res.maxRecordsEntry}` : `maxRecords unchanged (${identity.maxRecords})`,
        'restart the worker (confide participant run) for it to take effect',
      ].join('\n'),
    );
    return;
  }
  if (action === 'run') {
    const { values } = parseCommandArgs(args, { home: { type: 'string' }, redis: { type: 'string' } });
    if (!values.home) throw new UsageError('--home is required');
    const worker = new ParticipantWorker({ home: values.home, redisUrl: values.redis ?? process.env.CONFIDE_REDIS_URL });
    // Listening before start(): a worker waiting for an unreachable Redis stops on SIGTERM too.
    const signalled = stopSignal();
    await Promise.race([worker.start(), signalled]);
    await signalled;
    // SIGTERM ends the process within 10 s, whatever Redis does (README "Operations").
    await stopWithin(() => worker.stop(), { logger: worker.log, stillOpen: () => worker.stillOpen() });
    worker.log.info('worker stopped');
    return;
  }
  if (action === 'receipts') {
    const { values } = parseCommandArgs(args, { home: { type: 'string' }, verify: { type: 'boolean' }, json: { type: 'boolean' }, timeout: { type: 'string' } });
    out.json = values.json === true;
    if (!values.home) throw new UsageError('--home is required');
    const home = new ParticipantHome(resolve(values.home));
    const book = new ReceiptBook(home, home.identity(), home.keys().signing, home.coordinatorKey(), requestTimeoutMs(values.timeout));
    if (!values.verify) {
      const asked = askedByQuery(home);
      const receipts = (await book.collect()).map((r) => withAsked(r, asked));
      const ok = receipts.every((r) => r.status !== 'failed');
      out.result({ ok, receipts }, () => (receipts.length ? receipts.map(receiptLine).join('\n') : 'no contributions yet'));
      if (!ok) process.exitCode = 1;
      return;
    }
    const asked = askedByQuery(home);
    const verified = await book.verify();
    const report = { ...verified, receipts: verified.receipts.map((r) => withAsked(r, asked)) };
    out.result({ ...report }, () =>
      [
        ...report.receipts.map(receiptLine),
        report.ok
          ? `all receipts verified against the signed checkpoint (${report.treeSize ?? 0} entries, root ${report.root ?? ''})`
          : `RECEIPT VERIFICATION FAILED: ${report.reason ?? ''}`,
      ].join('\n'),
    );
    if (!report.ok) process.exitCode = 1;
    return;
  }
  if (action === 'log') {
    const { values } = parseCommandArgs(args, { home: { type: 'string' }, json: { type: 'boolean' }, timeout: { type: 'string' } });
    out.json = values.json === true;
    if (!values.home) throw new UsageError('--home is required');
    const log = await participantLog(new ParticipantHome(resolve(values.home)), requestTimeoutMs(values.timeout));
    out.result({ ...log }, () => logLines(log));
    if (!log.ok) process.exitCode = 1;
    return;
  }
  if (action === 'check') {
    const { values } = parseCommandArgs(args, { home: { type: 'string' }, data: { type: 'string' }, json: { type: 'boolean' } });
    out.json = values.json === true;
    if (!values.home) throw new UsageError('--home is required');
    // Local files only: the study schema pinned at enrollment and the data; no coordinator, no Redis.
    const home = new ParticipantHome(resolve(values.home));
    const study = home.study();
    const file = values.data !== undefined ? resolve(values.data) : home.identity().dataFile;
    const check = await checkDataFile(file, study);
    out.result({ file, study: study.name, ...check }, () => checkLines(file, study, check));
    if (!check.ok) process.exitCode = 1;
    return;
  }
  throw new UsageError(`unknown participant command ${JSON.stringify(action ?? '')}`);
}
