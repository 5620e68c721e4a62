import { z } from 'zod';
import { AppError } from '../errors.ts';
import { DAY_MS, HOUR_MS, MINUTE_MS, SECOND_MS } from '../time.ts';

/**
 * Stream's wire format becomes typed values here and nowhere else (docs/stream-api.md §2, §7).
 * Quirks handled in this file, each because Stream's SDKs disagree or the spec is silent:
 * - timestamps come as RFC 3339 strings or as integer Unix nanoseconds (§2), so both are parsed;
 * - `next`/`prev` are absent or "" on the last page (§9.2): both become null;
 * - optional entry fields may be absent or null (§9.9): both become null;
 * - `duration` is an integer on this endpoint and a string elsewhere: both are accepted;
 * - each entry is also kept exactly as received (`raw`), so fields Stream adds later survive;
 * - integer-nanosecond timestamps exceed 2^53, which JSON.parse would round
 *   (1775658215879421674 → …879421700): parseStreamJson reads the integer value of every key
 *   ending in `_at` (entries' joined_at/left_at, the `session` object's started_at, ended_at, …)
 *   as a digit string instead;
 * - the page's envelope (every top-level field but the entries and the per-request `next`,
 *   `prev`, `duration`) is kept as received, so `session` and fields Stream adds later survive.
 */

/** A response body that is JSON but not the shape we rely on. */
export class ResponseShapeError extends AppError {
  constructor(message: string) {
    super('STREAM_INVALID_RESPONSE', message, { retryable: true });
  }
}

export interface ParticipantEntry {
  readonly userId: string;
  readonly userSessionId: string;
  readonly publisherType: string;
  readonly roles: readonly string[];
  /** Millisecond precision (a Date); the columns are written from joinedAtMicros. */
  readonly joinedAt: Date | null;
  readonly leftAt: Date | null;
  /**
   * RFC 3339 text of the instant truncated to the microsecond (Postgres timestamptz precision),
   * e.g. "2026-04-08T14:23:35.879421Z" for …35.879421674Z or 1775658215879421674; the exact
   * value stays in `raw`.
   */
  readonly joinedAtMicros: string | null;
  readonly leftAtMicros: string | null;
  readonly durationInSeconds: number | null;
  /**
   * The entry as received. Integer timestamps that came through parseStreamJson are digit strings
   * here (`"1775658215879421674"`); the page writer turns them back into JSON integers
   * (ingest/write-page.ts), so the stored raw has the integer Stream sent.
   */
  readonly raw: Record<string, unknown>;
}

export interface ParticipantSessionsPage {
  readonly callType: string;
  readonly callId: string;
  readonly callSessionId: string;
  /** Every participant session of the call session; filters never change it (docs/stream-api.md §1). */
  readonly totalParticipantSessions: number;
  /** Sum of all participant durations, in seconds. */
  readonly totalParticipantDuration: number;
  readonly entries: readonly ParticipantEntry[];
  readonly next: string | null;
  readonly prev: string | null;
  /** From the optional `session` object: when the call session started and ended, if Stream said. */
  readonly sessionStartedAt: Date | null;
  readonly sessionEndedAt: Date | null;
  /**
   * Stream's answer without `participants_sessions` and the per-request `next`, `prev` and
   * `duration`: the ids, the totals, `session` and any top-level field Stream adds, as received.
   * Integer `*_at` values are digit strings here, as in an entry's `raw`; the page writer turns
   * them back into JSON integers (ingest/write-page.ts).
   */
  readonly envelope: Readonly<Record<string, unknown>>;
}

export interface CallSessionStatsRow {
  readonly callType: string;
  readonly callId: string;
  readonly callSessionId: string;
  readonly sessionStartedAt: Date | null;
  readonly sessionEndedAt: Date | null;
  readonly generatedAt: Date | null;
  /** Dates present but unreadable, read as absent (e.g. `call_ended_at: timestamp is neither …`); absent when none. */
  readonly dateProblems?: readonly string[];
}

/** A call_stats row that names no session we could archive: what was wrong and whatever ids it had. */
export interface UnusableCallStatsRow {
  /** Its position in the page's `call_stats`. */
  readonly index: number;
  readonly reason: string;
  readonly ids: { readonly callType?: string; readonly callId?: string; readonly callSessionId?: string };
}

export interface CallSessionStatsPage {
  readonly rows: readonly CallSessionStatsRow[];
  /** Rows left out of `rows` (absent when none); the page's other rows and its cursor are still good. */
  readonly unusable?: readonly UnusableCallStatsRow[];
  readonly next: string | null;
}

const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$/;
const NANOSECONDS_PER_MS = 1_000_000;

/**
 * A Stream timestamp as a Date (millisecond precision; `raw` keeps the exact value). Numbers, and
 * strings of digits, are Unix nanoseconds as stream-node and the Go SDK read them.
 * Throws on anything else so a changed format is noticed instead of stored as garbage.
 */
export function parseStreamTimestamp(value: unknown): Date | null {
  if (value === null || value === undefined || value === '') return null;
  let ms: number;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new ResponseShapeError('timestamp is not a finite number');
    // A double near 1.8e18 is only exact to ±128 ns, so 1795844229882000000 may arrive as
    // …881999872: round to the microsecond first, then floor to the millisecond as stream-node does.
    ms = Math.floor(Math.round(value / 1_000) / 1_000);
  } else if (typeof value === 'string' && /^\d+$/.test(value)) {
    ms = Number(BigInt(value) / BigInt(NANOSECONDS_PER_MS));
  } else if (typeof value === 'string' && RFC3339.test(value)) {
    // Date.parse rolls impossible calendar dates over (April 31 → May 1); refuse them instead.
    if (!isCalendarDate(value)) throw new ResponseShapeError(`timestamp has no such calendar date (${describe(value)})`);
    ms = Date.parse(value.charCodeAt(10) === 32 ? value.replace(' ', 'T') : value);
  } else {
    throw new ResponseShapeError(`timestamp is neither RFC 3339 nor integer nanoseconds (${describe(value)})`);
  }
  const date = new Date(ms);
  if (Number.isNaN(date.getTime())) throw new ResponseShapeError('timestamp is out of range');
  return date;
}

/**
 * JSON.parse for Stream's 2xx bodies, keeping timestamps sent as integer nanoseconds exact: the
 * integer value of every key ending in `_at`, at any depth (an entry's `joined_at`/`left_at`, the
 * `session` object's `started_at`, `ended_at`, `live_started_at`, its participants' `joined_at`,
 * their users' `created_at`…, and such keys Stream adds later), becomes a string of its digits
 * before parsing (a JS number keeps only ~16 significant digits; these have 19). Only keys that
 * follow `{` or `,` are touched, so text inside JSON strings (where a quote is always escaped)
 * never is. Not covered, so read to ~16 significant digits when sent as integers: timestamps
 * under other keys (the values of `session.accepted_by`/`rejected_by`/`missed_by`, a user's
 * `last_active`) and timestamps inside arrays.
 * A reviver would see only the rounded number, and JSON.parse's source-text access needs Node 21;
 * this runs on Node 20 too. Measured on a 100-entry simulator page (Node 20, shared 2 cores,
 * medians of 7 rounds): the pre-check adds ~15–35 µs to JSON.parse's ~100–150 µs when the
 * timestamps are strings; quoting integer ones ~40 µs. Matching any `*_at` key rather than the
 * two entry keys costs ~15–25 µs more on such a page (the key class backtracks on every key;
 * a lookbehind form was 5× slower), and pages of RFC 3339 timestamps never run it.
 */
export function parseStreamJson(text: string): unknown {
  return JSON.parse(mayHoldIntegerTimestamps(text) ? text.replace(INTEGER_TIMESTAMP, '$1"$2"') : text);
}

/**
 * A cheap pre-check so pages of RFC 3339 timestamps skip the regex: each `_at":` followed by a
 * digit or `-` (or any spacing around the colon, which Stream's compact JSON never has) sends the
 * text through the exact regex. indexOf hops cost ~15–35 µs a 100-entry page where the regex's
 * own pass cost ~40–90 µs.
 */
function mayHoldIntegerTimestamps(text: string): boolean {
  for (let at = text.indexOf('_at"'); at !== -1; at = text.indexOf('_at"', at + 4)) {
    const colon = text.charCodeAt(at + 4);
    if (colon !== 58) return true;
    const next = text.charCodeAt(at + 5);
    if ((next >= 48 && next <= 57) || next === 45 || next === 32 || next === 9 || next === 10 || next === 13) return true;
  }
  return false;
}

const INTEGER_TIMESTAMP = /([{,]\s*"[a-z0-9_]*_at"\s*:\s*)(-?\d+)(?=\s*[,}])/g;
const DIGITS = /^-?\d+$/;
const RFC3339_PARTS = /^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})$/;

/**
 * An entry timestamp as RFC 3339 text truncated to the microsecond, which Postgres stores exactly
 * (it would round a 9-digit fraction; truncating keeps every column value at or before the
 * instant Stream sent). Digit strings and numbers are Unix nanoseconds. Throws like
 * parseStreamTimestamp on anything else.
 */
export function parseEntryInstant(value: unknown): string | null {
  return readInstant(value)?.micros ?? null;
}

interface Instant {
  /** RFC 3339, truncated to the microsecond. */
  readonly micros: string;
  readonly ms: number;
}

function readInstant(value: unknown): Instant | null {
  if (value === null || value === undefined || value === '') return null;
  if (typeof value === 'string' && DIGITS.test(value)) {
    // The common case, a positive 19-digit instant, by slicing and isoMillis: ~0.4 µs a timestamp,
    // where BigInt arithmetic and Date#toISOString took ~1.6–2.5 µs (Node 20), most of a page's reading.
    if (value.length >= 10 && value.length <= 21 && value.charCodeAt(0) !== 45) {
      const ms = Number(value.slice(0, -6));
      return { micros: `${isoMillis(ms)}${value.slice(-6, -3)}Z`, ms };
    }
    const nanos = BigInt(value);
    const micros = nanos / 1_000n;
    // BigInt division truncates toward zero; an instant before 1970 floors instead.
    return microsInstant(nanos < 0n && micros * 1_000n !== nanos ? micros - 1n : micros);
  }
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new ResponseShapeError('timestamp is not a finite number');
    // A double near 1.8e18 is exact only to ±128 ns: round to the microsecond, as parseStreamTimestamp does.
    return microsInstant(BigInt(Math.round(value / 1_000)));
  }
  if (typeof value === 'string' && RFC3339.test(value)) {
    if (!isCalendarDate(value)) throw new ResponseShapeError(`timestamp has no such calendar date (${describe(value)})`);
    const ms = Date.parse(value.charCodeAt(10) === 32 ? value.replace(' ', 'T') : value);
    if (Number.isNaN(ms)) throw new ResponseShapeError('timestamp is out of range');
    const dot = value.indexOf('.', 19);
    if (dot === -1) return { micros: value, ms };
    // Keep at most six fractional digits: cut the rest, leave the zone as sent.
    let end = dot + 1;
    while (end < value.length && value.charCodeAt(end) >= 48 && value.charCodeAt(end) <= 57) end++;
    return { micros: end - dot - 1 <= 6 ? value : value.slice(0, dot + 7) + value.slice(end), ms };
  }
  throw new ResponseShapeError(`timestamp is neither RFC 3339 nor integer nanoseconds (${describe(value)})`);
}

function microsInstant(micros: bigint): Instant {
  let ms = micros / 1_000n;
  let rest = micros % 1_000n;
  if (rest < 0n) {
    rest += 1_000n;
    ms -= 1n;
  }
  return { micros: `${isoMillis(Number(ms))}${String(rest).padStart(3, '0')}Z`, ms: Number(ms) };
}

/**
 * `YYYY-MM-DDTHH:MM:SS.mmm` of a Unix millisecond (UTC), as Date#toISOString without its `Z`.
 * By arithmetic (days to civil date, H. Hinnant's algorithm) for years 1000–9999: toISOString
 * cost ~2.2 µs a call on Node 20, which made two per entry ~450 µs of a 100-entry page; this
 * is ~0.26 µs (the date part cached per day). Other years (and non-finite input) go through Date.
 */
export function isoMillis(ms: number): string {
  if (!(ms >= -30_610_224_000_000 && ms < 253_402_300_800_000)) {
    const date = new Date(ms);
    if (Number.isNaN(date.getTime())) throw new ResponseShapeError('timestamp is out of range');
    return date.toISOString().slice(0, -1);
  }
  const days = Math.floor(ms / DAY_MS);
  let rest = ms - days * DAY_MS;
  // A page's timestamps share a day or two: the calendar part is worked out once per day seen.
  if (days !== lastDay) {
    lastDay = days;
    lastDayPrefix = civilDate(days);
  }
  const hours = Math.floor(rest / HOUR_MS);
  rest -= hours * HOUR_MS;
  const minutes = Math.floor(rest / MINUTE_MS);
  rest -= minutes * MINUTE_MS;
  const seconds = Math.floor(rest / SECOND_MS);
  const millis = rest - seconds * SECOND_MS;
  return `${lastDayPrefix}T${pad2(hours)}:${pad2(minutes)}:${pad2(seconds)}.${millis < 10 ? '00' : millis < 100 ? '0' : ''}${millis}`;
}

let lastDay = Number.NaN;
let lastDayPrefix = '';

/** `YYYY-MM-DD` of days since the epoch (H. Hinnant's days-to-civil). */
function civilDate(days: number): string {
  const z = days + 719_468;
  const era = Math.floor(z / 146_097);
  const doe = z - era * 146_097;
  const yoe = Math.floor((doe - Math.floor(doe / 1_460) + Math.floor(doe / 36_524) - Math.floor(doe / 146_096)) / 365);
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const day = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const month = mp < 10 ? mp + 3 : mp - 9;
  const year = yoe + era * 400 + (month <= 2 ? 1 : 0);
  return `${year}-${pad2(month)}-${pad2(day)}`;
}

function pad2(n: number): string {
  return n < 10 ? `0${n}` : `${n}`;
}

/**
 * A stored Stream timestamp (RFC 3339 text with up to 9 fractional digits, or the decimal text of
 * integer nanoseconds, as jsonb prints it) as the decimal text of integer Unix nanoseconds: the
 * exact instant, digit for digit, for writing into JSON without a JS number. Undefined when the
 * text is neither.
 */
export function timestampNanosText(text: string): string | undefined {
  if (DIGITS.test(text)) return text.replace(/^(-?)0+(?=\d)/, '$1');
  // jsonb may print an integer sent as 1.775e18 with a fraction: the instant is its integer part.
  if (/^-?\d+\.\d+$/.test(text)) return timestampNanosText(text.slice(0, text.indexOf('.')));
  const parts = RFC3339_PARTS.exec(text);
  if (!parts) return undefined;
  const zone = parts[4] === 'z' ? 'Z' : parts[4]!;
  const ms = Date.parse(`${parts[1]}T${parts[2]}${zone}`);
  if (Number.isNaN(ms)) return undefined;
  return (BigInt(ms) * 1_000_000n + BigInt((parts[3] ?? '').padEnd(9, '0'))).toString();
}

// Digits at fixed offsets of a string RFC3339 has matched: no splitting or Date per timestamp on
// the hot path (two per participant entry).
const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

function isCalendarDate(value: string): boolean {
  const year = digits(value, 0, 4);
  const month = digits(value, 5, 2);
  const day = digits(value, 8, 2);
  if (month < 1 || month > 12 || day < 1) return false;
  const leap = month === 2 && year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  return day <= DAYS_IN_MONTH[month - 1]! + (leap ? 1 : 0);
}

function digits(value: string, start: number, length: number): number {
  let n = 0;
  for (let i = start; i < start + length; i++) n = n * 10 + (value.charCodeAt(i) - 48);
  return n;
}

/** `next`/`prev`: absent, null and "" all mean "no more" (docs/stream-api.md §9.2). */
const noMoreToNull = (value: string | null | undefined): string | null => (value === undefined || value === null || value === '' ? null : value);

const cursorField = z.string().nullish().transform(noMoreToNull);

/*
 * participant_sessions pages are read by hand rather than through zod: they are the hot path (a
 * page of 100 entries a request, a million entries for a big class), and zod copied every entry
 * into fresh objects. Measured on a 100-entry page: ~0.85 ms to validate with zod against ~0.1 ms
 * here, and zod's copies were what V8 moved into the old generation, so the service's peak RSS
 * grew with the size of the session (bench/RESULTS.md). The rules are the ones the zod schemas
 * said, field by field; call_stats, read once a sweep, keeps a zod schema for its envelope below.
 */
const PAGE = 'participant_sessions response';

/** Parses a QueryCallParticipantSessions body; throws ResponseShapeError naming the first bad field. */
export function parseParticipantSessionsPage(body: unknown): ParticipantSessionsPage {
  const page = record(body, PAGE, '(root)');
  const callType = string(page.call_type, PAGE, 'call_type');
  const callId = string(page.call_id, PAGE, 'call_id');
  const callSessionId = string(page.call_session_id, PAGE, 'call_session_id');
  const duration = page.duration;
  if (duration !== undefined && duration !== null && typeof duration !== 'string' && !isFiniteNumber(duration)) {
    fail(PAGE, 'duration', `expected number or string, received ${kind(duration)}`);
  }
  const totalParticipantSessions = integer(page.total_participant_sessions, PAGE, 'total_participant_sessions');
  const totalParticipantDuration = integer(page.total_participant_duration, PAGE, 'total_participant_duration');
  const list = page.participants_sessions;
  if (list !== undefined && list !== null && !Array.isArray(list)) fail(PAGE, 'participants_sessions', `expected array, received ${kind(list)}`);
  const next = cursor(page.next, PAGE, 'next');
  const prev = cursor(page.prev, PAGE, 'prev');
  let sessionStartedAt: Date | null = null;
  let sessionEndedAt: Date | null = null;
  if (page.session !== undefined && page.session !== null) {
    const session = record(page.session, PAGE, 'session');
    sessionStartedAt = timestamp(session.started_at, PAGE, 'session.started_at');
    sessionEndedAt = timestamp(session.ended_at, PAGE, 'session.ended_at');
  }
  // Object.fromEntries, not assignment: a `__proto__` key stays an own field, as JSON.parse made it.
  const envelope = Object.fromEntries(Object.entries(page).filter(([key]) => !PER_REQUEST_FIELDS.has(key)));
  const items = (list ?? []) as readonly unknown[];
  const entries = new Array<ParticipantEntry>(items.length);
  for (let i = 0; i < items.length; i++) entries[i] = parseParticipantEntry(items[i], i);
  return {
    callType,
    callId,
    callSessionId,
    totalParticipantSessions,
    totalParticipantDuration,
    entries,
    next,
    prev,
    sessionStartedAt,
    sessionEndedAt,
    envelope,
  };
}

/** Fields of Stream's answer that belong to one request, not to the session: left out of the envelope. */
const PER_REQUEST_FIELDS: ReadonlySet<string> = new Set(['participants_sessions', 'next', 'prev', 'duration']);

function parseParticipantEntry(item: unknown, index: number): ParticipantEntry {
  const what = `participants_sessions[${index}]`;
  const entry = record(item, what, '(root)');
  const userId = string(entry.user_id, what, 'user_id');
  const userSessionId = string(entry.user_session_id, what, 'user_session_id');
  if (userSessionId.length === 0) fail(what, 'user_session_id', 'expected a non-empty string');
  // Required in the spec, but an entry missing them is still worth keeping: they default
  // rather than failing the whole page.
  const publisherType = entry.publisher_type;
  if (publisherType !== undefined && publisherType !== null && typeof publisherType !== 'string') {
    fail(what, 'publisher_type', `expected string, received ${kind(publisherType)}`);
  }
  const roles = entry.roles;
  if (roles !== undefined && roles !== null) {
    if (!Array.isArray(roles)) fail(what, 'roles', `expected array, received ${kind(roles)}`);
    for (let i = 0; i < roles.length; i++) {
      if (typeof roles[i] !== 'string') fail(what, `roles[${i}]`, `expected string, received ${kind(roles[i])}`);
    }
  }
  const joined = instant(entry.joined_at, what, 'joined_at');
  const left = instant(entry.left_at, what, 'left_at');
  const duration = entry.duration_in_seconds;
  return {
    userId,
    userSessionId,
    publisherType: (publisherType as string | null | undefined) ?? '',
    roles: (roles as string[] | null | undefined) ?? [],
    joinedAt: joined === null ? null : new Date(joined.ms),
    leftAt: left === null ? null : new Date(left.ms),
    joinedAtMicros: joined?.micros ?? null,
    leftAtMicros: left?.micros ?? null,
    durationInSeconds: duration === undefined || duration === null ? null : integer(duration, what, 'duration_in_seconds'),
    raw: entry,
  };
}

const INTEGER_STRING = /^-?\d+(\.\d+)?$/;

function record(value: unknown, what: string, path: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) fail(what, path, `expected object, received ${kind(value)}`);
  return value as Record<string, unknown>;
}

function string(value: unknown, what: string, path: string): string {
  if (typeof value !== 'string') fail(what, path, `expected string, received ${kind(value)}`);
  return value;
}

/** Whole numbers that may arrive as JSON numbers or digit strings (int64 fields, `duration`). */
function integer(value: unknown, what: string, path: string): number {
  if (isFiniteNumber(value)) return Math.round(value);
  if (typeof value === 'string' && INTEGER_STRING.test(value)) return Math.round(Number(value));
  return fail(what, path, `expected a number or a string of digits, received ${kind(value)}`);
}

function cursor(value: unknown, what: string, path: string): string | null {
  return value === undefined || value === null ? null : noMoreToNull(string(value, what, path));
}

function timestamp(value: unknown, what: string, path: string): Date | null {
  try {
    return parseStreamTimestamp(value);
  } catch (error) {
    return fail(what, path, (error as Error).message);
  }
}

function instant(value: unknown, what: string, path: string): Instant | null {
  try {
    return readInstant(value);
  } catch (error) {
    return fail(what, path, (error as Error).message);
  }
}

function isFiniteNumber(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value);
}

function kind(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  return typeof value;
}

function fail(what: string, path: string, message: string): never {
  throw new ResponseShapeError(`${what}: ${path}: ${message}`);
}

const statsPageSchema = z.object({
  duration: z.union([z.number(), z.string()]).nullish(),
  call_stats: z.array(z.unknown()).nullish(),
  next: cursorField,
});

/*
 * call_stats rows are read one by one: a row that names no session (its ids missing or not
 * strings) is returned in `unusable` rather than failing the page, so one bad row never hides the
 * other 99 nor stops the sweep's cursor. Stream requires only call_type, call_id,
 * call_session_id, generated_at and counts in a row (docs/stream-api.md §7); the session window may be
 * absent, and an unreadable date is read as absent (and named in `dateProblems`) since the ids
 * alone are enough to archive the session. A wrong envelope still fails the whole page.
 */
const STATS_IDS = [
  ['call_type', 'callType'],
  ['call_id', 'callId'],
  ['call_session_id', 'callSessionId'],
] as const;

/** Parses a QueryCallSessionStats (POST /api/v2/video/call_stats) body. */
export function parseCallSessionStatsPage(body: unknown): CallSessionStatsPage {
  const page = check(statsPageSchema, body, 'call_stats response');
  const rows: CallSessionStatsRow[] = [];
  const unusable: UnusableCallStatsRow[] = [];
  (page.call_stats ?? []).forEach((item, index) => {
    const parsed = parseStatsRow(item, index);
    if ('reason' in parsed) unusable.push(parsed);
    else rows.push(parsed);
  });
  return { rows, ...(unusable.length > 0 ? { unusable } : {}), next: page.next };
}

function parseStatsRow(item: unknown, index: number): CallSessionStatsRow | UnusableCallStatsRow {
  if (typeof item !== 'object' || item === null || Array.isArray(item)) {
    return { index, reason: `expected object, received ${kind(item)}`, ids: {} };
  }
  const row = item as Record<string, unknown>;
  const ids: { callType?: string; callId?: string; callSessionId?: string } = {};
  const problems: string[] = [];
  for (const [field, key] of STATS_IDS) {
    const value = row[field];
    if (typeof value === 'string' && value.length > 0) ids[key] = value;
    else problems.push(`${field}: expected a non-empty string, received ${typeof value === 'string' ? 'an empty string' : kind(value)}`);
  }
  if (problems.length > 0) return { index, reason: problems.join('; '), ids };
  const dateProblems: string[] = [];
  const date = (field: string): Date | null => {
    try {
      return parseStreamTimestamp(row[field]);
    } catch (error) {
      dateProblems.push(`${field}: ${(error as Error).message}`);
      return null;
    }
  };
  // The spec names the row fields call_started_at/call_ended_at while its filters say
  // session_started_at/session_ended_at (docs/stream-api.md §7); either is read.
  const sessionStartedAt = date('session_started_at') ?? date('call_started_at');
  const sessionEndedAt = date('session_ended_at') ?? date('call_ended_at');
  return {
    callType: ids.callType!,
    callId: ids.callId!,
    callSessionId: ids.callSessionId!,
    sessionStartedAt,
    sessionEndedAt,
    generatedAt: date('generated_at'),
    ...(dateProblems.length > 0 ? { dateProblems } : {}),
  };
}

function check<T extends z.ZodType>(schema: T, value: unknown, what: string): z.output<T> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const path = issue && issue.path.length > 0 ? issue.path.join('.') : '(root)';
  throw new ResponseShapeError(`${what}: ${path}: ${issue?.message ?? 'invalid'}`);
}

function describe(value: unknown): string {
  if (typeof value === 'string') return `string of ${value.length} characters`;
  return typeof value;
}
