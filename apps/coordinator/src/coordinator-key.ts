import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { exportPrivateKeyPem, generateKeyPair, importPrivateKeyPem, keyFingerprint, type KeyPair } from '@confide/crypto';

/** File name of the coordinator's Ed25519 signing key inside CONFIDE_DATA_DIR. */
export const COORDINATOR_KEY_FILE = 'coordinator-ed25519.pem';

/**
 * Loads the coordinator's Ed25519 key (it signs every task and, later, ledger checkpoints), generating it
 * on first start with mode 0600. Participants pin its public key at enrollment.
 */
export function loadOrCreateCoordinatorKey(dataDir: string): { key: KeyPair; fingerprint: string; created: boolean } {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const file = join(dataDir, COORDINATOR_KEY_FILE);
  let created = false;
  let key: KeyPair;
  if (existsSync(file)) {
    key = importPrivateKeyPem('ed25519', readFileSync(file, 'utf8'));
  } else {
    key = generateKeyPair('ed25519');
    writeFileSync(file, exportPrivateKeyPem(key.privateKey), { mode: 0o600, flag: 'wx' });
    created = true;
  }
  chmodSync(file, 0o600);
  return { key, fingerprint: keyFingerprint(key.publicKey), created };
}

/**
 * Loads the coordinator's key without ever creating one: for processes that act for an existing coordinator
 * (aggregation workers), which must sign with the same key.
 * @throws Error naming the file when it is missing
 */
export function loadCoordinatorKey(dataDir: string): KeyPair {
  const file = join(dataDir, COORDINATOR_KEY_FILE);
  if (!existsSync(file)) throw new Error(`no coordinator key at ${file}: start the coordinator first, or point CONFIDE_DATA_DIR at its data directory`);
  return importPrivateKeyPem('ed25519', readFileSync(file, 'utf8'));
}
