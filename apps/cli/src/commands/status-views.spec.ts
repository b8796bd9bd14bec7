import type { ParticipantStatus } from '../../../participant/src/status';
import { statusLines, type StatusView } from './admin-status';
import { participantStatusLines } from './participant-status';

describe('admin status, for people', () => {
  const view: StatusView = {
    onlineWindowSeconds: 45,
    windowSeconds: 3600,
    ledgerSize: 42,
    studies: [
      { name: 'salaries', participants: 3, online: 2, running: 1, failedLastHour: 1, succeededLastHour: 12 },
      { name: 'a-much-longer-study-name', participants: 10, online: 10, running: 0, failedLastHour: 0, succeededLastHour: 0 },
    ],
  };

  it('is a table with one row per study, counts right-aligned under their headings, then the ledger size and what the columns mean', () => {
    const lines = statusLines(view).split('\n');
    expect(lines[0]).toMatch(/^STUDY\s+PARTICIPANTS {2}ONLINE {2}RUNNING {2}FAILED \(1 h\) {2}SUCCEEDED \(1 h\)$/);
    expect(lines[1]).toMatch(/^salaries\s+3\s+2\s+1\s+1\s+12$/);
    expect(lines[2]).toMatch(/^a-much-longer-study-name\s+10\s+10\s+0\s+0\s+0$/);
    // Every row is as wide as the header: the columns line up.
    expect(new Set(lines.slice(0, 3).map((l) => l.length)).size).toBe(1);
    expect(lines[3]).toBe('ledger: 42 entries');
    expect(lines[4]).toBe('online: heard from in the last 45 s (heartbeats) and not stopped since; failed and succeeded: queries that finished in the last 1 h');
  });

  it('says when there is no study yet, and still gives the ledger size', () => {
    expect(statusLines({ ...view, ledgerSize: 1, studies: [] }).split('\n').slice(0, 2)).toEqual(['no studies yet', 'ledger: 1 entry']);
  });
});

describe('participant status, for people', () => {
  const status: ParticipantStatus = {
    participant: { name: 'site-1', id: 'p1', study: 'salaries', coordinatorUrl: 'http://127.0.0.1:8080' },
    queue: { reachable: true, waiting: 0, active: 0, delayed: 0, failed: 0 },
    tasks: [
      { time: '2026-12-07T18:00:02.000Z', queryId: 'q2', round: 1, task: 'shamir.round1', outcome: 'refused', reason: 'below the minimum group size', statistics: ['mean(salary)'], records: null, used: null },
      { time: '2026-12-07T18:00:01.000Z', queryId: 'q1', round: 1, task: 'shamir.round1', outcome: 'answered', reason: null, statistics: ['mean(salary)', 'count(age)'], records: 40, used: 31 },
    ],
    receipts: { contributions: 3, stored: 2, withoutReceipt: 1, verifiedTreeSize: null },
  };

  it('names the participant, its queue, its tasks newest first with records read and used, and its receipts', () => {
    expect(participantStatusLines(status).split('\n')).toEqual([
      'participant site-1 (p1) in study salaries, coordinator http://127.0.0.1:8080',
      'task queue: 0 waiting, 0 active, 0 delayed, 0 failed',
      'last 2 tasks, newest first:',
      '  2026-12-07T18:00:02.000Z  q2 round 1  mean(salary)  REFUSED: below the minimum group size',
      '  2026-12-07T18:00:01.000Z  q1 round 1  mean(salary), count(age)  answered, 40 records read, 31 used',
      "receipts: 3 contributions, 2 with a receipt stored, 1 without ('confide participant receipts' fetches them)",
    ]);
  });

  it('asks whether the worker runs when tasks wait and none is active', () => {
    expect(participantStatusLines({ ...status, queue: { reachable: true, waiting: 2, active: 0, delayed: 0, failed: 1 } })).toContain(
      'task queue: 2 waiting, 0 active, 0 delayed, 1 failed (tasks wait and none is active: is the worker running?)',
    );
  });

  it('says in one line that Redis is unreachable, and still shows the rest', () => {
    const lines = participantStatusLines({ ...status, tasks: [], receipts: { contributions: 0, stored: 0, withoutReceipt: 0, verifiedTreeSize: 7 }, queue: { reachable: false, url: 'redis://127.0.0.1:1', reason: 'connect ECONNREFUSED 127.0.0.1:1' } }).split('\n');
    expect(lines).toEqual([
      'participant site-1 (p1) in study salaries, coordinator http://127.0.0.1:8080',
      'task queue: Redis unreachable at redis://127.0.0.1:1: connect ECONNREFUSED 127.0.0.1:1',
      'last 0 tasks',
      'receipts: 0 contributions, 0 with a receipt stored, 0 without; last verified against a checkpoint of 7 entries',
    ]);
  });
});
