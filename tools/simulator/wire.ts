import type { SimParticipant, SimSession } from './generate.ts';

/**
 * The two timestamp forms Stream's SDKs disagree on (docs/stream-api.md §2): RFC 3339 strings, or
 * integer nanoseconds since the epoch.
 */
export type TimestampFormat = 'rfc3339' | 'nanoseconds';

/** How an entry without `left_at` / `duration_in_seconds` travels (docs/stream-api.md §9.9). */
export type MissingFieldStyle = 'omit' | 'null';

/**
 * A timestamp as a JSON value. Strings follow Go's RFC3339Nano, which Stream's backend emits:
 * trailing fractional zeros are trimmed, so the fraction has 0 to 3 digits here ("…:35Z",
 * "…:35.88Z", "…:35.879Z"). Nanoseconds are exact as numbers while JSON.stringify prints them:
 * ms × 10⁶ stays below 10²¹ and the shortest round-trip digits end in six zeros.
 */
export function timestampValue(date: Date, format: TimestampFormat): string | number {
  if (format === 'nanoseconds') return date.getTime() * 1e6;
  return rfc3339(date);
}

/**
 * The same value as JSON text, for responses assembled from pieces. `subMsNs` (0–999,999) are the
 * nanoseconds past the Date's millisecond, which a JS number could not carry: as an integer the
 * value has 19 digits, as RFC 3339 up to nine fractional digits (trailing zeros trimmed).
 */
export function timestampJson(date: Date, format: TimestampFormat, subMsNs = 0): string {
  if (format === 'nanoseconds') return `${date.getTime()}${String(subMsNs).padStart(6, '0')}`;
  if (subMsNs === 0) return `"${rfc3339(date)}"`;
  const fraction = `${String(date.getUTCMilliseconds()).padStart(3, '0')}${String(subMsNs).padStart(6, '0')}`.replace(/0+$/, '');
  return `"${date.toISOString().slice(0, 19)}.${fraction}Z"`;
}

/** The decimal text of an entry timestamp's Unix nanoseconds: what every answer should carry, digit for digit. */
export function timestampNanos(date: Date, subMsNs = 0): string {
  return `${date.getTime()}${String(subMsNs).padStart(6, '0')}`;
}

function rfc3339(date: Date): string {
  const iso = date.toISOString();
  const ms = date.getUTCMilliseconds();
  if (ms === 0) return `${iso.slice(0, 19)}Z`;
  if (ms % 100 === 0) return `${iso.slice(0, 21)}Z`;
  if (ms % 10 === 0) return `${iso.slice(0, 22)}Z`;
  return iso;
}

/**
 * One ParticipantSessionDetails as JSON text. Filter-only fields (published_tracks, is_live,
 * is_tech_user) are not part of Stream's entry and are left out.
 */
export function participantJson(p: SimParticipant, format: TimestampFormat, missing: MissingFieldStyle): string {
  let json = `{"user_id":${JSON.stringify(p.user_id)},"user_session_id":${JSON.stringify(p.user_session_id)},"publisher_type":${JSON.stringify(p.publisher_type)},"roles":${JSON.stringify(p.roles)}`;
  json += optionalField('joined_at', p.joined_at === null ? null : timestampJson(p.joined_at, format, p.joined_at_sub_ms_ns), missing);
  json += optionalField('left_at', p.left_at === null ? null : timestampJson(p.left_at, format, p.left_at_sub_ms_ns), missing);
  json += optionalField('duration_in_seconds', p.duration_in_seconds === null ? null : String(p.duration_in_seconds), missing);
  return `${json}}`;
}

function optionalField(name: string, json: string | null, missing: MissingFieldStyle): string {
  if (json !== null) return `,"${name}":${json}`;
  return missing === 'null' ? `,"${name}":null` : '';
}

/**
 * The response's `session` (CallSessionResponse, docs/stream-api.md §2, §6) as JSON text, its
 * timestamps in the same form as the entries'. The answer comes once the session has ended, so
 * nobody is present (`participants` empty) and the counts are zero; nobody was rung, so the
 * accepted/rejected/missed maps are empty.
 */
export function sessionJson(session: SimSession, format: TimestampFormat): string {
  return (
    `{"id":${JSON.stringify(session.callSessionId)},"participants":[],"participants_count_by_role":{},` +
    `"anonymous_participant_count":0,"accepted_by":{},"rejected_by":{},"missed_by":{},` +
    `"started_at":${timestampJson(session.startedAt, format, session.startedAtSubMsNs)},` +
    `"ended_at":${timestampJson(session.endedAt, format, session.endedAtSubMsNs)}}`
  );
}
