import pg from 'pg';
import { beforeAll, describe, expect, it } from 'vitest';
import { useTestDatabase } from '../helpers/db.ts';
import {
  expectedAttendance,
  expectedSession,
  generateAttendanceDataset,
  insertDataset,
  insertEntries,
  insertCallSession,
  sessionStartCopies,
  type DatasetSession,
  type WireEntry,
  VIEW_SNAPSHOT_SQL,
} from '../helpers/attendance-data.ts';

/*
 * The rollups against the plain TypeScript reference (test/helpers/attendance-data.ts): after
 * every kind of change (new rows, a changed entry, a user erased, a session emptied) the report
 * tables must equal what the reference computes from the rows, the views must answer the same
 * whether a session is marked or rolled up, and a refresh from scratch must give the same tables
 * as the incremental ones.
 */

const NOW = Date.parse('2026-04-01T00:00:00Z');

/** A dataset session whose entries the test changes along with the rows. */
type Session = { seed: DatasetSession['seed']; entries: WireEntry[] };

const utcMonth = (ms: number): string => new Date(ms).toISOString().slice(0, 7);
const utcDay = (ms: number): string => new Date(ms).toISOString().slice(0, 10);
const rounded = (n: number): number => Math.round(n * 1000) / 1000;

interface Reference {
  monthly: Map<string, { sessions: number; attended: number; summed: number }>;
  daily: Map<string, { users: Set<string>; sessions: number; attended: number }>;
}

/** What the report tables should hold, from the entries alone. */
function reference(sessions: readonly Session[]): Reference {
  const monthly: Reference['monthly'] = new Map();
  const daily: Reference['daily'] = new Map();
  for (const session of sessions) {
    for (const row of expectedAttendance(session.seed.call_session_id, session.entries)) {
      if (row.first_joined_at === undefined) continue;
      const m = `${utcMonth(row.first_joined_at)}|${row.user_id}`;
      const month = monthly.get(m) ?? { sessions: 0, attended: 0, summed: 0 };
      monthly.set(m, { sessions: month.sessions + 1, attended: month.attended + row.attended_seconds, summed: month.summed + row.summed_seconds });
      const d = `${utcDay(row.first_joined_at)}|${session.seed.call_type}`;
      const day = daily.get(d) ?? { users: new Set<string>(), sessions: 0, attended: 0 };
      day.users.add(row.user_id);
      daily.set(d, { users: day.users, sessions: day.sessions + 1, attended: day.attended + row.attended_seconds });
    }
  }
  return { monthly, daily };
}

async function readReports(pool: pg.Pool): Promise<Reference> {
  const monthly: Reference['monthly'] = new Map();
  for (const r of (
    await pool.query(
      `select to_char(month, 'YYYY-MM') as month, user_id, sessions, attended_seconds::float8 as attended, summed_seconds::float8 as summed
         from monthly_user_attendance`,
    )
  ).rows) {
    monthly.set(`${r.month}|${r.user_id}`, { sessions: r.sessions, attended: rounded(r.attended), summed: r.summed });
  }
  const daily: Reference['daily'] = new Map();
  const users = await pool.query(`select to_char(day, 'YYYY-MM-DD') as day, call_type, user_id from daily_call_type_users where sessions > 0`);
  for (const r of (
    await pool.query(
      `select to_char(day, 'YYYY-MM-DD') as day, call_type, users, sessions, attended_seconds::float8 as attended from daily_call_type_attendance`,
    )
  ).rows) {
    const who = new Set(users.rows.filter((u) => u.day === r.day && u.call_type === r.call_type).map((u) => u.user_id as string));
    expect(who.size, `daily_call_type_attendance.users for ${r.day} ${r.call_type}`).toBe(r.users);
    daily.set(`${r.day}|${r.call_type}`, { users: who, sessions: r.sessions, attended: rounded(r.attended) });
  }
  return { monthly, daily };
}

function roundedReference(ref: Reference): Reference {
  return {
    monthly: new Map([...ref.monthly].map(([k, v]) => [k, { ...v, attended: rounded(v.attended) }])),
    daily: new Map([...ref.daily].map(([k, v]) => [k, { ...v, attended: rounded(v.attended) }])),
  };
}

const { attendance: ATTENDANCE_SQL, sessions: SESSIONS_SQL } = VIEW_SNAPSHOT_SQL;
const ROLLUP_TABLES = ['attendance_rollup', 'session_rollup', 'monthly_user_attendance', 'daily_call_type_attendance', 'daily_call_type_users'];

async function pendingCount(pool: pg.Pool): Promise<number> {
  return (await pool.query<{ n: number }>('select count(*)::int as n from rollup_pending')).rows[0]!.n;
}

async function refreshAll(pool: pg.Pool): Promise<number> {
  const { rows } = await pool.query<{ n: number }>('select attendance_rollup_refresh(array(select call_session_id from rollup_pending)) as n');
  return rows[0]!.n;
}

/** Every rollup table as text, in key order. */
async function dumpRollups(pool: pg.Pool): Promise<Record<string, string[]>> {
  const out: Record<string, string[]> = {};
  for (const table of ROLLUP_TABLES) {
    const { rows } = await pool.query<{ row: string }>(`select (t.*)::text as row from ${table} t order by 1`);
    out[table] = rows.map((r) => r.row.replace(/,"[^"]*\+00"\)$/, ')')); // session_rollup.refreshed_at differs by design
  }
  return out;
}

describe('attendance rollups', () => {
  const db = useTestDatabase();
  const pool = () => db.current.database.pool;
  let dataset: Session[];

  beforeAll(async () => {
    dataset = generateAttendanceDataset(19, NOW);
    await insertDataset(pool(), dataset);
  });

  it('marks every session a statement writes rows of, and the views answer the same marked or rolled up', async () => {
    const withRows = dataset.filter((s) => s.entries.length > 0).length;
    expect(await pendingCount(pool())).toBe(withRows);
    const liveAttendance = (await pool().query(ATTENDANCE_SQL)).rows;
    const liveSessions = (await pool().query(SESSIONS_SQL)).rows;

    expect(await refreshAll(pool())).toBe(withRows);
    expect(await pendingCount(pool())).toBe(0);
    const rolledAttendance = (await pool().query(ATTENDANCE_SQL)).rows;
    expect(rolledAttendance).toEqual(liveAttendance);
    expect((await pool().query(SESSIONS_SQL)).rows).toEqual(liveSessions);

    // And both equal the reference, session by session.
    for (const session of dataset) {
      const expected = expectedSession(session.seed.call_session_id, session.entries);
      const row = liveSessions.find((r) => r.call_session_id === session.seed.call_session_id);
      expect(row, session.seed.call_session_id).toMatchObject({
        participants: expected.participants,
        entries: expected.entries,
        summed_seconds: expected.summed_seconds,
        peak_concurrent_participants: expected.peak_concurrent_participants,
      });
      expect(Number(row.attended_seconds)).toBeCloseTo(expected.attended_seconds, 3);
      expect(row.session_started_at?.getTime()).toBe(expected.session_started_at);
      for (const user of expectedAttendance(session.seed.call_session_id, session.entries)) {
        const got = rolledAttendance.find((r) => r.call_session_id === user.call_session_id && r.user_id === user.user_id);
        expect(got?.stretches, `${user.call_session_id} ${user.user_id}`).toBe(user.stretches);
        expect(Number(got?.attended_seconds)).toBeCloseTo(user.attended_seconds, 3);
      }
    }
  });

  it('fills the report tables with what the reference computes', async () => {
    expect(await readReports(pool())).toEqual(roundedReference(reference(dataset)));
  });

  it('follows a changed entry, an erased user, an emptied session and a new month, and equals a rebuild from scratch', async () => {
    // An entry of a rolled-up session ends ten minutes later and starts ten minutes before anyone
    // else's: the session's window moves at both ends, and every user's row keeps the new start.
    const changed = dataset.find((s) => s.entries.length > 3)!;
    const entry = changed.entries.find((e) => e.left_at && e.joined_at)!;
    entry.left_at = new Date(Date.parse(entry.left_at!) + 600_000).toISOString();
    const earliest = Math.min(...changed.entries.flatMap((e) => (e.joined_at ? [Date.parse(e.joined_at)] : [])));
    entry.joined_at = new Date(earliest - 600_000).toISOString();
    await pool().query(`update participant_sessions set left_at = $3, joined_at = $4 where call_session_id = $1 and user_session_id = $2`, [
      changed.seed.call_session_id,
      entry.user_session_id,
      entry.left_at,
      entry.joined_at,
    ]);
    // One user erased everywhere.
    const erased = 'student-03';
    await pool().query('delete from participant_sessions where user_id = $1', [erased]);
    for (const session of dataset) session.entries = session.entries.filter((e) => e.user_id !== erased);
    // One session emptied (retention).
    const emptied = dataset.find((s) => s.entries.length > 0 && s !== changed)!;
    await pool().query('delete from participant_sessions where call_session_id = $1', [emptied.seed.call_session_id]);
    emptied.entries = [];
    // A new session in a new month.
    const added: Session = {
      seed: { call_session_id: 'late-class', call_type: 'classroom', call_id: 'algebra-101', status: 'complete' },
      entries: [
        {
          user_id: 'student-01',
          user_session_id: 'late-1',
          publisher_type: 'webrtc',
          roles: ['student'],
          joined_at: '2026-05-02T09:00:00Z',
          left_at: '2026-05-02T09:30:00Z',
          duration_in_seconds: 1800,
        },
        {
          user_id: 'student-01',
          user_session_id: 'late-2',
          publisher_type: 'webrtc',
          roles: ['student'],
          joined_at: '2026-05-02T09:20:00Z',
          left_at: '2026-05-02T09:40:00Z',
          duration_in_seconds: 1200,
        },
        { user_id: 'student-02', user_session_id: 'late-3', publisher_type: 'webrtc', roles: ['student'], joined_at: '2026-05-02T08:59:00Z', left_at: null },
      ],
    };
    await insertCallSession(pool(), added.seed);
    await insertEntries(pool(), added.seed, added.entries);
    dataset.push(added);

    const marked = await pendingCount(pool());
    expect(marked).toBeGreaterThan(3);
    const liveAttendance = (await pool().query(ATTENDANCE_SQL)).rows;
    expect(await refreshAll(pool())).toBe(marked);
    expect((await pool().query(ATTENDANCE_SQL)).rows).toEqual(liveAttendance);
    expect(await readReports(pool())).toEqual(roundedReference(reference(dataset)));
    // No trace of the erased user in any rollup.
    for (const table of ['attendance_rollup', 'monthly_user_attendance', 'daily_call_type_users']) {
      expect((await pool().query(`select count(*)::int as n from ${table} where user_id = $1`, [erased])).rows[0].n, table).toBe(0);
    }
    expect((await pool().query('select count(*)::int as n from session_rollup where call_session_id = $1', [emptied.seed.call_session_id])).rows[0].n).toBe(0);
    // attendance_rollup's copy of the session start (what a user's month is read by) is session_rollup's.
    expect(await sessionStartCopies(pool())).toEqual({
      rows: (await pool().query('select count(*)::int as n from attendance_rollup')).rows[0].n,
      differing: 0,
    });
    const moved = await pool().query('select distinct session_started_at from attendance_rollup where call_session_id = $1', [changed.seed.call_session_id]);
    expect(moved.rows.map((r) => r.session_started_at.toISOString())).toEqual([entry.joined_at]);

    const incremental = await dumpRollups(pool());
    await pool().query(`truncate ${ROLLUP_TABLES.join(', ')}`);
    await pool().query('insert into rollup_pending (call_session_id) select distinct call_session_id from participant_sessions');
    await refreshAll(pool());
    expect(await dumpRollups(pool())).toEqual(incremental);
  });

  it('does not mark a session when an upsert changes nothing, and a refresh of an unmarked session changes nothing', async () => {
    expect(await pendingCount(pool())).toBe(0);
    const before = await dumpRollups(pool());
    const result = await pool().query(
      `insert into participant_sessions as p (call_session_id, user_session_id, call_type, call_id, user_id, publisher_type, raw)
       select call_session_id, user_session_id, call_type, call_id, user_id, publisher_type, raw from participant_sessions where call_session_id = 'late-class'
       on conflict (call_session_id, user_session_id) do update set user_id = excluded.user_id where p.user_id is distinct from excluded.user_id`,
    );
    expect(result.rowCount).toBe(0);
    expect(await pendingCount(pool())).toBe(0);
    expect(await refreshAll(pool())).toBe(0);
    await pool().query(`select attendance_rollup_refresh(array['late-class', 'no-such-session', null])`);
    expect(await dumpRollups(pool())).toEqual(before);
  });

  it('keeps a session marked when rows are written while it is being refreshed', async () => {
    const session = { call_session_id: 'racing', call_type: 'classroom', call_id: 'race' };
    await insertCallSession(pool(), { ...session, status: 'running' });
    const first: WireEntry = {
      user_id: 'u1',
      user_session_id: 'r-1',
      publisher_type: 'webrtc',
      roles: [],
      joined_at: '2026-03-02T10:00:00Z',
      left_at: '2026-03-02T10:10:00Z',
      duration_in_seconds: 600,
    };
    await insertEntries(pool(), session, [first]);
    expect(await refreshAll(pool())).toBe(1);

    // A page of the running session, not yet committed, when the refresh starts.
    const writer = new pg.Client({ connectionString: db.current.url });
    await writer.connect();
    try {
      await writer.query('begin');
      await writer.query(
        `insert into participant_sessions (call_session_id, user_session_id, call_type, call_id, user_id, joined_at, left_at, duration_in_seconds, publisher_type, raw)
         values ('racing', 'r-2', 'classroom', 'race', 'u2', '2026-03-02T10:05:00Z', '2026-03-02T10:20:00Z', 900, 'webrtc', '{}')`,
      );
      const refreshing = pool().query<{ n: number }>(`select attendance_rollup_refresh(array['racing']) as n`);
      // The refresh waits for the page's mark; give it time to reach the wait.
      await new Promise((resolve) => setTimeout(resolve, 300));
      await writer.query('commit');
      expect((await refreshing).rows[0]!.n).toBe(0);
    } finally {
      await writer.end();
    }
    // Still marked, so the view computes it from both rows; the next refresh rolls it up.
    expect(await pendingCount(pool())).toBe(1);
    const live = (await pool().query(`select user_id, attended_seconds::float8 as s from attendance where call_session_id = 'racing' order by user_id`)).rows;
    expect(live).toEqual([
      { user_id: 'u1', s: 600 },
      { user_id: 'u2', s: 900 },
    ]);
    expect(await refreshAll(pool())).toBe(1);
    expect((await pool().query(`select participants, session_ended_at from session_rollup where call_session_id = 'racing'`)).rows).toEqual([
      { participants: 2, session_ended_at: new Date('2026-03-02T10:20:00Z') },
    ]);
  });

  it('counts a session in the month and day of each user’s own first join (UTC), not the session’s', async () => {
    const session = { call_session_id: 'midnight', call_type: 'livestream', call_id: 'nye' };
    await insertCallSession(pool(), session);
    const entries: WireEntry[] = [
      {
        user_id: 'early',
        user_session_id: 'm-1',
        publisher_type: 'webrtc',
        roles: [],
        joined_at: '2026-06-30T23:50:00Z',
        left_at: '2026-07-01T00:10:00Z',
        duration_in_seconds: 1200,
      },
      {
        user_id: 'late',
        user_session_id: 'm-2',
        publisher_type: 'webrtc',
        roles: [],
        joined_at: '2026-07-01T00:05:00Z',
        left_at: '2026-07-01T00:15:00Z',
        duration_in_seconds: 600,
      },
      // Start derived from left_at − duration.
      { user_id: 'derived', user_session_id: 'm-3', publisher_type: 'webrtc', roles: [], left_at: '2026-07-01T00:01:00Z', duration_in_seconds: 120 },
    ];
    await insertEntries(pool(), session, entries);
    await refreshAll(pool());
    const months = (
      await pool().query(
        `select user_id, to_char(month, 'YYYY-MM') as month from monthly_user_attendance where user_id in ('early', 'late', 'derived') order by user_id`,
      )
    ).rows;
    expect(months).toEqual([
      { user_id: 'derived', month: '2026-06' },
      { user_id: 'early', month: '2026-06' },
      { user_id: 'late', month: '2026-07' },
    ]);
    const days = (
      await pool().query(
        `select to_char(day, 'YYYY-MM-DD') as day, users from daily_call_type_attendance where call_type = 'livestream' and day >= '2026-06-30' order by day`,
      )
    ).rows;
    expect(days).toEqual([
      { day: '2026-06-30', users: 2 },
      { day: '2026-07-01', users: 1 },
    ]);
  });
});
