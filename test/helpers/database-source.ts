import pg from 'pg';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startEmbeddedPostgres } from '../../src/db/embedded.ts';

export interface DatabaseSource {
  /** A connection string with rights to create and drop databases. */
  readonly adminUrl: string;
  readonly kind: 'DATABASE_URL' | 'testcontainers' | 'embedded';
  stop(): Promise<void>;
}

/**
 * Where the test databases come from: DATABASE_URL if set, else a testcontainers Postgres when a
 * Docker engine answers, else the embedded Postgres package. Fails with a message that says what to do.
 */
export async function acquireDatabaseSource(env: NodeJS.ProcessEnv): Promise<DatabaseSource> {
  if (env.DATABASE_URL) {
    await preflight(env.DATABASE_URL);
    return { adminUrl: env.DATABASE_URL, kind: 'DATABASE_URL', stop: async () => undefined };
  }
  const container = await tryTestcontainers();
  if (container) return container;
  const dir = await mkdtemp(join(tmpdir(), 'attendance-test-pg-'));
  const embedded = await startEmbeddedPostgres({ dir });
  await preflight(embedded.url);
  return { adminUrl: embedded.url, kind: 'embedded', stop: () => embedded.stop() };
}

async function tryTestcontainers(): Promise<DatabaseSource | undefined> {
  try {
    const { PostgreSqlContainer } = await import('@testcontainers/postgresql');
    const started = await new PostgreSqlContainer('postgres:16-alpine').start();
    return { adminUrl: started.getConnectionUri(), kind: 'testcontainers', stop: async () => void (await started.stop()) };
  } catch (error) {
    // No Docker engine: testcontainers rejects at once ("Could not find a working container runtime strategy").
    if (/container runtime strategy|docker/i.test(String((error as Error)?.message))) return undefined;
    throw error;
  }
}

async function preflight(url: string): Promise<void> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 });
  try {
    await client.connect();
    const { rows } = await client.query<{ ok: boolean }>('select rolcreatedb or rolsuper as ok from pg_roles where rolname = current_user');
    if (!rows[0]?.ok) throw new Error('the role cannot create databases');
  } catch (error) {
    const where = safeUrl(url);
    throw new Error(
      `test database preflight failed for ${where}: ${(error as Error).message}. ` +
        'Start Postgres (for example `pg_ctlcluster 15 main start`), point DATABASE_URL at a server whose role may ' +
        'CREATE DATABASE, or unset DATABASE_URL to use the embedded Postgres.',
      { cause: error },
    );
  } finally {
    await client.end().catch(() => undefined);
  }
}

function safeUrl(url: string): string {
  try {
    const parsed = new URL(url);
    parsed.password = parsed.password ? '***' : '';
    return parsed.toString();
  } catch {
    return '(unparseable DATABASE_URL)';
  }
}
