import { describe, expect, it, beforeAll } from 'vitest';
import { useTestDatabase } from '../helpers/db.ts';
import { expectedAttendance, expectedSession, insertCallSession, insertEntries, type WireEntry } from '../helpers/attendance-data.ts';

const t = (hhmmss: string): string => `2026-03-10T${hhmmss}.000Z`;
const entry = (user: string, serial: number, fields: Partial<WireEntry>): WireEntry => ({
  user_id: user,
  user_session_id: `${user}-${serial}`,
  publisher_type: 'webrtc',
  roles: ['user'],
  ...fields,
});

// One class with each awkward case; times on 2026-03-10 (UTC).
const CLASS: WireEntry[] = [
  // back-to-back rejoin: leave and rejoin at the same second
  entry('rejoin', 1, { joined_at: t('10:00:00'), left_at: t('10:10:00'), duration_in_seconds: 600 }),
  entry('rejoin', 2, { joined_at: t('10:10:00'), left_at: t('10:20:00'), duration_in_seconds: 600 }),
  // two devices overlapping for ten minutes
  entry('two-devices', 1, { joined_at: t('10:00:00'), left_at: t('10:15:00'), duration_in_seconds: 900 }),
  entry('two-devices', 2, { joined_at: t('10:05:00'), left_at: t('10:20:00'), duration_in_seconds: 900 }),
  // no left_at key at all, but a duration: ends at joined_at + duration
  entry('no-left', 1, { joined_at: t('10:00:00'), duration_in_seconds: 300 }),
  // left_at null and no duration: the end is unknown
  entry('still-connected', 1, { joined_at: t('10:02:00'), left_at: null }),
  // away for five minutes, then back
  entry('gap', 1, { joined_at: t('10:00:00'), left_at: t('10:05:00'), duration_in_seconds: 300 }),
  entry('gap', 2, { joined_at: t('10:10:00'), left_at: t('10:15:00'), duration_in_seconds: 300 }),
  // no joined_at: starts at left_at - duration
  entry('no-joined', 1, { left_at: t('10:20:00'), duration_in_seconds: 120 }),
];

describe('attendance views on hand-built sessions', () => {
  const db = useTestDatabase();
  const pool = () => db.current.database.pool;

  beforeAll(async () => {
    const sessions = [
      { call_session_id: 'class', call_type: 'classroom', call_id: 'c1' },
      { call_session_id: 'one-second', call_type: 'classroom', call_id: 'c2' },
      { call_session_id: 'instant', call_type: 'classroom', call_id: 'c3' },
      { call_session_id: 'handover', call_type: 'classroom', call_id: 'c4' },
      { call_session_id: 'empty', call_type: 'classroom', call_id: 'c5' },
    ];
    for (const s of sessions) await insertCallSession(pool(), { ...s, status: s.call_session_id === 'empty' ? 'pending' : 'complete' });
    await insertEntries(pool(), sessions[0]!, CLASS);
    await insertEntries(pool(), sessions[1]!, [entry('solo', 1, { joined_at: t('11:00:00'), left_at: t('11:00:01'), duration_in_seconds: 1 })]);
    await insertEntries(pool(), sessions[2]!, [entry('blink', 1, { joined_at: t('12:00:00'), left_at: t('12:00:00'), duration_in_seconds: 0 })]);
    await insertEntries(pool(), sessions[3]!, [
      entry('first', 1, { joined_at: t('13:00:00'), left_at: t('13:30:00'), duration_in_seconds: 1800 }),
      entry('second', 1, { joined_at: t('13:30:00'), left_at: t('14:00:00'), duration_in_seconds: 1800 }),
    ]);
  });

  async function attendanceOf(callSessionId: string) {
    const { rows } = await pool().query(
      `select user_id, first_joined_at, last_left_at, join_count, summed_seconds, attended_seconds::float8 as attended_seconds,
         stretches, session_started_at, session_ended_at, attended_share
       from attendance where call_session_id = $1 order by user_id`,
      [callSessionId],
    );
    return new Map(rows.map((r) => [r.user_id as string, r]));
  }

  it('merges a back-to-back rejoin into one stretch of the full length', async () => {
    const row = (await attendanceOf('class')).get('rejoin');
    expect(row).toMatchObject({ join_count: 2, summed_seconds: 1200, attended_seconds: 1200, stretches: 1, attended_share: 1 });
    expect(row.first_joined_at).toEqual(new Date(t('10:00:00')));
    expect(row.last_left_at).toEqual(new Date(t('10:20:00')));
  });

  it('counts two overlapping devices once', async () => {
    const row = (await attendanceOf('class')).get('two-devices');
    expect(row).toMatchObject({ join_count: 2, summed_seconds: 1800, attended_seconds: 1200, stretches: 1 });
  });

  it('ends an entry without left_at at joined_at + duration, and leaves one without either out of attended time', async () => {
    const rows = await attendanceOf('class');
    expect(rows.get('no-left')).toMatchObject({ join_count: 1, summed_seconds: 300, attended_seconds: 300, attended_share: 0.25 });
    expect(rows.get('no-left').last_left_at).toEqual(new Date(t('10:05:00')));
    const open = rows.get('still-connected');
    expect(open).toMatchObject({ join_count: 1, summed_seconds: 0, attended_seconds: 0, stretches: 0, attended_share: 0, last_left_at: null });
    expect(open.first_joined_at).toEqual(new Date(t('10:02:00')));
  });

  it('starts an entry without joined_at at left_at - duration', async () => {
    const row = (await attendanceOf('class')).get('no-joined');
    expect(row.first_joined_at).toEqual(new Date(t('10:18:00')));
    expect(row).toMatchObject({ attended_seconds: 120, attended_share: 0.1 });
  });

  it('keeps a return after an absence as a second stretch', async () => {
    const row = (await attendanceOf('class')).get('gap');
    expect(row).toMatchObject({ join_count: 2, attended_seconds: 600, stretches: 2, attended_share: 0.5 });
    const { rows } = await pool().query(
      `select stretch, started_at, ended_at, entries, seconds::float8 as seconds from attendance_stretches
       where call_session_id = 'class' and user_id = 'gap' order by stretch`,
    );
    expect(rows).toEqual([
      { stretch: 1, started_at: new Date(t('10:00:00')), ended_at: new Date(t('10:05:00')), entries: 1, seconds: 300 },
      { stretch: 2, started_at: new Date(t('10:10:00')), ended_at: new Date(t('10:15:00')), entries: 1, seconds: 300 },
    ]);
  });

  it('gives every user of a session the same window: first start to last end of anyone', async () => {
    for (const row of (await attendanceOf('class')).values()) {
      expect(row.session_started_at).toEqual(new Date(t('10:00:00')));
      expect(row.session_ended_at).toEqual(new Date(t('10:20:00')));
    }
  });

  it('handles a one-second session, and leaves the share null when the window is empty', async () => {
    expect((await attendanceOf('one-second')).get('solo')).toMatchObject({ attended_seconds: 1, attended_share: 1, join_count: 1 });
    expect((await attendanceOf('instant')).get('blink')).toMatchObject({ attended_seconds: 0, attended_share: null, stretches: 1 });
    const { rows } = await pool().query(
      `select call_session_id, participants, entries, attended_seconds::float8 as attended_seconds, peak_concurrent_participants
       from call_session_attendance where call_session_id in ('one-second', 'instant') order by 1`,
    );
    expect(rows).toEqual([
      { call_session_id: 'instant', participants: 1, entries: 1, attended_seconds: 0, peak_concurrent_participants: 0 },
      { call_session_id: 'one-second', participants: 1, entries: 1, attended_seconds: 1, peak_concurrent_participants: 1 },
    ]);
  });

  it('summarises sessions: peak counts each user once, a handover is not an overlap, an empty session has a row', async () => {
    const { rows } = await pool().query(
      `select call_session_id, status, participants, entries, summed_seconds, attended_seconds::float8 as attended_seconds,
         peak_concurrent_participants, session_started_at, session_ended_at
       from call_session_attendance where call_session_id in ('class', 'handover', 'empty') order by 1`,
    );
    expect(rows).toEqual([
      {
        call_session_id: 'class',
        status: 'complete',
        participants: 6,
        entries: 9,
        summed_seconds: 4020,
        attended_seconds: 1200 + 1200 + 300 + 0 + 600 + 120,
        // 10:00–10:05: rejoin, two-devices, no-left, gap (still-connected has no end).
        peak_concurrent_participants: 4,
        session_started_at: new Date(t('10:00:00')),
        session_ended_at: new Date(t('10:20:00')),
      },
      {
        call_session_id: 'empty',
        status: 'pending',
        participants: 0,
        entries: 0,
        summed_seconds: 0,
        attended_seconds: 0,
        peak_concurrent_participants: 0,
        session_started_at: null,
        session_ended_at: null,
      },
      {
        call_session_id: 'handover',
        status: 'complete',
        participants: 2,
        entries: 2,
        summed_seconds: 3600,
        attended_seconds: 3600,
        peak_concurrent_participants: 1,
        session_started_at: new Date(t('13:00:00')),
        session_ended_at: new Date(t('14:00:00')),
      },
    ]);
  });

  it('agrees with the TypeScript reference used by the cookbook test', async () => {
    const rows = await attendanceOf('class');
    for (const expected of expectedAttendance('class', CLASS)) {
      const row = rows.get(expected.user_id);
      expect(row.attended_seconds).toBeCloseTo(expected.attended_seconds, 6);
      expect(row.join_count).toBe(expected.join_count);
      expect(row.stretches).toBe(expected.stretches);
      expect(row.attended_share).toBeCloseTo(expected.attended_share ?? Number.NaN, 9);
    }
    const {
      rows: [session],
    } = await pool().query(`select peak_concurrent_participants from call_session_attendance where call_session_id = 'class'`);
    expect(session.peak_concurrent_participants).toBe(expectedSession('class', CLASS).peak_concurrent_participants);
  });

  it('lets a filter on user_id or call_session_id reach the indexes instead of computing every session', async () => {
    const client = await pool().connect();
    try {
      await client.query('begin');
      // The table is tiny, so a sequential scan would win on cost; forbid it to see whether the filter reaches the scan at all.
      await client.query('set local enable_seqscan = off');
      const plan = async (query: string) => (await client.query(`explain ${query}`)).rows.map((r: { 'QUERY PLAN': string }) => r['QUERY PLAN']).join('\n');
      expect(await plan(`select * from attendance where user_id = 'gap'`)).toMatch(/Index Cond: \(user_id = 'gap'::text\)/);
      expect(await plan(`select * from attendance where call_session_id = 'class'`)).toMatch(/Index Cond: \(call_session_id = 'class'::text\)/);
      expect(await plan(`select * from call_session_attendance where call_session_id = 'class'`)).toMatch(/Index Cond: \(call_session_id = 'class'::text\)/);
      await client.query('rollback');
    } finally {
      client.release();
    }
  });
});
