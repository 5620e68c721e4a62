import { retentionExpiresAt } from '../stream/retention.ts';

/**
 * A session not complete this close to `retention_expires_at` is at risk of losing its detail.
 * The test itself is SQL (queue/sql.ts `AT_RISK`), the one predicate `status`, /metrics and the
 * retention guard share.
 */
export const AT_RISK_DAYS = 7;

/**
 * Stream has emptied the session's detail (its 90 days are over): the stored retention date when
 * there is one, else the end Stream reported, else nobody can say and it is not past.
 */
export function isPastRetention(session: { readonly retentionExpiresAt: Date | null; readonly sessionEndedAt: Date | null }, now: number): boolean {
  if (session.retentionExpiresAt !== null && session.retentionExpiresAt.getTime() < now) return true;
  return session.sessionEndedAt !== null && retentionExpiresAt(session.sessionEndedAt).getTime() < now;
}
