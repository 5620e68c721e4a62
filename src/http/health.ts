import type { FastifyPluginAsync } from 'fastify';
import { migrationsApplied } from '../db/migrate.ts';
import { withDeadline } from '../deadline.ts';
import { readStreamHealth, UNKNOWN_STREAM_HEALTH, type StreamHealth } from '../health/stream-health.ts';
import type { AppDeps } from './app.ts';

// A readiness probe must answer well before a load balancer's own timeout.
const READY_TIMEOUT_MS = 2_000;

/**
 * /readyz is about intake: 200 when the database answers and is migrated. Stream's health rides
 * along in the body (`stream`), as every replica recorded it, without making intake unready:
 * webhooks are stored whatever Stream's state, and the archive catches up when it answers.
 */
export const healthPlugin: FastifyPluginAsync<AppDeps> = async (app, deps) => {
  app.get('/healthz', async () => ({ status: 'ok' }));

  // /readyz runs on intake's pool (it answers for intake) and needs no authentication, so concurrent
  // probes share one check: 600 of them at once cost two queries, not 1,200 (issue 15).
  let check: Promise<[boolean, StreamHealth]> | undefined;
  const readOnce = () => {
    check ??= withDeadline(
      Promise.all([migrationsApplied(deps.database.pool), readStreamHealth(deps.database.pool).catch(() => UNKNOWN_STREAM_HEALTH)]),
      READY_TIMEOUT_MS,
      () => new Error(`timed out after ${READY_TIMEOUT_MS} ms`),
    ).finally(() => {
      check = undefined;
    });
    return check;
  };

  app.get('/readyz', async (request, reply) => {
    try {
      const [ready, stream] = await readOnce();
      if (!ready) return reply.code(503).send({ status: 'unavailable', reason: "migrations not applied: run 'attendance migrate'", stream: stream.state });
      if (deps.readiness && !deps.readiness.started) return reply.code(503).send({ status: 'starting', reason: 'checking Stream', stream: stream.state });
      return { status: 'ready', stream: stream.state, ...(stream.lastError ? { streamError: stream.lastError } : {}) };
    } catch (error) {
      request.log.warn({ err: error }, 'readiness check failed');
      return reply.code(503).send({ status: 'unavailable', reason: 'database unreachable', stream: 'unknown' });
    }
  });
};
