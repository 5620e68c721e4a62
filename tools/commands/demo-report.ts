import type pg from 'pg';
import type { SimSession } from '../simulator/generate.ts';

export interface DemoReport {
  readonly text: string;
  readonly allVerified: boolean;
}

/** Example queries the demo runs and prints with their results, as a first taste of the SQL interface. */
export const DEMO_QUERIES = [
  {
    title: 'Top five attendees by attended minutes (rejoins and second devices merged), across all sessions',
    sql: `select user_id, count(*) as sessions, sum(join_count) as entries,
       round(sum(summed_seconds) / 60.0, 1) as summed_minutes,
       round(sum(attended_seconds) / 60.0, 1) as attended_minutes
  from attendance
 where call_session_id = any($1)
 group by user_id
 order by attended_minutes desc, user_id
 limit 5`,
  },
  {
    title: 'Who attended less than half of the largest session',
    sql: `select count(*) filter (where attended_share < 0.5) as under_half,
       count(*) as attendees,
       round(avg(attended_share)::numeric, 3) as average_share
  from attendance
 where call_session_id = (select call_session_id from call_session_attendance
                           where call_session_id = any($1) order by entries desc limit 1)`,
  },
] as const;

/**
 * Per session: what we hold against Stream's totals (stored on call_sessions by the worker) and
 * against the simulator's ground truth; then the example queries.
 */
export async function renderReport(pool: pg.Pool, sessions: readonly SimSession[]): Promise<DemoReport> {
  const ids = sessions.map((s) => s.callSessionId);
  const { rows } = await pool.query<{
    call_session_id: string;
    call_cid: string;
    status: string;
    total: number | null;
    users: number;
    entries: number;
    summed: number | null;
    attended: number | null;
    peak: number | null;
  }>(
    `select call_session_id, call_type || ':' || call_id as call_cid, status,
            total_participant_sessions as total, participants as users, entries,
            summed_seconds::float8 as summed, attended_seconds::float8 as attended,
            peak_concurrent_participants as peak
       from call_session_attendance
      where call_session_id = any($1)`,
    [ids],
  );
  const byId = new Map(rows.map((r) => [r.call_session_id, r]));
  const table: string[][] = [['call', 'session', 'participants', 'peak', 'entries', 'minutes', 'attended', 'verified']];
  let allVerified = true;
  for (const session of sessions) {
    const row = byId.get(session.callSessionId);
    const truth = session.participants.length;
    const verified = row !== undefined && row.status === 'complete' && row.entries === truth && row.total === truth;
    allVerified &&= verified;
    table.push([
      row?.call_cid ?? `${session.callType}:${session.callId}`,
      session.callSessionId.slice(0, 8),
      String(row?.users ?? 0),
      String(row?.peak ?? 0),
      String(row?.entries ?? 0),
      ((row?.summed ?? 0) / 60).toFixed(1),
      ((row?.attended ?? 0) / 60).toFixed(1),
      verified ? `yes (${truth} = Stream's total)` : `NO: held ${row?.entries ?? 0}, Stream ${row?.total ?? '?'}, truth ${truth}`,
    ]);
  }
  const parts = [`Attendance report (${sessions.length} call sessions; minutes = summed durations, attended = overlaps merged per user)`, formatTable(table)];
  for (const query of DEMO_QUERIES) {
    const result = await pool.query(query.sql, [ids]);
    parts.push('', `${query.title}:`, indent(query.sql.replace('$1', "'{…this demo's sessions…}'")), '');
    const header = result.fields.map((f) => f.name);
    parts.push(formatTable([header, ...result.rows.map((r) => header.map((h) => String(r[h] ?? '')))]));
  }
  parts.push('', allVerified ? "Every session verified against Stream's totals." : 'Some sessions did not verify.');
  return { text: parts.join('\n'), allVerified };
}

function formatTable(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  const last = widths.length - 1;
  return rows
    .map((r, n) => {
      const line = r.map((cell, i) => (i === 0 || (i === last && last > 1 && n === 0) ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ');
      return n === 0 ? `  ${line}\n  ${widths.map((w) => '-'.repeat(w)).join('  ')}` : `  ${line}`;
    })
    .join('\n');
}

function indent(text: string): string {
  return text
    .split('\n')
    .map((l) => `    ${l}`)
    .join('\n');
}

/** The query the hand-over suggests: short, on the documented `attendance` view (docs/sql.md). */
export const HANDOVER_QUERY =
  'select user_id, count(*) as sessions, round(sum(attended_seconds) / 60, 1) as attended_minutes from attendance group by user_id order by attended_minutes desc limit 5';

export interface HandoverOptions {
  readonly keep: boolean;
  /** The demo database on the embedded server; undefined when the demo ran on the user's DATABASE_URL. */
  readonly demoUrl: string | undefined;
  /** Absolute folder of the embedded server, when it was used. */
  readonly embeddedDir: string | undefined;
}

/**
 * What to do after the demo: where its data is and how to query it, how to keep it, and how to
 * point the real service at a Stream app. Every command line printed here works as printed; the
 * embedded server's URL carries only its fixed local password, the user's DATABASE_URL is never
 * echoed (it may hold a real one).
 */
export function renderHandover(options: HandoverOptions): string {
  const lines = ['What next'];
  if (options.demoUrl === undefined) {
    lines.push(
      "  The demo's data stays in your DATABASE_URL:",
      '    status:            npx attendance status',
      `    query:             psql "$DATABASE_URL" -c "${HANDOVER_QUERY}"`,
    );
  } else if (options.keep) {
    lines.push(
      `  Kept: the embedded Postgres in ${options.embeddedDir} keeps running with the demo database.`,
      `    connection string: ${options.demoUrl}`,
      `    status:            DATABASE_URL='${options.demoUrl}' npx attendance status`,
      `    query:             psql '${options.demoUrl}' -c "${HANDOVER_QUERY}"`,
      `    stop it:           ${stopCommand(options.embeddedDir!)}`,
    );
  } else {
    const shape = options.demoUrl.replace(/:\d+\//, ':<port>/');
    lines.push(
      `  The embedded Postgres in ${options.embeddedDir} has stopped; the next demo recreates its database.`,
      '  To keep it running with this data: npx attendance demo --keep. It then prints its connection string',
      `  (${shape}) and a status command; a query to try:`,
      `    query:             psql '<connection string>' -c "${HANDOVER_QUERY}"`,
    );
  }
  lines.push('  More queries on the views attendance and call_session_attendance: docs/sql.md.');
  lines.push(
    '  Archive your own Stream app:',
    "    export DATABASE_URL='postgres://USER:PASSWORD@HOST:5432/DATABASE'",
    "    export STREAM_API_KEY='<your app key>' STREAM_API_SECRET='<your app secret>'",
    '    npx attendance migrate',
    '    npx attendance serve          # listens on PORT (default 8080)',
    "  then set your app's webhook URL in Stream's dashboard to https://<your host>/webhooks/stream",
    '  (events call.session_ended and call.stats_report_ready).',
  );
  return lines.join('\n');
}

/** SIGINT is Postgres's fast shutdown; the postmaster's pid is the first line of its pid file. */
export function stopCommand(embeddedDir: string): string {
  return `kill -INT $(head -1 '${embeddedDir}/pg/postmaster.pid')`;
}
