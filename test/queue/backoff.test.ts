import { describe, expect, it } from 'vitest';
import { DEFAULT_BACKOFF, rateLimitedDelayMs, retryDelayMs } from '../../src/queue/backoff.ts';

const lowest = () => 0;
// The top of the range (Math.random never quite reaches it).
const highest = () => 1;

describe('retryDelayMs', () => {
  it('doubles the bound per attempt from 5 s and caps it at 15 minutes', () => {
    const bounds = [1, 2, 3, 4, 10, 30, 1000].map((attempt) => retryDelayMs(attempt, 'default', DEFAULT_BACKOFF, highest));
    expect(bounds.slice(0, 4)).toEqual([5_000, 10_000, 20_000, 40_000]);
    expect(bounds[4]).toBe(15 * 60_000);
    expect(bounds[5]).toBe(15 * 60_000);
    expect(bounds[6]).toBe(15 * 60_000);
  });

  it('jitters over the whole range down to a one-second floor', () => {
    expect(retryDelayMs(6, 'default', DEFAULT_BACKOFF, lowest)).toBe(1_000);
    const samples = Array.from({ length: 200 }, () => retryDelayMs(6, 'default'));
    expect(Math.min(...samples)).toBeGreaterThanOrEqual(1_000);
    expect(Math.max(...samples)).toBeLessThanOrEqual(160_000);
    expect(new Set(samples).size).toBeGreaterThan(100);
  });

  it('waits longer for a session that is not ready yet', () => {
    expect(retryDelayMs(1, 'not_ready', DEFAULT_BACKOFF, highest)).toBe(30_000);
    expect(retryDelayMs(1, 'not_ready', DEFAULT_BACKOFF, lowest)).toBe(6_000);
    expect(retryDelayMs(20, 'not_ready', DEFAULT_BACKOFF, highest)).toBe(15 * 60_000);
  });
});

describe('rateLimitedDelayMs', () => {
  const now = 1_800_000_000_000;

  it('waits at least until X-RateLimit-Reset, plus jitter', () => {
    const delay = rateLimitedDelayMs(1, new Date(now + 42_000), now, DEFAULT_BACKOFF, lowest);
    expect(delay).toBe(42_000);
    expect(rateLimitedDelayMs(1, new Date(now + 42_000), now, DEFAULT_BACKOFF, highest)).toBeLessThanOrEqual(47_000);
  });

  it('never waits less than the ordinary backoff, nor stalls on a reset far in the future', () => {
    expect(rateLimitedDelayMs(8, new Date(now + 1_000), now, DEFAULT_BACKOFF, highest)).toBeGreaterThanOrEqual(600_000);
    expect(rateLimitedDelayMs(1, new Date(now + 3_600_000), now, DEFAULT_BACKOFF, lowest)).toBe(65_000);
    expect(rateLimitedDelayMs(1, null, now, DEFAULT_BACKOFF, highest)).toBe(5_000);
  });
});
