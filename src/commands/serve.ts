import { booleanOption } from './args.ts';
import { runServiceCommand } from './runtime.ts';
import type { Command } from './types.ts';

export const serveCommand: Command = {
  name: 'serve',
  summary: 'HTTP server + worker + reconciler in one process',
  usage: 'serve [--no-worker]\n\n  --no-worker   intake only: webhooks, health, metrics and the archive API, no archiving',
  options: { 'no-worker': { type: 'boolean' } },
  run: (values, _positionals, ctx) => runServiceCommand(ctx, { http: true, worker: !booleanOption(values['no-worker']) }),
};
