import type { PaillierKeyPair } from '@confide/crypto';
import { intOption, orderedOptions, parseCommandArgs, UsageError } from '../args';
import { ApiCallError, CoordinatorClient, GLOBAL_OPTIONS, GLOBAL_USAGE, submitQuery } from '../client';
import type { Output } from '../output';
import { renderRow, type ResultRow } from '../render';
import { paillierFingerprint, readCustodiansFile, readPaillierKeyFile, readShareFile } from './keys';
import { checkDecryptAndPost, decryptShareAndPost, ledgerKey, readIdentityFile, submitPaillierQuery } from '../paillier';
import { QUERY_OPTIONS, readQueryFile, readSelect, readWhere, SELECT_FLAGS } from '../query-spec';

export const QUERY_USAGE = `Usage: confide query --study NAME [--protocol shamir|paillier] --stat STAT (--field F | --x X --y Y) [--bins MIN:MAX:WIDTH | --edges E1,E2,…] …
                     [--where COND …] [--group-by FIELD] [--min-group-size N] [--threshold T]
                     [--key FILE --identity FILE] [--coordinator-key FINGERPRINT] [--deadline SECONDS] [--allow-offline] [--wait] [--json]
       confide query --file QUERY.json [--key FILE --identity FILE] [--wait] [--json]
       confide query status ID [--json]
       confide query list [--study NAME] [--mine] [--limit N] [--json]
       confide query --study NAME --protocol paillier --custodians FILE --identity FILE … [--wait]
       confide query decrypt ID --key FILE [--coordinator-key FINGERPRINT] [--json]
       confide query decrypt-share ID --share FILE [--coordinator-key FINGERPRINT] [--json]
STAT is count, sum, mean, variance, stddev (sample, n − 1), histogram (--bins or --edges; bins are [a, b)),
correlation or regression (--x X --y Y: y on x). COND is FIELD OP VALUE with OP = != < <= > >= or in
(e.g. --where 'age>=40' --where 'type=Yes' --where 'rank in Prof,AssocProf'); conditions are ANDed.
--group-by computes every statistic per value of a category field. A query is refused (409) when fewer of the
study's participants are online than its minimum, naming who is offline; --allow-offline submits it anyway, to wait
for them until its deadline. --file sends a JSON query as
POST /v1/queries takes it. With --wait it follows the query to its result (a progress bar on a terminal).
paillier needs --key FILE from 'confide keys paillier' (only its public key is sent) and --identity FILE
from 'confide keys researcher', which signs the key's binding to this query; participants refuse a key
without it. With --wait the CLI checks the aggregate when it is ready (every contribution's signature
against the ledger, the contributor set, the study's minimum, the product recomputed here) and only then
decrypts it here and posts the plaintext with its randomness, which the coordinator verifies before it
releases the result; without --wait, run 'query decrypt' later. A refused aggregate exits 1, naming why.
--coordinator-key pins the ledger key's fingerprint (given out of band) that the evidence must verify with.
--custodians FILE (custodians.json from 'confide keys paillier --custodians') submits under a key split among
custodians instead: nobody holds the whole key. Each custodian runs 'query decrypt-share ID --share FILE', which
waits for the aggregate if the participants are still answering, checks it as above and posts its partial
decryption with a proof; any T of them release the result.
A shamir query's committee is drawn from a seed that mixes the coordinator's signed ledger root with a
nonce this CLI commits to and reveals once the commitment is in the ledger.
With --wait the query's id goes to stderr first, then, whenever it changes, who the open round still waits for, by
invited name and id; with --json each is a JSON line there ({"event":"submitted","id":…}, {"event":"waiting",…}). If the coordinator restarts or
does not answer (no connection, a timeout, 502 or 503), --wait retries with backoff until the query's deadline.
list shows queries newest first (a study's with --study, your own with --mine): id, study, statistics, status,
submitted and finished. 'confide participant list --study NAME' shows who is online before you submit.
${GLOBAL_USAGE}`;

/** GET /v1/queries/:id as the CLI reads it. */
interface QueryView {
  id: string;
  status: 'running' | 'succeeded' | 'failed';
  round: number;
  awaitingNonce?: boolean;
  awaitingDecryption?: boolean;
  answered: number;
  expected: number;
  participants: number | null;
  results: ResultRow[] | null;
  privacy?: { minParticipants: number; minGroupSize: number; suppressed: number; dp: { mechanism: string; epsilon: number; delta: number } | null } | null;
  ledgerIndex: number | null;
  failureReason: string | null;
  /** Who answered the open round, who refused, who is still awaited (names and ids only). */
  progress?: { round: number; answered: Named[]; refused: Named[]; waiting: Named[] } | null;
}

/** A participant as the coordinator names it. */
interface Named {
  id: string;
  name: string;
}

/** GET /v1/queries, one item. */
interface QueryItem {
  id: string;
  study: string;
  protocol: string;
  statistics: string[];
  status: string;
  submittedBy: string | null;
  createdAt: string;
  finishedAt: string | null;
}

/** "hospital-3 (p8978…)" for each participant. */
function names(list: readonly Named[]): string {
  return list.map((p) => `${p.name} (${p.id})`).join(', ');
}

function bar(done: number, total: number, width = 20): string {
  const filled = total > 0 ? Math.round((done / total) * width) : 0;
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}]`;
}


function toJson(q: QueryView): Record<string, unknown> {
  const base = { id: q.id, status: q.status, participants: q.participants, results: q.results ?? [], privacy: q.privacy ?? null, ledgerIndex: q.ledgerIndex, ...(q.progress ? { progress: q.progress } : {}) };
  return q.failureReason ? { ...base, failureReason: q.failureReason } : base;
}

function human(q: QueryView): string {
  if (q.status === 'running' && q.awaitingNonce) return `query ${q.id}: running, waiting for the researcher's committee nonce`;
  if (q.status === 'running' && q.progress) {
    const p = q.progress;
    return `query ${q.id}: running, round ${p.round}, ${p.answered.length}/${q.expected} answered${p.waiting.length ? `; waiting for ${names(p.waiting)}` : ''}${p.refused.length ? `; refused by ${names(p.refused)}` : ''}`;
  }
  if (q.status === 'running') return `query ${q.id}: running, round ${q.round}, ${q.answered}/${q.expected} answered`;
  if (q.status === 'failed') return `query ${q.id} failed: ${q.failureReason ?? 'unknown reason'}`;
  const lines = [`query ${q.id}: ${q.participants ?? 0} participants contributed (event log index ${q.ledgerIndex ?? '-'})`];
  for (const r of q.results ?? []) lines.push(renderRow(r));
  const p = q.privacy;
  if (p) {
    const dp = p.dp ? `; differential privacy: ${p.dp.mechanism}, ε = ${p.dp.epsilon}${p.dp.delta ? `, δ = ${p.dp.delta}` : ''}` : '';
    lines.push(`privacy: at least ${p.minParticipants} participants, cells under ${p.minGroupSize} records suppressed (${p.suppressed} withheld)${dp}`);
  }
  return lines.join('\n');
}

/**
 * The key holder's side of a paillier query, run once its aggregate is ready: the whole key pair's check, decrypt
 * and post (`decrypt`, `query --wait`), or one custodian's partial decryption (`decrypt-share`).
 */
type KeyHolder = () => Promise<QueryView>;

/** The full key pair's part, with the ledger key pinned by fingerprint, if any. */
const fullKeyHolder =
  (client: CoordinatorClient, id: string, keys: PaillierKeyPair, pinned: string | undefined, out: Output): KeyHolder =>
  async () =>
    checkDecryptAndPost<QueryView>(client, id, keys, await ledgerKey(client, pinned), out);

/** One event of `query --wait` on stderr: a JSON line with --json (stdout keeps its one result object), else text. */
function event(out: Output, json: { event: string; id: string } & Record<string, unknown>, text: string): void {
  out.notice(out.json ? JSON.stringify(json) : text);
}

/** True for a failure worth retrying while the query runs: no connection, no answer in time, or a coordinator restarting (502, 503). */
function transient(err: unknown): err is ApiCallError {
  return err instanceof ApiCallError && (err.status === 0 || err.status === 502 || err.status === 503);
}

/**
 * Polls a query until it finishes (with a deadline), drawing progress on a terminal and naming, on stderr, who the
 * open round still waits for whenever that changes. A coordinator that restarts or stops answering is retried with
 * backoff (up to 5 s apart) until the deadline. Checks and decrypts a paillier aggregate when given the key.
 * @throws Error naming the query, who had not answered, and how to look again, when the deadline passes
 */
async function follow(client: CoordinatorClient, id: string, out: Output, timeoutMs: number, holder?: KeyHolder): Promise<QueryView> {
  const until = Date.now() + timeoutMs;
  let waitingFor = '';
  let outage: string | undefined;
  let backoff = 250;
  for (;;) {
    let q: QueryView;
    try {
      q = await client.get<QueryView>(`/v1/queries/${id}`);
    } catch (err) {
      if (!transient(err) || Date.now() > until) throw err;
      if (outage === undefined) event(out, { event: 'unreachable', id, reason: err.message, retryingUntil: new Date(until).toISOString() }, `the coordinator is not answering (${err.message}); retrying until ${new Date(until).toISOString()}`);
      outage = err.message;
      await new Promise((r) => setTimeout(r, Math.min(backoff, Math.max(0, until - Date.now()))));
      backoff = Math.min(backoff * 2, 5000);
      continue;
    }
    if (outage !== undefined) event(out, { event: 'reachable', id }, `the coordinator answers again; still following query ${id}`);
    outage = undefined;
    backoff = 250;
    if (q.status !== 'running') return q;
    if (q.awaitingDecryption && holder) return holder();
    const p = q.progress;
    const waiting = p?.waiting.length ? `round ${p.round}: waiting for ${names(p.waiting)}` : '';
    if (p && waiting && waiting !== waitingFor) event(out, { event: 'waiting', id, round: p.round, participants: p.waiting }, `query ${id} ${waiting}`);
    waitingFor = waiting;
    const answered = p ? p.answered.length : q.answered;
    out.progress(
      q.awaitingDecryption
        ? 'aggregate ready; waiting for the key holder (or custodians) to decrypt'
        : `round ${q.round}/2 ${bar(answered, q.expected)} ${answered}/${q.expected} answered${p?.waiting.length ? `; waiting for ${p.waiting.map((w) => w.name).join(', ')}` : ''}`,
    );
    if (Date.now() > until) {
      throw new Error(`query ${id} still running after ${Math.round(timeoutMs / 1000)} s${p?.waiting.length ? `, waiting for ${names(p.waiting)}` : ''}; check it later with 'confide query status ${id}'`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** `--coordinator-key`: a ledger key fingerprint, 64 hex digits, or nothing. @throws UsageError on another form */
function pinnedFingerprint(value: string | undefined): string | undefined {
  if (value !== undefined && !/^[0-9a-f]{64}$/.test(value)) throw new UsageError(`--coordinator-key must be the coordinator key fingerprint (64 hex digits), got ${JSON.stringify(value)}`);
  return value;
}

/** `confide query …`: submit a query (optionally wait for it), or show one. */
export async function queryCommand(argv: readonly string[], out: Output): Promise<void> {
  if (argv[0] === 'status') {
    const { values, positionals } = parseCommandArgs(argv.slice(1), { ...GLOBAL_OPTIONS }, true);
    out.json = values.json === true;
    const id = positionals[0];
    if (!id) throw new UsageError('give the query id: confide query status ID');
    const q = await CoordinatorClient.from(values).get<QueryView>(`/v1/queries/${encodeURIComponent(id)}`);
    out.result(toJson(q), () => human(q));
    return;
  }
  if (argv[0] === 'list') {
    const { values } = parseCommandArgs(argv.slice(1), { ...GLOBAL_OPTIONS, study: { type: 'string' }, mine: { type: 'boolean' }, limit: { type: 'string' } });
    out.json = values.json === true;
    const params = new URLSearchParams();
    if (values.study) params.set('study', values.study);
    if (values.mine) params.set('mine', 'true');
    const limit = intOption(values.limit, 'limit', 1);
    if (limit !== undefined) params.set('limit', String(limit));
    const queries = await CoordinatorClient.from(values).get<QueryItem[]>(`/v1/queries${params.size ? `?${params.toString()}` : ''}`);
    out.result({ queries }, () =>
      queries.length
        ? [
            `${'ID'.padEnd(25)}  ${'STUDY'.padEnd(16)} ${'STATUS'.padEnd(9)} ${'SUBMITTED'.padEnd(24)}  ${'FINISHED'.padEnd(24)}  STATISTICS`,
            ...queries.map((q) => `${q.id.padEnd(25)}  ${q.study.padEnd(16)} ${q.status.padEnd(9)} ${q.createdAt.padEnd(24)}  ${(q.finishedAt ?? '-').padEnd(24)}  ${q.statistics.join(', ')}`),
          ].join('\n')
        : 'no queries',
    );
    return;
  }
  if (argv[0] === 'decrypt-share') {
    const { values, positionals } = parseCommandArgs(argv.slice(1), { ...GLOBAL_OPTIONS, share: { type: 'string' }, 'coordinator-key': { type: 'string' } }, true);
    out.json = values.json === true;
    const id = positionals[0];
    if (!id || !values.share) throw new UsageError('usage: confide query decrypt-share ID --share FILE');
    const share = readShareFile(values.share);
    const client = CoordinatorClient.from(values);
    // A custodian may be asked before the participants have all answered: it follows the query until the aggregate
    // is ready (as `decrypt` does), then checks it and posts its partial decryption.
    type Decrypting = QueryView & { decryption?: { decrypted: number; threshold: number } };
    const q: Decrypting = await follow(client, encodeURIComponent(id), out, 60 * 60 * 1000, async () =>
      decryptShareAndPost<Decrypting>(client, id, share, await ledgerKey(client, pinnedFingerprint(values['coordinator-key'])), out),
    );
    out.result({ ...toJson(q), custodian: share.index, ...(q.decryption ? { decryption: q.decryption } : {}) }, () =>
      q.status === 'running' && q.decryption ? `custodian ${share.index} decrypted its share of query ${q.id}: ${q.decryption.decrypted} of the ${q.decryption.threshold} custodians needed so far` : human(q),
    );
    if (q.status === 'failed') process.exitCode = 1;
    return;
  }
  if (argv[0] === 'decrypt') {
    const { values, positionals } = parseCommandArgs(argv.slice(1), { ...GLOBAL_OPTIONS, key: { type: 'string' }, 'coordinator-key': { type: 'string' } }, true);
    out.json = values.json === true;
    const id = positionals[0];
    if (!id || !values.key) throw new UsageError('usage: confide query decrypt ID --key FILE');
    const client = CoordinatorClient.from(values);
    const holder = fullKeyHolder(client, id, readPaillierKeyFile(values.key), pinnedFingerprint(values['coordinator-key']), out);
    const q = await follow(client, encodeURIComponent(id), out, 60 * 60 * 1000, holder);
    out.result(toJson(q), () => human(q));
    if (q.status === 'failed') process.exitCode = 1;
    return;
  }
  const { values, tokens } = parseCommandArgs(argv, {
    ...GLOBAL_OPTIONS,
    study: { type: 'string' },
    protocol: { type: 'string' },
    ...QUERY_OPTIONS,
    'min-group-size': { type: 'string' },
    file: { type: 'string' },
    threshold: { type: 'string' },
    deadline: { type: 'string' },
    key: { type: 'string' },
    identity: { type: 'string' },
    custodians: { type: 'string' },
    'coordinator-key': { type: 'string' },
    wait: { type: 'boolean' },
    'allow-offline': { type: 'boolean' },
  });
  out.json = values.json === true;
  const fromFile = values.file ? readQueryFile(values.file) : undefined;
  if (fromFile && (values.stat?.length || values.where?.length || values['group-by'] || values.study)) {
    throw new UsageError('--file holds the whole query: give --study, --stat, --where and --group-by in the file, not beside it');
  }
  if (!fromFile && !values.study) throw new UsageError('--study is required');
  const protocol = (fromFile?.protocol as string | undefined) ?? values.protocol ?? 'shamir';
  if (protocol !== 'shamir' && protocol !== 'paillier') throw new UsageError(`--protocol must be shamir or paillier, got ${JSON.stringify(protocol)}`);
  if (protocol === 'paillier' && !values.key && !values.custodians) throw new UsageError('--protocol paillier needs --key FILE (create one with confide keys paillier) or --custodians FILE');
  if (values.key && values.custodians) throw new UsageError('--key and --custodians are two ways to hold the key: give one');
  if (protocol === 'paillier' && !values.identity) throw new UsageError("--protocol paillier needs --identity FILE, the identity key your API key is bound to (create one with 'confide keys researcher')");
  if (protocol === 'shamir' && (values.key || values.identity || values.custodians)) throw new UsageError(`--${values.key ? 'key' : values.identity ? 'identity' : 'custodians'} is for --protocol paillier`);
  const keys = values.key ? readPaillierKeyFile(values.key) : undefined;
  const custodians = values.custodians ? readCustodiansFile(values.custodians) : undefined;
  const identity = values.identity ? readIdentityFile(values.identity) : undefined;
  const pinned = pinnedFingerprint(values['coordinator-key']);
  const deadline = intOption(values.deadline, 'deadline', 1);
  const minGroupSize = intOption(values['min-group-size'], 'min-group-size', 1);
  const allowOffline = values['allow-offline'] === true ? { allowOffline: true } : {};
  const body: Record<string, unknown> = fromFile
    ? { ...fromFile, protocol, ...allowOffline }
    : {
        study: values.study,
        protocol,
        select: readSelect(orderedOptions(tokens, SELECT_FLAGS)),
        ...(values.where?.length ? { where: values.where.map(readWhere) } : {}),
        ...(values['group-by'] ? { groupBy: values['group-by'] } : {}),
        ...(minGroupSize !== undefined ? { privacy: { minGroupSize } } : {}),
        threshold: intOption(values.threshold, 'threshold', 1),
        deadlineSeconds: deadline,
        ...allowOffline,
      };
  const client = CoordinatorClient.from(values);
  // Only the public key ever leaves this machine, with the identity key's signature binding it to this query.
  const paillierKey = keys?.publicKey ?? custodians?.verification.publicKey;
  // With --wait, the id goes out first, before anything that can still fail: the researcher can always look the query up.
  let announced = false;
  const announce = (id: string): void => {
    if (!values.wait || announced) return;
    announced = true;
    event(out, { event: 'submitted', id }, `submitted query ${id}; waiting for its result ('confide query status ${id}' shows it later)`);
  };
  const submitted = paillierKey && identity ? await submitPaillierQuery(client, body, paillierKey, identity, custodians?.json) : await submitQuery(client, body, announce);
  announce(submitted.id);
  if (!values.wait) {
    const next = keys
      ? `; decrypt it with 'confide query decrypt ${submitted.id} --key ${values.key}' (key ${paillierFingerprint(keys)})`
      : custodians
        ? `; ${custodians.verification.threshold} of its ${custodians.verification.custodians} custodians decrypt it with 'confide query decrypt-share ${submitted.id} --share FILE'`
        : '';
    const online = submitted.online ? `; ${submitted.online.count} of its ${submitted.online.of} participants online` : '';
    out.result({ id: submitted.id, status: submitted.status, ...(submitted.online ? { online: submitted.online } : {}) }, () => `submitted query ${submitted.id}${online}; follow it with 'confide query status ${submitted.id}'${next}`);
    return;
  }
  const q = await follow(client, submitted.id, out, ((deadline ?? 120) * 2 + 60) * 1000, keys ? fullKeyHolder(client, submitted.id, keys, pinned, out) : undefined);
  out.result(toJson(q), () => human(q));
  if (q.status === 'failed') process.exitCode = 1;
}
