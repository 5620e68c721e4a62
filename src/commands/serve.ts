import { loadConfig } from '../config.ts';
import { createLogger } from '../logger.ts';
import { withDatabase } from './database.ts';
import { startService, untilAborted } from './runtime.ts';
import type { Command } from './types.ts';

export const serveCommand: Command = {
  name: 'serve',
  summary: 'HTTP server + worker + reconciler in one process',
  usage: 'serve [--no-worker]\n\n  --no-worker   intake only: webhooks, health, metrics and the archive API, no archiving',
  options: { 'no-worker': { type: 'boolean' } },
  async run(values, _positionals, ctx) {
    const config = loadConfig(ctx.env);
    const logger = createLogger({ level: config.logLevel });
    return withDatabase(
      config,
      async ({ database, embedded }) => {
        const service = await startService({ config, database, logger, http: true, worker: !values['no-worker'], migrate: embedded !== undefined });
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
