import { randomUUID } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import { gzipSync } from 'node:zlib';
import { signWebhook } from '../../src/stream/signature.ts';
import { callStatsCounts } from './counts.ts';
import type { SimParticipant, SimSession } from './generate.ts';
import { timestampValue, type TimestampFormat } from './wire.ts';

export interface EventOptions {
  /** Defaults to now. A Date is written in `timestampFormat`; a string or number as given (nanosecond digits, malformed values). */
  createdAt?: Date | string | number;
  timestampFormat?: TimestampFormat;
}

export interface SessionEndedOptions extends EventOptions {
  /** Replaces the session's end in `ended_at`, written as given; null leaves `ended_at` out. */
  endedAt?: string | number | null;
}

const eventTime = (value: Date | string | number | undefined, format: TimestampFormat): string | number =>
  typeof value === 'string' || typeof value === 'number' ? value : timestampValue(value ?? new Date(), format);

/** Stream trims participants_overview server-side and says so with is_trimmed (docs/stream-api.md §6). */
export const OVERVIEW_USERS = 10;

/**
 * A `call.stats_report_ready` body (CallStatsReportReadyEvent, docs/stream-api.md §6): the trigger to
 * page participant_sessions. The overview holds at most OVERVIEW_USERS users, so it is trimmed
 * for larger calls, which is why the full list has to be paged.
 */
export function buildStatsReportReadyEvent(session: SimSession, options: EventOptions = {}): Record<string, unknown> {
  const format = options.timestampFormat ?? 'rfc3339';
  const byUser = new Map<string, SimParticipant[]>();
  for (const p of session.participants) {
    const list = byUser.get(p.user_id);
    if (list) list.push(p);
    else byUser.set(p.user_id, [p]);
  }
  const overview = [...byUser.entries()].slice(0, OVERVIEW_USERS).map(([userId, entries]) => {
    const latest = Math.max(...entries.map((e) => (e.left_at ?? session.endedAt).getTime()));
    return {
      user_id: userId,
      roles: entries[0]?.roles ?? [],
      latest_activity_at: timestampValue(new Date(latest), format),
      sessions: entries.map((e) => {
        const tracks = new Set(e.published_tracks);
        return {
          user_session_id: e.user_session_id,
          is_live: e.is_live,
          publisher_type: e.publisher_type,
          published_tracks: {
            audio: tracks.has('audio'),
            video: tracks.has('video'),
            screenshare: tracks.has('screenshare'),
            screenshare_audio: tracks.has('screenshare_audio'),
          },
          ...(e.joined_at ? { started_at: timestampValue(e.joined_at, format) } : {}),
          ...(e.left_at ? { ended_at: timestampValue(e.left_at, format) } : {}),
        };
      }),
    };
  });
  return {
    type: 'call.stats_report_ready',
    created_at: eventTime(options.createdAt, format),
    call_cid: `${session.callType}:${session.callId}`,
    session_id: session.callSessionId,
    counts: callStatsCounts(session),
    participants_overview: overview,
    is_trimmed: byUser.size > OVERVIEW_USERS,
  };
}

/**
 * A `call.session_ended` body (CallSessionEndedEvent, docs/stream-api.md §6) with a CallResponse whose
 * session is the ended one. Fields the archiver has no use for are filled with plain defaults.
 */
export function buildSessionEndedEvent(session: SimSession, options: SessionEndedOptions = {}): Record<string, unknown> {
  const format = options.timestampFormat ?? 'rfc3339';
  const cid = `${session.callType}:${session.callId}`;
  const createdBy = session.participants.find((p) => p.roles.includes('host'))?.user_id ?? session.participants[0]?.user_id ?? 'system';
  const countByRole: Record<string, number> = {};
  for (const p of session.participants) if (p.is_live) for (const role of p.roles) countByRole[role] = (countByRole[role] ?? 0) + 1;
  const started = timestampValue(session.startedAt, format);
  const ended = timestampValue(session.endedAt, format);
  const endedAt = options.endedAt === undefined ? { ended_at: ended } : options.endedAt === null ? {} : { ended_at: options.endedAt };
  return {
    type: 'call.session_ended',
    created_at: eventTime(options.createdAt, format),
    call_cid: cid,
    session_id: session.callSessionId,
    call: {
      type: session.callType,
      id: session.callId,
      cid,
      current_session_id: session.callSessionId,
      created_at: started,
      updated_at: ended,
      created_by: { id: createdBy, role: 'user', custom: {}, teams: [], language: '', banned: false, online: false, created_at: started, updated_at: started },
      custom: {},
      settings: {},
      backstage: false,
      blocked_user_ids: [],
      recording: false,
      transcribing: false,
      captioning: false,
      translating: false,
      ...endedAt,
      session: {
        id: session.callSessionId,
        participants: [],
        participants_count_by_role: countByRole,
        anonymous_participant_count: 0,
        accepted_by: {},
        rejected_by: {},
        missed_by: {},
        started_at: started,
        ...endedAt,
      },
    },
  };
}

export interface DeliverWebhookOptions {
  url: string;
  apiKey: string;
  apiSecret: string;
  /** An object is sent as its JSON.stringify; a string as these exact bytes. */
  event: Record<string, unknown> | string;
  /** Defaults to a fresh UUID; the same on every attempt. */
  webhookId?: string;
  /** Compress the body (Content-Encoding: gzip); the signature stays over the uncompressed bytes. */
  gzip?: boolean;
  /** Default true: Stream's policy; false sends once. */
  retry?: boolean;
  /** Default 6000 ms, Stream's per-attempt timeout. */
  attemptTimeoutMs?: number;
  /** Default 15000 ms, Stream's budget for all attempts together. */
  totalTimeoutMs?: number;
  /** Pause between attempts; default 500 ms (Stream does not document one). */
  retryDelayMs?: number;
  /** Gives up at once (status 0, failure 'aborted') when this aborts. */
  signal?: AbortSignal;
}

export interface DeliveryResult {
  /** The last HTTP status, or 0 when the last attempt got no answer. */
  status: number;
  attempts: number;
  webhookId: string;
  /** Why the last attempt got no answer. */
  failure?: 'timeout' | 'network' | 'aborted';
}

/**
 * POSTs one webhook the way Stream does (docs/stream-api.md §5): headers X-WEBHOOK-ID,
 * X-WEBHOOK-ATTEMPT (from 1), X-API-KEY, X-SIGNATURE (lowercase hex HMAC-SHA256 of the
 * uncompressed bytes under the API secret). Retries: a 408, 429 or 5xx answer and a timeout get
 * up to 3 attempts, a network error 2; each attempt is cut at 6 s and all together at 15 s.
 */
export async function deliverWebhook(options: DeliverWebhookOptions): Promise<DeliveryResult> {
  const raw = Buffer.from(typeof options.event === 'string' ? options.event : JSON.stringify(options.event));
  const signature = signWebhook(raw, options.apiSecret);
  const payload = options.gzip ? gzipSync(raw) : raw;
  const webhookId = options.webhookId ?? randomUUID();
  const attemptTimeoutMs = options.attemptTimeoutMs ?? 6_000;
  const totalTimeoutMs = options.totalTimeoutMs ?? 15_000;
  const retryDelayMs = options.retryDelayMs ?? 500;
  const deadline = performance.now() + totalTimeoutMs;

  let attempts = 0;
  let result: DeliveryResult = { status: 0, attempts, webhookId };
  for (;;) {
    const remaining = deadline - performance.now();
    if (remaining <= 0) break;
    attempts++;
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      'x-webhook-id': webhookId,
      'x-webhook-attempt': String(attempts),
      'x-api-key': options.apiKey,
      'x-signature': signature,
    };
    if (options.gzip) headers['content-encoding'] = 'gzip';
    const timeout = AbortSignal.timeout(Math.max(1, Math.ceil(Math.min(attemptTimeoutMs, remaining))));
    const signal = options.signal ? AbortSignal.any([timeout, options.signal]) : timeout;
    try {
      const response = await fetch(options.url, {
        method: 'POST',
        headers,
        body: payload,
        signal,
      });
      await response.arrayBuffer().catch(() => undefined);
      result = { status: response.status, attempts, webhookId };
    } catch (error) {
      if (options.signal?.aborted) return { status: 0, attempts, webhookId, failure: 'aborted' };
      const timedOut = error instanceof Error && (error.name === 'TimeoutError' || error.name === 'AbortError');
      result = { status: 0, attempts, webhookId, failure: timedOut ? 'timeout' : 'network' };
    }
    if (options.retry === false || !shouldRetry(result) || attempts >= maxAttempts(result)) break;
    if (deadline - performance.now() <= retryDelayMs) break;
    try {
      await delay(retryDelayMs, undefined, options.signal ? { signal: options.signal } : undefined);
    } catch {
      return { status: 0, attempts, webhookId, failure: 'aborted' };
    }
  }
  return result;
}

function shouldRetry(result: DeliveryResult): boolean {
  if (result.status === 0) return true;
  return result.status === 408 || result.status === 429 || result.status >= 500;
}

function maxAttempts(result: DeliveryResult): number {
  return result.status === 0 && result.failure === 'network' ? 2 : 3;
}
