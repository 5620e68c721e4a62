import type { ListedSession } from '../queue/enqueue-listed.ts';
import { estimateRetention, type RetentionBasis } from '../stream/retention.ts';
import type { CallSessionStatsRow } from '../stream/schemas.ts';

/**
 * A call session as call_stats lists it: what queue/enqueue-listed.ts enqueues, and which date
 * its retention was counted from.
 */
export interface FoundSession extends ListedSession {
  /** What retentionExpiresAt counts from; null with it. */
  readonly retentionBasis: RetentionBasis | null;
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
