import { describe, expect, it } from 'vitest';
import { createMetrics } from '../../src/metrics.ts';
import { enqueueWebhookEvent } from '../../src/queue/enqueue.ts';
import { runSweep } from '../../src/reconcile/sweep.ts';
import { buildSessionEndedEvent } from '../../tools/simulator/webhooks.ts';
import { parseWebhookEvent, type HandledWebhookEvent } from '../../src/stream/webhook-events.ts';
import { useTestDatabase } from '../helpers/db.ts';
import { captureLogs, endedSession, startStreamHarness } from './harness.ts';

describe('a session whose call.stats_report_ready webhook was lost', () => {
  const test = useTestDatabase();

  // Regression: a session known only from call.session_ended waited its full hour even though
  // call_stats already listed its report; the sweep left every known session alone.
  it('is made due by the next sweep, and only it: retrying and reported sessions keep their schedule', async () => {
    const pool = test.current.database.pool;
    const endedOnly = endedSession('ended-only', 1);
    const retrying = endedSession('retrying', 1);
    const complete = endedSession('complete', 1);
    const harness = await startStreamHarness([endedOnly, retrying, complete]);
    try {
      for (const session of [endedOnly, retrying, complete]) {
        const body = buildSessionEndedEvent(session);
        const event = parseWebhookEvent(body) as HandledWebhookEvent;
        await enqueueWebhookEvent(
          pool,
          { webhookId: `ended-${session.callSessionId}`, attempt: 1, event, bodyText: JSON.stringify(body), payload: body },
          { deadlineMs: 5_000 },
        );
      }
      await pool.query(`update call_sessions set status = 'retrying', next_attempt_at = now() + interval '10 minutes' where call_session_id = $1`, [
        retrying.callSessionId,
      ]);
      await pool.query(`update call_sessions set status = 'complete' where call_session_id = $1`, [complete.callSessionId]);
      const dueIn = async (id: string) =>
        (
          await pool.query<{ seconds: number }>(
            'select extract(epoch from next_attempt_at - now())::float8 as seconds from call_sessions where call_session_id = $1',
            [id],
          )
        ).rows[0]!.seconds;
      expect(await dueIn(endedOnly.callSessionId)).toBeGreaterThan(3_000);

      const result = await runSweep({
        database: test.current.database,
        logger: captureLogs().logger,
        metrics: createMetrics({ defaultMetrics: false }),
        stream: harness.stream,
        lookbackDays: 7,
      });
      expect(result).toMatchObject({ ran: true, enqueued: 0 });
      expect(await dueIn(endedOnly.callSessionId)).toBeLessThanOrEqual(0);
      expect(await dueIn(retrying.callSessionId)).toBeGreaterThan(500);
      const statuses = (await pool.query<{ id: string; status: string }>('select call_session_id as id, status from call_sessions')).rows;
      expect(Object.fromEntries(statuses.map((r) => [r.id, r.status]))).toEqual({
        [endedOnly.callSessionId]: 'pending',
        [retrying.callSessionId]: 'retrying',
        [complete.callSessionId]: 'complete',
      });
    } finally {
      await harness.close();
    }
  });
});
