/**
 * When a session that failed is tried again. Full jitter (a uniformly random wait up to the
 * exponential bound) so sessions that failed together, during one Stream outage, do not all come
 * back together; a small floor so a retry is never immediate.
 *
 *   attempt:      1     2     3     4      5      6      7       8+
 *   default:     5 s  10 s  20 s  40 s   80 s  160 s  320 s  … 15 min cap
 *   not ready:  30 s   1 m   2 m   4 m    8 m   15 m (cap)
 *
 * "Not ready" (404 right after a call) gets the gentler schedule: Stream's analytics pipeline
 * takes seconds to minutes, and hammering it does not make it faster. With the default attempt
 * limit of 10 that is roughly 40–75 minutes of waiting before a 404 session is declared dead.
 */
export interface BackoffPolicy {
  readonly baseMs: number;
  readonly capMs: number;
  readonly notReadyBaseMs: number;
  readonly notReadyCapMs: number;
  /** Added on top of X-RateLimit-Reset so waiters spread out. */
  readonly rateLimitJitterMs: number;
  /** The longest wait for a reset: Stream's windows are one minute, so further away is clock skew. */
  readonly maxResetWaitMs: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = {
  baseMs: 5_000,
  capMs: 15 * 60_000,
  notReadyBaseMs: 30_000,
  notReadyCapMs: 15 * 60_000,
  rateLimitJitterMs: 5_000,
  maxResetWaitMs: 65_000,
};

export type RetryKind = 'default' | 'not_ready';

/** Milliseconds to wait before attempt `attempt + 1`, after attempt `attempt` (1-based) failed. */
export function retryDelayMs(attempt: number, kind: RetryKind, policy: BackoffPolicy = DEFAULT_BACKOFF, random: () => number = Math.random): number {
  const base = kind === 'not_ready' ? policy.notReadyBaseMs : policy.baseMs;
  const cap = kind === 'not_ready' ? policy.notReadyCapMs : policy.capMs;
  const exponent = Math.min(Math.max(attempt, 1) - 1, 30);
  const bound = Math.min(cap, base * 2 ** exponent);
  const floor = Math.min(bound, base / 5);
  return Math.round(floor + random() * (bound - floor));
}

/**
 * After a 429: at least until the rate-limit window resets, plus jitter; never less than the
 * ordinary backoff. `resetAt` null (no header) falls back to the ordinary backoff alone.
 */
export function rateLimitedDelayMs(
  attempt: number,
  resetAt: Date | null,
  now: number,
  policy: BackoffPolicy = DEFAULT_BACKOFF,
  random: () => number = Math.random,
): number {
  const backoff = retryDelayMs(attempt, 'default', policy, random);
  if (resetAt === null) return backoff;
  const untilReset = Math.min(Math.max(resetAt.getTime() - now, 0), policy.maxResetWaitMs);
  return Math.max(backoff, untilReset + random() * policy.rateLimitJitterMs);
}
