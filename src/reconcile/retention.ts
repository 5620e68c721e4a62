import { expireOverdueSessions } from '../queue/expire.ts';
import { AT_RISK, type Queryable } from '../queue/sql.ts';

/** How many at-risk ids a warning names; the full list is in `status`. */
export const AT_RISK_LOG_IDS = 5;

export interface RetentionReport {
  /** Sessions not complete whose retention_expires_at is within AT_RISK_DAYS (after marking the expired ones). */
  readonly atRisk: number;
  /** The nearest-expiring few of them. */
  readonly atRiskIds: readonly string[];
  /** Sessions marked expired by this pass. */
  readonly expiredIds: readonly string[];
}

/* The AT_RISK_DAYS rule, the same predicate `status` and /metrics use (queue/sql.ts). */
const AT_RISK_SQL = `
  select (select count(*) from call_sessions where ${AT_RISK})::int as n,
         array(select call_session_id from call_sessions where ${AT_RISK} order by retention_expires_at limit $1) as first`;

/**
 * The retention guard: sessions past their retention that can no longer be archived become
 * expired (queue/expire.ts), then what is still at risk of the same fate is counted.
 */
export async function guardRetention(db: Queryable): Promise<RetentionReport> {
  const { expired } = await expireOverdueSessions(db);
  const { rows } = await db.query<{ n: number; first: string[] }>(AT_RISK_SQL, [AT_RISK_LOG_IDS]);
  return { atRisk: rows[0]?.n ?? 0, atRiskIds: rows[0]?.first ?? [], expiredIds: expired };
}
