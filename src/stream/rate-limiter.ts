import { setTimeout as delay } from 'node:timers/promises';
import type { RateLimitInfo } from './errors.ts';

/**
 * One per process, shared by every session being paged: Stream counts its limit per app,
 * platform and endpoint (stream-api.md §4), so several workers in one process spend one budget.
 */
export interface RateLimiter {
  /** Resolves when this caller may send one request; rejects if `signal` aborts first. */
  acquire(signal?: AbortSignal): Promise<void>;
  /**
   * Takes a turn at once when nobody is queued and the window asks for no pacing; false otherwise
   * (then call acquire). It spares the common case the trip through the promise queue, which on a
   * busy event loop let a request wait behind the caller's other synchronous work.
   */
  tryAcquire(): boolean;
  /** What an answer said: its X-RateLimit-* headers (null if absent) and whether it was a 429. */
  observe(info: RateLimitInfo | null, rateLimited: boolean): void;
  /** For logs and tests. */
  snapshot(): RateLimiterSnapshot;
}

export interface RateLimiterSnapshot {
  readonly remaining: number | null;
  readonly resetAt: Date | null;
  readonly pausedUntil: Date | null;
}

export interface RateLimiterOptions {
  readonly now?: () => number;
  readonly sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  readonly random?: () => number;
  /** Longest single wait (default 65 s, just over Stream's one-minute window). */
  readonly maxWaitMs?: number;
  /** Up to this much is added to a wait for the reset (default 1 s). */
  readonly resetJitterMs?: number;
}

// Stream's windows are one minute long; a reset further away than this means a skewed clock,
// and waiting for it would stall the worker for nothing.
const MAX_WAIT_MS = 65_000;
// After a 429 every waiter adds up to this much, so they do not all arrive in the same millisecond.
const RESET_JITTER_MS = 1_000;
// While more than this share of the window's limit is left, requests are not spaced out: a small
// job finishes at full speed, and pacing starts once the budget could actually run out (other
// replicas of this service spend the same budget, and the header tells us so).
const UNPACED_SHARE = 0.5;
// A 429 without X-RateLimit-Reset: back off 1 s, 2 s, 4 s … up to the window length.
const FALLBACK_PAUSE_BASE_MS = 1_000;

/**
 * Strategy: remember the latest window (reset time and remaining budget, counted down locally as
 * requests go out, since the header lags behind requests still in flight) and space requests so
 * the budget lasts until the reset: interval = time to reset / (remaining + 1), once no more than
 * half the window's limit is left. A 429 on a spent window pauses everyone until the reset
 * (plus jitter); a 429 the headers do not explain pauses everyone with exponential backoff. With no headers seen yet, requests go out unpaced.
 */
export function createRateLimiter(options: RateLimiterOptions = {}): RateLimiter {
  const now = options.now ?? Date.now;
  const sleep = options.sleep ?? ((ms: number, signal?: AbortSignal) => delay(ms, undefined, { signal }));
  const random = options.random ?? Math.random;
  const maxWaitMs = options.maxWaitMs ?? MAX_WAIT_MS;
  const jitterMs = options.resetJitterMs ?? RESET_JITTER_MS;

  let resetAt: number | null = null;
  let remaining: number | null = null;
  let limit: number | null = null;
  let lastGrantAt = -Infinity;
  let pausedUntil = 0;
  let consecutiveRateLimited = 0;
  // Turns are taken one at a time, so two callers never both spend the last unit of budget.
  let queue: Promise<void> = Promise.resolve();
  // Turns taken through acquire that have not finished; while any has not, tryAcquire declines.
  let queued = 0;

  /**
   * The window that requests must be spaced within, or null while they need no spacing (no window
   * known, or more than half its limit left). Forgets a window that is over.
   */
  function pacedWindow(at: number): { readonly resetAt: number; readonly remaining: number } | null {
    if (resetAt !== null && resetAt <= at) {
      resetAt = null;
      remaining = null;
    }
    if (resetAt === null || remaining === null) return null;
    if (remaining > 0 && limit !== null && remaining > limit * UNPACED_SHARE) return null;
    return { resetAt, remaining };
  }

  function grant(): void {
    lastGrantAt = now();
    if (remaining !== null) remaining -= 1;
  }

  async function takeTurn(signal: AbortSignal | undefined): Promise<void> {
    for (;;) {
      signal?.throwIfAborted();
      const at = now();
      if (pausedUntil > at) {
        const wait = Math.min(pausedUntil - at, maxWaitMs) + random() * jitterMs;
        // Never wait past the cap twice for one pause: a skewed reset must not stall us.
        pausedUntil = Math.min(pausedUntil, at + maxWaitMs);
        await sleep(wait, signal);
        if (now() >= pausedUntil) {
          // The pause ran until the reset (or the cap): that window is over, start afresh.
          pausedUntil = 0;
          resetAt = null;
          remaining = null;
        }
        continue;
      }
      const window = pacedWindow(at);
      if (window === null) break;
      if (window.remaining <= 0) {
        const wait = Math.min(window.resetAt - at, maxWaitMs);
        resetAt = Math.min(window.resetAt, at + maxWaitMs);
        await sleep(wait + random() * jitterMs, signal);
        continue;
      }
      // remaining + 1 slots: the last request goes out before the reset, not on it.
      const earliest = lastGrantAt + (window.resetAt - at) / (window.remaining + 1);
      if (earliest <= at) break;
      await sleep(Math.min(earliest - at, maxWaitMs), signal);
    }
    grant();
  }

  return {
    acquire(signal) {
      const previous = queue;
      queued += 1;
      const turn = (async () => {
        try {
          await waitOrAbort(previous, signal);
          await takeTurn(signal);
        } finally {
          queued -= 1;
        }
      })();
      queue = turn.catch(() => undefined);
      return turn;
    },

    tryAcquire() {
      if (queued > 0) return false;
      const at = now();
      if (pausedUntil > at || pacedWindow(at) !== null) return false;
      grant();
      return true;
    },

    observe(info, rateLimited) {
      const at = now();
      const reset = info?.resetAt.getTime() ?? null;
      if (info && reset !== null && reset > at) {
        // The server's count only falls within one window; ours may be lower because of
        // requests it has not seen yet.
        if (resetAt === reset && remaining !== null) remaining = Math.min(remaining, info.remaining);
        else remaining = info.remaining;
        resetAt = reset;
        limit = info.limit;
      }
      if (rateLimited) {
        consecutiveRateLimited += 1;
        const backoff = at + Math.min(FALLBACK_PAUSE_BASE_MS * 2 ** (consecutiveRateLimited - 1), 60_000);
        if (info !== null && reset !== null && reset > at) {
          // A 429 while the headers still show budget left is not explained by the window (Stream
          // lowers limits under load): waiting for its reset, up to a minute for every request of
          // the process, would be a guess. Back off 1 s, 2 s, 4 s … instead, never past the reset;
          // repeated 429s reach it within a few rounds. A spent window is waited out in full.
          pausedUntil = Math.max(pausedUntil, info.remaining === 0 ? reset : Math.min(backoff, reset));
        } else {
          pausedUntil = Math.max(pausedUntil, backoff);
          if (resetAt !== null) remaining = 0;
        }
      } else {
        consecutiveRateLimited = 0;
      }
    },

    snapshot() {
      return {
        remaining,
        resetAt: resetAt === null ? null : new Date(resetAt),
        pausedUntil: pausedUntil > now() ? new Date(pausedUntil) : null,
      };
    },
  };
}

function waitOrAbort(promise: Promise<void>, signal: AbortSignal | undefined): Promise<void> {
  if (!signal) return promise;
  signal.throwIfAborted();
  return new Promise<void>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      () => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}
