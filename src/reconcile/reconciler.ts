import type { Database } from '../db/client.ts';
import { AppError } from '../errors.ts';
import { startPeriodic } from '../periodic.ts';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics.ts';
import type { StreamClient } from '../stream/client.ts';
import type { RetryPolicy } from './retry.ts';
import { MINUTE_MS } from '../time.ts';
import { runSweep, type SweepResult } from './sweep.ts';

export type { SweepResult } from './sweep.ts';

export interface ReconcilerOptions {
  readonly database: Database;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly stream: StreamClient;
  /** Minutes between sweeps; 0 sweeps only at start and on sweepNow(). */
  readonly intervalMinutes: number;
  /** How far back the first sweep of an empty archive looks. */
  readonly lookbackDays: number;
  /** Each window starts this long before the stored watermark; default 60. */
  readonly overlapMinutes?: number;
  readonly retry?: RetryPolicy;
  /** Rows per call_stats page; default (and maximum) 100. */
  readonly pageLimit?: number;
  readonly now?: () => Date;
}

export interface Reconciler {
  /** Ends the sweep in progress after its current page commits, and stops scheduling. */
  stop(): Promise<void>;
  /** Sweeps now (after a sweep already running in this process, if any). */
  sweepNow(): Promise<SweepResult>;
}

/**
 * Sweeps once at start, then every `intervalMinutes`, counted from the end of the previous
 * sweep so a slow sweep never overlaps the next one. Across replicas the advisory lock in
 * runSweep decides who sweeps; the others skip until their next turn.
 */
export function startReconciler(options: ReconcilerOptions): Reconciler {
  const log = options.logger.child({ component: 'reconciler' });
  const job = startPeriodic({
    intervalMs: options.intervalMinutes * MINUTE_MS,
    run: (signal) =>
      runSweep({
        database: options.database,
        logger: options.logger,
        metrics: options.metrics,
        stream: options.stream,
        lookbackDays: options.lookbackDays,
        overlapMinutes: options.overlapMinutes,
        retry: options.retry,
        pageLimit: options.pageLimit,
        now: options.now,
        signal,
      }),
    onScheduledFailure: (error) => log.error({ err: error }, 'sweep could not run'),
    stoppedError: () => new AppError('RECONCILER_STOPPED', 'the reconciler has been stopped'),
    abortReason: () => new AppError('RECONCILER_STOPPED', 'the reconciler is stopping'),
  });
  return { sweepNow: job.runNow, stop: job.stop };
}
