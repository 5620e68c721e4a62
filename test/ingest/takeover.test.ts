import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ArchiveResult } from '../../src/ingest/archive-session.ts';
import { startWorker } from '../../src/ingest/worker.ts';
import { createMetrics } from '../../src/metrics.ts';
import type { ClaimedSession } from '../../src/queue/claim.ts';
import { generateSession } from '../../tools/simulator/generate.ts';
import { startSimulator, type Simulator } from '../../tools/simulator/server.ts';
import { createStreamClient, type StreamClient } from '../../src/stream/client.ts';
import { useTestDatabase } from '../helpers/db.ts';
import { FAST_BACKOFF, FAST_PAGE_RETRY, enqueueSimSession, expectArchiveMatches, quietLogger, waitFor } from './helpers.ts';
import { readSessionRow } from '../helpers/session-rows.ts';
import { HOUR_MS } from '../../src/time.ts';

const API_KEY = 'sim-key';
const API_SECRET = 'sim-secret';
const LEASE_SECONDS = 2;
const DOOMED = fileURLToPath(new URL('./fixtures/doomed-worker.ts', import.meta.url));

const db = useTestDatabase();
const pool = () => db.current.database.pool;
let sim: Simulator;

beforeAll(async () => {
  // Slow pages, so the first worker is surely mid-session when it is killed.
  sim = await startSimulator({ apiKey: API_KEY, apiSecret: API_SECRET, pageLatencyMs: 40 });
});

afterAll(async () => {
  await sim.close();
});

describe('takeover after a crash', () => {
  it('a worker killed mid-session keeps its lease; a second worker takes over after it lapses and finishes exactly', async () => {
    const truth = generateSession({ seed: 'takeover', size: 2500, endedAt: new Date(Date.now() - HOUR_MS) });
    sim.addSession(truth);
    await enqueueSimSession(pool(), truth);

    const child = spawn(process.execPath, ['--import', 'tsx', DOOMED], {
      env: {
        ...process.env,
        DATABASE_URL: db.current.url,
        STREAM_BASE_URL: sim.url,
        STREAM_API_KEY: API_KEY,
        STREAM_API_SECRET: API_SECRET,
        WORKER_ID: 'doomed',
        LEASE_SECONDS: String(LEASE_SECONDS),
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const exited = once(child, 'exit');
    try {
      await waitFor('the doomed worker to store a few pages', async () => {
        const row = await readSessionRow(pool(), truth.callSessionId);
        const held = (await pool().query<{ n: number }>('select count(*)::int as n from participant_sessions')).rows[0]?.n ?? 0;
        return row.lease_owner?.startsWith('doomed/') === true && held >= 300;
      });
    } finally {
      child.kill('SIGKILL');
      await exited;
    }
    // Its connections close with it; wait until Postgres has finished each one (a commit already
    // sent may still land), so what we read next is what the dead worker left behind.
    await waitFor("the dead worker's connections to be gone", async () => {
      const left = await pool().query(`select 1 from pg_stat_activity where application_name = 'doomed-worker'`);
      return left.rowCount === 0;
    });

    // Killed without a word: the session still says running under the dead worker's lease.
    const orphaned = await readSessionRow(pool(), truth.callSessionId);
    expect(orphaned).toMatchObject({ status: 'running', lease_owner: expect.stringMatching(/^doomed\//), attempts: 1 });
    expect(orphaned.cursor).not.toBeNull();
    const heldAtDeath = (await pool().query<{ n: number }>('select count(*)::int as n from participant_sessions')).rows[0]!.n;
    expect(heldAtDeath).toBeGreaterThanOrEqual(300);
    expect(heldAtDeath).toBeLessThan(2500);

    const stream = createStreamClient({ baseUrl: sim.url, apiKey: API_KEY, apiSecret: API_SECRET });
    const cursors: (string | undefined)[] = [];
    const recording: StreamClient = {
      ...stream,
      async queryCallParticipantSessions(params) {
        cursors.push(params.next);
        return stream.queryCallParticipantSessions(params);
      },
    };
    const results: { session: ClaimedSession; result: ArchiveResult }[] = [];
    const successor = startWorker({
      database: db.current.database,
      logger: quietLogger(),
      metrics: createMetrics({ defaultMetrics: false }),
      stream: recording,
      concurrency: 2,
      workerId: 'successor',
      leaseSeconds: LEASE_SECONDS,
      heartbeatMs: 500,
      pollIntervalMs: 100,
      backoff: FAST_BACKOFF,
      pageRetry: FAST_PAGE_RETRY,
      onResult: (session, result) => results.push({ session, result }),
    });
    try {
      await waitFor('the successor to complete it', async () => (await readSessionRow(pool(), truth.callSessionId)).status === 'complete', 20_000);
    } finally {
      await successor.stop();
      await stream.close();
    }

    expect(results).toHaveLength(1);
    expect(results[0]?.session).toMatchObject({ takenOver: true, attempts: 2, cursor: orphaned.cursor });
    // It resumed at the dead worker's checkpoint instead of paging from the start.
    expect(cursors[0]).toBe(orphaned.cursor);
    expect(cursors.length).toBeLessThanOrEqual(25 - Math.floor(heldAtDeath / 100) + 1);
    await expectArchiveMatches(pool(), truth);
    expect(await readSessionRow(pool(), truth.callSessionId)).toMatchObject({
      status: 'complete',
      attempts: 2,
      archived_participant_sessions: 2500,
      lease_owner: null,
    });
  });
});
