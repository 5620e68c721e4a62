import { describe, expect, it } from 'vitest';
import { RETRY_POLICIES, rateLimitedDelayMs, retryDelayMs, sessionRetryDelayMs, untilResetMs, type DelayPolicy } from '../../src/policy/retry.ts';

const lowest = () => 0;
// The top of the range (Math.random never quite reaches it).
const highest = () => 1;
const P = RETRY_POLICIES;

describe('retryDelayMs: one formula, the named policies', () => {
  // [policy, attempt, random, expected ms]
  const rows: [string, DelayPolicy, number, () => number, number][] = [
    ['session, first failure, top', P.session, 1, highest, 5_000],
    ['session, first failure, floor', P.session, 1, lowest, 1_000],
    ['session, doubled', P.session, 4, highest, 40_000],
    ['session, capped at 15 min', P.session, 10, highest, 15 * 60_000],
    ['session, huge attempt does not overflow', P.session, 1_000, highest, 15 * 60_000],
    ['page, full jitter down to 0', P.page, 3, lowest, 0],
    ['page, 1 s on the third failure', P.page, 3, highest, 1_000],
    ['page, capped at 4 s', P.page, 9, highest, 4_000],
    ['sweep, upper half only', P.sweep, 1, lowest, 500],
    ['sweep, 8 s cap', P.sweep, 5, highest, 8_000],
    ['listener, no jitter', P.listenerReconnect, 3, lowest, 2_000],
    ['listener, capped at 30 s', P.listenerReconnect, 12, lowest, 30_000],
    ['probe, 5 min cap', P.streamProbe, 20, highest, 5 * 60_000],
    ['probe, floor 1 s', P.streamProbe, 4, lowest, 1_000],
    ['rate limiter fallback, 1 s doubling', P.rateLimiterFallback, 3, lowest, 4_000],
    ['rate limiter fallback, the one-minute window', P.rateLimiterFallback, 9, highest, 60_000],
  ];
  it.each(rows)('%s', (_name, policy, attempt, random, expected) => {
    expect(retryDelayMs(policy, attempt, random)).toBe(expected);
  });

  it('draws nothing when nothing is left to chance', () => {
    let draws = 0;
    retryDelayMs(P.listenerReconnect, 2, () => {
      draws += 1;
      return 0.5;
    });
    expect(draws).toBe(0);
  });

  it('keeps the upper half for a policy that says so (the sweep numbers the reconcile test pins)', () => {
    const policy = { baseMs: 100, capMs: 250, jitter: 0.5 };
    expect([1, 2, 3, 4].map((n) => retryDelayMs(policy, n, highest))).toEqual([100, 200, 250, 250]);
    expect([1, 2, 3, 4].map((n) => retryDelayMs(policy, n, lowest))).toEqual([50, 100, 125, 125]);
  });

  it('freezes the named policies', () => {
    expect(Object.isFrozen(P)).toBe(true);
    expect(Object.isFrozen(P.session)).toBe(true);
  });
});

describe('sessionRetryDelayMs', () => {
  it('doubles the bound per attempt from 5 s and caps it at 15 minutes', () => {
    const bounds = [1, 2, 3, 4, 10, 30, 1000].map((attempt) => sessionRetryDelayMs(attempt, 'default', P.session, highest));
    expect(bounds.slice(0, 4)).toEqual([5_000, 10_000, 20_000, 40_000]);
    expect(bounds[4]).toBe(15 * 60_000);
    expect(bounds[5]).toBe(15 * 60_000);
    expect(bounds[6]).toBe(15 * 60_000);
  });

  it('jitters over the whole range down to a one-second floor', () => {
    expect(sessionRetryDelayMs(6, 'default', P.session, lowest)).toBe(1_000);
    const samples = Array.from({ length: 200 }, () => sessionRetryDelayMs(6, 'default'));
    expect(Math.min(...samples)).toBeGreaterThanOrEqual(1_000);
    expect(Math.max(...samples)).toBeLessThanOrEqual(160_000);
    expect(new Set(samples).size).toBeGreaterThan(100);
  });

  it('waits longer for a session that is not ready yet', () => {
    expect(sessionRetryDelayMs(1, 'not_ready', P.session, highest)).toBe(30_000);
    expect(sessionRetryDelayMs(1, 'not_ready', P.session, lowest)).toBe(6_000);
    expect(sessionRetryDelayMs(20, 'not_ready', P.session, highest)).toBe(15 * 60_000);
  });
});

describe('untilResetMs', () => {
  const now = 1_800_000_000_000;
  const rows: [string, number, number, number][] = [
    ['until the reset', now + 42_000, 0, 42_000],
    ['plus up to the jitter', now + 42_000, 1, 43_000],
    ['a reset already past waits only the jitter', now - 5_000, 0, 0],
    ['a reset far away (clock skew) waits at most maxWaitMs', now + 3_600_000, 0, 65_000],
  ];
  it.each(rows)('%s', (_name, resetAt, draw, expected) => {
    expect(untilResetMs(resetAt, now, P.rateLimiterReset, () => draw)).toBe(expected);
  });
});

describe('rateLimitedDelayMs', () => {
  const now = 1_800_000_000_000;

  it('waits at least until X-RateLimit-Reset, plus jitter', () => {
    const delay = rateLimitedDelayMs(1, new Date(now + 42_000), now, P.session, lowest);
    expect(delay).toBe(42_000);
    expect(rateLimitedDelayMs(1, new Date(now + 42_000), now, P.session, highest)).toBeLessThanOrEqual(47_000);
  });

  it('never waits less than the ordinary backoff, nor stalls on a reset far in the future', () => {
    expect(rateLimitedDelayMs(8, new Date(now + 1_000), now, P.session, highest)).toBeGreaterThanOrEqual(600_000);
    expect(rateLimitedDelayMs(1, new Date(now + 3_600_000), now, P.session, lowest)).toBe(65_000);
    expect(rateLimitedDelayMs(1, null, now, P.session, highest)).toBe(5_000);
  });
});
