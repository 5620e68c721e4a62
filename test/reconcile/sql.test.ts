import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { SESSIONS_DUE_CHANNEL } from '../../src/queue/sql.ts';
import { enqueueListedSessions } from '../../src/queue/enqueue-listed.ts';
import { EXPIRED_ERROR } from '../../src/queue/expire.ts';
import type { FoundSession } from '../../src/reconcile/enqueue-found.ts';
import { guardRetention } from '../../src/reconcile/retention.ts';
import { addUnusableRows, completeSweep, readSweepState, recordSweepError, saveSweepProgress, startSweepWindow } from '../../src/reconcile/state.ts';
import { retentionExpiresAt } from '../../src/stream/retention.ts';
import { useTestDatabase } from '../helpers/db.ts';
import { DAY_MS, HOUR_MS } from '../../src/time.ts';
import { daysFromNow, insertSessionRows } from '../helpers/session-rows.ts';

/** A listed session; its retention is end + 90 days when the end is given, else `estimate`. */
const found = (callSessionId: string, sessionEndedAt: Date | null, estimate: Date | null = null, callId = 'b'): FoundSession => ({
  callType: 'default',
  callId,
  callSessionId,
  sessionEndedAt,
  retentionExpiresAt: sessionEndedAt ? retentionExpiresAt(sessionEndedAt) : estimate,
  retentionBasis: sessionEndedAt ? 'ended' : estimate ? 'started' : null,
});

describe('reconcile SQL', () => {
  const test = useTestDatabase();
  const db = () => test.current.database.pool;

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

  it('records a window, its page figures, its position and the covered range, and keeps the all-time unusable count', async () => {
    const name = 'progress-test';
    const from1 = new Date('2026-02-01T00:00:00Z');
    const until1 = new Date('2026-02-10T00:00:00Z');
    await startSweepWindow(db(), { from: from1, until: until1 }, name);
    const started = await readSweepState(db(), name);
    expect(started).toMatchObject({
      sweepFrom: from1,
      sweepUntil: until1,
      cursor: null,
      sweepPosition: null,
      coveredFrom: null,
      sweepSeen: 0,
      sweepEnqueued: 0,
      sweepUnusable: 0,
      unusableTotal: 0,
    });
    expect(started?.sweepStartedAt).toBeInstanceOf(Date);

    await saveSweepProgress(
      db(),
      { cursor: 'c1', sweepUntil: until1, watermark: from1, tally: { seen: 5, enqueued: 4, unusable: 1, position: new Date('2026-02-03T00:00:00Z') } },
      name,
    );
    // A page whose rows carry no end leaves the position where it was.
    await saveSweepProgress(db(), { cursor: 'c2', sweepUntil: until1, watermark: from1, tally: { seen: 3, enqueued: 3, unusable: 0, position: null } }, name);
    expect(await readSweepState(db(), name)).toMatchObject({
      cursor: 'c2',
      sweepPosition: new Date('2026-02-03T00:00:00Z'),
      sweepSeen: 8,
      sweepEnqueued: 7,
      sweepUnusable: 1,
      unusableTotal: 1,
    });

    await completeSweep(db(), until1, name, { seen: 2, enqueued: 0, unusable: 2, position: new Date('2026-02-09T00:00:00Z') });
    const done = await readSweepState(db(), name);
    expect(done).toMatchObject({
      watermark: until1,
      cursor: null,
      sweepPosition: null,
      sweepFrom: from1,
      coveredFrom: from1,
      sweepSeen: 10,
      sweepEnqueued: 7,
      sweepUnusable: 3,
      unusableTotal: 3,
    });
    expect(done!.lastSweepAt!.getTime()).toBeGreaterThanOrEqual(done!.sweepStartedAt!.getTime());

    // A backfill's unusable rows count in the total only.
    await addUnusableRows(db(), 4, name);
    await addUnusableRows(db(), 0, name);
    expect(await readSweepState(db(), name)).toMatchObject({ sweepUnusable: 3, unusableTotal: 7, watermark: until1 });

    // The next window starts from zero but the covered range and the total carry on.
    const from2 = new Date('2026-02-09T23:00:00Z');
    await startSweepWindow(db(), { from: from2, until: new Date('2026-02-11T00:00:00Z') }, name);
    expect(await readSweepState(db(), name)).toMatchObject({
      sweepFrom: from2,
      sweepSeen: 0,
      sweepEnqueued: 0,
      sweepUnusable: 0,
      unusableTotal: 7,
      coveredFrom: from1,
    });
    await completeSweep(db(), new Date('2026-02-11T00:00:00Z'), name, { seen: 1, enqueued: 1, unusable: 0, position: null });
    expect(await readSweepState(db(), name)).toMatchObject({ coveredFrom: from1, sweepFrom: from2, sweepSeen: 1, watermark: new Date('2026-02-11T00:00:00Z') });
  });

  it('gives a known session without an end the end call_stats lists, and changes nothing else of it', async () => {
    const pool = test.current.database.pool;
    await pool.query('delete from call_sessions');
    const reportTime = new Date(Date.now() - HOUR_MS);
    await insertSessionRows(pool, [
      // From a stats_report_ready webhook: no end, retention from the report's time; being archived.
      { call_session_id: 'from-webhook', status: 'running', attempts: 2, retention_expires_at: retentionExpiresAt(reportTime) },
      { call_session_id: 'end-known', status: 'pending', retention_expires_at: daysFromNow(80) },
      // From `backfill --session` of a session call_stats did not list yet.
      { call_session_id: 'no-retention', status: 'pending', retention_expires_at: null },
      { call_session_id: 'estimated', status: 'retrying', retention_expires_at: daysFromNow(85) },
    ]);
    await pool.query(
      `update call_sessions set lease_owner = 'worker-a', lease_expires_at = now() + interval '30 seconds', cursor = 'page-2',
              next_attempt_at = now() + interval '1 day' where call_session_id = 'from-webhook'`,
    );
    const knownEnd = new Date(Date.now() - 10 * DAY_MS);
    await pool.query(`update call_sessions set session_ended_at = $1, retention_expires_at = $2 where call_session_id = 'end-known'`, [
      knownEnd,
      retentionExpiresAt(knownEnd),
    ]);
    const before = (await pool.query('select * from call_sessions order by call_session_id')).rows;

    const streamEnd = new Date(reportTime.getTime() - 120_000);
    const started = new Date(Date.now() - 20 * DAY_MS);
    const result = await enqueueListedSessions(db(), [
      found('from-webhook', streamEnd),
      found('end-known', new Date(knownEnd.getTime() - DAY_MS)),
      found('no-retention', null, retentionExpiresAt(started)),
      found('estimated', null, retentionExpiresAt(started)),
    ]);
    expect(result.inserted).toEqual([]);
    expect(result.corrected.sort()).toEqual(['from-webhook', 'no-retention']);

    const after = (await pool.query('select * from call_sessions order by call_session_id')).rows;
    const byId = (rows: Record<string, unknown>[], id: string) => rows.find((r) => r.call_session_id === id)!;
    const unchanged = ['status', 'attempts', 'lease_owner', 'lease_expires_at', 'cursor', 'next_attempt_at', 'last_error', 'archived_at'];
    for (const id of ['from-webhook', 'no-retention']) {
      for (const column of unchanged) expect(byId(after, id)[column], `${id}.${column}`).toEqual(byId(before, id)[column]);
    }
    expect(byId(after, 'from-webhook')).toMatchObject({ session_ended_at: streamEnd, retention_expires_at: retentionExpiresAt(streamEnd) });
    expect(byId(after, 'no-retention')).toMatchObject({ session_ended_at: null, retention_expires_at: retentionExpiresAt(started) });
    // A known end is never replaced, and an estimate never replaces another.
    expect(byId(after, 'end-known')).toEqual(byId(before, 'end-known'));
    expect(byId(after, 'estimated')).toEqual(byId(before, 'estimated'));
  });

  it('enqueues only unknown sessions, due now, with retention 90 days after the end, and notifies', async () => {
    await test.current.database.pool.query('delete from call_sessions');
    await insertSessionRows(test.current.database.pool, [{ call_session_id: 'known-complete', status: 'complete', call_type: 'default', call_id: 'a' }]);
    const listener = new pg.Client(test.current.url);
    await listener.connect();
    const notified: string[] = [];
    listener.on('notification', (n) => notified.push(n.payload ?? ''));
    await listener.query(`listen ${SESSIONS_DUE_CHANNEL}`);
    try {
      const ended = new Date('2026-03-01T12:00:00Z');
      const ids = await enqueueListedSessions(db(), [
        found('known-complete', null, null, 'a'),
        found('new-1', ended),
        { ...found('new-2', null), callType: 'livestream', callId: 'c' },
        found('new-1', ended),
      ]);
      expect(ids.inserted.sort()).toEqual(['new-1', 'new-2']);
      expect(ids.corrected).toEqual([]);
      const { rows } = await test.current.database.pool.query(
        `select call_session_id, call_cid, status, session_ended_at, retention_expires_at, next_attempt_at <= now() as due
           from call_sessions order by call_session_id`,
      );
      expect(rows).toEqual([
        { call_session_id: 'known-complete', call_cid: 'default:a', status: 'complete', session_ended_at: null, retention_expires_at: null, due: true },
        {
          call_session_id: 'new-1',
          call_cid: 'default:b',
          status: 'pending',
          session_ended_at: ended,
          retention_expires_at: new Date(ended.getTime() + 90 * DAY_MS),
          due: true,
        },
        { call_session_id: 'new-2', call_cid: 'livestream:c', status: 'pending', session_ended_at: null, retention_expires_at: null, due: true },
      ]);
      await expect.poll(() => notified.sort()).toEqual(['new-1', 'new-2']);

      expect(await enqueueListedSessions(db(), [found('new-1', ended)])).toEqual({ inserted: [], corrected: [] });
      expect(await enqueueListedSessions(db(), [])).toEqual({ inserted: [], corrected: [] });
    } finally {
      await listener.end();
    }
  });

  it('marks waiting and dead sessions past retention expired, leaves running and complete ones, counts at risk', async () => {
    const pool = test.current.database.pool;
    await pool.query('delete from call_sessions');
    await insertSessionRows(pool, [
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
