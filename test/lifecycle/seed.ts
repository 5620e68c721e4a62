/** Rows for the retention and erasure tests, written straight into the tables. */
import type pg from 'pg';
import type { SessionStatus } from '../../src/db/schema.ts';
import { retentionExpiresAt } from '../../src/stream/retention.ts';
import { daysAgo, insertSessionRows } from '../helpers/session-rows.ts';

export async function seedSession(
  pool: pg.Pool,
  row: { id: string; status?: SessionStatus; endedDaysAgo?: number | null; total?: number; archived?: number; reportedDaysAgo?: number },
): Promise<void> {
  // As a finished archive leaves it: archived when the session ended, Stream's 90 days counted from then.
  const ended = row.endedDaysAgo == null ? null : daysAgo(row.endedDaysAgo);
  await insertSessionRows(pool, [
    {
      call_session_id: row.id,
      status: row.status ?? 'complete',
      session_ended_at: ended,
      total_participant_sessions: row.total ?? null,
      total_participant_duration: row.total == null ? null : row.total * 60,
      archived_participant_sessions: row.archived ?? 0,
      archived_at: ended,
      stats_report_ready_at: row.reportedDaysAgo === undefined ? null : daysAgo(row.reportedDaysAgo),
      retention_expires_at: ended && retentionExpiresAt(ended),
    },
  ]);
}

export async function seedEntry(
  pool: pg.Pool,
  row: { session: string; user: string; userSession: string; joinedDaysAgo: number | null; leftDaysAgo?: number | null; roles?: string[]; raw?: unknown },
): Promise<void> {
  const joined = row.joinedDaysAgo === null ? null : daysAgo(row.joinedDaysAgo);
  const left =
    row.leftDaysAgo === undefined ? (joined ? new Date(joined.getTime() + 600_000) : null) : row.leftDaysAgo === null ? null : daysAgo(row.leftDaysAgo);
  const raw = row.raw ?? { user_id: row.user, user_session_id: row.userSession, roles: row.roles ?? ['user'], publisher_type: 'webrtc' };
  await pool.query(
    `insert into participant_sessions (call_session_id, user_session_id, call_type, call_id, user_id, joined_at, left_at,
                                       duration_in_seconds, publisher_type, roles, raw)
     values ($1, $2, 'default', 'call-' || $1, $3, $4, $5, 600, 'webrtc', $6, $7::jsonb)`,
    [row.session, row.userSession, row.user, joined, left, row.roles ?? ['user'], JSON.stringify(raw)],
  );
}

/** `payloadText` is stored as written (big integers stay exact), like intake stores a body. */
export async function seedEvent(pool: pg.Pool, row: { id: string; receivedDaysAgo: number; payloadText: string; session?: string }): Promise<void> {
  await pool.query(
    `insert into webhook_events (webhook_id, type, call_cid, session_id, received_at, payload)
     values ($1, coalesce(($4::jsonb)->>'type', 'call.session_participant_joined'), 'default:call-x', $2, $3, $4::jsonb)`,
    [row.id, row.session ?? null, daysAgo(row.receivedDaysAgo), row.payloadText],
  );
}

export async function seedResponse(pool: pg.Pool, session: string, response: unknown, updatedDaysAgo = 0): Promise<void> {
  await pool.query('insert into stream_responses (call_session_id, response, updated_at) values ($1, $2::jsonb, $3)', [
    session,
    JSON.stringify(response),
    daysAgo(updatedDaysAgo),
  ]);
}

/**
 * Every place in the public schema's tables where `needle` appears: each text, text[] and jsonb
 * column (jsonb and arrays as their text form, where the id is JSON-escaped).
 */
export async function findEverywhere(pool: pg.Pool, needle: string): Promise<string[]> {
  const { rows: columns } = await pool.query<{ table_name: string; column_name: string; data_type: string; udt_name: string }>(
    `select c.table_name, c.column_name, c.data_type, c.udt_name
       from information_schema.columns c join information_schema.tables t using (table_schema, table_name)
      where c.table_schema = 'public' and t.table_type = 'BASE TABLE'
        and (c.data_type in ('text', 'character varying', 'jsonb', 'json') or c.udt_name in ('_text', '_varchar'))`,
  );
  const escaped = JSON.stringify(needle).slice(1, -1);
  const found: string[] = [];
  for (const c of columns) {
    const { rows } = await pool.query<{ n: number }>(
      `select count(*)::int as n from "${c.table_name}" where strpos("${c.column_name}"::text, $1) > 0 or strpos("${c.column_name}"::text, $2) > 0`,
      [needle, escaped],
    );
    if ((rows[0]?.n ?? 0) > 0) found.push(`${c.table_name}.${c.column_name} (${rows[0]!.n})`);
  }
  if (columns.length < 20) throw new Error(`expected the schema's text columns, found only ${columns.length}`);
  return found.sort();
}
