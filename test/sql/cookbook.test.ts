import { readFile } from 'node:fs/promises';
import { beforeAll, describe, expect, it } from 'vitest';
import { DAY_MS } from '../../src/time.ts';
import { useTestDatabase } from '../helpers/db.ts';
import {
  expectedAttendance,
  expectedSession,
  generateAttendanceDataset,
  groupBy,
  insertDataset,
  type DatasetSession,
  type ExpectedAttendance,
} from '../helpers/attendance-data.ts';

const MARCH = [Date.parse('2026-03-01T00:00:00Z'), Date.parse('2026-04-01T00:00:00Z')] as const;

/** The cookbook's queries, read from docs/sql.md so the documentation and the tests cannot drift apart. */
async function readCookbook(): Promise<Map<string, string>> {
  const text = await readFile(new URL('../../docs/sql.md', import.meta.url), 'utf8');
  const queries = new Map<string, string>();
  for (const match of text.matchAll(/```sql\n-- id: ([a-z0-9-]+)\n([\s\S]*?)```/g)) {
    if (queries.has(match[1]!)) throw new Error(`duplicate cookbook id ${match[1]}`);
    queries.set(match[1]!, match[2]!);
  }
  return queries;
}

// numeric round(x, 1) rounds halves away from zero; minutes here are whole seconds / 60.
const minutes = (seconds: number): number => Math.round(seconds / 6) / 10;
const inMarch = (ms: number | undefined): boolean => ms !== undefined && ms >= MARCH[0] && ms < MARCH[1];
const month = (ms: number): string => new Date(ms).toISOString().slice(0, 7);
/** A `date` column as node-postgres returns it (local midnight) back to YYYY-MM-DD. */
const dateOnly = (value: Date | string): string =>
  typeof value === 'string' ? value : `${value.getFullYear()}-${String(value.getMonth() + 1).padStart(2, '0')}-${String(value.getDate()).padStart(2, '0')}`;

describe('docs/sql.md cookbook', () => {
  const db = useTestDatabase();
  const now = Date.now();
  const dataset: DatasetSession[] = generateAttendanceDataset(20_260_301, now);
  let cookbook: Map<string, string>;
  let attendance: ExpectedAttendance[];

  const run = async (id: string) => {
    const query = cookbook.get(id);
    if (!query) throw new Error(`docs/sql.md has no query with id ${id}`);
    return (await db.current.database.pool.query(query)).rows;
  };
  const sessionOf = (id: string) => dataset.find((s) => s.seed.call_session_id === id)!;

  beforeAll(async () => {
    cookbook = await readCookbook();
    await insertDataset(db.current.database.pool, dataset);
    // The cookbook runs on the rolled-up archive (what a running service keeps); test/sql/views.test.ts
    // reads the views while every session is still marked, and test/sql/rollups.test.ts compares the two.
    await db.current.database.pool.query('select attendance_rollup_refresh(array(select call_session_id from rollup_pending))');
    attendance = dataset.flatMap((s) => expectedAttendance(s.seed.call_session_id, s.entries));
  });

  it('answers at least the eight questions users ask most (issue 8), each with a query', () => {
    expect([...cookbook.keys()]).toEqual(
      expect.arrayContaining([
        'minutes-per-user-per-month',
        'under-half-of-class',
        'peak-concurrency',
        'rejoin-counts',
        'publishers-by-type',
        'sessions-not-archived',
        'sessions-near-expiry',
        'filtered-subset-totals',
      ]),
    );
    expect(cookbook.size).toBeGreaterThanOrEqual(8);
  });

  it('minutes per user per month', async () => {
    const expected = [
      ...groupBy(
        attendance.filter((a) => a.first_joined_at !== undefined),
        (a) => `${a.user_id}|${month(a.first_joined_at!)}`,
      ),
    ]
      .map(([key, rows]) => ({
        user_id: key.split('|')[0],
        month: key.split('|')[1],
        sessions: rows.length,
        attended_minutes: minutes(rows.reduce((s, r) => s + r.attended_seconds, 0)),
        summed_minutes: minutes(rows.reduce((s, r) => s + r.summed_seconds, 0)),
      }))
      .sort((a, b) => a.user_id!.localeCompare(b.user_id!) || a.month!.localeCompare(b.month!));
    const rows = (await run('minutes-per-user-per-month')).map((r) => ({
      ...r,
      sessions: Number(r.sessions),
      attended_minutes: Number(r.attended_minutes),
      summed_minutes: Number(r.summed_minutes),
    }));
    expect(new Set(expected.map((e) => e.month))).toEqual(new Set(['2026-02', '2026-03']));
    expect(rows).toEqual(expected);
  });

  it('minutes per user in one month, large-archive form', async () => {
    const expected = [
      ...groupBy(
        attendance.filter((a) => inMarch(a.first_joined_at)),
        (a) => a.user_id,
      ),
    ]
      .map(([user_id, rows]) => ({ user_id, sessions: rows.length, attended_minutes: minutes(rows.reduce((s, r) => s + r.attended_seconds, 0)) }))
      .sort((a, b) => a.user_id.localeCompare(b.user_id));
    const rows = (await run('minutes-per-user-one-month')).map((r) => ({ ...r, sessions: Number(r.sessions), attended_minutes: Number(r.attended_minutes) }));
    expect(expected.length).toBeGreaterThan(5);
    expect(rows).toEqual(expected);
  });

  it('every user’s minutes in one month, from the report table', async () => {
    const expected = [
      ...groupBy(
        attendance.filter((a) => inMarch(a.first_joined_at)),
        (a) => a.user_id,
      ),
    ]
      .map(([user_id, rows]) => ({
        user_id,
        sessions: rows.length,
        attended_minutes: minutes(rows.reduce((s, r) => s + r.attended_seconds, 0)),
        summed_minutes: minutes(rows.reduce((s, r) => s + r.summed_seconds, 0)),
      }))
      .sort((a, b) => a.user_id.localeCompare(b.user_id));
    const rows = (await run('monthly-report-minutes-per-user')).map((r) => ({
      ...r,
      attended_minutes: Number(r.attended_minutes),
      summed_minutes: Number(r.summed_minutes),
    }));
    expect(expected.length).toBeGreaterThan(5);
    expect(rows).toEqual(expected);
  });

  it('users and hours per call type per day, from the report table', async () => {
    const day = (ms: number): string => new Date(ms).toISOString().slice(0, 10);
    const hours = (seconds: number): number => Math.round(seconds / 36) / 100;
    const expected = [
      ...groupBy(
        attendance.filter((a) => inMarch(a.first_joined_at)),
        (a) => `${day(a.first_joined_at!)}|${sessionOf(a.call_session_id).seed.call_type}`,
      ),
    ]
      .map(([key, rows]) => ({
        day: key.split('|')[0],
        call_type: key.split('|')[1],
        users: new Set(rows.map((r) => r.user_id)).size,
        sessions: rows.length,
        attended_hours: hours(rows.reduce((s, r) => s + r.attended_seconds, 0)),
      }))
      .sort((a, b) => a.day!.localeCompare(b.day!) || a.call_type!.localeCompare(b.call_type!));
    const rows = (await run('daily-report-call-types')).map((r) => ({ ...r, day: dateOnly(r.day), attended_hours: Number(r.attended_hours) }));
    expect(new Set(expected.map((e) => e.call_type))).toEqual(new Set(['classroom', 'livestream']));
    expect(rows).toEqual(expected);
  });

  it('one user, one month', async () => {
    const expected = attendance
      .filter((a) => a.user_id === 'student-03' && inMarch(a.session_started_at))
      .sort((a, b) => a.session_started_at! - b.session_started_at!);
    const rows = await run('one-user-one-month');
    expect(expected.length).toBeGreaterThan(2);
    expect(rows.map((r) => r.call_session_id)).toEqual(expected.map((e) => e.call_session_id));
    rows.forEach((row, i) => {
      const want = expected[i]!;
      expect(row.first_joined_at.getTime()).toBe(want.first_joined_at);
      expect(row.last_left_at?.getTime()).toBe(want.last_left_at);
      expect(row.join_count).toBe(want.join_count);
      expect(Number(row.attended_minutes)).toBe(minutes(want.attended_seconds));
      expect(Number(row.share)).toBeCloseTo(want.attended_share!, 2);
    });
  });

  it('who attended less than half of a class', async () => {
    const expected = attendance
      .filter((a) => a.call_session_id.startsWith('algebra-101-') && a.attended_share !== null && a.attended_share < 0.5)
      .sort((a, b) => a.call_session_id.localeCompare(b.call_session_id) || a.user_id.localeCompare(b.user_id));
    const rows = await run('under-half-of-class');
    expect(expected.length).toBeGreaterThan(3);
    expect(rows.map((r) => `${r.call_session_id}/${r.user_id}`)).toEqual(expected.map((e) => `${e.call_session_id}/${e.user_id}`));
    rows.forEach((row, i) => {
      expect(Number(row.share)).toBeCloseTo(expected[i]!.attended_share!, 2);
      expect(Number(row.attended_minutes)).toBe(minutes(expected[i]!.attended_seconds));
    });
  });

  it('peak concurrency', async () => {
    const expected = dataset
      .filter((s) => s.seed.call_id === 'algebra-101')
      .map((s) => expectedSession(s.seed.call_session_id, s.entries))
      .sort((a, b) => (a.session_started_at ?? Infinity) - (b.session_started_at ?? Infinity) || a.call_session_id.localeCompare(b.call_session_id));
    const rows = await run('peak-concurrency');
    expect(rows).toEqual(
      expected.map((e) => ({
        call_session_id: e.call_session_id,
        session_started_at: e.session_started_at === undefined ? null : new Date(e.session_started_at),
        participants: e.participants,
        peak_concurrent_participants: e.peak_concurrent_participants,
      })),
    );
    expect(Math.max(...expected.map((e) => e.peak_concurrent_participants))).toBeGreaterThan(3);
  });

  it('rejoin counts', async () => {
    const expected = attendance
      .filter((a) => a.join_count > 1)
      .sort((a, b) => a.call_session_id.localeCompare(b.call_session_id) || a.user_id.localeCompare(b.user_id))
      .map((a) => ({
        call_session_id: a.call_session_id,
        user_id: a.user_id,
        join_count: a.join_count,
        stretches: a.stretches,
        rejoins_after_absence: Math.max(a.stretches - 1, 0),
      }));
    expect(expected.some((e) => e.rejoins_after_absence > 0)).toBe(true);
    expect(expected.some((e) => e.rejoins_after_absence === 0)).toBe(true);
    expect(await run('rejoin-counts')).toEqual(expected);
  });

  it('publishers by type', async () => {
    const entries = dataset.flatMap((s) => s.entries.map((e) => ({ ...e, call_session_id: s.seed.call_session_id })));
    const expected = [...groupBy(entries, (e) => e.publisher_type)]
      .map(([publisher_type, rows]) => ({
        publisher_type,
        entries: rows.length,
        users: new Set(rows.map((r) => r.user_id)).size,
        sessions: new Set(rows.map((r) => r.call_session_id)).size,
        seconds: rows.reduce((s, r) => s + (r.duration_in_seconds ?? 0), 0),
      }))
      .sort((a, b) => a.publisher_type.localeCompare(b.publisher_type));
    expect(expected.map((e) => e.publisher_type)).toEqual(['rtmp', 'srt', 'webrtc']);
    expect(await run('publishers-by-type')).toEqual(expected);
  });

  it('sessions not yet archived', async () => {
    const expected = dataset
      .filter((s) => s.seed.status !== 'complete')
      .sort((a, b) => a.seed.retention_expires_at!.getTime() - b.seed.retention_expires_at!.getTime());
    const rows = await run('sessions-not-archived');
    expect(rows.map((r) => [r.call_session_id, r.status, r.archived_participant_sessions, r.last_error])).toEqual(
      expected.map((s) => [s.seed.call_session_id, s.seed.status, s.seed.archived_participant_sessions ?? 0, s.seed.last_error ?? null]),
    );
    expect(rows.map((r) => r.call_cid)).toEqual(expected.map((s) => `${s.seed.call_type}:${s.seed.call_id}`));
  });

  it('sessions not complete, with their attendance', async () => {
    const expected = dataset
      .filter((s) => s.seed.status !== 'complete')
      .sort((a, b) => a.seed.retention_expires_at!.getTime() - b.seed.retention_expires_at!.getTime())
      .map((s) => {
        const e = expectedSession(s.seed.call_session_id, s.entries);
        return [s.seed.call_session_id, s.seed.status, e.participants, e.entries, minutes(e.attended_seconds), s.seed.total_participant_sessions ?? null];
      });
    const rows = await run('sessions-not-complete-attendance');
    expect(expected.some((e) => (e[3] as number) > 0)).toBe(true);
    expect(rows.map((r) => [r.call_session_id, r.status, r.participants, r.entries, Number(r.attended_minutes), r.total_participant_sessions])).toEqual(
      expected,
    );
  });

  it('sessions near expiry', async () => {
    const expected = dataset
      .filter((s) => s.seed.status !== 'complete' && s.seed.status !== 'expired' && s.seed.retention_expires_at!.getTime() < now + 14 * DAY_MS)
      .sort((a, b) => a.seed.retention_expires_at!.getTime() - b.seed.retention_expires_at!.getTime());
    const rows = await run('sessions-near-expiry');
    expect(expected.length).toBe(3);
    expect(rows.map((r) => r.call_session_id)).toEqual(expected.map((s) => s.seed.call_session_id));
    rows.forEach((row, i) => {
      const daysLeft = (expected[i]!.seed.retention_expires_at!.getTime() - now) / DAY_MS;
      expect(Math.abs(Number(row.days_left) - daysLeft)).toBeLessThanOrEqual(0.1);
    });
  });

  it('totals for a filtered subset (the students of each class session)', async () => {
    const expected = dataset
      .filter((s) => s.seed.call_id === 'algebra-101' && s.entries.length > 0)
      .map((s) => {
        const students = new Set(s.entries.filter((e) => e.roles.includes('student')).map((e) => e.user_id));
        const rows = expectedAttendance(s.seed.call_session_id, s.entries).filter((a) => students.has(a.user_id));
        return {
          call_session_id: s.seed.call_session_id,
          students: rows.length,
          entries: rows.reduce((n, r) => n + r.join_count, 0),
          summed_seconds: rows.reduce((n, r) => n + r.summed_seconds, 0),
          attended_seconds: rows.reduce((n, r) => n + r.attended_seconds, 0),
          average_share: rows.reduce((n, r) => n + (r.attended_share ?? 0), 0) / rows.length,
        };
      })
      .sort((a, b) => a.call_session_id.localeCompare(b.call_session_id));
    const rows = await run('filtered-subset-totals');
    expect(
      rows.map((r) => ({
        ...r,
        students: Number(r.students),
        entries: Number(r.entries),
        summed_seconds: Number(r.summed_seconds),
        attended_seconds: Number(r.attended_seconds),
        average_share: 0,
      })),
    ).toEqual(expected.map((e) => ({ ...e, average_share: 0 })));
    for (const [i, row] of rows.entries()) expect(Number(row.average_share)).toBeCloseTo(expected[i]!.average_share, 2);
    // The teacher is in every session but not in the subset.
    expect(
      rows.every((row, i) => Number(row.students) < expectedSession(row.call_session_id, sessionOf(row.call_session_id).entries).participants && i >= 0),
    ).toBe(true);
  });

  it('sessions whose archive disagrees with Stream', async () => {
    const expected = dataset
      .filter((s) => s.seed.status === 'complete')
      .map((s) => ({ s, held: expectedSession(s.seed.call_session_id, s.entries) }))
      .filter(({ s, held }) => s.seed.total_participant_sessions !== held.entries || s.seed.total_participant_duration !== held.summed_seconds)
      .map(({ s }) => s.seed.call_session_id)
      .sort();
    const rows = await run('archive-mismatches');
    expect(expected).toHaveLength(1);
    expect(rows.map((r) => r.call_session_id)).toEqual(expected);
    expect(rows[0].total_participant_sessions).toBe(Number(rows[0].entries) + 1);
  });
});
