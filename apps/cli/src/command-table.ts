import { confideVersion } from '../../coordinator/src/version';
import { GLOBAL_OPTIONS } from './client';
import { ADMIN_USAGE, adminCommand } from './commands/admin';
import { COORDINATOR_USAGE, coordinatorCommand } from './commands/coordinator';
import { DEMO_USAGE, demoCommand } from './commands/demo';
import { KEYS_USAGE, keysCommand } from './commands/keys';
import { LEDGER_USAGE, ledgerCommand } from './commands/ledger';
import { LOGIN_USAGE, loginCommand, logoutCommand } from './commands/login';
import { PARTICIPANT_USAGE, participantCommand } from './commands/participant';
import { QUERY_USAGE, queryCommand } from './commands/query';
import { SIMULATE_USAGE, simulateCommand } from './commands/simulate';
import { STUDY_USAGE, studyCommand } from './commands/study';
import type { Output } from './output';

/** The CLI's version: Confide's, from package.json. */
export const VERSION = confideVersion();

export const USAGE = `Usage: confide <command> [options]

Commands:
  demo                         a real secure aggregation on this machine, nothing to set up
  login                        store a coordinator URL and API key as a named profile (mode 0600)
  logout                       forget a stored profile
  coordinator start|aggregate|info
                               run the coordinator or one more Paillier aggregation worker; show a
                               coordinator's URL, version and key fingerprint
  admin study create|invite|keys create|keys list|keys revoke|participants list|participants remove|status
                               define studies, invite, list and remove participants, issue, list and
                               revoke API keys; every study's participants and queries at a glance
  study list|show              the studies, and a study's fields, types, ranges and privacy settings
  participant enroll|update|run|receipts|log|check|status|list
                               enroll this machine as a participant, change its data file or record limit,
                               run its worker, check its contributions in the ledger, see what it computed
                               and for whom, check its data file, see its own task queue and latest tasks;
                               list a study's participants with their online state
  query status|list|decrypt|decrypt-share
                               submit a query (--wait for the result), follow one, list them, or
                               decrypt a paillier result
  keys researcher|paillier     generate a researcher's identity key, or a Paillier key pair (whole, or
                               split among custodians); private keys stay on this machine
  ledger verify|show|proof     check the audit ledger: signatures, RFC 6962 root, consistency, proofs
  simulate                     run the shamir protocol in memory over CSV files
  help COMMAND                 a command's options
  completion bash|zsh          a shell completion script: source <(confide completion bash)

Global options of every command that talks to a coordinator with an API key (all but demo, simulate, keys,
completion, coordinator start|aggregate and participant enroll|update|run|receipts|log|check|status, which use the
coordinator the participant's home pinned; enroll, receipts, log and status take --timeout and --json):
  --coordinator URL (CONFIDE_URL), --token TOKEN (CONFIDE_TOKEN), --profile NAME (CONFIDE_PROFILE),
  --timeout SECONDS (CONFIDE_TIMEOUT, default 30), --json, --insecure. A flag beats the environment,
  which beats the profile. --version prints the version.
Run 'confide help <command>' or 'confide <command> --help' for a command's options.`;

/** One top-level command: what runs it and its usage text. */
export interface Command {
  readonly run: (argv: readonly string[], out: Output) => Promise<void>;
  readonly usage: string;
}

export const COMMANDS: Readonly<Record<string, Command>> = {
  demo: { run: demoCommand, usage: DEMO_USAGE },
  login: { run: loginCommand, usage: LOGIN_USAGE },
  logout: { run: logoutCommand, usage: LOGIN_USAGE },
  coordinator: { run: coordinatorCommand, usage: COORDINATOR_USAGE },
  admin: { run: adminCommand, usage: ADMIN_USAGE },
  study: { run: studyCommand, usage: STUDY_USAGE },
  participant: { run: participantCommand, usage: PARTICIPANT_USAGE },
  query: { run: queryCommand, usage: QUERY_USAGE },
  keys: { run: keysCommand, usage: KEYS_USAGE },
  ledger: { run: ledgerCommand, usage: LEDGER_USAGE },
  simulate: { run: simulateCommand, usage: SIMULATE_USAGE },
};

/**
 * The command lines that talk to a coordinator with an API key: each takes the common flags (--coordinator, --token,
 * --profile, --timeout, --json, --insecure). The participant's own commands (enroll with its invitation; receipts and
 * log signed with its key, to the coordinator its home pinned) and the local ones are the rest.
 */
export const NETWORKED: readonly string[] = [
  'login',
  'coordinator info',
  'admin study create',
  'admin invite',
  'admin keys create',
  'admin keys list',
  'admin keys revoke',
  'admin participants list',
  'admin participants remove',
  'admin status',
  'study list',
  'study show',
  'participant list',
  'query',
  'query status',
  'query list',
  'query decrypt',
  'query decrypt-share',
  'ledger verify',
  'ledger show',
  'ledger proof',
];

/** The command lines that do not take an API key: local work, the coordinator's own processes, the participant's. */
export const NOT_NETWORKED: readonly string[] = [
  'demo',
  'logout',
  'coordinator start',
  'coordinator aggregate',
  'participant enroll',
  'participant update',
  'participant run',
  'participant receipts',
  'participant log',
  'participant check',
  'participant status',
  'keys researcher',
  'keys paillier',
  'simulate',
];

/** One command line a usage string documents: the command, its subcommand words (maybe none) and its flags. */
export interface UsageLine {
  readonly command: string;
  readonly sub: string;
  readonly flags: readonly string[];
}

/**
 * The command lines documented in the usage strings: each `confide COMMAND [SUB …] …` line, its subcommand being
 * the lowercase words after the command up to the first flag or placeholder (`admin keys revoke ID` → "keys revoke").
 */
export function usageLines(): UsageLine[] {
  const lines: UsageLine[] = [];
  for (const [name, command] of Object.entries(COMMANDS)) {
    for (const m of command.usage.matchAll(/confide ([a-z]+)((?: [a-z][a-z-]*)*)([^\n]*)/g)) {
      if (m[1] !== name) continue;
      lines.push({ command: name, sub: (m[2] ?? '').trim(), flags: [...new Set([...(m[3] ?? '').matchAll(/--[a-z][a-z-]*/g)].map((f) => f[0]))] });
    }
  }
  return lines;
}

/** Every flag a command's usage text mentions, plus the global ones where they apply, for completion. */
function flagsOf(name: string): string[] {
  const usage = COMMANDS[name]?.usage ?? '';
  const flags = new Set([...usage.matchAll(/--[a-z][a-z-]*/g)].map((m) => m[0]));
  if (/Global: --coordinator/.test(usage)) for (const f of Object.keys(GLOBAL_OPTIONS)) flags.add(`--${f}`);
  flags.add('--help');
  return [...flags].sort();
}

/**
 * A bash completion script (zsh loads it through bashcompinit): command names, then each command's subcommand
 * words and flags, all taken from the usage strings so completion cannot drift from the help.
 */
export function completionScript(shell: 'bash' | 'zsh'): string {
  // Subcommand words by position: the first after the command, then the second after a given first.
  const first = new Map<string, Set<string>>();
  const second = new Map<string, Set<string>>();
  for (const l of usageLines()) {
    const [w1, w2] = l.sub.split(' ').filter(Boolean);
    if (!first.has(l.command)) first.set(l.command, new Set());
    if (w1) first.get(l.command)!.add(w1);
    if (w1 && w2) {
      const key = `${l.command} ${w1}`;
      if (!second.has(key)) second.set(key, new Set());
      second.get(key)!.add(w2);
    }
  }
  const sorted = (words: Iterable<string> | undefined): string => [...(words ?? [])].sort().join(' ');
  const firstCases = Object.keys(COMMANDS)
    .map((name) => `    ${name}) sub="${sorted(first.get(name))}"; flags="${flagsOf(name).join(' ')}" ;;`)
    .join('\n');
  const secondCases = [...second.keys()]
    .sort()
    .map((key) => `      "${key}") sub="${sorted(second.get(key))}" ;;`)
    .join('\n');
  const body = `_confide() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" sub="" flags=""
  if [ "$COMP_CWORD" -eq 1 ]; then
    COMPREPLY=( $(compgen -W "${[...Object.keys(COMMANDS), 'help', 'completion', '--help', '--version'].join(' ')}" -- "$cur") )
    return 0
  fi
  case "\${COMP_WORDS[1]}" in
${firstCases}
    help) sub="${Object.keys(COMMANDS).join(' ')}" ;;
    completion) sub="bash zsh" ;;
  esac
  if [ "$COMP_CWORD" -eq 3 ]; then
    case "\${COMP_WORDS[1]} \${COMP_WORDS[2]}" in
${secondCases}
      *) sub="" ;;
    esac
  elif [ "$COMP_CWORD" -gt 3 ]; then
    sub=""
  fi
  COMPREPLY=( $(compgen -W "$sub $flags" -- "$cur") )
  return 0
}
complete -o default -F _confide confide
`;
  if (shell === 'bash') return `# bash completion for confide: source <(confide completion bash)\n${body}`;
  return `# zsh completion for confide: source <(confide completion zsh)\nautoload -U +X bashcompinit && bashcompinit\n${body}`;
}
