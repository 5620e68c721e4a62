import type { RetentionConfig } from '../config.ts';
import type { Database } from '../db/client.ts';
import { AppError, coerceError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { startPeriodic } from '../periodic.ts';
import { MINUTE_MS } from '../time.ts';
import { runPrune, type PruneResult } from './prune.ts';

/** Hourly: the inbox gains at most an hour of events past its retention, in batches of seconds. */
export const PRUNE_INTERVAL_MINUTES = 60;

export interface PrunerOptions {
  readonly database: Database;
  readonly logger: Logger;
  readonly retention: RetentionConfig;
  /** Minutes between runs, counted from the end of the previous one; default PRUNE_INTERVAL_MINUTES. */
  readonly intervalMinutes?: number;
  readonly batchRows?: number;
  readonly pauseMs?: number;
  /**
   * Called once per run, scheduled or pruneNow, after it ends: the place for counters, so a prune
   * that keeps failing shows beyond its log line. Must not throw.
   */
  readonly onRun?: (run: PruneRun) => void;
}

/** How one run ended: `result` unless it failed, `error` when it did. */
export type PruneRun =
  | { readonly outcome: 'done' | 'interrupted' | 'skipped_locked'; readonly result: PruneResult; readonly ms: number }
  | { readonly outcome: 'error'; readonly error: Error; readonly ms: number };

export function pruneOutcome(result: PruneResult): 'done' | 'interrupted' | 'skipped_locked' {
  if (!result.ran) return 'skipped_locked';
  return result.interrupted ? 'interrupted' : 'done';
}

export interface Pruner {
  /** Runs now (after a run already going in this process, if any). */
  pruneNow(): Promise<PruneResult>;
  /** Ends the run in progress after its current batch commits, and stops scheduling. */
  stop(): Promise<void>;
}

/**
 * Prunes once at start, then every `intervalMinutes` after the previous run ended, so a long
 * first run never overlaps the next. Across replicas the advisory lock in runPrune decides who
 * prunes; the others skip until their next turn.
 */
export function startPruner(options: PrunerOptions): Pruner {
  const log = options.logger.child({ component: 'pruner' });
  const prune = async (signal: AbortSignal): Promise<PruneResult> => {
    const startedAt = Date.now();
    let result: PruneResult;
    try {
      result = await runPrune(options.database, { retention: options.retention, batchRows: options.batchRows, pauseMs: options.pauseMs, signal });
    } catch (error) {
      options.onRun?.({ outcome: 'error', error: coerceError(error), ms: Date.now() - startedAt });
      throw error;
    }
    const ms = Date.now() - startedAt;
    options.onRun?.({ outcome: pruneOutcome(result), result, ms });
    if (!result.ran) log.debug('another process is pruning; skipped');
    else if (result.webhookEvents + result.participantSessions + result.streamResponses > 0 || result.interrupted) {
      const { ran: _ran, ...counts } = result;
      log.info({ ...counts, ms }, 'pruned');
    }
    return result;
  };
  const job = startPeriodic({
    intervalMs: (options.intervalMinutes ?? PRUNE_INTERVAL_MINUTES) * MINUTE_MS,
    run: prune,
    onScheduledFailure: (error) => log.error({ err: error }, 'prune could not run'),
    stoppedError: () => new AppError('PRUNER_STOPPED', 'the pruner has been stopped'),
  });
  return { pruneNow: job.runNow, stop: job.stop };
}
