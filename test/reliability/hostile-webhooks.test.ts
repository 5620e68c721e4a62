import { randomUUID } from 'node:crypto';
import { connect } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import { Pool } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { INCOMING_REQUEST_TIMEOUT_MS } from '../../src/http/app.ts';
import { generateSession, type SimSession } from '../../src/simulator/generate.ts';
import { createRandom } from '../../src/simulator/random.ts';
import { startSimulator, type Simulator } from '../../src/simulator/server.ts';
import { buildSessionEndedEvent, buildStatsReportReadyEvent } from '../../src/simulator/webhooks.ts';
import { signWebhook } from '../../src/stream/signature.ts';
import { useTestDatabase } from '../helpers/db.ts';
import { generateHostileRequests, type HostileRequest } from './hostile-requests.ts';
import { createServeSupervisor, findSecretLeaks, type ServeSupervisor } from './serve-process.ts';

const API_KEY = 'hostile-test-key';
const API_SECRET = 'hostile-test-secret-that-must-never-leak-7d1e';
const HOSTILE_COUNT = 2_100;
const LORIS_CONNECTIONS = 40;

interface Answer {
  readonly status: number;
  readonly body: string;
}

describe('hostile webhooks against a running service', () => {
  const test = useTestDatabase();
  let sim: Simulator;
  let serve: ServeSupervisor;

  beforeAll(async () => {
    sim = await startSimulator({ apiKey: API_KEY, apiSecret: API_SECRET });
    serve = await createServeSupervisor({
      DATABASE_URL: test.current.url,
      STREAM_API_KEY: API_KEY,
      STREAM_API_SECRET: API_SECRET,
      STREAM_BASE_URL: sim.url,
      LOG_LEVEL: 'debug',
      RECONCILE_INTERVAL_MINUTES: '0',
    });
    await serve.start();
  }, 60_000);
  afterAll(async () => {
    await serve?.kill();
    await sim?.close();
  });

  it(
    'stores none of 2,100 hostile webhooks, never answers 5xx, stays healthy and keeps accepting valid traffic quickly',
    async () => {
      const pool = test.current.database.pool;
      const random = createRandom('hostile');
      const hostile = generateHostileRequests(random, { apiKey: API_KEY, apiSecret: API_SECRET }, HOSTILE_COUNT);
      expect(hostile.length).toBeGreaterThanOrEqual(2_000);
      const url = new URL(serve.url);
      const http = new Pool(serve.url, { connections: 16 });

      // Valid traffic, with ids a careless query builder would trip over.
      const oddIds = ["'; drop table call_sessions; --", 'x\' or \'1\'=\'1', 'line\nbreak', '🎧 dj/../%2e%2e', 'back\\slash"quote'];
      const valid: SimSession[] = Array.from({ length: 60 }, (_, i) =>
        generateSession({ seed: `valid-${i}`, size: 1 + (i % 7) * 13, ...(i < oddIds.length ? { callSessionId: `${oddIds[i]}-${i}` } : {}) }),
      );
      for (const session of valid) sim.addSession(session);
      const validIds: string[] = [];
      const validLatencies: number[] = [];
      const validStatuses: number[] = [];

      const sendValid = async (event: Record<string, unknown>) => {
        const body = Buffer.from(JSON.stringify(event));
        const id = randomUUID();
        validIds.push(id);
        const started = performance.now();
        const response = await http.request({
          path: '/webhooks/stream',
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-api-key': API_KEY, 'x-signature': signWebhook(body, API_SECRET), 'x-webhook-id': id, 'x-webhook-attempt': '1' },
          body,
        });
        await response.body.text();
        validLatencies.push(performance.now() - started);
        validStatuses.push(response.statusCode);
      };

      const sendHostile = async (request: HostileRequest): Promise<Answer> => {
        if (request.raw) return sendRaw(url.port, request.raw);
        try {
          const response = await http.request({ path: '/webhooks/stream', method: 'POST', headers: request.headers, body: request.body });
          return { status: response.statusCode, body: await response.body.text() };
        } catch (error) {
          // The server may answer 413 and close before an oversized body is fully sent.
          return { status: -1, body: String((error as Error).message) };
        }
      };

      const loris = Array.from({ length: LORIS_CONNECTIONS }, (_, i) => startLoris(url.port, i % 2 === 0 ? 'body' : 'headers'));
      const health: number[] = [];
      let attacking = true;
      const healthCheck = (async () => {
        while (attacking) {
          for (const path of ['/healthz', '/readyz']) {
            const response = await fetch(`${serve.url}${path}`);
            await response.arrayBuffer();
            health.push(response.status);
          }
          await delay(200);
        }
      })();
      const validTraffic = (async () => {
        let i = 0;
        while (attacking || i < valid.length * 2) {
          const session = valid[Math.floor(i / 2) % valid.length]!;
          await sendValid(i % 2 === 0 ? buildSessionEndedEvent(session) : buildStatsReportReadyEvent(session));
          i += 1;
          await delay(20);
        }
      })();

      const answers: { request: HostileRequest; answer: Answer }[] = [];
      let next = 0;
      await Promise.all(
        Array.from({ length: 16 }, async () => {
          while (next < hostile.length) {
            const request = hostile[next++]!;
            answers.push({ request, answer: await sendHostile(request) });
          }
        }),
      );
      const lorisLifetimes = await Promise.all(loris.map((l) => l.closedAfterMs));
      attacking = false;
      await Promise.all([healthCheck, validTraffic]);
      await http.close();

      // Every hostile request got the answer its kind calls for, and none a 5xx.
      const unexpected = answers.filter(({ request, answer }) => !request.expect.includes(answer.status) && !(answer.status === -1 && request.kind === 'oversized body'));
      expect(unexpected.map(({ request, answer }) => `${request.kind}: ${answer.status} ${answer.body.slice(0, 120)}`)).toEqual([]);
      expect(answers.filter(({ answer }) => answer.status >= 500)).toEqual([]);
      const kinds = new Set(answers.map(({ request }) => request.kind));
      expect(kinds.size).toBe(29);

      // None stored: the inbox holds exactly the valid deliveries, the queue exactly the valid sessions.
      const storedIds = (await pool.query<{ id: string }>('select webhook_id as id from webhook_events')).rows.map((r) => r.id);
      expect(storedIds.sort()).toEqual([...new Set(validIds)].sort());
      const sessionIds = (await pool.query<{ id: string }>('select call_session_id as id from call_sessions')).rows.map((r) => r.id);
      expect(sessionIds.sort()).toEqual(valid.map((s) => s.callSessionId).sort());

      // Slow-loris connections were cut by the server, not left open.
      for (const lifetime of lorisLifetimes) expect(lifetime).toBeLessThan(INCOMING_REQUEST_TIMEOUT_MS + 5_000);

      // Healthy and fast throughout; the process never died.
      expect(health.length).toBeGreaterThan(0);
      expect(health.every((s) => s === 200)).toBe(true);
      expect(validStatuses.every((s) => s === 200)).toBe(true);
      const sorted = [...validLatencies].sort((a, b) => a - b);
      const p99 = sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.99))]!;
      console.log(
        `hostile: ${answers.length} requests of ${kinds.size} kinds; valid deliveries ${validLatencies.length}, p50 ${sorted[Math.floor(sorted.length / 2)]!.toFixed(1)} ms, p99 ${p99.toFixed(1)} ms; slow-loris cut after ${Math.round(Math.max(...lorisLifetimes))} ms at most`,
      );
      expect(p99).toBeLessThan(1_000);
      expect(serve.processes.at(-1)!.child.exitCode).toBeNull();

      // The valid sessions, odd ids included, are archived whole.
      await expect
        .poll(async () => (await pool.query<{ n: number }>("select count(*)::int as n from call_sessions where status = 'complete'")).rows[0]!.n, { timeout: 20_000, interval: 200 })
        .toBe(valid.length);
      const rows = (await pool.query<{ n: number }>('select count(*)::int as n from participant_sessions')).rows[0]!.n;
      expect(rows).toBe(valid.reduce((sum, s) => sum + s.participants.length, 0));

      // Neither the logs nor any answer carry the secret or a JWT.
      expect(await serve.stop()).toBe(0);
      expect(findSecretLeaks(serve.output(), API_SECRET)).toEqual([]);
      expect(findSecretLeaks(answers.map(({ answer }) => answer.body).join('\n'), API_SECRET)).toEqual([]);
      expect(serve.output()).toContain('webhook rejected');
    },
    120_000,
  );
});

/** Writes `raw` on a fresh connection and reads the status line of the answer (0 if none came). */
function sendRaw(port: string, raw: Buffer): Promise<Answer> {
  return new Promise((resolve) => {
    const socket = connect(Number(port), '127.0.0.1');
    let received = '';
    socket.on('data', (chunk) => (received += String(chunk)));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      const status = /^HTTP\/1\.1 (\d{3})/.exec(received);
      resolve({ status: status ? Number(status[1]) : 0, body: received.slice(received.indexOf('\r\n\r\n') + 4) });
    });
    socket.on('connect', () => socket.end(raw));
    socket.setTimeout(15_000, () => socket.destroy());
  });
}

/** A slow-loris sender: headers (or, after complete headers, the body) one byte every 300 ms. */
function startLoris(port: string, mode: 'headers' | 'body'): { closedAfterMs: Promise<number> } {
  const socket = connect(Number(port), '127.0.0.1');
  const started = performance.now();
  const head = 'POST /webhooks/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n';
  const trickle = mode === 'headers' ? `X-Padding: ${'p'.repeat(10_000)}` : 'x'.repeat(100_000);
  let timer: NodeJS.Timeout | undefined;
  socket.on('error', () => undefined);
  socket.on('connect', () => {
    socket.write(mode === 'headers' ? head : `${head}\r\n`);
    let i = 0;
    timer = setInterval(() => {
      if (!socket.destroyed) socket.write(trickle[i++ % trickle.length]!);
    }, 300);
  });
  // A backstop so a server that never cuts the connection fails the assertion instead of hanging.
  const backstop = setTimeout(() => socket.destroy(), INCOMING_REQUEST_TIMEOUT_MS + 20_000);
  return {
    closedAfterMs: new Promise((resolve) =>
      socket.on('close', () => {
        clearInterval(timer);
        clearTimeout(backstop);
        resolve(performance.now() - started);
      }),
    ),
  };
}
