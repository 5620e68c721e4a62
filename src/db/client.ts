import pg from 'pg';
import type { NodePgDatabase } from 'drizzle-orm/node-postgres';
import { drizzle } from './drizzle.ts';
import * as schema from './schema.ts';

export type Db = NodePgDatabase<typeof schema>;

export interface Database {
  readonly pool: pg.Pool;
  readonly db: Db;
  close(): Promise<void>;
}

export interface CreateDatabaseOptions {
  readonly max?: number;
  /** Fail fast when Postgres is unreachable, so the webhook route can answer 503 well inside Stream's 6 s. */
  readonly connectionTimeoutMillis?: number;
  readonly applicationName?: string;
  /** Called for errors on idle clients (a restarted server); without a listener pg would crash the process. */
  readonly onError?: (error: Error) => void;
}

// Postgres bigint (int8) counts in this schema stay far below 2^53.
pg.types.setTypeParser(pg.types.builtins.INT8, (value) => Number(value));

/** The same server and credentials as `url`, another database. */
export function withDatabaseName(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}

export function createDatabase(connectionString: string, options: CreateDatabaseOptions = {}): Database {
  const pool = new pg.Pool({
    connectionString,
    max: options.max ?? 10,
    connectionTimeoutMillis: options.connectionTimeoutMillis ?? 2_000,
    idleTimeoutMillis: 30_000,
    // A half-open connection (a restarted server, a dropped NAT entry) is noticed instead of
    // hanging a query for ever.
    keepAlive: true,
    application_name: options.applicationName ?? 'stream-attendance',
  });
  pool.on('error', (error) => options.onError?.(error));
  const db = drizzle(pool, { schema });
  let closed = false;
  return {
    pool,
    db,
    async close() {
      if (closed) return;
      closed = true;
      await pool.end();
    },
  };
}
