import { and, eq, inArray, sql, type SQL } from 'drizzle-orm';
import { participantSessions } from '../db/schema.ts';
import type { ParticipantFilter, ParticipantFilterField } from '../stream/filters.ts';

/**
 * filter_conditions (already parsed by parseParticipantFilter) as a WHERE condition on
 * participant_sessions; undefined when there is nothing to filter.
 *
 * user_id, session_id (read as user_session_id) and publisher_type are columns. Stream filters on
 * published_tracks, is_live and is_tech_user but does not return them in the entry
 * (stream-api.md §1, §9.7), so the archive can only know them when the stored raw entry has them:
 * - published_tracks: raw.published_tracks as an array of kinds (["audio", "video"]) or as an
 *   object of flags ({"audio": true}); an entry without it has published nothing;
 * - is_live, is_tech_user: raw's JSON `true`; anything else, or nothing, is false.
 * These are the defaults the simulator's in-memory matcher (matchesParticipantFilter) uses too.
 */
export function participantFilterCondition(filters: readonly ParticipantFilter[]): SQL | undefined {
  if (filters.length === 0) return undefined;
  return and(...filters.map(conditionFor));
}

function conditionFor(filter: ParticipantFilter): SQL | undefined {
  const values = filter.values;
  switch (filter.field) {
    case 'user_id':
    case 'session_id':
    case 'publisher_type': {
      const column = COLUMNS[filter.field];
      const strings = values.map(String);
      return strings.length === 1 ? eq(column, strings[0]!) : inArray(column, strings);
    }
    case 'published_tracks': {
      const kinds = sql`array[${sql.join(values.map((v) => sql`${String(v)}`), sql`, `)}]::text[]`;
      const tracks = sql`(${participantSessions.raw} -> 'published_tracks')`;
      return sql`(case jsonb_typeof(${tracks})
        when 'array' then ${tracks} ?| ${kinds}
        when 'object' then exists (select 1 from jsonb_each(${tracks}) as t(kind, flag) where t.kind = any (${kinds}) and t.flag = 'true'::jsonb)
        else false end)`;
    }
    case 'is_live':
    case 'is_tech_user': {
      const flag = sql`coalesce((${participantSessions.raw} -> ${filter.field}) = 'true'::jsonb, false)`;
      return sql`${flag} = ${values[0] === true}`;
    }
  }
}

const COLUMNS = {
  user_id: participantSessions.userId,
  session_id: participantSessions.userSessionId,
  publisher_type: participantSessions.publisherType,
} as const satisfies Partial<Record<ParticipantFilterField, unknown>>;
