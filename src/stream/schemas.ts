import { z } from 'zod';
import { AppError } from '../errors.ts';

/**
 * Stream's wire format becomes typed values here and nowhere else (stream-api.md §2, §7).
 * Quirks handled in this file, each because Stream's SDKs disagree or the spec is silent:
 * - timestamps come as RFC 3339 strings or as integer Unix nanoseconds (§2, "parse both forms");
 * - `next`/`prev` are absent or "" on the last page (§9.2): both become null;
 * - optional entry fields may be absent or null (§9.9): both become null;
 * - `duration` is an integer on this endpoint and a string elsewhere: both are accepted;
 * - each entry is also kept exactly as received (`raw`), so fields Stream adds later survive.
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
  readonly joinedAt: Date | null;
  readonly leftAt: Date | null;
  readonly durationInSeconds: number | null;
  /** The entry exactly as received. */
  readonly raw: Record<string, unknown>;
}

export interface ParticipantSessionsPage {
  readonly callType: string;
  readonly callId: string;
  readonly callSessionId: string;
  /** Every participant session of the call session; filters never change it (stream-api.md §1). */
  readonly totalParticipantSessions: number;
  /** Sum of all participant durations, in seconds. */
  readonly totalParticipantDuration: number;
  readonly entries: readonly ParticipantEntry[];
  readonly next: string | null;
  readonly prev: string | null;
  /** From the optional `session` object: when the call session started and ended, if Stream said. */
  readonly sessionStartedAt: Date | null;
  readonly sessionEndedAt: Date | null;
}

export interface CallSessionStatsRow {
  readonly callType: string;
  readonly callId: string;
  readonly callSessionId: string;
  readonly sessionStartedAt: Date | null;
  readonly sessionEndedAt: Date | null;
  readonly generatedAt: Date | null;
}

export interface CallSessionStatsPage {
  readonly rows: readonly CallSessionStatsRow[];
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
    ms = Date.parse(value.replace(' ', 'T'));
  } else {
    throw new ResponseShapeError(`timestamp is neither RFC 3339 nor integer nanoseconds (${describe(value)})`);
  }
  const date = new Date(ms);
  if (Number.isNaN(date.getTime())) throw new ResponseShapeError('timestamp is out of range');
  return date;
}

function isCalendarDate(value: string): boolean {
  const [year, month, day] = value.slice(0, 10).split('-').map(Number) as [number, number, number];
  const date = new Date(Date.UTC(year, month - 1, day));
  return date.getUTCFullYear() === year && date.getUTCMonth() === month - 1 && date.getUTCDate() === day;
}

// `.optional()` outside the transform: an absent key skips it and reads as undefined (→ null below).
const timestamp = z
  .unknown()
  .transform((value, ctx) => {
    try {
      return parseStreamTimestamp(value);
    } catch (error) {
      ctx.addIssue({ code: 'custom', message: (error as Error).message });
      return z.NEVER;
    }
  })
  .optional();

/** Whole numbers that may arrive as JSON numbers or digit strings (int64 fields, `duration`). */
const integer = z.union([z.number(), z.string().regex(/^-?\d+(\.\d+)?$/)]).transform((value) => Math.round(Number(value)));

const cursor = z
  .string()
  .nullish()
  .transform((value) => (value === undefined || value === null || value === '' ? null : value));

const entrySchema = z.object({
  user_id: z.string(),
  user_session_id: z.string().min(1),
  // Required in the spec, but an entry missing them is still worth keeping: they default
  // rather than failing the whole page.
  publisher_type: z.string().nullish(),
  roles: z.array(z.string()).nullish(),
  joined_at: timestamp,
  left_at: timestamp,
  duration_in_seconds: integer.nullish(),
});

const pageSchema = z.object({
  call_type: z.string(),
  call_id: z.string(),
  call_session_id: z.string(),
  duration: z.union([z.number(), z.string()]).nullish(),
  total_participant_sessions: integer,
  total_participant_duration: integer,
  participants_sessions: z.array(z.unknown()).nullish(),
  next: cursor,
  prev: cursor,
  session: z.looseObject({ started_at: timestamp, ended_at: timestamp }).nullish(),
});

/** Parses a QueryCallParticipantSessions body; throws ResponseShapeError naming the first bad field. */
export function parseParticipantSessionsPage(body: unknown): ParticipantSessionsPage {
  const page = check(pageSchema, body, 'participant_sessions response');
  const entries = (page.participants_sessions ?? []).map((item, index) => parseParticipantEntry(item, index));
  return {
    callType: page.call_type,
    callId: page.call_id,
    callSessionId: page.call_session_id,
    totalParticipantSessions: page.total_participant_sessions,
    totalParticipantDuration: page.total_participant_duration,
    entries,
    next: page.next,
    prev: page.prev,
    sessionStartedAt: page.session?.started_at ?? null,
    sessionEndedAt: page.session?.ended_at ?? null,
  };
}

export function parseParticipantEntry(item: unknown, index = 0): ParticipantEntry {
  const entry = check(entrySchema, item, `participants_sessions[${index}]`);
  return {
    userId: entry.user_id,
    userSessionId: entry.user_session_id,
    publisherType: entry.publisher_type ?? '',
    roles: entry.roles ?? [],
    joinedAt: entry.joined_at ?? null,
    leftAt: entry.left_at ?? null,
    durationInSeconds: entry.duration_in_seconds ?? null,
    raw: item as Record<string, unknown>,
  };
}

const statsRowSchema = z.object({
  call_type: z.string(),
  call_id: z.string(),
  call_session_id: z.string().min(1),
  generated_at: timestamp,
  // The spec names the row fields call_started_at/call_ended_at while its filters say
  // session_started_at/session_ended_at (stream-api.md §7); either is read.
  session_started_at: timestamp,
  session_ended_at: timestamp,
  call_started_at: timestamp,
  call_ended_at: timestamp,
});

const statsPageSchema = z.object({
  duration: z.union([z.number(), z.string()]).nullish(),
  call_stats: z.array(z.unknown()).nullish(),
  next: cursor,
});

/** Parses a QueryCallSessionStats (POST /api/v2/video/call_stats) body. */
export function parseCallSessionStatsPage(body: unknown): CallSessionStatsPage {
  const page = check(statsPageSchema, body, 'call_stats response');
  const rows = (page.call_stats ?? []).map((item, index) => {
    const row = check(statsRowSchema, item, `call_stats[${index}]`);
    return {
      callType: row.call_type,
      callId: row.call_id,
      callSessionId: row.call_session_id,
      sessionStartedAt: row.session_started_at ?? row.call_started_at ?? null,
      sessionEndedAt: row.session_ended_at ?? row.call_ended_at ?? null,
      generatedAt: row.generated_at ?? null,
    };
  });
  return { rows, next: page.next };
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
