import { beforeAll, describe, expect, it } from 'vitest';
import { enqueueListedSessions } from '../../src/queue/enqueue-listed.ts';
import { forgetUser, userIdDigest } from '../../src/lifecycle/forget.ts';
import { refreshRollups } from '../../src/rollup/refresh.ts';
import { useTestDatabase } from '../helpers/db.ts';
import { findEverywhere, seedEntry, seedEvent, seedResponse, seedSession } from './seed.ts';

const TARGET = 'user-7f3a-erase-me';
const OTHER = 'other-user-b2';
// A report timestamp as Stream sends it: integer nanoseconds, beyond 2^53.
const NANOS = '1775658215879421674';

async function snapshot(pool: import('pg').Pool) {
  const q = async (sql: string) => (await pool.query(sql)).rows;
  return {
    entries: await q('select call_session_id, user_session_id, user_id, roles, raw::text from participant_sessions order by 1, 2'),
    sessions: await q(
      'select call_session_id, status, total_participant_sessions, total_participant_duration, archived_participant_sessions, updated_at from call_sessions order by 1',
    ),
    events: await q('select webhook_id, payload::text from webhook_events order by 1'),
    responses: await q('select call_session_id, response::text from stream_responses order by 1'),
    log: await q('select * from erasure_log order by id'),
  };
}

async function withClient<T>(pool: import('pg').Pool, fn: (client: import('pg').PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    return await fn(client);
  } finally {
    client.release();
  }
}

describe('forgetUser', () => {
  const test = useTestDatabase();
  const pool = () => test.current.database.pool;

  beforeAll(async () => {
    const p = pool();
    await seedSession(p, { id: 's1', endedDaysAgo: 5, total: 3, archived: 3, reportedDaysAgo: 5 });
    await seedSession(p, { id: 's2', endedDaysAgo: 6, total: 2, archived: 2, reportedDaysAgo: 6 });
    await seedEntry(p, { session: 's1', user: TARGET, userSession: 'us-1', joinedDaysAgo: 5, roles: ['host', TARGET] });
    await seedEntry(p, {
      session: 's1',
      user: TARGET,
      userSession: 'us-2',
      joinedDaysAgo: 5,
      raw: { user_id: TARGET, user_session_id: 'us-2', user: { id: TARGET, name: 'T' }, joined_at: Number.MAX_SAFE_INTEGER },
    });
    await seedEntry(p, { session: 's1', user: OTHER, userSession: 'us-3', joinedDaysAgo: 5 });
    await seedEntry(p, { session: 's2', user: OTHER, userSession: 'us-4', joinedDaysAgo: 6 });
    await seedEntry(p, { session: 's2', user: 'third', userSession: 'us-5', joinedDaysAgo: 6 });
    await seedEvent(p, {
      id: 'w-joined',
      receivedDaysAgo: 5,
      session: 's1',
      payloadText: `{"type":"call.session_participant_joined","participant":{"user":{"id":"${TARGET}","name":"T"},"user_session_id":"us-1"},"created_at":${NANOS}}`,
    });
    await seedEvent(p, {
      id: 'w-report',
      receivedDaysAgo: 5,
      session: 's1',
      payloadText: `{"type":"call.stats_report_ready","participants_overview":{"${TARGET}":{"user_id":"${TARGET}","ids":["${TARGET}","${OTHER}"]},"${OTHER}":{"user_id":"${OTHER}"}},"n":${NANOS}}`,
    });
    await seedEvent(p, {
      id: 'w-other',
      receivedDaysAgo: 6,
      session: 's2',
      payloadText: `{"type":"call.session_participant_joined","participant":{"user":{"id":"${OTHER}"}},"created_at":${NANOS}}`,
    });
    await seedResponse(p, 's1', {
      session: { participants: [{ user: { id: TARGET } }, { user: { id: OTHER } }], accepted_by: { [TARGET]: '2026-01-01T00:00:00Z' } },
      total_participant_sessions: 3,
    });
    await seedResponse(p, 's2', { session: { participants: [{ user: { id: OTHER } }] }, total_participant_sessions: 2 });
  });

  it('--dry-run counts what a real run removes and changes nothing', async () => {
    const before = await snapshot(pool());
    const dry = await withClient(pool(), (c) => forgetUser(c, TARGET, { dryRun: true }));
    expect(dry).toMatchObject({ participantSessions: 2, callSessions: 1, webhookEvents: 2, streamResponses: 1, logged: false });
    expect(await snapshot(pool())).toEqual(before);
  });

  it('removes every stored copy of the id, recounts the session, and writes one audit row', async () => {
    const p = pool();
    // Per-user figures; the session window (session_started_at …) follows whoever is still held.
    const PER_USER = 'select call_session_id, user_id, first_joined_at, last_left_at, join_count, summed_seconds, attended_seconds, stretches from attendance';
    const otherBefore = await p.query(`${PER_USER} where user_id <> $1 order by call_session_id, user_id`, [TARGET]);
    expect((await p.query('select count(*)::int as n from attendance where user_id = $1', [TARGET])).rows[0].n).toBe(1);
    const otherEntriesBefore = (await p.query(`select * from participant_sessions where user_id <> $1 order by 1, 2`, [TARGET])).rows;
    const untouchedEvent = (await p.query(`select payload::text from webhook_events where webhook_id = 'w-other'`)).rows;
    const untouchedResponse = (await p.query(`select response::text from stream_responses where call_session_id = 's2'`)).rows;
    // The rollups hold the user too once brought up to date (the sweep does so after each run).
    await refreshRollups(p, ['s1', 's2']);
    const s2Rollups = await p.query(`select * from attendance_rollup where call_session_id = 's2' order by user_id`);
    expect(await findEverywhere(p, TARGET)).toEqual([
      'attendance_rollup.user_id (1)',
      'daily_call_type_users.user_id (1)',
      'monthly_user_attendance.user_id (1)',
      'participant_sessions.raw (2)',
      'participant_sessions.roles (1)',
      'participant_sessions.user_id (2)',
      'stream_responses.response (1)',
      'webhook_events.payload (2)',
    ]);

    const result = await withClient(p, (c) => forgetUser(c, TARGET));
    expect(result).toEqual({
      userIdSha256: userIdDigest(TARGET),
      logged: true,
      participantSessions: 2,
      callSessions: 1,
      webhookEvents: 2,
      streamResponses: 1,
    });
    expect(userIdDigest(TARGET)).toMatch(/^[0-9a-f]{64}$/);

    expect(await findEverywhere(p, TARGET)).toEqual([]);
    // In the same transaction: nothing is left marked, and the session the user was not in is untouched.
    expect((await p.query('select count(*)::int as n from rollup_pending')).rows[0].n).toBe(0);
    expect((await p.query(`select * from attendance_rollup where call_session_id = 's2' order by user_id`)).rows).toEqual(s2Rollups.rows);
    // Other users' rows, views and documents are as they were.
    expect((await p.query(`select * from participant_sessions order by 1, 2`)).rows).toEqual(otherEntriesBefore);
    expect((await p.query(`${PER_USER} order by call_session_id, user_id`)).rows).toEqual(otherBefore.rows);
    expect((await p.query(`select payload::text from webhook_events where webhook_id = 'w-other'`)).rows).toEqual(untouchedEvent);
    expect((await p.query(`select response::text from stream_responses where call_session_id = 's2'`)).rows).toEqual(untouchedResponse);
    // The scrubbed documents keep their shape, the other user's id and exact big integers.
    const report = (await p.query(`select payload from webhook_events where webhook_id = 'w-report'`)).rows[0].payload;
    expect(report.participants_overview['[erased]']).toEqual({ user_id: '[erased]', ids: ['[erased]', OTHER] });
    expect(report.participants_overview[OTHER]).toEqual({ user_id: OTHER });
    expect((await p.query(`select payload->>'n' as n from webhook_events where webhook_id = 'w-report'`)).rows[0].n).toBe(NANOS);
    expect((await p.query(`select payload->>'created_at' as n from webhook_events where webhook_id = 'w-joined'`)).rows[0].n).toBe(NANOS);
    const response = (await p.query(`select response from stream_responses where call_session_id = 's1'`)).rows[0].response;
    expect(response.session).toEqual({
      participants: [{ user: { id: '[erased]' } }, { user: { id: OTHER } }],
      accepted_by: { '[erased]': '2026-01-01T00:00:00Z' },
    });

    // Stream's totals stay Stream's; archived_participant_sessions says what is held now.
    const sessions = (await p.query(`select call_session_id, status, total_participant_sessions, archived_participant_sessions from call_sessions order by 1`))
      .rows;
    expect(sessions).toEqual([
      { call_session_id: 's1', status: 'complete', total_participant_sessions: 3, archived_participant_sessions: 1 },
      { call_session_id: 's2', status: 'complete', total_participant_sessions: 2, archived_participant_sessions: 2 },
    ]);
    const view = (
      await p.query(`select entries, archived_participant_sessions, total_participant_sessions from call_session_attendance where call_session_id = 's1'`)
    ).rows[0];
    expect(view).toEqual({ entries: 1, archived_participant_sessions: 1, total_participant_sessions: 3 });

    const log = (
      await p.query('select user_id_sha256, participant_sessions_deleted, webhook_events_scrubbed, call_sessions_adjusted, erased_at from erasure_log')
    ).rows;
    expect(log).toHaveLength(1);
    expect(log[0]).toMatchObject({
      user_id_sha256: userIdDigest(TARGET),
      participant_sessions_deleted: 2,
      webhook_events_scrubbed: 2,
      call_sessions_adjusted: 1,
    });
    expect(Date.now() - log[0].erased_at.getTime()).toBeLessThan(60_000);
  });

  it('is idempotent: a second run removes nothing and writes no audit row', async () => {
    const before = await snapshot(pool());
    const again = await withClient(pool(), (c) => forgetUser(c, TARGET));
    expect(again).toMatchObject({ participantSessions: 0, callSessions: 0, webhookEvents: 0, streamResponses: 0, logged: false });
    expect(await snapshot(pool())).toEqual(before);
  });

  it('leaves ids that merely contain the erased one alone', async () => {
    const p = pool();
    await seedEvent(p, { id: 'w-longer', receivedDaysAgo: 1, payloadText: `{"user":{"id":"${TARGET}-2"},"note":"x${TARGET}"}` });
    const again = await withClient(p, (c) => forgetUser(c, TARGET));
    expect(again.webhookEvents).toBe(0);
    expect((await p.query(`select payload from webhook_events where webhook_id = 'w-longer'`)).rows[0].payload).toEqual({
      user: { id: `${TARGET}-2` },
      note: `x${TARGET}`,
    });
    await p.query(`delete from webhook_events where webhook_id = 'w-longer'`);
  });

  it('erases an id with quotes, backslashes and non-ASCII characters', async () => {
    const p = pool();
    const odd = 'Zoë "Z" \\ 01';
    await seedSession(p, { id: 's3', endedDaysAgo: 2, total: 1, archived: 1 });
    await seedEntry(p, { session: 's3', user: odd, userSession: 'us-9', joinedDaysAgo: 2, roles: [odd] });
    await seedEvent(p, { id: 'w-odd', receivedDaysAgo: 2, payloadText: JSON.stringify({ user: { id: odd }, by: { [odd]: 1 }, other: OTHER }) });
    expect((await findEverywhere(p, odd)).length).toBeGreaterThan(0);
    const result = await withClient(p, (c) => forgetUser(c, odd));
    expect(result).toMatchObject({ participantSessions: 1, webhookEvents: 1, callSessions: 1 });
    expect(await findEverywhere(p, odd)).toEqual([]);
    expect((await p.query(`select payload from webhook_events where webhook_id = 'w-odd'`)).rows[0].payload).toEqual({
      user: { id: '[erased]' },
      by: { '[erased]': 1 },
      other: OTHER,
    });
  });

  it('a sweep listing a session the user was erased from does not re-enqueue it', async () => {
    const p = pool();
    const { inserted } = await enqueueListedSessions(test.current.database.pool, [
      { callType: 'default', callId: 'call-s1', callSessionId: 's1', sessionEndedAt: new Date(), retentionExpiresAt: new Date() },
    ]);
    expect(inserted).toEqual([]);
    expect((await p.query(`select status from call_sessions where call_session_id = 's1'`)).rows[0].status).toBe('complete');
  });
});
