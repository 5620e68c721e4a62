import { loadConfig } from '../config.ts';
import { withDatabase } from './database.ts';
import { runMigrations } from '../db/migrate.ts';
import type { Command } from './types.ts';

export const migrateCommand: Command = {
  name: 'migrate',
  summary: 'apply migrations/ to DATABASE_URL and exit',
  usage: 'migrate',
  options: {},
  async run(_values, _positionals, ctx) {
    const config = loadConfig(ctx.env, { requireStreamCredentials: false });
    return withDatabase(
      config,
      async ({ database }) => {
        const applied = await runMigrations(database.pool);
        ctx.stdout.write(applied === 0 ? 'migrations: already up to date\n' : `migrations: applied ${applied}\n`);
        return 0;
      },
      { migrations: 'skip', stderr: ctx.stderr },
    );
  },
};
