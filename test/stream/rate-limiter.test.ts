import { describe, expect, it } from 'vitest';
import { createRateLimiter } from '../../src/stream/rate-limiter.ts';

/** A limiter on a fake clock: sleeping advances time, so waits are measured, not waited. */
function withFakeClock(start = 1_800_000_000_000) {
  let now = start;
  const sleeps: number[] = [];
  const limiter = createRateLimiter({
    now: () => now,
    random: () => 0.5,
    sleep: async (ms, signal) => {
      signal?.throwIfAborted();
      sleeps.push(ms);
      now += ms;
    },
  });
  return {
    limiter,
    sleeps,
    get now() {
      return now;
    },
    advance(ms: number) {
      now += ms;
    },
    window(remaining: number, inMs: number, limit = 100) {
      return { limit, remaining, resetAt: new Date(now + inMs) };
    },
  };
}

describe('rate limiter', () => {
  it('lets requests through unpaced until it has seen the headers', async () => {
    const clock = withFakeClock();
    for (let i = 0; i < 5; i += 1) await clock.limiter.acquire();
    expect(clock.sleeps).toEqual([]);
  });

  it('spaces requests so the remaining budget lasts until the reset', async () => {
    const clock = withFakeClock();
    await clock.limiter.acquire();
    clock.limiter.observe(clock.window(10, 10_000), false);
    const grants: number[] = [];
    for (let i = 0; i < 10; i += 1) {
      await clock.limiter.acquire();
      grants.push(clock.now);
    }
    const gaps = grants.slice(1).map((t, i) => t - grants[i]!);
    // 10 requests over the 10 s left: about one per second, never a burst.
    for (const gap of gaps) expect(gap).toBeGreaterThanOrEqual(800);
    expect(grants.at(-1)! - grants[0]!).toBeLessThan(10_000);
    expect(clock.limiter.snapshot().remaining).toBe(0);
  });

  it('does not pace while more than half of the window is left', async () => {
    const clock = withFakeClock();
    clock.limiter.observe(clock.window(80, 30_000, 100), false);
    for (let i = 0; i < 30; i += 1) await clock.limiter.acquire();
    expect(clock.sleeps).toEqual([]);
    // Now at 50 of 100: from here on requests are spaced out.
    await clock.limiter.acquire();
    await clock.limiter.acquire();
    expect(clock.sleeps.length).toBeGreaterThan(0);
  });

  it('caps a single wait (a reset far away is a skewed clock)', async () => {
    let now = 0;
    const limiter = createRateLimiter({
      now: () => now,
      random: () => 0,
      maxWaitMs: 2_000,
      sleep: async (ms) => {
        now += ms;
      },
    });
    limiter.observe({ limit: 10, remaining: 0, resetAt: new Date(600_000) }, true);
    await limiter.acquire();
    expect(now).toBe(2_000);
  });

  it('waits for the reset once the budget is spent, then starts a fresh window', async () => {
    const clock = withFakeClock();
    const reset = clock.now + 5_000;
    clock.limiter.observe({ limit: 2, remaining: 1, resetAt: new Date(reset) }, false);
    await clock.limiter.acquire();
    await clock.limiter.acquire();
    expect(clock.now).toBeGreaterThanOrEqual(reset);
    expect(clock.limiter.snapshot().remaining).toBeNull();
  });

  it('after a 429 makes everyone wait until X-RateLimit-Reset', async () => {
    const clock = withFakeClock();
    const reset = clock.now + 30_000;
    clock.limiter.observe({ limit: 100, remaining: 0, resetAt: new Date(reset) }, true);
    expect(clock.limiter.snapshot().pausedUntil?.getTime()).toBe(reset);
    await Promise.all([clock.limiter.acquire(), clock.limiter.acquire(), clock.limiter.acquire()]);
    expect(clock.now).toBeGreaterThanOrEqual(reset);
  });

  it('backs off briefly on a 429 whose headers still show budget, never past the reset', async () => {
    // Regression: a 429 with budget left used to park every request of the process until the
    // window's reset (up to a minute each time); under 10% such 429s archiving almost stopped.
    const clock = withFakeClock();
    const reset = clock.now + 50_000;
    clock.limiter.observe({ limit: 1_000, remaining: 900, resetAt: new Date(reset) }, true);
    expect(clock.limiter.snapshot().pausedUntil!.getTime() - clock.now).toBe(1_000);
    await clock.limiter.acquire();
    expect(clock.now).toBeLessThan(reset - 40_000);
    clock.limiter.observe({ limit: 1_000, remaining: 899, resetAt: new Date(reset) }, true);
    expect(clock.limiter.snapshot().pausedUntil!.getTime() - clock.now).toBe(2_000);
    // A success in between starts the backoff over.
    clock.limiter.observe({ limit: 1_000, remaining: 898, resetAt: new Date(reset) }, false);
    clock.limiter.observe({ limit: 1_000, remaining: 897, resetAt: new Date(reset) }, true);
    expect(clock.limiter.snapshot().pausedUntil!.getTime() - clock.now).toBe(2_000);
    // Repeated 429s escalate, but never wait past the reset.
    for (let i = 0; i < 8; i += 1) clock.limiter.observe({ limit: 1_000, remaining: 897, resetAt: new Date(reset) }, true);
    expect(clock.limiter.snapshot().pausedUntil!.getTime()).toBe(reset);
  });

  it('backs off exponentially on 429s that carry no reset header', async () => {
    const clock = withFakeClock();
    clock.limiter.observe(null, true);
    const first = clock.limiter.snapshot().pausedUntil!.getTime() - clock.now;
    clock.limiter.observe(null, true);
    const second = clock.limiter.snapshot().pausedUntil!.getTime() - clock.now;
    expect(first).toBe(1_000);
    expect(second).toBe(2_000);
  });

  it('keeps the lower of its own count and the header within one window', async () => {
    const clock = withFakeClock();
    const window = clock.window(50, 60_000);
    clock.limiter.observe(window, false);
    await clock.limiter.acquire();
    await clock.limiter.acquire();
    // A late answer still reporting 50 does not give back the two requests already sent.
    clock.limiter.observe({ ...window, remaining: 50 }, false);
    expect(clock.limiter.snapshot().remaining).toBe(48);
  });

  it('ignores a reset in the past (a skewed clock) instead of pausing', async () => {
    const clock = withFakeClock();
    clock.limiter.observe({ limit: 10, remaining: 0, resetAt: new Date(clock.now - 5_000) }, false);
    await clock.limiter.acquire();
    expect(clock.sleeps).toEqual([]);
  });

  it('gives up waiting when the caller aborts, without blocking the next caller', async () => {
    let now = 0;
    const limiter = createRateLimiter({
      now: () => now,
      sleep: (ms, signal) =>
        new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => {
            now += ms;
            resolve();
          }, 5);
          signal?.addEventListener('abort', () => {
            clearTimeout(timer);
            reject(signal.reason);
          });
        }),
    });
    limiter.observe({ limit: 1, remaining: 0, resetAt: new Date(60_000) }, true);
    const controller = new AbortController();
    const waiting = limiter.acquire(controller.signal);
    controller.abort(new Error('lease lost'));
    await expect(waiting).rejects.toThrow('lease lost');
    await limiter.acquire();
    expect(now).toBeGreaterThanOrEqual(60_000);
  });

  it('tryAcquire takes a turn at once only when acquire would not wait', async () => {
    const clock = withFakeClock();
    // No window seen yet, then plenty of budget left: granted, and counted.
    expect(clock.limiter.tryAcquire()).toBe(true);
    clock.limiter.observe(clock.window(80, 30_000, 100), false);
    expect(clock.limiter.tryAcquire()).toBe(true);
    expect(clock.limiter.snapshot().remaining).toBe(79);
    // Half the limit or less: pacing applies, so the caller must go through acquire.
    clock.limiter.observe(clock.window(50, 30_000, 100), false);
    expect(clock.limiter.tryAcquire()).toBe(false);
    expect(clock.limiter.snapshot().remaining).toBe(50);
    // A window that is over is forgotten: unpaced again.
    clock.advance(31_000);
    expect(clock.limiter.tryAcquire()).toBe(true);
    // A pause after a 429 holds everyone, tryAcquire included.
    clock.limiter.observe(null, true);
    expect(clock.limiter.tryAcquire()).toBe(false);
    expect(clock.sleeps).toEqual([]);
  });

  it('tryAcquire never jumps ahead of callers queued in acquire', async () => {
    let now = 0;
    let wake: (() => void) | undefined;
    const limiter = createRateLimiter({
      now: () => now,
      random: () => 0,
      sleep: (ms) =>
        new Promise<void>((resolve) => {
          wake = () => {
            now += ms;
            resolve();
          };
        }),
    });
    limiter.observe(null, true);
    const queued = limiter.acquire();
    await Promise.resolve();
    // The pause is over by the clock, but a caller is still queued: it goes first.
    now += 60_000;
    expect(limiter.tryAcquire()).toBe(false);
    wake?.();
    await queued;
    expect(limiter.tryAcquire()).toBe(true);
  });
});
