import type pg from 'pg';
import { AppError } from '../errors.ts';
import type { HandledWebhookEvent } from '../stream/webhook-events.ts';

/** Workers LISTEN here; the payload is the call_session_id that just became due. */
export const SESSIONS_DUE_CHANNEL = 'attendance_sessions_due';

export interface WebhookEventToEnqueue {
  /** X-WEBHOOK-ID, or an id derived from the body when the header is missing. */
  readonly webhookId: string;
  /** X-WEBHOOK-ATTEMPT when it is a whole number. */
  readonly attempt: number | null;
  readonly event: HandledWebhookEvent;
  /** The body exactly as received (uncompressed); stored as jsonb so large integers stay exact. */
  readonly bodyText: string;
  /** The same body parsed, used only when Postgres could not store the text as it is. */
  readonly payload: unknown;
}

export interface EnqueueResult {
  /** False for a duplicate X-WEBHOOK-ID: then nothing at all was written. */
  readonly stored: boolean;
  /** The session is due now and a NOTIFY went out with the commit. */
  readonly due: boolean;
}

/** The database did not answer within the deadline; retrying later can help. */
export class EnqueueTimeoutError extends AppError {
  constructor(ms: number) {
    super('ENQUEUE_TIMEOUT', `database did not answer within ${ms} ms`, { retryable: true });
  }
}

/*
 * One statement per webhook, so one round trip and one implicit transaction: the event insert, the
 * session upsert and the NOTIFY commit together or not at all. The builder cannot say this:
 * data-modifying CTEs feeding each other, an upsert that runs only when the inbox insert returned a
 * row, and pg_notify gated on the upsert's result. Raw SQL here, next to its only caller.
 *
 * Dedupe: `on conflict (webhook_id) do nothing` returns no row for a duplicate, so the session CTE
 * selects from nothing and the session is not touched. A concurrent duplicate waits on the first
 * insert's row lock and then finds the conflict, so 50 simultaneous deliveries write once.
 *
 * NOTIFY is sent at commit (never for a rolled-back statement) and only when the session's
 * next_attempt_at has passed, i.e. a worker could claim it right now. The notified CTE is volatile,
 * so Postgres materialises it rather than inlining it away; the final select references it so it runs.
 */
const INSERT_EVENT = `
  insert into webhook_events (webhook_id, type, call_cid, session_id, attempt, payload)
  values ($1, $2, $3, $4, $5, $6::jsonb)
  on conflict (webhook_id) do nothing
  returning session_id`;

const NOTIFY_AND_REPORT = `
  notified as (
    select pg_notify('${SESSIONS_DUE_CHANNEL}', call_session_id) from session where due
  )
  select exists (select 1 from event) as stored, (select count(*) from notified) > 0 as due`;

/*
 * call.stats_report_ready: the report is in, archive now. Insert or update whatever the current
 * status: a complete, expired or dead session is re-archived from the start (upserts make a re-run
 * safe), a retrying one starts over with a fresh attempt budget, and a running one is taken back:
 * clearing lease_owner fences out the worker that was paging it, since every worker write checks
 * the lease owner. So: status 'pending', next_attempt_at now(), stats_report_ready_at = the event's
 * created_at, retention_expires_at = coalesce(session_ended_at, created_at) + 90 days (Stream
 * keeps the detail 90 days from the end), attempts 0, cursor null, lease cleared.
 * $9 is the event's created_at; null means "unknown", read as now().
 */
const STATS_REPORT_READY_SQL = `
  with event as (${INSERT_EVENT}
  ), session as (
    insert into call_sessions as s
      (call_session_id, call_type, call_id, call_cid, status, next_attempt_at, stats_report_ready_at, retention_expires_at)
    select event.session_id, $7::text, $8::text, $3::text, 'pending', now(),
           coalesce($9::timestamptz, now()), coalesce($9::timestamptz, now()) + interval '90 days'
      from event
    on conflict (call_session_id) do update set
      status = 'pending',
      next_attempt_at = now(),
      stats_report_ready_at = excluded.stats_report_ready_at,
      retention_expires_at = coalesce(s.session_ended_at, excluded.stats_report_ready_at) + interval '90 days',
      attempts = 0,
      cursor = null,
      lease_owner = null,
      lease_expires_at = null,
      updated_at = now()
    returning call_session_id, next_attempt_at <= now() as due
  ), ${NOTIFY_AND_REPORT}`;

/*
 * call.session_ended: the session exists and its report should follow; make it due in one hour in
 * case the report event never comes. A new row is 'pending' with session_ended_at = the call's
 * session.ended_at (else the event's created_at, else now()) and retention_expires_at = that + 90
 * days. An existing row keeps its status whatever it is; session_ended_at is filled only if it
 * was null, and then retention_expires_at follows it (the end is what Stream's 90 days count
 * from; a retention derived earlier from the report's time is later than the truth). A pending or
 * retrying session becomes due at least(current, now() + 1 hour), so this event, arriving after
 * stats_report_ready (out of order delivery), never delays a session that is due sooner.
 * $9 is the event's created_at, $10 the session's ended_at; either may be null.
 */
const SESSION_ENDED_SQL = `
  with event as (${INSERT_EVENT}
  ), session as (
    insert into call_sessions as s
      (call_session_id, call_type, call_id, call_cid, status, next_attempt_at, session_ended_at, retention_expires_at)
    select event.session_id, $7::text, $8::text, $3::text, 'pending', now() + interval '1 hour',
           ended.ended_at, ended.ended_at + interval '90 days'
      from event, (select coalesce($10::timestamptz, $9::timestamptz, now()) as ended_at) as ended
    on conflict (call_session_id) do update set
      session_ended_at = coalesce(s.session_ended_at, excluded.session_ended_at),
      retention_expires_at = case when s.session_ended_at is null then excluded.retention_expires_at
                                  else s.retention_expires_at end,
      next_attempt_at = case when s.status in ('pending', 'retrying') then least(s.next_attempt_at, excluded.next_attempt_at)
                             else s.next_attempt_at end,
      updated_at = now()
    returning call_session_id, status in ('pending', 'retrying') and next_attempt_at <= now() as due
  ), ${NOTIFY_AND_REPORT}`;

/**
 * Stores a handled webhook event in `webhook_events` and makes its call session due, in one
 * statement (see the SQL above for the rules). Rejects with EnqueueTimeoutError after
 * `deadlineMs` whatever the pool is doing, so a webhook never waits past Stream's 6 s timeout;
 * database errors are passed on as pg raised them (with their SQLSTATE in `code`).
 */
export async function enqueueWebhookEvent(
  pool: pg.Pool,
  input: WebhookEventToEnqueue,
  options: { deadlineMs: number },
): Promise<EnqueueResult> {
  const { event } = input;
  const values = [
    input.webhookId,
    event.type,
    event.callCid,
    event.callSessionId,
    input.attempt,
    storableJson(input.bodyText, input.payload),
    event.callType,
    event.callId,
    event.createdAt,
  ];
  const query = {
    text: event.kind === 'stats_report_ready' ? STATS_REPORT_READY_SQL : SESSION_ENDED_SQL,
    values: event.kind === 'stats_report_ready' ? values : [...values, event.sessionEndedAt],
    // Frees the pooled connection if the server stops answering mid-query (pg reads it per query;
    // @types/pg does not list it).
    query_timeout: options.deadlineMs,
  } as pg.QueryConfig;
  const result = await withDeadline(pool.query<{ stored: boolean; due: boolean }>(query), options.deadlineMs);
  const row = result.rows[0];
  return { stored: row?.stored ?? false, due: row?.due ?? false };
}

/**
 * jsonb refuses the \u0000 escape (SQLSTATE 22P05), which JSON allows. Rather than lose such an
 * event, NUL characters are dropped from its strings; every other body is stored as received.
 */
function storableJson(text: string, payload: unknown): string {
  if (!text.includes('\\u0000')) return text;
  return JSON.stringify(payload, (_key, value: unknown) => (typeof value === 'string' ? value.replaceAll('\u0000', '') : value));
}

function withDeadline<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new EnqueueTimeoutError(ms)), ms);
  });
  // The losing query still settles later; its outcome is dropped (a late commit is a stored
  // event that Stream's retry will find as a duplicate).
  promise.catch(() => undefined);
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}
