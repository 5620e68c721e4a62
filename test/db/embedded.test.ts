import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createDatabase } from '../../src/db/client.ts';
import { startEmbeddedPostgres } from '../../src/db/embedded.ts';
import { migrationsApplied, runMigrations } from '../../src/db/migrate.ts';
import { insertSessionRows } from '../helpers/session-rows.ts';

describe('embedded Postgres (used when DATABASE_URL is unset)', () => {
  it('starts, migrates, stops, and keeps its data for the next start', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'attendance-embedded-'));
    try {
      const first = await startEmbeddedPostgres({ dir });
      const db1 = createDatabase(first.url);
      try {
        expect(await runMigrations(db1.pool)).toBeGreaterThan(0);
        await insertSessionRows(db1.pool, [{ call_session_id: 'kept', call_id: 'c' }]);
      } finally {
        await db1.close();
        await first.stop();
      }

      const second = await startEmbeddedPostgres({ dir });
      const db2 = createDatabase(second.url);
      try {
        expect(await migrationsApplied(db2.pool)).toBe(true);
        expect(await runMigrations(db2.pool)).toBe(0);
        const { rows } = await db2.pool.query('select call_session_id from call_sessions');
        expect(rows).toEqual([{ call_session_id: 'kept' }]);
      } finally {
        await db2.close();
        await second.stop();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
