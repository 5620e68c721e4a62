import { sql } from 'drizzle-orm';
import { callSessions } from '../db/schema.ts';
import { SESSIONS_DUE_CHANNEL } from '../queue/enqueue.ts';
import { retentionExpiresAt } from '../stream/retention.ts';
import type { SweepDb } from './state.ts';

/** A call session as call_stats lists it. */
export interface FoundSession {
  readonly callType: string;
  readonly callId: string;
  readonly callSessionId: string;
  readonly sessionEndedAt: Date | null;
}

/**
 * Inserts the sessions that are not yet in call_sessions as pending and due now, with
 * retention_expires_at = end + 90 days (null when the end is unknown), in one statement.
 * Sessions already known are left exactly as they are: a webhook, the worker or an earlier
 * sweep owns them. Returns the ids inserted; when there are any, a NOTIFY on the workers'
 * channel goes out with the caller's commit.
 */
export async function enqueueFoundSessions(db: SweepDb, sessions: readonly FoundSession[]): Promise<string[]> {
  const unique = new Map(sessions.map((s) => [s.callSessionId, s]));
  if (unique.size === 0) return [];
  const inserted = await db
    .insert(callSessions)
    .values(
      [...unique.values()].map((s) => ({
        callSessionId: s.callSessionId,
        callType: s.callType,
        callId: s.callId,
        callCid: `${s.callType}:${s.callId}`,
        status: 'pending' as const,
        sessionEndedAt: s.sessionEndedAt,
        retentionExpiresAt: s.sessionEndedAt === null ? null : retentionExpiresAt(s.sessionEndedAt),
        nextAttemptAt: sql`now()`,
      })),
    )
    .onConflictDoNothing({ target: callSessions.callSessionId })
    .returning({ callSessionId: callSessions.callSessionId });
  const ids = inserted.map((r) => r.callSessionId);
  // The same payload the webhook intake and redrive send: one notification per session that became due.
  if (ids.length > 0) {
    await db.execute(sql`select pg_notify(${SESSIONS_DUE_CHANNEL}, id) from unnest(${sql.param(ids)}::text[]) as id`);
  }
  return ids;
}
