import type { FastifyPluginAsync } from 'fastify';
import { migrationsApplied } from '../db/migrate.ts';
import { withDeadline } from '../deadline.ts';
import type { AppDeps } from './app.ts';

// A readiness probe must answer well before a load balancer's own timeout.
const READY_TIMEOUT_MS = 2_000;

export const healthPlugin: FastifyPluginAsync<AppDeps> = async (app, deps) => {
  app.get('/healthz', async () => ({ status: 'ok' }));

  app.get('/readyz', async (request, reply) => {
    try {
      const ready = await withDeadline(migrationsApplied(deps.database.pool), READY_TIMEOUT_MS, () => new Error(`timed out after ${READY_TIMEOUT_MS} ms`));
      if (!ready) return reply.code(503).send({ status: 'unavailable', reason: 'migrations not applied' });
      return { status: 'ready' };
    } catch (error) {
      request.log.warn({ err: error }, 'readiness check failed');
      return reply.code(503).send({ status: 'unavailable', reason: 'database unreachable' });
    }
  });
};
