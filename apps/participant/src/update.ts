import { accessSync, constants, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { signUpdateStatement, type UpdateStatement } from '@confide/protocol';
import { CoordinatorLink } from './coordinator-link';
import { HomeError, ParticipantHome, type Identity } from './home';

/** Options of {@link updateParticipant}. */
export interface UpdateOptions {
  readonly home: string;
  /** A new local data file: checked readable here, written to the home only, never sent anywhere. */
  readonly dataFile?: string;
  /** A new declared maximum record count: sent to the coordinator, signed with the participant's key. */
  readonly maxRecords?: number;
}

/** What {@link updateParticipant} changed. */
export interface UpdateResult {
  readonly identity: Identity;
  readonly dataFileChanged: boolean;
  /** The ledger entry that records the new maximum record count, when it changed. */
  readonly maxRecordsEntry: number | null;
}

/**
 * Changes an enrolled participant's data file and declared maximum record count (issue 13). The data file is the
 * participant's own business: only its home's identity changes. The maximum record count sizes every plan's slots,
 * so the coordinator must know it: the participant signs the change with its enrolled Ed25519 key
 * (libs/protocol participant-statements.ts), the coordinator records the signed statement in the ledger
 * (`participant.updated`), and only then does the home change. A running worker reads the home when it starts.
 * @throws HomeError for a home that is not enrolled, or a data file that cannot be read; CoordinatorRequestError
 *   when the coordinator refuses the update (nothing changed then)
 */
export async function updateParticipant(opts: UpdateOptions): Promise<UpdateResult> {
  const home = new ParticipantHome(resolve(opts.home));
  let identity = home.identity();
  const dataFile = opts.dataFile === undefined ? undefined : resolve(opts.dataFile);
  if (dataFile !== undefined) {
    try {
      accessSync(dataFile, constants.R_OK);
      if (!statSync(dataFile).isFile()) throw new Error('not a regular file');
    } catch (err) {
      throw new HomeError(`data file ${dataFile} is not readable: ${(err as Error).message}`, { cause: err });
    }
  }
  let maxRecordsEntry: number | null = null;
  if (opts.maxRecords !== undefined && opts.maxRecords !== identity.maxRecords) {
    const statement: UpdateStatement = { participantId: identity.participantId, studyId: identity.studyId, maxRecords: opts.maxRecords, previousMaxRecords: identity.maxRecords, time: Date.now() };
    const signing = home.keys().signing;
    const link = new CoordinatorLink(identity.coordinatorUrl, identity.participantId, signing);
    const res = await link.post<{ ledgerIndex: number }>('/v1/participant/max-records', { ...statement, signature: signUpdateStatement(signing, statement) });
    maxRecordsEntry = res.ledgerIndex;
    identity = { ...identity, maxRecords: opts.maxRecords };
  }
  const dataFileChanged = dataFile !== undefined && dataFile !== identity.dataFile;
  if (dataFileChanged) identity = { ...identity, dataFile };
  if (dataFileChanged || maxRecordsEntry !== null) home.storeIdentity(identity);
  return { identity, dataFileChanged, maxRecordsEntry };
}
