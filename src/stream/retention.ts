import { DAY_MS } from '../time.ts';

/**
 * Stream keeps a call session's participant detail this long after the session ends; after
 * that `participants_sessions` comes back empty while the totals remain (docs/stream-api.md §8).
 * The SQL in queue/enqueue.ts builds its interval from this same number.
 */
export const STREAM_RETENTION_DAYS = 90;

/** When Stream empties the detail of a session that ended at `endedAt`. */
export function retentionExpiresAt(endedAt: Date): Date {
  return new Date(endedAt.getTime() + STREAM_RETENTION_DAYS * DAY_MS);
}

/** The dates a call_stats row may carry; only `generatedAt` is required by Stream's spec, and even it may be unreadable. */
export interface ListedSessionDates {
  readonly sessionEndedAt: Date | null;
  readonly sessionStartedAt: Date | null;
  readonly generatedAt: Date | null;
}

/** Which date a retention estimate counts from, best first. */
export type RetentionBasis = 'ended' | 'started' | 'generated' | 'listed';

export interface RetentionEstimate {
  readonly expiresAt: Date;
  readonly basis: RetentionBasis;
}

/**
 * The retention of a session call_stats lists, from the best date the row has (docs/stream-api.md §7:
 * `call_ended_at` and `call_started_at` may be absent):
 * - its end: exact, Stream's 90 days count from it;
 * - else its start, which is never later than the end: the estimate errs early, so the session is
 *   claimed sooner rather than later (the claim order is nearest expiry first), by the length of
 *   the session;
 * - else `generated_at`: the report is generated after the session ends (minutes later in
 *   practice), so this errs late by that delay, the same as a webhook's report time does;
 * - else `listedAt`, when we saw the row: later still, but a row with no readable date at all
 *   still gets a date rather than sorting after every dated session.
 * The caller leaves `session_ended_at` null whenever the basis is not `ended`, so a later sweep,
 * backfill or webhook that knows the end replaces the estimate.
 */
export function estimateRetention(dates: ListedSessionDates, listedAt: Date): RetentionEstimate {
  if (dates.sessionEndedAt) return { expiresAt: retentionExpiresAt(dates.sessionEndedAt), basis: 'ended' };
  if (dates.sessionStartedAt) return { expiresAt: retentionExpiresAt(dates.sessionStartedAt), basis: 'started' };
  if (dates.generatedAt) return { expiresAt: retentionExpiresAt(dates.generatedAt), basis: 'generated' };
  return { expiresAt: retentionExpiresAt(listedAt), basis: 'listed' };
}
