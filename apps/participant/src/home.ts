import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { exportPrivateKeyPem, importPrivateKeyPem, importPublicKeyBase64Url, type KeyPair, type PublicKey } from '@confide/crypto';
import { parseStudySchema, type StudySchema } from '@confide/protocol';
import { participantQueue } from '@confide/queue';

/**
 * A participant's home directory: its identity, its private keys (files 0600 that never leave), the study
 * schema it enrolled in, and the state that makes it answer each round once. Nothing here is ever sent
 * anywhere except the public keys, at enrollment.
 */
const identitySchema = z.strictObject({
  version: z.literal(2),
  participantId: z.string(),
  /** The name the invitation gave this participant (homes enrolled before names were kept have none). */
  participantName: z.string().optional(),
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
  /** The identity written before the coordinator is asked: renamed to identity.json once the enrollment is confirmed. */
  pending: 'pending.json',
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

  /** True when an enrollment was written here but not confirmed (the coordinator was asked, or was about to be). */
  isPending(): boolean {
    return !this.isEnrolled() && existsSync(this.path(FILES.pending));
  }

  /**
   * Writes a whole enrollment before the coordinator is asked (issue 13, "Enrollment is atomic"): the directory
   * (0700), the private keys and the identity (0600), marked pending, and the study's settings. If this fails,
   * nothing was sent anywhere.
   */
  storePending(encryption: KeyPair, signing: KeyPair, identity: Identity, studyJson: unknown): void {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    chmodSync(this.dir, 0o700);
    writePrivateFile(this.path(FILES.encryption), exportPrivateKeyPem(encryption.privateKey));
    writePrivateFile(this.path(FILES.signing), exportPrivateKeyPem(signing.privateKey));
    writePrivateFile(this.path(FILES.study), JSON.stringify(studyJson, null, 2));
    writePrivateFile(this.path(FILES.pending), JSON.stringify(identity, null, 2));
  }

  /** The pending enrollment written by {@link storePending}, if any and readable. */
  pendingIdentity(): Identity | undefined {
    if (!this.isPending()) return undefined;
    try {
      const parsed = identitySchema.safeParse(JSON.parse(readFileSync(this.path(FILES.pending), 'utf8')));
      return parsed.success ? parsed.data : undefined;
    } catch {
      return undefined;
    }
  }

  /** Marks the pending enrollment confirmed, with what the coordinator and the ledger settled (one atomic rename). */
  confirm(identity: Identity): void {
    writePrivateFile(this.path(FILES.pending), JSON.stringify(identity, null, 2));
    renameSync(this.path(FILES.pending), this.path(FILES.identity));
  }

  /**
   * Removes a pending enrollment the coordinator refused: the whole directory when this enrollment created it,
   * otherwise only the files it wrote.
   */
  discardPending(createdDir: boolean): void {
    const targets = createdDir ? [this.dir] : [FILES.pending, FILES.study, FILES.encryption, FILES.signing, 'ledger'].map((name) => this.path(name));
    for (const target of targets) {
      try {
        rmSync(target, { recursive: true, force: true });
      } catch {
        // A path under a file (ENOTDIR) holds nothing of ours.
      }
    }
  }

  /** Rewrites the confirmed identity with local changes (`confide participant update`). */
  storeIdentity(identity: Identity): void {
    writePrivateFile(this.path(FILES.identity), JSON.stringify(identitySchema.parse(identity), null, 2));
  }

  identity(): Identity {
    if (this.isPending()) {
      throw new HomeError(`${this.dir} holds an enrollment that was not confirmed; run 'confide participant enroll' again with the same invitation and --home to finish it`);
    }
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

/**
 * The participant's task queue: the name libs/queue gives its id (participantQueue), as the coordinator addresses it,
 * rather than the name stored at enrollment. A home enrolled before queue names carried Redis Cluster hash tags
 * stores `participant.<id>`; after an upgrade the coordinator sends tasks to `{participant.<id>}` and limits the
 * participant's Redis user to that queue's keys, so the stored name would leave this worker on an empty queue it may
 * no longer read. Which queue a worker listens on is no trust decision: Redis's ACL decides what it can reach.
 */
export function taskQueueOf(identity: { readonly participantId: string }): string {
  return participantQueue(identity.participantId);
}
