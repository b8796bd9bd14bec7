import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { exportPrivateKeyPem, generateKeyPair, importPrivateKeyPem, keyFingerprint, type KeyPair } from '@confide/crypto';

/** File name of the coordinator's Ed25519 signing key inside CONFIDE_DATA_DIR. */
export const COORDINATOR_KEY_FILE = 'coordinator-ed25519.pem';

/** File name of the coordinator's X25519 key inside CONFIDE_DATA_DIR: committee members seal round-2 share sums to it. */
export const COORDINATOR_ENCRYPTION_KEY_FILE = 'coordinator-x25519.pem';

function loadOrCreate(dataDir: string, file: string, algorithm: 'ed25519' | 'x25519'): { key: KeyPair; created: boolean } {
  const path = join(dataDir, file);
  let created = false;
  let key: KeyPair;
  if (existsSync(path)) {
    key = importPrivateKeyPem(algorithm, readFileSync(path, 'utf8'));
  } else {
    key = generateKeyPair(algorithm);
    writeFileSync(path, exportPrivateKeyPem(key.privateKey), { mode: 0o600, flag: 'wx' });
    created = true;
  }
  chmodSync(path, 0o600);
  return { key, created };
}

/**
 * Loads the coordinator's keys, generating each on first start with mode 0600: the Ed25519 key signs every task
 * and ledger checkpoint; the X25519 key is the one recipient of the committee's round-2 share sums. Participants
 * pin both public keys at enrollment.
 */
export function loadOrCreateCoordinatorKey(dataDir: string): { key: KeyPair; encryption: KeyPair; fingerprint: string; created: boolean } {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const signing = loadOrCreate(dataDir, COORDINATOR_KEY_FILE, 'ed25519');
  const encryption = loadOrCreate(dataDir, COORDINATOR_ENCRYPTION_KEY_FILE, 'x25519');
  return { key: signing.key, encryption: encryption.key, fingerprint: keyFingerprint(signing.key.publicKey), created: signing.created };
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
