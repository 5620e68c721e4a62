import { setTimeout as delay } from 'node:timers/promises';
import { RETRY_POLICIES, retryDelayMs, untilResetMs, type ResetWaitPolicy } from '../policy/retry.ts';
import type { RateLimitInfo } from './errors.ts';

/**
 * One per process, shared by every session being paged: Stream counts its limit per app,
 * platform and endpoint (docs/stream-api.md §4), so several workers in one process spend one budget.
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

// While more than this share of the window's limit is left, requests are not spaced out: a small
// job finishes at full speed, and pacing starts once the budget could actually run out (other
// replicas of this service spend the same budget, and the header tells us so).
const UNPACED_SHARE = 0.5;

/** The latest window as this process knows it; one per limiter, changed only by the functions below. */
interface LimiterState {
  resetAt: number | null;
  remaining: number | null;
  limit: number | null;
  lastGrantAt: number;
  pausedUntil: number;
  consecutiveRateLimited: number;
}

interface LimiterDeps {
  readonly now: () => number;
  readonly sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
  readonly random: () => number;
  readonly resetWait: ResetWaitPolicy;
}

/**
 * Strategy: remember the latest window (reset time and remaining budget, counted down locally as
 * requests go out, since the header lags behind requests still in flight) and space requests so
 * the budget lasts until the reset: interval = time to reset / (remaining + 1), once no more than
 * half the window's limit is left. A 429 on a spent window pauses everyone until the reset
 * (plus jitter); a 429 the headers do not explain pauses everyone with exponential backoff. With
 * no headers seen yet, requests go out unpaced.
 */
export function createRateLimiter(options: RateLimiterOptions = {}): RateLimiter {
  const deps: LimiterDeps = {
    now: options.now ?? Date.now,
    sleep: options.sleep ?? ((ms: number, signal?: AbortSignal) => delay(ms, undefined, { signal })),
    random: options.random ?? Math.random,
    // A reset further away than maxWaitMs means a skewed clock: waiting for it would stall the
    // worker for nothing. After a 429 every waiter adds some jitter, so they do not all arrive at once.
    resetWait: {
      maxWaitMs: options.maxWaitMs ?? RETRY_POLICIES.rateLimiterReset.maxWaitMs,
      jitterMs: options.resetJitterMs ?? RETRY_POLICIES.rateLimiterReset.jitterMs,
    },
  };
  const state: LimiterState = { resetAt: null, remaining: null, limit: null, lastGrantAt: -Infinity, pausedUntil: 0, consecutiveRateLimited: 0 };
  // Turns are taken one at a time, so two callers never both spend the last unit of budget.
  let queue: Promise<void> = Promise.resolve();
  // Turns taken through acquire that have not finished; while any has not, tryAcquire declines.
  let queued = 0;

  return {
    acquire(signal) {
      const previous = queue;
      queued += 1;
      const turn = (async () => {
        try {
          await waitOrAbort(previous, signal);
          await takeTurn(state, deps, signal);
        } finally {
          queued -= 1;
        }
      })();
      queue = turn.catch(() => undefined);
      return turn;
    },
    tryAcquire() {
      if (queued > 0) return false;
      const at = deps.now();
      if (state.pausedUntil > at || pacedWindow(state, at) !== null) return false;
      grant(state, deps.now());
      return true;
    },
    observe: (info, rateLimited) => observeAnswer(state, info, rateLimited, deps.now()),
    snapshot() {
      return {
        remaining: state.remaining,
        resetAt: state.resetAt === null ? null : new Date(state.resetAt),
        pausedUntil: state.pausedUntil > deps.now() ? new Date(state.pausedUntil) : null,
      };
    },
  };
}

/**
 * The window that requests must be spaced within, or null while they need no spacing (no window
 * known, or more than half its limit left). Forgets a window that is over.
 */
function pacedWindow(state: LimiterState, at: number): { readonly resetAt: number; readonly remaining: number } | null {
  if (state.resetAt !== null && state.resetAt <= at) forgetWindow(state);
  const { resetAt, remaining, limit } = state;
  if (resetAt === null || remaining === null) return null;
  if (remaining > 0 && limit !== null && remaining > limit * UNPACED_SHARE) return null;
  return { resetAt, remaining };
}

function forgetWindow(state: LimiterState): void {
  state.resetAt = null;
  state.remaining = null;
}

function grant(state: LimiterState, at: number): void {
  state.lastGrantAt = at;
  if (state.remaining !== null) state.remaining -= 1;
}

/** Waits until this caller may send: out a pause, out a spent window, or its slot in a paced one. */
async function takeTurn(state: LimiterState, deps: LimiterDeps, signal: AbortSignal | undefined): Promise<void> {
  const { now, sleep, random, resetWait } = deps;
  for (;;) {
    signal?.throwIfAborted();
    const at = now();
    if (state.pausedUntil > at) {
      const wait = untilResetMs(state.pausedUntil, at, resetWait, random);
      // Never wait past the cap twice for one pause: a skewed reset must not stall us.
      state.pausedUntil = Math.min(state.pausedUntil, at + resetWait.maxWaitMs);
      await sleep(wait, signal);
      if (now() >= state.pausedUntil) {
        // The pause ran until the reset (or the cap): that window is over, start afresh.
        state.pausedUntil = 0;
        forgetWindow(state);
      }
      continue;
    }
    const window = pacedWindow(state, at);
    if (window === null) break;
    if (window.remaining <= 0) {
      const wait = untilResetMs(window.resetAt, at, resetWait, random);
      state.resetAt = Math.min(window.resetAt, at + resetWait.maxWaitMs);
      await sleep(wait, signal);
      continue;
    }
    // remaining + 1 slots: the last request goes out before the reset, not on it.
    const earliest = state.lastGrantAt + (window.resetAt - at) / (window.remaining + 1);
    if (earliest <= at) break;
    await sleep(Math.min(earliest - at, resetWait.maxWaitMs), signal);
  }
  grant(state, now());
}

function observeAnswer(state: LimiterState, info: RateLimitInfo | null, rateLimited: boolean, at: number): void {
  const reset = info?.resetAt.getTime() ?? null;
  const current = info !== null && reset !== null && reset > at;
  if (current) {
    // The server's count only falls within one window; ours may be lower because of
    // requests it has not seen yet.
    if (state.resetAt === reset && state.remaining !== null) state.remaining = Math.min(state.remaining, info.remaining);
    else state.remaining = info.remaining;
    state.resetAt = reset;
    state.limit = info.limit;
  }
  if (!rateLimited) {
    state.consecutiveRateLimited = 0;
    return;
  }
  state.consecutiveRateLimited += 1;
  // A 429 without X-RateLimit-Reset: back off 1 s, 2 s, 4 s … up to the window length.
  const backoff = at + retryDelayMs(RETRY_POLICIES.rateLimiterFallback, state.consecutiveRateLimited);
  if (current) {
    // A 429 while the headers still show budget left is not explained by the window (Stream
    // lowers limits under load): waiting for its reset, up to a minute for every request of
    // the process, would be a guess. Back off 1 s, 2 s, 4 s … instead, never past the reset;
    // repeated 429s reach it within a few rounds. A spent window is waited out in full.
    state.pausedUntil = Math.max(state.pausedUntil, info.remaining === 0 ? reset : Math.min(backoff, reset));
  } else {
    state.pausedUntil = Math.max(state.pausedUntil, backoff);
    if (state.resetAt !== null) state.remaining = 0;
  }
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
