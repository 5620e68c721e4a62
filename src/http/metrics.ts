import type { FastifyPluginAsync } from 'fastify';
import type { AppDeps } from './app.ts';

/**
 * Prometheus text from memory: the gauges read from the database are kept fresh by the gauge
 * refresher (src/health/gauge-refresher.ts), so a scrape, authenticated or not, costs no query,
 * and scrapes within a second of each other share one rendering (metrics.render).
 */
export const metricsPlugin: FastifyPluginAsync<AppDeps> = async (app, deps) => {
  const { metrics } = deps;
  app.get('/metrics', async (_request, reply) => reply.type(metrics.registry.contentType).send(await metrics.render()));
};
