import { and, eq, sql } from '../db/drizzle.ts';
import type { Db } from '../db/client.ts';
import { participantSessions } from '../db/schema.ts';
import type { ParticipantFilter } from '../stream/filters.ts';
import { timestampNanosText } from '../stream/schemas.ts';
import { participantFilterCondition } from './filter-sql.ts';

/** Totals of the entries a filter keeps, the thing Stream's API makes you page through everything for. */
export interface ParticipantSessionsSummary {
  readonly participant_sessions: number;
  readonly participants: number;
  readonly summed_seconds: number;
  /** Per user, the union of the kept entries' intervals (overlapping or touching merged), summed over users. */
  readonly attended_seconds: number;
  readonly peak_concurrent_participants: number;
  /** Integer nanoseconds as decimal text (beyond 2^53: write it into JSON as is, never through a number). */
  readonly first_joined_at: string | null;
  readonly last_left_at: string | null;
}

/**
 * The same reading as the attendance views (migrations/0002_attendance_views.sql, docs/sql.md): an
 * entry is [joined_at, left_at), a missing end derived from duration_in_seconds, an interval that
 * cannot be formed adds no attended time. Unlike the views it merges only the filtered entries, so
 * it runs on the filtered rows of one session rather than on a view. Window functions are beyond
 * the query builder, hence raw SQL.
 */
export async function summarizeParticipantSessions(
  db: Db,
  options: { callSessionId: string; filters: readonly ParticipantFilter[] },
): Promise<ParticipantSessionsSummary> {
  const p = participantSessions;
  const where = and(eq(p.callSessionId, options.callSessionId), participantFilterCondition(options.filters));
  const result = await db.execute<{
    participant_sessions: number;
    participants: number;
    summed_seconds: number;
    attended_seconds: number;
    peak_concurrent_participants: number;
    first_joined_at: string | null;
    last_left_at: string | null;
    first_raw: string[] | null;
    last_raw: string[] | null;
  }>(sql`
    with bounds as (
      select ${p.userId} as user_id, ${p.durationInSeconds} as duration_in_seconds,
        ${p.joinedAt} as joined_at, ${p.leftAt} as left_at, ${p.raw} as raw,
        coalesce(${p.joinedAt}, ${p.leftAt} - make_interval(secs => ${p.durationInSeconds})) as start_at,
        coalesce(${p.leftAt}, ${p.joinedAt} + make_interval(secs => ${p.durationInSeconds})) as end_at
      from ${p} where ${where}
    ), ordered as (
      select *,
        max(case when valid then end_at end) over (
          partition by user_id order by start_at, end_at rows between unbounded preceding and 1 preceding
        ) as prev_end_at
      from (select *, (start_at is not null and end_at is not null and end_at >= start_at) as valid from bounds) entry
    ), stretches as (
      select user_id, min(start_at) as started_at, max(end_at) as ended_at
      from (
        select user_id, start_at, end_at,
          sum(case when prev_end_at is null or start_at > prev_end_at then 1 else 0 end) over (
            partition by user_id order by start_at, end_at rows unbounded preceding
          ) as stretch
        from ordered where valid
      ) marked
      group by user_id, stretch
    ), sweep as (
      select sum(ev.delta) over (order by ev.at, ev.delta rows unbounded preceding) as present
      from stretches s cross join lateral (values (s.started_at, 1), (s.ended_at, -1)) as ev(at, delta)
      where s.ended_at > s.started_at
    )
    select
      count(*)::integer as participant_sessions,
      count(distinct user_id)::integer as participants,
      coalesce(sum(duration_in_seconds), 0)::bigint as summed_seconds,
      coalesce(sum(case when valid then greatest(extract(epoch from end_at - greatest(start_at, prev_end_at)), 0) end), 0)::float8
        as attended_seconds,
      coalesce((select max(present) from sweep), 0)::integer as peak_concurrent_participants,
      to_char(min(start_at) at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as first_joined_at,
      to_char(max(end_at) at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as last_left_at,
      array(select (b.raw -> 'joined_at')::text from bounds b where b.joined_at = (select min(start_at) from bounds)) as first_raw,
      array(select (b.raw -> 'left_at')::text from bounds b where b.left_at = (select max(end_at) from bounds)) as last_raw
    from ordered
  `);
  const row = result.rows[0];
  return {
    participant_sessions: row?.participant_sessions ?? 0,
    participants: row?.participants ?? 0,
    summed_seconds: Number(row?.summed_seconds ?? 0),
    attended_seconds: row?.attended_seconds ?? 0,
    peak_concurrent_participants: row?.peak_concurrent_participants ?? 0,
    first_joined_at: exactInstant(row?.first_joined_at ?? null, row?.first_raw ?? [], 'first'),
    last_left_at: exactInstant(row?.last_left_at ?? null, row?.last_raw ?? [], 'last'),
  };
}

/**
 * The window's end as Stream sent it, to the nanosecond: the column (microseconds) found the
 * instant, and the raw values of the entries at that microsecond give its last digits; a window
 * end derived from duration_in_seconds has only the column's precision.
 */
function exactInstant(column: string | null, raws: readonly string[], pick: 'first' | 'last'): string | null {
  if (column === null) return null;
  let best: bigint | undefined;
  for (const raw of raws) {
    if (raw === null || raw === 'null') continue;
    const nanos = timestampNanosText(raw.charCodeAt(0) === 34 ? (JSON.parse(raw) as string) : raw);
    if (nanos === undefined) continue;
    const value = BigInt(nanos);
    if (best === undefined || (pick === 'first' ? value < best : value > best)) best = value;
  }
  return best === undefined ? (timestampNanosText(column) ?? null) : best.toString();
}
