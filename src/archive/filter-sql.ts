import type { SQL } from 'drizzle-orm';
import { and, eq, inArray } from '../db/drizzle.ts';
import { participantSessions } from '../db/schema.ts';
import type { ParticipantFilter, ParticipantFilterField } from '../stream/filters.ts';

/**
 * Which of Stream's filter fields (docs/stream-api.md §1) the archive can evaluate exactly as Stream
 * would, from what it holds. The others are refused (400) rather than answered wrongly.
 *
 * - user_id, publisher_type: columns, taken from the entry Stream returned.
 * - session_id: the entry's user_session_id. Stream does not document it (§9.7); it is read so
 *   because the same six filter fields serve QueryCallSessionParticipantStats (§7), whose
 *   sessions are keyed by user_session_id, and the call session is already fixed by the path.
 * - published_tracks, is_live, is_tech_user: Stream filters on them but never returns them in a
 *   ParticipantSessionDetails entry (§2), so no archived entry holds them. Before this rule the
 *   archive read them as "none"/false on real data: `is_live $eq true` answered 0 entries where
 *   Stream (and the simulator) had 1, `published_tracks $in ["video"]` 0 where it had 87.
 */
export const ARCHIVE_FILTER_FIELDS = {
  user_id: { evaluated: true },
  session_id: { evaluated: true },
  publisher_type: { evaluated: true },
  published_tracks: { evaluated: false, why: 'Stream filters on it but does not return it in participant entries, so the archive does not hold it' },
  is_live: { evaluated: false, why: 'Stream filters on it but does not return it in participant entries, so the archive does not hold it' },
  is_tech_user: { evaluated: false, why: 'Stream filters on it but does not return it in participant entries, so the archive does not hold it' },
} as const satisfies Record<ParticipantFilterField, { evaluated: boolean; why?: string }>;

/** The first condition the archive cannot evaluate, with why; undefined when it can evaluate them all. */
export function unevaluableFilter(filters: readonly ParticipantFilter[]): { field: ParticipantFilterField; why: string } | undefined {
  for (const filter of filters) {
    const rule = ARCHIVE_FILTER_FIELDS[filter.field];
    if (!rule.evaluated) return { field: filter.field, why: rule.why };
  }
  return undefined;
}

/**
 * filter_conditions (already parsed by parseParticipantFilter, and checked with unevaluableFilter)
 * as a WHERE condition on participant_sessions; undefined when there is nothing to filter.
 * Throws on a field the archive cannot evaluate, so a caller that skipped the check fails loudly.
 */
export function participantFilterCondition(filters: readonly ParticipantFilter[]): SQL | undefined {
  if (filters.length === 0) return undefined;
  return and(...filters.map(conditionFor));
}

function conditionFor(filter: ParticipantFilter): SQL | undefined {
  switch (filter.field) {
    case 'user_id':
    case 'session_id':
    case 'publisher_type': {
      const column = COLUMNS[filter.field];
      const strings = filter.values.map(String);
      return strings.length === 1 ? eq(column, strings[0]!) : inArray(column, strings);
    }
    default:
      throw new Error(`filter field ${filter.field} cannot be evaluated by the archive`);
  }
}

const COLUMNS = {
  user_id: participantSessions.userId,
  session_id: participantSessions.userSessionId,
  publisher_type: participantSessions.publisherType,
} as const satisfies Partial<Record<ParticipantFilterField, unknown>>;
