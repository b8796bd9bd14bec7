import { useEffect, useState } from 'preact/hooks';
import { fromBase64, pinFingerprint, pinKey, verifyCheckpointNote, verifyConsistency, verifyEntry, type LedgerEntryView, type PinnedKey, type VerifiedCheckpoint } from '../ledger-verify';
import type { PageProps } from './hooks';

/**
 * The audit ledger, checked here in the browser: the signed checkpoint against the key the user pinned, each listed
 * entry's inclusion proof against that checkpoint, and the checkpoint's consistency with the one verified on the
 * last visit (kept in localStorage, with the pinned key: both public). The coordinator that serves this page is
 * not trusted for any of it.
 */

const PIN = 'confide.console.verifierKey';
const LAST = 'confide.console.lastCheckpoint';
const PAGE = 25;
const TYPES = [
  'coordinator.keys',
  'apikey.created',
  'study.created',
  'participant.enrolled',
  'participant.removed',
  'participant.updated',
  'query.submitted',
  'committee.drawn',
  'paillier.planned',
  'round.closed',
  'result.released',
  'query.failed',
  'contribution.late',
  'contribution.rejected',
  'decryption.rejected',
  'decryption.partial',
  'privacy.spent',
];

type Check = { state: 'pending' } | { state: 'verified' } | { state: 'failed'; message: string } | { state: 'unverifiable'; message: string };

interface Saved extends VerifiedCheckpoint {
  readonly verifiedAt: string;
}

function readSaved(origin: string): Saved | null {
  try {
    const saved = JSON.parse(localStorage.getItem(LAST) ?? 'null') as Saved | null;
    return saved && saved.origin === origin && Number.isSafeInteger(saved.size) && typeof saved.root === 'string' ? saved : null;
  } catch {
    return null;
  }
}

export function LedgerPage({ api, onAuthError, query }: PageProps & { query?: string }) {
  const [pinned, setPinned] = useState<PinnedKey | null>(null);
  const [pinText, setPinText] = useState(localStorage.getItem(PIN) ?? '');
  const [pinError, setPinError] = useState<string | null>(null);
  const [offered, setOffered] = useState<string | null>(null);
  const [checkpoint, setCheckpoint] = useState<VerifiedCheckpoint | null>(null);
  const [checkpointCheck, setCheckpointCheck] = useState<Check>({ state: 'pending' });
  const [consistency, setConsistency] = useState<Check & { since?: Saved }>({ state: 'pending' });
  const [reload, setReload] = useState(0);

  /**
   * A pin is the coordinator key's fingerprint (what the admin hands out: the served key must hash to it) or a
   * whole C2SP verifier key (checked on its own).
   */
  const resolvePin = async (text: string): Promise<PinnedKey> => {
    if (!/^\s*[0-9a-f]{64}\s*$/.test(text)) return pinKey(text);
    const served = await api.get<{ publicKey: string }>('/v1/ledger/public-key');
    return pinFingerprint(text, served.publicKey);
  };

  // The pinned key, from storage or as the user typed it.
  useEffect(() => {
    const text = localStorage.getItem(PIN);
    if (!text) {
      api.get<{ fingerprint: string }>('/v1/coordinator').then((k) => setOffered(k.fingerprint), onAuthError);
      return;
    }
    resolvePin(text).then(setPinned, (err: Error) => {
      setPinError(`The pinned key does not hold: ${err.message}`);
      onAuthError(err);
    });
  }, [api]);

  // The checkpoint: verified against the pinned key, then against the last one verified in this browser.
  useEffect(() => {
    if (!pinned) return;
    let gone = false;
    setCheckpointCheck({ state: 'pending' });
    void (async () => {
      try {
        const served = await api.get<{ size: number; note: string }>('/v1/ledger/checkpoint');
        let verified: VerifiedCheckpoint;
        try {
          verified = await verifyCheckpointNote(served.note, pinned);
        } catch (err) {
          if (!gone) setCheckpointCheck({ state: 'failed', message: (err as Error).message });
          return;
        }
        if (gone) return;
        setCheckpoint(verified);
        setCheckpointCheck({ state: 'verified' });
        const saved = readSaved(verified.origin);
        if (!saved) {
          localStorage.setItem(LAST, JSON.stringify({ ...verified, verifiedAt: new Date().toISOString() }));
          setConsistency({ state: 'unverifiable', message: 'First visit from this browser: this checkpoint is kept to check the next one against.' });
          return;
        }
        try {
          const proof = saved.size > 0 && saved.size < verified.size ? (await api.get<{ proof: string[] }>(`/v1/ledger/proof/consistency?from=${saved.size}&to=${verified.size}`)).proof : [];
          await verifyConsistency(saved, verified, proof);
          localStorage.setItem(LAST, JSON.stringify({ ...verified, verifiedAt: new Date().toISOString() }));
          if (!gone) setConsistency({ state: 'verified', since: saved });
        } catch (err) {
          // The saved checkpoint stays: the next visit compares with it again.
          if (!gone) setConsistency({ state: 'failed', message: (err as Error).message, since: saved });
        }
      } catch (err) {
        if (!gone) setCheckpointCheck({ state: 'unverifiable', message: (err as Error).message });
        onAuthError(err as Error);
      }
    })();
    return () => {
      gone = true;
    };
  }, [api, pinned, reload]);

  const pin = async (text: string): Promise<void> => {
    setPinError(null);
    try {
      const key = await resolvePin(text);
      localStorage.setItem(PIN, text.trim());
      setPinned(key);
    } catch (err) {
      setPinError((err as Error).message);
    }
  };

  return (
    <section aria-labelledby="ledger-title">
      <h1 id="ledger-title">Ledger</h1>
      <section class="card" aria-labelledby="pin-title">
        <h2 id="pin-title">Pinned ledger key</h2>
        {pinned ? (
          <p>
            Checkpoints must be signed by <code>{pinned.name}</code> (the key pinned in this browser).{' '}
            <button
              type="button"
              class="link"
              onClick={() => {
                localStorage.removeItem(PIN);
                setPinned(null);
                setCheckpoint(null);
              }}
            >
              Unpin
            </button>
          </p>
        ) : (
          <form
            onSubmit={(e) => {
              e.preventDefault();
              void pin(pinText);
            }}
          >
            <label for="verifier-key">Ledger key to pin</label>
            <input id="verifier-key" value={pinText} onInput={(e) => setPinText((e.target as HTMLInputElement).value)} spellcheck={false} />
            <p class="hint">
              The coordinator key's fingerprint the admin handed you out of band (64 hex digits, as `confide coordinator info` prints it), or its whole verifier key. The page
              checks the ledger against this key, not against what the coordinator says.
              {offered && (
                <>
                  {' '}
                  The coordinator says its fingerprint is <code>{offered}</code>: compare it with yours before pinning.
                </>
              )}
            </p>
            <button type="submit">Pin this key</button>
          </form>
        )}
        {pinError && <p role="alert" class="error">{pinError}</p>}
      </section>
      {pinned && (
        <section class="card" aria-labelledby="checkpoint-title">
          <h2 id="checkpoint-title">Signed checkpoint</h2>
          <CheckLine check={checkpointCheck} ok={checkpoint ? `Checkpoint verified: ${checkpoint.size} entries, root ${checkpoint.root}, signed by the pinned key.` : ''} what="checkpoint" />
          <CheckLine
            check={consistency}
            ok={
              consistency.since
                ? `Consistent with the checkpoint this browser verified at ${consistency.since.verifiedAt} (${consistency.since.size} entries): ${consistency.since.size === checkpoint?.size ? 'the same ledger' : 'the ledger only grew'}.`
                : ''
            }
            what="consistency with your last visit"
          />
          <button type="button" onClick={() => setReload(reload + 1)}>
            Check again
          </button>
        </section>
      )}
      {checkpoint && <Entries {...{ api, onAuthError, checkpoint, query }} />}
    </section>
  );
}

function CheckLine({ check, ok, what }: { check: Check; ok: string; what: string }) {
  if (check.state === 'pending') return <p role="status">Checking the {what}…</p>;
  if (check.state === 'verified') return <p class="verified" role="status">✔ {ok}</p>;
  if (check.state === 'unverifiable') return <p role="status">{check.message}</p>;
  return (
    <p class="failed" role="alert">
      ✘ The {what} FAILED verification: {check.message}
    </p>
  );
}

interface Row {
  index: number;
  entry: string;
  view: LedgerEntryView | null;
  check: Check;
  /** The inclusion proof at the checkpoint's size, as served (base64 hashes, leaf to root). */
  proof?: string[];
}

function Entries({ api, onAuthError, checkpoint, query }: Pick<PageProps, 'api' | 'onAuthError'> & { checkpoint: VerifiedCheckpoint; query?: string }) {
  const [type, setType] = useState('');
  const [queryId, setQueryId] = useState(query ?? '');
  const [filter, setFilter] = useState({ type: '', query: query ?? '' });
  const [pages, setPages] = useState<(number | undefined)[]>([undefined]);
  const [rows, setRows] = useState<Row[] | null>(null);
  const [next, setNext] = useState<number | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [open, setOpen] = useState<number | null>(null);
  const before = pages[pages.length - 1];

  useEffect(() => {
    let gone = false;
    const params = new URLSearchParams({ limit: String(PAGE) });
    // Only what the verified checkpoint covers is listed: newer entries are checked on the next checkpoint.
    params.set('before', String(Math.min(before ?? checkpoint.size, checkpoint.size)));
    if (filter.type) params.set('type', filter.type);
    if (filter.query) params.set('query', filter.query);
    void (async () => {
      try {
        const page = await api.get<{ entries: { index: number; entry: string }[]; before: number | null }>(`/v1/ledger/entries/search?${params.toString()}`);
        if (gone) return;
        const listed: Row[] = page.entries.map((e) => ({ ...e, view: null, check: { state: 'pending' } }));
        setRows(listed);
        setNext(page.before);
        setError(null);
        // Each entry: its inclusion proof at the checkpoint's size, recomputed to the signed root here.
        const checked = await Promise.all(
          listed.map(async (r): Promise<Row> => {
            let proof: string[] | undefined;
            try {
              proof = (await api.get<{ proof: string[] }>(`/v1/ledger/proof/inclusion?index=${r.index}&treeSize=${checkpoint.size}`)).proof;
              return { ...r, proof, view: await verifyEntry(r.index, r.entry, proof, checkpoint), check: { state: 'verified' } };
            } catch (err) {
              return { ...r, proof, check: { state: 'failed', message: (err as Error).message } };
            }
          }),
        );
        if (!gone) setRows(checked);
      } catch (err) {
        if (gone) return;
        setError((err as Error).message);
        onAuthError(err as Error);
      }
    })();
    return () => {
      gone = true;
    };
  }, [api, checkpoint, filter, before]);

  const failed = rows?.filter((r) => r.check.state === 'failed') ?? [];
  const verified = rows?.filter((r) => r.check.state === 'verified').length ?? 0;
  const pending = rows?.some((r) => r.check.state === 'pending') ?? true;
  return (
    <section aria-labelledby="entries-title">
      <h2 id="entries-title">Entries</h2>
      <form
        class="filters"
        onSubmit={(e) => {
          e.preventDefault();
          setPages([undefined]);
          setFilter({ type, query: queryId.trim() });
        }}
      >
        <label for="entry-type">Type</label>
        <select id="entry-type" value={type} onChange={(e) => setType((e.target as HTMLSelectElement).value)}>
          <option value="">any</option>
          {TYPES.map((t) => (
            <option key={t} value={t}>
              {t}
            </option>
          ))}
        </select>
        <label for="entry-query">Query id</label>
        <input id="entry-query" value={queryId} placeholder="q…" onInput={(e) => setQueryId((e.target as HTMLInputElement).value)} spellcheck={false} />
        <button type="submit">Filter</button>
      </form>
      {error && <p role="alert" class="error">{error}</p>}
      {rows && !pending && (
        <p role={failed.length > 0 ? 'alert' : 'status'} class={failed.length > 0 ? 'failed' : 'verified'}>
          {failed.length > 0
            ? `✘ ${failed.length} of ${rows.length} entries on this page FAILED verification: ${failed.map((r) => `entry ${r.index}`).join(', ')}.`
            : `✔ All ${verified} entries on this page verified against the signed checkpoint.`}
        </p>
      )}
      {rows && rows.length === 0 && <p>No entry matches.</p>}
      {rows && rows.length > 0 && (
        <table>
          <thead>
            <tr>
              <th scope="col">Index</th>
              <th scope="col">Type</th>
              <th scope="col">Time</th>
              <th scope="col">Verification</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((r) => (
              <EntryRow key={r.index} row={r} open={open === r.index} onToggle={() => setOpen(open === r.index ? null : r.index)} />
            ))}
          </tbody>
        </table>
      )}
      <nav aria-label="Entry pages" class="pager">
        <button type="button" disabled={pages.length <= 1} onClick={() => setPages(pages.slice(0, -1))}>
          Newer
        </button>
        <button type="button" disabled={next === null} onClick={() => next !== null && setPages([...pages, next])}>
          Older
        </button>
      </nav>
    </section>
  );
}

function EntryRow({ row, open, onToggle }: { row: Row; open: boolean; onToggle: () => void }) {
  // What the bytes say, shown even when they fail verification (that is the point of showing them).
  const raw = ((): { type?: string; time?: string; body?: unknown } => {
    try {
      return JSON.parse(new TextDecoder().decode(fromBase64(row.entry, 'entry'))) as { type?: string; time?: string; body?: unknown };
    } catch {
      return {};
    }
  })();
  return (
    <>
      <tr data-entry={row.index}>
        <th scope="row">
          <button type="button" class="link" aria-expanded={open} aria-controls={`entry-${row.index}`} onClick={onToggle}>
            {row.index}
          </button>
        </th>
        <td>{row.view?.type ?? raw.type ?? '?'}</td>
        <td>{(row.view?.time ?? raw.time ?? '').replace('T', ' ').replace('Z', '')}</td>
        <td>
          {row.check.state === 'pending' && <span>checking…</span>}
          {row.check.state === 'verified' && <span class="state verified">verified</span>}
          {row.check.state === 'failed' && <span class="state failed">failed: {row.check.message}</span>}
        </td>
      </tr>
      {open && (
        <tr id={`entry-${row.index}`} class="detail">
          <td colSpan={4}>
            <pre>{JSON.stringify(row.view?.body ?? raw.body ?? null, null, 2)}</pre>
            {row.proof && (
              <>
                <p>
                  Inclusion proof ({row.proof.length} {row.proof.length === 1 ? 'hash' : 'hashes'}, from the leaf up), recomputed here to the checkpoint's root:
                </p>
                <ol class="proof">
                  {row.proof.map((h, i) => (
                    <li key={i}>
                      <code>{h}</code>
                    </li>
                  ))}
                </ol>
              </>
            )}
          </td>
        </tr>
      )}
    </>
  );
}
