import { resolve } from 'node:path';
import { enrollParticipant } from '../../../participant/src/enroll';
import { ParticipantHome } from '../../../participant/src/home';
import { ReceiptBook, type ReceiptStatus } from '../../../participant/src/receipts';
import { ParticipantWorker } from '../../../participant/src/worker';
import { intOption, parseCommandArgs, UsageError } from '../args';
import type { Output } from '../output';

export const PARTICIPANT_USAGE = `Usage: confide participant enroll --invite TOKEN --home DIR --data FILE.csv [--max-records N] [--coordinator URL] [--json]
       confide participant run --home DIR [--redis URL]
       confide participant receipts --home DIR [--verify] [--json]

enroll generates this participant's keys in DIR (private keys stay there, mode 0600) and registers the
public keys with the coordinator. run is the long-running worker; SIGTERM finishes the task in hand and exits.
receipts fetches and stores, for each contribution, the index and leaf hash of the ledger entry that records
it (checked against the contribution this participant signed); --verify then checks every receipt against the
coordinator's current signed checkpoint with an inclusion proof, and the checkpoint against the one verified
last time. Requests are signed with the participant's own key. Exits 1 if anything fails to verify.`;

function receiptLine(r: ReceiptStatus): string {
  const where = r.index === null ? 'not in the ledger yet' : `entry ${r.index}`;
  return `${r.status.toUpperCase().padEnd(8)} ${r.queryId}  ${where}${r.reason ? `  (${r.reason})` : ''}`;
}

/** `confide participant …`: enroll once, then run the worker. */
export async function participantCommand(argv: readonly string[], out: Output): Promise<void> {
  const [action, ...args] = argv;
  if (action === 'enroll') {
    const { values } = parseCommandArgs(args, {
      invite: { type: 'string' },
      home: { type: 'string' },
      data: { type: 'string' },
      'max-records': { type: 'string' },
      coordinator: { type: 'string' },
      json: { type: 'boolean' },
    });
    out.json = values.json === true;
    const coordinatorUrl = values.coordinator ?? process.env.CONFIDE_URL;
    if (!values.invite || !values.home || !values.data) throw new UsageError('--invite, --home and --data are required');
    if (!coordinatorUrl) throw new UsageError('give --coordinator URL or set CONFIDE_URL');
    const identity = await enrollParticipant({
      coordinatorUrl,
      invitation: values.invite,
      home: values.home,
      dataFile: values.data,
      maxRecords: intOption(values['max-records'], 'max-records', 1),
    });
    out.result({ participantId: identity.participantId, study: identity.studyName, coordinatorKeyFingerprint: identity.coordinatorKeyFingerprint }, () =>
      [
        `enrolled as ${identity.participantId} in study ${identity.studyName}`,
        `coordinator key fingerprint ${identity.coordinatorKeyFingerprint} (compare it with your admin's)`,
        `start the worker with: confide participant run --home ${values.home}`,
      ].join('\n'),
    );
    return;
  }
  if (action === 'run') {
    const { values } = parseCommandArgs(args, { home: { type: 'string' }, redis: { type: 'string' } });
    if (!values.home) throw new UsageError('--home is required');
    const worker = new ParticipantWorker({ home: values.home, redisUrl: values.redis ?? process.env.CONFIDE_REDIS_URL });
    await worker.start();
    await new Promise<void>((resolve) => {
      for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => resolve());
    });
    await worker.stop();
    return;
  }
  if (action === 'receipts') {
    const { values } = parseCommandArgs(args, { home: { type: 'string' }, verify: { type: 'boolean' }, json: { type: 'boolean' } });
    out.json = values.json === true;
    if (!values.home) throw new UsageError('--home is required');
    const home = new ParticipantHome(resolve(values.home));
    const book = new ReceiptBook(home, home.identity(), home.keys().signing, home.coordinatorKey());
    if (!values.verify) {
      const receipts = await book.collect();
      const ok = receipts.every((r) => r.status !== 'failed');
      out.result({ ok, receipts }, () => (receipts.length ? receipts.map(receiptLine).join('\n') : 'no contributions yet'));
      if (!ok) process.exitCode = 1;
      return;
    }
    const report = await book.verify();
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
  throw new UsageError(`unknown participant command ${JSON.stringify(action ?? '')}`);
}
