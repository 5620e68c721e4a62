import { connect, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { createDatabase, type Database } from '../../src/db/client.ts';
import { createAdmissionGate } from '../../src/http/admission.ts';
import { buildApp } from '../../src/http/app.ts';
import { createBodyBudget, SMALL_BODY_BYTES } from '../../src/http/body-budget.ts';
import { createLogger } from '../../src/logger.ts';
import { createMetrics, type Metrics } from '../../src/metrics.ts';
import { signWebhook } from '../../src/stream/signature.ts';
import { createServerToken } from '../../src/stream/token.ts';
import { useTestDatabase } from '../helpers/db.ts';
import { statsReportReadyBody } from '../helpers/webhooks.ts';

const API_KEY = 'overload-key';
const API_SECRET = 'overload-secret-0123456789';
const MiB = 1024 * 1024;

describe('admission gate', () => {
  it('admits up to its permits, queues up to its bound, refuses the rest and the ones that waited too long', async () => {
    const gate = createAdmissionGate({ permits: 2, maxQueued: 2, maxWaitMs: 100 });
    const first = await gate.admit();
    await gate.admit();
    const queued = [gate.admit(), gate.admit()];
    await expect(gate.admit()).rejects.toMatchObject({ code: 'OVERLOADED', statusCode: 503 });
    first();
    first(); // a second release of the same permit is ignored
    await expect(queued[0]).resolves.toBeTypeOf('function');
    await expect(queued[1]).rejects.toMatchObject({ code: 'OVERLOADED' });
    expect(gate.running()).toBe(2);
    expect(gate.queued()).toBe(0);
  });
});

describe('body budget', () => {
  it('keeps the last quarter for small bodies and gives back what is released', () => {
    const budget = createBodyBudget(4 * MiB);
    expect(budget.tryAcquire(MiB, MiB)).toBe(true);
    expect(budget.tryAcquire(MiB, MiB)).toBe(true);
    expect(budget.tryAcquire(MiB, MiB)).toBe(true);
    // 3 MiB held: a large body is refused, small ones fit until the whole budget is used.
    expect(budget.tryAcquire(MiB, MiB)).toBe(false);
    expect(budget.tryAcquire(SMALL_BODY_BYTES, SMALL_BODY_BYTES)).toBe(true);
    budget.release(MiB);
    expect(budget.tryAcquire(MiB, MiB)).toBe(false);
    expect(budget.tryAcquire(MiB - SMALL_BODY_BYTES, MiB - SMALL_BODY_BYTES)).toBe(true);
    expect(budget.inFlightBytes()).toBe(3 * MiB);
  });
});

describe('overload answers 503 with Retry-After, never 500', () => {
  const test = useTestDatabase();
  const apps: FastifyInstance[] = [];
  const databases: Database[] = [];
  const tiny = (max: number) => {
    const database = createDatabase(test.current.url, { max, connectionTimeoutMillis: 200, onError: () => undefined });
    databases.push(database);
    return database;
  };
  const build = async (env: Record<string, string>, parts: { database: Database; apiDatabase?: Database }) => {
    const metrics = createMetrics({ defaultMetrics: false });
    const config = loadConfig({ STREAM_API_KEY: API_KEY, STREAM_API_SECRET: API_SECRET, ...env });
    const app = await buildApp({ config, ...parts, logger: createLogger({ level: 'silent' }), metrics });
    apps.push(app);
    return { app, metrics };
  };
  const refused = async (metrics: Metrics, reason: string) => (await metrics.httpRefused.get()).values.find((v) => v.labels.reason === reason)?.value ?? 0;
  let token: string;
  const summaryUrl = `/api/v2/video/call/default/c1/session/s1/participant_sessions/summary?api_key=${API_KEY}`;

  beforeAll(async () => {
    token = await createServerToken(API_SECRET);
  });
  afterEach(async () => {
    for (const app of apps.splice(0)) await app.close();
  });
  afterAll(async () => {
    for (const database of databases.splice(0)) await database.close();
  });

  // Fails without the mapping in app.ts: the archive's own error handler answers pg-pool's timeout with 500.
  it('an archive request that cannot get a connection gets 503 in Stream’s error shape', async () => {
    const apiDatabase = tiny(1);
    const { app, metrics } = await build({}, { database: test.current.database, apiDatabase });
    const held = await apiDatabase.pool.connect();
    try {
      const res = await app.inject({ method: 'GET', url: summaryUrl, headers: { authorization: token, 'stream-auth-type': 'jwt' } });
      expect(res.statusCode).toBe(503);
      expect(res.headers['retry-after']).toBe('1');
      expect(res.json()).toMatchObject({ StatusCode: 503, message: 'service busy, retry later' });
      expect(await refused(metrics, 'database_pool')).toBe(1);
    } finally {
      held.release();
    }
    // And once the connection is back, the same request is answered (404: no such session).
    const after = await app.inject({ method: 'GET', url: summaryUrl, headers: { authorization: token, 'stream-auth-type': 'jwt' } });
    expect(after.statusCode).toBe(404);
  });

  // Fails without the gate: every request waits in pg-pool's unbounded queue.
  it('archive requests past the gate’s queue are refused at once, and none gets 500', async () => {
    // DATABASE_POOL_SIZE 9: the archive API gets 1 connection, so 1 running and 16 waiting.
    const apiDatabase = tiny(1);
    const { app, metrics } = await build({ DATABASE_POOL_SIZE: '9', WORKER_CONCURRENCY: '1' }, { database: test.current.database, apiDatabase });
    const held = await apiDatabase.pool.connect();
    try {
      const answers = await Promise.all(
        Array.from({ length: 40 }, () => app.inject({ method: 'GET', url: summaryUrl, headers: { authorization: token, 'stream-auth-type': 'jwt' } })),
      );
      expect(answers.map((r) => r.statusCode)).toEqual(answers.map(() => 503));
      expect(answers.every((r) => r.headers['retry-after'] === '1')).toBe(true);
      expect(await refused(metrics, 'archive_api')).toBeGreaterThanOrEqual(40 - 1 - 16);
    } finally {
      held.release();
    }
  });

  it('a webhook that cannot get a connection gets 503 with Retry-After (Stream retries)', async () => {
    const database = tiny(1);
    const { app } = await build({}, { database });
    const held = await database.pool.connect();
    try {
      const body = JSON.stringify(statsReportReadyBody());
      const res = await app.inject({
        method: 'POST',
        url: '/webhooks/stream',
        headers: { 'content-type': 'application/json', 'x-api-key': API_KEY, 'x-signature': signWebhook(body, API_SECRET) },
        payload: body,
      });
      expect(res.statusCode).toBe(503);
      expect(res.headers['retry-after']).toBe('1');
    } finally {
      held.release();
    }
  });

  describe('the body budget, over real sockets', () => {
    // HTTP_BODY_BUDGET_MIB 2: bodies over 64 KiB may hold 1.5 MiB together, small ones the rest.
    let app: FastifyInstance;
    let metrics: Metrics;
    let port: number;
    const open: Socket[] = [];

    beforeAll(async () => {
      ({ app, metrics } = await build({ HTTP_BODY_BUDGET_MIB: '2' }, { database: test.current.database }));
      // Kept for every test of this block (the outer afterEach closes the others' apps).
      apps.splice(apps.indexOf(app), 1);
      await app.listen({ port: 0, host: '127.0.0.1' });
      port = (app.server.address() as AddressInfo).port;
    });
    afterEach(() => {
      for (const socket of open.splice(0)) socket.destroy();
    });
    afterAll(async () => {
      await app?.close();
    });

    /** Sends the head and `sent` bytes of a body, leaves the rest unsent; resolves with what the server answers. */
    const startUpload = (head: Record<string, string>, sent: Buffer) => {
      const socket = connect(port, '127.0.0.1');
      open.push(socket);
      let received = '';
      const answer = new Promise<string>((resolve) => {
        socket.on('data', (chunk: Buffer) => {
          received += chunk.toString('latin1');
          if (received.includes('\r\n\r\n')) resolve(received);
        });
        socket.on('close', () => resolve(received));
        socket.on('error', () => undefined);
      });
      const lines = Object.entries({ host: 'localhost', 'x-api-key': API_KEY, 'x-signature': 'ab', ...head }).map(([k, v]) => `${k}: ${v}`);
      socket.write(`POST /webhooks/stream HTTP/1.1\r\n${lines.join('\r\n')}\r\n\r\n`);
      socket.write(sent);
      return { socket, answer };
    };
    const statusOf = (answer: string) => Number(/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1]);
    const signed = async () => {
      const body = JSON.stringify(statsReportReadyBody());
      const res = await fetch(`http://127.0.0.1:${port}/webhooks/stream`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-api-key': API_KEY, 'x-signature': signWebhook(body, API_SECRET) },
        body,
      });
      return res.status;
    };
    const settle = () => new Promise((resolve) => setTimeout(resolve, 100));

    // Fails without the budget: the second upload is read into memory like the first.
    it('refuses a declared body past the budget before reading it, while small webhooks still get in', async () => {
      const first = startUpload({ 'content-length': String(MiB - 1) }, Buffer.alloc(1024));
      await settle();
      const second = startUpload({ 'content-length': String(MiB - 1) }, Buffer.alloc(1024));
      const answer = await second.answer;
      expect(statusOf(answer)).toBe(503);
      expect(answer.toLowerCase()).toContain('retry-after: 1');
      expect(await refused(metrics, 'body_budget')).toBe(1);
      expect(await signed()).toBe(200);

      // The first upload's reservation is returned when its connection goes.
      first.socket.destroy();
      await settle();
      const third = startUpload({ 'content-length': String(MiB - 1) }, Buffer.alloc(MiB - 1));
      expect(statusOf(await third.answer)).toBe(401);
    });

    it('counts a chunked body as it arrives and refuses it with 503 once past the budget', async () => {
      startUpload({ 'content-length': String(MiB - 1) }, Buffer.alloc(1024));
      await settle();
      const chunk = Buffer.alloc(256 * 1024, 0x61);
      const chunked = startUpload({ 'transfer-encoding': 'chunked' }, Buffer.alloc(0));
      for (let i = 0; i < 3; i++) chunked.socket.write(`${chunk.length.toString(16)}\r\n${chunk.toString('latin1')}\r\n`);
      const answer = await chunked.answer;
      expect(statusOf(answer)).toBe(503);
      expect(answer.toLowerCase()).toContain('retry-after: 1');
    });

    it('answers an ordinary chunked body as usual (the budget only counts it)', async () => {
      const chunked = startUpload({ 'transfer-encoding': 'chunked' }, Buffer.alloc(0));
      chunked.socket.write('5\r\nhello\r\n0\r\n\r\n');
      expect(statusOf(await chunked.answer)).toBe(401);
    });
  });
});
