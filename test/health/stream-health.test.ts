import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/logger.ts';
import { createMetrics } from '../../src/metrics.ts';
import { createStreamHealthRecorder, readStreamHealth, recordStreamHealth } from '../../src/health/stream-health.ts';
import { startStreamProbe } from '../../src/health/stream-probe.ts';
import { startService } from '../../src/commands/runtime.ts';
import { loadConfig } from '../../src/config.ts';
import { ConfigError } from '../../src/errors.ts';
import { createStreamClient } from '../../src/stream/client.ts';
import { StreamApiError, type StreamFailure } from '../../src/stream/errors.ts';
import { healthOfOutcome } from '../../src/stream/health.ts';
import { startSimulator, type Simulator } from '../../tools/simulator/server.ts';
import { useTestDatabase } from '../helpers/db.ts';

const API_KEY = 'health-test-key';
const API_SECRET = 'health-test-secret-never-logged';

function apiError(failure: StreamFailure, status: number): StreamApiError {
  return new StreamApiError(`Stream Op answered ${status}`, { operation: 'Op', status, failure });
}

function capture() {
  const stream = new PassThrough();
  let text = '';
  stream.on('data', (chunk) => (text += String(chunk)));
  return { logger: createLogger({ level: 'debug', pretty: false, destination: stream }), text: () => text };
}

/** A plain HTTP server that is not Stream: answers every request with `answer(n)` (n counts from 1). */
async function startFakeServer(
  answer: (n: number) => { status: number; body: string },
): Promise<{ url: string; requests: () => number; close(): Promise<void> }> {
  let n = 0;
  const server: Server = createServer((req, res) => {
    req.resume();
    const { status, body } = answer(++n);
    res.writeHead(status, { 'content-type': 'application/json' }).end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests: () => n,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

describe('healthOfOutcome', () => {
  it.each([
    ['a 2xx', null, 'ok'],
    ['401', apiError('auth', 401), 'unauthorized'],
    ['403', apiError('auth', 403), 'unauthorized'],
    ['no answer', apiError('network', 0), 'unreachable'],
    ['a timeout', apiError('timeout', 0), 'unreachable'],
    ['a 503', apiError('server', 503), 'unreachable'],
    ["a body that is not Stream's", apiError('invalid_response', 200), 'unreachable'],
    ['a 404 where Stream has a route', apiError('client', 404), 'unreachable'],
    ['a 429', apiError('rate_limited', 429), null],
    ['participant_sessions not ready', apiError('not_ready', 404), null],
    ['another 4xx', apiError('client', 400), null],
  ] as const)('%s → %s', (_what, error, expected) => {
    expect(healthOfOutcome({ status: error?.status ?? 200, error })).toBe(expected);
  });
});

describe('Stream health record', () => {
  const test = useTestDatabase();

  it('reads unknown before anything is recorded, then the last verdict; ok clears the error and keeps the last success', async () => {
    const pool = test.current.database.pool;
    expect(await readStreamHealth(pool)).toEqual({ state: 'unknown', checkedAt: null, lastError: null, lastSuccessAt: null });
    await recordStreamHealth(pool, 'ok', null);
    const ok = await readStreamHealth(pool);
    expect(ok.state).toBe('ok');
    expect(ok.lastSuccessAt).toBeInstanceOf(Date);
    await recordStreamHealth(pool, 'unreachable', 'Stream is not reachable: check STREAM_BASE_URL');
    const down = await readStreamHealth(pool);
    expect(down).toMatchObject({ state: 'unreachable', lastError: 'Stream is not reachable: check STREAM_BASE_URL' });
    expect(down.lastSuccessAt).toEqual(ok.lastSuccessAt);
    await recordStreamHealth(pool, 'ok', 'ignored');
    expect((await readStreamHealth(pool)).lastError).toBeNull();
  });

  it('the recorder writes each change at once and a steady state at most once per refresh interval', async () => {
    const pool = test.current.database.pool;
    const { logger, text } = capture();
    let clock = 1_000_000;
    const recorder = createStreamHealthRecorder({ pool, logger, baseUrl: 'http://stream.invalid', refreshMs: 30_000, now: () => clock });
    const outcome = (error: StreamApiError | null) => ({
      operation: 'GetRateLimits',
      method: 'GET' as const,
      url: 'http://stream.invalid/api/v2/rate_limits',
      status: error?.status ?? 200,
      error,
    });

    recorder.observe(outcome(apiError('auth', 401)));
    await recorder.flush();
    const refused = await readStreamHealth(pool);
    expect(refused.state).toBe('unauthorized');
    expect(refused.lastError).toContain('STREAM_API_KEY and STREAM_API_SECRET');
    expect(text()).toContain('STREAM_API_SECRET');

    recorder.observe(outcome(null));
    await recorder.flush();
    const first = await readStreamHealth(pool);
    expect(first.state).toBe('ok');

    // The same verdict within the interval: no write (checked_at stays).
    clock += 10_000;
    recorder.observe(outcome(null));
    await recorder.flush();
    expect((await readStreamHealth(pool)).checkedAt).toEqual(first.checkedAt);
    // After the interval: refreshed.
    clock += 30_000;
    await new Promise((r) => setTimeout(r, 5));
    recorder.observe(outcome(null));
    await recorder.flush();
    expect((await readStreamHealth(pool)).checkedAt!.getTime()).toBeGreaterThan(first.checkedAt!.getTime());

    // An answer that says nothing (429) changes nothing.
    recorder.observe(outcome(apiError('rate_limited', 429)));
    await recorder.flush();
    expect(recorder.current()).toBe('ok');

    recorder.observe(outcome(apiError('network', 0)));
    await recorder.flush();
    const down = await readStreamHealth(pool);
    expect(down.state).toBe('unreachable');
    expect(down.lastError).toContain('STREAM_BASE_URL (http://stream.invalid)');
    expect(down.lastError).toContain('GET http://stream.invalid/api/v2/rate_limits');
  });
});

describe('a 404 where Stream always has a route', () => {
  it('call_stats: names STREAM_BASE_URL and the URL, and is not taken for "not ready yet"', async () => {
    const notStream = await startFakeServer(() => ({ status: 404, body: '{}' }));
    const stream = createStreamClient({ baseUrl: `${notStream.url}/wrong`, apiKey: API_KEY, apiSecret: API_SECRET });
    try {
      const error = await stream.queryCallSessionStats({ limit: 1 }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(StreamApiError);
      expect((error as StreamApiError).failure).toBe('client');
      expect((error as StreamApiError).retryable).toBe(false);
      expect((error as Error).message).toContain(`at ${notStream.url}/wrong/api/v2/video/call_stats`);
      expect((error as Error).message).toContain(`check STREAM_BASE_URL (${notStream.url}/wrong)`);
      expect((error as Error).message).not.toContain(API_KEY);
      // participant_sessions keeps its meaning of 404: not ready yet.
      const page = await stream.queryCallParticipantSessions({ type: 'default', id: 'c', session: 's' }).catch((e: unknown) => e);
      expect((page as StreamApiError).failure).toBe('not_ready');
    } finally {
      await stream.close();
      await notStream.close();
    }
  });
});

describe('the Stream probe', () => {
  it('retries an unreachable Stream with backoff until it answers, then settles', async () => {
    const fake = await startFakeServer((n) =>
      n <= 2
        ? { status: 503, body: 'no' }
        : { status: 200, body: JSON.stringify({ server_side: { QueryCallParticipantSessions: { limit: 1000, remaining: 999, reset: 1 } }, duration: '1ms' }) },
    );
    const { logger } = capture();
    const stream = createStreamClient({ baseUrl: fake.url, apiKey: API_KEY, apiSecret: API_SECRET });
    const probe = startStreamProbe({
      stream,
      logger,
      backoff: { baseMs: 10, capMs: 20, floorShare: 0.2 },
    });
    try {
      expect(await probe.first).toBe('unreachable');
      expect(await probe.settled).toBe('ok');
      expect(fake.requests()).toBe(3);
    } finally {
      await probe.stop();
      await stream.close();
      await fake.close();
    }
  });
});

describe('startService checks Stream before it reports ready', () => {
  const test = useTestDatabase();
  let simulator: Simulator;

  beforeAll(async () => {
    simulator = await startSimulator({ apiKey: API_KEY, apiSecret: API_SECRET });
  });
  afterAll(async () => {
    await simulator?.close();
  });

  const config = (env: Record<string, string>) =>
    loadConfig({
      DATABASE_URL: test.current.url,
      STREAM_API_KEY: API_KEY,
      STREAM_API_SECRET: API_SECRET,
      STREAM_BASE_URL: simulator.url,
      PORT: '0',
      HOST: '127.0.0.1',
      RECONCILE_INTERVAL_MINUTES: '0',
      ...env,
    });

  const start = (env: Record<string, string>, logger = capture().logger) =>
    startService({
      config: config(env),
      database: test.current.database,
      logger,
      http: true,
      worker: true,
      migrate: false,
      metrics: createMetrics({ defaultMetrics: false }),
    });

  it('a wrong secret fails the start with a configuration error naming both variables, recorded for every replica', async () => {
    const { logger } = capture();
    const started = Date.now();
    const error = await start({ STREAM_API_SECRET: 'not-the-secret' }, logger).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toContain('STREAM_API_KEY and STREAM_API_SECRET');
    expect((error as Error).message).not.toContain('not-the-secret');
    expect(Date.now() - started).toBeLessThan(15_000);
    expect((await readStreamHealth(test.current.database.pool)).state).toBe('unauthorized');
  });

  it('an unreachable Stream does not stop intake: ready, and /readyz, /metrics say unreachable naming STREAM_BASE_URL', async () => {
    const notStream = await startFakeServer(() => ({ status: 404, body: '<html>not found</html>' }));
    const { logger, text } = capture();
    const service = await start({ STREAM_BASE_URL: notStream.url }, logger);
    try {
      const ready = await fetch(`${service.url}/readyz`);
      expect(ready.status).toBe(200);
      const body = (await ready.json()) as { stream: string; streamError?: string };
      expect(body.stream).toBe('unreachable');
      expect(body.streamError).toContain('STREAM_BASE_URL');
      expect(body.streamError).toContain(`${notStream.url}/api/v2/rate_limits`);
      expect(text()).toContain('check STREAM_BASE_URL');
      const metrics = await (await fetch(`${service.url}/metrics`)).text();
      expect(metrics).toMatch(/^attendance_stream_health\{state="unreachable"\} 1$/m);
      expect(metrics).toMatch(/^attendance_stream_health\{state="ok"\} 0$/m);
    } finally {
      await service.stop();
      await notStream.close();
    }
  });

  it('the right credentials: ok everywhere, with the time of the last successful call', async () => {
    const { logger } = capture();
    const before = Date.now();
    const service = await start({}, logger);
    try {
      const body = (await (await fetch(`${service.url}/readyz`)).json()) as { status: string; stream: string };
      expect(body).toEqual({ status: 'ready', stream: 'ok' });
      const metrics = await (await fetch(`${service.url}/metrics`)).text();
      expect(metrics).toMatch(/^attendance_stream_health\{state="ok"\} 1$/m);
      // The pool this service runs on, as pg counts it: open connections, idle ones, waiters.
      expect(Number(/^attendance_db_pool_connections\{pool="shared",state="total"\} (\d+)$/m.exec(metrics)?.[1])).toBeGreaterThan(0);
      expect(metrics).toMatch(/^attendance_db_pool_connections\{pool="shared",state="waiting"\} 0$/m);
      const last = Number(/^attendance_stream_last_success_timestamp_seconds (\S+)$/m.exec(metrics)?.[1]);
      expect(last * 1000).toBeGreaterThanOrEqual(before - 1_000);
    } finally {
      await service.stop();
    }
  });

  it('a port in use fails first, naming PORT, before anything talks to Stream or claims work', async () => {
    const holder = createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    const { port } = holder.address() as AddressInfo;
    const requestsBefore = simulator.stats.requests;
    const { logger } = capture();
    try {
      const error = await start({ PORT: String(port), RECONCILE_INTERVAL_MINUTES: '15' }, logger).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as Error).message).toContain(`PORT ${port} is already in use`);
      expect(simulator.stats.requests).toBe(requestsBefore);
      const { rows } = await test.current.database.pool.query('select 1 from reconcile_state');
      expect(rows).toEqual([]);
    } finally {
      await new Promise((resolve) => holder.close(resolve));
    }
  });
});
