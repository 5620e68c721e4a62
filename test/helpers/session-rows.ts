import type pg from 'pg';
import { SESSION_STATUS, type SessionStatus } from '../../src/db/schema.ts';
import { DAY_MS } from '../../src/time.ts';

/**
 * call_sessions rows written straight into the table, for tests of what reads or moves them. The
 * one place tests insert sessions: every other fixture (queue, ingest, lifecycle, attendance data)
 * maps its own shorthand onto `SessionRow` and calls `insertSessionRows`.
 */

/** A time the database works out at insert, `now()` plus this many seconds (negative: past). */
export interface DatabaseNow {
  readonly secondsFromNow: number;
}

/**
 * Times measured on the database clock, for tests that compare them with `now()` in SQL (a lease
 * that lapses in 5 s, a session due a minute ago); a JavaScript Date is enough elsewhere.
 */
export const databaseNow = (secondsFromNow = 0): DatabaseNow => ({ secondsFromNow });

export const daysFromNow = (days: number): Date => new Date(Date.now() + days * DAY_MS);
export const daysAgo = (days: number): Date => new Date(Date.now() - days * DAY_MS);

type Time = Date | DatabaseNow | null;

/**
 * One call_sessions row by its column names. Omitted: `call_type` 'default', `call_id`
 * `call-<call_session_id>`, `call_cid` always derived from both (the table's check), the table's
 * defaults for the columns that have one (status pending, attempts 0, times now()), else null.
 */
export interface SessionRow {
  call_session_id: string;
  call_type?: string;
  call_id?: string;
  status?: SessionStatus;
  total_participant_sessions?: number | null;
  total_participant_duration?: number | null;
  archived_participant_sessions?: number;
  session_ended_at?: Time;
  stats_report_ready_at?: Time;
  retention_expires_at?: Time;
  attempts?: number;
  next_attempt_at?: Time;
  lease_owner?: string | null;
  lease_expires_at?: Time;
  cursor?: string | null;
  last_error?: string | null;
  created_at?: Time;
  updated_at?: Time;
  archived_at?: Time;
}

const TIME_COLUMNS = [
  'session_ended_at',
  'stats_report_ready_at',
  'retention_expires_at',
  'next_attempt_at',
  'lease_expires_at',
  'created_at',
  'updated_at',
  'archived_at',
] as const;
/** The NOT NULL times whose table default is now(). */
const DEFAULT_NOW: ReadonlySet<string> = new Set(['next_attempt_at', 'created_at', 'updated_at']);

const timeSql = (column: string): string => {
  const given = `coalesce(r.${column}, now() + make_interval(secs => r.${column}_secs))`;
  return DEFAULT_NOW.has(column) ? `coalesce(${given}, now())` : given;
};

// One statement for any number of rows: the rows travel as one jsonb array.
const INSERT_SQL = `insert into call_sessions (call_session_id, call_type, call_id, call_cid, status,
    total_participant_sessions, total_participant_duration, archived_participant_sessions, attempts,
    lease_owner, cursor, last_error, ${TIME_COLUMNS.join(', ')})
  select r.call_session_id, r.call_type, r.call_id, r.call_type || ':' || r.call_id, r.status,
    r.total_participant_sessions, r.total_participant_duration, r.archived_participant_sessions,
    r.attempts, r.lease_owner, r.cursor, r.last_error, ${TIME_COLUMNS.map(timeSql).join(', ')}
  from jsonb_to_recordset($1::jsonb) as r(call_session_id text, call_type text, call_id text, status text,
    total_participant_sessions integer, total_participant_duration bigint, archived_participant_sessions integer,
    attempts integer, lease_owner text, cursor text, last_error text,
    ${TIME_COLUMNS.map((c) => `${c} timestamptz, ${c}_secs float8`).join(', ')})`;

/** Inserts the rows in one statement; see SessionRow for what an omitted column becomes. */
export async function insertSessionRows(pool: pg.Pool | pg.PoolClient, rows: readonly SessionRow[]): Promise<void> {
  if (rows.length === 0) return;
  const records = rows.map((row) => {
    const record: Record<string, unknown> = {
      ...row,
      call_type: row.call_type ?? 'default',
      call_id: row.call_id ?? `call-${row.call_session_id}`,
      status: row.status ?? SESSION_STATUS.pending,
      attempts: row.attempts ?? 0,
      archived_participant_sessions: row.archived_participant_sessions ?? 0,
    };
    for (const column of TIME_COLUMNS) {
      const value = row[column];
      if (value && !(value instanceof Date)) {
        record[column] = null;
        record[`${column}_secs`] = value.secondsFromNow;
      }
    }
    return record;
  });
  await pool.query(INSERT_SQL, [JSON.stringify(records)]);
}

/** A call_sessions row as stored, with its two deadlines also as seconds from now on the database clock. */
export interface StoredSessionRow {
  call_session_id: string;
  call_type: string;
  call_id: string;
  call_cid: string;
  status: SessionStatus;
  total_participant_sessions: number | null;
  total_participant_duration: number | null;
  archived_participant_sessions: number;
  session_ended_at: Date | null;
  stats_report_ready_at: Date | null;
  retention_expires_at: Date | null;
  attempts: number;
  next_attempt_at: Date;
  lease_owner: string | null;
  lease_expires_at: Date | null;
  cursor: string | null;
  last_error: string | null;
  created_at: Date;
  updated_at: Date;
  archived_at: Date | null;
  /** Seconds from now to next_attempt_at / lease_expires_at. */
  due_in: number;
  lease_in: number | null;
}

export async function readSessionRow(pool: pg.Pool, id: string): Promise<StoredSessionRow> {
  const result = await pool.query<StoredSessionRow>(
    `select *, extract(epoch from next_attempt_at - now())::float8 as due_in,
            extract(epoch from lease_expires_at - now())::float8 as lease_in
       from call_sessions where call_session_id = $1`,
    [id],
  );
  const row = result.rows[0];
  if (!row) throw new Error(`no call_sessions row ${id}`);
  return row;
}
