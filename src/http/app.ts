import { randomUUID } from 'node:crypto';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Config } from '../config.ts';
import type { Database } from '../db/client.ts';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics.ts';
import type { Tracer } from '../tracing.ts';
import { createAdmissionGate } from './admission.ts';
import { createBodyBudget, registerBodyBudget } from './body-budget.ts';
import { healthPlugin } from './health.ts';
import { metricsPlugin } from './metrics.ts';
import { webhooksPlugin } from './webhooks.ts';
import { archivePlugin } from './archive.ts';
import { isOverloadError, registerOverloadAnswers, replyOverloaded } from './overload.ts';

/**
 * The whole request (headers and body) must arrive within this. A webhook is a few kilobytes and
 * Stream gives each attempt 6 s, so anything slower is not Stream; without a bound, a client
 * trickling a byte now and then holds its socket for ever (Fastify sets no request timeout).
 */
export const INCOMING_REQUEST_TIMEOUT_MS = 10_000;
// How often Node looks for requests past that bound (its default, 30 s, would triple the wait).
const TIMEOUT_CHECK_INTERVAL_MS = 2_000;

export interface AppDeps {
  readonly config: Config;
  readonly database: Database;
  readonly logger: Logger;
  readonly metrics: Metrics;
  /** Set when OTEL_EXPORTER_OTLP_ENDPOINT is: webhooks are traced. */
  readonly tracer?: Tracer;
  /** `started` turns true once the service has checked Stream and started its parts; until then /readyz says starting. */
  readonly readiness?: { readonly started: boolean };
  /**
   * The archive API's own pool (its share of DATABASE_POOL_SIZE), so its queries never take a
   * connection intake needs; `database` (intake's pool) when not given.
   */
  readonly apiDatabase?: Database;
}

// Archive requests that may wait for one of the API's connections (per connection), and for how
// long: a burst is smoothed; a flood is refused at once instead of queueing in pg-pool until its
// connect timeout. With 2 connections, 3 waves of 100 parallel 20,000-row summaries got 31 answers
// and 269 refusals, and webhooks kept p99 152 ms (test/reliability/starvation.test.ts).
const API_QUEUE_PER_CONNECTION = 16;
const API_MAX_WAIT_MS = 2_000;

/** Builds the HTTP app without listening: the entry point listens, tests use `inject()`. */
export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: deps.logger as FastifyBaseLogger,
    // Fastify's own two lines per request are off; the access log below writes one, without the
    // query (the archive API's carries api_key) and without bodies or headers.
    logController: new LogController({ disableRequestLogging: true }),
    requestIdHeader: 'x-request-id',
    genReqId: () => randomUUID(),
    // Stream's webhook bodies stay far below this; the webhook route applies its own limits.
    bodyLimit: 1024 * 1024,
    return503OnClosing: true,
    requestTimeout: INCOMING_REQUEST_TIMEOUT_MS,
    http: { headersTimeout: INCOMING_REQUEST_TIMEOUT_MS, connectionsCheckingInterval: TIMEOUT_CHECK_INTERVAL_MS },
  });

  app.setErrorHandler((error: Error & { statusCode?: number; code?: string }, request, reply) => {
    if (isOverloadError(error)) return replyOverloaded(reply);
    const status = error.statusCode && error.statusCode >= 400 ? error.statusCode : 500;
    if (status >= 500) {
      request.log.error({ err: error }, 'request failed');
      return reply.code(status).send({ error: 'internal error' });
    }
    return reply.code(status).send({ error: error.message, code: error.code });
  });
  app.setNotFoundHandler((_request, reply) => reply.code(404).send({ error: 'not found' }));

  // The access log: one info line per answered request. An A/B of it under the intake bench
  // could not tell it from the machine's noise (bench/README.md), so intake keeps it. 503s are
  // left out: in an outage or a flood they come by the thousand, and they are already counted
  // (attendance_webhooks_total, attendance_http_refused_total) and logged as summaries.
  app.addHook('onResponse', async (request, reply) => {
    if (reply.statusCode === 503) return;
    const url = request.url;
    const q = url.indexOf('?');
    request.log.info(
      { method: request.method, path: q === -1 ? url : url.slice(0, q), status: reply.statusCode, ms: Math.round(reply.elapsedTime * 10) / 10 },
      'request',
    );
  });

  // Before the route plugins, which inherit these hooks (their own error handlers included).
  const { metrics } = deps;
  // Counted, and logged at debug only: a flood must not turn into a flood of log lines.
  registerOverloadAnswers(app, (request, error) => {
    metrics.httpRefused.inc({ reason: 'database_pool' });
    request.log.debug({ err: error }, 'request refused: busy');
  });
  registerBodyBudget(app, createBodyBudget(deps.config.bodyBudgetBytes), () => metrics.httpRefused.inc({ reason: 'body_budget' }));

  await app.register(healthPlugin, deps);
  await app.register(metricsPlugin, deps);
  await app.register(webhooksPlugin, deps);
  // The archive API runs on its own pool share behind a gate as wide as that share: a flood of
  // summaries waits or gets 503, and never holds a connection intake or the worker needs.
  const apiDatabase = deps.apiDatabase ?? deps.database;
  const gate = createAdmissionGate({
    permits: deps.config.database.apiConnections,
    maxQueued: deps.config.database.apiConnections * API_QUEUE_PER_CONNECTION,
    maxWaitMs: API_MAX_WAIT_MS,
  });
  await app.register(async (api) => {
    const releases = new WeakMap<object, () => void>();
    api.addHook('onRequest', async (request, reply) => {
      // Listened for before waiting: a client that leaves while queued must not keep its permit.
      let release: (() => void) | undefined;
      let gone = false;
      reply.raw.once('close', () => {
        gone = true;
        release?.();
      });
      try {
        release = await gate.admit();
      } catch (error) {
        if (!isOverloadError(error)) throw error;
        metrics.httpRefused.inc({ reason: 'archive_api' });
        return replyOverloaded(reply);
      }
      if (gone) {
        release();
        return reply.code(503).send();
      }
      releases.set(request, release);
    });
    api.addHook('onResponse', async (request) => releases.get(request)?.());
    await api.register(archivePlugin, { ...deps, database: apiDatabase });
  });
  return app;
}
