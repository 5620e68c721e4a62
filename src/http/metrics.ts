import type { FastifyPluginAsync } from 'fastify';
import { SESSION_STATUSES, STREAM_HEALTH_STATES } from '../db/schema.ts';
import { readStatusReport } from '../health/status-report.ts';
import type { AppDeps } from './app.ts';

const seconds = (date: Date | null | undefined) => (date ? date.getTime() / 1000 : 0);

export const metricsPlugin: FastifyPluginAsync<AppDeps> = async (app, deps) => {
  const { metrics } = deps;
  app.get('/metrics', async (request, reply) => {
    try {
      // The same report `status` prints (lists cut to nothing): what the service cannot do shows here too.
      const report = await readStatusReport(deps.database, 0);
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
    } catch (error) {
      // The process metrics are still worth serving when the database is away.
      request.log.warn({ err: error }, 'queue gauges not refreshed');
    }
    return reply.type(metrics.registry.contentType).send(await metrics.registry.metrics());
  });
};
