import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import type { Api, Role } from './api';

/** What every page gets: the session's API, its role, and where to report a refused key. */
export interface PageProps {
  readonly api: Api;
  readonly role: Role;
  readonly onAuthError: (err: Error) => void;
}

/**
 * Loads `fetcher` now and every `everyMs` (when given), keeping the last good data beside the last error, so a
 * page shows what it had while the coordinator is briefly unreachable. Requests of a page left are aborted.
 */
export function useLoad<T>(fetcher: (signal: AbortSignal) => Promise<T>, deps: unknown[], onAuthError: (err: Error) => void, everyMs?: number) {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [loadedAt, setLoadedAt] = useState<number | null>(null);
  const controller = useRef<AbortController | null>(null);
  const load = useCallback(async () => {
    controller.current?.abort();
    const c = new AbortController();
    controller.current = c;
    try {
      const value = await fetcher(c.signal);
      if (c.signal.aborted) return;
      setData(value);
      setError(null);
      setLoadedAt(Date.now());
    } catch (err) {
      if (c.signal.aborted) return;
      setError((err as Error).message);
      onAuthError(err as Error);
    }
  }, deps); // the caller names what the fetcher depends on
  useEffect(() => {
    void load();
    const timer = everyMs ? setInterval(() => void load(), everyMs) : undefined;
    return () => {
      if (timer) clearInterval(timer);
      controller.current?.abort();
    };
  }, [load, everyMs]);
  return { data, error, loadedAt, reload: load };
}
