import { useState } from 'preact/hooks';
import type { Role } from './api';
import { useLoad, type PageProps } from './hooks';

interface KeyRow {
  id: string;
  role: Role;
  label: string | null;
  createdAt: string;
  revokedAt: string | null;
  identityKeyFingerprint?: string | null;
}

/**
 * API keys, for admins: the list (never a token), a new key (its token shown once), and revocation, as
 * `confide admin keys` does. A revoked key's next request is refused with 401, naming the key and when.
 */
export function KeysPage({ api, onAuthError }: PageProps) {
  const keys = useLoad((signal) => api.get<KeyRow[]>('/v1/api-keys', signal), [api], onAuthError);
  const [role, setRole] = useState<Role>('auditor');
  const [label, setLabel] = useState('');
  const [created, setCreated] = useState<{ id: string; role: Role; token: string } | null>(null);
  const [message, setMessage] = useState<{ error: boolean; text: string } | null>(null);
  const act = async (work: () => Promise<void>): Promise<void> => {
    setMessage(null);
    try {
      await work();
      await keys.reload();
    } catch (err) {
      setMessage({ error: true, text: (err as Error).message });
      onAuthError(err as Error);
    }
  };
  const create = (e: Event): void => {
    e.preventDefault();
    void act(async () => {
      setCreated(await api.post<{ id: string; role: Role; token: string }>('/v1/api-keys', { role, ...(label.trim() ? { label: label.trim() } : {}) }));
      setLabel('');
    });
  };
  const revoke = (k: KeyRow): void => {
    if (!confirm(`Revoke ${k.role} key ${k.label ?? k.id}? Its next request will be refused.`)) return;
    void act(async () => {
      const r = await api.post<KeyRow>(`/v1/api-keys/${k.id}/revoke`, {});
      setMessage({ error: false, text: `Revoked ${r.role} key ${r.label ?? r.id} at ${r.revokedAt}.` });
    });
  };
  return (
    <section aria-labelledby="keys-title">
      <h1 id="keys-title">API keys</h1>
      <section class="card" aria-labelledby="new-key-title">
        <h2 id="new-key-title">Create a key</h2>
        <form onSubmit={create}>
          <label for="key-role">Role</label>
          <select id="key-role" value={role} onChange={(e) => setRole((e.target as HTMLSelectElement).value as Role)}>
            <option value="auditor">auditor</option>
            <option value="researcher">researcher</option>
            <option value="admin">admin</option>
          </select>
          <label for="key-label">Label</label>
          <input id="key-label" value={label} onInput={(e) => setLabel((e.target as HTMLInputElement).value)} />
          <button type="submit">Create key</button>
        </form>
        {created && (
          <p role="status">
            New {created.role} key {created.id}. Its token is shown this once: <code class="secret">{created.token}</code>
          </p>
        )}
      </section>
      {message && (
        <p role={message.error ? 'alert' : 'status'} class={message.error ? 'error' : undefined}>
          {message.text}
        </p>
      )}
      {keys.error && <p role="alert" class="error">{keys.error}</p>}
      {keys.data && (
        <table>
          <thead>
            <tr>
              <th scope="col">Key</th>
              <th scope="col">Role</th>
              <th scope="col">Label</th>
              <th scope="col">Created</th>
              <th scope="col">Revoked</th>
              <th scope="col">
                <span class="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {keys.data.map((k) => (
              <tr key={k.id} data-key={k.id}>
                <th scope="row">
                  <code>{k.id}</code>
                </th>
                <td>{k.role}</td>
                <td>{k.label ?? ''}</td>
                <td>{k.createdAt}</td>
                <td>{k.revokedAt ?? ''}</td>
                <td>
                  {!k.revokedAt && (
                    <button type="button" onClick={() => revoke(k)} aria-label={`Revoke key ${k.label ?? k.id}`}>
                      Revoke
                    </button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
