import { Inject, Injectable } from '@nestjs/common';
import type { KeyPair } from '@confide/crypto';
import { ledgerOrigin, signCheckpoint } from '@confide/ledger';
import type { Database } from './db/database';
import { RepositorySet } from './db/repositories';
import { COORDINATOR_KEY, DATABASE } from './tokens';

export { RepositorySet };

/** Every repository over the one database, as a single injectable; `transaction` for atomic writes. */
@Injectable()
export class Repositories extends RepositorySet {
  /** The ledger's origin, which is also the checkpoint signing key's name. */
  readonly origin: string;

  constructor(@Inject(DATABASE) readonly database: Database, @Inject(COORDINATOR_KEY) key: KeyPair) {
    const origin = ledgerOrigin(key.publicKey);
    const signer = (size: number, root: Uint8Array): string => signCheckpoint(key, origin, { origin, size, root });
    super(database.db, signer);
    this.origin = origin;
  }
}
