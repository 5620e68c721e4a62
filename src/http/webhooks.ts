import type { FastifyPluginAsync } from 'fastify';
import type { AppDeps } from './app.ts';

// Placeholder until the webhook intake lands: refuses everything, stores nothing.
export const webhooksPlugin: FastifyPluginAsync<AppDeps> = async (app) => {
  app.post('/webhooks/stream', async (_request, reply) => reply.code(503).send({ error: 'webhook intake not implemented yet' }));
};
