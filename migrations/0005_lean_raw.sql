-- A lean `raw`: participant_sessions.raw keeps only what the typed columns do not give back
-- exactly, and participant_session_entry(p) rebuilds Stream's entry as sent (docs/sql.md, "What
-- each column keeps"). The worker stores participant_session_lean_raw(...) (queue/checkpoint-page.ts);
-- every reader of the entry goes through participant_session_entry. Rows written before this
-- migration keep their full raw, which participant_session_entry gives back unchanged; a row is
-- rewritten lean the next time its session is archived.
--
-- The lean form, told from a full raw by having no `user_session_id` key:
-- - `user_id`, `user_session_id`, `publisher_type`, `duration_in_seconds`, `roles` are left out
--   when the column gives back the value's exact JSON (a string equal to the column, the integer
--   the column prints, the roles array); a value that differs, or a JSON null, stays as sent.
-- - `-`: the names of those keys Stream did not send although their column holds a value
--   (publisher_type '' and roles '{}' are what an absent key becomes), so they stay absent.
-- - `~joined_at` / `~left_at` replace RFC 3339 text in UTC (`Z`, 0 to 9 fraction digits):
--   digits sent × 1000 + the digits past the microsecond, which the column does not hold.
-- - `#joined_at` / `#left_at` replace integer nanoseconds: the nanoseconds past the microsecond.
-- - everything else (other offsets, `z`, digit strings, null, fields Stream adds) stays as sent.
-- Each replacement is made only when rebuilding it from the column gives back the same JSON text,
-- by the same functions participant_session_entry uses, so the lean form never loses a digit.
-- An entry that holds a key named like a marker, or whose user_session_id differs from the
-- column, is kept whole.
--
-- Measured (bench/storage.ts, 100,000 simulator entries): heap 487 → 279 bytes an entry, raw
-- 262 → 57 bytes, and the rebuilt entry equal to the one sent in every row.
--
-- participant_session_lean_raw and its helpers are LANGUAGE sql and STABLE (to_char and to_jsonb
-- are), so the planner inlines them into the worker's statement, which each connection plans
-- once. Declared IMMUTABLE, participant_session_lean_raw could not be inlined and ran as a query
-- of its own per row: ~120 µs a row against ~20 (2 shared cores under load); PL/pgSQL was ~28.

-- RFC 3339 in UTC of `instant` with `digits` fraction digits, the last three of nine being
-- `past_micro`. to_char with only numeric fields depends on neither locale nor TimeZone. Each
-- argument is used once: the planner does not inline a function whose argument, costly to
-- compute, it would have to repeat. The trailing '.' keeps the cut below 0 characters from the
-- end, since left(s, 0) is empty.
CREATE FUNCTION "participant_session_rfc3339"(instant timestamptz, digits integer, past_micro integer) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
  SELECT left(to_char(instant AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US') || lpad(past_micro::text, 3, '0') || '.',
              digits - 10 - (digits = 0)::integer) || 'Z'
$$;
--> statement-breakpoint

-- Integer Unix nanoseconds of `instant` plus the nanoseconds past its microsecond (exact: numeric).
CREATE FUNCTION "participant_session_nanos"(instant timestamptz, past_micro integer) RETURNS numeric
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
  SELECT trunc(extract(epoch FROM instant) * 1000000) * 1000 + past_micro
$$;
--> statement-breakpoint

-- The marker value of an entry timestamp sent as `sent` (text of a JSON value of type `kind`)
-- whose column holds `instant`: for RFC 3339 in UTC, fraction digits × 1000 + the digits past
-- the microsecond; for integer nanoseconds, the nanoseconds past the microsecond. Null unless
-- rebuilding it gives back the same JSON text. Nested CASEs, not AND: the casts must only see
-- what the tests before them let through.
CREATE FUNCTION "participant_session_instant_code"(kind text, sent text, instant timestamptz) RETURNS integer
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
  SELECT CASE kind
    -- A rough shape check, cheap (a regex cost ~6 µs a value): the rebuilt text must equal the
    -- sent one anyway; this only keeps non-digits from the integer cast.
    WHEN 'string' THEN CASE WHEN sent LIKE '____-__-__T__:__:__%Z' AND length(sent) <= 30 AND translate(substr(sent, 27), '0123456789Z', '') = '' THEN
      -- `…:SSZ` is 20 characters; the first fraction digit is the 21st, the seventh the 27th.
      CASE WHEN participant_session_rfc3339(instant, greatest(length(sent) - 21, 0), rpad(substr(sent, 27, greatest(length(sent) - 27, 0)), 3, '0')::integer) = sent
        THEN greatest(length(sent) - 21, 0) * 1000 + rpad(substr(sent, 27, greatest(length(sent) - 27, 0)), 3, '0')::integer END END
    WHEN 'number' THEN CASE WHEN sent::numeric - participant_session_nanos(instant, 0) BETWEEN 0 AND 999 THEN
      CASE WHEN participant_session_nanos(instant, (sent::numeric - participant_session_nanos(instant, 0))::integer)::text = sent
        THEN (sent::numeric - participant_session_nanos(instant, 0))::integer END END
  END
$$;
--> statement-breakpoint

-- What to store in raw for an entry `raw` whose columns hold the other arguments. One expression,
-- so the planner inlines it into the worker's statement; each timestamp is checked once (its
-- original comes back through the marker text when it has no marker).
CREATE FUNCTION "participant_session_lean_raw"(raw jsonb, user_id text, user_session_id text, publisher_type text,
  duration_in_seconds integer, roles text[], joined_at timestamptz, left_at timestamptz) RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
  SELECT CASE
    WHEN jsonb_typeof(raw) IS DISTINCT FROM 'object' OR raw ?| array['-', '~joined_at', '#joined_at', '~left_at', '#left_at']
      OR raw ? 'user_session_id' AND raw -> 'user_session_id' IS DISTINCT FROM to_jsonb(user_session_id) THEN raw
    -- jsonb - text[] skips the NULLs: the fields the columns would not give back stay.
    ELSE (raw - array[
        'user_session_id', 'joined_at', 'left_at',
        CASE WHEN raw -> 'user_id' = to_jsonb(user_id) THEN 'user_id' END,
        CASE WHEN raw -> 'publisher_type' = to_jsonb(publisher_type) THEN 'publisher_type' END,
        -- By text: jsonb equality holds 30.0 = 30, which the column would give back as 30.
        CASE WHEN jsonb_typeof(raw -> 'duration_in_seconds') = 'number' AND raw ->> 'duration_in_seconds' = duration_in_seconds::text
          THEN 'duration_in_seconds' END,
        CASE WHEN raw -> 'roles' = to_jsonb(roles) THEN 'roles' END])
    -- Built as text and parsed once: jsonb_build_object looks up its arguments' types on every
    -- call (~5 µs a row for five fields).
    || ('{' || array_to_string(array[
      CASE WHEN NOT raw ?& array['user_id', 'user_session_id', 'publisher_type', 'duration_in_seconds', 'roles'] THEN
        '"-":' || nullif(to_jsonb(array_remove(array[
          CASE WHEN NOT raw ? 'user_id' AND user_id IS NOT NULL THEN 'user_id' END,
          CASE WHEN NOT raw ? 'user_session_id' AND user_session_id IS NOT NULL THEN 'user_session_id' END,
          CASE WHEN NOT raw ? 'publisher_type' AND publisher_type IS NOT NULL THEN 'publisher_type' END,
          CASE WHEN NOT raw ? 'duration_in_seconds' AND duration_in_seconds IS NOT NULL THEN 'duration_in_seconds' END,
          CASE WHEN NOT raw ? 'roles' AND roles IS NOT NULL THEN 'roles' END], NULL))::text, '[]') END,
      coalesce(CASE jsonb_typeof(raw -> 'joined_at') WHEN 'string' THEN '"~joined_at":' WHEN 'number' THEN '"#joined_at":' END
                 || participant_session_instant_code(jsonb_typeof(raw -> 'joined_at'), raw ->> 'joined_at', joined_at)::text,
               '"joined_at":' || (raw -> 'joined_at')::text),
      coalesce(CASE jsonb_typeof(raw -> 'left_at') WHEN 'string' THEN '"~left_at":' WHEN 'number' THEN '"#left_at":' END
                 || participant_session_instant_code(jsonb_typeof(raw -> 'left_at'), raw ->> 'left_at', left_at)::text,
               '"left_at":' || (raw -> 'left_at')::text)], ',') || '}')::jsonb
  END
$$;
--> statement-breakpoint

-- Stream's entry exactly as sent, from a row's columns and its raw (lean, or full from before 0005).
-- PL/pgSQL, so a query calling it is not planned with the whole expression inlined: the archive
-- route's reads are planned on every request, and a 100-row page read took ~25% less this way.
CREATE FUNCTION "participant_session_entry"(p participant_sessions) RETURNS jsonb
LANGUAGE plpgsql STABLE PARALLEL SAFE
AS $$
BEGIN
  RETURN CASE WHEN jsonb_typeof(p.raw) IS DISTINCT FROM 'object' OR p.raw ? 'user_session_id' THEN p.raw
  -- Built as text and parsed once: jsonb_build_object looks up its arguments' types on every
  -- call. An RFC 3339 text needs no JSON escaping.
  ELSE (p.raw - array['-', '~joined_at', '#joined_at', '~left_at', '#left_at']) || ('{' || array_to_string(array[
    CASE WHEN NOT (p.raw ? 'user_id' OR coalesce(p.raw -> '-' ? 'user_id', false)) THEN '"user_id":' || to_jsonb(p.user_id)::text END,
    CASE WHEN NOT coalesce(p.raw -> '-' ? 'user_session_id', false) THEN '"user_session_id":' || to_jsonb(p.user_session_id)::text END,
    CASE WHEN NOT (p.raw ? 'publisher_type' OR coalesce(p.raw -> '-' ? 'publisher_type', false))
      THEN '"publisher_type":' || to_jsonb(p.publisher_type)::text END,
    CASE WHEN NOT (p.raw ? 'duration_in_seconds' OR coalesce(p.raw -> '-' ? 'duration_in_seconds', false))
      THEN '"duration_in_seconds":' || p.duration_in_seconds::text END,
    CASE WHEN NOT (p.raw ? 'roles' OR coalesce(p.raw -> '-' ? 'roles', false)) THEN '"roles":' || to_jsonb(p.roles)::text END,
    CASE WHEN p.raw ? '~joined_at'
      THEN '"joined_at":"' || participant_session_rfc3339(p.joined_at, (p.raw ->> '~joined_at')::integer / 1000, (p.raw ->> '~joined_at')::integer % 1000) || '"'
      WHEN p.raw ? '#joined_at' THEN '"joined_at":' || participant_session_nanos(p.joined_at, (p.raw ->> '#joined_at')::integer)::text END,
    CASE WHEN p.raw ? '~left_at'
      THEN '"left_at":"' || participant_session_rfc3339(p.left_at, (p.raw ->> '~left_at')::integer / 1000, (p.raw ->> '~left_at')::integer % 1000) || '"'
      WHEN p.raw ? '#left_at' THEN '"left_at":' || participant_session_nanos(p.left_at, (p.raw ->> '#left_at')::integer)::text END], ',') || '}')::jsonb
  END;
END
$$;
