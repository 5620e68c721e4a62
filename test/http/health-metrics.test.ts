import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { createDatabase, type Database } from '../../src/db/client.ts';
import { startGaugeRefresher, type GaugeRefresher } from '../../src/health/gauge-refresher.ts';
import { buildApp } from '../../src/http/app.ts';
import { createLogger } from '../../src/logger.ts';
import { createMetrics } from '../../src/metrics.ts';
import { useTestDatabase } from '../helpers/db.ts';
import { daysFromNow, insertSessionRows } from '../helpers/session-rows.ts';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.ts';

const config = loadConfig({ STREAM_API_KEY: 'key', STREAM_API_SECRET: 'secret' });

describe('health and metrics routes', () => {
  const test = useTestDatabase();
  let proxy: TcpProxy;
  let database: Database;
  let app: FastifyInstance;
  let refresher: GaugeRefresher;
  let viaProxyUrl: string;

  beforeAll(async () => {
    const target = new URL(test.current.url);
    proxy = await startTcpProxy(target.hostname, Number(target.port || 5432));
    const viaProxy = new URL(test.current.url);
    viaProxy.hostname = '127.0.0.1';
    viaProxy.port = String(proxy.port);
    viaProxyUrl = viaProxy.toString();
    database = createDatabase(viaProxyUrl, { connectionTimeoutMillis: 1_000, onError: () => undefined });
    const metrics = createMetrics({ defaultMetrics: false });
    app = await buildApp({ config, database, logger: createLogger({ level: 'silent' }), metrics });
    // An interval far past the test's length: every refresh here is the test's own.
    refresher = startGaugeRefresher({ database, metrics, logger: createLogger({ level: 'silent' }), intervalMs: 3_600_000 });
  });

  afterAll(async () => {
    await refresher?.stop();
    await app?.close();
    await database?.close();
    await proxy?.close();
  });

  it('/healthz answers 200 while the process is up', async () => {
    const res = await app.inject({ method: 'GET', url: '/healthz' });
    expect(res.statusCode).toBe(200);
  });

  it('/readyz turns 503 when the database goes away and 200 again when it returns', async () => {
    expect((await app.inject({ method: 'GET', url: '/readyz' })).statusCode).toBe(200);

    await proxy.cut();
    const down = await app.inject({ method: 'GET', url: '/readyz' });
    expect(down.statusCode).toBe(503);
    expect(down.json()).toMatchObject({ reason: 'database unreachable' });

    await proxy.restore();
    let status = 0;
    for (let i = 0; i < 20 && status !== 200; i++) {
      status = (await app.inject({ method: 'GET', url: '/readyz' })).statusCode;
      if (status !== 200) await new Promise((r) => setTimeout(r, 100));
    }
    expect(status).toBe(200);
  });

  it('/readyz is 503 on a database without the migrations', async () => {
    const { createTestDatabase } = await import('../helpers/db.ts');
    const bare = await createTestDatabase({ migrated: false });
    const bareApp = await buildApp({
      config,
      database: bare.database,
      logger: createLogger({ level: 'silent' }),
      metrics: createMetrics({ defaultMetrics: false }),
    });
    try {
      const res = await bareApp.inject({ method: 'GET', url: '/readyz' });
      expect(res.statusCode).toBe(503);
      expect(res.json()).toMatchObject({ reason: "migrations not applied: run 'attendance migrate'", stream: 'unknown' });
    } finally {
      await bareApp.close();
      await bare.drop();
    }
  });

  it('/metrics exports sessions by status, at-risk count and oldest due age from the database, as last refreshed', async () => {
    await insertSessionRows(test.current.database.pool, [
      { call_session_id: 'm1', status: 'pending', next_attempt_at: new Date(Date.now() - 120_000), retention_expires_at: daysFromNow(80) },
      { call_session_id: 'm2', status: 'retrying', retention_expires_at: daysFromNow(2), next_attempt_at: daysFromNow(1) },
      { call_session_id: 'm3', status: 'complete', retention_expires_at: daysFromNow(1) },
    ]);
    expect(await refresher.refresh()).toBe(true);
    const res = await app.inject({ method: 'GET', url: '/metrics' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toContain('text/plain');
    const body = res.body;
    expect(body).toMatch(/^attendance_sessions\{status="pending"\} 1$/m);
    expect(body).toMatch(/^attendance_sessions\{status="retrying"\} 1$/m);
    expect(body).toMatch(/^attendance_sessions\{status="complete"\} 1$/m);
    expect(body).toMatch(/^attendance_sessions\{status="dead"\} 0$/m);
    expect(body).toMatch(/^attendance_sessions_at_risk 1$/m);
    const age = Number(/^attendance_oldest_due_session_age_seconds (\S+)$/m.exec(body)?.[1]);
    expect(age).toBeGreaterThanOrEqual(119);
    expect(age).toBeLessThan(600);
    const refreshedAt = Number(/^attendance_queue_gauges_refreshed_timestamp_seconds (\S+)$/m.exec(body)?.[1]);
    expect(Math.abs(refreshedAt - Date.now() / 1000)).toBeLessThan(60);
  });

  // Fails on the scrape-time read this replaced: that scrape would count m4 and need the database.
  it('a scrape reads no table: it serves the last refresh, even with the database away', async () => {
    expect(await refresher.refresh()).toBe(true);
    const before = (await app.inject({ method: 'GET', url: '/metrics' })).body;
    const refreshedAt = /^attendance_queue_gauges_refreshed_timestamp_seconds (\S+)$/m.exec(before)?.[1];
    expect(Number(refreshedAt)).toBeGreaterThan(0);
    await insertSessionRows(test.current.database.pool, [{ call_session_id: 'm4', status: 'dead', retention_expires_at: daysFromNow(50) }]);

    await proxy.cut();
    try {
      const started = performance.now();
      const res = await app.inject({ method: 'GET', url: '/metrics' });
      expect(performance.now() - started).toBeLessThan(500);
      expect(res.statusCode).toBe(200);
      expect(res.body).toMatch(/^attendance_sessions\{status="dead"\} 0$/m);
      // A refresh that fails keeps the last values and the time they were read.
      expect(await refresher.refresh()).toBe(false);
      const stale = (await app.inject({ method: 'GET', url: '/metrics' })).body;
      expect(/^attendance_queue_gauges_refreshed_timestamp_seconds (\S+)$/m.exec(stale)?.[1]).toBe(refreshedAt);
    } finally {
      await proxy.restore();
    }

    let refreshed = false;
    for (let i = 0; i < 20 && !refreshed; i++) {
      refreshed = await refresher.refresh();
      if (!refreshed) await new Promise((r) => setTimeout(r, 100));
    }
    expect(refreshed).toBe(true);
    expect((await app.inject({ method: 'GET', url: '/metrics' })).body).toMatch(/^attendance_sessions\{status="dead"\} 1$/m);
  });

  // Fails without the shared check: each probe then runs its own two queries on intake's pool.
  it('concurrent /readyz probes share one check', async () => {
    const counted = createDatabase(viaProxyUrl, { max: 10, onError: () => undefined });
    const probeApp = await buildApp({
      config,
      database: counted,
      logger: createLogger({ level: 'silent' }),
      metrics: createMetrics({ defaultMetrics: false }),
    });
    try {
      let connects = 0;
      counted.pool.on('acquire', () => connects++);
      const answers = await Promise.all(Array.from({ length: 50 }, () => probeApp.inject({ method: 'GET', url: '/readyz' })));
      expect(answers.every((r) => r.statusCode === 200)).toBe(true);
      // Two queries per check; a probe arriving after a check finished starts the next one.
      expect(connects).toBeLessThanOrEqual(10);
    } finally {
      await probeApp.close();
      await counted.close();
    }
  });
});
