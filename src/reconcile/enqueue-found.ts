import { sql } from 'drizzle-orm';
import { callSessions } from '../db/schema.ts';
import { SESSIONS_DUE_CHANNEL } from '../queue/enqueue.ts';
import { estimateRetention, type RetentionBasis } from '../stream/retention.ts';
import type { CallSessionStatsRow } from '../stream/schemas.ts';
import type { SweepDb } from './state.ts';

/** A call session as call_stats lists it. */
export interface FoundSession {
  readonly callType: string;
  readonly callId: string;
  readonly callSessionId: string;
  /** Stream's end of the session; null when the row did not say. */
  readonly sessionEndedAt: Date | null;
  /** End + STREAM_RETENTION_DAYS, else the estimate of stream/retention.ts; null only when nothing at all is known. */
  readonly retentionExpiresAt: Date | null;
  /** What retentionExpiresAt counts from; null with it. */
  readonly retentionBasis: RetentionBasis | null;
}

export interface EnqueueFoundResult {
  /** Sessions that were not in call_sessions and now are, pending and due. */
  readonly inserted: string[];
  /** Sessions already known without an end whose end (or first retention date) this listing supplied. */
  readonly corrected: string[];
}

/** A usable call_stats row as a session to enqueue, its retention by the one rule (stream/retention.ts). */
export function foundSession(row: CallSessionStatsRow, listedAt: Date): FoundSession {
  const estimate = estimateRetention(row, listedAt);
  return {
    callType: row.callType,
    callId: row.callId,
    callSessionId: row.callSessionId,
    sessionEndedAt: row.sessionEndedAt,
    retentionExpiresAt: estimate.expiresAt,
    retentionBasis: estimate.basis,
  };
}

/**
 * Inserts the sessions that are not yet in call_sessions as pending and due now, in one
 * statement. A session already known is left to whoever owns it (a webhook, the worker, an
 * earlier sweep): its status, schedule, lease and cursor are never touched. Only its dates may be
 * corrected, and only while its end is unknown (one retention clock, design.md): when this
 * listing knows Stream's end, session_ended_at and retention_expires_at = end + STREAM_RETENTION_DAYS replace
 * whatever estimate the row had (a report event's time, which errs late); when it does not, an
 * estimate only fills a retention that is still null. A row whose end is known is never changed.
 * Returns what was inserted and what was corrected; a NOTIFY for each inserted session goes out
 * with the caller's commit.
 */
export async function enqueueFoundSessions(db: SweepDb, sessions: readonly FoundSession[]): Promise<EnqueueFoundResult> {
  const unique = new Map(sessions.map((s) => [s.callSessionId, s]));
  if (unique.size === 0) return { inserted: [], corrected: [] };
  const written = await db
    .insert(callSessions)
    .values(
      [...unique.values()].map((s) => ({
        callSessionId: s.callSessionId,
        callType: s.callType,
        callId: s.callId,
        callCid: `${s.callType}:${s.callId}`,
        status: 'pending' as const,
        sessionEndedAt: s.sessionEndedAt,
        retentionExpiresAt: s.retentionExpiresAt,
        nextAttemptAt: sql`now()`,
      })),
    )
    .onConflictDoUpdate({
      target: callSessions.callSessionId,
      set: {
        sessionEndedAt: sql`excluded.session_ended_at`,
        retentionExpiresAt: sql`case when excluded.session_ended_at is not null then excluded.retention_expires_at
                                     else coalesce(${callSessions.retentionExpiresAt}, excluded.retention_expires_at) end`,
        updatedAt: sql`now()`,
      },
      setWhere: sql`${callSessions.sessionEndedAt} is null
                    and (excluded.session_ended_at is not null
                         or (${callSessions.retentionExpiresAt} is null and excluded.retention_expires_at is not null))`,
    })
    // xmax is 0 only on a row this statement inserted; an updated row carries this transaction's id.
    .returning({ callSessionId: callSessions.callSessionId, inserted: sql<boolean>`(xmax = 0)` });
  const inserted = written.filter((r) => r.inserted).map((r) => r.callSessionId);
  const corrected = written.filter((r) => !r.inserted).map((r) => r.callSessionId);
  // The same payload the webhook intake and redrive send: one notification per session that became due.
  if (inserted.length > 0) {
    await db.execute(sql`select pg_notify(${SESSIONS_DUE_CHANNEL}, id) from unnest(${sql.param(inserted)}::text[]) as id`);
  }
  return { inserted, corrected };
}
