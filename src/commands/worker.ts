import { runServiceCommand } from './runtime.ts';
import type { Command } from './types.ts';

export const workerCommand: Command = {
  name: 'worker',
  summary: 'worker + reconciler only (no HTTP), for split deployments',
  usage: 'worker',
  options: {},
  run: (_values, _positionals, ctx) => runServiceCommand(ctx, { http: false, worker: true }),
};
