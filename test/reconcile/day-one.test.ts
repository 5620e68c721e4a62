import { randomUUID } from 'node:crypto';
import { beforeEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { createMetrics } from '../../src/metrics.ts';
import { claimSessions } from '../../src/queue/claim.ts';
import { enqueueWebhookEvent } from '../../src/queue/enqueue.ts';
import { backfillWindow } from '../../src/reconcile/backfill.ts';
import { runSweep, type SweepOptions } from '../../src/reconcile/sweep.ts';
import { AT_RISK_DAYS } from '../../src/policy/retention.ts';
import { generateDataset } from '../../tools/simulator/generate.ts';
import { retentionExpiresAt } from '../../src/stream/retention.ts';
import { DAY_MS, HOUR_MS } from '../../src/time.ts';
import { parseWebhookEvent, type HandledWebhookEvent } from '../../src/stream/webhook-events.ts';
import { useTestDatabase } from '../helpers/db.ts';
import { sessionEndedBody, statsReportReadyBody } from '../helpers/webhooks.ts';
import { captureLogs, counterValue, endedSession, startStreamHarness, type StreamHarness } from './harness.ts';

// Enough tries to ride out the simulator's seeded 429s; the shared rate limiter does the waiting.
const PATIENT_RETRY = { attempts: 6, baseDelayMs: 1, maxDelayMs: 2 };

describe('day one: the first sweep of a new install', () => {
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
    // The default configuration, not a number picked for the test.
    lookbackDays: loadConfig({ STREAM_API_KEY: 'k', STREAM_API_SECRET: 's' }).reconcile.lookbackDays,
    retry: PATIENT_RETRY,
    pageLimit: 5,
    ...extra,
  });

  it('archives every session Stream still holds, nearest expiry first, through rate limiting, missing and broken rows included', async () => {
    const now = Date.now();
    const sessions = generateDataset({
      seed: 'day-one',
      sizes: Array.from({ length: 40 }, () => 2),
      endedAt: new Date(Math.floor((now - HOUR_MS) / 1000) * 1000),
      spreadDays: 89,
      withoutEndShare: 0.15,
      withoutWindowShare: 0.05,
      unusableShare: 0.08,
    });
    const unusable = sessions.filter((s) => s.statsRow?.unusable);
    const usable = sessions.filter((s) => !s.statsRow?.unusable);
    const withoutEnd = usable.filter((s) => s.statsRow?.omit?.includes('call_ended_at'));
    const withoutWindow = withoutEnd.filter((s) => s.statsRow?.omit?.includes('call_started_at'));
    // The seed gives every kind of row at least once.
    expect(unusable.length).toBeGreaterThan(0);
    expect(withoutWindow.length).toBeGreaterThan(0);
    expect(withoutEnd.length).toBeGreaterThan(withoutWindow.length);
    const oldest = sessions.at(-1)!;
    expect(now - oldest.endedAt.getTime()).toBeGreaterThan(89 * DAY_MS);

    const harness = await startStreamHarness(sessions);
    // Stream lowers its limits under load: about one request in four answers 429.
    harness.sim.setFaults({ seed: 'day-one', rateLimitRate: 0.25 });
    try {
      const logs = captureLogs();
      const options = sweepOptions(harness, { logger: logs.logger });
      const result = await runSweep(options);
      expect(harness.sim.stats.faults.rateLimit).toBeGreaterThan(0);
      expect(result).toEqual({
        ran: true,
        pages: 8,
        seen: 40,
        enqueued: usable.length,
        unusable: unusable.length,
        withoutEnd: withoutEnd.length,
        corrected: 0,
        expired: 0,
        atRisk: expect.any(Number),
      });

      // The whole 90 days (plus the overlap), oldest end first.
      const filter = harness.calls[0]?.filterConditions as { session_ended_at: { $gte: string; $lte: string } };
      const from = Date.parse(filter.session_ended_at.$gte);
      const until = Date.parse(filter.session_ended_at.$lte);
      expect(until - from).toBe(90 * DAY_MS + HOUR_MS);
      expect(harness.calls[0]?.sort).toEqual([
        { field: 'session_ended_at', direction: 1 },
        { field: 'call_cid', direction: 1 },
      ]);

      const { rows } = await pool().query<{ id: string; session_ended_at: Date | null; retention_expires_at: Date }>(
        'select call_session_id as id, session_ended_at, retention_expires_at from call_sessions',
      );
      const stored = new Map(rows.map((r) => [r.id, r]));
      expect([...stored.keys()].sort()).toEqual(usable.map((s) => s.callSessionId).sort());
      for (const s of usable) {
        const row = stored.get(s.callSessionId)!;
        const omitted = s.statsRow?.omit ?? [];
        if (!omitted.includes('call_ended_at')) {
          expect(row).toMatchObject({ session_ended_at: s.endedAt, retention_expires_at: retentionExpiresAt(s.endedAt) });
        } else if (!omitted.includes('call_started_at')) {
          // From the start: never later than the truth.
          expect(row).toMatchObject({ session_ended_at: null, retention_expires_at: retentionExpiresAt(s.startedAt) });
        } else {
          // From generated_at, which the simulator sets at the end (the report is ready at once here).
          expect(row).toMatchObject({ session_ended_at: null, retention_expires_at: retentionExpiresAt(s.endedAt) });
        }
      }

      // The oldest ones are at risk, and workers start with them, the one a day from expiry first.
      const byExpiry = [...rows].sort((a, b) => a.retention_expires_at.getTime() - b.retention_expires_at.getTime());
      expect(byExpiry[0]?.id).toBe(usable.at(-1)!.callSessionId);
      expect(result.atRisk).toBe(rows.filter((r) => r.retention_expires_at.getTime() < now + AT_RISK_DAYS * DAY_MS).length);
      expect(result.atRisk).toBeGreaterThan(0);
      const claimed = await claimSessions(pool(), { workerId: 'day-one', limit: 3, leaseSeconds: 30 });
      expect(claimed.map((c) => c.callSessionId)).toEqual(byExpiry.slice(0, 3).map((r) => r.id));

      const state = await readState();
      expect(state).toMatchObject({
        watermark: new Date(until),
        cursor: null,
        sweep_from: new Date(from),
        covered_from: new Date(from),
        sweep_position: null,
        sweep_seen: 40,
        sweep_enqueued: usable.length,
        sweep_unusable: unusable.length,
        unusable_total: unusable.length,
        last_error: null,
      });
      expect(state.last_sweep_at).toBeInstanceOf(Date);
      expect(await counterValue(options.metrics.reconcileUnusableRows)).toBe(unusable.length);

      // Every unusable row is named in an error line with whatever ids it had.
      const lines = logs.lines();
      const logged = lines.filter((l) => l.msg === 'call_stats rows name no session; not enqueued');
      expect(logged.every((l) => l.level === 50)).toBe(true);
      const loggedRows = logged.flatMap((l) => l.rows as { reason: string; ids: Record<string, string> }[]);
      expect(loggedRows).toHaveLength(unusable.length);
      for (const s of unusable) {
        const match = loggedRows.find((r) =>
          s.statsRow?.unusable === 'no_call_session_id'
            ? r.ids.callId === s.callId && r.ids.callSessionId === undefined
            : r.ids.callSessionId === s.callSessionId,
        );
        expect(match?.reason, s.callSessionId).toMatch(s.statsRow?.unusable === 'no_call_session_id' ? /call_session_id/ : /call_id/);
      }
      const warned = lines.filter((l) => l.msg === 'call_stats lists sessions without an end time; retention estimated');
      expect(warned.reduce((n, l) => n + (l.withoutEnd as number), 0)).toBe(withoutEnd.length);

      // The next sweep keeps its overlap and starts its figures afresh; the all-time count carries on.
      harness.calls.length = 0;
      const again = await runSweep(options);
      expect(again).toMatchObject({ ran: true, enqueued: 0 });
      const next = harness.calls[0]?.filterConditions as { session_ended_at: { $gte: string } };
      expect(Date.parse(next.session_ended_at.$gte)).toBe(until - HOUR_MS);
      const after = await readState();
      expect(after).toMatchObject({ covered_from: new Date(from), sweep_seen: again.seen, sweep_unusable: again.unusable });
      expect(after.unusable_total).toBe(unusable.length + again.unusable);
    } finally {
      await harness.close();
    }
  }, 60_000);

  async function readState() {
    const { rows } = await pool().query(
      `select watermark, cursor, last_sweep_at, last_error, sweep_from, sweep_position, covered_from,
              sweep_started_at, sweep_seen, sweep_enqueued, sweep_unusable, unusable_total
         from reconcile_state where name = 'call_stats'`,
    );
    return rows[0];
  }
});

describe('one retention clock, whichever way a session arrives', () => {
  const test = useTestDatabase();
  const pool = () => test.current.database.pool;

  beforeEach(async () => {
    await pool().query('delete from call_sessions');
    // Each test's sweep is a first one, looking back over its whole lookback.
    await pool().query('delete from reconcile_state');
  });

  const webhook = (body: Record<string, unknown>) => {
    const event = parseWebhookEvent(body) as HandledWebhookEvent;
    return enqueueWebhookEvent(pool(), { webhookId: randomUUID(), attempt: 1, event, bodyText: JSON.stringify(body), payload: body }, { deadlineMs: 4_500 });
  };
  const row = async (id: string) =>
    (
      await pool().query<{ session_ended_at: Date | null; retention_expires_at: Date; status: string }>(
        'select session_ended_at, retention_expires_at, status from call_sessions where call_session_id = $1',
        [id],
      )
    ).rows[0];
  const sweep = (harness: StreamHarness) =>
    runSweep({
      database: test.current.database,
      logger: captureLogs().logger,
      metrics: createMetrics({ defaultMetrics: false }),
      stream: harness.stream,
      lookbackDays: 7,
      retry: PATIENT_RETRY,
    });

  it('a report webhook first, then the sweep: retention moves from the report time to Stream end + 90 days', async () => {
    const session = endedSession('clock-sweep', 30);
    const harness = await startStreamHarness([session]);
    try {
      // The report event arrives now (its created_at is now), 30 hours after the session ended.
      await webhook(
        statsReportReadyBody({ sessionId: session.callSessionId, callCid: `${session.callType}:${session.callId}`, createdAt: new Date().toISOString() }),
      );
      const before = await row(session.callSessionId);
      expect(before?.session_ended_at).toBeNull();
      expect(before!.retention_expires_at.getTime() - retentionExpiresAt(session.endedAt).getTime()).toBeGreaterThan(29 * HOUR_MS);

      const result = await sweep(harness);
      expect(result).toMatchObject({ enqueued: 0, corrected: 1 });
      expect(await row(session.callSessionId)).toEqual({
        session_ended_at: session.endedAt,
        retention_expires_at: retentionExpiresAt(session.endedAt),
        status: 'pending',
      });

      // A later report event keeps the known end's clock.
      await webhook(
        statsReportReadyBody({ sessionId: session.callSessionId, callCid: `${session.callType}:${session.callId}`, createdAt: new Date().toISOString() }),
      );
      expect((await row(session.callSessionId))?.retention_expires_at).toEqual(retentionExpiresAt(session.endedAt));
    } finally {
      await harness.close();
    }
  });

  it('a report webhook first, then a backfill: the same correction', async () => {
    const session = endedSession('clock-backfill', 50);
    const harness = await startStreamHarness([session]);
    try {
      await webhook(
        statsReportReadyBody({ sessionId: session.callSessionId, callCid: `${session.callType}:${session.callId}`, createdAt: new Date().toISOString() }),
      );
      await pool().query(`update call_sessions set status = 'running', lease_owner = 'w' where call_session_id = $1`, [session.callSessionId]);
      const result = await backfillWindow({
        database: test.current.database,
        stream: harness.stream,
        window: { from: new Date(Date.now() - 3 * DAY_MS), until: new Date() },
        retry: PATIENT_RETRY,
      });
      expect(result).toEqual({ pages: 1, seen: 1, enqueued: 0, unusable: 0, withoutEnd: 0, corrected: 1 });
      // Its status and lease are the worker's, and stay.
      expect(await row(session.callSessionId)).toEqual({
        session_ended_at: session.endedAt,
        retention_expires_at: retentionExpiresAt(session.endedAt),
        status: 'running',
      });
    } finally {
      await harness.close();
    }
  });

  it('the sweep first, then webhooks: the end Stream listed stands', async () => {
    const session = endedSession('clock-first', 5);
    const harness = await startStreamHarness([session]);
    try {
      await sweep(harness);
      const cid = `${session.callType}:${session.callId}`;
      await webhook(sessionEndedBody({ sessionId: session.callSessionId, callCid: cid, endedAt: new Date(session.endedAt.getTime() + HOUR_MS).toISOString() }));
      await webhook(statsReportReadyBody({ sessionId: session.callSessionId, callCid: cid, createdAt: new Date().toISOString() }));
      expect(await row(session.callSessionId)).toMatchObject({ session_ended_at: session.endedAt, retention_expires_at: retentionExpiresAt(session.endedAt) });
    } finally {
      await harness.close();
    }
  });
});
