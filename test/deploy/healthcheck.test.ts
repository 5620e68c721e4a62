import { spawn, type ChildProcess } from 'node:child_process';
import { hostname } from 'node:os';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SESSIONS_DUE_CHANNEL } from '../../src/queue/sql.ts';
import { generateSession } from '../../tools/simulator/generate.ts';
import { startSimulator, type Simulator } from '../../tools/simulator/server.ts';
import { spawnCommand, type RunningCommand } from '../helpers/child.ts';
import { useTestDatabase } from '../helpers/db.ts';
import { databaseNow, daysFromNow, insertSessionRows } from '../helpers/session-rows.ts';

// bin/healthcheck.js against real processes: in the container it reads PID 1; here it is given the
// pid of the process to check, with the environment the container would hand it.
const HEALTHCHECK = fileURLToPath(new URL('../../bin/healthcheck.js', import.meta.url));
const API_KEY = 'healthcheck-test-key';
const API_SECRET = 'healthcheck-test-secret';

const check = (pid: number, env: Record<string, string>) =>
  new Promise<{ code: number; output: string }>((resolve) => {
    const child = spawn(process.execPath, [HEALTHCHECK, String(pid)], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr.on('data', (c: Buffer) => (output += c.toString()));
    child.on('exit', (code) => resolve({ code: code ?? -1, output }));
  });

async function stop(command: RunningCommand | undefined) {
  if (!command || command.child.exitCode !== null) return;
  command.child.kill('SIGCONT');
  command.child.kill('SIGTERM');
  await command.exited;
}

// /proc is Linux's; the container is Linux.
describe.skipIf(process.platform !== 'linux')('bin/healthcheck.js', () => {
  const test = useTestDatabase();
  let simulator: Simulator;
  let serve: RunningCommand | undefined;
  let worker: RunningCommand | undefined;
  let idle: ChildProcess | undefined;
  const env = () => ({
    DATABASE_URL: test.current.url,
    STREAM_API_KEY: API_KEY,
    STREAM_API_SECRET: API_SECRET,
    STREAM_BASE_URL: simulator.url,
    HOST: '127.0.0.1',
    PORT: '0',
    RECONCILE_INTERVAL_MINUTES: '0',
  });

  beforeAll(async () => {
    // Slow pages keep a session in `running` long enough to read its lease owner.
    simulator = await startSimulator({ apiKey: API_KEY, apiSecret: API_SECRET, pageLatencyMs: 100 });
  });
  afterAll(async () => {
    await stop(serve);
    await stop(worker);
    idle?.kill('SIGKILL');
    await simulator?.close();
  });

  it('serve: healthy while /healthz answers on PORT, unhealthy on a port nothing listens on', async () => {
    serve = spawnCommand(['serve'], env());
    const listening = await serve.waitForLog((l) => l.msg === 'listening');
    const port = new URL(String(listening.url)).port;
    const healthy = await check(serve.child.pid!, { PORT: port, HOST: '0.0.0.0' });
    expect(healthy.code, healthy.output).toBe(0);
    expect(healthy.output).toContain(`:${port}/healthz answered 200`);
    await stop(serve);
    const refused = await runServeCheckAgainstClosedPort(port);
    expect(refused.code, refused.output).toBe(1);
    expect(refused.output).toMatch(/serve: GET http:\/\/127\.0\.0\.1:\d+\/healthz failed/);
  });

  // A process whose command line is `… attendance.js serve` but that listens nowhere.
  async function runServeCheckAgainstClosedPort(port: string) {
    const fake = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1 << 30)', 'bin/attendance.js', 'serve'], { stdio: 'ignore' });
    try {
      await new Promise((r) => setTimeout(r, 200));
      return await check(fake.pid!, { PORT: port });
    } finally {
      fake.kill('SIGKILL');
    }
  }

  it('worker: healthy while running, unhealthy when stopped', async () => {
    worker = spawnCommand(['worker'], env());
    await worker.waitForLog((l) => l.msg === 'worker started');
    const running = await check(worker.child.pid!, { DATABASE_URL: test.current.url });
    expect(running.code, running.output).toBe(0);
    expect(running.output).toContain('renews its leases');

    // The lease owner names this host and the worker's pid, as the check assumes.
    const session = generateSession({ seed: 'healthcheck', size: 3_000 });
    simulator.addSession(session);
    const pool = test.current.database.pool;
    await insertSessionRows(pool, [
      { call_session_id: session.callSessionId, call_type: session.callType, call_id: session.callId, retention_expires_at: daysFromNow(90) },
    ]);
    await pool.query('select pg_notify($1, $2)', [SESSIONS_DUE_CHANNEL, '']);
    let owner: string | null = null;
    for (let i = 0; i < 200 && owner === null; i++) {
      await new Promise((r) => setTimeout(r, 25));
      owner = (await pool.query<{ lease_owner: string | null }>(`select lease_owner from call_sessions where call_session_id = $1`, [session.callSessionId]))
        .rows[0]!.lease_owner;
    }
    expect(owner?.startsWith(`${hostname()}:${worker.child.pid}:`), String(owner)).toBe(true);
    worker.child.kill('SIGSTOP');
    await new Promise((r) => setTimeout(r, 100));
    const stopped = await check(worker.child.pid!, { DATABASE_URL: test.current.url });
    expect(stopped.code, stopped.output).toBe(1);
    expect(stopped.output).toMatch(/state T/);
    worker.child.kill('SIGCONT');
    await stop(worker);
  });

  it('worker: unhealthy when it holds a session whose lease lapsed without renewal; healthy when the database is away', async () => {
    // An idle process named like a worker, so no real worker takes the lapsed session over mid-test.
    idle = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1 << 30)', 'bin/attendance.js', 'worker'], { stdio: 'ignore' });
    await new Promise((r) => setTimeout(r, 200));
    const pool = test.current.database.pool;
    const owner = `${hostname()}:${idle.pid}:0badc0de/claim`;
    await insertSessionRows(pool, [{ call_session_id: 'hc-lapsed', call_id: 'hc', status: 'running', lease_owner: owner, lease_expires_at: databaseNow(20) }]);
    const fresh = await check(idle.pid!, { DATABASE_URL: test.current.url });
    expect(fresh.code, fresh.output).toBe(0);

    await pool.query(`update call_sessions set lease_expires_at = now() - interval '31 seconds' where call_session_id = 'hc-lapsed'`);
    const lapsed = await check(idle.pid!, { DATABASE_URL: test.current.url });
    expect(lapsed.code, lapsed.output).toBe(1);
    expect(lapsed.output).toContain('hc-lapsed');

    // another process's lapsed lease is not this one's problem
    await pool.query(`update call_sessions set lease_owner = $1 where call_session_id = 'hc-lapsed'`, [`${hostname()}:${idle.pid}9:0badc0de/claim`]);
    const other = await check(idle.pid!, { DATABASE_URL: test.current.url });
    expect(other.code, other.output).toBe(0);

    await pool.query(`update call_sessions set lease_owner = $1 where call_session_id = 'hc-lapsed'`, [owner]);
    const away = await check(idle.pid!, { DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none' });
    expect(away.code, away.output).toBe(0);
    expect(away.output).toContain('database unreachable');
  });

  it('passes for one-shot commands and fails for a process that does not exist', async () => {
    const oneShot = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1 << 30)', 'bin/attendance.js', 'migrate'], { stdio: 'ignore' });
    try {
      await new Promise((r) => setTimeout(r, 200));
      const result = await check(oneShot.pid!, {});
      expect(result.code, result.output).toBe(0);
      expect(result.output).toContain('migrate: nothing to check');
    } finally {
      oneShot.kill('SIGKILL');
    }
    const missing = await check(2 ** 22 + 12_345, {});
    expect(missing.code).toBe(1);
    expect(missing.output).toMatch(/cannot read process/);
  });
});
