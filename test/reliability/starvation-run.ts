import { randomUUID } from 'node:crypto';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type pg from 'pg';
import { Pool } from 'undici';
import { generateSession, type SimSession } from '../../tools/simulator/generate.ts';
import { participantJson } from '../../tools/simulator/wire.ts';
import { buildStatsReportReadyEvent } from '../../tools/simulator/webhooks.ts';
import { signWebhook } from '../../src/stream/signature.ts';
import { createServerToken } from '../../src/stream/token.ts';
import { insertCallSession, insertEntries, type WireEntry } from '../helpers/attendance-data.ts';
import type { FloodPlan, FloodReport } from './flood.ts';
import type { HostileKeys } from './hostile-requests.ts';
import { percentile } from './signed-post.ts';
import { HOUR_MS } from '../../src/time.ts';

const RUN_TS = fileURLToPath(new URL('../../bin/run-ts.js', import.meta.url));
const FLOOD_SCRIPT = fileURLToPath(new URL('./flood.ts', import.meta.url));

export interface StarvationData {
  /** Entries of the session every /summary asks about. */
  readonly summaryRows: number;
  /** Other call_sessions rows, so the old scrape-time aggregates would cost what they cost at scale. */
  readonly queueRows: number;
}

/** A complete session of `summaryRows` archived entries and `queueRows` other sessions; analyzed. */
export async function seedStarvationData(pool: pg.Pool, data: StarvationData): Promise<SimSession> {
  const session = generateSession({
    seed: 'starvation',
    size: data.summaryRows,
    endedAt: new Date(Date.now() - HOUR_MS),
    callType: 'default',
    callId: 'flooded',
  });
  const seed = { call_session_id: session.callSessionId, call_type: session.callType, call_id: session.callId };
  await insertCallSession(pool, { ...seed, status: 'complete', total_participant_sessions: data.summaryRows, archived_participant_sessions: data.summaryRows });
  await insertEntries(
    pool,
    seed,
    session.participants.map((p) => JSON.parse(participantJson(p, 'rfc3339', 'omit')) as WireEntry),
  );
  await pool.query(
    `insert into call_sessions (call_session_id, call_type, call_id, call_cid, status, retention_expires_at)
     select 'bulk-' || i, 'default', 'bulk-' || i, 'default:bulk-' || i,
            (array['complete', 'complete', 'complete', 'expired', 'dead'])[1 + i % 5], now() + make_interval(days => i % 90)
       from generate_series(1, $1::int) as i`,
    [data.queueRows],
  );
  await pool.query('analyze call_sessions');
  return session;
}

export interface StarvationPlan {
  readonly serveUrl: string;
  readonly keys: HostileKeys;
  /** The seeded session (seedStarvationData). */
  readonly session: SimSession;
  /** Each wave sends `parallelSummaries` authenticated /summary and `parallelScrapes` /metrics at once. */
  readonly waves: number;
  readonly parallelSummaries: number;
  readonly parallelScrapes: number;
  /** Senders of signed webhooks, each one after another on a warm connection. */
  readonly webhookConcurrency: number;
  /** Webhooks go out for as long as the flood lasts, and at least this many. */
  readonly minWebhooks: number;
}

export interface StarvationReport {
  readonly webhookStatuses: readonly number[];
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  readonly summaries: FloodReport[string];
  readonly scrapes: FloodReport[string];
}

/**
 * Signed webhooks while waves of archive summaries and scrapes arrive from another process (so
 * the client's own event loop, busy with hundreds of answers, adds nothing to the latencies).
 */
export async function runStarvationFlood(plan: StarvationPlan): Promise<StarvationReport> {
  const { session, keys } = plan;
  const token = await createServerToken(keys.apiSecret);
  const summaryPath = `/api/v2/video/call/${session.callType}/${session.callId}/session/${session.callSessionId}/participant_sessions/summary`;
  const intake = new Pool(plan.serveUrl, { connections: plan.webhookConcurrency });
  // Warm connections, as Stream's would be: what is measured is the service, not the accept queue.
  await Promise.all(Array.from({ length: plan.webhookConcurrency }, async () => (await intake.request({ path: '/healthz', method: 'GET' })).body.text()));
  const flood: FloodPlan = {
    url: plan.serveUrl,
    waves: plan.waves,
    targets: [
      { path: `${summaryPath}?api_key=${keys.apiKey}`, headers: { authorization: token, 'stream-auth-type': 'jwt' }, parallel: plan.parallelSummaries },
      { path: '/metrics', parallel: plan.parallelScrapes },
    ],
  };
  const floodClient = spawn(process.execPath, [RUN_TS, FLOOD_SCRIPT, JSON.stringify(flood)], { stdio: ['ignore', 'pipe', 'inherit'] });
  let floodOutput = '';
  floodClient.stdout!.on('data', (chunk: Buffer) => (floodOutput += chunk.toString('utf8')));
  let flooding = true;
  const floodDone = new Promise<void>((resolve) => floodClient.once('exit', () => resolve())).then(() => {
    flooding = false;
  });

  const latencies: number[] = [];
  const statuses: number[] = [];
  let sent = 0;
  try {
    await Promise.all(
      Array.from({ length: plan.webhookConcurrency }, async () => {
        while (sent < plan.minWebhooks || flooding) {
          sent++;
          const body = Buffer.from(JSON.stringify(buildStatsReportReadyEvent(generateSession({ seed: `hook-${sent}`, size: 1 }))));
          const started = performance.now();
          const response = await intake.request({
            path: '/webhooks/stream',
            method: 'POST',
            headers: {
              'content-type': 'application/json',
              'x-api-key': keys.apiKey,
              'x-signature': signWebhook(body, keys.apiSecret),
              'x-webhook-id': randomUUID(),
            },
            body,
          });
          await response.body.text();
          latencies.push(performance.now() - started);
          statuses.push(response.statusCode);
        }
      }),
    );
    await floodDone;
  } finally {
    await intake.close();
  }

  const report = JSON.parse(floodOutput) as FloodReport;
  const empty = { statuses: {}, withoutRetryAfter: 0, failed: 0 };
  return {
    webhookStatuses: statuses,
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    maxMs: Math.max(...latencies),
    summaries: report[summaryPath] ?? empty,
    scrapes: report['/metrics'] ?? empty,
  };
}

/** One line, for the test log and `npm run chaos`. */
export function formatStarvation(report: StarvationReport): string {
  return (
    `${report.webhookStatuses.length} webhooks, p50 ${report.p50Ms.toFixed(1)} ms, p99 ${report.p99Ms.toFixed(1)} ms, max ${report.maxMs.toFixed(1)} ms; ` +
    `summaries ${JSON.stringify(report.summaries)}; scrapes ${JSON.stringify(report.scrapes)}`
  );
}
