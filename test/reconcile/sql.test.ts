import { drizzle } from 'drizzle-orm/node-postgres';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import * as schema from '../../src/db/schema.ts';
import { SESSIONS_DUE_CHANNEL } from '../../src/queue/enqueue.ts';
import { enqueueFoundSessions } from '../../src/reconcile/enqueue-found.ts';
import { EXPIRED_ERROR, guardRetention } from '../../src/reconcile/retention.ts';
import { completeSweep, readSweepState, recordSweepError, saveSweepProgress } from '../../src/reconcile/state.ts';
import { useTestDatabase } from '../helpers/db.ts';
import { DAY_MS, daysFromNow, insertSessions } from '../helpers/sessions.ts';

describe('reconcile SQL', () => {
  const test = useTestDatabase();
  const db = () => drizzle(test.current.database.pool, { schema });

  it('stores a sweep in progress, keeps the first watermark, and completes it', async () => {
    const name = 'state-test';
    expect(await readSweepState(db(), name)).toBeNull();
    const start = new Date('2026-01-01T00:00:00Z');
    const until = new Date('2026-01-08T00:00:00Z');
    await saveSweepProgress(db(), { cursor: 'c1', sweepUntil: until, watermark: start }, name);
    // a later page of the same sweep does not move the watermark it started from
    await saveSweepProgress(db(), { cursor: 'c2', sweepUntil: until, watermark: new Date('2026-01-05T00:00:00Z') }, name);
    await recordSweepError(db(), 'Stream answered 503', name);
    expect(await readSweepState(db(), name)).toMatchObject({ watermark: start, sweepUntil: until, cursor: 'c2', lastError: 'Stream answered 503' });

    await completeSweep(db(), until, name);
    const done = await readSweepState(db(), name);
    expect(done).toMatchObject({ watermark: until, sweepUntil: null, cursor: null, lastError: null });
    expect(done?.lastSweepAt).toBeInstanceOf(Date);

    // a window finishing later with an earlier end (another replica's slower clock) never moves it back
    await completeSweep(db(), new Date('2026-01-07T00:00:00Z'), name);
    expect((await readSweepState(db(), name))?.watermark).toEqual(until);
  });

  it('enqueues only unknown sessions, due now, with retention 90 days after the end, and notifies', async () => {
    await insertSessions(test.current.database.pool, [
      { call_session_id: 'known-complete', status: 'complete', call_type: 'default', call_id: 'a' },
    ]);
    const listener = new pg.Client(test.current.url);
    await listener.connect();
    const notified: string[] = [];
    listener.on('notification', (n) => notified.push(n.payload ?? ''));
    await listener.query(`listen ${SESSIONS_DUE_CHANNEL}`);
    try {
      const ended = new Date('2026-03-01T12:00:00Z');
      const ids = await enqueueFoundSessions(db(), [
        { callType: 'default', callId: 'a', callSessionId: 'known-complete', sessionEndedAt: ended },
        { callType: 'default', callId: 'b', callSessionId: 'new-1', sessionEndedAt: ended },
        { callType: 'livestream', callId: 'c', callSessionId: 'new-2', sessionEndedAt: null },
        { callType: 'default', callId: 'b', callSessionId: 'new-1', sessionEndedAt: ended },
      ]);
      expect(ids.sort()).toEqual(['new-1', 'new-2']);
      const { rows } = await test.current.database.pool.query(
        `select call_session_id, call_cid, status, session_ended_at, retention_expires_at, next_attempt_at <= now() as due
           from call_sessions order by call_session_id`,
      );
      expect(rows).toEqual([
        { call_session_id: 'known-complete', call_cid: 'default:a', status: 'complete', session_ended_at: null, retention_expires_at: null, due: true },
        { call_session_id: 'new-1', call_cid: 'default:b', status: 'pending', session_ended_at: ended, retention_expires_at: new Date(ended.getTime() + 90 * DAY_MS), due: true },
        { call_session_id: 'new-2', call_cid: 'livestream:c', status: 'pending', session_ended_at: null, retention_expires_at: null, due: true },
      ]);
      await expect.poll(() => notified.sort()).toEqual(['new-1', 'new-2']);

      expect(await enqueueFoundSessions(db(), [{ callType: 'default', callId: 'b', callSessionId: 'new-1', sessionEndedAt: ended }])).toEqual([]);
      expect(await enqueueFoundSessions(db(), [])).toEqual([]);
    } finally {
      await listener.end();
    }
  });

  it('marks waiting and dead sessions past retention expired, leaves running and complete ones, counts at risk', async () => {
    const pool = test.current.database.pool;
    await pool.query('delete from call_sessions');
    await insertSessions(pool, [
      { call_session_id: 'past-pending', status: 'pending', retention_expires_at: daysFromNow(-1) },
      { call_session_id: 'past-retrying', status: 'retrying', retention_expires_at: daysFromNow(-0.01), last_error: 'HTTP 503' },
      { call_session_id: 'past-dead', status: 'dead', retention_expires_at: daysFromNow(-3) },
      { call_session_id: 'past-running', status: 'running', retention_expires_at: daysFromNow(-1) },
      { call_session_id: 'past-complete', status: 'complete', retention_expires_at: daysFromNow(-1) },
      { call_session_id: 'soon-1', status: 'pending', retention_expires_at: daysFromNow(3) },
      { call_session_id: 'soon-2', status: 'retrying', retention_expires_at: daysFromNow(6) },
      { call_session_id: 'soon-complete', status: 'complete', retention_expires_at: daysFromNow(2) },
      { call_session_id: 'fresh', status: 'pending', retention_expires_at: daysFromNow(60) },
      { call_session_id: 'no-retention', status: 'pending', retention_expires_at: null },
      { call_session_id: 'past-reannounced', status: 'pending', retention_expires_at: daysFromNow(-1) },
    ]);
    // Archived in full while Stream still had it, then announced again by a late report event.
    await pool.query(
      `update call_sessions set archived_at = now() - interval '60 days', total_participant_sessions = 0,
              archived_participant_sessions = 0 where call_session_id = 'past-reannounced'`,
    );
    const report = await guardRetention(db());
    expect([...report.expiredIds].sort()).toEqual(['past-dead', 'past-pending', 'past-retrying']);
    // the running one (its worker decides) is past expiry and still at risk
    expect(report.atRisk).toBe(3);
    expect(report.atRiskIds).toEqual(['past-running', 'soon-1', 'soon-2']);
    const { rows } = await pool.query("select call_session_id, status, last_error from call_sessions where status = 'expired' order by 1");
    expect(rows).toEqual([
      { call_session_id: 'past-dead', status: 'expired', last_error: EXPIRED_ERROR },
      { call_session_id: 'past-pending', status: 'expired', last_error: EXPIRED_ERROR },
      { call_session_id: 'past-retrying', status: 'expired', last_error: `${EXPIRED_ERROR}; last error: HTTP 503` },
    ]);
    expect((await pool.query("select status from call_sessions where call_session_id = 'past-reannounced'")).rows).toEqual([{ status: 'complete' }]);
    const again = await guardRetention(db());
    expect(again.expiredIds).toEqual([]);
  });
});
