import { KEEP_ALIVE_MS, POLL_MS, queryStream, type QueryStreamEvent } from './query-stream';

interface Activity {
  id: string;
  status: string;
  contributions: number;
}

/** One query whose activity the test changes, counting how often the activity and the views are read. */
function fixture() {
  let activity: Activity[] = [{ id: 'q1', status: 'running', contributions: 0 }];
  const reads = { activity: 0, views: 0 };
  const open = new Set<NodeJS.Timeout>();
  const source = {
    activity: () => {
      reads.activity++;
      return Promise.resolve(activity);
    },
    view: (id: string) => {
      reads.views++;
      const a = activity.find((x) => x.id === id)!;
      return Promise.resolve({ id, status: a.status, answered: a.contributions });
    },
  };
  return { stream: () => queryStream(source, open), open, reads, set: (next: Activity[]) => (activity = next) };
}

type Event = QueryStreamEvent<{ id: string; status: string; answered: number }>;
const comments = (events: Event[]) => events.filter((e) => 'comment' in e);

describe('queryStream (GET /v1/queries/events)', () => {
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  it('sends the views at once, then only when the activity changes, checking every POLL_MS', async () => {
    const f = fixture();
    const got: Event[] = [];
    const sub = f.stream().subscribe((e) => got.push(e));
    await jest.advanceTimersByTimeAsync(0);
    expect(got).toEqual([{ type: 'queries', data: [{ id: 'q1', status: 'running', answered: 0 }] }]);
    await jest.advanceTimersByTimeAsync(3 * POLL_MS);
    // Checked every POLL_MS, views read once: nothing changed.
    expect([got.length, f.reads.activity, f.reads.views]).toEqual([1, 4, 1]);
    f.set([
      { id: 'q2', status: 'running', contributions: 0 },
      { id: 'q1', status: 'running', contributions: 2 },
    ]);
    await jest.advanceTimersByTimeAsync(POLL_MS);
    expect(got).toEqual([
      { type: 'queries', data: [{ id: 'q1', status: 'running', answered: 0 }] },
      {
        type: 'queries',
        data: [
          { id: 'q2', status: 'running', answered: 0 },
          { id: 'q1', status: 'running', answered: 2 },
        ],
      },
    ]);
    sub.unsubscribe();
  });

  it('sends a keep-alive comment every 15 s', async () => {
    const f = fixture();
    const got: Event[] = [];
    const sub = f.stream().subscribe((e) => got.push(e));
    await jest.advanceTimersByTimeAsync(KEEP_ALIVE_MS - POLL_MS);
    expect(comments(got)).toEqual([]);
    await jest.advanceTimersByTimeAsync(POLL_MS);
    expect(comments(got)).toEqual([{ comment: 'keep-alive' }]);
    await jest.advanceTimersByTimeAsync(KEEP_ALIVE_MS);
    expect(comments(got)).toHaveLength(2);
    sub.unsubscribe();
  });

  it('stops both timers when the client leaves, and counts only the streams still open', async () => {
    const f = fixture();
    const before = jest.getTimerCount();
    const a = f.stream().subscribe(() => undefined);
    const b = f.stream().subscribe(() => undefined);
    expect(f.open.size).toBe(2);
    expect(jest.getTimerCount()).toBe(before + 4);
    a.unsubscribe();
    expect(f.open.size).toBe(1);
    b.unsubscribe();
    expect(f.open.size).toBe(0);
    expect(jest.getTimerCount()).toBe(before);
    const reads = f.reads.activity;
    await jest.advanceTimersByTimeAsync(10 * POLL_MS);
    expect(f.reads.activity).toBe(reads);
  });

  it('ends the stream with the error of a read that fails', async () => {
    const open = new Set<NodeJS.Timeout>();
    const errors: unknown[] = [];
    queryStream({ activity: () => Promise.reject(new Error('database is locked')), view: () => Promise.resolve({}) }, open).subscribe({ error: (err) => errors.push(err) });
    await jest.advanceTimersByTimeAsync(0);
    expect(errors).toEqual([new Error('database is locked')]);
    // Erroring tears the stream down like a client leaving.
    expect(open.size).toBe(0);
  });
});
