import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type pg from 'pg';
import { drizzle, migrate } from './drizzle.ts';
import { ADVISORY_LOCK_KEYS } from './advisory-lock.ts';

export const MIGRATIONS_DIR = fileURLToPath(new URL('../../migrations/', import.meta.url));

// Replicas starting together must not apply the same migration twice; the key is arbitrary but fixed.
const MIGRATION_LOCK_KEY = ADVISORY_LOCK_KEYS.migrate;

interface Journal {
  entries: { idx: number; tag: string; when: number }[];
}

// The journal ships with the build and never changes while it runs; /readyz asks on every probe.
let journal: Promise<Journal> | undefined;

function readJournal(): Promise<Journal> {
  journal ??= readFile(new URL('meta/_journal.json', `file://${MIGRATIONS_DIR}`), 'utf8').then((text) => JSON.parse(text) as Journal);
  journal.catch(() => (journal = undefined));
  return journal;
}

/** Applies every pending migration under an advisory lock. Idempotent. Returns how many were applied. */
export async function runMigrations(pool: pg.Pool): Promise<number> {
  const client = await pool.connect();
  try {
    await client.query('select pg_advisory_lock($1)', [MIGRATION_LOCK_KEY]);
    const before = await appliedCount(client);
    await migrate(drizzle(client), { migrationsFolder: MIGRATIONS_DIR });
    return (await appliedCount(client)) - before;
  } finally {
    await client.query('select pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]).catch(() => undefined);
    client.release();
  }
}

/** True when every migration shipped with this build has been applied (readiness). */
export async function migrationsApplied(pool: pg.Pool | pg.PoolClient): Promise<boolean> {
  const { applied, shipped } = await migrationProgress(pool);
  return applied >= shipped;
}

/** How many migrations the database has, against how many this build ships. */
export async function migrationProgress(pool: pg.Pool | pg.PoolClient): Promise<{ applied: number; shipped: number }> {
  const journal = await readJournal();
  return { applied: await appliedCount(pool), shipped: journal.entries.length };
}

async function appliedCount(client: pg.Pool | pg.PoolClient): Promise<number> {
  const exists = await client.query<{ present: boolean }>("select to_regclass('drizzle.__drizzle_migrations') is not null as present");
  if (!exists.rows[0]?.present) return 0;
  const { rows } = await client.query<{ n: number }>('select count(*)::int as n from drizzle.__drizzle_migrations');
  return rows[0]?.n ?? 0;
}
