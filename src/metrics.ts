import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * Every Prometheus metric the service exposes, on one registry per process (no global default
 * registry, so tests can build several apps side by side). Gauges about the database
 * (sessions by status, at risk, oldest due) are set by `refreshQueueGauges` when /metrics is scraped.
 */
export function createMetrics(options: { defaultMetrics?: boolean } = {}) {
  const registry = new Registry();
  if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: registry, prefix: 'attendance_process_' });
  const registers = [registry];
  return {
    registry,
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
    sessionsByStatus: new Gauge({
      name: 'attendance_sessions',
      help: 'Call sessions by archive status',
      labelNames: ['status'] as const,
      registers,
    }),
    pagesArchived: new Counter({ name: 'attendance_pages_archived_total', help: 'Pages of participant sessions written', registers }),
    rowsArchived: new Counter({ name: 'attendance_rows_archived_total', help: 'Participant session rows upserted', registers }),
    sessionsFinished: new Counter({
      name: 'attendance_sessions_finished_total',
      help: 'Archive runs that ended, by resulting status (complete, retrying, dead, expired)',
      labelNames: ['status'] as const,
      registers,
    }),
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
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
