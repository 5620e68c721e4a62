import type pg from 'pg';
import { storableJson } from '../db/storable-json.ts';
import { LeaseLostError, type Lease } from '../queue/fence.ts';
import type { ParticipantEntry } from '../stream/schemas.ts';

export interface PageToWrite {
  readonly callType: string;
  readonly callId: string;
  readonly entries: readonly ParticipantEntry[];
  /** Where the next run resumes if this one stops after this page. */
  readonly resumeCursor: string | null;
  /**
   * Stream's answer without its entries (ParticipantSessionsPage.envelope), stored in
   * stream_responses by the same statement; absent on pages that do not carry it.
   */
  readonly envelope?: Readonly<Record<string, unknown>>;
}

/*
 * One page, one transaction: the rows and the cursor commit together, behind the lease fence, so
 * after a crash the stored cursor never points past rows we do not hold, and a worker that lost its
 * lease writes nothing.
 *
 * The whole page is ONE statement, so one round trip and one implicit transaction: the fence
 * (the session row locked FOR NO KEY UPDATE, still 'running' under this owner, the same check as
 * queue/fence.ts; the rows' foreign key checks take KEY SHARE on it, which that lock allows), the
 * upsert and the checkpoint. Both writes depend on the fence through an InitPlan evaluated before
 * their first row, so with the lease gone neither writes anything. Measured on 2 cores: the
 * five-statement transaction (begin, fence, upsert, checkpoint, commit) spent ~6.5 ms per page of
 * 100 of which the upsert was ~2.3 ms; see bench/RESULTS.md for the end-to-end effect.
 *
 * The upsert: the page travels as a single jsonb array and jsonb_to_recordset turns it into rows
 * (a fixed parameter count, so one prepared plan; unnest() cannot carry roles, a text[] per row).
 * On conflict every column takes excluded.*, but only when something differs, so re-archiving an
 * unchanged session rewrites no tuples.
 *
 * The envelope (`session`, the totals and any top-level field Stream adds) goes to
 * stream_responses in a fourth CTE behind the same fence. The worker passes it on the last page
 * of a run only: the archive route reads it once the session is complete, which needs a run that
 * reached the last page, and a resumed run re-reads that page. Pages without it ($7 null) plan
 * the same statement and insert nothing; an unchanged envelope rewrites no tuple either.
 */
const WRITE_PAGE_SQL = `
  with fence as (
    select call_session_id from call_sessions
     where call_session_id = $1 and lease_owner = $5 and status = 'running'
       for no key update
  ), upserted as (
    insert into participant_sessions as p
      (call_session_id, user_session_id, call_type, call_id, user_id, joined_at, left_at,
       duration_in_seconds, publisher_type, roles, raw, archived_at)
    select $1, r.user_session_id, $2, $3, r.user_id, r.joined_at, r.left_at,
           r.duration_in_seconds, r.publisher_type, r.roles, r.raw, now()
      from jsonb_to_recordset($4::jsonb) as r(
        user_session_id text, user_id text, joined_at timestamptz, left_at timestamptz,
        duration_in_seconds integer, publisher_type text, roles text[], raw jsonb)
     where exists (select 1 from fence)
    on conflict (call_session_id, user_session_id) do update set
      call_type = excluded.call_type,
      call_id = excluded.call_id,
      user_id = excluded.user_id,
      joined_at = excluded.joined_at,
      left_at = excluded.left_at,
      duration_in_seconds = excluded.duration_in_seconds,
      publisher_type = excluded.publisher_type,
      roles = excluded.roles,
      raw = excluded.raw,
      archived_at = excluded.archived_at
    where (p.call_type, p.call_id, p.user_id, p.joined_at, p.left_at, p.duration_in_seconds, p.publisher_type, p.roles, p.raw)
          is distinct from
          (excluded.call_type, excluded.call_id, excluded.user_id, excluded.joined_at, excluded.left_at,
           excluded.duration_in_seconds, excluded.publisher_type, excluded.roles, excluded.raw)
    returning 1
  ), response as (
    insert into stream_responses as s (call_session_id, response, updated_at)
    select $1, $7::jsonb, now()
     where $7::jsonb is not null and exists (select 1 from fence)
    on conflict (call_session_id) do update set
      response = excluded.response,
      updated_at = excluded.updated_at
    where s.response is distinct from excluded.response
    returning 1
  ), checkpoint as (
    update call_sessions set cursor = $6, updated_at = now()
     where call_session_id = (select call_session_id from fence)
    returning 1
  )
  select (select count(*) from fence)::int as fenced, (select count(*) from checkpoint)::int as checkpointed`;

/** Writes one page and its checkpoint; throws LeaseLostError (nothing written) if the lease is gone. */
export async function writePage(pool: pg.Pool, lease: Lease, page: PageToWrite): Promise<{ readonly rows: number }> {
  const entries = uniqueByUserSession(page.entries);
  const rows = entries.map((entry) => ({
    user_session_id: entry.userSessionId,
    user_id: entry.userId,
    // RFC 3339 text to the microsecond: the columns keep what a Date (milliseconds) would cut.
    joined_at: entry.joinedAtMicros,
    left_at: entry.leftAtMicros,
    duration_in_seconds: entry.durationInSeconds,
    publisher_type: entry.publisherType,
    roles: entry.roles,
    raw: entry.raw,
  }));
  const result = await pool.query<{ fenced: number; checkpointed: number }>({
    // Named, so each connection parses and plans it once.
    name: 'write-page',
    text: WRITE_PAGE_SQL,
    // A NUL or a lone surrogate in one entry would fail every write of the page and, retry after
    // retry, the session: storableJson drops or replaces just those characters.
    values: [
      lease.callSessionId,
      page.callType,
      page.callId,
      withIntegerTimestamps(storableJson(JSON.stringify(rows), rows), integerTimestampPattern(entries)),
      lease.owner,
      page.resumeCursor,
      page.envelope === undefined ? null : withIntegerTimestamps(storableJson(JSON.stringify(page.envelope), page.envelope), QUOTED_INTEGER_TIMESTAMP),
    ],
  });
  if (result.rows[0]?.fenced !== 1) throw new LeaseLostError(lease.callSessionId);
  return { rows: rows.length };
}

/*
 * raw and the envelope keep an integer-nanosecond timestamp as the JSON integer Stream sent, digit
 * for digit (jsonb numbers are exact decimals). parseStreamJson handed over the value of every
 * `*_at` key sent as an integer as a digit string, since a JS number would round it; here it
 * becomes a number again in the text sent to Postgres. Only such keys can match: the row's own
 * joined_at/left_at are RFC 3339 text, never digits alone, and a quote inside a JSON string is
 * always escaped. Which pass a page needs is read off its entries' raw (~5–8 µs a 100-entry page,
 * where scanning the page's JSON text for quoted digits took ~30–45 µs): none when every
 * timestamp is RFC 3339 and no entry has a field beyond Stream's seven; the joined_at/left_at
 * pattern when only those are digits (the any-`*_at` pattern costs ~30 µs more a page, its key
 * class backtracking on every key); the any-`*_at` one once Stream adds entry fields. The
 * envelope is small and always takes the any-`*_at` pass.
 */
const QUOTED_INTEGER_TIMESTAMP = /([{,]"[a-z0-9_]*_at":)"(-?\d+)"/g;
const QUOTED_INTEGER_ENTRY_TIMESTAMP = /([{,]"(?:joined_at|left_at)":)"(-?\d+)"/g;

function withIntegerTimestamps(json: string, pattern: RegExp | undefined): string {
  return pattern === undefined ? json : json.replace(pattern, '$1$2');
}

function integerTimestampPattern(entries: readonly ParticipantEntry[]): RegExp | undefined {
  let pattern: RegExp | undefined;
  for (const { raw } of entries) {
    for (const key in raw) if (!ENTRY_FIELDS.has(key)) return QUOTED_INTEGER_TIMESTAMP;
    if (pattern === undefined && (isDigits(raw.joined_at) || isDigits(raw.left_at))) pattern = QUOTED_INTEGER_ENTRY_TIMESTAMP;
  }
  return pattern;
}

const ENTRY_FIELDS: ReadonlySet<string> = new Set(['user_id', 'user_session_id', 'publisher_type', 'roles', 'joined_at', 'left_at', 'duration_in_seconds']);
const DIGITS = /^-?\d+$/;

function isDigits(value: unknown): boolean {
  return typeof value === 'string' && DIGITS.test(value);
}

// Postgres refuses an upsert that touches one row twice; should a page ever repeat an entry,
// the later copy wins, as it would have across two statements.
function uniqueByUserSession(entries: readonly ParticipantEntry[]): ParticipantEntry[] {
  const byId = new Map<string, ParticipantEntry>();
  for (const entry of entries) byId.set(entry.userSessionId, entry);
  return byId.size === entries.length ? [...entries] : [...byId.values()];
}
