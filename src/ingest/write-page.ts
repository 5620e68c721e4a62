import type pg from 'pg';
import { storableJson } from '../db/storable-json.ts';
import { checkpointPage, type PageCheckpoint } from '../queue/checkpoint-page.ts';
import type { Lease } from '../queue/fence.ts';
import type { ParticipantEntry } from '../stream/schemas.ts';
import { LEAN_RAW_MARKERS, leanRaw } from './lean-raw.ts';

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
 * One page, one transaction: the rows and the cursor commit together, behind the lease fence, in
 * the queue's one statement (queue/checkpoint-page.ts). Here the page becomes that statement's
 * JSON: the rows' columns, raw in its lean form (lean-raw.ts), and the `*_at` integers kept digit
 * for digit.
 */

/** One page as the page statement takes it, and how many rows it holds. */
export interface PreparedPage {
  readonly checkpoint: PageCheckpoint;
  readonly rows: number;
}

/** Writes one page and its checkpoint; throws LeaseLostError (nothing written) if the lease is gone. */
export async function writePage(pool: pg.Pool, lease: Lease, page: PageToWrite): Promise<{ readonly rows: number }> {
  return writePreparedPage(pool, lease, preparePage(page));
}

/** writePage's second half: the statement, for a page preparePage made (maybe while the page before was being written). */
export async function writePreparedPage(pool: pg.Pool, lease: Lease, prepared: PreparedPage): Promise<{ readonly rows: number }> {
  await checkpointPage(pool, lease, prepared.checkpoint);
  return { rows: prepared.rows };
}

/** writePage's first half, without I/O: the rows and the envelope as the statement's JSON. */
export function preparePage(page: PageToWrite): PreparedPage {
  const entries = uniqueByUserSession(page.entries);
  const raws = entries.map(leanRaw);
  const rows = entries.map((entry, i) => ({
    user_session_id: entry.userSessionId,
    user_id: entry.userId,
    // RFC 3339 text to the microsecond: the columns keep what a Date (milliseconds) would cut.
    joined_at: entry.joinedAtMicros,
    left_at: entry.leftAtMicros,
    duration_in_seconds: entry.durationInSeconds,
    publisher_type: entry.publisherType,
    roles: entry.roles,
    raw: raws[i],
  }));
  return {
    checkpoint: {
      callType: page.callType,
      callId: page.callId,
      // A NUL or a lone surrogate in one entry would fail every write of the page and, retry after
      // retry, the session: storableJson drops or replaces just those characters.
      rowsJson: withIntegerTimestamps(storableJson(JSON.stringify(rows), rows), integerTimestampPattern(entries, raws)),
      resumeCursor: page.resumeCursor,
      envelopeJson:
        page.envelope === undefined ? null : withIntegerTimestamps(storableJson(JSON.stringify(page.envelope), page.envelope), QUOTED_INTEGER_TIMESTAMP),
    },
    rows: rows.length,
  };
}

/*
 * raw and the envelope keep an integer-nanosecond timestamp as the JSON integer Stream sent, digit
 * for digit (jsonb numbers are exact decimals). parseStreamJson handed over the value of every
 * `*_at` key sent as an integer as a digit string, since a JS number would round it; here it
 * becomes a number again in the text sent to Postgres. Only such keys can match: the row's own
 * joined_at/left_at are RFC 3339 text, never digits alone, and a quote inside a JSON string is
 * always escaped. Which pass a page needs is read off the raw each row stores, lean (~5–8 µs a
 * 100-entry page, where scanning the page's JSON text for quoted digits took ~30–45 µs): none
 * when no joined_at/left_at is left as digits (one under its `#` marker is a JS number already)
 * and no entry has a field beyond Stream's seven and the lean form's markers; the
 * joined_at/left_at pattern when only those are digits (the any-`*_at` pattern costs ~30 µs more
 * a page, its key class backtracking on every key); the any-`*_at` one once Stream adds entry
 * fields, or sends a marker-named one (kept whole, its value could hold anything). The envelope
 * is small and always takes the any-`*_at` pass.
 */
const QUOTED_INTEGER_TIMESTAMP = /([{,]"[a-z0-9_]*_at":)"(-?\d+)"/g;
const QUOTED_INTEGER_ENTRY_TIMESTAMP = /([{,]"(?:joined_at|left_at)":)"(-?\d+)"/g;

function withIntegerTimestamps(json: string, pattern: RegExp | undefined): string {
  return pattern === undefined ? json : json.replace(pattern, '$1$2');
}

/** `raws[i]` is what row i stores: leanRaw(entries[i]), which is entries[i].raw itself when kept whole. */
function integerTimestampPattern(entries: readonly ParticipantEntry[], raws: readonly Record<string, unknown>[]): RegExp | undefined {
  let pattern: RegExp | undefined;
  for (const [i, raw] of raws.entries()) {
    // A marker key in a lean raw is leanRaw's own (a number, or `-` naming fields); in a raw kept
    // whole it is a field Stream sent, whose value may be anything.
    const lean = raw !== entries[i]!.raw;
    for (const key in raw) if (!ENTRY_FIELDS.has(key) && !(lean && LEAN_RAW_MARKERS.has(key))) return QUOTED_INTEGER_TIMESTAMP;
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
