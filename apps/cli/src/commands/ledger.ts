import { existsSync, readFileSync } from 'node:fs';
import { importPublicKeyBase64Url } from '@confide/crypto';
import {
  leafHash,
  merkleTreeHash,
  parseEntry,
  verifyCheckpoint,
  verifyConsistency,
  verifyInclusion,
  type Checkpoint,
  type LedgerEntry,
} from '@confide/ledger';
import { checkLedgerRules, prefixRoots, seedRootSizes } from '@confide/protocol';
import { writePrivateFile } from '../../../participant/src/home';
import { intOption, parseCommandArgs, UsageError } from '../args';
import { CoordinatorClient, GLOBAL_OPTIONS, GLOBAL_USAGE } from '../client';
import type { Output } from '../output';

export const LEDGER_USAGE = `Usage: confide ledger verify [--state FILE] [--compare FILE]... [--json]
       confide ledger show [--query ID] [--json]
       confide ledger proof --index I [--json]

verify downloads the signed checkpoint and every entry, recomputes the RFC 6962 root, checks the
signature, and checks consistency with the checkpoint saved in --state by the previous run (then saves
the new one). It then checks the ledger's meaning: one query.submitted, one plan and one round.closed per
query (and round), each query in a study created before it, thresholds at or above the floor, each
committee the draw from its seed (the ledger root after query.submitted and the researcher's nonce),
nobody left out, and plans and contributors enrolled in the query's study. On a mismatch or a broken rule
it exits 1 and names the first index that differs or breaks it.
--compare takes a checkpoint another party verified (a participant's receipts.json, another auditor's
state file, or a signed note) and checks that the ledger served to you extends it: a coordinator that
shows different histories to different parties signs two trees that cannot both be prefixes of one.
An auditor or admin key.
${GLOBAL_USAGE}`;

interface PublicKeyView {
  origin: string;
  publicKey: string;
  verifierKey: string;
}
interface CheckpointView {
  size: number;
  root: string;
  note: string;
}
interface EntriesView {
  size: number;
  end: number;
  entries: { index: number; entry: string }[];
}

/** What `--state` keeps between runs: the pinned key and the last checkpoint verified. */
interface VerifyState {
  origin: string;
  publicKey: string;
  size: number;
  root: string;
  note: string;
  /** The leaf hashes verified, concatenated (32 bytes each): they name the first entry a rewrite changed. */
  leaves: string;
}

const fromB64 = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'base64'));
const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64');

/** The outcome of `ledger verify`, exactly as `--json` prints it. */
interface VerifyResult {
  ok: boolean;
  treeSize: number;
  root: string | null;
  firstBadIndex: number | null;
  reason: string | null;
}

async function downloadEntries(client: CoordinatorClient, size: number): Promise<Uint8Array[]> {
  const entries: Uint8Array[] = [];
  while (entries.length < size) {
    const page = await client.get<EntriesView>(`/v1/ledger/entries?start=${entries.length}&end=${size}`).catch(() => undefined);
    // Fewer entries than the checkpoint covers: the caller reports where they stop.
    if (!page || page.entries.length === 0) return entries;
    for (const e of page.entries) {
      if (e.index !== entries.length) throw new Error(`entries out of order: expected index ${entries.length}, got ${e.index}`);
      entries.push(fromB64(e.entry));
    }
  }
  return entries;
}

/**
 * Finds the first entry whose leaf disagrees with the signed root: the smallest m whose prefix root (computed
 * from our own leaves) fails the coordinator's consistency proof from m to the checkpoint, so the bad entry is
 * m − 1. Binary search: O(log n) proof requests.
 */
async function firstBadIndex(client: CoordinatorClient, leaves: readonly Uint8Array[], checkpoint: Checkpoint): Promise<number> {
  const consistent = async (m: number): Promise<boolean> => {
    if (m === checkpoint.size) return false;
    const { proof } = await client.get<{ proof: string[] }>(`/v1/ledger/proof/consistency?from=${m}&to=${checkpoint.size}`);
    try {
      verifyConsistency(m, checkpoint.size, proof.map(fromB64), merkleTreeHash(leaves.slice(0, m)), checkpoint.root);
      return true;
    } catch {
      return false;
    }
  };
  let lo = 1;
  let hi = checkpoint.size;
  while (lo < hi) {
    const mid = Math.floor((lo + hi) / 2);
    if (await consistent(mid)) lo = mid + 1;
    else hi = mid;
  }
  return lo - 1;
}

/** What a state file must hold, field by field (a file this command wrote). */
const STATE_FIELDS = ['origin', 'publicKey', 'size', 'root', 'note', 'leaves'] as const;

/**
 * The state a previous `ledger verify --state FILE` saved. Refuses anything else before a request is made and
 * before the file is overwritten: an auditor who saved a key or a token under that name keeps it.
 * @throws UsageError naming the file and what it holds instead
 */
function readState(file: string): VerifyState {
  const refuse = (what: string): never => {
    throw new UsageError(
      `--state ${file}: ${what}, not a ledger state file. --state names the file where ledger verify keeps the checkpoint it verified last (it creates it on the first run); give it a file of its own, e.g. --state ledger-state.json`,
    );
  };
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    return refuse(`cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  if (text.trimStart().startsWith('-----BEGIN')) refuse('holds a PEM key');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return refuse('is not JSON');
  }
  const record = (typeof json === 'object' && json !== null ? json : {}) as Record<string, unknown>;
  if (typeof record.token === 'string') refuse('holds an API key (a token)');
  if ('p' in record && 'q' in record) refuse('holds a Paillier private key');
  const missing = STATE_FIELDS.filter((f) => (f === 'size' ? !Number.isSafeInteger(record[f]) || (record[f] as number) < 0 : typeof record[f] !== 'string'));
  if (missing.length) refuse(`has no ${missing.join(', ')}`);
  return record as unknown as VerifyState;
}

/**
 * The signed note in a checkpoint file another party shared: a bare note, a `ledger verify` state file
 * (`note`), or a participant's receipts.json (`checkpoint.note`).
 * @throws UsageError when the file cannot be read or holds none of these
 */
function readSharedNote(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new UsageError(`--compare ${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
  }
  if (!text.trimStart().startsWith('{')) return text;
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new UsageError(`--compare ${file}: not a signed note and not valid JSON`);
  }
  const record = json as { note?: unknown; checkpoint?: { note?: unknown } | null };
  const note = typeof record.note === 'string' ? record.note : record.checkpoint?.note;
  if (typeof note !== 'string') throw new UsageError(`--compare ${file}: holds no checkpoint (expected a signed note, a ledger verify state file, or a participant's receipts.json)`);
  return note;
}

/**
 * Checks that a checkpoint another party verified is a prefix of the tree just verified here (`leaves`): same
 * key, and the root of its first `size` leaves equal to ours. Two validly signed checkpoints that fail this are
 * proof that the coordinator showed different histories, which neither party can see alone.
 * @returns why it fails, or undefined when the served ledger extends it
 */
function comparePrefix(file: string, note: string, key: ReturnType<typeof importPublicKeyBase64Url>, origin: string, leaves: readonly Uint8Array[]): string | undefined {
  let other: Checkpoint;
  try {
    other = verifyCheckpoint(note, key, origin);
  } catch (err) {
    return `the checkpoint in ${file} does not verify with this coordinator's key: ${(err as Error).message}`;
  }
  if (other.size > leaves.length) {
    return `the checkpoint in ${file} is signed for ${other.size} entries but the ledger served here has ${leaves.length}: the coordinator rolled back or forked its history`;
  }
  if (Buffer.compare(Buffer.from(merkleTreeHash(leaves.slice(0, other.size))), Buffer.from(other.root)) !== 0) {
    return `the checkpoint in ${file} (${other.size} entries) is not a prefix of the ledger served here: the coordinator signed two different histories`;
  }
  return undefined;
}

async function verify(client: CoordinatorClient, stateFile: string | undefined, compare: readonly string[] = []): Promise<VerifyResult> {
  // Read before any request, so a bad path is a usage error and not a verification failure.
  const shared = compare.map((file) => ({ file, note: readSharedNote(file) }));
  const state = stateFile && existsSync(stateFile) ? readState(stateFile) : undefined;
  const served = await client.get<PublicKeyView>('/v1/ledger/public-key');
  // The key is pinned on first use; afterwards a different key is itself a failure.
  const pinned = state?.publicKey ?? served.publicKey;
  const origin = state?.origin ?? served.origin;
  if (served.publicKey !== pinned) return { ok: false, treeSize: 0, root: null, firstBadIndex: null, reason: 'the coordinator now serves a different ledger key than the one pinned in the state file' };
  const key = importPublicKeyBase64Url('ed25519', pinned);
  const cp = await client.get<CheckpointView>('/v1/ledger/checkpoint');
  let checkpoint: Checkpoint;
  try {
    checkpoint = verifyCheckpoint(cp.note, key, origin);
  } catch (err) {
    return { ok: false, treeSize: cp.size, root: cp.root, firstBadIndex: null, reason: `checkpoint signature: ${(err as Error).message}` };
  }
  const entries = await downloadEntries(client, checkpoint.size);
  if (entries.length < checkpoint.size) {
    return { ok: false, treeSize: checkpoint.size, root: b64(checkpoint.root), firstBadIndex: entries.length, reason: `the signed checkpoint covers ${checkpoint.size} entries but only ${entries.length} are served` };
  }
  const leaves: Uint8Array[] = [];
  const parsed: LedgerEntry[] = [];
  for (const [i, bytes] of entries.entries()) {
    try {
      const entry = parseEntry(bytes);
      if (entry.index !== i) return { ok: false, treeSize: checkpoint.size, root: b64(checkpoint.root), firstBadIndex: i, reason: `entry ${i} claims another index` };
      parsed.push(entry);
    } catch (err) {
      return { ok: false, treeSize: checkpoint.size, root: b64(checkpoint.root), firstBadIndex: i, reason: `entry ${i} is malformed: ${(err as Error).message}` };
    }
    leaves.push(leafHash(bytes));
  }
  const root = merkleTreeHash(leaves);
  const base = { treeSize: checkpoint.size, root: b64(checkpoint.root) };
  if (Buffer.compare(Buffer.from(root), Buffer.from(checkpoint.root)) !== 0) {
    const bad = await firstBadIndex(client, leaves, checkpoint);
    return { ok: false, ...base, firstBadIndex: bad, reason: `the entries do not hash to the signed root; entry ${bad} differs` };
  }
  if (state) {
    if (checkpoint.size < state.size) return { ok: false, ...base, firstBadIndex: checkpoint.size, reason: `the ledger shrank from ${state.size} to ${checkpoint.size} entries since the saved checkpoint` };
    const savedRoot = fromB64(state.root);
    const prefixRoot = merkleTreeHash(leaves.slice(0, state.size));
    if (Buffer.compare(Buffer.from(prefixRoot), Buffer.from(savedRoot)) !== 0) {
      // A rewritten history, even one re-signed with the coordinator's key: the saved leaf hashes name where.
      const saved = Buffer.from(state.leaves, 'base64');
      let bad = 0;
      while (bad < state.size && Buffer.compare(saved.subarray(bad * 32, bad * 32 + 32), Buffer.from(leaves[bad]!)) === 0) bad++;
      return { ok: false, ...base, firstBadIndex: bad, reason: `history was rewritten: entry ${bad} differs from the one verified in the saved checkpoint` };
    }
    if (state.size > 0 && state.size < checkpoint.size) {
      const { proof } = await client.get<{ proof: string[] }>(`/v1/ledger/proof/consistency?from=${state.size}&to=${checkpoint.size}`);
      try {
        verifyConsistency(state.size, checkpoint.size, proof.map(fromB64), savedRoot, checkpoint.root);
      } catch (err) {
        return { ok: false, ...base, firstBadIndex: null, reason: `not consistent with the saved checkpoint: ${(err as Error).message}` };
      }
    }
  }
  for (const { file, note } of shared) {
    const reason = comparePrefix(file, note, key, origin, leaves);
    if (reason) return { ok: false, ...base, firstBadIndex: null, reason };
  }
  // The hashes hold; now what the entries say (libs/protocol ledger-rules), with every seed root from one pass.
  const [violation] = checkLedgerRules(parsed, prefixRoots(leaves, seedRootSizes(parsed)));
  if (violation) return { ok: false, ...base, firstBadIndex: violation.index, reason: violation.message };
  if (stateFile) {
    const next: VerifyState = { origin, publicKey: pinned, size: checkpoint.size, root: b64(checkpoint.root), note: cp.note, leaves: Buffer.concat(leaves).toString('base64') };
    writePrivateFile(stateFile, JSON.stringify(next, null, 2));
  }
  return { ok: true, ...base, firstBadIndex: null, reason: null };
}

/** `confide ledger …`: verify, show, proof. */
export async function ledgerCommand(argv: readonly string[], out: Output): Promise<void> {
  const [action, ...args] = argv;
  if (action === 'verify') {
    const { values } = parseCommandArgs(args, { ...GLOBAL_OPTIONS, state: { type: 'string' }, compare: { type: 'string', multiple: true } });
    out.json = values.json === true;
    const result = await verify(CoordinatorClient.from(values), values.state, values.compare);
    out.result({ ...result }, () =>
      result.ok
        ? `ledger verified: ${result.treeSize} entries, root ${result.root ?? ''}`
        : `LEDGER VERIFICATION FAILED${result.firstBadIndex !== null ? ` at index ${result.firstBadIndex}` : ''}: ${result.reason ?? ''}`,
    );
    if (!result.ok) process.exitCode = 1;
    return;
  }
  if (action === 'show') {
    const { values } = parseCommandArgs(args, { ...GLOBAL_OPTIONS, query: { type: 'string' } });
    out.json = values.json === true;
    const client = CoordinatorClient.from(values);
    const { size } = await client.get<CheckpointView>('/v1/ledger/checkpoint');
    const entries = (await downloadEntries(client, size)).map((b) => parseEntry(b)).filter((e) => !values.query || JSON.stringify(e.body).includes(`"${values.query}"`));
    out.result({ entries }, () => entries.map((e) => `${String(e.index).padStart(6)}  ${e.time}  ${e.type.padEnd(22)} ${JSON.stringify(e.body)}`).join('\n'));
    return;
  }
  if (action === 'proof') {
    const { values } = parseCommandArgs(args, { ...GLOBAL_OPTIONS, index: { type: 'string' } });
    out.json = values.json === true;
    const index = intOption(values.index, 'index');
    if (index === undefined) throw new UsageError('--index is required');
    const client = CoordinatorClient.from(values);
    const served = await client.get<PublicKeyView>('/v1/ledger/public-key');
    const cp = await client.get<CheckpointView>('/v1/ledger/checkpoint');
    const checkpoint = verifyCheckpoint(cp.note, importPublicKeyBase64Url('ed25519', served.publicKey), served.origin);
    const [entry] = (await client.get<EntriesView>(`/v1/ledger/entries?start=${index}&end=${index + 1}`)).entries;
    if (!entry) throw new UsageError(`--index ${index} is beyond the ledger (${checkpoint.size} entries)`);
    const { proof } = await client.get<{ proof: string[] }>(`/v1/ledger/proof/inclusion?index=${index}&treeSize=${checkpoint.size}`);
    const leaf = leafHash(fromB64(entry.entry));
    verifyInclusion(leaf, index, checkpoint.size, proof.map(fromB64), checkpoint.root);
    out.result({ index, treeSize: checkpoint.size, leafHash: b64(leaf), proof, root: b64(checkpoint.root), verified: true }, () =>
      [`entry ${index} is included in the signed tree of ${checkpoint.size} entries (root ${b64(checkpoint.root)})`, `leaf hash ${b64(leaf)}`, ...proof.map((p, i) => `  proof[${i}] ${p}`)].join('\n'),
    );
    return;
  }
  throw new UsageError(`unknown ledger command ${JSON.stringify(action ?? '')}`);
}
