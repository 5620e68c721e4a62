import type pg from 'pg';
import type { SimSession } from '../../tools/simulator/generate.ts';

export interface ArchiveCheck {
  readonly sessions: number;
  readonly rows: number;
  /** Call sessions by status, as stored. */
  readonly statuses: Record<string, number>;
  /** Every difference from the ground truth; empty means the archive equals it exactly. */
  readonly problems: string[];
}

const MAX_PROBLEMS = 25;

interface StoredRow {
  user_session_id: string;
  call_type: string;
  call_id: string;
  user_id: string;
  joined_at: string | null;
  left_at: string | null;
  duration_in_seconds: number | null;
  publisher_type: string;
  roles: string[];
}

/**
 * Compares the archive with the simulator's sessions, field by field: every session complete and
 * verified against its size, every entry present once with user_id, joined_at, left_at (to the
 * microsecond), duration_in_seconds, publisher_type and roles equal, and nothing else stored.
 */
export async function checkArchive(pool: pg.Pool, truth: readonly SimSession[]): Promise<ArchiveCheck> {
  const problems: string[] = [];
  const problem = (text: string) => {
    if (problems.length < MAX_PROBLEMS) problems.push(text);
    else if (problems.length === MAX_PROBLEMS) problems.push('… more problems not listed');
  };
  const statusRows = (await pool.query<{ status: string; n: number }>('select status, count(*)::int as n from call_sessions group by status')).rows;
  const statuses = Object.fromEntries(statusRows.map((r) => [r.status, r.n]));

  const stored = new Map(
    (
      await pool.query<{ id: string; status: string; total: number | null; archived: number; last_error: string | null }>(
        `select call_session_id as id, status, total_participant_sessions as total, archived_participant_sessions as archived, last_error
           from call_sessions`,
      )
    ).rows.map((r) => [r.id, r]),
  );
  const expectedIds = new Set(truth.map((s) => s.callSessionId));
  for (const id of stored.keys()) if (!expectedIds.has(id)) problem(`call_sessions holds ${id}, which no webhook or listing announced`);

  let rows = 0;
  for (const session of truth) {
    const id = session.callSessionId;
    const size = session.participants.length;
    const row = stored.get(id);
    if (!row) {
      problem(`session ${id} (${size} entries) is missing from call_sessions`);
      continue;
    }
    if (row.status !== 'complete') problem(`session ${id} (${size} entries) is ${row.status}: ${row.last_error ?? 'no error recorded'}`);
    if (row.total !== size) problem(`session ${id}: total_participant_sessions ${row.total}, Stream has ${size}`);
    if (row.archived !== size) problem(`session ${id}: archived_participant_sessions ${row.archived}, Stream has ${size}`);

    const archived = (
      await pool.query<StoredRow>(
        `select user_session_id, call_type, call_id, user_id,
                to_char(joined_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US') as joined_at,
                to_char(left_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US') as left_at,
                duration_in_seconds, publisher_type, roles
           from participant_sessions where call_session_id = $1`,
        [id],
      )
    ).rows;
    rows += archived.length;
    const byId = new Map(archived.map((r) => [r.user_session_id, r]));
    if (byId.size !== archived.length) problem(`session ${id}: a user_session_id is stored twice`);
    if (archived.length !== size) problem(`session ${id}: ${archived.length} rows archived, Stream has ${size}`);
    const missing: string[] = [];
    for (const entry of session.participants) {
      const got = byId.get(entry.user_session_id);
      if (!got) {
        missing.push(entry.user_session_id);
        continue;
      }
      byId.delete(entry.user_session_id);
      const want = {
        call_type: session.callType,
        call_id: session.callId,
        user_id: entry.user_id,
        joined_at: microseconds(entry.joined_at),
        left_at: microseconds(entry.left_at),
        duration_in_seconds: entry.duration_in_seconds,
        publisher_type: entry.publisher_type,
        roles: entry.roles,
      };
      for (const [field, value] of Object.entries(want)) {
        const actual = got[field as keyof StoredRow];
        if (JSON.stringify(actual) !== JSON.stringify(value)) {
          problem(`session ${id}, entry ${entry.user_session_id}: ${field} is ${JSON.stringify(actual)}, Stream has ${JSON.stringify(value)}`);
        }
      }
    }
    if (missing.length > 0) problem(`session ${id}: ${missing.length} of ${size} entries missing (first ${missing.slice(0, 2).join(', ')})`);
    if (byId.size > 0) problem(`session ${id}: holds ${byId.size} entries Stream does not have (first ${[...byId.keys()].slice(0, 2).join(', ')})`);
  }

  const total = (await pool.query<{ n: number }>('select count(*)::int as n from participant_sessions')).rows[0]!.n;
  if (total !== rows) problem(`participant_sessions holds ${total - rows} rows of sessions Stream does not have`);
  return { sessions: stored.size, rows: total, statuses, problems };
}

/** The form to_char(…, 'US') gives: ISO without the zone, six fractional digits. */
function microseconds(date: Date | null): string | null {
  return date === null ? null : `${date.toISOString().slice(0, 23)}000`;
}
