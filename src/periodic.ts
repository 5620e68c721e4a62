import { coerceError } from './errors.ts';

/** A job run once at start and then every interval; runs in one process never overlap. */
export interface PeriodicJob<T> {
  /** Runs now, after a run already going in this process (if any); rejects once stopped. */
  runNow(): Promise<T>;
  /** Aborts the run in progress (it ends at its next safe point), stops scheduling, waits for it. */
  stop(): Promise<void>;
}

export interface PeriodicOptions<T> {
  /** Between the end of one run and the start of the next; 0 runs only at start and on runNow. */
  readonly intervalMs: number;
  readonly run: (signal: AbortSignal) => Promise<T>;
  /** A scheduled run failed (runNow's caller gets its own rejection); not called once stopped. */
  readonly onScheduledFailure: (error: Error) => void;
  /** What runNow rejects with after stop. */
  readonly stoppedError: () => Error;
  /** The abort reason the run in progress sees on stop (default: the signal's own AbortError). */
  readonly abortReason?: () => Error;
}

/**
 * The schedule the sweep and the pruner share: counted from the end of the previous run, so a
 * slow run never overlaps the next; across replicas their advisory locks decide who works.
 */
export function startPeriodic<T>(options: PeriodicOptions<T>): PeriodicJob<T> {
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  let queue: Promise<unknown> = Promise.resolve();

  const runNext = (): Promise<T> => {
    const run = queue.then(() => options.run(controller.signal));
    queue = run.catch(() => undefined);
    return run;
  };

  const tick = () => {
    timer = undefined;
    runNext()
      .catch((error: unknown) => {
        if (!stopped) options.onScheduledFailure(coerceError(error));
      })
      .finally(() => {
        if (!stopped && options.intervalMs > 0) timer = setTimeout(tick, options.intervalMs);
      });
  };
  tick();

  return {
    runNow() {
      if (stopped) return Promise.reject(options.stoppedError());
      return runNext();
    },
    async stop() {
      if (!stopped) {
        stopped = true;
        if (timer) clearTimeout(timer);
        controller.abort(options.abortReason?.());
      }
      await queue;
    },
  };
}
