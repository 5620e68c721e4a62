import type { Database } from '../db/client.ts';
import { SESSION_STATUSES, STREAM_HEALTH_STATES } from '../db/schema.ts';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics.ts';
import { readStatusReport, type StatusReport } from './status-report.ts';

/**
 * Scrapes every 15–60 s are usual; refreshing as often keeps the gauges as fresh as a scrape-time
 * read was, at one status report per interval per process whatever the scrape rate.
 */
export const GAUGE_REFRESH_INTERVAL_MS = 15_000;

export interface GaugeRefresher {
  /** Reads the status report once and sets the gauges; false (and a warning) when the database failed. */
  refresh(): Promise<boolean>;
  stop(): Promise<void>;
}

/**
 * Keeps the queue gauges of /metrics (sessions by status, at risk, oldest due, Stream health, the
 * sweep) up to date from the database on an interval, so a scrape reads memory only. Reading them
 * on each scrape let 600 unauthenticated /metrics requests (each two scans of call_sessions,
 * 0.22–0.29 s at 1M rows) take every connection from intake (issue 15). A failed refresh keeps the
 * last values; `attendance_queue_gauges_refreshed_timestamp_seconds` shows how old they are.
 */
export function startGaugeRefresher(options: { database: Database; metrics: Metrics; logger: Logger; intervalMs?: number }): GaugeRefresher {
  const { database, metrics, logger } = options;
  let running: Promise<boolean> | undefined;
  let next: Promise<boolean> | undefined;
  let stopped = false;

  const readOnce = async (): Promise<boolean> => {
    try {
      // The same report `status` prints (lists cut to nothing): what the service cannot do shows here too.
      setQueueGauges(metrics, await readStatusReport(database, 0));
      metrics.queueGaugesRefreshed.set(Date.now() / 1000);
      metrics.invalidateRendering();
      return true;
    } catch (error) {
      logger.warn({ err: error }, 'queue gauges not refreshed');
      return false;
    }
  };
  // One read at a time, so a slow database cannot pile reads up; a caller arriving during a read
  // gets the next one (shared with every other such caller), which sees what happened before its call.
  const refresh = (): Promise<boolean> => {
    if (running === undefined) {
      running = readOnce().finally(() => {
        running = undefined;
      });
      return running;
    }
    next ??= running.then(() => {
      next = undefined;
      return refresh();
    });
    return next;
  };

  const timer = setInterval(() => {
    if (!stopped) void refresh();
  }, options.intervalMs ?? GAUGE_REFRESH_INTERVAL_MS);
  timer.unref();
  void refresh();

  return {
    refresh,
    async stop() {
      stopped = true;
      clearInterval(timer);
      await running;
    },
  };
}

const seconds = (date: Date | null | undefined) => (date ? date.getTime() / 1000 : 0);

/** Sets the gauges from one status report. */
export function setQueueGauges(metrics: Metrics, report: StatusReport): void {
  for (const status of SESSION_STATUSES) metrics.sessionsByStatus.set({ status }, report.counts[status]);
  metrics.sessionsAtRisk.set(report.atRiskCount);
  metrics.oldestDueSeconds.set(report.oldestDueSeconds ?? 0);
  for (const state of STREAM_HEALTH_STATES) metrics.streamHealth.set({ state }, report.stream.state === state ? 1 : 0);
  metrics.streamLastSuccess.set(seconds(report.stream.lastSuccessAt));
  const sweep = report.sweep;
  metrics.reconcileLastSuccess.set(seconds(sweep?.lastFinishedAt));
  metrics.reconcileCoveredFrom.set(seconds(sweep?.covered.from));
  metrics.reconcileWatermark.set(seconds(sweep?.covered.until));
  metrics.reconcileSweepPosition.set(seconds(sweep?.position));
  metrics.reconcileUnusableRowsStored.set(sweep?.unusableTotal ?? 0);
  metrics.rollupPending.set(report.rollups.pending);
  metrics.rollupWaiting.set(report.rollups.waiting);
  metrics.rollupOldestWaitingSeconds.set(report.rollups.oldestWaitingSeconds ?? 0);
}
