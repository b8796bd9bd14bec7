import { enrollParticipant } from '../../../participant/src/enroll';
import { ParticipantWorker } from '../../../participant/src/worker';
import { intOption, parseCommandArgs, UsageError } from '../args';
import type { Output } from '../output';

export const PARTICIPANT_USAGE = `Usage: confide participant enroll --invite TOKEN --home DIR --data FILE.csv [--max-records N] [--coordinator URL] [--json]
       confide participant run --home DIR [--redis URL]

enroll generates this participant's keys in DIR (private keys stay there, mode 0600) and registers the
public keys with the coordinator. run is the long-running worker; SIGTERM finishes the task in hand and exits.`;

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
  throw new UsageError(`unknown participant command ${JSON.stringify(action ?? '')}`);
}
