import { setTimeout as delay } from 'node:timers/promises';
import { RETRY_POLICIES, retryDelayMs } from '../policy/retry.ts';
import { StreamApiError } from '../stream/errors.ts';

/** Tries and schedule of a call_stats request; the jitter is the sweep's (policy/retry.ts). */
export interface RetryPolicy {
  /** Tries in all, the first included. */
  readonly attempts: number;
  readonly baseDelayMs: number;
  readonly maxDelayMs: number;
}

/**
 * A sweep page is cheap to ask for again and the next sweep resumes from the stored cursor anyway,
 * so a few quick tries ride out a blip (1 s, 2 s, 4 s, 8 s with jitter: about 15 s in all) and a
 * longer outage is left to the next interval. Waiting out a 429 is the shared rate limiter's job:
 * it holds the next request until Stream's reset.
 */
export const SWEEP_RETRY_POLICY: RetryPolicy = {
  attempts: RETRY_POLICIES.sweep.attempts,
  baseDelayMs: RETRY_POLICIES.sweep.baseMs,
  maxDelayMs: RETRY_POLICIES.sweep.capMs,
};

export interface RetryOptions {
  readonly policy: RetryPolicy;
  readonly signal?: AbortSignal;
  /** Told before each wait, for logging. */
  readonly onRetry?: (error: StreamApiError, attempt: number, delayMs: number) => void;
  readonly random?: () => number;
  readonly sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

/** The wait after failed try `attempt`: the sweep's schedule (upper-half jitter) with these numbers. */
function backoffDelayMs(policy: RetryPolicy, attempt: number, random: () => number = Math.random): number {
  return retryDelayMs({ ...RETRY_POLICIES.sweep, baseMs: policy.baseDelayMs, capMs: policy.maxDelayMs }, attempt, random);
}

/**
 * Runs `fn`, trying again on StreamApiErrors marked retryable; anything else, or the last
 * failure, is thrown as it came. Stops waiting when `signal` aborts.
 */
export async function withStreamRetries<T>(fn: () => Promise<T>, options: RetryOptions): Promise<T> {
  const sleep = options.sleep ?? ((ms: number, signal?: AbortSignal) => delay(ms, undefined, { signal }));
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await fn();
    } catch (error) {
      if (!(error instanceof StreamApiError) || !error.retryable || attempt >= options.policy.attempts) throw error;
      options.signal?.throwIfAborted();
      const ms = backoffDelayMs(options.policy, attempt, options.random);
      options.onRetry?.(error, attempt, ms);
      await sleep(ms, options.signal);
    }
  }
}
