import type { Config } from '../config.ts';
import { createDatabase, type CreateDatabaseOptions, type Database } from '../db/client.ts';
import { startEmbeddedPostgres, type EmbeddedDatabase } from '../db/embedded.ts';

export interface DatabaseScope {
  readonly database: Database;
  readonly url: string;
  /** Set when DATABASE_URL was unset and the embedded server under ./.attendance/ is in use. */
  readonly embedded: EmbeddedDatabase | undefined;
}

/** Opens DATABASE_URL, or the embedded Postgres when it is unset, for the length of `fn`. */
export async function withDatabase<T>(
  config: Config,
  fn: (scope: DatabaseScope) => Promise<T>,
  options: CreateDatabaseOptions = {},
): Promise<T> {
  const embedded = config.databaseUrl === undefined ? await startEmbeddedPostgres() : undefined;
  const url = config.databaseUrl ?? embedded!.url;
  const database = createDatabase(url, options);
  try {
    return await fn({ database, url, embedded });
  } finally {
    await database.close();
    await embedded?.stop();
  }
}
