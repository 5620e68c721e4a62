import { readFile } from 'node:fs/promises';
import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import { MIGRATIONS_DIR } from '../../src/db/migrate.ts';
import { sweepPendingRollups } from '../../src/rollup/refresh.ts';
import { generateAttendanceDataset, insertDataset, sessionStartCopies, VIEW_SNAPSHOT_SQL } from '../helpers/attendance-data.ts';
import { useTestDatabase } from '../helpers/db.ts';

/*
 * Upgrading an archive that already holds entries: migration 0006 must mark every session with
 * entries, so the views answer exactly what they answered before it, and the sweep then fills the
 * rollups without changing any answer; migration 0007 then completes those rollups in place.
 */

async function applyMigration(pool: pg.Pool, tag: string): Promise<void> {
  const text = await readFile(`${MIGRATIONS_DIR}/${tag}.sql`, 'utf8');
  for (const statement of text.split('--> statement-breakpoint')) {
    if (statement.replace(/--.*$/gm, '').trim() !== '') await pool.query(statement);
  }
}

const { attendance: ATTENDANCE_SQL, sessions: SESSIONS_SQL } = VIEW_SNAPSHOT_SQL;

describe('migration 0006 on an archive that already holds entries', () => {
  const db = useTestDatabase({ migrated: false });

  it('marks every session with entries; the views answer as before, during and after the sweep', async () => {
    const { pool } = db.current.database;
    const journal = JSON.parse(await readFile(`${MIGRATIONS_DIR}/meta/_journal.json`, 'utf8')) as { entries: { tag: string }[] };
    const tags = journal.entries.map((e) => e.tag);
    const rollups = tags.indexOf('0006_attendance_rollups');
    expect(rollups).toBeGreaterThan(0);
    for (const tag of tags.slice(0, rollups)) await applyMigration(pool, tag);

    const dataset = generateAttendanceDataset(6, Date.parse('2026-04-01T00:00:00Z'));
    await insertDataset(pool, dataset);
    const attendanceBefore = (await pool.query(ATTENDANCE_SQL)).rows;
    const sessionsBefore = (await pool.query(SESSIONS_SQL)).rows;
    expect(attendanceBefore.length).toBeGreaterThan(50);

    await applyMigration(pool, '0006_attendance_rollups');
    const withEntries = new Set(dataset.filter((s) => s.entries.length > 0).map((s) => s.seed.call_session_id));
    const marked = await pool.query<{ call_session_id: string }>('select call_session_id from rollup_pending');
    expect(new Set(marked.rows.map((r) => r.call_session_id))).toEqual(withEntries);
    expect((await pool.query(ATTENDANCE_SQL)).rows).toEqual(attendanceBefore);
    expect((await pool.query(SESSIONS_SQL)).rows).toEqual(sessionsBefore);

    // Half swept, then all: the answers never change.
    expect(await sweepPendingRollups(pool, { batch: Math.ceil(withEntries.size / 2), signal: AbortSignal.abort() })).toMatchObject({ sessions: 0 });
    await pool.query(`select attendance_rollup_refresh(array(select call_session_id from rollup_pending order by 1 limit ${Math.ceil(withEntries.size / 2)}))`);
    expect((await pool.query(ATTENDANCE_SQL)).rows).toEqual(attendanceBefore);
    expect((await pool.query(SESSIONS_SQL)).rows).toEqual(sessionsBefore);
    expect(await sweepPendingRollups(pool)).toMatchObject({ sessions: withEntries.size - Math.ceil(withEntries.size / 2), interrupted: false });
    expect((await pool.query('select count(*)::int as n from rollup_pending')).rows[0].n).toBe(0);
    expect((await pool.query(ATTENDANCE_SQL)).rows).toEqual(attendanceBefore);
    expect((await pool.query(SESSIONS_SQL)).rows).toEqual(sessionsBefore);

    // Migration 0007 on those rollups: each row gets its session's start, the views' answers stay,
    // and nothing needs refreshing again.
    await applyMigration(pool, '0007_attendance_at_scale');
    const copies = await sessionStartCopies(pool);
    expect(copies.rows).toBeGreaterThan(50);
    expect(copies.differing).toBe(0);
    expect((await pool.query('select count(*)::int as n from rollup_pending')).rows[0].n).toBe(0);
    expect((await pool.query(ATTENDANCE_SQL)).rows).toEqual(attendanceBefore);
    expect((await pool.query(SESSIONS_SQL)).rows).toEqual(sessionsBefore);
    // A refresh by 0007's function finds nothing to change in what 0006's wrote.
    const before = (await pool.query('select (r.*)::text as row from attendance_rollup r order by 1')).rows;
    await pool.query('select attendance_rollup_refresh(array(select call_session_id from session_rollup))');
    expect((await pool.query('select (r.*)::text as row from attendance_rollup r order by 1')).rows).toEqual(before);
  });
});
