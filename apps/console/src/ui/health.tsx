import { useLoad, type PageProps } from './hooks';

/** GET /v1/status/health: what the coordinator's connections and queues look like, and why queries failed lately. */
interface HealthView {
  database: 'up' | 'down';
  redis: 'up' | 'down';
  connections: { name: string; state: string }[];
  queues: { tasks: Record<string, number>; aggregation: Record<string, number> } | null;
  failures: { windowSeconds: number; byReason: { protocol: string; reason: string; count: number }[] };
  recent: { queryId: string; study: string; protocol: string; reason: string; message: string | null; finishedAt: string | null }[];
  eventStreams: number;
}

interface StatusView {
  ledgerSize: number;
  onlineWindowSeconds: number;
  studies: { name: string; participants: number; online: number; running: number; failedLastHour: number; succeededLastHour: number }[];
}

export function HealthPage({ api, onAuthError }: PageProps) {
  const health = useLoad((signal) => api.get<HealthView>('/v1/status/health', signal), [api], onAuthError, 5_000);
  const status = useLoad((signal) => api.get<StatusView>('/v1/status', signal), [api], onAuthError, 5_000);
  const h = health.data;
  return (
    <section aria-labelledby="health-title">
      <h1 id="health-title">Health</h1>
      {health.error && <p role="alert" class="error">{health.error}</p>}
      {h && (
        <div class="cards">
          <section class="card" aria-labelledby="deps-title">
            <h2 id="deps-title">Dependencies</h2>
            <dl>
              <dt>Database</dt>
              <dd>
                <span class={`state ${h.database === 'up' ? 'online' : 'failed'}`}>{h.database}</span>
              </dd>
              <dt>Redis</dt>
              <dd>
                <span class={`state ${h.redis === 'up' ? 'online' : 'failed'}`}>{h.redis}</span> ({h.connections.filter((c) => c.state === 'ready').length} of {h.connections.length} connections ready)
              </dd>
            </dl>
          </section>
          <section class="card" aria-labelledby="queues-title">
            <h2 id="queues-title">Queues</h2>
            {h.queues ? (
              <dl>
                <dt>Participant tasks</dt>
                <dd>{Object.entries(h.queues.tasks).map(([state, n]) => `${n} ${state}`).join(', ')}</dd>
                <dt>Aggregation jobs</dt>
                <dd>{Object.entries(h.queues.aggregation).map(([state, n]) => `${n} ${state}`).join(', ')}</dd>
                <dt>Live query streams</dt>
                <dd>{h.eventStreams} open</dd>
              </dl>
            ) : (
              <p>Redis does not answer: queue depths are unknown until it does.</p>
            )}
          </section>
          {status.data && (
            <section class="card" aria-labelledby="ledger-size-title">
              <h2 id="ledger-size-title">Ledger</h2>
              <p>{status.data.ledgerSize} entries</p>
            </section>
          )}
        </div>
      )}
      {status.data && (
        <table>
          <caption>Studies</caption>
          <thead>
            <tr>
              <th scope="col">Study</th>
              <th scope="col">Online</th>
              <th scope="col">Running</th>
              <th scope="col">Failed, last hour</th>
              <th scope="col">Succeeded, last hour</th>
            </tr>
          </thead>
          <tbody>
            {status.data.studies.map((s) => (
              <tr key={s.name}>
                <th scope="row">{s.name}</th>
                <td>
                  {s.online} of {s.participants}
                </td>
                <td>{s.running}</td>
                <td>{s.failedLastHour}</td>
                <td>{s.succeededLastHour}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {h && (
        <>
          <table>
            <caption>Failures in the last {Math.round(h.failures.windowSeconds / 60)} minutes, by reason</caption>
            <thead>
              <tr>
                <th scope="col">Reason</th>
                <th scope="col">Protocol</th>
                <th scope="col">Queries</th>
              </tr>
            </thead>
            <tbody>
              {h.failures.byReason.length === 0 && (
                <tr>
                  <td colSpan={3}>none</td>
                </tr>
              )}
              {h.failures.byReason.map((f) => (
                <tr key={`${f.reason}-${f.protocol}`}>
                  <th scope="row">{f.reason}</th>
                  <td>{f.protocol}</td>
                  <td>{f.count}</td>
                </tr>
              ))}
            </tbody>
          </table>
          {h.recent.length > 0 && (
            <table>
              <caption>Recent failures</caption>
              <thead>
                <tr>
                  <th scope="col">Query</th>
                  <th scope="col">Study</th>
                  <th scope="col">Reason</th>
                  <th scope="col">Finished</th>
                </tr>
              </thead>
              <tbody>
                {h.recent.map((f) => (
                  <tr key={f.queryId}>
                    <th scope="row">{f.queryId}</th>
                    <td>{f.study}</td>
                    <td>
                      {f.reason}: {f.message ?? 'no reason recorded'}
                    </td>
                    <td>{f.finishedAt ?? '—'}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </>
      )}
    </section>
  );
}
