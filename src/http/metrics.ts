import type { FastifyPluginAsync } from 'fastify';
import { SESSION_STATUSES } from '../db/schema.ts';
import { readQueueStats } from '../queue/stats.ts';
import type { AppDeps } from './app.ts';

export const metricsPlugin: FastifyPluginAsync<AppDeps> = async (app, deps) => {
  const { metrics } = deps;
  app.get('/metrics', async (request, reply) => {
    try {
      const stats = await readQueueStats(deps.database.pool, { listLimit: 0 });
      for (const status of SESSION_STATUSES) metrics.sessionsByStatus.set({ status }, stats.counts[status]);
      metrics.sessionsAtRisk.set(stats.atRiskCount);
      metrics.oldestDueSeconds.set(stats.oldestDueSeconds ?? 0);
    } catch (error) {
      // The process metrics are still worth serving when the database is away.
      request.log.warn({ err: error }, 'queue gauges not refreshed');
    }
    return reply.type(metrics.registry.contentType).send(await metrics.registry.metrics());
  });
};
