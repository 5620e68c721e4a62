import { readFile } from 'node:fs/promises';
import { beforeAll, describe, expect, it } from 'vitest';
import { formatStatus } from '../../src/commands/status.ts';
import { ADVISORY_LOCK_KEYS } from '../../src/db/advisory-lock.ts';
import { setQueueGauges } from '../../src/health/gauge-refresher.ts';
import { readStatusReport } from '../../src/health/status-report.ts';
import { createMetrics } from '../../src/metrics.ts';
import { readRollupBacklog, sweepPendingRollups } from '../../src/rollup/refresh.ts';
import { insertEntries, type WireEntry } from '../helpers/attendance-data.ts';
import { useTestDatabase } from '../helpers/db.ts';
import { databaseNow, insertSessionRows } from '../helpers/session-rows.ts';

const entry = (user: string, serial: string, from: string, to: string): WireEntry => ({
  user_id: user,
  user_session_id: serial,
  publisher_type: 'webrtc',
  roles: [],
  joined_at: from,
  left_at: to,
  duration_in_seconds: (Date.parse(to) - Date.parse(from)) / 1000,
});

describe('the rollup sweep', () => {
  const db = useTestDatabase();
  const pool = () => db.current.database.pool;

  beforeAll(async () => {
    await insertSessionRows(pool(), [
      { call_session_id: 'done', status: 'complete' },
      { call_session_id: 'lapsed', status: 'running', lease_owner: 'gone', lease_expires_at: databaseNow(-60) },
      { call_session_id: 'archiving', status: 'running', lease_owner: 'w1', lease_expires_at: databaseNow(60) },
      { call_session_id: 'pruned', status: 'complete' },
    ]);
    for (const id of ['done', 'lapsed', 'archiving', 'pruned']) {
      await insertEntries(pool(), { call_session_id: id, call_type: 'default', call_id: `call-${id}` }, [
        entry('ann', `${id}-1`, '2026-03-02T10:00:00Z', '2026-03-02T10:30:00Z'),
        entry('bob', `${id}-2`, '2026-03-02T10:10:00Z', '2026-03-02T10:20:00Z'),
      ]);
    }
  });

  it('refreshes every marked session no live lease holds, in batches, and leaves the one being archived until its run ends', async () => {
    expect(await readRollupBacklog(pool())).toMatchObject({ pending: 4, waiting: 3 });
    const first = await sweepPendingRollups(pool(), { batch: 2 });
    expect(first).toEqual({ sessions: 3, batches: 2, interrupted: false });
    const left = await pool().query('select call_session_id from rollup_pending');
    expect(left.rows).toEqual([{ call_session_id: 'archiving' }]);
    expect(await readRollupBacklog(pool())).toEqual({ pending: 1, waiting: 0, oldestWaitingSeconds: null });
    const rolled = await pool().query('select call_session_id, participants, entries, attended_seconds::float8 as s from session_rollup order by 1');
    expect(rolled.rows).toEqual([
      { call_session_id: 'done', participants: 2, entries: 2, s: 2400 },
      { call_session_id: 'lapsed', participants: 2, entries: 2, s: 2400 },
      { call_session_id: 'pruned', participants: 2, entries: 2, s: 2400 },
    ]);

    // Retention takes a session's rows: it is marked, and the next sweep takes it out of the reports.
    await pool().query(`delete from participant_sessions where call_session_id = 'pruned'`);
    const month = async () => (await pool().query(`select user_id, sessions from monthly_user_attendance order by user_id`)).rows;
    expect(await month()).toEqual([
      { user_id: 'ann', sessions: 3 },
      { user_id: 'bob', sessions: 3 },
    ]);
    expect(await sweepPendingRollups(pool())).toEqual({ sessions: 1, batches: 1, interrupted: false });
    expect(await month()).toEqual([
      { user_id: 'ann', sessions: 2 },
      { user_id: 'bob', sessions: 2 },
    ]);
    expect(await sweepPendingRollups(pool())).toEqual({ sessions: 0, batches: 0, interrupted: false });
    const aborted = new AbortController();
    aborted.abort();
    expect(await sweepPendingRollups(pool(), { signal: aborted.signal })).toEqual({ sessions: 0, batches: 0, interrupted: true });
  });

  it('shows a waiting backlog in status and /metrics', async () => {
    await pool().query(`update rollup_pending set marked_at = now() - interval '2 hours'`);
    await pool().query(`update call_sessions set lease_expires_at = now() - interval '1 second' where call_session_id = 'archiving'`);
    const report = await readStatusReport(db.current.database, 0);
    expect(report.rollups.pending).toBe(1);
    expect(report.rollups.waiting).toBe(1);
    expect(report.rollups.oldestWaitingSeconds).toBeGreaterThan(7_100);
    expect(formatStatus(report)).toMatch(/^rollups behind their rows: 1 sessions \(0 being archived, 1 waiting for the rollup sweep, oldest 2\.0 h\)$/m);

    const metrics = createMetrics({ defaultMetrics: false });
    setQueueGauges(metrics, report);
    const text = await metrics.registry.metrics();
    expect(text).toMatch(/^attendance_rollup_pending_sessions 1$/m);
    expect(text).toMatch(/^attendance_rollup_waiting_sessions 1$/m);
    const oldest = Number(/^attendance_rollup_oldest_waiting_seconds (\S+)$/m.exec(text)?.[1]);
    expect(oldest).toBeGreaterThan(7_100);
  });

  it('takes the same lock the migration’s refresh takes', async () => {
    const migration = await readFile(new URL('../../migrations/0006_attendance_rollups.sql', import.meta.url), 'utf8');
    expect(migration).toContain(`pg_advisory_xact_lock(${ADVISORY_LOCK_KEYS.rollup})`);
    expect(new Set(Object.values(ADVISORY_LOCK_KEYS)).size).toBe(Object.keys(ADVISORY_LOCK_KEYS).length);
  });
});
