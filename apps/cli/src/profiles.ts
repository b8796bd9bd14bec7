import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { UsageError } from './args';

/**
 * Named connection profiles (`confide login`): a coordinator URL and its API key, kept in one file readable by its
 * owner only, so tokens stay out of environment variables, shell history and `ps`.
 */

/** Profile names: what `--profile` and CONFIDE_PROFILE accept. */
export const PROFILE_NAME = /^[A-Za-z0-9_.-]{1,64}$/;
/** The profile used when neither --profile nor CONFIDE_PROFILE names one. */
export const DEFAULT_PROFILE = 'default';

const profileSchema = z.strictObject({
  coordinator: z.string().min(1),
  token: z.string().min(1).optional(),
  insecure: z.boolean().optional(),
  /** The coordinator key fingerprint seen at login, to compare with the one the admin handed out. */
  fingerprint: z.string().optional(),
  savedAt: z.string(),
});
export type Profile = z.infer<typeof profileSchema>;
const fileSchema = z.strictObject({ profiles: z.record(z.string(), profileSchema) });

/** The directory profiles live in: $XDG_CONFIG_HOME/confide, or ~/.config/confide. */
export function profileDir(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CONFIG_HOME && env.XDG_CONFIG_HOME.startsWith('/') ? env.XDG_CONFIG_HOME : join(homedir(), '.config');
  return join(base, 'confide');
}

/** The profiles file. */
export function profileFile(env: NodeJS.ProcessEnv = process.env): string {
  return join(profileDir(env), 'profiles.json');
}

/**
 * Every stored profile. A file that group or others may read or write is refused: its tokens may already have
 * leaked, and a file others can write could point the CLI at their coordinator.
 * @throws UsageError for a file with looser permissions than 0600, or one that is not a profiles file
 */
export function readProfiles(env: NodeJS.ProcessEnv = process.env): Record<string, Profile> {
  const file = profileFile(env);
  if (!existsSync(file)) return {};
  const mode = statSync(file).mode & 0o777;
  if ((mode & 0o077) !== 0) {
    throw new UsageError(`refusing to read ${file}: its mode is ${mode.toString(8).padStart(4, '0')}, so others may read or change its API keys; run 'chmod 600 ${file}' and, if others could read it, revoke those keys`);
  }
  let parsed: z.infer<typeof fileSchema>;
  try {
    parsed = fileSchema.parse(JSON.parse(readFileSync(file, 'utf8')));
  } catch (err) {
    throw new UsageError(`${file} is not a confide profiles file (${(err as Error).message}); fix it or remove it and run 'confide login' again`);
  }
  return parsed.profiles;
}

/** Writes the profiles file atomically: directory 0700, file 0600 (also when it existed with another mode). */
function writeProfiles(profiles: Record<string, Profile>, env: NodeJS.ProcessEnv): string {
  const dir = profileDir(env);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  const file = profileFile(env);
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify({ profiles }, null, 2)}\n`, { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, file);
  return file;
}

/** Checks a profile name. @throws UsageError naming the rule */
export function checkProfileName(name: string, source = '--profile'): string {
  if (!PROFILE_NAME.test(name)) throw new UsageError(`${source} must be 1–64 letters, digits, ".", "-" or "_", got ${JSON.stringify(name)}`);
  return name;
}

/** Stores (or replaces) a profile. @returns the file written */
export function saveProfile(name: string, profile: Profile, env: NodeJS.ProcessEnv = process.env): string {
  const profiles = readProfiles(env);
  profiles[checkProfileName(name)] = profile;
  return writeProfiles(profiles, env);
}

/** Removes a profile. @returns whether there was one */
export function removeProfile(name: string, env: NodeJS.ProcessEnv = process.env): boolean {
  const profiles = readProfiles(env);
  if (!(name in profiles)) return false;
  delete profiles[name];
  writeProfiles(profiles, env);
  return true;
}

/**
 * The profile a command uses: the one --profile names, else CONFIDE_PROFILE's, else "default" if it exists.
 * @throws UsageError when a named profile does not exist
 */
export function selectProfile(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): { name: string; profile: Profile } | undefined {
  const named = flag ?? env.CONFIDE_PROFILE;
  if (named === undefined || named === '') {
    const profile = readProfiles(env)[DEFAULT_PROFILE];
    return profile ? { name: DEFAULT_PROFILE, profile } : undefined;
  }
  checkProfileName(named, flag !== undefined ? '--profile' : 'CONFIDE_PROFILE');
  const profile = readProfiles(env)[named];
  if (!profile) throw new UsageError(`no profile named ${JSON.stringify(named)} in ${profileFile(env)}; create it with 'confide login --coordinator URL --profile ${named}'`);
  return { name: named, profile };
}
