import { and, asc, count, inArray, isNotNull, lt, notInArray, sql } from 'drizzle-orm';
import { callSessions } from '../db/schema.ts';
import { AT_RISK_DAYS } from '../queue/stats.ts';
import type { SweepDb } from './state.ts';

/** How many at-risk ids a warning names; the full list is in `status`. */
export const AT_RISK_LOG_IDS = 5;

export const EXPIRED_ERROR = "expired unarchived: past retention_expires_at, Stream no longer holds this session's detail";

export interface RetentionReport {
  /** Sessions not complete whose retention_expires_at is within AT_RISK_DAYS (after marking the expired ones). */
  readonly atRisk: number;
  /** The nearest-expiring few of them. */
  readonly atRiskIds: readonly string[];
  /** Sessions marked expired by this pass. */
  readonly expiredIds: readonly string[];
}

/**
 * Sessions past retention_expires_at that are waiting (pending, retrying) or dead can no longer be
 * archived: Stream now answers with an empty array. They become `expired`, with a last_error
 * that says so and keeps the error they had (why a dead session died stays visible), rather than
 * a worker later reading "no attendees" into them. One archived in full before (archived_at set,
 * rows held = Stream's total) and announced again afterwards goes back to `complete` instead. A
 * running session is left to its worker, which tells expired from empty itself, and a complete
 * one is already safe.
 * Then counts what is still at risk, with the same predicate `status` and /metrics use.
 */
export async function guardRetention(db: SweepDb): Promise<RetentionReport> {
  const expired = await db
    .update(callSessions)
    .set({
      status: sql`case when ${callSessions.archivedAt} is not null
                        and ${callSessions.archivedParticipantSessions} = ${callSessions.totalParticipantSessions}
                       then 'complete' else 'expired' end`,
      lastError: sql`case when ${callSessions.archivedAt} is not null
                           and ${callSessions.archivedParticipantSessions} = ${callSessions.totalParticipantSessions}
                          then ${callSessions.lastError}
                          else ${EXPIRED_ERROR} || coalesce('; last error: ' || ${callSessions.lastError}, '') end`,
      updatedAt: sql`now()`,
    })
    .where(
      and(
        inArray(callSessions.status, ['pending', 'retrying', 'dead']),
        isNotNull(callSessions.retentionExpiresAt),
        lt(callSessions.retentionExpiresAt, sql`now()`),
      ),
    )
    .returning({ callSessionId: callSessions.callSessionId, status: callSessions.status });

  const atRiskWhere = and(
    notInArray(callSessions.status, ['complete', 'expired']),
    lt(callSessions.retentionExpiresAt, sql`now() + make_interval(days => ${AT_RISK_DAYS})`),
  );
  const [total] = await db.select({ n: count() }).from(callSessions).where(atRiskWhere);
  const first = await db
    .select({ callSessionId: callSessions.callSessionId })
    .from(callSessions)
    .where(atRiskWhere)
    .orderBy(asc(callSessions.retentionExpiresAt))
    .limit(AT_RISK_LOG_IDS);

  return {
    atRisk: total?.n ?? 0,
    atRiskIds: first.map((r) => r.callSessionId),
    expiredIds: expired.filter((r) => r.status === 'expired').map((r) => r.callSessionId),
  };
}
