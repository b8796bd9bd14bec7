import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { exportPrivateKeyPem, importPrivateKeyPem, importPublicKeyBase64Url, type KeyPair, type PublicKey } from '@confide/crypto';
import { parseStudySchema, type StudySchema } from '@confide/protocol';

/**
 * A participant's home directory: its identity, its private keys (files 0600 that never leave), the study
 * schema it enrolled in, and the state that makes it answer each round once. Nothing here is ever sent
 * anywhere except the public keys, at enrollment.
 */
const identitySchema = z.strictObject({
  version: z.literal(2),
  participantId: z.string(),
  studyId: z.string(),
  studyName: z.string(),
  coordinatorUrl: z.string(),
  coordinatorKey: z.string(),
  coordinatorKeyFingerprint: z.string(),
  /** The coordinator's X25519 key, pinned with its signing key: round-2 share sums are sealed to it. */
  coordinatorEncryptionKey: z.string(),
  dataFile: z.string(),
  maxRecords: z.number().int().min(1),
  redis: z.strictObject({ url: z.string(), username: z.string(), password: z.string(), prefix: z.string(), queue: z.string() }),
});
export type Identity = z.infer<typeof identitySchema>;

const FILES = {
  identity: 'identity.json',
  study: 'study.json',
  encryption: 'x25519.pem',
  signing: 'ed25519.pem',
  state: 'state',
} as const;

/** Writes a file atomically with mode 0600 (write a temporary file, then rename over). */
export function writePrivateFile(path: string, content: string): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, content, { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, path);
}

/** Thrown when a home directory is missing, incomplete or not a participant's. */
export class HomeError extends Error {
  override readonly name = 'HomeError';
}

export class ParticipantHome {
  constructor(readonly dir: string) {}

  private path(name: string): string {
    return join(this.dir, name);
  }

  /** True when this directory already holds an enrolled participant. */
  isEnrolled(): boolean {
    return existsSync(this.path(FILES.identity));
  }

  /** Creates the directory (0700) and stores freshly generated private keys (0600). */
  storeKeys(encryption: KeyPair, signing: KeyPair): void {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    chmodSync(this.dir, 0o700);
    writePrivateFile(this.path(FILES.encryption), exportPrivateKeyPem(encryption.privateKey));
    writePrivateFile(this.path(FILES.signing), exportPrivateKeyPem(signing.privateKey));
  }

  /** Records a completed enrollment. */
  storeEnrollment(identity: Identity, studyJson: unknown): void {
    writePrivateFile(this.path(FILES.study), JSON.stringify(studyJson, null, 2));
    writePrivateFile(this.path(FILES.identity), JSON.stringify(identity, null, 2));
  }

  identity(): Identity {
    if (!this.isEnrolled()) throw new HomeError(`${this.dir} is not an enrolled participant's home (no ${FILES.identity}); run 'confide participant enroll' first`);
    const json = JSON.parse(readFileSync(this.path(FILES.identity), 'utf8')) as { version?: unknown };
    if (json.version === 1) {
      throw new HomeError(`${this.dir} was enrolled by an earlier Confide that pinned no coordinator encryption key; enroll again with a new invitation and a new --home`);
    }
    const parsed = identitySchema.safeParse(json);
    if (!parsed.success) throw new HomeError(`${this.path(FILES.identity)} is damaged: ${parsed.error.issues[0]?.message ?? ''}`);
    return parsed.data;
  }

  study(): StudySchema {
    return parseStudySchema(JSON.parse(readFileSync(this.path(FILES.study), 'utf8')), this.path(FILES.study));
  }

  keys(): { encryption: KeyPair; signing: KeyPair } {
    return {
      encryption: importPrivateKeyPem('x25519', readFileSync(this.path(FILES.encryption), 'utf8')),
      signing: importPrivateKeyPem('ed25519', readFileSync(this.path(FILES.signing), 'utf8')),
    };
  }

  coordinatorKey(): PublicKey {
    return importPublicKeyBase64Url('ed25519', this.identity().coordinatorKey);
  }

  /** The coordinator's X25519 key pinned at enrollment: the one reader of this member's round-2 share sums. */
  coordinatorEncryptionKey(): PublicKey {
    return importPublicKeyBase64Url('x25519', this.identity().coordinatorEncryptionKey);
  }

  /** The stored answer for a query round, if this participant already answered it. */
  readAnswer<T>(queryId: string, round: number): T | undefined {
    const file = join(this.path(FILES.state), `${queryId}.r${round}.json`);
    return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as T) : undefined;
  }

  private stateMade = false;

  /** Persists an answer before it is sent, so a redelivered task gets the same answer and never a new one. */
  storeAnswer(queryId: string, round: number, answer: unknown): void {
    if (!this.stateMade) mkdirSync(this.path(FILES.state), { recursive: true, mode: 0o700 });
    this.stateMade = true;
    writePrivateFile(join(this.path(FILES.state), `${queryId}.r${round}.json`), JSON.stringify(answer));
  }
}
