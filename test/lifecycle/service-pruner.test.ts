import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startService } from '../../src/commands/runtime.ts';
import { loadConfig } from '../../src/config.ts';
import { createLogger } from '../../src/logger.ts';
import { createMetrics } from '../../src/metrics.ts';
import { startSimulator, type Simulator } from '../../tools/simulator/server.ts';
import { useTestDatabase } from '../helpers/db.ts';

const API_KEY = 'pruner-test-key';
const API_SECRET = 'pruner-test-secret';

describe('the service prunes where its worker runs', () => {
  const test = useTestDatabase();
  let simulator: Simulator;
  beforeAll(async () => {
    simulator = await startSimulator({ apiKey: API_KEY, apiSecret: API_SECRET });
  });
  afterAll(async () => {
    await simulator?.close();
  });

  const expired = () => test.current.database.pool.query<{ n: number }>(`select count(*)::int as n from webhook_events where webhook_id like 'expired-%'`);
  const seed = () =>
    test.current.database.pool.query(
      `insert into webhook_events (webhook_id, type, received_at, payload)
       select 'expired-' || n, 'call.session_ended', now() - interval '31 days', '{}'::jsonb from generate_series(1, 20) n
       on conflict do nothing`,
    );
  const start = (worker: boolean) =>
    startService({
      config: loadConfig({
        DATABASE_URL: test.current.url,
        STREAM_API_KEY: API_KEY,
        STREAM_API_SECRET: API_SECRET,
        STREAM_BASE_URL: simulator.url,
        RECONCILE_INTERVAL_MINUTES: '0',
      }),
      database: test.current.database,
      logger: createLogger({ level: 'silent' }),
      http: false,
      worker,
      migrate: false,
      metrics: createMetrics({ defaultMetrics: false }),
    });

  it('an intake-only process (--no-worker) leaves the inbox alone', async () => {
    await seed();
    const service = await start(false);
    try {
      await new Promise((r) => setTimeout(r, 500));
      expect((await expired()).rows[0]!.n).toBe(20);
    } finally {
      await service.stop();
    }
  });

  it('serve/worker prunes expired inbox events at start, and stops cleanly', async () => {
    await seed();
    const service = await start(true);
    try {
      const deadline = Date.now() + 10_000;
      while ((await expired()).rows[0]!.n > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      expect((await expired()).rows[0]!.n).toBe(0);
      // The run shows on /metrics, not only in the log: a prune that keeps failing can be alerted on.
      let text = '';
      for (let i = 0; i < 100 && !/^attendance_prune_runs_total\{outcome="done"\} 1$/m.test(text); i++) {
        text = await service.metrics.registry.metrics();
        await new Promise((r) => setTimeout(r, 20));
      }
      expect(text).toMatch(/^attendance_prune_runs_total\{outcome="done"\} 1$/m);
      expect(text).toMatch(/^attendance_pruned_rows_total\{table="webhook_events"\} 20$/m);
      expect(Number(/^attendance_prune_last_success_timestamp_seconds (\S+)$/m.exec(text)?.[1])).toBeGreaterThan(0);
    } finally {
      const started = Date.now();
      await service.stop();
      expect(Date.now() - started).toBeLessThan(5_000);
    }
  });
});
