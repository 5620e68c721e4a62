import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { migrationsApplied, runMigrations, MIGRATIONS_DIR } from '../../src/db/migrate.ts';
import { useTestDatabase } from '../helpers/db.ts';

describe('migrations', () => {
  const empty = useTestDatabase({ migrated: false });

  it('apply every migration to an empty database, then change nothing on a second run', async () => {
    const journal = JSON.parse(await readFile(`${MIGRATIONS_DIR}/meta/_journal.json`, 'utf8')) as { entries: unknown[] };
    const { pool } = empty.current.database;
    expect(await migrationsApplied(pool)).toBe(false);

    expect(await runMigrations(pool)).toBe(journal.entries.length);
    expect(await migrationsApplied(pool)).toBe(true);
    const tables = await pool.query<{ table_name: string }>(
      "select table_name from information_schema.tables where table_schema = 'public' and table_type = 'BASE TABLE' order by 1",
    );
    expect(tables.rows.map((r) => r.table_name)).toEqual(expect.arrayContaining(['call_sessions', 'participant_sessions', 'webhook_events']));

    const schemaBefore = await pool.query('select table_name, column_name, data_type from information_schema.columns where table_schema = $1 order by 1, 2', [
      'public',
    ]);
    expect(await runMigrations(pool)).toBe(0);
    const schemaAfter = await pool.query('select table_name, column_name, data_type from information_schema.columns where table_schema = $1 order by 1, 2', [
      'public',
    ]);
    expect(schemaAfter.rows).toEqual(schemaBefore.rows);
  });

  it('two migrators at once apply each migration once', async () => {
    const fresh = useTestDatabaseNow();
    const db = await fresh;
    try {
      const results = await Promise.all([runMigrations(db.database.pool), runMigrations(db.database.pool)]);
      expect(results.sort()).toEqual([0, results[1]]);
      expect(results[1]).toBeGreaterThan(0);
      const { rows } = await db.database.pool.query<{ n: number }>('select count(*)::int as n from drizzle.__drizzle_migrations');
      expect(rows[0]?.n).toBe(results[1]);
    } finally {
      await db.drop();
    }
  });
});

async function useTestDatabaseNow() {
  const { createTestDatabase } = await import('../helpers/db.ts');
  return createTestDatabase({ migrated: false });
}
