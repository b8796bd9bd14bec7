import { Observable } from 'rxjs';

/**
 * How often an open stream checks whether its queries changed: as often as `confide query --wait` polls one query,
 * so the console is no slower to show a result than the CLI (the check is one cheap statement; a second made the
 * console 4× slower than the CLI, docs/BENCHMARKS.md "Console").
 */
export const POLL_MS = 250;
/** How often an open stream sends a comment, so proxies and the browser keep an idle connection open. */
export const KEEP_ALIVE_MS = 15_000;

/** Where a stream reads its queries from: what changes (cheap, every POLL_MS) and each query's full view. */
export interface QueryStreamSource<V> {
  /** The watched queries, newest first, each as something that changes whenever its view does. */
  activity(): Promise<readonly { readonly id: string }[]>;
  view(id: string): Promise<V>;
}

/** What a stream emits, as Nest's `@Sse` writes it: `event: queries` with the views as JSON, or a comment. */
export type QueryStreamEvent<V> = { readonly type: 'queries'; readonly data: V[] } | { readonly comment: string };

/**
 * Live query status (`GET /v1/queries/events`): the views at once, then again whenever the activity read once every
 * {@link POLL_MS} differs from the last one sent, and a `keep-alive` comment every {@link KEEP_ALIVE_MS}. The views
 * are read only when the activity changed. Unsubscribing stops both timers and removes the poll timer from `open`,
 * whose size is thus the streams still polling. A read that fails ends the stream with that error.
 */
export function queryStream<V>(source: QueryStreamSource<V>, open: Set<NodeJS.Timeout>): Observable<QueryStreamEvent<V>> {
  return new Observable<QueryStreamEvent<V>>((subscriber) => {
    let last: string | undefined;
    let checking = false;
    const check = async (): Promise<void> => {
      // A check slower than the period (a busy database) is not overlapped by the next.
      if (checking) return;
      checking = true;
      try {
        const activity = await source.activity();
        const signature = JSON.stringify(activity);
        if (signature === last) return;
        const views = await Promise.all(activity.map((a) => source.view(a.id)));
        if (subscriber.closed) return;
        last = signature;
        subscriber.next({ type: 'queries', data: views });
      } catch (err) {
        subscriber.error(err);
      } finally {
        checking = false;
      }
    };
    void check();
    const poll = setInterval(() => void check(), POLL_MS);
    const keepAlive = setInterval(() => subscriber.next({ comment: 'keep-alive' }), KEEP_ALIVE_MS);
    open.add(poll);
    return () => {
      clearInterval(poll);
      clearInterval(keepAlive);
      open.delete(poll);
    };
  });
}
