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
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.ts';
import { createServeSupervisor, findSecretLeaks, parseLogLines, type ServeSupervisor } from './serve-process.ts';

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
      expect(kinds.size).toBe(33);

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

const REPLAYS = 50;
const REPLAY_SESSION_SIZE = 1_500;
const REPLAY_PAGES = REPLAY_SESSION_SIZE / 100;
const OUTAGE_WEBHOOKS = 300;

/*
 * X-WEBHOOK-ID is not signed, so anyone who captured one signed body can replay it under fresh ids.
 * The red team's 49 replays of a call.stats_report_ready cost 1,490 Stream calls; 173 in 10 s,
 * 2,632 calls and 172 fenced-out runs. Here: 50 replays against a session being archived and
 * against a complete one, then a genuinely newer report; then a database outage's log lines.
 */
describe('replayed reports and a database outage against a running service', () => {
  const test = useTestDatabase();
  let sim: Simulator;
  let serve: ServeSupervisor;
  let proxy: TcpProxy;

  beforeAll(async () => {
    sim = await startSimulator({ apiKey: API_KEY, apiSecret: API_SECRET, pageLatencyMs: 100 });
    const target = new URL(test.current.url);
    proxy = await startTcpProxy(target.hostname, Number(target.port || 5432));
    const viaProxy = new URL(test.current.url);
    viaProxy.hostname = '127.0.0.1';
    viaProxy.port = String(proxy.port);
    serve = await createServeSupervisor({
      DATABASE_URL: viaProxy.toString(),
      STREAM_API_KEY: API_KEY,
      STREAM_API_SECRET: API_SECRET,
      STREAM_BASE_URL: sim.url,
      LOG_LEVEL: 'info',
      RECONCILE_INTERVAL_MINUTES: '0',
    });
    await serve.start();
  }, 60_000);
  afterAll(async () => {
    await serve?.kill();
    await sim?.close();
    await proxy?.close();
  });

  const post = async (body: Buffer, webhookId: string = randomUUID()): Promise<number> => {
    const response = await fetch(`${serve.url}/webhooks/stream`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-api-key': API_KEY, 'x-signature': signWebhook(body, API_SECRET), 'x-webhook-id': webhookId, 'x-webhook-attempt': '1' },
      body: new Uint8Array(body),
    });
    await response.arrayBuffer();
    return response.status;
  };
  // One after the other, 20 ms apart, as a replaying attacker would: concurrent copies would share
  // one group commit and hide the cost of each (50 concurrent replays cost 17 calls before the fix).
  const replay = async (body: Buffer): Promise<number[]> => {
    const statuses: number[] = [];
    for (let i = 0; i < REPLAYS; i++) {
      statuses.push(await post(body));
      await delay(20);
    }
    return statuses;
  };
  const row = async (id: string) =>
    (
      await test.current.database.pool.query<{ status: string; archived: number; cursor: string | null; reported: Date | null }>(
        'select status, archived_participant_sessions as archived, cursor, stats_report_ready_at as reported from call_sessions where call_session_id = $1',
        [id],
      )
    ).rows[0];
  const complete = async (id: string) => expect.poll(async () => (await row(id))?.status, { timeout: 30_000, interval: 50 }).toBe('complete');
  const leaseLost = () => parseLogLines(serve.output()).filter((line) => String(line.msg).startsWith('lease lost')).length;

  it(
    `${REPLAYS} replays of a signed report cost no extra archive run, for a session being archived or complete; a newer report re-archives`,
    async () => {
      const running = generateSession({ seed: 'replay-running', size: REPLAY_SESSION_SIZE });
      const done = generateSession({ seed: 'replay-complete', size: REPLAY_SESSION_SIZE });
      sim.addSession(running);
      sim.addSession(done);
      const reportOf = (session: SimSession, createdAt: Date) => Buffer.from(JSON.stringify(buildStatsReportReadyEvent(session, { createdAt })));
      const reported = new Date(Math.floor(Date.now() / 1000) * 1000);

      // A complete session, then 50 replays of its report, each under a new X-WEBHOOK-ID.
      const doneReport = reportOf(done, reported);
      expect(await post(doneReport)).toBe(200);
      await complete(done.callSessionId);
      const afterFirstRun = sim.stats.requests;
      expect(await replay(doneReport)).toEqual(Array(REPLAYS).fill(200));
      await delay(1_000);
      expect((await row(done.callSessionId))!.status).toBe('complete');
      const completeReplayCalls = sim.stats.requests - afterFirstRun;
      expect(completeReplayCalls).toBe(0);

      // A session being archived (15 pages at 100 ms each, about 1.5 s): 50 replays while the worker pages it.
      const runningReport = reportOf(running, reported);
      const beforeRunning = sim.stats.requests;
      expect(await post(runningReport)).toBe(200);
      await expect.poll(async () => (await row(running.callSessionId))?.cursor ?? null, { timeout: 10_000, interval: 10 }).not.toBeNull();
      expect((await row(running.callSessionId))!.status).toBe('running');
      expect(await replay(runningReport)).toEqual(Array(REPLAYS).fill(200));
      // Not taken back: still running (or already complete), its cursor kept.
      expect(['running', 'complete']).toContain((await row(running.callSessionId))!.status);
      await complete(running.callSessionId);
      const runningCalls = sim.stats.requests - beforeRunning;
      // One run is REPLAY_PAGES requests; at most one extra run is allowed, none is expected.
      expect(runningCalls).toBeLessThanOrEqual(2 * REPLAY_PAGES);
      expect(runningCalls).toBe(REPLAY_PAGES);
      expect(leaseLost()).toBe(0);

      // A genuinely newer report for the complete session re-archives it, once.
      const beforeNewer = sim.stats.requests;
      const newer = new Date(reported.getTime() + 1_000);
      expect(await post(reportOf(done, newer))).toBe(200);
      await expect.poll(async () => (await row(done.callSessionId))?.reported?.getTime(), { timeout: 10_000, interval: 50 }).toBe(newer.getTime());
      await complete(done.callSessionId);
      expect(sim.stats.requests - beforeNewer).toBe(REPLAY_PAGES);
      expect((await row(done.callSessionId))!.archived).toBe(REPLAY_SESSION_SIZE);
      console.log(
        `replays: ${REPLAYS} replays of a complete session's report → ${completeReplayCalls} Stream calls; of a running one's → ${runningCalls} calls for a ${REPLAY_PAGES}-page session (one run); lease lost ${leaseLost()}`,
      );
    },
    90_000,
  );

  it(
    `logs a database outage of ${OUTAGE_WEBHOOKS} refused webhooks in a few lines, and says when it is over`,
    async () => {
      const linesBefore = parseLogLines(serve.output()).length;
      await proxy.cut();
      const statuses: number[] = [];
      let next = 0;
      await Promise.all(
        Array.from({ length: 8 }, async () => {
          while (next++ < OUTAGE_WEBHOOKS) {
            statuses.push(await post(Buffer.from(JSON.stringify(buildStatsReportReadyEvent(generateSession({ seed: `outage-${next}`, size: 1 }))))));
          }
        }),
      );
      expect(statuses).toEqual(Array(OUTAGE_WEBHOOKS).fill(503));
      await proxy.restore();
      await expect
        .poll(async () => post(Buffer.from(JSON.stringify(buildStatsReportReadyEvent(generateSession({ seed: 'after-outage', size: 1 }))))), { timeout: 15_000, interval: 250 })
        .toBe(200);
      await delay(200);
      const lines = parseLogLines(serve.output()).slice(linesBefore);
      const webhookLines = lines.filter((line) => String(line.msg).startsWith('webhooks not stored'));
      const bytes = webhookLines.reduce((sum, line) => sum + JSON.stringify(line).length + 1, 0);
      console.log(`outage: ${OUTAGE_WEBHOOKS} webhooks refused with 503 → ${webhookLines.length} log lines, ${bytes} bytes`);
      // The first in full (error, with the stack), a summary per 10 s while it lasts, one line when it is over.
      expect(webhookLines[0]).toMatchObject({ level: 50, err: { stack: expect.any(String) } });
      expect(webhookLines.at(-1)).toMatchObject({ level: 30, msg: 'webhooks not stored: database unavailable (recovered)' });
      // The outage's refusals, and any the polling above met while the pool reconnected.
      expect(webhookLines.at(-1)!.total).toBeGreaterThanOrEqual(OUTAGE_WEBHOOKS);
      expect(webhookLines.length).toBeLessThanOrEqual(4);
      expect(lines.filter((line) => line.msg === 'webhook not stored: database unavailable')).toEqual([]);
      expect(await serve.stop()).toBe(0);
      expect(findSecretLeaks(serve.output(), API_SECRET)).toEqual([]);
    },
    90_000,
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
