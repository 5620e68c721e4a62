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
 * the query builder, hence raw SQL. Stream's exact timestamps (participant_session_entry) are
 * rebuilt only for the entries at the window's two ends, found again by primary key.
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
    first_sent: string[] | null;
    last_sent: string[] | null;
  }>(sql`
    with bounds as (
      select ${p.userId} as user_id, ${p.userSessionId} as user_session_id, ${p.durationInSeconds} as duration_in_seconds,
        ${p.joinedAt} as joined_at, ${p.leftAt} as left_at,
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
      array(select (participant_session_entry(e) -> 'joined_at')::text from participant_sessions e
             where e.call_session_id = ${options.callSessionId}
               and e.user_session_id in (select b.user_session_id from bounds b where b.joined_at = (select min(start_at) from bounds))) as first_sent,
      array(select (participant_session_entry(e) -> 'left_at')::text from participant_sessions e
             where e.call_session_id = ${options.callSessionId}
               and e.user_session_id in (select b.user_session_id from bounds b where b.left_at = (select max(end_at) from bounds))) as last_sent
    from ordered
  `);
  const row = result.rows[0];
  return {
    participant_sessions: row?.participant_sessions ?? 0,
    participants: row?.participants ?? 0,
    summed_seconds: Number(row?.summed_seconds ?? 0),
    attended_seconds: row?.attended_seconds ?? 0,
    peak_concurrent_participants: row?.peak_concurrent_participants ?? 0,
    first_joined_at: exactInstant(row?.first_joined_at ?? null, row?.first_sent ?? [], 'first'),
    last_left_at: exactInstant(row?.last_left_at ?? null, row?.last_sent ?? [], 'last'),
  };
}

/**
 * The window's end as Stream sent it, to the nanosecond: the column (microseconds) found the
 * instant, and the entries' values at that microsecond give its last digits; a window
 * end derived from duration_in_seconds has only the column's precision.
 */
function exactInstant(column: string | null, sent: readonly string[], pick: 'first' | 'last'): string | null {
  if (column === null) return null;
  let best: bigint | undefined;
  for (const text of sent) {
    if (text === null || text === 'null') continue;
    const nanos = timestampNanosText(text.charCodeAt(0) === 34 ? (JSON.parse(text) as string) : text);
    if (nanos === undefined) continue;
    const value = BigInt(nanos);
    if (best === undefined || (pick === 'first' ? value < best : value > best)) best = value;
  }
  return best === undefined ? (timestampNanosText(column) ?? null) : best.toString();
}
