/**
 * Stream keeps a call session's participant detail this long after the session ends; after
 * that `participants_sessions` comes back empty while the totals remain (stream-api.md §8).
 */
export const STREAM_RETENTION_DAYS = 90;
export const DAY_MS = 86_400_000;

/** When Stream empties the detail of a session that ended at `endedAt`. */
export function retentionExpiresAt(endedAt: Date): Date {
  return new Date(endedAt.getTime() + STREAM_RETENTION_DAYS * DAY_MS);
}
