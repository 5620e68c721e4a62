import { MINUTE_MS } from '../time.ts';

/**
 * Every wait before trying again, in one place: one capped exponential schedule, one rule for
 * jitter, and the named policies each retry loop uses. Pure: the caller sleeps.
 *
 *   bound(attempt) = min(capMs, baseMs × 2^(attempt − 1))
 *   wait           = uniform in [low, bound], low = max(floor, bound × (1 − jitter)), floor = baseMs × floorShare
 *
 * Full jitter (jitter 1) is the rule: waiters that failed together (one Stream outage, one
 * restarted database) do not come back together. Where a place needs otherwise, its policy says
 * so in a field: the sweep keeps the upper half (a page is cheap and a blip short), the listener
 * and the rate limiter's fallback wait the bound itself (one waiter per process).
 */
export interface DelayPolicy {
  /** The bound after the first failure. */
  readonly baseMs: number;
  readonly capMs: number;
  /** Share of the bound left to chance: 1 (the default) full jitter, 0.5 the upper half, 0 none. */
  readonly jitter?: number;
  /** The least wait as a share of baseMs, so a retry is never immediate (default 0). */
  readonly floorShare?: number;
}

/** Milliseconds to wait after failure number `attempt` (1-based). */
export function retryDelayMs(policy: DelayPolicy, attempt: number, random: () => number = Math.random): number {
  const exponent = Math.min(Math.max(attempt, 1) - 1, 30);
  const bound = Math.min(policy.capMs, policy.baseMs * 2 ** exponent);
  const floor = policy.baseMs * (policy.floorShare ?? 0);
  const low = Math.min(bound, Math.max(floor, bound * (1 - (policy.jitter ?? 1))));
  // No draw when nothing is left to chance: callers with an injected sequence keep their order.
  return low === bound ? Math.round(bound) : Math.round(low + random() * (bound - low));
}

/** Waiting for a rate-limit window to reset (X-RateLimit-Reset). */
export interface ResetWaitPolicy {
  /** Stream's windows are one minute: a reset further away than this is clock skew, not a wait. */
  readonly maxWaitMs: number;
  /** Up to this much is added, so waiters do not all return in the same millisecond. */
  readonly jitterMs: number;
}

/** Until `resetAtMs` (never less than 0, never more than maxWaitMs), plus jitter. */
export function untilResetMs(resetAtMs: number, nowMs: number, policy: ResetWaitPolicy, random: () => number = Math.random): number {
  return Math.min(Math.max(resetAtMs - nowMs, 0), policy.maxWaitMs) + random() * policy.jitterMs;
}

/**
 * When a session that failed is tried again. "Not ready" (404 right after a call) gets the gentler
 * schedule: Stream's analytics pipeline takes seconds to minutes, and hammering it does not make
 * it faster. The reset wait applies after a 429.
 */
export interface BackoffPolicy extends DelayPolicy {
  readonly notReadyBaseMs: number;
  readonly notReadyCapMs: number;
  /** Added on top of X-RateLimit-Reset so waiters spread out. */
  readonly rateLimitJitterMs: number;
  /** The longest wait for a reset. */
  readonly maxResetWaitMs: number;
}

export type RetryKind = 'default' | 'not_ready';

/** The session's wait after attempt `attempt` failed, on the default or the not-ready schedule. */
export function sessionRetryDelayMs(
  attempt: number,
  kind: RetryKind,
  policy: BackoffPolicy = RETRY_POLICIES.session,
  random: () => number = Math.random,
): number {
  const schedule = kind === 'not_ready' ? { ...policy, baseMs: policy.notReadyBaseMs, capMs: policy.notReadyCapMs } : policy;
  return retryDelayMs(schedule, attempt, random);
}

/**
 * After a 429: at least until the rate-limit window resets, plus jitter; never less than the
 * ordinary backoff. `resetAt` null (no header) falls back to the ordinary backoff alone.
 */
export function rateLimitedDelayMs(
  attempt: number,
  resetAt: Date | null,
  now: number,
  policy: BackoffPolicy = RETRY_POLICIES.session,
  random: () => number = Math.random,
): number {
  const backoff = sessionRetryDelayMs(attempt, 'default', policy, random);
  if (resetAt === null) return backoff;
  return Math.max(backoff, untilResetMs(resetAt.getTime(), now, { maxWaitMs: policy.maxResetWaitMs, jitterMs: policy.rateLimitJitterMs }, random));
}

/**
 * In-process retries of one page request before the session is handed back: a flaky API should
 * not restart sessions constantly. 429s do not wait here: the shared limiter already holds every
 * request until the reset, so they only count against `rateLimitedRetries`.
 */
export interface PageRetryPolicy extends DelayPolicy {
  readonly retries: number;
  readonly rateLimitedRetries: number;
}

/** A retry loop that gives up after `attempts` tries in all, the first included. */
export interface AttemptsPolicy extends DelayPolicy {
  readonly attempts: number;
}

/**
 * The named policies, with their numbers:
 *
 *   session          5 s, 10 s, 20 s … 15 min cap, floor 1 s; full jitter
 *     not ready      30 s, 1 m, 2 m … 15 min cap, floor 6 s (with 10 attempts ≈ 40–75 min before dead)
 *     after a 429    until X-RateLimit-Reset (at most 65 s) + up to 5 s, never less than the backoff
 *   page             0.25 s, 0.5 s, 1 s, 2 s (4 s cap), 4 retries; full jitter
 *   sweep            1 s, 2 s, 4 s, 8 s in the upper half, 5 tries (≈15 s, then the next interval)
 *   listenerReconnect 0.5 s doubling to 30 s, no jitter
 *   streamProbe      5 s doubling to 5 min, floor 1 s; full jitter
 *   rateLimiter      a 429 the headers do not explain: 1 s doubling to the 60 s window, no jitter;
 *                    a reset: at most 65 s + up to 1 s
 */
export const RETRY_POLICIES = deepFreeze({
  session: {
    baseMs: 5_000,
    capMs: 15 * MINUTE_MS,
    floorShare: 0.2,
    notReadyBaseMs: 30_000,
    notReadyCapMs: 15 * MINUTE_MS,
    rateLimitJitterMs: 5_000,
    maxResetWaitMs: 65_000,
  } satisfies BackoffPolicy,
  page: { baseMs: 250, capMs: 4_000, retries: 4, rateLimitedRetries: 5 } satisfies PageRetryPolicy,
  sweep: { baseMs: 1_000, capMs: 8_000, jitter: 0.5, attempts: 5 } satisfies AttemptsPolicy,
  listenerReconnect: { baseMs: 500, capMs: 30_000, jitter: 0 } satisfies DelayPolicy,
  streamProbe: { baseMs: 5_000, capMs: 5 * MINUTE_MS, floorShare: 0.2 } satisfies DelayPolicy,
  rateLimiterFallback: { baseMs: 1_000, capMs: MINUTE_MS, jitter: 0 } satisfies DelayPolicy,
  rateLimiterReset: { maxWaitMs: 65_000, jitterMs: 1_000 } satisfies ResetWaitPolicy,
});

function deepFreeze<T extends Record<string, object>>(policies: T): Readonly<T> {
  for (const policy of Object.values(policies)) Object.freeze(policy);
  return Object.freeze(policies);
}
