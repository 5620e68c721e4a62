import type { SQL } from 'drizzle-orm';
import { and, asc, desc, eq, gt, gte, lt, lte, sql } from '../db/drizzle.ts';
import type { Db } from '../db/client.ts';
import { participantSessions } from '../db/schema.ts';
import type { ParticipantFilter } from '../stream/filters.ts';
import { timestampNanosText } from '../stream/schemas.ts';
import type { ArchiveCursor } from './cursor.ts';
import { participantFilterCondition } from './filter-sql.ts';

/** One entry of participants_sessions as the archive answers it. */
export interface ParticipantEntryJson {
  readonly userSessionId: string;
  /** The entry as JSON text: timestamps as integer nanoseconds written digit for digit. */
  readonly json: string;
}

export interface ParticipantPage {
  /** In user_session_id order, whichever way the page was read. */
  readonly entries: ParticipantEntryJson[];
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

/** The fields the entry is written from columns; everything else the entry has comes along as stored. */
const KNOWN_FIELDS = ['user_id', 'user_session_id', 'publisher_type', 'roles', 'joined_at', 'left_at', 'duration_in_seconds'] as const;

/**
 * One page of a session's entries by keyset on user_session_id (the primary key's second column, so
 * each page is one index range scan whatever its depth). One extra row tells whether the page's far
 * side continues; an EXISTS probe answers for the side the cursor came from.
 *
 * Stream's entry comes from participant_session_entry(p) (migrations/0005_lean_raw.sql), which
 * rebuilds it from the columns and the lean raw; the inner query computes it once per row, and only
 * for the rows of the page (its LIMIT keeps Postgres from flattening it into the outer one).
 * Nothing of the entry passes through a JS number: node-postgres reads jsonb with JSON.parse,
 * which would round a 19-digit nanosecond integer, so the timestamps and the other fields come as
 * jsonb text (exact decimals) and the entry's JSON is assembled from text.
 */
export async function readParticipantPage(db: Db, options: ReadParticipantPageOptions): Promise<ParticipantPage> {
  if (options.limit === 0) return { entries: [], hasBefore: false, hasAfter: false };
  const p = participantSessions;
  const base = and(eq(p.callSessionId, options.callSessionId), participantFilterCondition(options.filters));
  const backwards = options.cursor?.direction === 'prev';
  const key = options.cursor?.key;
  const range = key === undefined ? undefined : backwards ? lt(p.userSessionId, key) : gt(p.userSessionId, key);

  const page = db
    .select({
      userId: p.userId,
      userSessionId: p.userSessionId,
      publisherType: p.publisherType,
      roles: p.roles,
      joinedAt: rfc3339Micros(p.joinedAt).as('joined_at_text'),
      leftAt: rfc3339Micros(p.leftAt).as('left_at_text'),
      durationInSeconds: p.durationInSeconds,
      entry: sql<unknown>`participant_session_entry(${p})`.as('entry'),
    })
    .from(p)
    .where(and(base, range))
    .orderBy(backwards ? desc(p.userSessionId) : asc(p.userSessionId))
    .limit(options.limit + 1)
    .as('page');
  const rows = await db
    .select({
      userId: page.userId,
      userSessionId: page.userSessionId,
      publisherType: page.publisherType,
      roles: page.roles,
      joinedAt: page.joinedAt,
      leftAt: page.leftAt,
      sentJoinedAt: sql<string | null>`(${page.entry} -> 'joined_at')::text`,
      sentLeftAt: sql<string | null>`(${page.entry} -> 'left_at')::text`,
      hasDuration: sql<boolean>`coalesce(${page.entry} ? 'duration_in_seconds', false)`,
      durationInSeconds: page.durationInSeconds,
      others: sql<
        string | null
      >`case when jsonb_typeof(${page.entry}) = 'object' then (${page.entry} - ${sql.raw(`array[${KNOWN_FIELDS.map((f) => `'${f}'`).join(', ')}]`)}::text[])::text end`,
    })
    .from(page)
    .orderBy(backwards ? desc(page.userSessionId) : asc(page.userSessionId));

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
    entries: kept.map((row) => ({ userSessionId: row.userSessionId, json: toEntryJson(row) })),
    hasBefore: backwards ? more : behind,
    hasAfter: backwards ? behind : more,
  };
}

/** Postgres keeps microseconds; this text is what timestampNanosText reads when the entry has no value. */
export function rfc3339Micros(column: SQL | typeof participantSessions.joinedAt): SQL<string | null> {
  return sql<string | null>`to_char(${column} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;
}

export interface EntryRow {
  userId: string;
  userSessionId: string;
  publisherType: string;
  roles: string[];
  /** The column, RFC 3339 to the microsecond. */
  joinedAt: string | null;
  leftAt: string | null;
  /** The entry's value as jsonb text: null when the entry lacks the key, 'null', a quoted string or digits. */
  sentJoinedAt: string | null;
  sentLeftAt: string | null;
  hasDuration: boolean;
  durationInSeconds: number | null;
  /** The entry without the known fields, as jsonb text; null when the entry is not an object. */
  others: string | null;
}

/**
 * The stored entry in Stream's shape, as JSON text. Timestamps are integer nanoseconds, the
 * instant Stream sent digit for digit (from the entry, whichever form it came in; from the
 * microsecond column only when the entry lacks it). An optional field the entry had as null stays
 * null and one it did not have stays absent; fields Stream may add later come along from it.
 */
export function toEntryJson(row: EntryRow): string {
  let json = `{"user_id":${JSON.stringify(row.userId)},"user_session_id":${JSON.stringify(row.userSessionId)},"publisher_type":${JSON.stringify(row.publisherType)},"roles":${JSON.stringify(row.roles)}`;
  json += timestampField('joined_at', row.sentJoinedAt, row.joinedAt);
  json += timestampField('left_at', row.sentLeftAt, row.leftAt);
  if (row.durationInSeconds !== null) json += `,"duration_in_seconds":${row.durationInSeconds}`;
  else if (row.hasDuration) json += ',"duration_in_seconds":null';
  if (row.others !== null && row.others !== '{}') json += `,${row.others.slice(1, -1)}`;
  return `${json}}`;
}

function timestampField(name: string, sent: string | null, column: string | null): string {
  const nanos = entryNanos(sent, column);
  if (nanos === undefined) return '';
  return `,"${name}":${nanos}`;
}

/** Digits of the instant, 'null' for JSON null, undefined to leave the field out. */
function entryNanos(sent: string | null, column: string | null): string | undefined {
  if (sent === 'null') return 'null';
  if (sent !== null) {
    const text = sent.charCodeAt(0) === 34 ? (JSON.parse(sent) as string) : sent;
    const nanos = timestampNanosText(text);
    if (nanos !== undefined) return nanos;
  }
  if (column !== null) return timestampNanosText(column);
  return sent === null ? undefined : 'null';
}
