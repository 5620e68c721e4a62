import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SimSession } from '../../tools/simulator/generate.ts';
import { startSimulator, type Simulator } from '../../tools/simulator/server.ts';
import { useTestDatabase } from '../helpers/db.ts';
import { createServeSupervisor, type ServeSupervisor } from './serve-process.ts';
import { formatStarvation, runStarvationFlood, seedStarvationData } from './starvation-run.ts';

const KEYS = { apiKey: 'starvation-key', apiSecret: 'starvation-secret-0123456789' };
// The red-team run (issue 15): 100 parallel /summary on a 20,000-row session, 600 parallel /metrics.
// `npm run chaos` runs the same flood for more waves.
const SUMMARY_ROWS = 20_000;
const PARALLEL_SUMMARIES = 100;
const PARALLEL_SCRAPES = 600;
const FLOOD_WAVES = 3;
const QUEUE_ROWS = 200_000;
const WEBHOOKS = 150;
const WEBHOOK_CONCURRENCY = 5;

describe('intake is not starved by archive summaries and /metrics', () => {
  const test = useTestDatabase();
  let session: SimSession;
  let sim: Simulator;
  let serve: ServeSupervisor;

  beforeAll(async () => {
    session = await seedStarvationData(test.current.database.pool, { summaryRows: SUMMARY_ROWS, queueRows: QUEUE_ROWS });
    sim = await startSimulator(KEYS);
    serve = await createServeSupervisor({
      DATABASE_URL: test.current.url,
      STREAM_API_KEY: KEYS.apiKey,
      STREAM_API_SECRET: KEYS.apiSecret,
      STREAM_BASE_URL: sim.url,
      LOG_LEVEL: 'info',
      RECONCILE_INTERVAL_MINUTES: '0',
    });
    await serve.start();
  }, 120_000);

  afterAll(async () => {
    await serve?.stop();
    await sim?.close();
  });

  it('signed webhooks answer 200 with p99 under 1 s during 100 parallel summaries + 600 parallel scrapes; nothing answers 500', async () => {
    const report = await runStarvationFlood({
      serveUrl: serve.url,
      keys: KEYS,
      session,
      waves: FLOOD_WAVES,
      parallelSummaries: PARALLEL_SUMMARIES,
      parallelScrapes: PARALLEL_SCRAPES,
      webhookConcurrency: WEBHOOK_CONCURRENCY,
      minWebhooks: WEBHOOKS,
    });
    console.log(`starvation: ${formatStarvation(report)}`);
    const { summaries, scrapes } = report;

    expect(report.webhookStatuses.filter((s) => s !== 200)).toEqual([]);
    expect(report.p99Ms).toBeLessThan(1_000);
    // Summaries: served, or refused with 503 and Retry-After; never 500. Every scrape served.
    expect(Object.keys(summaries.statuses).filter((s) => s !== '200' && s !== '503')).toEqual([]);
    expect(summaries.statuses['200'] ?? 0).toBeGreaterThan(0);
    expect(summaries.withoutRetryAfter).toBe(0);
    expect(summaries.failed).toBe(0);
    expect(scrapes).toEqual({ statuses: { 200: PARALLEL_SCRAPES * FLOOD_WAVES }, withoutRetryAfter: 0, failed: 0 });
    const stored = await test.current.database.pool.query<{ n: number }>(`select count(*)::int as n from webhook_events`);
    expect(stored.rows[0]!.n).toBe(report.webhookStatuses.length);
  }, 120_000);
});
