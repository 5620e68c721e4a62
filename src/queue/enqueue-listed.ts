import { notifyDue, STATUS, type Queryable } from './sql.ts';

/** A session a call_stats listing (sweep or backfill) names. */
export interface ListedSession {
  readonly callType: string;
  readonly callId: string;
  readonly callSessionId: string;
  /** Stream's end of the session; null when the listing did not say. */
  readonly sessionEndedAt: Date | null;
  /** End + STREAM_RETENTION_DAYS, else an estimate (stream/retention.ts); null when nothing is known. */
  readonly retentionExpiresAt: Date | null;
}

export interface EnqueueListedResult {
  /** Sessions that were not in call_sessions and now are, pending and due. */
  readonly inserted: string[];
  /** Sessions already known without an end whose end (or first retention date) this listing supplied. */
  readonly corrected: string[];
}

/*
 * Sessions that are not yet in call_sessions go in as pending and due now. A session already
 * known is left to whoever owns it (a webhook, the worker, an earlier sweep): its status,
 * schedule, lease and cursor are never touched. Only its dates may be corrected, and only while
 * its end is unknown (docs/architecture.md, "One retention clock"): when the listing knows Stream's end,
 * session_ended_at and retention_expires_at = end + 90 days replace whatever estimate the row had
 * (a report event's time, which errs late); when it does not, an estimate only fills a retention
 * that is still null. A row whose end is known is never changed.
 *
 * The sessions travel as parallel arrays (one plan whatever the count), unique by id (Postgres
 * refuses to touch a row twice in one statement). xmax is 0 only on a row this statement
 * inserted; an updated row carries this transaction's id. One NOTIFY per inserted session, the
 * payload the webhook intake and redrive send, goes out with the caller's commit.
 */
const ENQUEUE_LISTED_SQL = `
  with written as (
    insert into call_sessions as s
      (call_session_id, call_type, call_id, call_cid, status, session_ended_at, retention_expires_at, next_attempt_at)
    select l.call_session_id, l.call_type, l.call_id, l.call_type || ':' || l.call_id, '${STATUS.pending}',
           l.session_ended_at, l.retention_expires_at, now()
      from unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::timestamptz[])
           as l(call_session_id, call_type, call_id, session_ended_at, retention_expires_at)
    on conflict (call_session_id) do update set
      session_ended_at = excluded.session_ended_at,
      retention_expires_at = case when excluded.session_ended_at is not null then excluded.retention_expires_at
                                  else coalesce(s.retention_expires_at, excluded.retention_expires_at) end,
      updated_at = now()
    where s.session_ended_at is null
      and (excluded.session_ended_at is not null
           or (s.retention_expires_at is null and excluded.retention_expires_at is not null))
    returning call_session_id, (xmax = 0) as inserted
  ), notified as (
    select ${notifyDue('call_session_id')} from written where inserted
  )
  select call_session_id, inserted, (select count(*) from notified) as notified from written`;

/** Inserts the listed sessions not yet known, corrects unknown ends of known ones; one statement. */
export async function enqueueListedSessions(db: Queryable, sessions: readonly ListedSession[]): Promise<EnqueueListedResult> {
  const unique = [...new Map(sessions.map((s) => [s.callSessionId, s])).values()];
  if (unique.length === 0) return { inserted: [], corrected: [] };
  const { rows } = await db.query<{ call_session_id: string; inserted: boolean }>(ENQUEUE_LISTED_SQL, [
    unique.map((s) => s.callSessionId),
    unique.map((s) => s.callType),
    unique.map((s) => s.callId),
    unique.map((s) => s.sessionEndedAt),
    unique.map((s) => s.retentionExpiresAt),
  ]);
  return {
    inserted: rows.filter((r) => r.inserted).map((r) => r.call_session_id),
    corrected: rows.filter((r) => !r.inserted).map((r) => r.call_session_id),
  };
}
