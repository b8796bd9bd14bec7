import { parseCommandArgs, UsageError } from '../args';
import { assertTransport, CoordinatorClient, GLOBAL_OPTIONS, resolveConnection } from '../client';
import type { Output } from '../output';
import { checkProfileName, DEFAULT_PROFILE, profileFile, removeProfile, saveProfile } from '../profiles';

export const LOGIN_USAGE = `Usage: confide login --coordinator URL [--token TOKEN] [--profile NAME] [--insecure] [--timeout SECONDS] [--json]
       confide logout [--profile NAME] [--json]
login checks the API key against the coordinator (GET /v1/coordinator) and stores it with the URL as a named
profile (default "${DEFAULT_PROFILE}") in $XDG_CONFIG_HOME/confide/profiles.json (~/.config/confide without
XDG_CONFIG_HOME; directory 0700, file 0600). Without --token it reads the key from standard input, so it stays
out of the shell's history and 'ps': confide login --coordinator URL < key.txt. Commands then use the profile
that --profile or CONFIDE_PROFILE names, else "${DEFAULT_PROFILE}"; a flag or environment variable still wins
(--coordinator, CONFIDE_URL, --token, CONFIDE_TOKEN). The CLI refuses a profiles file that others may read.
logout removes the profile.`;

/**
 * Reads a line from the terminal without echoing it (raw mode: the key never shows on screen or in a terminal's
 * scroll-back); Backspace erases, Ctrl-C stops.
 * @throws Error when interrupted with Ctrl-C
 */
async function hiddenLine(prompt: string): Promise<string> {
  const stdin = process.stdin;
  process.stderr.write(prompt);
  stdin.setRawMode(true);
  stdin.resume();
  let line = '';
  try {
    return await new Promise<string>((resolve, reject) => {
      const onData = (chunk: Buffer): void => {
        for (const ch of chunk.toString('utf8')) {
          if (ch === '\r' || ch === '\n' || ch === '\u0004') {
            stdin.off('data', onData);
            resolve(line);
            return;
          }
          if (ch === '\u0003') {
            stdin.off('data', onData);
            reject(new Error('interrupted: no API key read'));
            return;
          }
          line = ch === '\u007f' || ch === '\b' ? line.slice(0, -1) : line + ch;
        }
      };
      stdin.on('data', onData);
    });
  } finally {
    stdin.setRawMode(false);
    stdin.pause();
    process.stderr.write('\n');
  }
}

/** Reads the API key from standard input: a prompt on a terminal (not echoed), else the whole input. */
async function tokenFromStdin(): Promise<string> {
  if (process.stdin.isTTY) return (await hiddenLine('API key (not shown): ')).trim();
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8').trim();
}

/** `confide login`: check an API key and store it, with its coordinator, as a named profile. */
export async function loginCommand(argv: readonly string[], out: Output): Promise<void> {
  const { values } = parseCommandArgs(argv, { ...GLOBAL_OPTIONS });
  out.json = values.json === true;
  const name = checkProfileName(values.profile ?? DEFAULT_PROFILE);
  if (!values.coordinator) throw new UsageError('--coordinator URL is required: the coordinator this profile talks to');
  assertTransport(values.coordinator, values.insecure === true);
  const token = values.token ?? (await tokenFromStdin());
  if (!token) throw new UsageError('no API key: give --token TOKEN or pipe it on standard input');
  // Checked before it is stored: a typo in the URL or the key fails here, not at the next command.
  const connection = resolveConnection({ coordinator: values.coordinator, token, timeout: values.timeout, insecure: values.insecure, profile: undefined }, true, {});
  const client = new CoordinatorClient(connection.url, connection.token, connection.timeoutMs);
  const info = await client.get<{ fingerprint: string; version?: string }>('/v1/coordinator');
  const file = saveProfile(name, { coordinator: connection.url, token, ...(values.insecure ? { insecure: true } : {}), fingerprint: info.fingerprint, savedAt: new Date().toISOString() });
  out.result({ profile: name, coordinator: connection.url, file, fingerprint: info.fingerprint }, () =>
    [
      `logged in to ${connection.url} as profile ${name} (stored in ${file}, mode 0600)`,
      `coordinator key fingerprint ${info.fingerprint}: compare it with the one your admin gave you`,
      name === DEFAULT_PROFILE ? 'commands now use it by default' : `use it with --profile ${name} or CONFIDE_PROFILE=${name}`,
    ].join('\n'),
  );
}

/** `confide logout`: forget a stored profile. */
export function logoutCommand(argv: readonly string[], out: Output): Promise<void> {
  const { values } = parseCommandArgs(argv, { profile: { type: 'string' }, json: { type: 'boolean' } });
  out.json = values.json === true;
  const name = checkProfileName(values.profile ?? process.env.CONFIDE_PROFILE ?? DEFAULT_PROFILE);
  const removed = removeProfile(name);
  if (!removed) throw new UsageError(`no profile named ${JSON.stringify(name)} in ${profileFile()}`);
  out.result({ profile: name, removed }, () => `removed profile ${name} from ${profileFile()}; revoke its API key too if it may have leaked`);
  return Promise.resolve();
}
