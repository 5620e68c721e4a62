import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type pg from 'pg';
import packageJson from '../package.json' with { type: 'json' };

/** Prometheus scrapes every 15 s or so; a second of reuse is invisible to it. */
export const RENDER_REUSE_MS = 1_000;

type Registers = Registry[];

/**
 * Every Prometheus metric the service exposes, on one registry per process (no global default
 * registry, so tests can build several apps side by side). Gauges about the database
 * (sessions by status, at risk, oldest due, Stream health, the sweep) are set on an interval by
 * `startGaugeRefresher` (src/health/gauge-refresher.ts), so a scrape reads no table.
 */
export function createMetrics(options: { defaultMetrics?: boolean } = {}) {
  const registry = new Registry();
  // Node's and the process's own metrics under their standard names (process_cpu_seconds_total,
  // nodejs_heap_size_used_bytes …), so stock dashboards and alerts for Node services work as they are.
  if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: registry });
  const registers = [registry];
  const pools = new Map<string, pg.Pool>();
  registerProcessMetrics(registers, pools);
  return {
    registry,
    /** Reports `pool`'s connections as attendance_db_pool_connections{pool: name}. */
    observePool(name: string, pool: pg.Pool): void {
      pools.set(name, pool);
    },
    ...createRendering(registry),
    ...intakeMetrics(registers),
    ...archiveMetrics(registers),
    ...queueGauges(registers),
    ...streamMetrics(registers),
    ...reconcileMetrics(registers),
    ...pruneMetrics(registers),
    ...rollupMetrics(registers),
  };
}

/** The pools' connections and the build: metrics about this process rather than its work. */
function registerProcessMetrics(registers: Registers, pools: ReadonlyMap<string, pg.Pool>): void {
  // Read when scraped: pg keeps these counts on the pool object, so reporting them costs nothing.
  new Gauge({
    name: 'attendance_db_pool_connections',
    help: 'Postgres connections of this process by pool (intake, api, background; shared when there is one) and state: total open, idle, and callers waiting for one',
    labelNames: ['pool', 'state'] as const,
    registers,
    collect() {
      for (const [pool, p] of pools) {
        this.set({ pool, state: 'total' }, p.totalCount);
        this.set({ pool, state: 'idle' }, p.idleCount);
        this.set({ pool, state: 'waiting' }, p.waitingCount);
      }
    },
  });
  const buildInfo = new Gauge({
    name: 'attendance_build_info',
    help: 'Always 1; the labels say which version runs on which Node.js',
    labelNames: ['version', 'node'] as const,
    registers,
  });
  buildInfo.set({ version: packageJson.version, node: process.versions.node }, 1);
}

function createRendering(registry: Registry) {
  let rendered: { readonly at: number; readonly text: Promise<string> } | undefined;
  return {
    /**
     * The registry as Prometheus text; calls within RENDER_REUSE_MS of a rendering share it.
     * Rendering runs the default process collectors synchronously (prom-client reads
     * /proc/self/fd, which grows with open sockets): 600 parallel scrapes each rendering their own
     * blocked the event loop for seconds, and 4 webhooks of 1,051 timed out into 503s
     * (test/reliability/starvation.test.ts, p99 1.1 s vs 0.5 s with the reuse).
     */
    render(): Promise<string> {
      const now = performance.now();
      if (rendered === undefined || now - rendered.at >= RENDER_REUSE_MS) {
        const text = registry.metrics();
        // A failed rendering is not reused.
        text.catch(() => (rendered = undefined));
        rendered = { at: now, text };
      }
      return rendered.text;
    },
    /** The next render() reads the registry afresh (the gauge refresher calls it after a refresh). */
    invalidateRendering(): void {
      rendered = undefined;
    },
  };
}

/** Webhook intake and the HTTP server's capacity refusals. */
function intakeMetrics(registers: Registers) {
  return {
    webhooksTotal: new Counter({
      name: 'attendance_webhooks_total',
      help: 'Webhook deliveries by event type and outcome (stored, duplicate, ignored, rejected_*, error)',
      labelNames: ['type', 'outcome'] as const,
      registers,
    }),
    webhookDuration: new Histogram({
      name: 'attendance_webhook_duration_seconds',
      help: 'Time to handle a webhook delivery, from request to answer',
      labelNames: ['outcome'] as const,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 6],
      registers,
    }),
    httpRefused: new Counter({
      name: 'attendance_http_refused_total',
      help: 'Requests answered 503 with Retry-After because a bounded resource was full: body_budget (request bytes in memory), archive_api (its connections and queue), database_pool (a pool share)',
      labelNames: ['reason'] as const,
      registers,
    }),
  };
}

/** What this process's worker did: runs, pages and rows. */
function archiveMetrics(registers: Registers) {
  return {
    archiveRunDuration: new Histogram({
      name: 'attendance_archive_run_duration_seconds',
      help: 'One archive run of one session, from claim to its end, by how it ended (complete, retrying, dead, expired, released, lease_lost)',
      labelNames: ['status'] as const,
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900],
      registers,
    }),
    pagesArchived: new Counter({ name: 'attendance_pages_archived_total', help: 'Pages of participant sessions written', registers }),
    rowsArchived: new Counter({ name: 'attendance_rows_archived_total', help: 'Participant session rows upserted', registers }),
    pagesRewritten: new Counter({
      name: 'attendance_pages_rewritten_total',
      help: 'Pages sent a second time: sent while the page before them was in flight, they found its cursor not yet stored (or were rolled back to break a deadlock with it), and wrote nothing',
      registers,
    }),
    sessionsFinished: new Counter({
      name: 'attendance_sessions_finished_total',
      help: 'Archive runs that ended, by resulting status (complete, retrying, dead, expired)',
      labelNames: ['status'] as const,
      registers,
    }),
  };
}

/** The queue as the gauge refresher last read it from the database. */
function queueGauges(registers: Registers) {
  return {
    sessionsByStatus: new Gauge({
      name: 'attendance_sessions',
      help: 'Call sessions by archive status',
      labelNames: ['status'] as const,
      registers,
    }),
    sessionsAtRisk: new Gauge({
      name: 'attendance_sessions_at_risk',
      help: 'Sessions not complete within 7 days of retention_expires_at (Stream empties their detail at day 90)',
      registers,
    }),
    oldestDueSeconds: new Gauge({
      name: 'attendance_oldest_due_session_age_seconds',
      help: 'How long the longest-waiting due session (pending or retrying, next_attempt_at passed) has waited',
      registers,
    }),
    queueGaugesRefreshed: new Gauge({
      name: 'attendance_queue_gauges_refreshed_timestamp_seconds',
      help: 'When the gauges read from the database (sessions, at risk, oldest due, Stream health, sweep) were last refreshed (Unix seconds; 0 = never); refreshed every 15 s',
      registers,
    }),
  };
}

/** Requests to Stream from this process, and Stream's health as every replica recorded it. */
function streamMetrics(registers: Registers) {
  return {
    streamRequestDuration: new Histogram({
      name: 'attendance_stream_request_duration_seconds',
      help: 'Requests to the Stream API by operation and HTTP status (0 = network error or timeout)',
      labelNames: ['operation', 'status'] as const,
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    }),
    streamRateLimited: new Counter({
      name: 'attendance_stream_rate_limited_total',
      help: 'Stream API answers with HTTP 429',
      registers,
    }),
    streamHealth: new Gauge({
      name: 'attendance_stream_health',
      help: 'Stream API health as last recorded by any replica: 1 for the current state (ok, unauthorized, unreachable, unknown), 0 for the others',
      labelNames: ['state'] as const,
      registers,
    }),
    streamLastSuccess: new Gauge({
      name: 'attendance_stream_last_success_timestamp_seconds',
      help: 'When any replica last had a successful answer from Stream (Unix seconds; 0 = never)',
      registers,
    }),
  };
}

/** The call_stats sweep: this process's runs, and the coverage every sweep recorded. */
function reconcileMetrics(registers: Registers) {
  return {
    reconcileSweeps: new Counter({
      name: 'attendance_reconcile_sweeps_total',
      help: 'Reconciliation sweeps by outcome (done, skipped_locked, error)',
      labelNames: ['outcome'] as const,
      registers,
    }),
    reconcileEnqueued: new Counter({
      name: 'attendance_reconcile_enqueued_total',
      help: 'Sessions the reconciler found with no webhook and enqueued',
      registers,
    }),
    reconcileUnusableRows: new Counter({
      name: 'attendance_reconcile_unusable_rows_total',
      help: 'call_stats rows (sweep and backfill) that could not be used at all, by this process',
      registers,
    }),
    reconcileUnusableRowsStored: new Gauge({
      name: 'attendance_reconcile_unusable_rows_recorded',
      help: 'call_stats rows that could not be used at all, over every sweep and backfill (from the database; the same on every replica)',
      registers,
    }),
    ...reconcileCoverageGauges(registers),
  };
}

function reconcileCoverageGauges(registers: Registers) {
  return {
    reconcileLastSuccess: new Gauge({
      name: 'attendance_reconcile_last_success_timestamp_seconds',
      help: 'When the last call_stats sweep finished (Unix seconds; 0 = never)',
      registers,
    }),
    reconcileCoveredFrom: new Gauge({
      name: 'attendance_reconcile_covered_from_timestamp_seconds',
      help: 'Sessions that ended from this time (Unix seconds) up to the watermark have been listed by finished sweeps; 0 = none yet',
      registers,
    }),
    reconcileWatermark: new Gauge({
      name: 'attendance_reconcile_watermark_timestamp_seconds',
      help: 'Sessions that ended before this time (Unix seconds) have been listed by a finished sweep; 0 = none yet',
      registers,
    }),
    reconcileSweepPosition: new Gauge({
      name: 'attendance_reconcile_sweep_position_timestamp_seconds',
      help: 'How far the sweep in progress has got (the latest session end committed; Unix seconds); 0 = no sweep in progress',
      registers,
    }),
  };
}

/** Retention: this process's prune runs and what they deleted. */
function pruneMetrics(registers: Registers) {
  return {
    pruneRuns: new Counter({
      name: 'attendance_prune_runs_total',
      help: 'Retention prune runs (inbox, and archive when ARCHIVE_RETENTION_DAYS is set) by outcome (done, skipped_locked, error)',
      labelNames: ['outcome'] as const,
      registers,
    }),
    prunedRows: new Counter({
      name: 'attendance_pruned_rows_total',
      help: 'Rows deleted by retention, by table',
      labelNames: ['table'] as const,
      registers,
    }),
    pruneLastSuccess: new Gauge({
      name: 'attendance_prune_last_success_timestamp_seconds',
      help: 'When this process last finished a retention prune (Unix seconds; 0 = not yet)',
      registers,
    }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;

/** The attendance rollups (rollup/refresh.ts): how far behind their rows, and the sweep that catches up. */
function rollupMetrics(registers: Registers) {
  return {
    rollupPending: new Gauge({
      name: 'attendance_rollup_pending_sessions',
      help: 'Sessions whose rollups are behind their rows (the views compute them from the rows; the report tables count them as of their last refresh)',
      registers,
    }),
    rollupWaiting: new Gauge({
      name: 'attendance_rollup_waiting_sessions',
      help: 'Of the pending sessions, those no worker is archiving: the rollup sweep refreshes them',
      registers,
    }),
    rollupOldestWaitingSeconds: new Gauge({
      name: 'attendance_rollup_oldest_waiting_seconds',
      help: 'How long the oldest waiting rollup mark has waited (0 = none); growing means the rollup sweep is not keeping up or failing',
      registers,
    }),
    rollupSweeps: new Counter({
      name: 'attendance_rollup_sweeps_total',
      help: 'Rollup sweeps by outcome (done, error)',
      labelNames: ['outcome'] as const,
      registers,
    }),
  };
}
