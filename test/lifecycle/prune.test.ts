import pg from 'pg';
import { beforeEach, describe, expect, it } from 'vitest';
import { ADVISORY_LOCK_KEYS } from '../../src/db/advisory-lock.ts';
import { inboxRetentionDays, pruningEnabled, runPrune } from '../../src/lifecycle/prune.ts';
import { enqueueListedSessions } from '../../src/queue/enqueue-listed.ts';
import { guardRetention } from '../../src/reconcile/retention.ts';
import { useTestDatabase } from '../helpers/db.ts';
import { daysAgo } from '../helpers/session-rows.ts';
import { seedEntry, seedEvent, seedResponse, seedSession } from './seed.ts';

describe('inboxRetentionDays', () => {
  it('keeps the inbox no longer than the archive, and 0 with no archive retention means for ever', () => {
    expect(inboxRetentionDays({ webhookEventsDays: 30, archiveDays: undefined })).toBe(30);
    expect(inboxRetentionDays({ webhookEventsDays: 30, archiveDays: 7 })).toBe(7);
    expect(inboxRetentionDays({ webhookEventsDays: 0, archiveDays: 400 })).toBe(400);
    expect(inboxRetentionDays({ webhookEventsDays: 0, archiveDays: undefined })).toBeUndefined();
    expect(pruningEnabled({ webhookEventsDays: 0, archiveDays: undefined })).toBe(false);
  });
});

describe('runPrune', () => {
  const test = useTestDatabase();
  const pool = () => test.current.database.pool;

  beforeEach(async () => {
    await pool().query('truncate webhook_events, participant_sessions, stream_responses, call_sessions cascade');
  });

  it('deletes inbox events past the retention in batches, oldest first, and nothing newer', async () => {
    await pool().query(
      `insert into webhook_events (webhook_id, type, received_at, payload)
       select 'old-' || n, 'call.session_ended', now() - interval '31 days' - n * interval '1 second', '{}'::jsonb from generate_series(1, 2500) n`,
    );
    await pool().query(
      `insert into webhook_events (webhook_id, type, received_at, payload)
       select 'new-' || n, 'call.session_ended', now() - interval '29 days', '{}'::jsonb from generate_series(1, 10) n`,
    );
    const result = await runPrune(test.current.database, { retention: { webhookEventsDays: 30, archiveDays: undefined }, batchRows: 1000, pauseMs: 0 });
    expect(result).toEqual({ ran: true, webhookEvents: 2500, participantSessions: 0, streamResponses: 0, callSessions: 0, interrupted: false });
    const left = await pool().query(`select count(*)::int as n, count(*) filter (where webhook_id like 'new-%')::int as fresh from webhook_events`);
    expect(left.rows[0]).toEqual({ n: 10, fresh: 10 });
    // A second run finds nothing.
    expect((await runPrune(test.current.database, { retention: { webhookEventsDays: 30, archiveDays: undefined } })).webhookEvents).toBe(0);
  });

  it('deletes the archive of sessions that ended before ARCHIVE_RETENTION_DAYS and keeps their call_sessions rows', async () => {
    const p = pool();
    await seedSession(p, { id: 'old', endedDaysAgo: 400, total: 3, archived: 3, reportedDaysAgo: 400 });
    await seedSession(p, { id: 'recent', endedDaysAgo: 10, total: 1, archived: 1 });
    await seedSession(p, { id: 'old-running', status: 'running', endedDaysAgo: 400, total: 1, archived: 1 });
    await seedSession(p, { id: 'no-end', status: 'complete', endedDaysAgo: null, total: 2, archived: 2 });
    await seedSession(p, { id: 'straddles', endedDaysAgo: 300, total: 1, archived: 1 });
    for (let i = 0; i < 3; i++) await seedEntry(p, { session: 'old', user: `u${i}`, userSession: `old-${i}`, joinedDaysAgo: 400 + i * 0.01 });
    await seedEntry(p, { session: 'recent', user: 'u1', userSession: 'recent-1', joinedDaysAgo: 10 });
    await seedEntry(p, { session: 'old-running', user: 'u1', userSession: 'run-1', joinedDaysAgo: 400 });
    await seedEntry(p, { session: 'no-end', user: 'u1', userSession: 'ne-1', joinedDaysAgo: 500 });
    await seedEntry(p, { session: 'no-end', user: 'u2', userSession: 'ne-2', joinedDaysAgo: null, leftDaysAgo: 500 });
    // Joined before the cutoff, but its session ended after it: kept.
    await seedEntry(p, { session: 'straddles', user: 'u1', userSession: 'st-1', joinedDaysAgo: 380 });
    await seedResponse(p, 'old', { session: { participants: [{ user: { id: 'u0' } }] } });
    await seedResponse(p, 'recent', { session: {} });
    await seedEvent(p, { id: 'w-old', receivedDaysAgo: 400, payloadText: '{"user":{"id":"u0"}}' });
    await seedEvent(p, { id: 'w-new', receivedDaysAgo: 1, payloadText: '{}' });

    const result = await runPrune(test.current.database, { retention: { webhookEventsDays: 0, archiveDays: 365 }, batchRows: 2, pauseMs: 0 });
    expect(result).toEqual({ ran: true, webhookEvents: 1, participantSessions: 5, streamResponses: 1, callSessions: 2, interrupted: false });

    const entries = (await p.query('select user_session_id from participant_sessions order by 1')).rows.map((r) => r.user_session_id);
    expect(entries).toEqual(['recent-1', 'run-1', 'st-1']);
    const sessions = (
      await p.query(
        'select call_session_id, status, total_participant_sessions, archived_participant_sessions, stats_report_ready_at is not null as reported from call_sessions order by 1',
      )
    ).rows;
    expect(sessions).toEqual([
      { call_session_id: 'no-end', status: 'complete', total_participant_sessions: 2, archived_participant_sessions: 0, reported: false },
      { call_session_id: 'old', status: 'complete', total_participant_sessions: 3, archived_participant_sessions: 0, reported: true },
      { call_session_id: 'old-running', status: 'running', total_participant_sessions: 1, archived_participant_sessions: 1, reported: false },
      { call_session_id: 'recent', status: 'complete', total_participant_sessions: 1, archived_participant_sessions: 1, reported: false },
      { call_session_id: 'straddles', status: 'complete', total_participant_sessions: 1, archived_participant_sessions: 1, reported: false },
    ]);
    expect((await p.query('select call_session_id from stream_responses')).rows).toEqual([{ call_session_id: 'recent' }]);
    expect((await p.query('select webhook_id from webhook_events')).rows).toEqual([{ webhook_id: 'w-new' }]);
    // The views follow the table: the pruned session reports no entries, Stream's total stays.
    expect((await p.query(`select entries, total_participant_sessions from call_session_attendance where call_session_id = 'old'`)).rows[0]).toEqual({
      entries: 0,
      total_participant_sessions: 3,
    });

    // Nothing brings the archive back: the sweep knows the session, the retention guard leaves a complete session alone.
    const { inserted } = await enqueueListedSessions(test.current.database.pool, [
      { callType: 'default', callId: 'call-old', callSessionId: 'old', sessionEndedAt: daysAgo(400), retentionExpiresAt: daysAgo(310) },
    ]);
    expect(inserted).toEqual([]);
    await guardRetention(test.current.database.pool);
    expect(
      (await p.query(`select status, next_attempt_at < now() - interval '1 minute' as idle from call_sessions where call_session_id = 'old'`)).rows[0].status,
    ).toBe('complete');

    // Idempotent.
    const again = await runPrune(test.current.database, { retention: { webhookEventsDays: 0, archiveDays: 365 }, batchRows: 2, pauseMs: 0 });
    expect(again).toMatchObject({ webhookEvents: 0, participantSessions: 0, streamResponses: 0, callSessions: 0 });
  });

  it('skips when another process holds the prune lock', async () => {
    await seedEvent(pool(), { id: 'w-old', receivedDaysAgo: 40, payloadText: '{}' });
    const other = new pg.Client(test.current.url);
    await other.connect();
    try {
      await other.query('select pg_advisory_lock($1)', [ADVISORY_LOCK_KEYS.prune]);
      const result = await runPrune(test.current.database, { retention: { webhookEventsDays: 30, archiveDays: undefined } });
      expect(result.ran).toBe(false);
      expect((await pool().query('select count(*)::int as n from webhook_events')).rows[0].n).toBe(1);
    } finally {
      await other.end();
    }
    expect((await runPrune(test.current.database, { retention: { webhookEventsDays: 30, archiveDays: undefined } })).webhookEvents).toBe(1);
  });

  it('stops between batches when aborted, keeping what it deleted', async () => {
    await pool().query(
      `insert into webhook_events (webhook_id, type, received_at, payload)
       select 'old-' || n, 'call.session_ended', now() - interval '40 days', '{}'::jsonb from generate_series(1, 500) n`,
    );
    const controller = new AbortController();
    const run = runPrune(test.current.database, {
      retention: { webhookEventsDays: 30, archiveDays: undefined },
      batchRows: 10,
      pauseMs: 50,
      signal: controller.signal,
    });
    setTimeout(() => controller.abort(), 120);
    const result = await run;
    expect(result.interrupted).toBe(true);
    expect(result.webhookEvents).toBeGreaterThan(0);
    expect(result.webhookEvents).toBeLessThan(500);
    expect((await pool().query('select count(*)::int as n from webhook_events')).rows[0].n).toBe(500 - result.webhookEvents);
  });
});
