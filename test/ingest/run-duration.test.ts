import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startWorker } from '../../src/ingest/worker.ts';
import { createMetrics } from '../../src/metrics.ts';
import { generateSession } from '../../tools/simulator/generate.ts';
import { startSimulator, type Simulator } from '../../tools/simulator/server.ts';
import { createStreamClient } from '../../src/stream/client.ts';
import { useTestDatabase } from '../helpers/db.ts';
import { FAST_BACKOFF, FAST_PAGE_RETRY, enqueueSimSession, quietLogger, waitFor } from './helpers.ts';
import { readSessionRow } from '../helpers/session-rows.ts';
import { HOUR_MS } from '../../src/time.ts';

const API_KEY = 'duration-key';
const API_SECRET = 'duration-secret';

describe('archive run duration histogram', () => {
  const db = useTestDatabase();
  let sim: Simulator;
  beforeAll(async () => {
    sim = await startSimulator({ apiKey: API_KEY, apiSecret: API_SECRET, pageLatencyMs: 20 });
  });
  afterAll(async () => {
    await sim?.close();
  });

  it('observes each finished run once, labelled by how it ended, for as long as it took', async () => {
    const session = generateSession({ seed: 'duration', size: 250, endedAt: new Date(Date.now() - HOUR_MS) });
    sim.addSession(session);
    await enqueueSimSession(db.current.database.pool, session);
    const metrics = createMetrics({ defaultMetrics: false });
    const stream = createStreamClient({ baseUrl: sim.url, apiKey: API_KEY, apiSecret: API_SECRET });
    const worker = startWorker({
      database: db.current.database,
      logger: quietLogger(),
      metrics,
      stream,
      concurrency: 1,
      pollIntervalMs: 50,
      backoff: FAST_BACKOFF,
      pageRetry: FAST_PAGE_RETRY,
      workerId: 'duration-test',
    });
    try {
      await waitFor('the session complete', async () => (await readSessionRow(db.current.database.pool, session.callSessionId)).status === 'complete');
      const text = await metrics.registry.metrics();
      expect(text).toMatch(/^attendance_archive_run_duration_seconds_count\{status="complete"\} 1$/m);
      // Three pages at 20 ms each at least.
      const sum = Number(/^attendance_archive_run_duration_seconds_sum\{status="complete"\} (\S+)$/m.exec(text)?.[1]);
      expect(sum).toBeGreaterThanOrEqual(0.06);
      expect(sum).toBeLessThan(30);
    } finally {
      await worker.stop();
      await stream.close();
    }
  });
});
