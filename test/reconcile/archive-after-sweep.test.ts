import { describe, expect, it } from 'vitest';
import { startWorker } from '../../src/ingest/worker.ts';
import { createMetrics } from '../../src/metrics.ts';
import { runSweep } from '../../src/reconcile/sweep.ts';
import { generateSession } from '../../tools/simulator/generate.ts';
import { useTestDatabase } from '../helpers/db.ts';
import { captureLogs, startStreamHarness } from './harness.ts';
import { HOUR_MS } from '../../src/time.ts';

describe('a session no webhook announced', () => {
  const test = useTestDatabase();

  it('is archived after one sweep', async () => {
    const ended = (hours: number) => new Date(Math.floor((Date.now() - hours * HOUR_MS) / 1000) * 1000);
    const sessions = [generateSession({ seed: 'missed-a', size: 3, endedAt: ended(2) }), generateSession({ seed: 'missed-b', size: 7, endedAt: ended(30) })];
    const harness = await startStreamHarness(sessions);
    const metrics = createMetrics({ defaultMetrics: false });
    const { logger } = captureLogs();
    const worker = startWorker({ database: test.current.database, logger, metrics, stream: harness.stream, concurrency: 2, pollIntervalMs: 200 });
    try {
      const sweep = await runSweep({ database: test.current.database, logger, metrics, stream: harness.stream, lookbackDays: 7 });
      expect(sweep).toMatchObject({ ran: true, enqueued: 2 });

      const pool = test.current.database.pool;
      await expect
        .poll(async () => (await pool.query<{ status: string }>('select status from call_sessions order by call_session_id')).rows.map((r) => r.status), {
          timeout: 15_000,
          interval: 100,
        })
        .toEqual(['complete', 'complete']);
      for (const session of sessions) {
        const { rows } = await pool.query<{ id: string }>('select user_session_id as id from participant_sessions where call_session_id = $1', [
          session.callSessionId,
        ]);
        expect(rows.map((r) => r.id).sort()).toEqual(session.participants.map((p) => p.user_session_id).sort());
      }
    } finally {
      await worker.stop();
      await harness.close();
    }
  });
});
