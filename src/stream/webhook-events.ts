import { AppError } from '../errors.ts';
import { parseStreamTimestamp } from './schemas.ts';

/**
 * Webhook bodies (stream-api.md §6) as typed values. Only the two events that drive archiving are
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

/** Reads a parsed JSON body. Throws InvalidWebhookEventError for a handled event it cannot act on. */
export function parseWebhookEvent(value: unknown): WebhookEvent {
  if (!isObject(value)) throw new InvalidWebhookEventError('body is not a JSON object');
  const type = value.type;
  if (typeof type !== 'string' || type === '') throw new InvalidWebhookEventError('type is missing');
  if (type !== STATS_REPORT_READY && type !== SESSION_ENDED) return { kind: 'ignored', type };

  const ref = parseCallSessionRef(value);
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
