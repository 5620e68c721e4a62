/** What the X-RateLimit-* headers say about the current window. */
export interface RateWindow {
  readonly limit: number;
  readonly remaining: number;
  /** Epoch seconds when the window ends (docs/stream-api.md §4). */
  readonly resetSeconds: number;
  /** True when this request is past the limit. */
  readonly exceeded: boolean;
}

export interface RateWindows {
  /** Counts one request against `endpoint` and reports its window. */
  hit(endpoint: string): RateWindow;
  /** The window without counting. */
  peek(endpoint: string): RateWindow;
}

const WINDOW_MS = 60_000;

/**
 * Fixed one-minute windows per endpoint, like Stream's per-endpoint server-side limits: the
 * simulated server's count, not the product's client-side limiter (src/stream/rate-limiter.ts).
 * `limitPerMinute` is read on every call so it can be changed while running.
 */
export function createRateWindows(options: { now: () => Date; limitPerMinute: () => number }): RateWindows {
  const windows = new Map<string, { start: number; count: number }>();

  const current = (endpoint: string, count: boolean): RateWindow => {
    const nowMs = options.now().getTime();
    const start = Math.floor(nowMs / WINDOW_MS) * WINDOW_MS;
    let window = windows.get(endpoint);
    if (!window || window.start !== start) {
      window = { start, count: 0 };
      windows.set(endpoint, window);
    }
    if (count) window.count++;
    const limit = options.limitPerMinute();
    return {
      limit,
      remaining: Math.max(0, limit - window.count),
      resetSeconds: (start + WINDOW_MS) / 1000,
      exceeded: window.count > limit,
    };
  };

  return { hit: (endpoint) => current(endpoint, true), peek: (endpoint) => current(endpoint, false) };
}
