/**
 * The attendance views and their rollups on a year of archive, at 1,000,000 entries or at 10,000,000.
 *
 *   node bin/run-ts.js bench/sql-views.ts [--rows 1000000] [--runs 5]
 *   node bin/run-ts.js bench/sql-views.ts --scale [--runs 5]     1M, then 10M, and how each query grows
 *   --keep                                                       keep the last scale's database, for inspection
 *   node bin/run-ts.js bench/sql-views.ts --database NAME [--runs 5]   the same figures on a kept database, migrated
 *
 * Each scale gets its own database on the server of DATABASE_URL (default: the local Postgres),
 * migrated, then filled by a few set-based statements (no Stream, no random(): every choice is a
 * hash of the session and entry numbers, so two runs hold the same archive). It brings the rollups
 * up to date with the service's sweep and times that, times the queries users run (one session, one user's month,
 * whole-app month reports, the sessions not complete) next to a plain count(*) of the same rows,
 * checks at 1M that the rollups answer what a live computation answers, times the refresh of one
 * session after its rows change, and appends the figures to bench/RESULTS.md (or to the file
 * BENCH_RESULTS names). Not in `npm run bench`: the 10M run takes about half an hour. Every statement
 * has a timeout and each scale a deadline.
 *
 * The month report answers with a row per user of the month (~180,000 at 10M), and receiving that many
 * rows costs a client much the same whatever the query. So its exact answer is also put in a plain
 * table and read back with `select *`, timed the same way (the floor), and the report is judged on its
 * time in the server and on its client time over the floor's.
 */
import { appendFile, readFile } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { withDatabaseName } from '../src/db/client.ts';
import { runMigrations } from '../src/db/migrate.ts';
import { ADMIN_URL, BENCH_APPLICATION_NAME, describeMachine, fmt, type MachineInfo, median, withBenchDatabase } from './lib/bench-env.ts';
import { sweepPendingRollups } from '../src/rollup/refresh.ts';
import { MINUTE_MS } from '../src/time.ts';

const SCALE_ROWS = [1_000_000, 10_000_000] as const;
/** The spot check computes whole months live, seconds at 1M and minutes at 10M: run it up to here. */
const CHECK_MAX_ROWS = 2_000_000;
const GIANT_SESSION_ENTRIES = 100_000;
/** Rows per insert statement, so a 10M load reports progress and no statement holds every row at once. */
const LOAD_CHUNK_ROWS = 1_000_000;
/** The whole archive's rollup by the sweep took ~63 s per million entries at 1M on 2 cores (one call: ~170 s). */
const LOAD_TIMEOUT_MS = 90 * MINUTE_MS;
const QUERY_TIMEOUT_MS = 60_000;
const SLOW_QUERY_MS = 5_000;
/** Each timed refresh of one session rewrites its rows first: 100,000 of them for the largest. */
const REFRESH_RUNS = 3;
const SPAN_START = '2025-07-01T00:00:00Z';
const SPAN_DAYS = 365;
/** The month every month report asks for, well inside the span. */
const MONTH = { from: '2026-03-01', to: '2026-04-01' } as const;

interface Args {
  rows: number;
  runs: number;
  scale: boolean;
  keep: boolean;
  database?: string;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { rows: 1_000_000, runs: 5, scale: false, keep: false };
  const usage = 'usage: sql-views.ts [--rows N>=10000] [--runs N>=1] [--scale] [--keep] [--database attendance_bench_…]';
  for (let i = 0; i < argv.length; i += 1) {
    const flag = argv[i];
    if (flag === '--scale' || flag === '--keep') {
      args[flag === '--scale' ? 'scale' : 'keep'] = true;
      continue;
    }
    if (flag === '--database' && /^attendance_bench_[0-9a-f]+$/.test(argv[i + 1] ?? '')) {
      args.database = argv[i + 1];
      i += 1;
      continue;
    }
    const value = Number(argv[i + 1]);
    i += 1;
    if (flag === '--rows' && Number.isInteger(value) && value >= 10_000) args.rows = value;
    else if (flag === '--runs' && Number.isInteger(value) && value >= 1) args.runs = value;
    else throw new Error(`${usage} (bad ${flag})`);
  }
  return args;
}

/*
 * The archive's shape, per session (one row of bench_sessions):
 * - call type and size: 45 % `default` calls of 1–4 entries, 25 % `audio_room` of 3–22, 25 %
 *   `classroom` of 10–59, 5 % `livestream` with a Pareto tail (alpha 1.3) from 40 to 100,000 entries;
 *   about 20 entries per session on average, so ~50,000 sessions per 1M entries. One livestream is
 *   planted at 100,000 entries (a tenth of the rows at 1M) so every scale has one;
 * - calls recur: a classroom is one of sessions/200 classes (about 50 meetings a year each), an audio
 *   room one of sessions/40, a livestream one of sessions/400 channels; a default call is its own;
 * - time: sessions in order over 365 days from July 2025, starting 07:00–18:00 UTC, lasting
 *   5–60 min (default), 20–90 (audio_room), 45–75 (classroom), 30–180 (livestream);
 * - status: 99 % complete, then pending, retrying, running, dead and expired.
 * Per entry: of every five entries, two share a user (a second device overlapping the first, or a
 * rejoin after it), so 4 of 5 entries start a participant. A classroom's and an audio room's
 * participants are mostly its roster (the same users every meeting, so users recur across months);
 * everyone else is drawn from rows/50 users with a skew (user n with probability ~ n^-1/3), so a
 * few users are in thousands of sessions. The first participant is the host, present throughout.
 * 2 % of entries miss left_at, 0.5 % joined_at, 0.2 % duration_in_seconds.
 */
const PLAN_SQL = (rows: number) => {
  const giantAt = Math.max(1, Math.floor(rows / 40));
  const giant = Math.min(GIANT_SESSION_ENTRIES, Math.floor(rows / 10));
  return `
  create unlogged table bench_plan as
  with candidate as (
    select s, h.t, least(${GIANT_SESSION_ENTRIES}, case
        when s = ${giantAt} then ${giant}
        when h.t < 0.45 then 1 + floor(4 * h.v ^ 2)
        when h.t < 0.70 then 3 + floor(20 * h.v ^ 2)
        when h.t < 0.95 then 10 + floor(50 * h.v)
        else floor(40 * h.v ^ (-1 / 1.3)::float8) end)::int as size
    from generate_series(1, ${Math.ceil(rows / 4) + 10}) s
    cross join lateral (select bench_u(s, 1) as t, bench_u(s, 2) as v) h
  ), summed as (
    select *, sum(size) over (order by s) as upto from candidate
  )
  select s::bigint as s,
    case when s = ${giantAt} then 'livestream' when t < 0.45 then 'default' when t < 0.70 then 'audio_room'
         when t < 0.95 then 'classroom' else 'livestream' end as call_type,
    least(size, ${rows} - (upto - size))::int as size,
    (upto - size)::bigint as before,
    s = ${giantAt} as giant
  from summed where upto - size < ${rows}`;
};

const SESSIONS_SQL = `
  create unlogged table bench_sessions as
  select p.s, p.call_type, p.size, p.before, p.giant, g.group_no,
    md5('session-' || p.s)::uuid::text as call_session_id,
    case p.call_type when 'default' then left(md5('call-' || p.s), 20) else p.call_type || '-' || g.group_no end as call_id,
    timestamptz '${SPAN_START}' + floor((p.s - 1) * ${SPAN_DAYS}::float8 / n.sessions) * interval '1 day'
      + (7 * 3600 + floor(bench_u(p.s, 4) * 11 * 3600)) * interval '1 second' as started_at,
    (case p.call_type
       when 'default' then 300 + floor(bench_u(p.s, 5) * 3300)
       when 'audio_room' then 1200 + floor(bench_u(p.s, 5) * 4200)
       when 'classroom' then 2700 + floor(bench_u(p.s, 5) * 1800)
       else 1800 + floor(bench_u(p.s, 5) * 9000) end)::int as seconds,
    case when p.giant then 'complete' else (case
       when bench_u(p.s, 6) < 0.003 then 'pending' when bench_u(p.s, 6) < 0.005 then 'retrying'
       when bench_u(p.s, 6) < 0.006 then 'running' when bench_u(p.s, 6) < 0.008 then 'dead'
       when bench_u(p.s, 6) < 0.010 then 'expired' else 'complete' end) end as status
  from bench_plan p
  cross join (select count(*)::int as sessions from bench_plan) n
  cross join lateral (select case p.call_type
      when 'classroom' then floor(bench_u(p.s, 3) * greatest(1, n.sessions / 200))
      when 'audio_room' then floor(bench_u(p.s, 3) * greatest(1, n.sessions / 40))
      when 'livestream' then floor(bench_u(p.s, 3) * greatest(1, n.sessions / 400))
      else 0 end::int as group_no) g`;

const CALL_SESSIONS_SQL = `
  insert into call_sessions (call_session_id, call_type, call_id, call_cid, status, total_participant_sessions,
    archived_participant_sessions, session_ended_at, stats_report_ready_at, retention_expires_at, attempts,
    next_attempt_at, lease_owner, lease_expires_at, last_error, archived_at, created_at, updated_at)
  select call_session_id, call_type, call_id, call_type || ':' || call_id, status,
    case when status in ('pending', 'running') then null when status = 'complete' then size else size + 1 + s % 7 end,
    size, e.ended_at, e.ended_at + interval '2 minutes', e.ended_at + interval '90 days',
    case when status = 'complete' then 1 else 2 + s % 5 end,
    e.ended_at + interval '10 minutes',
    case when status = 'running' then 'bench-worker' end,
    case when status = 'running' then e.ended_at + interval '11 minutes' end,
    case when status in ('retrying', 'dead', 'expired') then 'count mismatch: Stream reported more entries than it listed' end,
    case when status = 'complete' then e.ended_at + interval '5 minutes' end,
    started_at, e.ended_at + interval '5 minutes'
  from bench_sessions cross join lateral (select started_at + seconds * interval '1 second' as ended_at) e`;

/** What a participant publishes: four sets, chosen per entry (RTMP and SRT always send both tracks). */
const PUBLISHED_TRACKS = [['audio', 'video'], ['audio'], ['audio', 'video', 'screenshare'], []] as const;
const TRACKS_SQL = `array[${PUBLISHED_TRACKS.map((t) => `'${JSON.stringify(t)}'::jsonb`).join(', ')}]`;

/**
 * One chunk of entries: the sessions whose first entry falls in [lo, hi) of the running count.
 * Every lateral step ends in `offset 0`, a fence: without it Postgres flattens the steps and copies
 * each expression into every place that uses it, so a row computed its hashes dozens of times
 * (85 µs a row instead of ~10, and JIT spent 36 s compiling the result on 100,000 rows).
 */
const ENTRIES_SQL = (raw: string) => `
  insert into participant_sessions (call_session_id, user_session_id, call_type, call_id, user_id, joined_at, left_at,
    duration_in_seconds, publisher_type, roles, raw, archived_at)
  select b.call_session_id, x.user_session_id, b.call_type, b.call_id, x.user_id, x.joined_at, x.left_at,
    x.duration_in_seconds, x.publisher_type, x.roles, ${raw}, b.started_at + (b.seconds + 300) * interval '1 second'
  from bench_sessions b
  cross join generate_series(1, b.size) e
  cross join lateral (select (b.s % 5)::int as shift offset 0) o
  cross join lateral (
    select ((e - 1 + o.shift) * 4 / 5) - (o.shift * 4 / 5) + 1 as q,
           e > 1 and (e - 2 + o.shift) * 4 / 5 = (e - 1 + o.shift) * 4 / 5 as again,
           b.s * 100003 + e as entry_key
    offset 0
  ) w
  cross join lateral (select b.s * 100003 + w.q as slot_key,
      case when b.call_type in ('classroom', 'audio_room') and (w.q = 1 or bench_u(b.s * 100003 + w.q, 9) < 0.85)
           then (case b.call_type when 'classroom' then 1 else 2 end::bigint * 100000000 + b.group_no) * 100003 + w.q
      end as roster_key offset 0) k
  cross join lateral (select
      floor($3::int * bench_u(coalesce(k.roster_key, k.slot_key), 7) ^ 1.5)::int as user_no,
      case when w.q = 1 then 0 else floor(b.seconds * 0.25 * bench_u(k.slot_key, 10) ^ 2)::int end as a,
      bench_u(k.slot_key, 11) as stay, bench_u(k.slot_key, 12) as second_device, bench_u(k.slot_key, 13) as gap,
      bench_u(w.entry_key, 14) as missing, bench_u(w.entry_key, 15) as kind, bench_u(w.entry_key, 16) as role,
      bench_u(w.entry_key, 17) as tracks
    offset 0
  ) h
  cross join lateral (select case when w.q = 1 then b.seconds else h.a + floor((b.seconds - h.a) * (0.4 + 0.6 * h.stay))::int end as z offset 0) z
  cross join lateral (select
      case when not w.again then h.a when h.second_device < 0.5 then h.a + 3 else z.z + 60 + floor(h.gap * 300)::int end as from_s,
      case when not w.again then z.z when h.second_device < 0.5 then greatest(h.a + 4, z.z - 5)
           else greatest(z.z + 120 + floor(h.gap * 300)::int, b.seconds) end as to_s,
      (w.entry_key * 7919 % 1000) as ms
    offset 0
  ) iv
  cross join lateral (select
      b.started_at + (iv.from_s * 1000 + iv.ms) * interval '1 millisecond' as joined_full,
      b.started_at + (iv.to_s * 1000 + iv.ms) * interval '1 millisecond' as left_full,
      case when w.q = 1 and b.call_type = 'livestream' then 'rtmp'
           when h.kind < 0.02 then 'rtmp' when h.kind < 0.03 then 'srt' else 'webrtc' end as publisher_type
    offset 0
  ) t
  cross join lateral (select
      md5(b.call_session_id || ':' || e)::uuid::text as user_session_id,
      'user-' || h.user_no as user_id,
      case when h.missing >= 0.020 and h.missing < 0.025 then null else t.joined_full end as joined_at,
      case when h.missing < 0.020 then null else t.left_full end as left_at,
      case when h.missing >= 0.025 and h.missing < 0.027 then null else iv.to_s - iv.from_s end as duration_in_seconds,
      t.publisher_type,
      case when w.q = 1 then '{host}'::text[]
           when h.role < 0.70 then '{user}' when h.role < 0.85 then '{guest}' when h.role < 0.90 then '{}'
           when h.role < 0.95 then '{user,moderator}' when h.role < 0.98 then '{call_member}' else '{admin}' end as roles,
      y.tracks_no, (${TRACKS_SQL})[y.tracks_no + 1] as published_tracks
    from (select case when t.publisher_type <> 'webrtc' or h.tracks < 0.6 then 0 when h.tracks < 0.8 then 1
                      when h.tracks < 0.9 then 2 else 3 end as tracks_no) y
    offset 0
  ) x
  where b.before >= $1 and b.before < $2`;

/** Stream's entry as the simulator sends it: RFC 3339 UTC timestamps with microseconds, nulls where Stream omits. */
const FULL_RAW = `jsonb_build_object('user_id', x.user_id, 'user_session_id', x.user_session_id, 'publisher_type', x.publisher_type,
    'roles', to_jsonb(x.roles), 'joined_at', to_char(x.joined_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
    'left_at', to_char(x.left_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
    'duration_in_seconds', x.duration_in_seconds, 'published_tracks', x.published_tracks, 'is_live', false, 'is_tech_user', false)`;

/** A uniform number in (0, 1) from a key and a salt: where every choice of the generator comes from. */
const HELPERS_SQL = `
  create function bench_u(key bigint, salt bigint) returns float8 language sql immutable parallel safe
    return ((hashint8extended(key, salt) & 4294967295)::float8 + 0.5) / 4294967296`;

interface Ids {
  typical: string;
  thousand: string;
  giant: string;
  user: string;
}

interface Query {
  name: string;
  /** Target in ms from issue 19, or none (comparison figures). */
  targetMs?: number;
  /** Needs the rollups of migration 0006. */
  rollups?: boolean;
  /** Returns many rows: also timed against its floor (timeFloor) and judged as verdict says. */
  floor?: boolean;
  sql: (ids: Ids) => string;
}

/** bench_query_floor: a plain table holding exactly the answer of a query with a floor, while the floor is timed. */
const FLOOR_TABLE = 'bench_query_floor';
/** The floor's name, in the results right after its query's row and in its query's line of output. */
const FLOOR_NAME = 'floor: the same rows from a table holding only them';

const NARROWED_MONTH = `call_session_id = any (array(
      select call_session_id from participant_sessions where joined_at >= '${MONTH.from}T00:00:00Z' and joined_at < '${MONTH.to}T00:00:00Z'
      union
      select call_session_id from participant_sessions where joined_at is null))
    and first_joined_at >= '${MONTH.from}T00:00:00Z' and first_joined_at < '${MONTH.to}T00:00:00Z'`;

const minutesPerUser = (view: string, where: string) => `select user_id, count(*) as sessions, round(sum(attended_seconds) / 60, 1) as attended_minutes
  from ${view} where ${where} group by user_id`;

const QUERIES: Query[] = [
  { name: 'baseline: select count(*) from participant_sessions', sql: () => 'select count(*) from participant_sessions' },
  { name: 'attendance, one session (~25 entries)', targetMs: 5, sql: (i) => `select * from attendance where call_session_id = '${i.typical}'` },
  { name: 'attendance, the 100,000-entry session', sql: (i) => `select * from attendance where call_session_id = '${i.giant}'` },
  {
    name: 'call_session_attendance, one session (~25 entries)',
    targetMs: 5,
    sql: (i) => `select * from call_session_attendance where call_session_id = '${i.typical}'`,
  },
  { name: 'call_session_attendance, the 100,000-entry session', sql: (i) => `select * from call_session_attendance where call_session_id = '${i.giant}'` },
  {
    name: 'attendance, one user, one month (the heaviest user of the month)',
    targetMs: 20,
    sql: (i) => `select * from attendance where user_id = '${i.user}'
      and session_started_at >= '${MONTH.from}T00:00:00Z' and session_started_at < '${MONTH.to}T00:00:00Z'`,
  },
  {
    name: 'minutes per user, one month (monthly_user_attendance)',
    targetMs: 100,
    rollups: true,
    floor: true,
    sql: () => `select user_id, sessions, round(attended_seconds / 60, 1) as attended_minutes, round(summed_seconds / 60.0, 1) as summed_minutes
      from monthly_user_attendance where month = '${MONTH.from}'`,
  },
  {
    name: 'unique users and attended hours per call type per day, one month (daily_call_type_attendance)',
    targetMs: 100,
    rollups: true,
    sql: () => `select day, call_type, users, sessions, round(attended_seconds / 3600, 1) as attended_hours
      from daily_call_type_attendance where day >= '${MONTH.from}' and day < '${MONTH.to}' order by day, call_type`,
  },
  {
    name: "sessions not complete, with their attendance (call_session_attendance where status <> 'complete')",
    targetMs: 100,
    sql: () => `select * from call_session_attendance where status <> 'complete'`,
  },
  {
    name: 'minutes per user, one month: cookbook form over attendance (a filter on first_joined_at)',
    sql: () => minutesPerUser('attendance', `first_joined_at >= '${MONTH.from}T00:00:00Z' and first_joined_at < '${MONTH.to}T00:00:00Z'`),
  },
  {
    // Over the rollups this form is far slower than a plain filter (call_session_id = any of a
    // computed array is rechecked row by row against the whole array); it suited the live views.
    name: 'minutes per user, one month: the cookbook form before rollups (sessions narrowed by an array), over the live views of migration 0002',
    sql: () => minutesPerUser('live_attendance', NARROWED_MONTH),
  },
];

interface Timing {
  name: string;
  targetMs?: number;
  rows: number;
  medianMs: number;
  minMs: number;
  maxMs: number;
  runs: number;
  /**
   * Planning and execution in the server (EXPLAIN ANALYZE, TIMING OFF; median of as many runs),
   * for the queries with a target and for floors: what the query costs without the client receiving its rows.
   */
  serverMs?: number;
  /** For a query with a floor: `select *` of a table holding only its answer, timed the same way. */
  floor?: Timing;
  /** Set when the query failed (a timeout, a missing relation). */
  error?: string;
}

interface RefreshTiming {
  what: string;
  entries: number;
  medianMs: number;
  marked: boolean;
}

interface ScaleResult {
  rows: number;
  machine: MachineInfo;
  sessions: number;
  users: number;
  loadSeconds: number;
  indexSeconds: number;
  rawForm: string;
  rollups: boolean;
  refreshSeconds?: number;
  refreshedSessions?: number;
  timings: Timing[];
  refreshes: RefreshTiming[];
  sizes: { table: string; bytes: number }[];
  checks: string[];
}

/** Progress with the time of day, so a long run's phases can be read off as it goes. */
function say(line: string): void {
  console.log(`${new Date().toISOString().slice(11, 19)}  ${line}`);
}

async function timed<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const t0 = performance.now();
  const value = await fn();
  return [value, performance.now() - t0];
}

/** The three views of migration 0002 under live_* names: the live computation the rollups must agree with. */
async function createLiveViews(pool: pg.Pool): Promise<void> {
  const text = await readFile(new URL('../migrations/0002_attendance_views.sql', import.meta.url), 'utf8');
  for (const statement of text.split('--> statement-breakpoint')) {
    if (!/CREATE VIEW/.test(statement)) continue;
    await pool.query(statement.replace(/\b(call_session_attendance|attendance_stretches|attendance)\b/g, 'live_$1'));
  }
}

/*
 * Indexes and foreign keys are dropped for the load and put back afterwards (same definitions,
 * read from the catalog, so whatever the migrations hold): building an index over sorted input and
 * checking a foreign key in one join are several times faster than 10M random index inserts and 10M
 * row-by-row checks, and the queries see the same indexes either way. The rollup trigger stays.
 */
async function withoutIndexes(pool: pg.Pool, load: () => Promise<void>): Promise<number> {
  const { rows } = await pool.query<{ name: string; def: string; constraint: string | null; condef: string | null }>(`
    select i.indexrelid::regclass::text as name, pg_get_indexdef(i.indexrelid) as def, c.conname as constraint,
           pg_get_constraintdef(c.oid) as condef
    from pg_index i left join pg_constraint c on c.conindid = i.indexrelid and c.conrelid = i.indrelid
    where i.indrelid = 'participant_sessions'::regclass
      and not exists (select 1 from pg_constraint f where f.confrelid = i.indrelid and f.conindid = i.indexrelid)
    union all
    select conname, null, conname, pg_get_constraintdef(oid) from pg_constraint
    where conrelid = 'participant_sessions'::regclass and contype = 'f'`);
  for (const index of rows) {
    if (index.constraint) await pool.query(`alter table participant_sessions drop constraint "${index.constraint}"`);
    else await pool.query(`drop index ${index.name}`);
  }
  await load();
  const [, ms] = await timed(async () => {
    for (const index of rows) {
      if (index.constraint) await pool.query(`alter table participant_sessions add constraint "${index.constraint}" ${index.condef}`);
      else await pool.query(index.def);
    }
  });
  return ms / 1000;
}

/*
 * The product stores participant_session_lean_raw(entry, columns…) (migration 0005) when that
 * function exists. Called per row it is plpgsql, slower than the rest of the generator together,
 * so the load writes what it returns for these entries directly (the fields no column holds, and
 * the markers for RFC 3339 timestamps with six fraction digits), picked from the 32 forms these
 * entries can take (building jsonb per row cost ~9 µs of the ~60), and verifyLeanRaw() checks a
 * sample against the function itself.
 */
const LEAN_RAW = `(array[${PUBLISHED_TRACKS.flatMap((tracks) =>
  [false, true].flatMap((noJoin) =>
    [false, true].flatMap((noLeft) =>
      [false, true].map((noDuration) => {
        const lean: Record<string, unknown> = { published_tracks: tracks, is_live: false, is_tech_user: false };
        Object.assign(lean, noJoin ? { joined_at: null } : { '~joined_at': 6000 }, noLeft ? { left_at: null } : { '~left_at': 6000 });
        if (noDuration) lean.duration_in_seconds = null;
        return `'${JSON.stringify(lean)}'::jsonb`;
      }),
    ),
  ),
).join(', ')}])[x.tracks_no * 8 + (x.joined_at is null)::int * 4 + (x.left_at is null)::int * 2 + (x.duration_in_seconds is null)::int + 1]`;

async function rawExpression(pool: pg.Pool): Promise<{ sql: string; lean: boolean }> {
  const { rows } = await pool.query(`select 1 from pg_proc where proname = 'participant_session_lean_raw'`);
  return rows.length > 0 ? { sql: LEAN_RAW, lean: true } : { sql: FULL_RAW, lean: false };
}

/** One session in 200: the stored raw equals what participant_session_lean_raw makes of the full entry. */
async function verifyLeanRaw(pool: pg.Pool): Promise<number> {
  const full = FULL_RAW.replaceAll('x.published_tracks', "p.raw -> 'published_tracks'").replaceAll('x.', 'p.');
  const { rows } = await pool.query<{ checked: number; differing: number }>(`
    select count(*)::int as checked,
      count(*) filter (where p.raw is distinct from participant_session_lean_raw(${full}, p.user_id, p.user_session_id,
        p.publisher_type, p.duration_in_seconds, p.roles, p.joined_at, p.left_at))::int as differing
    from bench_sessions b
    join participant_sessions p on p.call_session_id = b.call_session_id
    where b.s % 200 = 0`);
  const { checked, differing } = rows[0]!;
  if (differing > 0) throw new Error(`${differing} of ${checked} sampled entries do not hold participant_session_lean_raw(entry, …)`);
  return checked;
}

interface Loaded {
  sessions: number;
  users: number;
  loadSeconds: number;
  indexSeconds: number;
  rawForm: string;
}

async function load(pool: pg.Pool, rows: number): Promise<Loaded> {
  const users = Math.max(100, Math.floor(rows / 50));
  const raw = await rawExpression(pool);
  const t0 = performance.now();
  await pool.query(HELPERS_SQL);
  await pool.query(PLAN_SQL(rows));
  await pool.query(SESSIONS_SQL);
  await pool.query('create index on bench_sessions (before)');
  await pool.query(CALL_SESSIONS_SQL);
  const sessions = (await pool.query<{ n: number }>('select count(*)::int as n from bench_sessions')).rows[0]!.n;
  const indexSeconds = await withoutIndexes(pool, async () => {
    for (let lo = 0; lo < rows; lo += LOAD_CHUNK_ROWS) {
      const [, ms] = await timed(() => pool.query(ENTRIES_SQL(raw.sql), [lo, lo + LOAD_CHUNK_ROWS, users]));
      say(`entries ${fmt(lo)}–${fmt(Math.min(rows, lo + LOAD_CHUNK_ROWS))} in ${(ms / 1000).toFixed(1)} s`);
    }
  });
  const loadSeconds = (performance.now() - t0) / 1000;
  const rawForm = raw.lean
    ? `participant_session_lean_raw(entry, …) as the worker stores it (${fmt(await verifyLeanRaw(pool))} sampled entries checked against the function)`
    : "Stream's whole entry (no participant_session_lean_raw in this schema)";
  // Statistics for the refresh's plans; the vacuum (visibility map for index-only scans) waits until
  // after the refresh, which reads every row anyway.
  await pool.query('analyze');
  return { sessions, users, loadSeconds, indexSeconds, rawForm };
}

async function pickIds(pool: pg.Pool): Promise<Ids> {
  const closest = async (entries: number) =>
    (
      await pool.query<{ id: string }>(
        `select call_session_id as id from bench_sessions where status = 'complete' and not giant order by abs(size - $1), s limit 1`,
        [entries],
      )
    ).rows[0]!.id;
  const giant = (await pool.query<{ id: string }>('select call_session_id as id from bench_sessions where giant')).rows[0]!.id;
  const user = (
    await pool.query<{ user_id: string }>(
      `select user_id from participant_sessions where joined_at >= $1 and joined_at < $2 group by user_id order by count(distinct call_session_id) desc, user_id limit 1`,
      [`${MONTH.from}T00:00:00Z`, `${MONTH.to}T00:00:00Z`],
    )
  ).rows[0]!.user_id;
  return { typical: await closest(25), thousand: await closest(1_000), giant, user };
}

async function timeQueries(pool: pg.Pool, ids: Ids, runs: number, rollups: boolean): Promise<Timing[]> {
  const timings: Timing[] = [];
  for (const query of QUERIES) {
    if (query.rollups && !rollups) continue;
    const text = query.sql(ids);
    const timing = emptyTiming(query.name, query.targetMs);
    try {
      // Again for every query: pg's pool replaces a connection whose query failed (a timeout), and
      // the new one starts with the server's settings.
      await pool.query(`set statement_timeout = ${QUERY_TIMEOUT_MS}`);
      if (query.floor) timing.floor = await timeFloor(pool, text, runs);
      await timeStatement(pool, text, runs, query.targetMs !== undefined || query.floor === true, timing);
    } catch (error) {
      timing.error = (error as Error).message;
    }
    timings.push(timing);
    if (timing.floor) timings.push(timing.floor);
    say(`${describeTiming(timing)}  ${timing.name} (${timing.rows} rows)${verdict(timing)}`);
  }
  return timings;
}

/** `240.3 ms (server 76.3 ms; floor: … 253.3 ms, server 4.4 ms)`, or why there is no figure. */
function describeTiming(t: Timing): string {
  if (t.error) return `failed: ${t.error}`;
  const notes: string[] = [];
  if (t.serverMs !== undefined) notes.push(`server ${t.serverMs.toFixed(1)} ms`);
  if (t.floor?.error) notes.push(`floor failed: ${t.floor.error}`);
  else if (t.floor) notes.push(`${FLOOR_NAME} ${t.floor.medianMs.toFixed(1)} ms, server ${t.floor.serverMs?.toFixed(1)} ms`);
  return `${t.medianMs.toFixed(1).padStart(9)} ms${notes.length > 0 ? ` (${notes.join('; ')})` : ''}`;
}

function emptyTiming(name: string, targetMs?: number): Timing {
  return { name, targetMs, rows: 0, medianMs: Number.NaN, minMs: Number.NaN, maxMs: Number.NaN, runs: 0 };
}

/**
 * Times one statement into `timing`: a warm-up, then `runs` runs on the client, and with `server`
 * as many EXPLAIN ANALYZE runs for its time in the server. Throws what the statement throws.
 */
async function timeStatement(pool: pg.Pool, text: string, runs: number, server: boolean, timing: Timing): Promise<void> {
  // The warm-up fills the cache (the figures are for a warm server); a query that takes longer
  // than SLOW_QUERY_MS even so is timed once more, not `runs` times, to keep the 10M run in bounds.
  const [, warmMs] = await timed(() => pool.query(text));
  const samples: number[] = [];
  for (let i = 0; i < (warmMs > SLOW_QUERY_MS ? 1 : runs); i += 1) {
    const [result, ms] = await timed(() => pool.query(text));
    timing.rows = result.rowCount ?? 0;
    samples.push(ms);
  }
  timing.runs = samples.length;
  timing.medianMs = median(samples);
  timing.minMs = Math.min(...samples);
  timing.maxMs = Math.max(...samples);
  if (server) {
    const times: number[] = [];
    for (let i = 0; i < samples.length; i += 1) {
      const { rows } = await pool.query<{ 'QUERY PLAN': [{ 'Planning Time': number; 'Execution Time': number }] }>(
        `explain (analyze, timing off, format json) ${text}`,
      );
      const plan = rows[0]!['QUERY PLAN'][0];
      times.push(plan['Planning Time'] + plan['Execution Time']);
    }
    timing.serverMs = median(times);
  }
}

/**
 * The floor of a query that returns many rows: its answer materialised in a plain table (vacuumed
 * and analyzed, as every table of the archive is), then `select *` of that table timed as the query
 * is, client and server. What is left of the query's time over it is what the query itself adds.
 */
async function timeFloor(pool: pg.Pool, text: string, runs: number): Promise<Timing> {
  const floor = emptyTiming(FLOOR_NAME);
  try {
    await pool.query(`drop table if exists ${FLOOR_TABLE}`);
    await pool.query(`create table ${FLOOR_TABLE} as ${text}`);
    // Its own statement: vacuum cannot run inside a transaction block.
    await pool.query(`vacuum analyze ${FLOOR_TABLE}`);
    await timeStatement(pool, `select * from ${FLOOR_TABLE}`, runs, true, floor);
  } catch (error) {
    floor.error = (error as Error).message;
  } finally {
    await pool.query(`drop table if exists ${FLOOR_TABLE}`);
  }
  return floor;
}

/**
 * PASS when the client's median is under the target; for a query with a floor, when its time in
 * the server and its client median less the floor's are both under the target.
 */
function verdict(t: Timing): string {
  if (t.targetMs === undefined) return '';
  const target = `< ${t.targetMs} ms`;
  if (!t.floor) return !t.error && t.medianMs < t.targetMs ? ` PASS (${target})` : ` MISS (${target})`;
  if (t.error || t.floor.error || t.serverMs === undefined) {
    return ` MISS (${target}${t.floor.error ? '; the floor failed, so not judged' : ''})`;
  }
  const over = t.medianMs - t.floor.medianMs;
  const pass = t.serverMs < t.targetMs && over < t.targetMs;
  return ` ${pass ? 'PASS' : 'MISS'} (judged on the server, ${t.serverMs.toFixed(1)} ms, and on the median over the floor, ${over.toFixed(1)} ms: each ${target})`;
}

/**
 * Rollups against the live views of migration 0002, at a size where the live side takes seconds:
 * the month reports row by row, and whole rows of both views for a sample of sessions (every size
 * class, every status; the 100,000-entry session by its totals only). Any difference throws, with the first differing rows.
 */
async function checkRollups(pool: pg.Pool, ids: Ids): Promise<string[]> {
  const month = `'${MONTH.from}'::date`;
  const liveMonth = `select * from live_attendance where ${NARROWED_MONTH}`;
  const sampleOf = (giant: boolean) => `array(select call_session_id from bench_sessions
    where s % 97 = 0 or status <> 'complete' or ${giant ? 'giant' : 'false'} or call_session_id in ('${ids.typical}', '${ids.thousand}'))`;
  const sample = sampleOf(true);
  // Without the window indexes migration 0006 drops, live_attendance scans a session's rows once
  // per (session, user) row: hours for the 100,000-entry session. Its totals are checked above.
  const rowsSample = sampleOf(false);
  const pairs: { name: string; rollup: string; live: string }[] = [
    {
      name: `monthly_user_attendance, ${MONTH.from.slice(0, 7)}`,
      rollup: `select month, user_id, sessions, attended_seconds, summed_seconds from monthly_user_attendance where month = ${month}`,
      live: `select ${month}, user_id, count(*)::int, sum(attended_seconds), sum(summed_seconds)::bigint from (${liveMonth}) a group by user_id`,
    },
    {
      name: `daily_call_type_attendance, ${MONTH.from.slice(0, 7)}`,
      rollup: `select day, call_type, users, sessions, attended_seconds from daily_call_type_attendance
               where day >= ${month} and day < '${MONTH.to}'::date`,
      live: `select (first_joined_at at time zone 'UTC')::date, call_type, count(distinct user_id)::int, count(*)::int,
               sum(attended_seconds) from (${liveMonth}) a group by 1, 2`,
    },
    {
      name: 'daily_call_type_users, one month',
      rollup: `select day, call_type, user_id, sessions from daily_call_type_users where day >= ${month} and day < '${MONTH.to}'::date`,
      live: `select (first_joined_at at time zone 'UTC')::date, call_type, user_id, count(*)::int from (${liveMonth}) a group by 1, 2, 3`,
    },
    {
      name: 'call_session_attendance, sampled sessions',
      rollup: `select * from call_session_attendance where call_session_id = any (${sample})`,
      live: `select * from live_call_session_attendance where call_session_id = any (${sample})`,
    },
    {
      name: 'attendance, sampled sessions',
      rollup: `select * from attendance where call_session_id = any (${rowsSample})`,
      live: `select * from live_attendance where call_session_id = any (${rowsSample})`,
    },
  ];
  const lines: string[] = [];
  for (const pair of pairs) {
    const { rows } = await pool.query<{ side: string; row: string; n: number }>(`
      with r as (${pair.rollup}), l as (${pair.live}),
      only_rollup as (select * from r except all select * from l), only_live as (select * from l except all select * from r)
      select 'count' as side, (select count(*) from r)::text as row, (select count(*) from l)::int as n
      union all (select 'rollup only', o::text, 0 from only_rollup o limit 3)
      union all (select 'live only', o::text, 0 from only_live o limit 3)`);
    const counts = rows[0]!;
    const differing = rows.slice(1);
    if (differing.length > 0 || Number(counts.row) !== counts.n) {
      throw new Error(
        `rollups differ from the live computation in ${pair.name} (${counts.row} rows against ${counts.n}):\n` +
          differing.map((d) => `  ${d.side}: ${d.row}`).join('\n'),
      );
    }
    lines.push(`${pair.name}: ${fmt(counts.n)} rows, equal`);
    say(`check ${pair.name}: ${counts.n} rows equal`);
  }
  return lines;
}

/*
 * What one session's rollups cost once it is archived: its rows are rewritten (one update touching
 * every row, as a re-archive that changes them does), which the trigger of migration 0006 marks,
 * then its refresh alone is timed (the service's sweep refreshes sessions 100 to a statement, which
 * costs less per session when they are small).
 */
async function timeSessionRefreshes(pool: pg.Pool, ids: Ids, runs: number): Promise<RefreshTiming[]> {
  const out: RefreshTiming[] = [];
  for (const [what, id] of [
    ['one session of ~25 entries', ids.typical],
    ['one session of ~1,000 entries', ids.thousand],
    ['the 100,000-entry session', ids.giant],
  ] as const) {
    const entries = (await pool.query<{ n: number }>('select size as n from bench_sessions where call_session_id = $1', [id])).rows[0]!.n;
    const samples: number[] = [];
    let marked = true;
    for (let i = 0; i < Math.min(runs, REFRESH_RUNS); i += 1) {
      await pool.query("update participant_sessions set archived_at = archived_at + interval '1 second' where call_session_id = $1", [id]);
      const pending = await pool.query('select 1 from rollup_pending where call_session_id = $1', [id]);
      marked &&= (pending.rowCount ?? 0) === 1;
      const [, ms] = await timed(() => pool.query('select attendance_rollup_refresh(array[$1::text])', [id]));
      samples.push(ms);
    }
    out.push({ what, entries, medianMs: median(samples), marked });
    say(`refresh ${what} (${entries} entries): ${median(samples).toFixed(1)} ms${marked ? '' : ' (the update did not mark it pending)'}`);
  }
  return out;
}

const ROLLUP_TABLES = [
  'attendance_rollup',
  'session_rollup',
  'monthly_user_attendance',
  'daily_call_type_attendance',
  'daily_call_type_users',
  'rollup_pending',
];

async function tableSizes(pool: pg.Pool): Promise<{ table: string; bytes: number }[]> {
  const { rows } = await pool.query<{ table: string; bytes: string }>(
    `select t as table, pg_total_relation_size(to_regclass(t)) as bytes from unnest($1::text[]) t where to_regclass(t) is not null`,
    [['participant_sessions', ...ROLLUP_TABLES]],
  );
  return rows.map((r) => ({ table: r.table, bytes: Number(r.bytes) }));
}

async function runScale(rows: number, runs: number, check: boolean, keep: boolean): Promise<ScaleResult> {
  say(`== ${fmt(rows)} entries`);
  const deadlineMs = (20 + 12 * Math.ceil(rows / 1_000_000)) * MINUTE_MS;
  // One connection, so the statement_timeout set below holds for every query.
  return withBenchDatabase(
    async ({ pool }) => {
      await pool.query(`set statement_timeout = ${LOAD_TIMEOUT_MS}`);
      await pool.query(`set maintenance_work_mem = '512MB'`);
      // JIT spends seconds compiling the generator's wide expressions and wins nothing on a one-off
      // load; the queries below run with the server's own settings.
      await pool.query('set jit = off');
      const loaded = await load(pool, rows);
      await pool.query('reset jit');
      const held = (await pool.query<{ n: number }>('select count(*)::int as n from participant_sessions')).rows[0]!.n;
      if (held !== rows) throw new Error(`generated ${held} entries, not ${rows}`);
      say(
        `loaded ${fmt(held)} entries in ${fmt(loaded.sessions)} sessions in ${loaded.loadSeconds.toFixed(1)} s (indexes ${loaded.indexSeconds.toFixed(1)} s)`,
      );
      await createLiveViews(pool);
      return measure(pool, rows, loaded, runs, check);
    },
    { poolMax: 1, deadlineMs, keepOnFailure: false, keep },
  );
}

/**
 * --database NAME: the same measurements on an archive an earlier `--keep` run generated, after
 * the migrations since (so a change to the views or the rollups is timed without generating the
 * archive again). The database stays.
 */
async function runOnKept(name: string, runs: number): Promise<ScaleResult> {
  const pool = new pg.Pool({ connectionString: withDatabaseName(ADMIN_URL, name), max: 1, application_name: BENCH_APPLICATION_NAME });
  try {
    const [, migrateMs] = await timed(() => runMigrations(pool));
    const count = async (sql: string) => (await pool.query<{ n: number }>(sql)).rows[0]!.n;
    const rows = await count('select count(*)::int as n from participant_sessions');
    say(`== ${fmt(rows)} entries kept in ${name}, migrated in ${(migrateMs / 1000).toFixed(1)} s`);
    const loaded: Loaded = {
      sessions: await count('select count(*)::int as n from bench_sessions'),
      users: await count('select count(distinct user_id)::int as n from participant_sessions'),
      loadSeconds: Number.NaN,
      indexSeconds: Number.NaN,
      rawForm: `as generated by the run that kept ${name}`,
    };
    await pool.query(`set statement_timeout = ${LOAD_TIMEOUT_MS}`);
    return await measure(pool, rows, loaded, runs, rows <= CHECK_MAX_ROWS);
  } finally {
    await pool.end();
  }
}

/** Brings the rollups up to date as the service would, then times the queries and the refreshes. */
async function measure(pool: pg.Pool, rows: number, loaded: Loaded, runs: number, check: boolean): Promise<ScaleResult> {
  const rollups = (await pool.query<{ f: string | null }>(`select to_regproc('attendance_rollup_refresh')::text as f`)).rows[0]!.f !== null;
  const result: ScaleResult = { rows, machine: await describeMachine(pool), ...loaded, rollups, timings: [], refreshes: [], sizes: [], checks: [] };
  if (rollups) {
    const pending = (await pool.query<{ n: number }>('select count(*)::int as n from rollup_pending')).rows[0]!.n;
    // As the service does after an upgrade: its sweep, a batch of sessions per transaction; then,
    // in one call, the few sessions a live lease keeps from the sweep.
    say(`rolling up ${fmt(pending)} pending sessions with the service's sweep`);
    const [, ms] = await timed(async () => {
      await sweepPendingRollups(pool);
      await pool.query('select attendance_rollup_refresh(array(select call_session_id from rollup_pending))');
    });
    result.refreshSeconds = ms / 1000;
    result.refreshedSessions = pending;
    const left = (await pool.query<{ n: number }>('select count(*)::int as n from rollup_pending')).rows[0]!.n;
    say(`rolled up ${fmt(pending)} pending sessions in ${result.refreshSeconds.toFixed(1)} s; ${left} still pending`);
    if (left !== 0) throw new Error(`${left} sessions still pending after the refresh`);
  } else {
    say('no attendance_rollup_refresh in this schema: timing the views alone');
  }
  await pool.query('vacuum analyze');
  await pool.query(`set statement_timeout = ${QUERY_TIMEOUT_MS}`);
  const ids = await pickIds(pool);
  say(`heaviest user of ${MONTH.from.slice(0, 7)}: ${ids.user}`);
  result.timings = await timeQueries(pool, ids, runs, rollups);
  result.sizes = await tableSizes(pool);
  if (rollups && check) result.checks = await checkRollups(pool, ids);
  if (rollups) result.refreshes = await timeSessionRefreshes(pool, ids, runs);
  return result;
}

function ms(t: Timing | undefined): string {
  if (!t) return '';
  return t.error ? 'failed' : t.medianMs.toFixed(1);
}

function formatSection(results: ScaleResult[], args: Args, failure: Error | undefined): string {
  const machine = results[0]!.machine;
  const scales = results.map((r) => (r.rows % 1_000_000 === 0 ? `${r.rows / 1_000_000}M` : fmt(r.rows)));
  const last = results.at(-1)!;
  const baseline = (r: ScaleResult) => r.timings[0]!;
  const lines = [
    '',
    `## SQL views and rollups at ${scales.join(' and ')} entries (bench/sql-views.ts), ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC`,
    '',
    `\`node bin/run-ts.js bench/sql-views.ts ${args.database ? `--database ${args.database}` : args.scale ? '--scale' : `--rows ${args.rows}`} --runs ${args.runs}\` — ${machine.cores} cores ` +
      `(${machine.cpuModel}), ${machine.memoryGiB} GiB, Node ${machine.node}, PostgreSQL ${machine.postgres}; the machine is shared with ` +
      'other work, so single figures move by tens of percent between runs: read each against the count(*) baseline of the same run.',
    '',
    `Generated in SQL (hashes of generate_series, the same archive every run): a year from July 2025, sessions of 1 to 100,000 entries ` +
      '(45 % default calls of 1–4, 25 % audio rooms of 3–22, 25 % classrooms of 10–59 with a recurring roster, 5 % livestreams ' +
      'with a Pareto tail, one planted at 100,000), one entry in five a second device or a rejoin of the participant before it, users skewed and ' +
      `recurring, 2 % without left_at, 0.5 % without joined_at, 1 % of sessions not complete; raw as ${last.rawForm}. ` +
      `Month reports ask for ${MONTH.from.slice(0, 7)}. Warm cache, median of ${args.runs} runs after one warm-up, statement_timeout ${QUERY_TIMEOUT_MS / 1000} s.`,
    '',
    '| scale | sessions | users | load s (of which indexes) | rollup of the whole archive: s | s per 1M entries |',
    '| --- | ---: | ---: | ---: | ---: | ---: |',
    ...results.map(
      (r, i) =>
        `| ${scales[i]} | ${fmt(r.sessions)} | ${fmt(r.users)} | ${Number.isNaN(r.loadSeconds) ? 'kept from an earlier run' : `${r.loadSeconds.toFixed(0)} (${r.indexSeconds.toFixed(0)})`} | ` +
        `${r.refreshSeconds === undefined ? 'no rollups' : `${r.refreshSeconds.toFixed(1)} (${fmt(r.refreshedSessions ?? 0)} sessions)`} | ` +
        `${r.refreshSeconds === undefined ? '' : (r.refreshSeconds / (r.rows / 1_000_000)).toFixed(1)} |`,
    ),
    '',
    'Median ms is what a client waits for the whole answer (node-pg, the rows parsed); in the server, planning and execution as EXPLAIN ANALYZE reports them. ' +
      'The month report returns a row per user of the month, and receiving that many rows costs a client much the same whatever the query: ' +
      'the row after it is that floor (its answer materialised in a plain table, `select *` of it timed the same way), and the report is judged ' +
      "on its time in the server and on its median less the floor's.",
    '',
    `| query | target | ${scales.map((s) => `${s} rows out | ${s} median ms | ${s} in the server | ${s} min–max`).join(' | ')}${results.length > 1 ? ' | growth | baseline growth' : ''} | verdict |`,
    `| --- | ---: | ${scales.map(() => '---: | ---: | ---: | ---:').join(' | ')}${results.length > 1 ? ' | ---: | ---:' : ''} | --- |`,
    ...last.timings.map((t) => {
      const per = results.map((r) => r.timings.find((x) => x.name === t.name));
      const cells = per.map((p) =>
        p
          ? `${fmt(p.rows)} | ${ms(p)} | ${p.serverMs === undefined ? '' : p.serverMs.toFixed(1)} | ${p.error ? '' : p.runs === 1 ? 'one run' : `${p.minMs.toFixed(1)}–${p.maxMs.toFixed(1)}`}`
          : ' | | | ',
      );
      const first = per[0];
      const growth =
        results.length > 1
          ? ` | ${first && !first.error && !t.error ? `${(t.medianMs / first.medianMs).toFixed(1)} ×` : ''} | ${(baseline(last).medianMs / baseline(results[0]!).medianMs).toFixed(1)} ×`
          : '';
      const verdicts = per.map((p, i) => (p && p.targetMs !== undefined ? `${scales[i]}${verdict(p)}` : '')).filter(Boolean);
      return `| ${t.name} | ${t.targetMs === undefined ? '' : `< ${t.targetMs} ms`} | ${cells.join(' | ')}${growth} | ${verdicts.join('; ')} |`;
    }),
    '',
  ];
  if (results.some((r) => r.refreshes.length > 0)) {
    lines.push(
      'One session refreshed alone once its rows change (its rows rewritten, marked by the trigger, then `attendance_rollup_refresh(array[id])` alone timed; median; the sweep refreshes 100 sessions a statement):',
      '',
      `| session | ${scales.map((s) => `${s} ms`).join(' | ')} |`,
      `| --- | ${scales.map(() => '---:').join(' | ')} |`,
      ...last.refreshes.map(
        (f) =>
          `| ${f.what} (${fmt(f.entries)} entries) | ${results.map((r) => r.refreshes.find((x) => x.what === f.what)?.medianMs.toFixed(1) ?? '').join(' | ')} |`,
      ),
      '',
    );
  }
  lines.push(
    'Bytes per entry (pg_total_relation_size with indexes and TOAST, after vacuum analyze, ÷ entries):',
    '',
    `| table | ${scales.map((s) => `${s} bytes per entry`).join(' | ')} |`,
    `| --- | ${scales.map(() => '---:').join(' | ')} |`,
    ...last.sizes.map(
      (s) => `| ${s.table} | ${results.map((r) => ((r.sizes.find((x) => x.table === s.table)?.bytes ?? 0) / r.rows).toFixed(1)).join(' | ')} |`,
    ),
    '',
  );
  for (const [i, r] of results.entries()) for (const c of r.checks) lines.push(`- ${scales[i]} rollups equal the live views of migration 0002: ${c}`);
  if (results.some((r) => r.checks.length > 0)) lines.push('');
  if (failure) lines.push(`The run stopped after ${scales.join(' and ')}: ${failure.message.split('\n')[0]}`, '');
  return lines.join('\n');
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const startedAt = Date.now();
  const results: ScaleResult[] = [];
  let failure: Error | undefined;
  if (args.database) {
    try {
      results.push(await runOnKept(args.database, args.runs));
    } catch (error) {
      failure = error as Error;
      console.error(`${args.database} failed:`, error);
    }
  }
  for (const rows of args.database ? [] : args.scale ? SCALE_ROWS : [args.rows]) {
    try {
      results.push(await runScale(rows, args.runs, rows <= CHECK_MAX_ROWS, args.keep && rows === (args.scale ? SCALE_ROWS.at(-1) : args.rows)));
    } catch (error) {
      // A failed check or a missed deadline at 10M still leaves the 1M figures worth recording.
      failure = error as Error;
      console.error(`${fmt(rows)} entries failed:`, error);
      break;
    }
  }
  if (results.length > 0) {
    const section = formatSection(results, args, failure);
    // BENCH_RESULTS=<file> sends trial runs elsewhere, as for the other benchmarks.
    await appendFile(process.env.BENCH_RESULTS || new URL('RESULTS.md', import.meta.url), section);
    console.log(`${section}\nappended to ${process.env.BENCH_RESULTS || 'bench/RESULTS.md'} (${((Date.now() - startedAt) / 1000).toFixed(0)} s in all)`);
  }
  if (failure) process.exitCode = 1;
}

await main();
