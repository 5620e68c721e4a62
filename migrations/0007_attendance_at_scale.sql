-- The attendance views at 10,000,000 entries: plans that stay a few probes, and estimates that do
-- not start JIT compilation (docs/sql.md, "Rollups"; bench/sql-views.ts).
--
-- 1. One user's month. attendance_rollup keeps each row's session_started_at (the session's,
--    equal to session_rollup's: the same statement computes both), indexed with user_id, and the
--    view reads it from there: a user's month is the index entries of that month, where the view
--    of migration 0006 read every session of the user's year and filtered on session_rollup
--    (2,242 rows for 188 at 10M, 28 ms).
-- 2. attendance's live branch (marked sessions) reads the session window once per marked session,
--    as one aggregate row. Joined per attendance row, its estimate was the square of the rows a
--    session is estimated to hold (330 at 10M, so 108,240 rows), past jit_above_cost even with no
--    session marked: one session's attendance took 25 ms, 24 of them compiling.
-- 3. call_session_attendance as two branches, like attendance: session_rollup for the sessions
--    not marked, the live computation for the marked ones. Written as one pass with every column a
--    CASE on "is this session marked" and the live computation in a LATERAL subquery that a false
--    condition skips, the planner still costed that subquery for every row: the sessions not
--    complete (5,068 at 10M, none marked) took 724 ms, mostly JIT. The first branch is now three
--    probes a session (33 ms for those 5,068), the second starts from rollup_pending.
-- Same columns, same answers.

-- No refresh may write attendance_rollup between its copy and its drop (a service still running
-- the previous version sweeps every 15 s): every refresh takes this lock first, and the migration
-- holds it until it commits.
SELECT attendance_rollup_lock();
--> statement-breakpoint
-- Both views are created again below (attendance reads attendance_rollup, rebuilt here).
DROP VIEW "call_session_attendance";
--> statement-breakpoint
DROP VIEW "attendance";
--> statement-breakpoint
-- Rebuilt rather than updated in place: an UPDATE of every row leaves the table twice its size
-- until a VACUUM FULL (351 bytes an entry at 10M, against 148 built afresh). Written in key order.
CREATE TABLE "attendance_rollup_next" AS
SELECT r."call_session_id", r."user_id", r."first_joined_at", r."last_left_at", r."join_count", r."summed_seconds",
       r."attended_seconds", r."stretches", s."session_started_at"
  FROM "attendance_rollup" r
  LEFT JOIN "session_rollup" s ON s."call_session_id" = r."call_session_id"
 ORDER BY r."call_session_id", r."user_id";
--> statement-breakpoint
DROP TABLE "attendance_rollup";
--> statement-breakpoint
ALTER TABLE "attendance_rollup_next" RENAME TO "attendance_rollup";
--> statement-breakpoint
ALTER TABLE "attendance_rollup"
  ALTER COLUMN "join_count" SET NOT NULL,
  ALTER COLUMN "summed_seconds" SET NOT NULL,
  ALTER COLUMN "attended_seconds" SET NOT NULL,
  ALTER COLUMN "stretches" SET NOT NULL,
  ADD CONSTRAINT "attendance_rollup_pkey" PRIMARY KEY ("call_session_id", "user_id");
--> statement-breakpoint
-- Replaces attendance_rollup_user_idx: it serves every filter on user_id that one did.
CREATE INDEX "attendance_rollup_user_started_idx" ON "attendance_rollup" USING btree ("user_id", "session_started_at");
--> statement-breakpoint

-- Migration 0006's refresh, writing attendance_rollup.session_started_at too.
CREATE OR REPLACE FUNCTION "attendance_rollup_refresh_batch"(session_ids text[]) RETURNS integer
LANGUAGE plpgsql VOLATILE
SET enable_seqscan = off
SET enable_hashjoin = off
SET enable_mergejoin = off
SET jit = off
AS $$
DECLARE
  unmarked integer;
BEGIN
  EXECUTE $statement$
  WITH marked AS (
    SELECT call_session_id, marks FROM rollup_pending WHERE call_session_id = ANY ($1)
  ), fresh AS MATERIALIZED (
    SELECT a.call_session_id, a.user_id, a.first_joined_at, a.last_left_at, a.join_count, a.summed_seconds,
           a.attended_seconds, a.stretches,
           -- session_rollup's session_started_at (below, the same minimum), kept on each row.
           min(a.first_joined_at) OVER (PARTITION BY a.call_session_id) AS session_started_at,
           cs.call_type
      FROM attendance_compute($1) a JOIN call_sessions cs ON cs.call_session_id = a.call_session_id
  ), old AS MATERIALIZED (
    SELECT r.*, cs.call_type
      FROM attendance_rollup r JOIN call_sessions cs ON cs.call_session_id = r.call_session_id
     WHERE r.call_session_id = ANY ($1)
  ),
  -- attendance_rollup: new rows in, changed rows rewritten, rows no longer there out.
  kept AS (
    INSERT INTO attendance_rollup AS r
      (call_session_id, user_id, first_joined_at, last_left_at, join_count, summed_seconds, attended_seconds, stretches,
       session_started_at)
    SELECT call_session_id, user_id, first_joined_at, last_left_at, join_count, summed_seconds, attended_seconds, stretches,
           session_started_at
      FROM fresh ORDER BY call_session_id, user_id
    ON CONFLICT (call_session_id, user_id) DO UPDATE SET
      first_joined_at = excluded.first_joined_at, last_left_at = excluded.last_left_at,
      join_count = excluded.join_count, summed_seconds = excluded.summed_seconds,
      attended_seconds = excluded.attended_seconds, stretches = excluded.stretches,
      session_started_at = excluded.session_started_at
    WHERE (r.first_joined_at, r.last_left_at, r.join_count, r.summed_seconds, r.attended_seconds, r.stretches,
           r.session_started_at)
          IS DISTINCT FROM
          (excluded.first_joined_at, excluded.last_left_at, excluded.join_count, excluded.summed_seconds,
           excluded.attended_seconds, excluded.stretches, excluded.session_started_at)
    RETURNING 1
  ), gone AS (
    -- EXCEPT, not an anti-join: with the joins above held to probes, one would compare every old
    -- row with every new one (quadratic in a 100,000-entry session).
    DELETE FROM attendance_rollup r
     USING (SELECT call_session_id, user_id FROM old EXCEPT SELECT call_session_id, user_id FROM fresh) g
     WHERE r.call_session_id = g.call_session_id AND r.user_id = g.user_id
    RETURNING 1
  ),
  -- Each (session, user) row counts once, in the UTC month and day of its first join; the old rows
  -- count negatively, so a refresh that changes nothing adds nothing.
  change AS MATERIALIZED (
    SELECT user_id, call_type, first_joined_at, 1 AS sessions, attended_seconds, summed_seconds FROM fresh
     WHERE first_joined_at IS NOT NULL
    UNION ALL
    SELECT user_id, call_type, first_joined_at, -1, -attended_seconds, -summed_seconds FROM old
     WHERE first_joined_at IS NOT NULL
  ), monthly_change AS (
    SELECT date_trunc('month', c.first_joined_at AT TIME ZONE 'UTC')::date AS month, c.user_id,
           sum(c.sessions)::integer AS sessions, sum(c.attended_seconds) AS attended_seconds,
           sum(c.summed_seconds)::bigint AS summed_seconds
      FROM change c GROUP BY 1, 2
  ), monthly_next AS MATERIALIZED (
    SELECT d.month, d.user_id,
           coalesce(m.sessions, 0) + d.sessions AS sessions,
           coalesce(m.attended_seconds, 0) + d.attended_seconds AS attended_seconds,
           coalesce(m.summed_seconds, 0) + d.summed_seconds AS summed_seconds
      FROM monthly_change d
      LEFT JOIN monthly_user_attendance m ON m.month = d.month AND m.user_id = d.user_id
     WHERE d.sessions <> 0 OR d.attended_seconds <> 0 OR d.summed_seconds <> 0
  ), monthly_set AS (
    INSERT INTO monthly_user_attendance AS m
    SELECT month, user_id, sessions, attended_seconds, summed_seconds FROM monthly_next WHERE sessions > 0
     ORDER BY month, user_id
    ON CONFLICT (month, user_id) DO UPDATE SET
      sessions = excluded.sessions, attended_seconds = excluded.attended_seconds, summed_seconds = excluded.summed_seconds
    RETURNING 1
  ), monthly_gone AS (
    DELETE FROM monthly_user_attendance m USING monthly_next n
     WHERE m.month = n.month AND m.user_id = n.user_id AND n.sessions <= 0
    RETURNING 1
  ), daily_user_change AS (
    SELECT (c.first_joined_at AT TIME ZONE 'UTC')::date AS day, c.call_type, c.user_id,
           sum(c.sessions)::integer AS sessions, sum(c.attended_seconds) AS attended_seconds
      FROM change c GROUP BY 1, 2, 3
  ), daily_user_next AS MATERIALIZED (
    SELECT d.day, d.call_type, d.user_id, d.sessions AS delta, d.attended_seconds,
           coalesce(u.sessions, 0) AS held_before, coalesce(u.sessions, 0) + d.sessions AS held_after
      FROM daily_user_change d
      LEFT JOIN daily_call_type_users u ON u.day = d.day AND u.call_type = d.call_type AND u.user_id = d.user_id
  ), daily_user_set AS (
    INSERT INTO daily_call_type_users AS u
    SELECT day, call_type, user_id, held_after FROM daily_user_next WHERE held_after > 0 AND delta <> 0
     ORDER BY day, call_type, user_id
    ON CONFLICT (day, call_type, user_id) DO UPDATE SET sessions = excluded.sessions
    RETURNING 1
  ), daily_user_gone AS (
    DELETE FROM daily_call_type_users u USING daily_user_next n
     WHERE u.day = n.day AND u.call_type = n.call_type AND u.user_id = n.user_id AND n.held_after <= 0
    RETURNING 1
  ), daily_next AS MATERIALIZED (
    SELECT d.day, d.call_type,
           coalesce(a.users, 0) + d.users AS users,
           coalesce(a.sessions, 0) + d.sessions AS sessions,
           coalesce(a.attended_seconds, 0) + d.attended_seconds AS attended_seconds
      FROM (
        SELECT day, call_type,
               sum(CASE WHEN held_after > 0 AND held_before <= 0 THEN 1 WHEN held_after <= 0 AND held_before > 0 THEN -1 ELSE 0 END)::integer AS users,
               sum(delta)::integer AS sessions, sum(attended_seconds) AS attended_seconds
          FROM daily_user_next GROUP BY day, call_type
      ) d
      LEFT JOIN daily_call_type_attendance a ON a.day = d.day AND a.call_type = d.call_type
     WHERE d.users <> 0 OR d.sessions <> 0 OR d.attended_seconds <> 0
  ), daily_set AS (
    INSERT INTO daily_call_type_attendance AS a
    SELECT day, call_type, users, sessions, attended_seconds FROM daily_next WHERE sessions > 0
     ORDER BY day, call_type
    ON CONFLICT (day, call_type) DO UPDATE SET
      users = excluded.users, sessions = excluded.sessions, attended_seconds = excluded.attended_seconds
    RETURNING 1
  ), daily_gone AS (
    DELETE FROM daily_call_type_attendance a USING daily_next n
     WHERE a.day = n.day AND a.call_type = n.call_type AND n.sessions <= 0
    RETURNING 1
  ),
  -- session_rollup: one row per session with entries; none for a session without any.
  session_fresh AS MATERIALIZED (
    SELECT f.call_session_id,
           count(*)::integer AS participants,
           sum(f.join_count)::integer AS entries,
           sum(f.summed_seconds)::bigint AS summed_seconds,
           sum(f.attended_seconds) AS attended_seconds,
           min(f.first_joined_at) AS session_started_at,
           max(f.last_left_at) AS session_ended_at
      FROM fresh f GROUP BY f.call_session_id
  ), session_set AS (
    INSERT INTO session_rollup AS s
      (call_session_id, participants, entries, summed_seconds, attended_seconds, peak_concurrent_participants,
       session_started_at, session_ended_at, refreshed_at)
    SELECT f.call_session_id, f.participants, f.entries, f.summed_seconds, f.attended_seconds,
           coalesce(pk.peak_concurrent_participants, 0), f.session_started_at, f.session_ended_at, now()
      FROM session_fresh f
      LEFT JOIN session_peak_compute($1) pk ON pk.call_session_id = f.call_session_id
     ORDER BY f.call_session_id
    ON CONFLICT (call_session_id) DO UPDATE SET
      participants = excluded.participants, entries = excluded.entries, summed_seconds = excluded.summed_seconds,
      attended_seconds = excluded.attended_seconds, peak_concurrent_participants = excluded.peak_concurrent_participants,
      session_started_at = excluded.session_started_at, session_ended_at = excluded.session_ended_at,
      refreshed_at = excluded.refreshed_at
    RETURNING 1
  ), session_gone AS (
    DELETE FROM session_rollup s
     WHERE s.call_session_id = ANY ($1)
       AND NOT EXISTS (SELECT 1 FROM session_fresh f WHERE f.call_session_id = s.call_session_id)
    RETURNING 1
  ), unmark AS (
    DELETE FROM rollup_pending p USING marked m
     WHERE p.call_session_id = m.call_session_id AND p.marks = m.marks
    RETURNING 1
  )
  -- Every data-modifying CTE above runs to completion whether or not the query reads it.
  SELECT count(*)::integer FROM unmark
  $statement$ INTO unmarked USING session_ids;
  RETURN unmarked;
END
$$;
--> statement-breakpoint

CREATE VIEW "attendance" AS
SELECT
  r.call_session_id, r.user_id, cs.call_type, cs.call_id, r.first_joined_at, r.last_left_at,
  r.join_count, r.summed_seconds, r.attended_seconds, r.stretches,
  -- r's copy, not s's: a filter on it reaches attendance_rollup_user_started_idx.
  r.session_started_at, s.session_ended_at,
  CASE
    WHEN s.session_ended_at > s.session_started_at
      THEN (r.attended_seconds / extract(epoch FROM s.session_ended_at - s.session_started_at))::double precision
  END AS attended_share
FROM attendance_rollup r
JOIN session_rollup s ON s.call_session_id = r.call_session_id
JOIN call_sessions cs ON cs.call_session_id = r.call_session_id
WHERE NOT EXISTS (SELECT 1 FROM rollup_pending p WHERE p.call_session_id = r.call_session_id)
UNION ALL
SELECT
  -- p's column, not a's: a filter on call_session_id then probes rollup_pending's key.
  p.call_session_id, a.user_id, a.call_type, a.call_id, a.first_joined_at, a.last_left_at,
  a.join_count, a.summed_seconds, a.attended_seconds, a.stretches,
  w.session_started_at, w.session_ended_at,
  CASE
    WHEN w.session_ended_at > w.session_started_at
      THEN (a.attended_seconds / extract(epoch FROM w.session_ended_at - w.session_started_at))::double precision
  END
-- One marked session at a time: with a plain argument attendance_compute is inlined (an argument
-- holding a subquery would stop that), so a filter on user_id or call_session_id reaches the
-- primary key of participant_sessions. The window is one aggregate row per session (a session
-- without rows has no attendance rows to join it to).
FROM rollup_pending p
CROSS JOIN LATERAL (
  SELECT
    min(coalesce(x.joined_at, x.left_at - make_interval(secs => x.duration_in_seconds))) AS session_started_at,
    max(coalesce(x.left_at, x.joined_at + make_interval(secs => x.duration_in_seconds))) AS session_ended_at
  FROM participant_sessions x
  WHERE x.call_session_id = p.call_session_id
) w
CROSS JOIN LATERAL attendance_compute(ARRAY[p.call_session_id]) a;
--> statement-breakpoint

CREATE VIEW "call_session_attendance" AS
SELECT
  cs.call_session_id,
  cs.call_type,
  cs.call_id,
  cs.status,
  coalesce(r.participants, 0) AS participants,
  coalesce(r.entries, 0) AS entries,
  coalesce(r.summed_seconds, 0::bigint) AS summed_seconds,
  coalesce(r.attended_seconds, 0::numeric) AS attended_seconds,
  coalesce(r.peak_concurrent_participants, 0) AS peak_concurrent_participants,
  r.session_started_at,
  r.session_ended_at,
  cs.total_participant_sessions,
  cs.total_participant_duration,
  cs.archived_participant_sessions,
  cs.retention_expires_at
FROM call_sessions cs
-- A probe of session_rollup's key per session kept. As a plain join Postgres hashes the whole of
-- session_rollup once more than a few thousand sessions are kept (the sessions not complete at
-- 10M: 100 ms, 33 ms probed); OFFSET 0 keeps the subquery from being merged into a join it could
-- choose to hash. A query reading most sessions pays ~3 µs a session more this way.
LEFT JOIN LATERAL (SELECT * FROM session_rollup sr WHERE sr.call_session_id = cs.call_session_id OFFSET 0) r ON true
WHERE NOT EXISTS (SELECT 1 FROM rollup_pending p WHERE p.call_session_id = cs.call_session_id)
UNION ALL
SELECT
  cs.call_session_id,
  cs.call_type,
  cs.call_id,
  cs.status,
  live.participants,
  live.entries,
  live.summed_seconds,
  live.attended_seconds,
  coalesce((SELECT pk.peak_concurrent_participants FROM session_peak_compute(ARRAY[p.call_session_id]) pk), 0),
  live.session_started_at,
  live.session_ended_at,
  cs.total_participant_sessions,
  cs.total_participant_duration,
  cs.archived_participant_sessions,
  cs.retention_expires_at
-- One marked session at a time, with a plain argument, so the functions are inlined and read the
-- session's rows through the primary key (as in attendance).
FROM rollup_pending p
JOIN call_sessions cs ON cs.call_session_id = p.call_session_id
CROSS JOIN LATERAL (
  SELECT
    count(*)::integer AS participants,
    coalesce(sum(att.join_count), 0)::integer AS entries,
    coalesce(sum(att.summed_seconds), 0)::bigint AS summed_seconds,
    coalesce(sum(att.attended_seconds), 0) AS attended_seconds,
    min(att.first_joined_at) AS session_started_at,
    max(att.last_left_at) AS session_ended_at
  FROM attendance_compute(ARRAY[p.call_session_id]) att
) live;
