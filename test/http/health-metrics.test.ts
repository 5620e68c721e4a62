import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { createDatabase, type Database } from '../../src/db/client.ts';
import { buildApp } from '../../src/http/app.ts';
import { createLogger } from '../../src/logger.ts';
import { createMetrics } from '../../src/metrics.ts';
import { useTestDatabase } from '../helpers/db.ts';
import { daysFromNow, insertSessions } from '../helpers/sessions.ts';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.ts';

const config = loadConfig({ STREAM_API_KEY: 'key', STREAM_API_SECRET: 'secret' });

describe('health and metrics routes', () => {
  const test = useTestDatabase();
  let proxy: TcpProxy;
  let database: Database;
  let app: FastifyInstance;

  beforeAll(async () => {
    const target = new URL(test.current.url);
    proxy = await startTcpProxy(target.hostname, Number(target.port || 5432));
    const viaProxy = new URL(test.current.url);
    viaProxy.hostname = '127.0.0.1';
    viaProxy.port = String(proxy.port);
    database = createDatabase(viaProxy.toString(), { connectionTimeoutMillis: 1_000, onError: () => undefined });
    app = await buildApp({ config, database, logger: createLogger({ level: 'silent' }), metrics: createMetrics({ defaultMetrics: false }) });
  });

  afterAll(async () => {
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
    const bareApp = await buildApp({ config, database: bare.database, logger: createLogger({ level: 'silent' }), metrics: createMetrics({ defaultMetrics: false }) });
    try {
      const res = await bareApp.inject({ method: 'GET', url: '/readyz' });
      expect(res.statusCode).toBe(503);
      expect(res.json()).toMatchObject({ reason: "migrations not applied: run 'attendance migrate'", stream: 'unknown' });
    } finally {
      await bareApp.close();
      await bare.drop();
    }
  });

  it('/metrics exports sessions by status, at-risk count and oldest due age from the database', async () => {
    await insertSessions(test.current.database.pool, [
      { call_session_id: 'm1', status: 'pending', next_attempt_at: new Date(Date.now() - 120_000), retention_expires_at: daysFromNow(80) },
      { call_session_id: 'm2', status: 'retrying', retention_expires_at: daysFromNow(2), next_attempt_at: daysFromNow(1) },
      { call_session_id: 'm3', status: 'complete', retention_expires_at: daysFromNow(1) },
    ]);
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
  });
});
