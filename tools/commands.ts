import type { CommandEntry } from '../src/commands/types.ts';

/**
 * The commands a development checkout adds to `attendance`: bin/attendance.js passes these to
 * main() when this folder exists. The production install has no tools/, so neither command nor
 * anything it loads (the simulator, embedded Postgres) is reachable there.
 */
export const developmentCommands: Readonly<Record<string, CommandEntry>> = {
  demo: {
    summary: 'embedded Postgres + local simulator + serve, end to end, then a report',
    load: async () => (await import('./commands/demo.ts')).demoCommand,
  },
  simulate: {
    summary: 'run the local Stream simulator alone',
    load: async () => (await import('./commands/simulate.ts')).simulateCommand,
  },
};
