import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { ArchiveResult } from '../../src/ingest/archive-session.ts';
import { startWorker, type Worker, type WorkerOptions } from '../../src/ingest/worker.ts';
import { createMetrics } from '../../src/metrics.ts';
import type { ClaimedSession } from '../../src/queue/claim.ts';
import { generateDataset, generateSession, type SimSession } from '../../tools/simulator/generate.ts';
import { startSimulator, type Simulator } from '../../tools/simulator/server.ts';
import { createStreamClient, type StreamClient } from '../../src/stream/client.ts';
import { createRateLimiter } from '../../src/stream/rate-limiter.ts';
import { HOUR_MS } from '../../src/time.ts';
import { useTestDatabase } from '../helpers/db.ts';
import { FAST_BACKOFF, FAST_PAGE_RETRY, enqueueSimSession, expectArchiveMatches, quietLogger, waitFor } from './helpers.ts';
import { readSessionRow } from '../helpers/session-rows.ts';
import { sweepPendingRollups } from '../../src/rollup/refresh.ts';

const API_KEY = 'sim-key';
const API_SECRET = 'sim-secret';

const db = useTestDatabase();
const pool = () => db.current.database.pool;
let sim: Simulator;
const logger = quietLogger();
const running: { workers: Worker[]; clients: StreamClient[] } = { workers: [], clients: [] };

beforeAll(async () => {
  sim = await startSimulator({ apiKey: API_KEY, apiSecret: API_SECRET });
});

afterAll(async () => {
  await sim.close();
});

beforeEach(async () => {
  sim.setOptions({ notReadyForMs: 0, pageLatencyMs: 0, rateLimitPerMinute: 100_000 });
  sim.setFaults(undefined);
  await pool().query('truncate participant_sessions, stream_responses, call_sessions');
});

afterEach(async () => {
  await Promise.all(running.workers.splice(0).map((w) => w.stop()));
  await Promise.all(running.clients.splice(0).map((c) => c.close()));
});

/** A client whose limiter waits at most 300 ms: Stream's windows are a minute, tests are not. */
function client(options: { apiSecret?: string; timeoutMs?: number } = {}): StreamClient {
  const stream = createStreamClient({
    baseUrl: sim.url,
    apiKey: API_KEY,
    apiSecret: options.apiSecret ?? API_SECRET,
    timeoutMs: options.timeoutMs ?? 2_000,
    limiter: createRateLimiter({ maxWaitMs: 300, resetJitterMs: 100 }),
  });
  running.clients.push(stream);
  return stream;
}

function worker(overrides: Partial<WorkerOptions> = {}): { worker: Worker; results: { session: ClaimedSession; result: ArchiveResult }[] } {
  const results: { session: ClaimedSession; result: ArchiveResult }[] = [];
  const started = startWorker({
    database: db.current.database,
    logger,
    metrics: createMetrics({ defaultMetrics: false }),
    stream: overrides.stream ?? client(),
    concurrency: 3,
    leaseSeconds: 5,
    heartbeatMs: 1_000,
    pollIntervalMs: 50,
    maxAttempts: 10,
    backoff: FAST_BACKOFF,
    pageRetry: FAST_PAGE_RETRY,
    onResult: (session, result) => results.push({ session, result }),
    ...overrides,
  });
  running.workers.push(started);
  return { worker: started, results };
}

async function addDue(sessions: readonly SimSession[]): Promise<void> {
  for (const session of sessions) {
    sim.addSession(session);
    await enqueueSimSession(pool(), session);
  }
}

async function statusCounts(): Promise<Record<string, number>> {
  const result = await pool().query<{ status: string; n: number }>('select status, count(*)::int as n from call_sessions group by status');
  return Object.fromEntries(result.rows.map((r) => [r.status, r.n]));
}

const allComplete = (n: number) => async () => ((await statusCounts()).complete ?? 0) === n;

describe('worker', () => {
  it('two workers share 50 sessions: each archived exactly once, all complete', async () => {
    const sizes = Array.from({ length: 50 }, (_, i) => [1, 7, 30, 99, 100, 101, 180, 250][i % 8]!);
    const sessions = generateDataset({ seed: 'two-workers', sizes, endedAt: new Date(Date.now() - HOUR_MS) });
    await addDue(sessions);
    const a = worker({ workerId: 'worker-a' });
    const b = worker({ workerId: 'worker-b' });

    await waitFor('all 50 complete', allComplete(50), 25_000);

    const runs = [...a.results, ...b.results];
    expect(runs.every((r) => r.result.status === 'complete')).toBe(true);
    expect(runs.length).toBe(50);
    expect(new Set(runs.map((r) => r.session.callSessionId)).size).toBe(50);
    expect(a.results.length).toBeGreaterThan(0);
    expect(b.results.length).toBeGreaterThan(0);
    const attempts = await pool().query<{ max: number; min: number }>('select max(attempts) as max, min(attempts) as min from call_sessions');
    expect(attempts.rows[0]).toEqual({ max: 1, min: 1 });
    for (const session of sessions) await expectArchiveMatches(pool(), session);
    // The runs leave their sessions marked for the rollup sweep, which is not the worker's: one
    // sweep then brings every one of them up to date.
    const ids = sessions.map((s) => s.callSessionId);
    const marked = async () => (await pool().query('select count(*)::int as n from rollup_pending where call_session_id = any($1)', [ids])).rows[0].n;
    expect(await marked()).toBe(sessions.length);
    await a.worker.stop();
    await b.worker.stop();
    expect((await sweepPendingRollups(pool())).sessions).toBe(sessions.length);
    expect(await marked()).toBe(0);
    const rolled = await pool().query<{ call_session_id: string; entries: number }>(
      'select call_session_id, entries from session_rollup where call_session_id = any($1)',
      [ids],
    );
    expect(new Map(rolled.rows.map((r) => [r.call_session_id, r.entries]))).toEqual(new Map(sessions.map((s) => [s.callSessionId, s.participants.length])));
  });

  it('with 20% 5xx, resets, truncated bodies, 429s and slow responses the archive is still exact', async () => {
    sim.setFaults({ seed: 'flaky', serverErrorRate: 0.2, rateLimitRate: 0.03, slowRate: 0.05, slowMs: 700, resetRate: 0.03, truncatedRate: 0.03 });
    const sessions = generateDataset({ seed: 'flaky', sizes: [420, 300, 260, 199, 150, 120, 90, 40], endedAt: new Date(Date.now() - HOUR_MS) });
    await addDue(sessions);
    const { results } = worker({ stream: client({ timeoutMs: 400 }), concurrency: 4 });

    await waitFor('all complete', allComplete(sessions.length), 25_000);

    for (const session of sessions) await expectArchiveMatches(pool(), session);
    expect(results.filter((r) => r.result.status === 'dead')).toEqual([]);
    expect(sim.stats.faults.serverError).toBeGreaterThan(0);
    expect(sim.stats.faults.slow).toBeGreaterThan(0);
    expect(sim.stats.faults.reset! + sim.stats.faults.truncated!).toBeGreaterThan(0);
    // Only the injected 429s: the limiter never ran a window dry.
    expect(sim.stats.byStatus['429'] ?? 0).toBe(sim.stats.faults.rateLimit);
  });

  it('a 429 burst pauses every session together: few 429s, then all complete', async () => {
    sim.setOptions({ pageLatencyMs: 15 });
    const sessions = generateDataset({ seed: 'burst', sizes: [500, 500, 500, 500], endedAt: new Date(Date.now() - HOUR_MS) });
    await addDue(sessions);
    const before429 = sim.stats.byStatus['429'] ?? 0;
    const beforeRequests = sim.stats.requests;
    worker({ concurrency: 4 });
    await waitFor('paging under way', async () => ((await pool().query('select 1 from participant_sessions limit 1')).rowCount ?? 0) > 0);

    // Stream cuts the limit to nothing for a second (it lowers limits under load).
    sim.setOptions({ rateLimitPerMinute: 0 });
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    sim.setOptions({ rateLimitPerMinute: 100_000 });

    await waitFor('all complete', allComplete(4), 20_000);
    for (const session of sessions) await expectArchiveMatches(pool(), session);
    const burst429 = (sim.stats.byStatus['429'] ?? 0) - before429;
    expect(burst429).toBeGreaterThan(0);
    // Four sessions retrying on their own would send dozens in that second; paused together,
    // about one request goes out per pause (300 ms here) to see whether the window has reset.
    expect(burst429).toBeLessThanOrEqual(12);
    expect(sim.stats.requests - beforeRequests).toBeLessThan(4 * 5 + 20);
  });

  it('a session not ready yet (404) is retried until it is, then archived exactly', async () => {
    sim.setOptions({ notReadyForMs: 700 });
    const session = generateSession({ seed: 'not-ready', size: 230, endedAt: new Date() });
    const before404 = sim.stats.byStatus['404'] ?? 0;
    await addDue([session]);
    const { results } = worker();

    await waitFor('complete', allComplete(1), 15_000);
    await expectArchiveMatches(pool(), session);
    expect((sim.stats.byStatus['404'] ?? 0) - before404).toBeGreaterThan(0);
    expect(results.map((r) => r.result.status).at(-1)).toBe('complete');
    expect(results.slice(0, -1).every((r) => r.result.status === 'retrying')).toBe(true);
    const row = await readSessionRow(pool(), session.callSessionId);
    expect(row.attempts).toBeGreaterThanOrEqual(2);
    expect(row.last_error).toBeNull();
  });

  it('401 makes a session dead at once: one attempt, the reason in last_error', async () => {
    const session = generateSession({ seed: 'unauthorized', size: 5, endedAt: new Date(Date.now() - HOUR_MS) });
    await addDue([session]);
    const { results } = worker({ stream: client({ apiSecret: 'wrong-secret' }) });

    await waitFor('dead', async () => (await statusCounts()).dead === 1);
    const row = await readSessionRow(pool(), session.callSessionId);
    expect(row).toMatchObject({ status: 'dead', attempts: 1, lease_owner: null });
    expect(row.last_error).toMatch(/answered 401 \(Stream code 5\)/);
    expect(results.map((r) => r.result.status)).toEqual(['dead']);
  });

  it('totals that never match are retried, then dead at the attempt limit', async () => {
    const truth = generateSession({ seed: 'mismatch', size: 150, endedAt: new Date(Date.now() - HOUR_MS) });
    const doubled = { ...truth, participants: [...truth.participants, { ...truth.participants[0]! }] };
    await addDue([doubled]);
    const { results } = worker({ maxAttempts: 3 });

    await waitFor('dead', async () => (await statusCounts()).dead === 1);
    expect(results.map((r) => r.result.status)).toEqual(['retrying', 'retrying', 'dead']);
    const row = await readSessionRow(pool(), truth.callSessionId);
    expect(row).toMatchObject({ status: 'dead', attempts: 3, cursor: null, archived_participant_sessions: 150, total_participant_sessions: 151 });
    expect(row.last_error).toContain('holds 150 participant sessions but Stream reports 151');
  });

  it('a session past retention whose list comes back empty is expired', async () => {
    const session = generateSession({ seed: 'old', size: 60, endedAt: new Date(Date.now() - 100 * 24 * HOUR_MS) });
    await addDue([session]);
    worker();
    await waitFor('expired', async () => (await statusCounts()).expired === 1);
    expect(await readSessionRow(pool(), session.callSessionId)).toMatchObject({
      status: 'expired',
      total_participant_sessions: 60,
      archived_participant_sessions: 0,
    });
  });

  it('wakes on NOTIFY, and keeps listening after its connection is killed', async () => {
    // Polling every minute: within this test only a notification can wake the worker.
    const { worker: w } = worker({ pollIntervalMs: 60_000 });
    const listenerPid = async () =>
      (
        await pool().query<{ pid: number }>(
          `select pid from pg_stat_activity where datname = current_database() and application_name = 'stream-attendance-listen'`,
        )
      ).rows[0]?.pid;
    const firstPid = await waitFor('listener connected', listenerPid);
    await waitFor('worker idle', async () => w.idle);

    const first = generateSession({ seed: 'notify-1', size: 20, endedAt: new Date(Date.now() - HOUR_MS) });
    await addDue([first]);
    await pool().query(`select pg_notify('attendance_sessions_due', $1)`, [first.callSessionId]);
    await waitFor('first complete', allComplete(1), 5_000);

    await pool().query('select pg_terminate_backend($1)', [firstPid]);
    const secondPid = await waitFor('listener reconnected', async () => {
      const pid = await listenerPid();
      return pid !== undefined && pid !== firstPid ? pid : undefined;
    });
    expect(secondPid).not.toBe(firstPid);
    await waitFor('worker idle', async () => w.idle);

    const second = generateSession({ seed: 'notify-2', size: 20, endedAt: new Date(Date.now() - HOUR_MS) });
    await addDue([second]);
    await pool().query(`select pg_notify('attendance_sessions_due', $1)`, [second.callSessionId]);
    await waitFor('second complete', allComplete(2), 5_000);
    await expectArchiveMatches(pool(), second);
  });

  it('a session reset under a running worker (intake) stops that run, by fence or heartbeat; it is then archived afresh', async () => {
    sim.setOptions({ pageLatencyMs: 40 });
    const session = generateSession({ seed: 'reset-by-intake', size: 1500, endedAt: new Date(Date.now() - HOUR_MS) });
    await addDue([session]);
    const { results } = worker({ heartbeatMs: 100 });
    await waitFor('a page stored', async () => (await readSessionRow(pool(), session.callSessionId)).cursor !== null);

    // What intake does when a new report event arrives for a session being archived.
    await pool().query(
      `update call_sessions set status = 'pending', next_attempt_at = now(), attempts = 0, cursor = null,
              lease_owner = null, lease_expires_at = null where call_session_id = $1`,
      [session.callSessionId],
    );
    await waitFor('complete', allComplete(1), 15_000);
    expect(results.map((r) => r.result.status)).toEqual(['lease_lost', 'complete']);
    expect(results[1]?.session.cursor).toBeNull();
    await expectArchiveMatches(pool(), session);
  });

  it('a session reset and re-announced under its running worker is not run twice by that worker: the old run is fenced out first', async () => {
    sim.setOptions({ pageLatencyMs: 40 });
    const session = generateSession({ seed: 'reset-and-notify', size: 1500, endedAt: new Date(Date.now() - HOUR_MS) });
    await addDue([session]);
    // A heartbeat far away: only the fence can stop the old run in time.
    const { results } = worker({ heartbeatMs: 20_000, leaseSeconds: 60 });
    await waitFor('a page stored', async () => (await readSessionRow(pool(), session.callSessionId)).cursor !== null);

    // Intake's reset for a new report event, and its NOTIFY, which wakes this same worker at once.
    await pool().query(
      `update call_sessions set status = 'pending', next_attempt_at = now(), attempts = 0, cursor = null,
              lease_owner = null, lease_expires_at = null where call_session_id = $1`,
      [session.callSessionId],
    );
    await pool().query(`select pg_notify('attendance_sessions_due', $1)`, [session.callSessionId]);
    await waitFor('complete', allComplete(1), 15_000);
    expect(results.map((r) => r.result.status)).toEqual(['lease_lost', 'complete']);
    expect(results[1]?.session.cursor).toBeNull();
    expect(results[1]?.session.leaseOwner).not.toBe(results[0]?.session.leaseOwner);
    await expectArchiveMatches(pool(), session);
  });

  it('stop() hands held sessions back with their cursor; another worker finishes them exactly', async () => {
    sim.setOptions({ pageLatencyMs: 40 });
    const session = generateSession({ seed: 'graceful', size: 900, endedAt: new Date(Date.now() - HOUR_MS) });
    await addDue([session]);
    const first = worker({ workerId: 'stopping' });
    await waitFor('a page stored', async () => (await readSessionRow(pool(), session.callSessionId)).cursor !== null);

    await first.worker.stop();
    expect(first.worker.idle).toBe(true);
    expect(first.results.map((r) => r.result.status)).toEqual(['released']);
    const released = await readSessionRow(pool(), session.callSessionId);
    expect(released).toMatchObject({ status: 'pending', attempts: 0, lease_owner: null });
    expect(released.cursor).not.toBeNull();

    sim.setOptions({ pageLatencyMs: 0 });
    worker({ workerId: 'successor' });
    await waitFor('complete', allComplete(1));
    await expectArchiveMatches(pool(), session);
    expect((await readSessionRow(pool(), session.callSessionId)).attempts).toBe(1);
  });
});
