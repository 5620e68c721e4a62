-- Attendance rollups: what the attendance views compute, kept in tables and brought up to date as
-- sessions finish archiving, are archived again, pruned or erased (documented in docs/sql.md,
-- "Rollups").
--
-- The rule that keeps them exact: every statement that inserts, updates or deletes
-- participant_sessions rows marks their sessions in rollup_pending (a statement-level trigger, so
-- no writer can forget); attendance_rollup_refresh() recomputes marked sessions from their rows and
-- unmarks them; the views read the rollups only for sessions not marked and compute marked ones
-- from their rows, as before. So the views answer exactly what the rows say at every moment, and
-- the report tables (monthly_user_attendance, daily_call_type_attendance) are exact for every
-- session not marked; `attendance status` and /metrics show how many are.
--
-- The session window (first start, last end of anyone) is kept per session in session_rollup, so
-- the three indexes that served its per-row probes go: together about 210 bytes per entry; and
-- (call_type, call_id), which the views' call filters no longer read, 10 more.

DROP VIEW "call_session_attendance";
--> statement-breakpoint
DROP VIEW "attendance";
--> statement-breakpoint
DROP INDEX "participant_sessions_session_joined_idx";
--> statement-breakpoint
DROP INDEX "participant_sessions_session_left_idx";
--> statement-breakpoint
DROP INDEX "participant_sessions_open_idx";
--> statement-breakpoint
-- Filters on the call now reach call_sessions_call_idx and the rollups; nothing reads this one.
DROP INDEX "participant_sessions_call_idx";
--> statement-breakpoint

-- "Sessions not complete" (docs/sql.md) reads the few sessions not complete without a scan of them all.
CREATE INDEX "call_sessions_not_complete_idx" ON "call_sessions" USING btree ("retention_expires_at", "call_session_id")
  WHERE "status" <> 'complete';
--> statement-breakpoint

-- Sessions whose rollups are behind their rows. `marks` counts the statements that marked it: a
-- refresh unmarks a session only if no statement marked it again since the refresh read it.
CREATE TABLE "rollup_pending" (
  "call_session_id" text PRIMARY KEY,
  "marks" bigint NOT NULL DEFAULT 1,
  "marked_at" timestamptz NOT NULL DEFAULT now()
);
--> statement-breakpoint

-- The attendance view's columns per (call session, user), without the call (call_sessions has
-- it) and the session window (session_rollup has it).
CREATE TABLE "attendance_rollup" (
  "call_session_id" text NOT NULL,
  "user_id" text NOT NULL,
  "first_joined_at" timestamptz,
  "last_left_at" timestamptz,
  "join_count" integer NOT NULL,
  "summed_seconds" bigint NOT NULL,
  "attended_seconds" numeric NOT NULL,
  "stretches" integer NOT NULL,
  PRIMARY KEY ("call_session_id", "user_id")
);
--> statement-breakpoint
CREATE INDEX "attendance_rollup_user_idx" ON "attendance_rollup" USING btree ("user_id");
--> statement-breakpoint

-- One row per call session holding entries: call_session_attendance's computed columns.
CREATE TABLE "session_rollup" (
  "call_session_id" text PRIMARY KEY,
  "participants" integer NOT NULL,
  "entries" integer NOT NULL,
  "summed_seconds" bigint NOT NULL,
  "attended_seconds" numeric NOT NULL,
  "peak_concurrent_participants" integer NOT NULL,
  "session_started_at" timestamptz,
  "session_ended_at" timestamptz,
  "refreshed_at" timestamptz NOT NULL DEFAULT now()
);
--> statement-breakpoint

-- Per user and month (UTC) of the user's first join in each session: what "minutes per user per
-- month" adds up over the attendance view.
CREATE TABLE "monthly_user_attendance" (
  "month" date NOT NULL,
  "user_id" text NOT NULL,
  "sessions" integer NOT NULL,
  "attended_seconds" numeric NOT NULL,
  "summed_seconds" bigint NOT NULL,
  PRIMARY KEY ("month", "user_id")
);
--> statement-breakpoint

-- Per day (UTC) of the user's first join in each session and call type: distinct users, their
-- sessions and attended seconds. daily_call_type_users holds who, so `users` stays exact as
-- sessions come and go.
CREATE TABLE "daily_call_type_attendance" (
  "day" date NOT NULL,
  "call_type" text NOT NULL,
  "users" integer NOT NULL,
  "sessions" integer NOT NULL,
  "attended_seconds" numeric NOT NULL,
  PRIMARY KEY ("day", "call_type")
);
--> statement-breakpoint
CREATE TABLE "daily_call_type_users" (
  "day" date NOT NULL,
  "call_type" text NOT NULL,
  "user_id" text NOT NULL,
  "sessions" integer NOT NULL,
  PRIMARY KEY ("day", "call_type", "user_id")
);
--> statement-breakpoint

-- The attendance view's computation for the given sessions, from participant_sessions (the
-- definition migration 0002 documented; unchanged). Inlined by the planner, so a filter on
-- user_id or call_session_id reaches the table's indexes.
CREATE FUNCTION "attendance_compute"(sessions text[])
RETURNS TABLE (
  call_session_id text, user_id text, call_type text, call_id text,
  first_joined_at timestamptz, last_left_at timestamptz, join_count integer,
  summed_seconds bigint, attended_seconds numeric, stretches integer
)
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
  SELECT
    call_session_id, user_id, call_type, call_id,
    min(start_at) AS first_joined_at,
    max(end_at) AS last_left_at,
    count(*)::integer AS join_count,
    coalesce(sum(duration_in_seconds), 0)::bigint AS summed_seconds,
    -- Sorted by start, the union of the earlier intervals covers exactly [start_at, prev_end_at)
    -- of this one, so each interval adds only what lies past prev_end_at: one pass, no islands.
    coalesce(sum(
      CASE WHEN valid THEN greatest(extract(epoch FROM end_at - greatest(start_at, prev_end_at)), 0) END
    ), 0) AS attended_seconds,
    count(*) FILTER (WHERE valid AND (prev_end_at IS NULL OR start_at > prev_end_at))::integer AS stretches
  FROM (
    SELECT
      entry.*,
      max(CASE WHEN valid THEN end_at END) OVER (
        PARTITION BY call_session_id, user_id, call_type, call_id
        ORDER BY start_at, end_at
        ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
      ) AS prev_end_at
    FROM (
      SELECT
        call_session_id, user_id, call_type, call_id, duration_in_seconds, start_at, end_at,
        (start_at IS NOT NULL AND end_at IS NOT NULL AND end_at >= start_at) AS valid
      FROM (
        SELECT
          p.call_session_id, p.user_id, p.call_type, p.call_id, p.duration_in_seconds,
          coalesce(p.joined_at, p.left_at - make_interval(secs => p.duration_in_seconds)) AS start_at,
          coalesce(p.left_at, p.joined_at + make_interval(secs => p.duration_in_seconds)) AS end_at
        FROM participant_sessions p
        WHERE p.call_session_id = ANY (sessions)
      ) bounds
    ) entry
  ) ordered
  GROUP BY call_session_id, user_id, call_type, call_id
$$;
--> statement-breakpoint

-- The session window of the given sessions: first start and last end of anyone (an entry's start
-- is joined_at, or left_at − duration; its end left_at, or joined_at + duration).
CREATE FUNCTION "session_window_compute"(sessions text[])
RETURNS TABLE (call_session_id text, session_started_at timestamptz, session_ended_at timestamptz)
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
  SELECT
    p.call_session_id,
    min(coalesce(p.joined_at, p.left_at - make_interval(secs => p.duration_in_seconds))),
    max(coalesce(p.left_at, p.joined_at + make_interval(secs => p.duration_in_seconds)))
  FROM participant_sessions p
  WHERE p.call_session_id = ANY (sessions)
  GROUP BY p.call_session_id
$$;
--> statement-breakpoint

-- Most distinct users present at once in each of the given sessions: a sweep over the stretch
-- boundaries (a user's devices and rejoins are already merged, so each user counts once); at equal
-- times leaves come before joins, as intervals are half-open.
CREATE FUNCTION "session_peak_compute"(sessions text[])
RETURNS TABLE (call_session_id text, peak_concurrent_participants integer)
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
  SELECT call_session_id, max(present)::integer
  FROM (
    SELECT
      s.call_session_id,
      sum(ev.delta) OVER (PARTITION BY s.call_session_id ORDER BY ev.at, ev.delta ROWS UNBOUNDED PRECEDING) AS present
    FROM attendance_stretches s
    CROSS JOIN LATERAL (VALUES (s.started_at, 1), (s.ended_at, -1)) AS ev(at, delta)
    WHERE s.call_session_id = ANY (sessions) AND s.ended_at > s.started_at
  ) sweep
  GROUP BY call_session_id
$$;
--> statement-breakpoint

-- Every refresh holds this transaction-level advisory lock, so refreshes never interleave (the
-- distinct-user counts depend on it). A transaction that writes participant_sessions and then
-- refreshes in the same transaction (erasure, pruning) takes it first: the refresh may wait on the
-- rollup_pending rows such a transaction marked, never the other way round.
CREATE FUNCTION "attendance_rollup_lock"() RETURNS void
LANGUAGE sql VOLATILE
AS $$ SELECT pg_advisory_xact_lock(7301402420) $$;
--> statement-breakpoint

-- One batch of attendance_rollup_refresh (below), which holds the lock. One statement, so
-- everything it reads comes from one snapshot: the new attendance rows, the old ones (to take
-- their share out of the report tables) and the marks. A session marked again after that snapshot
-- (a page written meanwhile) stays marked: the DELETE re-reads a row changed under it and its
-- `marks` no longer match. EXECUTE plans it for each batch against the tables as they are: a plan
-- cached while the rollups were small (a new install, or the first batches of a catch-up) would
-- keep reading them whole as they grow. Every table is read through its key, a probe per row
-- (a batch is at most 100 sessions, and touches a few rows of each report table): without
-- statistics yet (a new install, a catch-up) Postgres guesses that 100 ids match half a table and
-- reads it whole, or joins a whole index, so a catch-up would grow with the square of the archive;
-- and its estimated cost would start JIT compilation that takes longer than the statement.
CREATE FUNCTION "attendance_rollup_refresh_batch"(session_ids text[]) RETURNS integer
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
           a.attended_seconds, a.stretches, cs.call_type
      FROM attendance_compute($1) a JOIN call_sessions cs ON cs.call_session_id = a.call_session_id
  ), old AS MATERIALIZED (
    SELECT r.*, cs.call_type
      FROM attendance_rollup r JOIN call_sessions cs ON cs.call_session_id = r.call_session_id
     WHERE r.call_session_id = ANY ($1)
  ),
  -- attendance_rollup: new rows in, changed rows rewritten, rows no longer there out.
  kept AS (
    INSERT INTO attendance_rollup AS r
    SELECT call_session_id, user_id, first_joined_at, last_left_at, join_count, summed_seconds, attended_seconds, stretches
      FROM fresh ORDER BY call_session_id, user_id
    ON CONFLICT (call_session_id, user_id) DO UPDATE SET
      first_joined_at = excluded.first_joined_at, last_left_at = excluded.last_left_at,
      join_count = excluded.join_count, summed_seconds = excluded.summed_seconds,
      attended_seconds = excluded.attended_seconds, stretches = excluded.stretches
    WHERE (r.first_joined_at, r.last_left_at, r.join_count, r.summed_seconds, r.attended_seconds, r.stretches)
          IS DISTINCT FROM
          (excluded.first_joined_at, excluded.last_left_at, excluded.join_count, excluded.summed_seconds,
           excluded.attended_seconds, excluded.stretches)
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

-- Brings the rollups of the given sessions up to date with their rows and unmarks them; returns
-- how many were unmarked. In batches of 100 sessions: each batch reads its sessions' rows through
-- the primary key, where one array of every session of a large archive would make Postgres scan
-- the table and test each row against the whole array.
CREATE FUNCTION "attendance_rollup_refresh"(session_ids text[]) RETURNS integer
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
  batch text[];
  unmarked integer := 0;
BEGIN
  PERFORM attendance_rollup_lock();
  FOR batch IN
    SELECT array_agg(id ORDER BY id)
      FROM (SELECT id, row_number() OVER (ORDER BY id) AS n
              FROM (SELECT DISTINCT id FROM unnest(session_ids) AS u(id) WHERE id IS NOT NULL) distinct_ids) ids
     GROUP BY (n - 1) / 100
  LOOP
    unmarked := unmarked + attendance_rollup_refresh_batch(batch);
  END LOOP;
  RETURN unmarked;
END
$$;
--> statement-breakpoint

-- Marks the sessions a statement wrote participant_sessions rows of (transition table `changed`).
CREATE FUNCTION "rollup_mark_pending"() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
  INSERT INTO rollup_pending AS p (call_session_id)
  SELECT DISTINCT call_session_id FROM changed ORDER BY 1
  ON CONFLICT (call_session_id) DO UPDATE SET marks = p.marks + 1, marked_at = now();
  RETURN NULL;
END
$$;
--> statement-breakpoint
CREATE TRIGGER "participant_sessions_rollup_insert" AFTER INSERT ON "participant_sessions"
  REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION rollup_mark_pending();
--> statement-breakpoint
CREATE TRIGGER "participant_sessions_rollup_update" AFTER UPDATE ON "participant_sessions"
  REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION rollup_mark_pending();
--> statement-breakpoint
CREATE TRIGGER "participant_sessions_rollup_delete" AFTER DELETE ON "participant_sessions"
  REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION rollup_mark_pending();
--> statement-breakpoint

-- TRUNCATE fires no row trigger: the rollups go with the rows.
CREATE FUNCTION "rollup_truncate"() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
  PERFORM attendance_rollup_lock();
  TRUNCATE rollup_pending, attendance_rollup, session_rollup, monthly_user_attendance, daily_call_type_attendance, daily_call_type_users;
  RETURN NULL;
END
$$;
--> statement-breakpoint
CREATE TRIGGER "participant_sessions_rollup_truncate" AFTER TRUNCATE ON "participant_sessions"
  FOR EACH STATEMENT EXECUTE FUNCTION rollup_truncate();
--> statement-breakpoint

-- One row per (call session, user): from the rollups for sessions not marked, computed from the
-- rows for marked ones. Same columns and meaning as before (docs/sql.md).
CREATE VIEW "attendance" AS
SELECT
  r.call_session_id, r.user_id, cs.call_type, cs.call_id, r.first_joined_at, r.last_left_at,
  r.join_count, r.summed_seconds, r.attended_seconds, r.stretches,
  s.session_started_at, s.session_ended_at,
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
-- One marked session at a time: with a plain argument the functions are inlined (an argument
-- holding a subquery would stop that), so a filter on user_id or call_session_id reaches the
-- primary key of participant_sessions, and the window is read only for sessions with rows left.
FROM rollup_pending p
CROSS JOIN LATERAL attendance_compute(ARRAY[p.call_session_id]) a
CROSS JOIN LATERAL session_window_compute(ARRAY[a.call_session_id]) w;
--> statement-breakpoint

-- One row per call session known to the archive, including sessions with no rows yet: from
-- session_rollup when the session is not marked, computed from its rows when it is.
CREATE VIEW "call_session_attendance" AS
SELECT
  cs.call_session_id,
  cs.call_type,
  cs.call_id,
  cs.status,
  CASE WHEN pending.marked THEN live.participants ELSE coalesce(r.participants, 0) END AS participants,
  CASE WHEN pending.marked THEN live.entries ELSE coalesce(r.entries, 0) END AS entries,
  CASE WHEN pending.marked THEN live.summed_seconds ELSE coalesce(r.summed_seconds, 0) END AS summed_seconds,
  CASE WHEN pending.marked THEN live.attended_seconds ELSE coalesce(r.attended_seconds, 0) END AS attended_seconds,
  -- CASE evaluates the sweep only for a marked session.
  CASE
    WHEN pending.marked
      THEN coalesce((SELECT pk.peak_concurrent_participants FROM session_peak_compute(ARRAY[cs.call_session_id]) pk), 0)
    ELSE coalesce(r.peak_concurrent_participants, 0)
  END AS peak_concurrent_participants,
  CASE WHEN pending.marked THEN live.session_started_at ELSE r.session_started_at END AS session_started_at,
  CASE WHEN pending.marked THEN live.session_ended_at ELSE r.session_ended_at END AS session_ended_at,
  cs.total_participant_sessions,
  cs.total_participant_duration,
  cs.archived_participant_sessions,
  cs.retention_expires_at
FROM call_sessions cs
LEFT JOIN session_rollup r ON r.call_session_id = cs.call_session_id
CROSS JOIN LATERAL (
  SELECT EXISTS (SELECT 1 FROM rollup_pending p WHERE p.call_session_id = cs.call_session_id) AS marked
) pending
CROSS JOIN LATERAL (
  -- Computed only for a marked session (the condition is on the outer row, so Postgres skips
  -- the scan entirely for the others).
  SELECT
    count(*)::integer AS participants,
    coalesce(sum(att.join_count), 0)::integer AS entries,
    coalesce(sum(att.summed_seconds), 0)::bigint AS summed_seconds,
    coalesce(sum(att.attended_seconds), 0) AS attended_seconds,
    min(att.first_joined_at) AS session_started_at,
    max(att.last_left_at) AS session_ended_at
  FROM attendance_compute(ARRAY[cs.call_session_id]) att
  WHERE pending.marked
) live;
--> statement-breakpoint

-- The archive as it was before this migration: every session holding entries is marked, so the
-- views read them as before and the service's rollup sweep fills the tables in the background.
INSERT INTO rollup_pending (call_session_id)
SELECT DISTINCT call_session_id FROM participant_sessions
ON CONFLICT DO NOTHING;
