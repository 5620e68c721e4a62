import { randomUUID } from 'node:crypto';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Config } from '../config.ts';
import type { Database } from '../db/client.ts';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics.ts';
import { healthPlugin } from './health.ts';
import { metricsPlugin } from './metrics.ts';
import { webhooksPlugin } from './webhooks.ts';
import { archivePlugin } from './archive.ts';

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
  /** `started` turns true once the service has checked Stream and started its parts; until then /readyz says starting. */
  readonly readiness?: { readonly started: boolean };
}

/** Builds the HTTP app without listening: the entry point listens, tests use `inject()`. */
export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: deps.logger as FastifyBaseLogger,
    // Per-request access logs would cost the webhook hot path; handlers log what matters.
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
    const status = error.statusCode && error.statusCode >= 400 ? error.statusCode : 500;
    if (status >= 500) {
      request.log.error({ err: error }, 'request failed');
      return reply.code(status).send({ error: 'internal error' });
    }
    return reply.code(status).send({ error: error.message, code: error.code });
  });
  app.setNotFoundHandler((_request, reply) => reply.code(404).send({ error: 'not found' }));

  await app.register(healthPlugin, deps);
  await app.register(metricsPlugin, deps);
  await app.register(webhooksPlugin, deps);
  await app.register(archivePlugin, deps);
  return app;
}
