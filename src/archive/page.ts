import { and, asc, desc, eq, gt, gte, lt, lte, sql, type SQL } from 'drizzle-orm';
import type { Db } from '../db/client.ts';
import { participantSessions } from '../db/schema.ts';
import type { ParticipantFilter } from '../stream/filters.ts';
import type { ArchiveCursor } from './cursor.ts';
import { participantFilterCondition } from './filter-sql.ts';

/** One entry of participants_sessions as the archive answers it: Stream's fields, then any others the raw entry had. */
export type ParticipantSessionJson = Record<string, unknown> & {
  user_id: string;
  user_session_id: string;
  publisher_type: string;
  roles: string[];
};

export interface ParticipantPage {
  /** In user_session_id order, whichever way the page was read. */
  readonly entries: ParticipantSessionJson[];
  /** Whether matching rows exist before the first / after the last entry of this page. */
  readonly hasBefore: boolean;
  readonly hasAfter: boolean;
}

export interface ReadParticipantPageOptions {
  readonly callSessionId: string;
  readonly filters: readonly ParticipantFilter[];
  readonly limit: number;
  readonly cursor?: ArchiveCursor;
}

/**
 * One page of a session's entries by keyset on user_session_id (the primary key's second column, so
 * each page is one index range scan whatever its depth). One extra row tells whether the page's far
 * side continues; an EXISTS probe answers for the side the cursor came from.
 */
export async function readParticipantPage(db: Db, options: ReadParticipantPageOptions): Promise<ParticipantPage> {
  if (options.limit === 0) return { entries: [], hasBefore: false, hasAfter: false };
  const p = participantSessions;
  const base = and(eq(p.callSessionId, options.callSessionId), participantFilterCondition(options.filters));
  const backwards = options.cursor?.direction === 'prev';
  const key = options.cursor?.key;
  const range = key === undefined ? undefined : backwards ? lt(p.userSessionId, key) : gt(p.userSessionId, key);

  const rows = await db
    .select({
      userId: p.userId,
      userSessionId: p.userSessionId,
      publisherType: p.publisherType,
      roles: p.roles,
      joinedAt: rfc3339(p.joinedAt),
      leftAt: rfc3339(p.leftAt),
      durationInSeconds: p.durationInSeconds,
      raw: p.raw,
    })
    .from(p)
    .where(and(base, range))
    .orderBy(backwards ? desc(p.userSessionId) : asc(p.userSessionId))
    .limit(options.limit + 1);

  const more = rows.length > options.limit;
  const kept = rows.slice(0, options.limit);
  if (backwards) kept.reverse();

  let behind = false;
  if (key !== undefined) {
    // The cursor's own row belongs to the side it came from.
    const side = backwards ? gte(p.userSessionId, key) : lte(p.userSessionId, key);
    const probe = await db.select({ one: sql<number>`1` }).from(p).where(and(base, side)).limit(1);
    behind = probe.length > 0;
  }
  return {
    entries: kept.map(toEntryJson),
    hasBefore: backwards ? more : behind,
    hasAfter: backwards ? behind : more,
  };
}

/** Postgres keeps microseconds; Stream writes RFC 3339 with trailing fractional zeros trimmed (Go's RFC3339Nano). */
function rfc3339(column: typeof participantSessions.joinedAt): SQL<string | null> {
  return sql<string | null>`to_char(${column} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;
}

const OPTIONAL_FIELDS = ['joined_at', 'left_at', 'duration_in_seconds'] as const;

interface EntryRow {
  userId: string;
  userSessionId: string;
  publisherType: string;
  roles: string[];
  joinedAt: string | null;
  leftAt: string | null;
  durationInSeconds: number | null;
  raw: unknown;
}

/**
 * The stored columns in Stream's shape. An optional field the raw entry had as null stays null and
 * one it did not have stays absent, so clients see the entry as Stream sent it; fields Stream may
 * add later come along from raw.
 */
export function toEntryJson(row: EntryRow): ParticipantSessionJson {
  const raw = row.raw !== null && typeof row.raw === 'object' && !Array.isArray(row.raw) ? (row.raw as Record<string, unknown>) : {};
  const entry: ParticipantSessionJson = {
    user_id: row.userId,
    user_session_id: row.userSessionId,
    publisher_type: row.publisherType,
    roles: row.roles,
  };
  const values = {
    joined_at: row.joinedAt === null ? null : trimFraction(row.joinedAt),
    left_at: row.leftAt === null ? null : trimFraction(row.leftAt),
    duration_in_seconds: row.durationInSeconds,
  };
  for (const field of OPTIONAL_FIELDS) {
    if (values[field] !== null || Object.hasOwn(raw, field)) entry[field] = values[field];
  }
  for (const [field, value] of Object.entries(raw)) {
    if (!Object.hasOwn(entry, field)) entry[field] = value;
  }
  return entry;
}

function trimFraction(timestamp: string): string {
  return timestamp.replace(/\.?0+Z$/, 'Z');
}
