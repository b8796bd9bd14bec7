import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { Api, ApiError, type Role } from './api';
import { HealthPage } from './health';
import { KeysPage } from './keys';
import { LedgerPage } from './ledger';
import { QueriesPage } from './queries';
import { StudiesPage } from './studies';

/** Who is logged in: the key lives in this object only, in memory, and is gone on reload or log out. */
interface Session {
  readonly api: Api;
  readonly role: Role;
  readonly keyId: string;
}

const PAGES = [
  { path: 'studies', label: 'Studies' },
  { path: 'queries', label: 'Queries' },
  { path: 'ledger', label: 'Ledger' },
  { path: 'health', label: 'Health' },
  { path: 'keys', label: 'API keys', admin: true },
] as const;

function useHash(): string[] {
  const read = (): string[] => location.hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
  const [parts, setParts] = useState(read);
  useEffect(() => {
    const onChange = (): void => setParts(read());
    addEventListener('hashchange', onChange);
    return () => removeEventListener('hashchange', onChange);
  }, []);
  return parts;
}

function Login({ onLogin, notice }: { onLogin: (s: Session) => void; notice: string | null }) {
  const [key, setKey] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event): Promise<void> => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const api = new Api(key.trim());
      const me = await api.get<{ role: Role; keyId: string }>('/v1/whoami');
      if (me.role !== 'admin' && me.role !== 'auditor') throw new Error(`the console is for admin and auditor keys; this is a ${me.role} key`);
      onLogin({ api, role: me.role, keyId: me.keyId });
    } catch (err) {
      setError(err instanceof ApiError && err.status === 401 ? `Refused: ${err.message.replace(/^401: /, '')}` : (err as Error).message);
    } finally {
      setBusy(false);
    }
  };
  return (
    <main class="login">
      <h1>Confide console</h1>
      <p>Studies, queries, the audit ledger and the service's health, read-only, for admins and auditors.</p>
      {notice && (
        <p role="alert" class="error">
          Logged out: {notice}
        </p>
      )}
      <form onSubmit={(e) => void submit(e)}>
        <label for="api-key">API key</label>
        <input id="api-key" name="api-key" type="password" autocomplete="off" required value={key} onInput={(e) => setKey((e.target as HTMLInputElement).value)} />
        <p class="hint">An admin or auditor key (`confide admin keys create --role auditor`). It stays in this tab's memory only: reload or log out and it is gone.</p>
        <button type="submit" disabled={busy || key.trim() === ''}>
          Log in
        </button>
        {error && (
          <p role="alert" class="error">
            {error}
          </p>
        )}
      </form>
    </main>
  );
}

function App() {
  const [session, setSession] = useState<Session | null>(null);
  const [denied, setDenied] = useState<string | null>(null);
  const route = useHash();
  if (!session) return <Login notice={denied} onLogin={(s) => (setDenied(null), setSession(s))} />;
  const page = PAGES.find((p) => p.path === route[0]) ?? PAGES[0];
  /** A request refused with 401 (the key was revoked meanwhile): back to the login, saying why. */
  const onAuthError = (err: Error): void => {
    if (err instanceof ApiError && err.status === 401) {
      setDenied(err.message);
      setSession(null);
    }
  };
  const props = { api: session.api, role: session.role, onAuthError };
  return (
    <>
      <header>
        <span class="brand">Confide console</span>
        <nav aria-label="Console pages">
          <ul>
            {PAGES.filter((p) => !('admin' in p) || session.role === 'admin').map((p) => (
              <li key={p.path}>
                <a href={`#/${p.path}`} aria-current={p.path === page.path ? 'page' : undefined}>
                  {p.label}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <span class="who">
          {session.role} key {session.keyId === 'bootstrap-admin' ? '(bootstrap admin token)' : session.keyId.slice(0, 8)}
          <button type="button" class="link" onClick={() => setSession(null)}>
            Log out
          </button>
        </span>
      </header>
      <main>
        {page.path === 'studies' && <StudiesPage {...props} study={route[1]} />}
        {page.path === 'queries' && <QueriesPage {...props} />}
        {page.path === 'ledger' && <LedgerPage {...props} query={route[1]} />}
        {page.path === 'health' && <HealthPage {...props} />}
        {page.path === 'keys' && session.role === 'admin' && <KeysPage {...props} />}
      </main>
    </>
  );
}

render(<App />, document.getElementById('app')!);
