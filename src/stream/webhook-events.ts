import { AppError } from '../errors.ts';
import { parseStreamTimestamp } from './schemas.ts';

/**
 * Webhook bodies (docs/stream-api.md §6) as typed values. Only the two events that drive archiving are
 * read; every other type is passed on as `ignored` with its name, so new event types Stream adds
 * never fail a delivery.
 */

export const STATS_REPORT_READY = 'call.stats_report_ready';
export const SESSION_ENDED = 'call.session_ended';

/** The call session an event is about: `call_cid` split on its first ':' and `session_id`. */
export interface CallSessionRef {
  readonly callCid: string;
  readonly callType: string;
  readonly callId: string;
  readonly callSessionId: string;
}

export interface StatsReportReadyEvent extends CallSessionRef {
  readonly kind: 'stats_report_ready';
  readonly type: typeof STATS_REPORT_READY;
  /** The event's `created_at`; null when absent or unreadable (the caller falls back to now). */
  readonly createdAt: Date | null;
}

export interface SessionEndedEvent extends CallSessionRef {
  readonly kind: 'session_ended';
  readonly type: typeof SESSION_ENDED;
  readonly createdAt: Date | null;
  /** `call.session.ended_at` when the event carries it. */
  readonly sessionEndedAt: Date | null;
}

export interface IgnoredEvent {
  readonly kind: 'ignored';
  readonly type: string;
}

export type HandledWebhookEvent = StatsReportReadyEvent | SessionEndedEvent;
export type WebhookEvent = HandledWebhookEvent | IgnoredEvent;

/** A signed body that is JSON but not an event we can act on; the message is safe to answer with. */
export class InvalidWebhookEventError extends AppError {
  constructor(message: string) {
    super('WEBHOOK_EVENT_INVALID', message);
  }
}

// Stream's ids are short (UUIDs, cids of two short parts); the bound keeps a signed but absurd
// value from reaching a btree key or a NOTIFY payload, whose limits would make it fail on every retry.
const MAX_ID_LENGTH = 255;

export interface ParseWebhookEventOptions {
  /**
   * False when the raw body was not valid UTF-8, so decoding it put U+FFFD where its bad bytes
   * were: an id holding U+FFFD is then refused, since it is not the id the sender wrote.
   */
  readonly bodyWasUtf8?: boolean;
}

/** Reads a parsed JSON body. Throws InvalidWebhookEventError for a handled event it cannot act on. */
export function parseWebhookEvent(value: unknown, options: ParseWebhookEventOptions = {}): WebhookEvent {
  if (!isObject(value)) throw new InvalidWebhookEventError('body is not a JSON object');
  const type = value.type;
  if (typeof type !== 'string' || type === '') throw new InvalidWebhookEventError('type is missing');
  if (type !== STATS_REPORT_READY && type !== SESSION_ENDED) return { kind: 'ignored', type };

  const ref = parseCallSessionRef(value);
  // Only ids are checked: the payload keeps what it holds (storable-json.ts makes it storable).
  if (!isExactId(ref.callCid, options.bodyWasUtf8 ?? true) || !isExactId(ref.callSessionId, options.bodyWasUtf8 ?? true)) {
    throw new InvalidWebhookEventError('call_cid or session_id holds invalid characters');
  }
  const createdAt = readEventTime(value.created_at);
  if (type === STATS_REPORT_READY) return { kind: 'stats_report_ready', type, createdAt, ...ref };
  const call = isObject(value.call) ? value.call : undefined;
  const session = call !== undefined && isObject(call.session) ? call.session : undefined;
  return { kind: 'session_ended', type, createdAt, sessionEndedAt: readEventTime(session?.ended_at), ...ref };
}

function parseCallSessionRef(event: Record<string, unknown>): CallSessionRef {
  const callCid = event.call_cid;
  if (typeof callCid !== 'string' || callCid === '') throw new InvalidWebhookEventError('call_cid is missing');
  const cid = parseCallCid(callCid);
  if (cid === null) throw new InvalidWebhookEventError('call_cid is not "<type>:<id>"');
  const sessionId = event.session_id;
  if (typeof sessionId !== 'string' || sessionId === '') throw new InvalidWebhookEventError('session_id is missing');
  if (sessionId.length > MAX_ID_LENGTH) throw new InvalidWebhookEventError('session_id is too long');
  return { callCid, ...cid, callSessionId: sessionId };
}

/*
 * An id is a key: the worker asks Stream about it and the archive is filed under it, so it must be
 * exactly what the event said. Two ways it could silently not be: a lone UTF-16 surrogate (valid
 * JSON as an escape, `"\ud800"`) has no UTF-8 form, and pg would send U+FFFD in its place; and
 * invalid UTF-8 in the raw body was already decoded to U+FFFD. Such ids are refused (400; Stream
 * does not retry a 4xx) rather than altered. The call type and id are parts of call_cid, so
 * checking the cid covers them. A U+FFFD in a body that was valid UTF-8 is what the sender wrote.
 */
const SURROGATE = /[\ud800-\udfff]/;
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

function isExactId(id: string, bodyWasUtf8: boolean): boolean {
  if (SURROGATE.test(id) && LONE_SURROGATE.test(id)) return false;
  return bodyWasUtf8 || !id.includes('\ufffd');
}

/**
 * Deepest JSON nesting accepted in a webhook body. Stream's events are shallow (docs/stream-api.md §6):
 * call.session_ended's deepest standard path, call.session.participants[].user.custom, opens its
 * 7th level, and user-defined custom data may add a few more. Postgres refuses jsonb nested a few
 * thousand deep (54001, stack depth), and one such event used to fail its whole batch. 64 leaves
 * several times the room any real event needs.
 */
export const MAX_WEBHOOK_JSON_DEPTH = 64;

/**
 * True when `value` (parsed JSON) nests objects and arrays deeper than `maxDepth`, the root being
 * level 1. Stops at the first path past the limit, so a value nested 500,000 deep costs ~0.02 ms.
 * Measured on the shared 2-core machine: 0.5-1 µs for a 1 KB call.session_ended, 4-5 µs for a
 * 4.5 KB call.stats_report_ready (JSON.parse of the same bodies: 6-7 and 39-45 µs).
 */
export function nestsDeeperThan(value: unknown, maxDepth: number): boolean {
  if (typeof value !== 'object' || value === null) return false;
  if (maxDepth === 0) return true;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) if (nestsDeeperThan(value[i], maxDepth - 1)) return true;
    return false;
  }
  for (const key in value) if (nestsDeeperThan((value as Record<string, unknown>)[key], maxDepth - 1)) return true;
  return false;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACE = 0x7b;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACE = 0x7d;
const CLOSE_BRACKET = 0x5d;

/**
 * The same test on JSON text, before it is parsed: a byte scan that skips strings (in UTF-8 no
 * byte of a multi-byte character is ASCII, so it is exact) and stops at the limit. It costs about
 * what JSON.parse does (5.7 µs for 1 KB, 40 µs for 4.5 KB), so it is worth it only where parsing
 * would cost more: V8 parses JSON nested 500,000 deep (1 MiB) without complaint, in ~350 ms.
 * Malformed text is left for JSON.parse to refuse.
 */
export function exceedsJsonDepth(bytes: Uint8Array, maxDepth: number): boolean {
  let depth = 0;
  const length = bytes.length;
  for (let i = 0; i < length; i++) {
    const byte = bytes[i]!;
    if (byte === QUOTE) {
      for (i++; i < length; i++) {
        const inner = bytes[i]!;
        if (inner === QUOTE) break;
        if (inner === BACKSLASH) i++;
      }
    } else if (byte === OPEN_BRACE || byte === OPEN_BRACKET) {
      if (++depth > maxDepth) return true;
    } else if (byte === CLOSE_BRACE || byte === CLOSE_BRACKET) {
      depth--;
    }
  }
  return false;
}

/**
 * `"<type>:<id>"` split on the FIRST ':' (an id may itself contain ':'); null when either part is
 * empty or the cid is longer than any Stream issues.
 */
export function parseCallCid(cid: string): { callType: string; callId: string } | null {
  const colon = cid.indexOf(':');
  if (colon <= 0 || colon === cid.length - 1 || cid.length > MAX_ID_LENGTH) return null;
  return { callType: cid.slice(0, colon), callId: cid.slice(colon + 1) };
}

/**
 * An event time, in either of Stream's forms (read by `parseStreamTimestamp`). Lenient where the
 * REST reader is strict: an unreadable time must not refuse a delivery, so it reads as absent, and
 * so do times at or before the epoch (Go's zero time, an unset 0), which would otherwise make a
 * session look long expired.
 */
function readEventTime(value: unknown): Date | null {
  let date: Date | null;
  try {
    date = parseStreamTimestamp(value);
  } catch {
    return null;
  }
  return date !== null && date.getTime() > 0 ? date : null;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
