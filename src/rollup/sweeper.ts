import type { Database } from '../db/client.ts';
import { AppError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { startPeriodic } from '../periodic.ts';
import { sweepPendingRollups, type RollupSweepResult } from './refresh.ts';

/**
 * Every 15 s: the report tables trail the archive by at most that plus a sweep, and each sweep
 * refreshes the sessions that finished meanwhile in batches (rollup/refresh.ts says why).
 */
export const ROLLUP_SWEEP_INTERVAL_MS = 15_000;

export interface RollupSweeper {
  /** Sweeps now (after a sweep already going in this process, if any). */
  sweepNow(): Promise<RollupSweepResult>;
  stop(): Promise<void>;
}

/** Runs the rollup sweep (rollup/refresh.ts) at start and then every interval, where the worker runs. */
export function startRollupSweeper(options: {
  readonly database: Database;
  readonly logger: Logger;
  readonly intervalMs?: number;
  /** Called after each sweep that ran (for counters); must not throw. */
  readonly onSweep?: (result: RollupSweepResult) => void;
  /** Called when a scheduled sweep failed; must not throw. */
  readonly onFailure?: (error: Error) => void;
}): RollupSweeper {
  const log = options.logger.child({ component: 'rollups' });
  const job = startPeriodic({
    intervalMs: options.intervalMs ?? ROLLUP_SWEEP_INTERVAL_MS,
    run: async (signal) => {
      const startedAt = Date.now();
      const result = await sweepPendingRollups(options.database.pool, { signal });
      options.onSweep?.(result);
      if (result.sessions > 0) log.info({ sessions: result.sessions, batches: result.batches, ms: Date.now() - startedAt }, 'rollups refreshed');
      return result;
    },
    onScheduledFailure: (error) => {
      options.onFailure?.(error);
      log.error({ err: error }, 'rollup sweep failed; the views stay exact (they compute marked sessions from their rows), the report tables wait');
    },
    stoppedError: () => new AppError('ROLLUP_SWEEPER_STOPPED', 'the rollup sweeper has been stopped'),
  });
  return { sweepNow: job.runNow, stop: job.stop };
}
