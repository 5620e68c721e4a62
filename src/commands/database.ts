import type { Config } from '../config.ts';
import { createDatabase, type CreateDatabaseOptions, type Database } from '../db/client.ts';
import { startEmbeddedPostgres, verifyEmbeddedInstalled, resolveEmbeddedDir, type EmbeddedDatabase, type EmbeddedPackages } from '../db/embedded.ts';
import { runMigrations } from '../db/migrate.ts';
import { classifyDatabaseError, describeDatabaseTarget, verifyConnection, verifyMigrated, type DatabaseTarget } from '../db/verify.ts';

export interface DatabaseScope {
  readonly database: Database;
  readonly url: string;
  /** Host, port, database and user of `url` (never the password), for messages. */
  readonly target: DatabaseTarget;
  /** Set when DATABASE_URL was unset and the embedded server under ./.attendance/ is in use. */
  readonly embedded: EmbeddedDatabase | undefined;
}

export interface WithDatabaseOptions extends CreateDatabaseOptions {
  /**
   * `require` (the default): the command needs the tables, so an unmigrated DATABASE_URL is a
   * ConfigError telling to run `attendance migrate`; the embedded server, being ours, is migrated
   * on the spot instead. `skip`: `migrate` itself, which creates them.
   */
  readonly migrations?: 'require' | 'skip';
  /** Where the embedded-fallback notice goes; the CLI's stderr. */
  readonly stderr?: NodeJS.WritableStream;
  /** Where the embedded server lives when DATABASE_URL is unset (tests use a temporary folder). */
  readonly embeddedDir?: string;
  /** Test seam: package names to load the embedded server from. */
  readonly embeddedPackages?: EmbeddedPackages;
}

/**
 * Opens DATABASE_URL, or the embedded Postgres when it is unset, for the length of `fn`; checks
 * first that it answers and (unless `migrations: 'skip'`) is migrated, so every command fails
 * at start with a ConfigError (exit 2) naming DATABASE_URL and the fix.
 */
export async function withDatabase<T>(config: Config, fn: (scope: DatabaseScope) => Promise<T>, options: WithDatabaseOptions = {}): Promise<T> {
  const { migrations = 'require', stderr = process.stderr, embeddedDir, embeddedPackages, ...poolOptions } = options;
  let embedded: EmbeddedDatabase | undefined;
  if (config.databaseUrl === undefined) {
    // Checked before the notice, so a missing package is the one line the user sees.
    await verifyEmbeddedInstalled(embeddedPackages);
    stderr.write(`${embeddedNotice(resolveEmbeddedDir(embeddedDir))}\n`);
    embedded = await startEmbeddedPostgres({ dir: embeddedDir, packages: embeddedPackages });
  }
  const url = config.databaseUrl ?? embedded!.url;
  const target = describeDatabaseTarget(url, embedded ? `the embedded Postgres in ${embedded.dir}` : 'DATABASE_URL');
  const database = createDatabase(url, poolOptions);
  try {
    await verifyConnection(database.pool, target, { forMigrate: migrations === 'skip' });
    if (migrations === 'require') {
      if (embedded) await runMigrations(database.pool);
      else await verifyMigrated(database.pool, target);
    }
    try {
      return await fn({ database, url, target, embedded });
    } catch (error) {
      throw classifyDatabaseError(error, target);
    }
  } finally {
    await database.close();
    await embedded?.stop();
  }
}

/** The first line of stderr of every command that falls back to the embedded server. */
export function embeddedNotice(dir: string): string {
  return `attendance: DATABASE_URL is not set: using the embedded Postgres in ${dir} (set DATABASE_URL to use your own database)`;
}
