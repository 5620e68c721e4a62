import { beforeEach, describe, expect, it } from 'vitest';
import { createMetrics } from '../../src/metrics.ts';
import { startReconciler } from '../../src/reconcile/reconciler.ts';
import { EXPIRED_ERROR } from '../../src/queue/expire.ts';
import { ADVISORY_LOCK_KEYS } from '../../src/db/advisory-lock.ts';
import { runSweep, type SweepOptions } from '../../src/reconcile/sweep.ts';
import { useTestDatabase } from '../helpers/db.ts';
import { daysFromNow, insertSessionRows } from '../helpers/session-rows.ts';
import { captureLogs, counterValue, endedSession, startStreamHarness, type StreamHarness } from './harness.ts';
import { DAY_MS, HOUR_MS } from '../../src/time.ts';

const FAST_RETRY = { attempts: 2, baseDelayMs: 1, maxDelayMs: 2 };

describe('reconciliation sweep', () => {
  const test = useTestDatabase();
  const pool = () => test.current.database.pool;

  beforeEach(async () => {
    await pool().query('delete from participant_sessions');
    await pool().query('delete from call_sessions');
    await pool().query('delete from reconcile_state');
  });

  const sweepOptions = (harness: StreamHarness, extra: Partial<SweepOptions> = {}): SweepOptions => ({
    database: test.current.database,
    logger: captureLogs().logger,
    metrics: createMetrics({ defaultMetrics: false }),
    stream: harness.stream,
    lookbackDays: 7,
    retry: FAST_RETRY,
    pageLimit: 5,
    ...extra,
  });

  const storedIds = async () => (await pool().query<{ id: string }>('select call_session_id as id from call_sessions order by 1')).rows.map((r) => r.id);
  const readState = async () =>
    (
      await pool().query(
        `select watermark, sweep_until, cursor, last_sweep_at, last_error, sweep_from, sweep_position, covered_from,
                sweep_started_at, sweep_seen, sweep_enqueued, sweep_unusable, unusable_total
           from reconcile_state where name = $1`,
        ['call_stats'],
      )
    ).rows[0];

  it('enqueues, in one sweep, every session in the lookback that no webhook announced, and nothing else', async () => {
    const recent = Array.from({ length: 12 }, (_, i) => endedSession(`recent-${i}`, 2 + i * 11));
    const old = [endedSession('old-1', 24 * 8), endedSession('old-2', 24 * 30)];
    const harness = await startStreamHarness([...recent, ...old]);
    try {
      // Two of them came by webhook; one of those is already archived and must stay untouched.
      const [first, second] = recent as [(typeof recent)[0], (typeof recent)[0]];
      await insertSessionRows(pool(), [
        { call_session_id: first.callSessionId, call_type: first.callType, call_id: first.callId, status: 'complete' },
        { call_session_id: second.callSessionId, call_type: second.callType, call_id: second.callId, status: 'retrying', attempts: 2 },
      ]);
      const options = sweepOptions(harness);
      const started = Date.now();
      const result = await runSweep(options);
      // The two known ones had no end: the listing gives them theirs (corrected), nothing else.
      expect(result).toEqual({ ran: true, pages: 3, seen: 12, enqueued: 10, unusable: 0, withoutEnd: 0, corrected: 2, expired: 0, atRisk: 0 });
      expect(await storedIds()).toEqual(recent.map((s) => s.callSessionId).sort());

      const { rows } = await pool().query(
        `select call_session_id, call_cid, status, attempts, session_ended_at, retention_expires_at - session_ended_at = interval '90 days' as ninety
           from call_sessions where call_session_id = any($1) order by call_session_id`,
        [recent.slice(2).map((s) => s.callSessionId)],
      );
      expect(rows).toEqual(
        recent
          .slice(2)
          .map((s) => ({
            call_session_id: s.callSessionId,
            call_cid: `${s.callType}:${s.callId}`,
            status: 'pending',
            attempts: 0,
            session_ended_at: s.endedAt,
            ninety: true,
          }))
          .sort((a, b) => a.call_session_id.localeCompare(b.call_session_id)),
      );
      const untouched = await pool().query('select status, attempts, session_ended_at from call_sessions where call_session_id = any($1) order by status', [
        [first.callSessionId, second.callSessionId],
      ]);
      expect(untouched.rows).toEqual([
        { status: 'complete', attempts: 0, session_ended_at: first.endedAt },
        { status: 'retrying', attempts: 2, session_ended_at: second.endedAt },
      ]);

      // The window: lookback 7 days plus the overlap, to the sweep's start; sorted and filtered as Stream allows.
      const filter = harness.calls[0]?.filterConditions as { session_ended_at: { $gte: string; $lte: string } };
      const from = Date.parse(filter.session_ended_at.$gte);
      const until = Date.parse(filter.session_ended_at.$lte);
      expect(until - from).toBe(7 * DAY_MS + HOUR_MS);
      expect(until).toBeGreaterThanOrEqual(started);
      expect(harness.calls[0]?.sort).toEqual([
        { field: 'session_ended_at', direction: 1 },
        { field: 'call_cid', direction: 1 },
      ]);
      expect(harness.calls.map((c) => c.limit)).toEqual([5, 5, 5]);

      const state = await readState();
      expect(state).toMatchObject({ cursor: null, sweep_until: null, last_error: null, watermark: new Date(until) });
      expect(await counterValue(options.metrics.reconcileEnqueued)).toBe(10);
      expect(await counterValue(options.metrics.reconcileSweeps, { outcome: 'done' })).toBe(1);

      // A session that ended before the watermark but that call_stats lists only now is still
      // found: the next sweep starts an overlap before the watermark.
      const late = endedSession('late', 0.5, until);
      harness.sim.addSession(late);
      harness.calls.length = 0;
      const again = await runSweep(options);
      expect(again).toMatchObject({ ran: true, seen: 1, enqueued: 1 });
      expect(await storedIds()).toContain(late.callSessionId);
      const next = harness.calls[0]?.filterConditions as { session_ended_at: { $gte: string } };
      expect(Date.parse(next.session_ended_at.$gte)).toBe(until - HOUR_MS);
    } finally {
      await harness.close();
    }
  });

  it('resumes an interrupted sweep from the stored cursor: nothing skipped, nothing asked for twice', async () => {
    const sessions = Array.from({ length: 23 }, (_, i) => endedSession(`cut-${i}`, 1 + i * 5));
    const harness = await startStreamHarness(sessions);
    try {
      // Stream fails from the third page on, past the retries.
      harness.beforeCallStats = (n) => {
        if (n === 3) harness.sim.setFaults({ serverErrorRate: 1 });
      };
      const logs = captureLogs();
      const options = sweepOptions(harness, { logger: logs.logger });
      const cut = await runSweep(options);
      expect(cut).toMatchObject({ ran: true, pages: 2, seen: 10, enqueued: 10 });
      expect(cut.error).toMatch(/QueryCallSessionStats answered 5\d\d/);
      expect(harness.calls).toHaveLength(2 + FAST_RETRY.attempts);
      expect(await storedIds()).toHaveLength(10);
      const stored = await readState();
      expect(stored.cursor).toEqual(expect.any(String));
      expect(stored.cursor).toBe(harness.calls[2]?.next);
      expect(stored.last_error).toBe(cut.error);
      expect(stored.last_sweep_at).toBeNull();
      expect(await counterValue(options.metrics.reconcileSweeps, { outcome: 'error' })).toBe(1);
      expect(logs.lines().some((l) => l.level === 50 && l.msg.startsWith('sweep failed'))).toBe(true);
      const firstFilter = harness.calls[0]?.filterConditions;

      harness.sim.setFaults(undefined);
      harness.beforeCallStats = () => undefined;
      harness.calls.length = 0;
      const resumed = await runSweep(options);
      expect(resumed).toEqual({ ran: true, pages: 3, seen: 13, enqueued: 13, unusable: 0, withoutEnd: 0, corrected: 0, expired: 0, atRisk: 0 });
      // Same window, from the stored cursor on.
      expect(harness.calls[0]?.next).toBe(stored.cursor);
      expect(harness.calls[0]?.filterConditions).toEqual(firstFilter);
      expect(await storedIds()).toEqual(sessions.map((s) => s.callSessionId).sort());
      const done = await readState();
      expect(done).toMatchObject({ cursor: null, sweep_until: null, last_error: null, watermark: stored.sweep_until });
      // The figures of a resumed sweep are the whole window's, both runs together; its start is the first run's.
      expect(done).toMatchObject({ sweep_seen: 23, sweep_enqueued: 23, sweep_unusable: 0, sweep_position: null, sweep_started_at: stored.sweep_started_at });
      expect(stored).toMatchObject({ sweep_seen: 10, sweep_enqueued: 10, sweep_position: sessions[sessions.length - 10]!.endedAt });
    } finally {
      await harness.close();
    }
  });

  it('starts the window again when Stream refuses the stored cursor', async () => {
    const sessions = Array.from({ length: 7 }, (_, i) => endedSession(`stale-${i}`, 3 + i));
    const harness = await startStreamHarness(sessions);
    try {
      await pool().query(
        "insert into reconcile_state (name, watermark, sweep_until, cursor) values ('call_stats', now() - interval '2 days', now() - interval '1 day', 'not-a-cursor')",
      );
      const result = await runSweep(sweepOptions(harness));
      expect(result).toMatchObject({ ran: true, enqueued: 7 });
      expect(result.error).toBeUndefined();
      expect(harness.calls[0]?.next).toBe('not-a-cursor');
      expect(harness.calls[1]?.next).toBeUndefined();
      expect(await storedIds()).toHaveLength(7);
    } finally {
      await harness.close();
    }
  });

  it('lets one replica sweep at a time: the other skips, and nothing is enqueued twice', async () => {
    const sessions = Array.from({ length: 14 }, (_, i) => endedSession(`pair-${i}`, 1 + i * 3));
    const harness = await startStreamHarness(sessions);
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let entered!: () => void;
    const inside = new Promise<void>((resolve) => (entered = resolve));
    harness.beforeCallStats = async (n) => {
      if (n === 1) {
        entered();
        await gate;
      }
    };
    const metricsA = createMetrics({ defaultMetrics: false });
    const metricsB = createMetrics({ defaultMetrics: false });
    const common = { database: test.current.database, stream: harness.stream, intervalMinutes: 60, lookbackDays: 7, retry: FAST_RETRY, pageLimit: 5 };
    const a = startReconciler({ ...common, logger: captureLogs().logger, metrics: metricsA });
    try {
      // A holds the lock and is paused inside its first request.
      await inside;
      const b = startReconciler({ ...common, logger: captureLogs().logger, metrics: metricsB });
      try {
        const skipped = await b.sweepNow();
        expect(skipped).toEqual({ ran: false, pages: 0, seen: 0, enqueued: 0, unusable: 0, withoutEnd: 0, corrected: 0, expired: 0, atRisk: 0 });
        // B's sweep at start and the one asked for both skipped.
        expect(await counterValue(metricsB.reconcileSweeps, { outcome: 'skipped_locked' })).toBe(2);
        release();
        const afterA = await a.sweepNow();
        expect(afterA).toMatchObject({ ran: true, enqueued: 0 });
        // B can sweep once A is done, and finds nothing left to do.
        expect(await b.sweepNow()).toMatchObject({ ran: true, enqueued: 0 });
      } finally {
        await b.stop();
      }
      expect(await counterValue(metricsA.reconcileEnqueued)).toBe(14);
      expect(await counterValue(metricsB.reconcileEnqueued)).toBe(0);
      expect(await storedIds()).toEqual(sessions.map((s) => s.callSessionId).sort());
      // The lock is free again once both are idle.
      const { rows } = await pool().query<{ held: number }>(
        "select count(*)::int as held from pg_locks where locktype = 'advisory' and objid = $1::bigint % 4294967296 and database = (select oid from pg_database where datname = current_database())",
        [ADVISORY_LOCK_KEYS.reconcile],
      );
      expect(rows[0]?.held).toBe(0);
    } finally {
      release();
      await a.stop();
      await harness.close();
    }
  });

  it('runs the retention guard each sweep: expires what is past retention, warns about what is close', async () => {
    const harness = await startStreamHarness([]);
    try {
      await insertSessionRows(pool(), [
        { call_session_id: 'gone-pending', status: 'pending', retention_expires_at: daysFromNow(-2) },
        { call_session_id: 'gone-dead', status: 'dead', retention_expires_at: daysFromNow(-1), last_error: 'HTTP 401' },
        { call_session_id: 'close-1', status: 'retrying', retention_expires_at: daysFromNow(3) },
        { call_session_id: 'close-2', status: 'pending', retention_expires_at: daysFromNow(5) },
        { call_session_id: 'safe', status: 'complete', retention_expires_at: daysFromNow(1) },
      ]);
      const logs = captureLogs();
      const result = await runSweep(sweepOptions(harness, { logger: logs.logger }));
      expect(result).toEqual({ ran: true, pages: 1, seen: 0, enqueued: 0, unusable: 0, withoutEnd: 0, corrected: 0, expired: 2, atRisk: 2 });
      const { rows } = await pool().query("select call_session_id, last_error from call_sessions where status = 'expired' order by 1");
      expect(rows).toEqual([
        { call_session_id: 'gone-dead', last_error: `${EXPIRED_ERROR}; last error: HTTP 401` },
        { call_session_id: 'gone-pending', last_error: EXPIRED_ERROR },
      ]);
      const lines = logs.lines();
      expect(lines.find((l) => l.msg === 'sessions expired unarchived')).toMatchObject({ level: 50, expired: 2 });
      expect(lines.find((l) => l.msg === 'sessions at risk of expiring unarchived')).toMatchObject({ level: 40, atRisk: 2, first: ['close-1', 'close-2'] });
    } finally {
      await harness.close();
    }
  });

  it('runs the retention guard even when Stream is down', async () => {
    const harness = await startStreamHarness([]);
    harness.sim.setFaults({ serverErrorRate: 1 });
    try {
      await insertSessionRows(pool(), [{ call_session_id: 'gone', status: 'retrying', retention_expires_at: daysFromNow(-1) }]);
      const result = await runSweep(sweepOptions(harness));
      expect(result).toMatchObject({ ran: true, pages: 0, expired: 1 });
      expect(result.error).toEqual(expect.any(String));
      expect((await readState()).last_error).toBe(result.error);
    } finally {
      await harness.close();
    }
  });

  it('stops between pages when stopped, keeping the cursor for the next start', async () => {
    const sessions = Array.from({ length: 12 }, (_, i) => endedSession(`stop-${i}`, 1 + i));
    const harness = await startStreamHarness(sessions);
    let stopping: Promise<void> | undefined;
    const reconciler = startReconciler({
      database: test.current.database,
      logger: captureLogs().logger,
      metrics: createMetrics({ defaultMetrics: false }),
      stream: harness.stream,
      intervalMinutes: 60,
      lookbackDays: 7,
      retry: FAST_RETRY,
      pageLimit: 5,
    });
    harness.beforeCallStats = (n) => {
      if (n === 2) stopping = reconciler.stop();
    };
    try {
      await expect.poll(() => stopping !== undefined).toBe(true);
      await stopping;
      await expect(reconciler.sweepNow()).rejects.toThrow(/stopped/);
      expect(await storedIds()).toHaveLength(5);
      const state = await readState();
      expect(state.cursor).toEqual(expect.any(String));
      expect(state.last_error).toBeNull();
    } finally {
      await harness.close();
    }
  });
});
