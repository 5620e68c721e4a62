import { describe, expect, it } from 'vitest';
import { startPruner } from '../../src/lifecycle/pruner.ts';
import { createLogger } from '../../src/logger.ts';
import { useTestDatabase } from '../helpers/db.ts';

describe('startPruner', () => {
  const test = useTestDatabase();
  const logger = createLogger({ level: 'silent' });

  it('prunes once at start, again on pruneNow, and stops promptly', async () => {
    const pool = test.current.database.pool;
    const seed = (prefix: string) =>
      pool.query(
        `insert into webhook_events (webhook_id, type, received_at, payload)
         select $1 || n, 'call.session_ended', now() - interval '31 days', '{}'::jsonb from generate_series(1, 50) n`,
        [prefix],
      );
    await seed('a-');
    const pruner = startPruner({ database: test.current.database, logger, retention: { webhookEventsDays: 30, archiveDays: undefined }, intervalMinutes: 60 });
    try {
      const deadline = Date.now() + 10_000;
      while ((await pool.query('select count(*)::int as n from webhook_events')).rows[0].n > 0 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 50));
      }
      expect((await pool.query('select count(*)::int as n from webhook_events')).rows[0].n).toBe(0);
      await seed('b-');
      expect(await pruner.pruneNow()).toMatchObject({ ran: true, webhookEvents: 50 });
    } finally {
      const started = Date.now();
      await pruner.stop();
      expect(Date.now() - started).toBeLessThan(2_000);
    }
    await expect(pruner.pruneNow()).rejects.toThrow(/stopped/);
  });
});
