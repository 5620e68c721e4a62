import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateSession } from '../../tools/simulator/generate.ts';
import { startSimulator, type Simulator } from '../../tools/simulator/server.ts';
import { buildStatsReportReadyEvent, deliverWebhook } from '../../tools/simulator/webhooks.ts';
import { spawnCommand, type RunningCommand } from '../helpers/child.ts';
import { useTestDatabase } from '../helpers/db.ts';
import { daysFromNow, insertSessionRows } from '../helpers/session-rows.ts';

const API_KEY = 'serve-test-key';
const API_SECRET = 'serve-test-secret-that-must-never-be-logged';

describe('attendance serve as a child process', () => {
  const test = useTestDatabase();
  let simulator: Simulator;
  const outputs: string[] = [];

  beforeAll(async () => {
    // Slow pages keep the session in `running` long enough to stop the process in the middle.
    simulator = await startSimulator({ apiKey: API_KEY, apiSecret: API_SECRET, pageLatencyMs: 60 });
  });
  afterAll(async () => {
    await simulator?.close();
  });

  const env = () => ({
    DATABASE_URL: test.current.url,
    STREAM_API_KEY: API_KEY,
    STREAM_API_SECRET: API_SECRET,
    STREAM_BASE_URL: simulator.url,
    PORT: '0',
    HOST: '127.0.0.1',
    LOG_LEVEL: 'debug',
    RECONCILE_INTERVAL_MINUTES: '0',
    WORKER_CONCURRENCY: '2',
  });

  async function startServe(): Promise<{ serve: RunningCommand; url: string }> {
    const serve = spawnCommand(['serve'], env());
    const listening = await serve.waitForLog((l) => l.msg === 'listening');
    return { serve, url: String(listening.url) };
  }

  it('SIGTERM mid-archive exits promptly and leaves no session stuck in running; a restart finishes it', async () => {
    const session = generateSession({ seed: 'sigterm', size: 3_000 });
    simulator.addSession(session);
    const { serve, url } = await startServe();
    const delivery = await deliverWebhook({
      url: `${url}/webhooks/stream`,
      apiKey: API_KEY,
      apiSecret: API_SECRET,
      event: buildStatsReportReadyEvent(session),
    });
    expect(delivery.status).toBe(200);

    const pool = test.current.database.pool;
    const status = async () =>
      (
        await pool.query<{ status: string; rows: number; lease_owner: string | null }>(
          `select status, lease_owner, (select count(*)::int from participant_sessions p where p.call_session_id = c.call_session_id) as rows
           from call_sessions c where call_session_id = $1`,
          [session.callSessionId],
        )
      ).rows[0];
    // wait until some pages are in, but not all
    for (let i = 0; i < 200; i++) {
      const s = await status();
      if (s && s.status === 'running' && s.rows >= 200) break;
      await new Promise((r) => setTimeout(r, 25));
    }
    const before = await status();
    expect(before?.status).toBe('running');
    expect(before!.rows).toBeLessThan(3_000);

    const stoppedAt = Date.now();
    serve.child.kill('SIGTERM');
    expect(await serve.exited).toBe(0);
    expect(Date.now() - stoppedAt).toBeLessThan(10_000);
    outputs.push(serve.output());

    const after = await status();
    expect(after?.status).not.toBe('running');
    expect(after?.lease_owner).toBeNull();

    const second = await startServe();
    try {
      for (let i = 0; i < 400; i++) {
        if ((await status())?.status === 'complete') break;
        await new Promise((r) => setTimeout(r, 50));
      }
      const done = await status();
      expect(done).toMatchObject({ status: 'complete', rows: 3_000 });
    } finally {
      second.serve.child.kill('SIGTERM');
      expect(await second.serve.exited).toBe(0);
      outputs.push(second.serve.output());
    }
  });

  it('attendance worker archives due sessions with no HTTP listener, and stops on SIGTERM', async () => {
    const session = generateSession({ seed: 'worker-only', size: 250 });
    simulator.addSession(session);
    const pool = test.current.database.pool;
    await insertSessionRows(pool, [
      { call_session_id: session.callSessionId, call_type: session.callType, call_id: session.callId, retention_expires_at: daysFromNow(90) },
    ]);
    const worker = spawnCommand(['worker'], env());
    try {
      await worker.waitForLog((l) => l.msg === 'worker started');
      let row: { status: string; rows: number } | undefined;
      for (let i = 0; i < 200 && row?.status !== 'complete'; i++) {
        await new Promise((r) => setTimeout(r, 50));
        row = (
          await pool.query<{ status: string; rows: number }>(
            `select status, archived_participant_sessions as rows from call_sessions where call_session_id = $1`,
            [session.callSessionId],
          )
        ).rows[0];
      }
      expect(row).toEqual({ status: 'complete', rows: 250 });
      expect(worker.output()).not.toMatch(/"msg":"listening"/);
    } finally {
      worker.child.kill('SIGTERM');
      expect(await worker.exited).toBe(0);
      outputs.push(worker.output());
    }
  });

  it('refuses to start on a database without the migrations, naming the fix', async () => {
    const { createTestDatabase } = await import('../helpers/db.ts');
    const bare = await createTestDatabase({ migrated: false });
    try {
      const serve = spawnCommand(['serve'], { ...env(), DATABASE_URL: bare.url });
      // A configuration problem: exit 2, one line naming the fix.
      expect(await serve.exited).toBe(2);
      expect(serve.output()).toContain("run 'attendance migrate' first");
    } finally {
      await bare.drop();
    }
  });

  it('exits 2 naming each missing variable', async () => {
    const serve = spawnCommand(['serve'], { DATABASE_URL: test.current.url });
    expect(await serve.exited).toBe(2);
    expect(serve.output()).toMatch(/STREAM_API_KEY is required; STREAM_API_SECRET is required/);
    expect(serve.output().trim().split('\n')).toHaveLength(1);
  });

  it('logged neither the API secret nor a JWT during the runs above', () => {
    const all = outputs.join('\n');
    expect(all.length).toBeGreaterThan(0);
    expect(all).toContain('"level"');
    expect(all).not.toContain(API_SECRET);
    expect(all).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+/);
  });
});
