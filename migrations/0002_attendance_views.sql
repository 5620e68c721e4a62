-- Attendance views over participant_sessions (documented column by column in docs/sql.md).
--
-- Every entry is read as the half-open interval [start_at, end_at):
--   start_at = joined_at, or left_at - duration_in_seconds when joined_at is missing;
--   end_at   = left_at,   or joined_at + duration_in_seconds when left_at is missing.
-- An entry whose interval cannot be formed (both ends unknown on one side, or end before start)
-- still counts in join_count and summed_seconds but adds nothing to attended time.
--
-- Index use (EXPLAIN, 1,000,000 rows; figures in bench/RESULTS.md):
-- - one session: the primary key (call_session_id, user_session_id) feeds everything;
-- - one user: participant_sessions_user_idx, since user_id is a partition/grouping key of every
--   step below and Postgres pushes the filter down to the scan;
-- - the session window is four index probes per (session, user) row instead of a second pass
--   over the session: min(joined_at) / max(left_at) through the two (call_session_id, ...)
--   indexes, and the rare entries with a missing end through a small partial index.

CREATE INDEX "participant_sessions_session_joined_idx" ON "participant_sessions" USING btree ("call_session_id", "joined_at");
--> statement-breakpoint
CREATE INDEX "participant_sessions_session_left_idx" ON "participant_sessions" USING btree ("call_session_id", "left_at");
--> statement-breakpoint
CREATE INDEX "participant_sessions_open_idx" ON "participant_sessions" USING btree ("call_session_id")
  WHERE "joined_at" IS NULL OR "left_at" IS NULL;
--> statement-breakpoint

-- One row per continuous stretch of presence of one user in one session: that user's entries
-- (all devices, all rejoins) merged where they overlap or touch.
CREATE VIEW "attendance_stretches" AS
SELECT
  call_session_id,
  user_id,
  call_type,
  call_id,
  stretch,
  min(start_at) AS started_at,
  max(end_at) AS ended_at,
  count(*)::integer AS entries,
  extract(epoch FROM max(end_at) - min(start_at)) AS seconds
FROM (
  SELECT
    call_session_id, user_id, call_type, call_id, start_at, end_at,
    -- A new stretch starts where this entry begins after everything before it has ended.
    sum(CASE WHEN prev_end_at IS NULL OR start_at > prev_end_at THEN 1 ELSE 0 END) OVER (
      PARTITION BY call_session_id, user_id, call_type, call_id
      ORDER BY start_at, end_at
      ROWS UNBOUNDED PRECEDING
    )::integer AS stretch
  FROM (
    SELECT
      call_session_id, user_id, call_type, call_id, start_at, end_at,
      max(end_at) OVER (
        PARTITION BY call_session_id, user_id, call_type, call_id
        ORDER BY start_at, end_at
        ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
      ) AS prev_end_at
    FROM (
      SELECT
        call_session_id, user_id, call_type, call_id,
        coalesce(joined_at, left_at - make_interval(secs => duration_in_seconds)) AS start_at,
        coalesce(left_at, joined_at + make_interval(secs => duration_in_seconds)) AS end_at
      FROM participant_sessions
    ) entry
    WHERE start_at IS NOT NULL AND end_at IS NOT NULL AND end_at >= start_at
  ) ordered
) marked
GROUP BY call_session_id, user_id, call_type, call_id, stretch;
--> statement-breakpoint

-- One row per (call session, user).
CREATE VIEW "attendance" AS
SELECT
  u.call_session_id,
  u.user_id,
  u.call_type,
  u.call_id,
  u.first_joined_at,
  u.last_left_at,
  u.join_count,
  u.summed_seconds,
  u.attended_seconds,
  u.stretches,
  w.session_started_at,
  w.session_ended_at,
  CASE
    WHEN w.session_ended_at > w.session_started_at
      THEN (u.attended_seconds / extract(epoch FROM w.session_ended_at - w.session_started_at))::double precision
  END AS attended_share
FROM (
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
          call_session_id, user_id, call_type, call_id, duration_in_seconds,
          coalesce(joined_at, left_at - make_interval(secs => duration_in_seconds)) AS start_at,
          coalesce(left_at, joined_at + make_interval(secs => duration_in_seconds)) AS end_at
        FROM participant_sessions
      ) bounds
    ) entry
  ) ordered
  GROUP BY call_session_id, user_id, call_type, call_id
) u
CROSS JOIN LATERAL (
  SELECT
    least(
      (SELECT min(p.joined_at) FROM participant_sessions p WHERE p.call_session_id = u.call_session_id),
      (SELECT min(p.left_at - make_interval(secs => p.duration_in_seconds)) FROM participant_sessions p
        WHERE p.call_session_id = u.call_session_id AND p.joined_at IS NULL)
    ) AS session_started_at,
    greatest(
      (SELECT max(p.left_at) FROM participant_sessions p WHERE p.call_session_id = u.call_session_id),
      (SELECT max(p.joined_at + make_interval(secs => p.duration_in_seconds)) FROM participant_sessions p
        WHERE p.call_session_id = u.call_session_id AND p.left_at IS NULL)
    ) AS session_ended_at
  -- A fence: without it Postgres inlines the probes into every column that uses them.
  OFFSET 0
) w;
--> statement-breakpoint

-- One row per call session known to the archive, including sessions with no rows yet.
CREATE VIEW "call_session_attendance" AS
SELECT
  cs.call_session_id,
  cs.call_type,
  cs.call_id,
  cs.status,
  a.participants,
  a.entries,
  a.summed_seconds,
  a.attended_seconds,
  coalesce(peak.peak_concurrent_participants, 0) AS peak_concurrent_participants,
  a.session_started_at,
  a.session_ended_at,
  cs.total_participant_sessions,
  cs.total_participant_duration,
  cs.archived_participant_sessions,
  cs.retention_expires_at
FROM call_sessions cs
CROSS JOIN LATERAL (
  SELECT
    count(*)::integer AS participants,
    coalesce(sum(att.join_count), 0)::integer AS entries,
    coalesce(sum(att.summed_seconds), 0)::bigint AS summed_seconds,
    coalesce(sum(att.attended_seconds), 0) AS attended_seconds,
    min(att.first_joined_at) AS session_started_at,
    max(att.last_left_at) AS session_ended_at
  FROM attendance att
  WHERE att.call_session_id = cs.call_session_id
) a
CROSS JOIN LATERAL (
  -- Sweep over stretch boundaries (a user's devices and rejoins are already merged, so each user
  -- counts once); at equal times leaves come before joins, as intervals are half-open.
  SELECT max(present)::integer AS peak_concurrent_participants
  FROM (
    SELECT sum(ev.delta) OVER (ORDER BY ev.at, ev.delta ROWS UNBOUNDED PRECEDING) AS present
    FROM attendance_stretches s
    CROSS JOIN LATERAL (VALUES (s.started_at, 1), (s.ended_at, -1)) AS ev(at, delta)
    WHERE s.call_session_id = cs.call_session_id AND s.ended_at > s.started_at
  ) sweep
) peak;
