import { useEffect, useState } from 'preact/hooks';
import type { PageProps } from './hooks';

interface Named {
  id: string;
  name: string;
}

interface QueryView {
  id: string;
  study: string;
  protocol: string;
  status: 'running' | 'succeeded' | 'failed';
  round: number;
  awaitingNonce: boolean;
  awaitingDecryption: boolean;
  answered: number;
  expected: number;
  participants: number | null;
  results: ResultRow[] | null;
  privacy: { minGroupSize?: number; suppressed?: number; dp?: unknown } | null;
  ledgerIndex: number | null;
  failureReason: string | null;
  createdAt: string;
  finishedAt: string | null;
  progress: { round: number; answered: Named[]; refused: Named[]; waiting: Named[] } | null;
}

interface ResultRow {
  stat: string;
  field?: string;
  x?: string;
  y?: string;
  group: string | null;
  value: unknown;
  count: number | null;
  suppressed: boolean;
}

/** The queries, live: the coordinator pushes every change of the newest ones as a server-sent event. */
export function QueriesPage({ api, onAuthError }: PageProps) {
  const [queries, setQueries] = useState<QueryView[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [live, setLive] = useState(false);
  const [open, setOpen] = useState<string | null>(null);
  useEffect(() => {
    const controller = new AbortController();
    void api.follow(
      '/v1/queries/events?limit=20',
      (event, data) => {
        if (event !== 'queries') return;
        setQueries(JSON.parse(data) as QueryView[]);
        setLive(true);
        setError(null);
      },
      (err) => {
        setLive(false);
        setError(`${err.message} (reconnecting)`);
        onAuthError(err);
      },
      controller.signal,
    );
    return () => controller.abort();
  }, [api]);
  return (
    <section aria-labelledby="queries-title">
      <h1 id="queries-title">Queries</h1>
      <p class="hint" role="status">
        {live ? 'Live: updates as the coordinator records them.' : 'Connecting…'}
      </p>
      {error && <p role="alert" class="error">{error}</p>}
      {queries && queries.length === 0 && <p>No query yet.</p>}
      {queries && queries.length > 0 && (
        <table>
          <thead>
            <tr>
              <th scope="col">Query</th>
              <th scope="col">Study</th>
              <th scope="col">Protocol</th>
              <th scope="col">Status</th>
              <th scope="col">Round</th>
              <th scope="col">Answered</th>
              <th scope="col">Contributors</th>
              <th scope="col">Ledger index</th>
            </tr>
          </thead>
          <tbody>
            {queries.map((q) => (
              <QueryRow key={q.id} q={q} open={open === q.id} onToggle={() => setOpen(open === q.id ? null : q.id)} />
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

function QueryRow({ q, open, onToggle }: { q: QueryView; open: boolean; onToggle: () => void }) {
  const status = q.status === 'running' ? (q.awaitingNonce ? 'waiting for the nonce' : q.awaitingDecryption ? 'waiting for decryption' : 'running') : q.status;
  return (
    <>
      <tr data-query={q.id}>
        <th scope="row">
          <button type="button" class="link" aria-expanded={open} aria-controls={`detail-${q.id}`} onClick={onToggle}>
            {q.id}
          </button>
        </th>
        <td>{q.study}</td>
        <td>{q.protocol}</td>
        <td>
          <span class={`state ${q.status}`}>{status}</span>
        </td>
        <td>{q.round}</td>
        <td>{q.status === 'running' ? `${q.answered} of ${q.expected}` : '—'}</td>
        <td>{q.participants ?? '—'}</td>
        <td>{q.ledgerIndex === null ? '—' : <a href={`#/ledger/${q.id}`} aria-label={`ledger entries of query ${q.id}, result at index ${q.ledgerIndex}`}>{q.ledgerIndex}</a>}</td>
      </tr>
      {open && (
        <tr id={`detail-${q.id}`} class="detail">
          <td colSpan={8}>
            <QueryDetail q={q} />
          </td>
        </tr>
      )}
    </>
  );
}

const number = (v: number): string => (Number.isInteger(v) ? String(v) : v.toPrecision(6));

function show(value: unknown): string {
  if (typeof value === 'number') return number(value);
  if (value === null || value === undefined) return '—';
  return JSON.stringify(value, (_k, v: unknown) => (typeof v === 'number' && !Number.isInteger(v) ? Number(v.toPrecision(6)) : v));
}

function QueryDetail({ q }: { q: QueryView }) {
  return (
    <div>
      <p>
        Submitted {q.createdAt}
        {q.finishedAt ? `, finished ${q.finishedAt}` : ''}.
      </p>
      {q.failureReason && <p class="error">Failed: {q.failureReason}</p>}
      {q.progress && (
        <p>
          Round {q.progress.round}: answered {q.progress.answered.map((p) => p.name).join(', ') || 'none'}; refused {q.progress.refused.map((p) => p.name).join(', ') || 'none'}; waiting for{' '}
          {q.progress.waiting.map((p) => p.name).join(', ') || 'none'}.
        </p>
      )}
      {q.results && (
        <table>
          <caption>
            Results{q.privacy?.suppressed ? `: ${q.privacy.suppressed} cell(s) suppressed below the minimum group size` : ''}
          </caption>
          <thead>
            <tr>
              <th scope="col">Statistic</th>
              <th scope="col">Group</th>
              <th scope="col">Value</th>
              <th scope="col">Count</th>
            </tr>
          </thead>
          <tbody>
            {q.results.map((r, i) => (
              <tr key={i} class={r.suppressed ? 'suppressed' : undefined}>
                <th scope="row">
                  {r.stat}({r.field ?? [r.x, r.y].filter(Boolean).join(', ')})
                </th>
                <td>{r.group ?? 'all'}</td>
                <td>{r.suppressed ? <span class="badge">suppressed</span> : show(r.value)}</td>
                <td>{r.suppressed ? <span class="badge">suppressed</span> : (r.count ?? '—')}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}
