import { storableString } from '../db/storable-json.ts';
import { type ParticipantEntry, parseEntryInstant } from '../stream/schemas.ts';

/*
 * participant_sessions.raw holds only what the row's columns do not give back exactly, and
 * participant_session_entry(p) rebuilds Stream's entry from both (migrations/0005_lean_raw.sql
 * states the form). The SQL function participant_session_lean_raw made it inside the page
 * statement: 1–2 ms of Postgres time a 100-entry page (EXPLAIN ANALYZE of the statement with and
 * without it); here the worker makes it (see leanRaw for the cost).
 *
 * The rules are the SQL function's, so for the entries Stream sends the result is the same jsonb
 * (test/db/lean-raw.test.ts compares them case by case). Where this cannot tell cheaply that the
 * SQL would have left something out, it keeps it (a key, a timestamp as sent): more bytes, never
 * a lost digit, since participant_session_entry gives back whatever raw holds.
 *
 * What Postgres receives is this object's JSON after the page writer's two passes (write-page.ts):
 * storableJson, and digit strings under `*_at` keys turned back into JSON integers. So a digit
 * string under joined_at or left_at is judged as the integer the SQL function saw.
 */

/** Keys of the lean form's own; an entry that holds one is stored whole. */
export const LEAN_RAW_MARKERS: ReadonlySet<string> = new Set(['-', '~joined_at', '#joined_at', '~left_at', '#left_at']);

// Which of the column fields an entry holds, in the order the SQL function lists them under `-`.
const USER_ID = 1;
const USER_SESSION_ID = 2;
const PUBLISHER_TYPE = 4;
const DURATION = 8;
const ROLES = 16;
const ALL_FIELDS = USER_ID | USER_SESSION_ID | PUBLISHER_TYPE | DURATION | ROLES;

/**
 * What participant_sessions.raw stores for `entry`, whose row's columns are written from its
 * typed fields: participant_session_entry(p) gives back entry.raw exactly from it. Either a new
 * object (the lean form) or entry.raw itself (kept whole). Measured on Node 20 (2 shared cores,
 * 100,000 simulator entries): ~0.5 µs an entry with RFC 3339 timestamps, ~1.3 µs with integer
 * nanoseconds (checking each against its column is most of it). A 100-entry page's JSON, being
 * shorter, is made faster: leanRaw and JSON.stringify together cost ~10 µs more a page than the
 * whole raw's JSON did with RFC 3339 timestamps, ~80 µs with integers (not counting the integer
 * pass, which such a page no longer needs).
 */
export function leanRaw(entry: ParticipantEntry): Record<string, unknown> {
  const raw = entry.raw;
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return raw;
  const lean: Record<string, unknown> = {};
  let present = 0;
  for (const key in raw) {
    const value = raw[key];
    // JSON.stringify leaves such a key out: Postgres never sees it.
    if (value === undefined) continue;
    switch (key) {
      case 'user_session_id':
        // A lean raw is told from a whole one by having no user_session_id: one that differs stays whole.
        if (value !== entry.userSessionId) return raw;
        present |= USER_SESSION_ID;
        break;
      case 'user_id':
        present |= USER_ID;
        if (value !== entry.userId) lean.user_id = value;
        break;
      case 'publisher_type':
        present |= PUBLISHER_TYPE;
        if (value !== entry.publisherType) lean.publisher_type = value;
        break;
      case 'duration_in_seconds':
        present |= DURATION;
        // The column prints the integer as JSON.stringify prints this number; 30.5 or "30" stay.
        if (!(typeof value === 'number' && Number.isInteger(value) && value === entry.durationInSeconds)) lean.duration_in_seconds = value;
        break;
      case 'roles':
        present |= ROLES;
        if (!sameRoles(value, entry.roles)) lean.roles = value;
        break;
      case 'joined_at':
        keepInstant(lean, JOINED_AT, value, entry.joinedAtMicros);
        break;
      case 'left_at':
        keepInstant(lean, LEFT_AT, value, entry.leftAtMicros);
        break;
      default:
        // storableJson would rename a key holding a NUL or a lone surrogate, possibly onto a
        // marker or a column field's name: such an entry is stored whole, as before.
        if (LEAN_RAW_MARKERS.has(key) || storableString(key) !== key) return raw;
        // Plain assignment would set the prototype: JSON.parse made `__proto__` an own field.
        if (key === '__proto__') Object.defineProperty(lean, key, { value, enumerable: true, writable: true, configurable: true });
        else lean[key] = value;
    }
  }
  if (present !== ALL_FIELDS) {
    // A field Stream left out whose column still holds a value ('' and '{}' for publisher_type
    // and roles) is named, so the rebuilt entry leaves it out too.
    // Only duration_in_seconds has a column that may be null.
    const absent: string[] = [];
    if ((present & USER_ID) === 0) absent.push('user_id');
    if ((present & USER_SESSION_ID) === 0) absent.push('user_session_id');
    if ((present & PUBLISHER_TYPE) === 0) absent.push('publisher_type');
    if ((present & DURATION) === 0 && entry.durationInSeconds !== null) absent.push('duration_in_seconds');
    if ((present & ROLES) === 0) absent.push('roles');
    if (absent.length > 0) lean['-'] = absent;
  }
  return lean;
}

function sameRoles(value: unknown, roles: readonly string[]): boolean {
  if (value === roles) return true;
  if (!Array.isArray(value) || value.length !== roles.length) return false;
  for (let i = 0; i < roles.length; i++) if (value[i] !== roles[i]) return false;
  return true;
}

const JOINED_AT = { key: 'joined_at', text: '~joined_at', nanos: '#joined_at' } as const;
const LEFT_AT = { key: 'left_at', text: '~left_at', nanos: '#left_at' } as const;

/** joined_at or left_at under its marker when the column gives it back, else as sent. */
function keepInstant(lean: Record<string, unknown>, names: typeof JOINED_AT | typeof LEFT_AT, value: unknown, column: string | null): void {
  if (typeof value === 'string' && column !== null) {
    // RFC 3339 has `-` after the year; a digit string is integer nanoseconds once written.
    if (value.charCodeAt(4) === 45) {
      const code = rfc3339Code(value, column);
      if (code !== undefined) {
        lean[names.text] = code;
        return;
      }
    } else {
      const code = nanosCode(value, column);
      if (code !== undefined) {
        lean[names.nanos] = code;
        return;
      }
    }
  }
  // Numbers too: a JS number is already rounded, and which JSON text it becomes is JSON.stringify's.
  lean[names.key] = value;
}

/*
 * `~` marker: fraction digits sent × 1000 + the digits past the microsecond, for RFC 3339 in UTC
 * whose rebuilt text (participant_session_rfc3339 of the column) is the text sent.
 */
function rfc3339Code(sent: string, column: string): number | undefined {
  const length = sent.length;
  if (length < 20 || length > 30 || !UTC_MICROS.test(column)) return undefined;
  const digits = length === 20 ? 0 : length - 21;
  // The 7th to 9th fraction digits, read as three (`…4216Z` has 600 ns past the microsecond).
  let past = 0;
  for (let i = 26; i < length - 1; i++) {
    const digit = sent.charCodeAt(i) - 48;
    if (digit < 0 || digit > 9) return undefined;
    past = past * 10 + digit;
  }
  if (length > 27) past *= 10 ** (30 - length);
  return rfc3339(column, digits, past) === sent ? digits * 1000 + past : undefined;
}

/*
 * What Postgres prints for a column written from `column` (to_char of its UTC time, as
 * participant_session_rfc3339 does) is `column` itself with the fraction padded to six digits,
 * when `column` is UTC text with fields in range: Postgres would roll `24:00:00` or a 60th second
 * over, and refuses other out-of-range fields and impossible dates, failing the page.
 */
const UTC_MICROS = /^\d{4}-\d{2}-\d{2}T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d{1,6})?Z$/;

/** participant_session_rfc3339(column, digits, past) for a column matching UTC_MICROS. */
function rfc3339(column: string, digits: number, past: number): string {
  if (digits === 0) return `${column.slice(0, 19)}Z`;
  const micros = column.length === 20 ? '000000' : column.slice(20, -1).padEnd(6, '0');
  return `${column.slice(0, 19)}.${`${micros}${String(past).padStart(3, '0')}`.slice(0, digits)}Z`;
}

// jsonb prints an integer without leading zeros, and -0 as 0: only this form rebuilds as sent.
const CANONICAL_INTEGER = /^(?:0|-?[1-9]\d{0,19})$/;

/*
 * `#` marker: the nanoseconds past the microsecond, for integer nanoseconds whose column holds
 * that microsecond; participant_session_nanos then rebuilds the same digits.
 */
function nanosCode(sent: string, column: string): number | undefined {
  // parseEntryInstant is how the column was written from these digits: equal text, same instant.
  if (!CANONICAL_INTEGER.test(sent) || parseEntryInstant(sent) !== column) return undefined;
  const last = Number(sent.length > 3 ? sent.slice(-3) : sent.slice(sent.charCodeAt(0) === 45 ? 1 : 0));
  // The column floors: -1500 ns is held as -2 µs, 500 ns past it.
  return sent.charCodeAt(0) === 45 ? (1000 - last) % 1000 : last;
}
