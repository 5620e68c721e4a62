import { randomUUID } from 'node:crypto';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Pool } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateSession } from '../../src/simulator/generate.ts';
import { startSimulator, type Simulator } from '../../src/simulator/server.ts';
import { participantJson } from '../../src/simulator/wire.ts';
import { buildStatsReportReadyEvent } from '../../src/simulator/webhooks.ts';
import { signWebhook } from '../../src/stream/signature.ts';
import { createServerToken } from '../../src/stream/token.ts';
import { insertCallSession, insertEntries, type WireEntry } from '../helpers/attendance-data.ts';
import { useTestDatabase } from '../helpers/db.ts';
import type { FloodPlan, FloodReport } from './flood.ts';
import { createServeSupervisor, type ServeSupervisor } from './serve-process.ts';

const RUN_TS = fileURLToPath(new URL('../../bin/run-ts.js', import.meta.url));
const FLOOD_SCRIPT = fileURLToPath(new URL('./flood.ts', import.meta.url));

const API_KEY = 'starvation-key';
const API_SECRET = 'starvation-secret-0123456789';
// The red-team run (issue 15): 100 parallel /summary on a 20,000-row session, 600 parallel /metrics.
const SUMMARY_ROWS = 20_000;
const PARALLEL_SUMMARIES = 100;
const PARALLEL_SCRAPES = 600;
const FLOOD_WAVES = 3;
// Enough call_sessions rows that the old scrape-time aggregates cost what they cost at scale.
const QUEUE_ROWS = 200_000;
const WEBHOOKS = 150;
const WEBHOOK_CONCURRENCY = 5;

const percentile = (values: readonly number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? 0;
};

describe('intake is not starved by archive summaries and /metrics', () => {
  const test = useTestDatabase();
  const session = generateSession({ seed: 'starvation', size: SUMMARY_ROWS, endedAt: new Date(Date.now() - 3_600_000), callType: 'default', callId: 'flooded' });
  let sim: Simulator;
  let serve: ServeSupervisor;

  beforeAll(async () => {
    const pool = test.current.database.pool;
    const seed = { call_session_id: session.callSessionId, call_type: session.callType, call_id: session.callId };
    await insertCallSession(pool, { ...seed, status: 'complete', total_participant_sessions: SUMMARY_ROWS, archived_participant_sessions: SUMMARY_ROWS });
    await insertEntries(pool, seed, session.participants.map((p) => JSON.parse(participantJson(p, 'rfc3339', 'omit')) as WireEntry));
    await pool.query(
      `insert into call_sessions (call_session_id, call_type, call_id, call_cid, status, retention_expires_at)
       select 'bulk-' || i, 'default', 'bulk-' || i, 'default:bulk-' || i,
              (array['complete', 'complete', 'complete', 'expired', 'dead'])[1 + i % 5], now() + make_interval(days => i % 90)
         from generate_series(1, $1::int) as i`,
      [QUEUE_ROWS],
    );
    await pool.query('analyze call_sessions');
    sim = await startSimulator({ apiKey: API_KEY, apiSecret: API_SECRET });
    serve = await createServeSupervisor({
      DATABASE_URL: test.current.url,
      STREAM_API_KEY: API_KEY,
      STREAM_API_SECRET: API_SECRET,
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

  it(
    'signed webhooks answer 200 with p99 under 1 s during 100 parallel summaries + 600 parallel scrapes; nothing answers 500',
    async () => {
      const token = await createServerToken(API_SECRET);
      const summaryPath = `/api/v2/video/call/${session.callType}/${session.callId}/session/${session.callSessionId}/participant_sessions/summary?api_key=${API_KEY}`;
      const intake = new Pool(serve.url, { connections: WEBHOOK_CONCURRENCY });
      // Warm connections, as Stream's would be: what is measured is the service, not the accept queue.
      await Promise.all(Array.from({ length: WEBHOOK_CONCURRENCY }, async () => (await intake.request({ path: '/healthz', method: 'GET' })).body.text()));
      const plan: FloodPlan = {
        url: serve.url,
        waves: FLOOD_WAVES,
        targets: [
          { path: summaryPath, headers: { authorization: token, 'stream-auth-type': 'jwt' }, parallel: PARALLEL_SUMMARIES },
          { path: '/metrics', parallel: PARALLEL_SCRAPES },
        ],
      };
      const floodClient = spawn(process.execPath, [RUN_TS, FLOOD_SCRIPT, JSON.stringify(plan)], { stdio: ['ignore', 'pipe', 'inherit'] });
      let floodOutput = '';
      floodClient.stdout!.on('data', (chunk: Buffer) => (floodOutput += chunk.toString('utf8')));
      let flooding = true;
      const floodDone = new Promise<void>((resolve) => floodClient.once('exit', () => resolve())).then(() => {
        flooding = false;
      });

      const latencies: number[] = [];
      const statuses: number[] = [];
      let sent = 0;
      // Webhooks go out for as long as the flood lasts (and at least WEBHOOKS of them).
      await Promise.all(
        Array.from({ length: WEBHOOK_CONCURRENCY }, async () => {
          while (sent < WEBHOOKS || flooding) {
            sent++;
            const event = buildStatsReportReadyEvent(generateSession({ seed: `hook-${sent}`, size: 1 }));
            const body = Buffer.from(JSON.stringify(event));
            const started = performance.now();
            const response = await intake.request({
              path: '/webhooks/stream',
              method: 'POST',
              headers: { 'content-type': 'application/json', 'x-api-key': API_KEY, 'x-signature': signWebhook(body, API_SECRET), 'x-webhook-id': randomUUID() },
              body,
            });
            await response.body.text();
            latencies.push(performance.now() - started);
            statuses.push(response.statusCode);
          }
        }),
      );
      await floodDone;
      await intake.close();

      const report = JSON.parse(floodOutput) as FloodReport;
      const summaries = report['/api/v2/video/call/default/flooded/session/' + session.callSessionId + '/participant_sessions/summary']!;
      const scrapes = report['/metrics']!;
      const p50 = percentile(latencies, 50);
      const p99 = percentile(latencies, 99);
      console.log(
        `starvation: ${statuses.length} webhooks, p50 ${p50.toFixed(1)} ms, p99 ${p99.toFixed(1)} ms, max ${Math.max(...latencies).toFixed(1)} ms; ` +
          `summaries ${JSON.stringify(summaries)}; scrapes ${JSON.stringify(scrapes)}`,
      );

      expect(statuses.filter((s) => s !== 200)).toEqual([]);
      expect(p99).toBeLessThan(1_000);
      // Summaries: served, or refused with 503 and Retry-After; never 500. Every scrape served.
      expect(Object.keys(summaries.statuses).filter((s) => s !== '200' && s !== '503')).toEqual([]);
      expect(summaries.statuses['200'] ?? 0).toBeGreaterThan(0);
      expect(summaries.withoutRetryAfter).toBe(0);
      expect(summaries.failed).toBe(0);
      expect(scrapes).toEqual({ statuses: { 200: PARALLEL_SCRAPES * FLOOD_WAVES }, withoutRetryAfter: 0, failed: 0 });
      const stored = await test.current.database.pool.query<{ n: number }>(`select count(*)::int as n from webhook_events`);
      expect(stored.rows[0]!.n).toBe(statuses.length);
    },
    120_000,
  );
});
