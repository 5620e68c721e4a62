import { loadConfig } from '../config.ts';
import { createLogger } from '../logger.ts';
import { withDatabase } from './database.ts';
import { startService, untilAborted } from './runtime.ts';
import type { Command } from './types.ts';

export const workerCommand: Command = {
  name: 'worker',
  summary: 'worker + reconciler only (no HTTP), for split deployments',
  usage: 'worker',
  options: {},
  async run(_values, _positionals, ctx) {
    const config = loadConfig(ctx.env);
    const logger = createLogger({ level: config.logLevel });
    return withDatabase(
      config,
      async ({ database, embedded }) => {
        const service = await startService({ config, database, logger, http: false, worker: true, migrate: embedded !== undefined });
        logger.info({ concurrency: config.worker.concurrency }, 'worker started');
        await untilAborted(ctx.stopSignal);
        logger.info('stopping');
        await service.stop();
        logger.info('stopped');
        return 0;
      },
      { onError: (err) => logger.warn({ err }, 'idle database connection lost') },
    );
  },
};
