import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { FastifyInstance } from 'fastify';
import { loadConfig, type Config } from '../config.ts';
import { createDatabase, type Database } from '../db/client.ts';
import { migrationsApplied, runMigrations } from '../db/migrate.ts';
import { verifyMigrated } from '../db/verify.ts';
import { startTracing, type Tracer, type Tracing } from '../tracing.ts';
import { withDeadline } from '../deadline.ts';
import { ConfigError, coerceError } from '../errors.ts';
import { startGaugeRefresher, type GaugeRefresher } from '../health/gauge-refresher.ts';
import { createStreamHealthRecorder, type StreamHealthRecorder } from '../health/stream-health.ts';
import { startStreamProbe, type StreamProbe } from '../health/stream-probe.ts';
import { buildApp } from '../http/app.ts';
import { startWorker, type Worker } from '../ingest/worker.ts';
import { pruningEnabled } from '../lifecycle/prune.ts';
import { startPruner, type Pruner } from '../lifecycle/pruner.ts';
import { createLogger, type Logger } from '../logger.ts';
import { createMetrics, type Metrics } from '../metrics.ts';
import { startReconciler, type Reconciler } from '../reconcile/reconciler.ts';
import { startRollupSweeper, type RollupSweeper } from '../rollup/sweeper.ts';
import { createStreamClient, streamConnection, type StreamClient } from '../stream/client.ts';
import { withDatabase } from './database.ts';
import type { CommandContext } from './types.ts';

// How long the start waits for the gauges to show its own Stream verdict.
const FIRST_REFRESH_WAIT_MS = 2_000;

/** SIGTERM to exit: Kubernetes and compose give 10–30 s; we promise 10. */
export const SHUTDOWN_DEADLINE_MS = 9_000;

export interface ServiceOptions {
  readonly config: Config;
  /** Intake's pool (webhooks, /readyz), also used to check the migrations. */
  readonly database: Database;
  /**
   * The other shares of DATABASE_POOL_SIZE: the archive API's, and the background one (worker,
   * reconciler, gauge refresher, Stream health). Without them everything runs on `database`.
   */
  readonly pools?: { readonly api: Database; readonly background: Database };
  readonly logger: Logger;
  readonly http: boolean;
  readonly worker: boolean;
  /** True when this process started the embedded Postgres: then it applies the migrations itself. */
  readonly migrate: boolean;
  readonly metrics?: Metrics;
}

export interface Service {
  /** Where the HTTP server listens (when http is on). */
  readonly url: string | undefined;
  readonly app: FastifyInstance | undefined;
  readonly worker: Worker | undefined;
  readonly reconciler: Reconciler | undefined;
  readonly metrics: Metrics;
  /** Stops accepting, finishes in-flight webhooks, releases leases, closes clients. Bounded in time. */
  stop(): Promise<void>;
}

/** What a start has started so far: a failed start and stop() stop exactly that. */
interface Running {
  tracing?: Tracing | undefined;
  app?: FastifyInstance;
  refresher?: GaugeRefresher;
  health?: StreamHealthRecorder;
  stream?: StreamClient;
  probe?: StreamProbe;
  worker?: Worker;
  reconciler?: Reconciler;
  pruner?: Pruner;
  rollups?: RollupSweeper;
}

/** The composition root shared by `serve`, `worker` and `demo`. */
export async function startService(options: ServiceOptions): Promise<Service> {
  const { config, database, logger } = options;
  await checkMigrations(options);
  const metrics = options.metrics ?? createMetrics();
  const background = options.pools?.background ?? database;
  observePools(metrics, options);
  const running: Running = {};
  const stop = () => stopRunning(running, logger);
  const readiness = { started: false };
  let url: string | undefined;
  try {
    running.tracing = await startTracing(config.tracing.endpoint);
    const tracer = running.tracing?.tracer;
    // The port first: a port in use must fail before a worker claims anything or a sweep starts.
    if (options.http) {
      running.app = await buildApp({ config, database, apiDatabase: options.pools?.api, logger, metrics, readiness, tracer });
      url = await listen(running.app, config);
      // One refresher per process, on the background pool: /metrics serves what it last read.
      running.refresher = startGaugeRefresher({ database: background, metrics, logger });
    }
    const { stream, health, verdict } = await startStreamChecks(running, { config, logger, metrics, background });
    // Unreachable: intake needs no Stream, so the service runs on; the probe keeps trying and the
    // state shows in /readyz, `status` and /metrics until Stream answers.
    if (options.worker) startBackgroundWork(running, { config, logger, metrics, background, stream, tracer });
    // The gauges /metrics serves show this start's verdict as soon as it reports ready, not the
    // one read before the probe answered; bounded, so a slow database cannot hold the start.
    const { refresher } = running;
    if (refresher) {
      await withDeadline(
        health.flush().then(() => refresher.refresh()),
        FIRST_REFRESH_WAIT_MS,
        () => new Error('first gauge refresh'),
      ).catch(() => undefined);
    }
    readiness.started = true;
    if (options.http) logger.info({ url, worker: options.worker, stream: verdict }, 'listening');
    else logger.info({ concurrency: config.worker.concurrency, stream: verdict }, 'worker started');
  } catch (error) {
    await stop();
    throw error;
  }
  return { url, app: running.app, worker: running.worker, reconciler: running.reconciler, metrics, stop };
}

async function checkMigrations({ config, database, logger, migrate }: ServiceOptions): Promise<void> {
  if (migrate) {
    const applied = await runMigrations(database.pool);
    if (applied > 0) logger.info({ applied }, 'migrations applied');
  } else if (config.databaseUrl !== undefined) {
    await verifyMigrated(database.pool, config.databaseUrl);
  } else if (!(await migrationsApplied(database.pool))) {
    // Same verdict as verifyMigrated's for DATABASE_URL: a configuration problem (exit 2), not a failure.
    throw new ConfigError(['the database is not migrated'], {
      code: 'NOT_MIGRATED',
      message: "the database is missing migrations: run 'attendance migrate' first",
    });
  }
}

function observePools(metrics: Metrics, { database, pools }: ServiceOptions): void {
  if (pools) {
    metrics.observePool('intake', database.pool);
    metrics.observePool('api', pools.api.pool);
    metrics.observePool('background', pools.background.pool);
  } else {
    metrics.observePool('shared', database.pool);
  }
}

interface StartParts {
  readonly config: Config;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly background: Database;
}

/**
 * The Stream client with its health recorder and probe; resolves with the probe's first verdict.
 * Intake verifies webhooks with the same secret the worker signs with, so every replica checks the
 * credentials, intake-only ones too.
 */
async function startStreamChecks(running: Running, { config, logger, metrics, background }: StartParts) {
  const health = createStreamHealthRecorder({ pool: background.pool, logger, baseUrl: config.stream.baseUrl });
  running.health = health;
  const stream = createStreamClient({
    ...streamConnection(config.stream),
    metrics,
    logger,
    onOutcome: health.observe,
  });
  running.stream = stream;
  const probe = startStreamProbe({ stream, logger });
  running.probe = probe;
  const verdict = await probe.first;
  if (verdict === 'unauthorized') {
    await health.flush();
    throw new ConfigError([health.problem() ?? 'Stream refused the API credentials: check STREAM_API_KEY and STREAM_API_SECRET']);
  }
  return { stream, health, verdict };
}

/** The worker, and the reconciler and pruner when configured: what runs where the worker does. */
function startBackgroundWork(running: Running, parts: StartParts & { readonly stream: StreamClient; readonly tracer: Tracer | undefined }): void {
  const { config, logger, metrics, background, stream, tracer } = parts;
  const workerId = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  running.worker = startWorker({ database: background, logger, metrics, stream, concurrency: config.worker.concurrency, workerId, tracer });
  if (config.reconcile.intervalMinutes > 0) {
    running.reconciler = startReconciler({
      database: background,
      logger,
      metrics,
      stream,
      intervalMinutes: config.reconcile.intervalMinutes,
      lookbackDays: config.reconcile.lookbackDays,
    });
  }
  // Sessions whose rollups are behind their rows and that no worker is archiving (archived since
  // the last sweep, pruned, written by hand) are refreshed here; replicas share the work
  // (rollup/refresh.ts).
  running.rollups = startRollupSweeper({
    database: background,
    logger,
    onSweep: () => metrics.rollupSweeps.inc({ outcome: 'done' }),
    onFailure: () => metrics.rollupSweeps.inc({ outcome: 'error' }),
  });
  // Retention runs where the worker does (serve, worker), on the background pool; replicas
  // take turns through an advisory lock (lifecycle/prune.ts).
  if (pruningEnabled(config.retention)) {
    running.pruner = startPruner({
      database: background,
      logger,
      retention: config.retention,
      // A prune that keeps failing shows on /metrics (and its alert), not only in the log.
      onRun: (run) => {
        metrics.pruneRuns.inc({ outcome: run.outcome });
        if (run.outcome === 'error') return;
        metrics.prunedRows.inc({ table: 'webhook_events' }, run.result.webhookEvents);
        metrics.prunedRows.inc({ table: 'participant_sessions' }, run.result.participantSessions);
        metrics.prunedRows.inc({ table: 'stream_responses' }, run.result.streamResponses);
        if (run.outcome === 'done') metrics.pruneLastSuccess.setToCurrentTime();
      },
    });
  }
}

/** Stops what is running in order, each step's failure logged, the whole bounded by SHUTDOWN_DEADLINE_MS. */
async function stopRunning(running: Running, logger: Logger): Promise<void> {
  const steps: [string, () => Promise<unknown> | undefined][] = [
    // Fastify's close stops accepting and waits for in-flight requests (webhooks commit, then answer).
    ['http', () => running.app?.close()],
    ['gauge refresher', () => running.refresher?.stop()],
    ['worker', () => running.worker?.stop()],
    ['reconciler', () => running.reconciler?.stop()],
    ['pruner', () => running.pruner?.stop()],
    ['rollup sweeper', () => running.rollups?.stop()],
    ['stream probe', () => running.probe?.stop()],
    ['stream client', () => running.stream?.close()],
    ['stream health', () => running.health?.flush()],
    // Last, so the spans of everything stopped above are sent.
    ['tracing', () => running.tracing?.shutdown()],
  ];
  const deadline = new Promise<'timeout'>((resolve) => setTimeout(resolve, SHUTDOWN_DEADLINE_MS, 'timeout').unref());
  const sequence = (async () => {
    for (const [name, step] of steps) {
      try {
        await step();
      } catch (error) {
        logger.warn({ err: coerceError(error), step: name }, 'shutdown step failed');
      }
    }
    return 'done' as const;
  })();
  if ((await Promise.race([sequence, deadline])) === 'timeout') logger.error({ deadlineMs: SHUTDOWN_DEADLINE_MS }, 'shutdown deadline passed');
}

/** Listens on HOST:PORT; a port in use or not ours to take is a configuration error naming PORT. */
async function listen(app: FastifyInstance, config: Config): Promise<string> {
  try {
    return await app.listen({ port: config.http.port, host: config.http.host });
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    const where = `${config.http.host}:${config.http.port}`;
    if (code === 'EADDRINUSE') throw new ConfigError([`PORT ${config.http.port} is already in use on ${where}: stop what holds it or set PORT to a free port`]);
    if (code === 'EACCES') throw new ConfigError([`PORT ${config.http.port} cannot be opened on ${where} without privileges: set PORT above 1023`]);
    if (code === 'EADDRNOTAVAIL') throw new ConfigError([`HOST ${config.http.host} is not an address of this machine: set HOST (0.0.0.0 listens on all)`]);
    throw error;
  }
}

/**
 * `serve` and `worker`: start the service on DATABASE_URL (or the embedded Postgres, migrated
 * on the spot), run until SIGINT/SIGTERM, then stop within the shutdown deadline.
 */
export async function runServiceCommand(ctx: CommandContext, parts: { http: boolean; worker: boolean }): Promise<number> {
  const config = loadConfig(ctx.env);
  const logger = createLogger({ level: config.logLevel });
  const onIdleError = (err: Error) => logger.warn({ err }, 'idle database connection lost');
  return withDatabase(
    config,
    async ({ database, embedded, url }) => {
      // DATABASE_POOL_SIZE split three ways (config.ts, splitDatabasePool): with one shared pool of
      // 10, 100 parallel archive summaries or 600 parallel /metrics made webhooks answer 503 (issue 15).
      const pools = {
        api: createDatabase(url, { max: config.database.apiConnections, applicationName: 'stream-attendance-api', onError: onIdleError }),
        background: createDatabase(url, { max: config.database.backgroundConnections, applicationName: 'stream-attendance-background', onError: onIdleError }),
      };
      try {
        const service = await startService({ config, database, pools, logger, ...parts, migrate: embedded !== undefined });
        await untilAborted(ctx.stopSignal);
        logger.info('stopping');
        await service.stop();
        logger.info('stopped');
        return 0;
      } finally {
        await Promise.all([pools.api.close(), pools.background.close()]);
      }
    },
    {
      // Intake's share; the others are opened above on the same URL.
      max: config.database.intakeConnections,
      applicationName: 'stream-attendance-intake',
      stderr: ctx.stderr,
      onError: onIdleError,
    },
  );
}

/** Resolves when the signal aborts (SIGINT/SIGTERM). */
export function untilAborted(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
}
