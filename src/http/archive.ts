import type { FastifyPluginAsync } from 'fastify';
import type { AppDeps } from './app.ts';

// Placeholder until the archive API lands.
export const archivePlugin: FastifyPluginAsync<AppDeps> = async () => undefined;
