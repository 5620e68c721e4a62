import type { Database } from '../db/client.ts';
import { readQueueStats, type QueueStats } from '../queue/stats.ts';
import { readSweepState } from '../reconcile/state.ts';
import { readRollupBacklog, type RollupBacklog } from '../rollup/refresh.ts';
import { readStreamHealth, type StreamHealth } from './stream-health.ts';

/** The last (or current) call_stats sweep, as `status` and /metrics report it. */
export interface SweepStatus {
  /** A sweep is part-way through its window (it resumes from its cursor). */
  readonly inProgress: boolean;
  readonly startedAt: Date | null;
  /** When the last sweep finished; null if none has. */
  readonly lastFinishedAt: Date | null;
  /** Why the last sweep ended early; null when it finished. */
  readonly lastError: string | null;
  /** The window of the sweep in progress, or of the last one. */
  readonly window: { readonly from: Date | null; readonly until: Date | null };
  /** In a sweep in progress: the latest session end committed so far. */
  readonly position: Date | null;
  /** Sessions that ended in [from, until] have been listed by finished sweeps. */
  readonly covered: { readonly from: Date | null; readonly until: Date | null };
  /** Rows of the sweep in progress, or of the last one. */
  readonly seen: number;
  readonly enqueued: number;
  readonly unusable: number;
  /** Unusable rows over every sweep and backfill. */
  readonly unusableTotal: number;
}

/** Everything `status --json` prints; the keys are documented in the README. */
export interface StatusReport extends QueueStats {
  readonly stream: StreamHealth;
  readonly sweep: SweepStatus | null;
  readonly rollups: RollupBacklog;
}

export async function readStatusReport(database: Database, listLimit: number): Promise<StatusReport> {
  const [stream, sweep, stats, rollups] = await Promise.all([
    readStreamHealth(database.pool),
    readSweepStatus(database),
    readQueueStats(database.pool, { listLimit }),
    readRollupBacklog(database.pool),
  ]);
  return { stream, sweep, ...stats, rollups };
}

export async function readSweepStatus(database: Database): Promise<SweepStatus | null> {
  const state = await readSweepState(database.pool);
  if (!state) return null;
  // A window that started after the last one finished is under way, or was cut off and resumes
  // from its cursor at the next sweep.
  const inProgress = state.sweepStartedAt !== null && (state.lastSweepAt === null || state.sweepStartedAt > state.lastSweepAt);
  return {
    inProgress,
    startedAt: state.sweepStartedAt,
    lastFinishedAt: state.lastSweepAt,
    lastError: state.lastError,
    window: { from: state.sweepFrom, until: inProgress ? state.sweepUntil : state.watermark },
    position: inProgress ? state.sweepPosition : null,
    covered: { from: state.coveredFrom, until: state.coveredFrom === null ? null : state.watermark },
    seen: state.sweepSeen,
    enqueued: state.sweepEnqueued,
    unusable: state.sweepUnusable,
    unusableTotal: state.unusableTotal,
  };
}
