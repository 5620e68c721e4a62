/**
 * How the attendance views hold up at 1,000,000 participant sessions.
 *
 *   node bin/run-ts.js bench/sql-views.ts [--rows 1000000] [--runs 5]
 *
 * Creates its own database on the server of DATABASE_URL (default: the local Postgres), migrates it,
 * fills it with generated sessions, times the queries users run most (one session, one user's month,
 * every user's month) next to a plain count(*) over the same rows, appends the figures to
 * bench/RESULTS.md and drops the database. Every statement has a timeout and the whole run a deadline.
 */
import { appendFile } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { withBenchDatabase } from './lib/bench-env.ts';
import { MINUTE_MS } from '../src/time.ts';

const ENTRIES_PER_SESSION = 25;
const USERS = 20_000;
const LOAD_TIMEOUT_MS = 600_000;
const QUERY_TIMEOUT_MS = 60_000;
const DEADLINE_MS = 20 * MINUTE_MS;

interface Args {
  rows: number;
  runs: number;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { rows: 1_000_000, runs: 5 };
  for (let i = 0; i < argv.length; i += 2) {
    const value = Number(argv[i + 1]);
    if (argv[i] === '--rows' && Number.isInteger(value) && value >= ENTRIES_PER_SESSION) args.rows = value;
    else if (argv[i] === '--runs' && Number.isInteger(value) && value >= 1) args.runs = value;
    else throw new Error(`usage: sql-views.ts [--rows N>=${ENTRIES_PER_SESSION}] [--runs N>=1] (bad ${argv[i]})`);
  }
  return args;
}

/**
 * Sessions spread over January–March 2026, one every 194 s (about 40,000 in 90 days at 1M rows).
 * Entries 21–25 of a session reuse the users of entries 1–5, so a fifth of users have a second
 * device or a rejoin; one entry in 50 has no left_at. `raw` is shaped like Stream's entry.
 */
function loadStatements(sessions: number): string[] {
  return [
    `insert into call_sessions (call_session_id, call_type, call_id, call_cid, status, total_participant_sessions,
       total_participant_duration, archived_participant_sessions, session_ended_at, retention_expires_at)
     select 'cs-' || s, 'classroom', 'call-' || (s % 2000), 'classroom:call-' || (s % 2000),
       case when s % 100 = 0 then 'pending' else 'complete' end, ${ENTRIES_PER_SESSION}, null, ${ENTRIES_PER_SESSION},
       timestamptz '2026-01-01T00:00:00Z' + s * interval '194 seconds' + interval '1 hour',
       timestamptz '2026-01-01T00:00:00Z' + s * interval '194 seconds' + interval '90 days 1 hour'
     from generate_series(1, ${sessions}) s`,
    `insert into participant_sessions (call_session_id, user_session_id, call_type, call_id, user_id, joined_at, left_at,
       duration_in_seconds, publisher_type, roles, raw)
     select 'cs-' || s, 'us-' || s || '-' || e, 'classroom', 'call-' || (s % 2000), u.user_id,
       x.joined_at, case when (s + e) % 50 = 0 then null else x.joined_at + x.seconds * interval '1 second' end, x.seconds,
       x.publisher_type, '{user}',
       jsonb_build_object('user_id', u.user_id, 'user_session_id', 'us-' || s || '-' || e, 'publisher_type', x.publisher_type,
         'roles', jsonb_build_array('user'), 'joined_at', x.joined_at,
         'left_at', case when (s + e) % 50 = 0 then null else x.joined_at + x.seconds * interval '1 second' end,
         'duration_in_seconds', x.seconds)
     from generate_series(1, ${sessions}) s
     cross join generate_series(1, ${ENTRIES_PER_SESSION}) e
     cross join lateral (select 'user-' || ((s * 7 + (e % 20) * 1013) % ${USERS}) as user_id) u
     cross join lateral (
       select timestamptz '2026-01-01T00:00:00Z' + s * interval '194 seconds' + ((e * 37) % 600) * interval '1 second' as joined_at,
              300 + (e * 53 % 3000) as seconds,
              case when e % 10 = 0 then 'rtmp' else 'webrtc' end as publisher_type
     ) x`,
    'analyze',
  ];
}

const QUERIES: { name: string; sql: (ids: { session: string; user: string }) => string }[] = [
  { name: 'baseline: select count(*) from participant_sessions', sql: () => 'select count(*) from participant_sessions' },
  { name: 'attendance, one session', sql: ({ session }) => `select * from attendance where call_session_id = '${session}'` },
  { name: 'call_session_attendance, one session', sql: ({ session }) => `select * from call_session_attendance where call_session_id = '${session}'` },
  {
    name: 'attendance, one user, one month (session_started_at in February)',
    sql: ({ user }) => `select * from attendance where user_id = '${user}'
      and session_started_at >= '2026-02-01T00:00:00Z' and session_started_at < '2026-03-01T00:00:00Z'`,
  },
  {
    name: 'minutes per user, one month (docs form, sessions narrowed first)',
    sql: () => `select user_id, count(*) as sessions, round(sum(attended_seconds) / 60, 1) as attended_minutes
      from attendance
      where call_session_id = any (array(
          select call_session_id from participant_sessions
          where joined_at >= '2026-02-01T00:00:00Z' and joined_at < '2026-03-01T00:00:00Z'
          union
          select call_session_id from participant_sessions where joined_at is null))
        and first_joined_at >= '2026-02-01T00:00:00Z' and first_joined_at < '2026-03-01T00:00:00Z'
      group by user_id`,
  },
  {
    name: 'minutes per user, one month (plain filter on first_joined_at)',
    sql: () => `select user_id, count(*) as sessions, round(sum(attended_seconds) / 60, 1) as attended_minutes
      from attendance where first_joined_at >= '2026-02-01T00:00:00Z' and first_joined_at < '2026-03-01T00:00:00Z'
      group by user_id`,
  },
  {
    name: 'sessions not complete, with their attendance (call_session_attendance by status)',
    sql: () => `select * from call_session_attendance where status <> 'complete'`,
  },
];

interface Timing {
  name: string;
  rows: number;
  medianMs: number;
  minMs: number;
  maxMs: number;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const startedAt = Date.now();
  const sessions = Math.floor(args.rows / ENTRIES_PER_SESSION);
  // One connection, so the statement_timeout set below holds for every query.
  await withBenchDatabase(
    async ({ pool }) => {
      const loadStart = performance.now();
      await pool.query(`set statement_timeout = ${LOAD_TIMEOUT_MS}`);
      for (const statement of loadStatements(sessions)) await pool.query(statement);
      const loadSeconds = (performance.now() - loadStart) / 1000;
      const rows = (await pool.query<{ n: number }>('select count(*)::int as n from participant_sessions')).rows[0]?.n ?? 0;
      console.log(`loaded ${rows} participant sessions in ${sessions} sessions in ${loadSeconds.toFixed(1)} s`);

      await pool.query(`set statement_timeout = ${QUERY_TIMEOUT_MS}`);
      const ids = { session: `cs-${Math.floor(sessions / 2)}`, user: 'user-777' };
      const timings: Timing[] = [];
      for (const query of QUERIES) {
        const text = query.sql(ids);
        await pool.query(text); // warm the cache: the figures are for a warm server
        const samples: number[] = [];
        let resultRows = 0;
        for (let i = 0; i < args.runs; i += 1) {
          const t0 = performance.now();
          resultRows = (await pool.query(text)).rowCount ?? 0;
          samples.push(performance.now() - t0);
        }
        samples.sort((a, b) => a - b);
        const timing = { name: query.name, rows: resultRows, medianMs: samples[Math.floor(samples.length / 2)]!, minMs: samples[0]!, maxMs: samples.at(-1)! };
        timings.push(timing);
        console.log(`${timing.medianMs.toFixed(1).padStart(9)} ms  ${timing.name} (${timing.rows} rows)`);
      }
      const pgVersion = (await pool.query<{ server_version: string }>('show server_version')).rows[0]?.server_version ?? '?';
      const workMem = (await pool.query<{ work_mem: string }>('show work_mem')).rows[0]?.work_mem ?? '?';
      await appendFile(new URL('RESULTS.md', import.meta.url), formatResults({ timings, rows, sessions, loadSeconds, pgVersion, workMem, runs: args.runs }));
      console.log(`appended to bench/RESULTS.md (${((Date.now() - startedAt) / 1000).toFixed(0)} s in all)`);
    },
    { poolMax: 1, deadlineMs: DEADLINE_MS },
  );
}

function formatResults(r: {
  timings: Timing[];
  rows: number;
  sessions: number;
  loadSeconds: number;
  pgVersion: string;
  workMem: string;
  runs: number;
}): string {
  const lines = [
    '',
    `## SQL views, ${new Date().toISOString().slice(0, 10)} (bench/sql-views.ts)`,
    '',
    `Node ${process.version}, PostgreSQL ${r.pgVersion} (work_mem ${r.workMem}), same machine; ` +
      `${r.rows.toLocaleString('en-US')} participant_sessions in ${r.sessions.toLocaleString('en-US')} call sessions, ` +
      `${USERS.toLocaleString('en-US')} users, January–March 2026; generated and indexed in ${r.loadSeconds.toFixed(1)} s. ` +
      `Warm cache, ${r.runs} runs per query after one warm-up.`,
    '',
    '| query | rows out | median ms | min ms | max ms |',
    '| --- | ---: | ---: | ---: | ---: |',
    ...r.timings.map((t) => `| ${t.name} | ${t.rows} | ${t.medianMs.toFixed(1)} | ${t.minMs.toFixed(1)} | ${t.maxMs.toFixed(1)} |`),
    '',
  ];
  return lines.join('\n');
}

await main();
