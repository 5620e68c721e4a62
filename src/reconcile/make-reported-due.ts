import { and, eq, gt, inArray, isNull, sql } from 'drizzle-orm';
import { callSessions } from '../db/schema.ts';
import { SESSIONS_DUE_CHANNEL } from '../queue/enqueue.ts';
import type { SweepDb } from './state.ts';

/**
 * Sessions call_stats lists have a stats report (its rows carry `generated_at`). A session known
 * only from `call.session_ended` waits an hour for `call.stats_report_ready` (enqueue.ts); when
 * that webhook was lost for good, the listing is the evidence it would have brought, so the wait
 * ends here: still pending, no report time recorded, due later → due now. Nothing else is touched
 * (a retrying session keeps its backoff, a running one its lease). Returns the ids made due; a
 * NOTIFY for each goes out with the caller's commit.
 */
export async function makeReportedSessionsDue(db: SweepDb, callSessionIds: readonly string[]): Promise<string[]> {
  if (callSessionIds.length === 0) return [];
  const updated = await db
    .update(callSessions)
    .set({ nextAttemptAt: sql`now()`, updatedAt: sql`now()` })
    .where(
      and(
        inArray(callSessions.callSessionId, [...callSessionIds]),
        eq(callSessions.status, 'pending'),
        isNull(callSessions.statsReportReadyAt),
        gt(callSessions.nextAttemptAt, sql`now()`),
      ),
    )
    .returning({ callSessionId: callSessions.callSessionId });
  const ids = updated.map((r) => r.callSessionId);
  if (ids.length > 0) {
    await db.execute(sql`select pg_notify(${SESSIONS_DUE_CHANNEL}, id) from unnest(${sql.param(ids)}::text[]) as id`);
  }
  return ids;
}
