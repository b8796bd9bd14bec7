import { useState } from 'preact/hooks';
import { ago } from './api';
import { useLoad, type PageProps } from './hooks';

interface StudySummary {
  name: string;
  minParticipants: number;
  participants: number;
  createdAt: string;
}

interface Budget {
  epsilon: number;
  delta: number;
}

interface StudyView {
  id: string;
  name: string;
  minParticipants: number;
  participants: number;
  schema: {
    fields?: { name: string; type: string; min?: number; max?: number; values?: string[] }[];
    privacy?: { minGroupSize?: number; dp?: { mechanism: string; epsilon: number; delta?: number } };
  };
  privacy?: { dp: unknown; budget: Budget | null; spent: Budget & { queries: number }; remaining: Budget | null };
}

interface ParticipantRow {
  id: string;
  name: string;
  status: 'active' | 'removed';
  enrolledAt: string;
  lastSeen: string | null;
  online: boolean;
  signingKeyFingerprint: string;
  encryptionKeyFingerprint: string;
  heartbeat: { version: string; queue: { waiting: number; active: number } | null; lastTask: { queryId: string; round: number; outcome: string } | null } | null;
}

/** The studies, or one study: its settings, its privacy budget, and its participants with who is online. */
export function StudiesPage(props: PageProps & { study?: string }) {
  return props.study ? <StudyDetail {...props} name={props.study} /> : <StudyList {...props} />;
}

function StudyList({ api, onAuthError }: PageProps) {
  const { data, error } = useLoad((signal) => api.get<StudySummary[]>('/v1/studies', signal), [api], onAuthError, 10_000);
  return (
    <section aria-labelledby="studies-title">
      <h1 id="studies-title">Studies</h1>
      {error && <p role="alert" class="error">{error}</p>}
      {data && data.length === 0 && <p>No study yet: an admin creates one with `confide study create`.</p>}
      {data && data.length > 0 && (
        <table>
          <thead>
            <tr>
              <th scope="col">Study</th>
              <th scope="col">Participants</th>
              <th scope="col">Minimum per query</th>
              <th scope="col">Created</th>
            </tr>
          </thead>
          <tbody>
            {data.map((s) => (
              <tr key={s.name}>
                <th scope="row">
                  <a href={`#/studies/${encodeURIComponent(s.name)}`}>{s.name}</a>
                </th>
                <td>{s.participants}</td>
                <td>{s.minParticipants}</td>
                <td>{s.createdAt.replace('T', ' ').slice(0, 19)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

const amount = (n: number): string => (Number.isInteger(n) ? String(n) : n.toPrecision(6).replace(/0+$/, '').replace(/\.$/, ''));

function StudyDetail({ api, role, onAuthError, name }: PageProps & { name: string }) {
  const path = `/v1/studies/${encodeURIComponent(name)}`;
  const study = useLoad((signal) => api.get<StudyView>(path, signal), [api, path], onAuthError, 15_000);
  const people = useLoad((signal) => api.get<{ onlineWindowSeconds: number; participants: ParticipantRow[] }>(`${path}/participants`, signal), [api, path], onAuthError, 3_000);
  const s = study.data;
  const online = people.data?.participants.filter((p) => p.online).length ?? 0;
  const active = people.data?.participants.filter((p) => p.status === 'active').length ?? 0;
  return (
    <section aria-labelledby="study-title">
      <p>
        <a href="#/studies">All studies</a>
      </p>
      <h1 id="study-title">Study {name}</h1>
      {study.error && <p role="alert" class="error">{study.error}</p>}
      {s && (
        <div class="cards">
          <section class="card" aria-labelledby="settings-title">
            <h2 id="settings-title">Settings</h2>
            <dl>
              <dt>Minimum participants per query</dt>
              <dd>{s.minParticipants}</dd>
              <dt>Minimum group size</dt>
              <dd>{s.schema.privacy?.minGroupSize ?? 'the default'}</dd>
              <dt>Differential privacy</dt>
              <dd>{s.schema.privacy?.dp ? `${s.schema.privacy.dp.mechanism}, ε ${amount(s.schema.privacy.dp.epsilon)} per query${s.schema.privacy.dp.delta ? `, δ ${amount(s.schema.privacy.dp.delta)}` : ''}` : 'off'}</dd>
              <dt>Fields</dt>
              <dd>{(s.schema.fields ?? []).map((f) => `${f.name} (${f.type}${f.min !== undefined ? ` ${f.min}–${f.max}` : ''})`).join(', ') || 'none'}</dd>
            </dl>
          </section>
          <section class="card" aria-labelledby="budget-title">
            <h2 id="budget-title">Privacy budget</h2>
            {s.privacy?.budget ? (
              <dl>
                <dt>Spent</dt>
                <dd>
                  ε {amount(s.privacy.spent.epsilon)}, δ {amount(s.privacy.spent.delta)} by {s.privacy.spent.queries} {s.privacy.spent.queries === 1 ? 'query' : 'queries'}
                </dd>
                <dt>Left</dt>
                <dd data-testid="budget-left">
                  ε {amount(s.privacy.remaining!.epsilon)} of {amount(s.privacy.budget.epsilon)}, δ {amount(s.privacy.remaining!.delta)} of {amount(s.privacy.budget.delta)}
                </dd>
              </dl>
            ) : (
              <p>No differential privacy on this study: no budget to spend.</p>
            )}
          </section>
        </div>
      )}
      <h2 id="participants-title">
        Participants: {online} of {active} online
      </h2>
      {people.error && <p role="alert" class="error">{people.error}</p>}
      {people.data && (
        <>
          <p class="hint">Online: heard from (a heartbeat every 15 s, or a task) in the last {people.data.onlineWindowSeconds} s, and not stopped since.</p>
          <table aria-labelledby="participants-title">
            <thead>
              <tr>
                <th scope="col">Participant</th>
                <th scope="col">State</th>
                <th scope="col">Last seen</th>
                <th scope="col">Signing key fingerprint</th>
                <th scope="col">Worker</th>
              </tr>
            </thead>
            <tbody>
              {people.data.participants.map((p) => (
                <tr key={p.id} data-participant={p.name}>
                  <th scope="row">
                    {p.name} <span class="id">{p.id}</span>
                  </th>
                  <td>
                    <span class={`state ${p.status === 'removed' ? 'removed' : p.online ? 'online' : 'offline'}`}>{p.status === 'removed' ? 'removed' : p.online ? 'online' : 'offline'}</span>
                  </td>
                  <td title={p.lastSeen ?? undefined}>{ago(p.lastSeen)}</td>
                  <td>
                    <code>{p.signingKeyFingerprint}</code>
                  </td>
                  <td>{p.heartbeat ? `v${p.heartbeat.version}${p.heartbeat.queue ? `, ${p.heartbeat.queue.waiting} waiting` : ''}${p.heartbeat.lastTask ? `, last task ${p.heartbeat.lastTask.outcome}` : ''}` : '—'}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}
      {role === 'admin' && <Invite {...{ api, onAuthError, study: name }} />}
    </section>
  );
}

/** The admin's one action here: an invitation for a named participant (what `confide study invite` does). */
function Invite({ api, onAuthError, study }: Pick<PageProps, 'api' | 'onAuthError'> & { study: string }) {
  const [participant, setParticipant] = useState('');
  const [result, setResult] = useState<{ token: string; expiresAt: string } | null>(null);
  const [error, setError] = useState<string | null>(null);
  const submit = async (e: Event): Promise<void> => {
    e.preventDefault();
    setError(null);
    try {
      setResult(await api.post<{ token: string; expiresAt: string }>(`/v1/studies/${encodeURIComponent(study)}/invitations`, { participant }));
    } catch (err) {
      setError((err as Error).message);
      onAuthError(err as Error);
    }
  };
  return (
    <section class="card" aria-labelledby="invite-title">
      <h2 id="invite-title">Invite a participant</h2>
      <form onSubmit={(e) => void submit(e)}>
        <label for="invite-name">Participant name</label>
        <input id="invite-name" required value={participant} onInput={(e) => setParticipant((e.target as HTMLInputElement).value)} />
        <button type="submit">Create invitation</button>
      </form>
      {error && <p role="alert" class="error">{error}</p>}
      {result && (
        <p role="status">
          Invitation for {participant}, valid until {result.expiresAt}. Hand it over once, privately: <code class="secret">{result.token}</code>
        </p>
      )}
    </section>
  );
}
