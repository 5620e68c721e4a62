import { createHash, randomUUID } from 'node:crypto';
import { startSilentServer } from '../helpers/silent-server.ts';
import { startTcpProxy } from '../helpers/tcp-proxy.ts';
import { gzipSync } from 'node:zlib';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabase } from '../../src/db/client.ts';
import { MAX_WEBHOOK_BODY_BYTES } from '../../src/http/webhooks.ts';
import { MAX_WEBHOOK_JSON_DEPTH } from '../../src/stream/webhook-events.ts';
import type { Metrics } from '../../src/metrics.ts';
import { SESSIONS_DUE_CHANNEL } from '../../src/queue/sql.ts';
import { signWebhook } from '../../src/stream/signature.ts';
import { useTestDatabase } from '../helpers/db.ts';
import {
  TEST_API_SECRET,
  TEST_PREVIOUS_API_SECRET,
  sessionEndedBody,
  statsReportReadyBody,
  createWebhookTestApp,
  deliverWebhook,
  listenForNotifications,
} from '../helpers/webhooks.ts';

const testDb = useTestDatabase();
let app: FastifyInstance;
let metrics: Metrics;
let logs: string[];

beforeAll(async () => {
  ({ app, metrics, logs } = await createWebhookTestApp(testDb.current.database, { captureLogs: true }));
});
afterAll(async () => {
  await app?.close();
});

async function count(table: 'webhook_events' | 'call_sessions', where: string, value: string): Promise<number> {
  const { rows } = await testDb.current.database.pool.query<{ n: number }>(`select count(*)::int as n from ${table} where ${where} = $1`, [value]);
  return rows[0]!.n;
}

async function counted(outcome: string, type?: string): Promise<number> {
  const { values } = await metrics.webhooksTotal.get();
  return values.filter((v) => v.labels.outcome === outcome && (type === undefined || v.labels.type === type)).reduce((sum, v) => sum + v.value, 0);
}

/** A body of exactly `bytes` bytes: a stats_report_ready event padded with a filler field. */
function paddedBody(bytes: number, sessionId: string): Buffer {
  const head = JSON.stringify(statsReportReadyBody({ sessionId })).slice(0, -1);
  const shell = `${head},"filler":""}`;
  return Buffer.from(`${head},"filler":"${'x'.repeat(bytes - shell.length)}"}`);
}

describe('POST /webhooks/stream: accepted', () => {
  it('stores call.stats_report_ready and answers 200 after the commit', async () => {
    const sessionId = randomUUID();
    const webhookId = randomUUID();
    const before = await counted('stored', 'call.stats_report_ready');
    const res = await deliverWebhook(app, statsReportReadyBody({ sessionId, callCid: 'default:standup' }), { webhookId, attempt: '3' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ status: 'stored' });
    const { rows } = await testDb.current.database.pool.query(
      `select e.attempt, e.call_cid, s.status, s.call_type, s.call_id
         from webhook_events e join call_sessions s on s.call_session_id = e.session_id where e.webhook_id = $1`,
      [webhookId],
    );
    expect(rows).toEqual([{ attempt: 3, call_cid: 'default:standup', status: 'pending', call_type: 'default', call_id: 'standup' }]);
    expect(await counted('stored', 'call.stats_report_ready')).toBe(before + 1);
    const { values } = await metrics.webhookDuration.get();
    expect(values.some((v) => v.labels.outcome === 'stored' && v.metricName?.endsWith('_count') && v.value > 0)).toBe(true);
  });

  it('stores call.session_ended', async () => {
    const sessionId = randomUUID();
    const res = await deliverWebhook(app, sessionEndedBody({ sessionId }));
    expect(res.statusCode).toBe(200);
    expect(await count('call_sessions', 'call_session_id', sessionId)).toBe(1);
  });

  it('answers a duplicate X-WEBHOOK-ID with 200 and stores it once', async () => {
    const sessionId = randomUUID();
    const webhookId = randomUUID();
    const body = statsReportReadyBody({ sessionId });
    expect((await deliverWebhook(app, body, { webhookId, attempt: '1' })).json()).toEqual({ status: 'stored' });
    const again = await deliverWebhook(app, body, { webhookId, attempt: '2' });
    expect(again.statusCode).toBe(200);
    expect(again.json()).toEqual({ status: 'duplicate' });
    expect(await count('webhook_events', 'webhook_id', webhookId)).toBe(1);
  });

  it('verifies the raw bytes: unusual whitespace and key order', async () => {
    const sessionId = randomUUID();
    const webhookId = randomUUID();
    const raw =
      `\n{ "session_id" :\t"${sessionId}",\r\n  "is_trimmed":false , "counts" : {"sessions":1},` +
      `"call_cid":   "default:odd" ,"created_at":1775658215879421674,  "type" : "call.stats_report_ready"   }\n\n`;
    const res = await deliverWebhook(app, raw, { webhookId });
    expect(res.statusCode).toBe(200);
    const { rows } = await testDb.current.database.pool.query(
      `select payload->>'created_at' as created_at, s.stats_report_ready_at
         from webhook_events e join call_sessions s on s.call_session_id = e.session_id where webhook_id = $1`,
      [webhookId],
    );
    expect(rows).toEqual([{ created_at: '1775658215879421674', stats_report_ready_at: new Date('2026-04-08T14:23:35.879Z') }]);
  });

  it('accepts a body without a Content-Type', async () => {
    const res = await deliverWebhook(app, statsReportReadyBody(), { contentType: null });
    expect(res.statusCode).toBe(200);
  });

  it('keeps its raw-body parser to itself: other routes still get parsed JSON', async () => {
    const other = await createWebhookTestApp(testDb.current.database);
    try {
      other.app.post('/echo', async (request) => ({ parsed: !Buffer.isBuffer(request.body), body: request.body }));
      const res = await other.app.inject({ method: 'POST', url: '/echo', payload: { a: 1 } });
      expect(res.json()).toEqual({ parsed: true, body: { a: 1 } });
    } finally {
      await other.app.close();
    }
  });

  it('accepts a text/plain body without parsing it first', async () => {
    const res = await deliverWebhook(app, statsReportReadyBody(), { contentType: 'text/plain; charset=utf-8' });
    expect(res.statusCode).toBe(200);
  });

  it('gunzips a body sent with Content-Encoding: gzip, verifying the uncompressed bytes', async () => {
    const sessionId = randomUUID();
    const res = await deliverWebhook(app, statsReportReadyBody({ sessionId }), { gzip: 'header' });
    expect(res.statusCode).toBe(200);
    expect(await count('call_sessions', 'call_session_id', sessionId)).toBe(1);
  });

  it('gunzips a body that starts with the gzip magic bytes even without the header', async () => {
    const sessionId = randomUUID();
    const res = await deliverWebhook(app, statsReportReadyBody({ sessionId }), { gzip: 'magic-only' });
    expect(res.statusCode).toBe(200);
    expect(await count('call_sessions', 'call_session_id', sessionId)).toBe(1);
  });

  it('verifies plain bytes under a gzip header as they are (a proxy already decompressed them)', async () => {
    const res = await deliverWebhook(app, statsReportReadyBody(), { headers: { 'content-encoding': 'gzip' } });
    expect(res.statusCode).toBe(200);
  });

  it('accepts Content-Encoding: identity', async () => {
    const res = await deliverWebhook(app, statsReportReadyBody(), { headers: { 'content-encoding': 'identity' } });
    expect(res.statusCode).toBe(200);
  });

  it('accepts a body of exactly 1 MiB', async () => {
    const sessionId = randomUUID();
    const body = paddedBody(MAX_WEBHOOK_BODY_BYTES, sessionId);
    expect(body.length).toBe(MAX_WEBHOOK_BODY_BYTES);
    expect((await deliverWebhook(app, body)).statusCode).toBe(200);
    expect((await deliverWebhook(app, body, { gzip: 'header' })).statusCode).toBe(200);
  });

  it('accepts a signature under a previous secret (rotation)', async () => {
    const res = await deliverWebhook(app, statsReportReadyBody(), { secret: TEST_PREVIOUS_API_SECRET });
    expect(res.statusCode).toBe(200);
  });

  it('answers 200 to event types it does not use, without storing them', async () => {
    const webhookId = randomUUID();
    const before = await counted('ignored', 'call.session_participant_joined');
    const res = await deliverWebhook(app, { type: 'call.session_participant_joined', call_cid: 'default:x', session_id: 's' }, { webhookId });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ status: 'ignored' });
    expect(await count('webhook_events', 'webhook_id', webhookId)).toBe(0);
    expect(await counted('ignored', 'call.session_participant_joined')).toBe(before + 1);
  });

  it('derives a stable id from the body when X-WEBHOOK-ID is missing, so a retry still dedupes', async () => {
    const sessionId = randomUUID();
    const body = JSON.stringify(statsReportReadyBody({ sessionId }));
    const first = await deliverWebhook(app, body, { webhookId: null });
    const retry = await deliverWebhook(app, body, { webhookId: null, gzip: 'header' });
    expect([first.json(), retry.json()]).toEqual([{ status: 'stored' }, { status: 'duplicate' }]);
    const { rows } = await testDb.current.database.pool.query('select webhook_id from webhook_events where session_id = $1', [sessionId]);
    expect(rows).toEqual([{ webhook_id: `sha256:${createHash('sha256').update(body).digest('hex')}` }]);
  });

  it('stores a non-numeric X-WEBHOOK-ATTEMPT as null', async () => {
    const webhookId = randomUUID();
    await deliverWebhook(app, statsReportReadyBody(), { webhookId, attempt: 'first' });
    const { rows } = await testDb.current.database.pool.query('select attempt from webhook_events where webhook_id = $1', [webhookId]);
    expect(rows).toEqual([{ attempt: null }]);
  });

  it('sends a NOTIFY so idle workers wake at once', async () => {
    const listener = await listenForNotifications(testDb.current.url, SESSIONS_DUE_CHANNEL);
    try {
      const sessionId = randomUUID();
      expect((await deliverWebhook(app, statsReportReadyBody({ sessionId }))).statusCode).toBe(200);
      expect(await listener.next()).toBe(sessionId);
    } finally {
      await listener.close();
    }
  });

  it('stores 50 concurrent deliveries of the same webhook once', async () => {
    const sessionId = randomUUID();
    const webhookId = randomUUID();
    const body = statsReportReadyBody({ sessionId });
    const answers = await Promise.all(Array.from({ length: 50 }, (_, i) => deliverWebhook(app, body, { webhookId, attempt: String(i + 1) })));
    expect(answers.map((r) => r.statusCode)).toEqual(Array(50).fill(200));
    const statuses = answers.map((r) => (r.json() as { status: string }).status);
    expect(statuses.filter((s) => s === 'stored')).toHaveLength(1);
    expect(statuses.filter((s) => s === 'duplicate')).toHaveLength(49);
    expect(await count('webhook_events', 'webhook_id', webhookId)).toBe(1);
    expect(await count('call_sessions', 'call_session_id', sessionId)).toBe(1);
  });

  it('does not delay a session when session_ended arrives after stats_report_ready', async () => {
    const sessionId = randomUUID();
    expect((await deliverWebhook(app, statsReportReadyBody({ sessionId }))).statusCode).toBe(200);
    expect((await deliverWebhook(app, sessionEndedBody({ sessionId }))).statusCode).toBe(200);
    const { rows } = await testDb.current.database.pool.query<{ due: boolean; status: string; ended: boolean }>(
      `select next_attempt_at <= now() as due, status, session_ended_at is not null as ended from call_sessions where call_session_id = $1`,
      [sessionId],
    );
    expect(rows).toEqual([{ due: true, status: 'pending', ended: true }]);
  });
});

describe('POST /webhooks/stream: refused', () => {
  const unauthorized = async (options: Parameters<typeof deliverWebhook>[2], body: Parameters<typeof deliverWebhook>[1] = statsReportReadyBody()) => {
    const logged = logs.length;
    const webhookId = randomUUID();
    const res = await deliverWebhook(app, body, { webhookId, ...options });
    expect(res.statusCode).toBe(401);
    expect(res.json()).toEqual({ error: 'unauthorized' });
    expect(await count('webhook_events', 'webhook_id', webhookId)).toBe(0);
    return logs.slice(logged).join('');
  };

  it('401 for a missing signature', async () => {
    expect(await unauthorized({ secret: null })).toContain('missing signature');
  });

  it('401 for a signature under an unknown secret, without logging secrets or signatures', async () => {
    const body = JSON.stringify(statsReportReadyBody());
    const expected = signWebhook(body, TEST_API_SECRET);
    const given = signWebhook(body, 'not-our-secret');
    const log = await unauthorized({ secret: 'not-our-secret' }, body);
    expect(log).toContain('signature mismatch');
    for (const secretText of [TEST_API_SECRET, TEST_PREVIOUS_API_SECRET, expected, given]) expect(log).not.toContain(secretText);
  });

  it('401 for a body changed after signing', async () => {
    const body = JSON.stringify(statsReportReadyBody());
    await unauthorized({ signature: signWebhook(body.replace('default:call-1', 'default:call-2'), TEST_API_SECRET) }, body);
  });

  it('401 for a signature in upper-case hex', async () => {
    const body = JSON.stringify(statsReportReadyBody());
    await unauthorized({ signature: signWebhook(body, TEST_API_SECRET).toUpperCase() }, body);
  });

  it('401 for a signature over the gzipped bytes instead of the JSON', async () => {
    const body = JSON.stringify(statsReportReadyBody());
    const zipped = gzipSync(body);
    const res = await app.inject({
      method: 'POST',
      url: '/webhooks/stream',
      headers: {
        'content-type': 'application/json',
        'content-encoding': 'gzip',
        'x-api-key': 'test-api-key',
        'x-signature': signWebhook(zipped, TEST_API_SECRET),
      },
      payload: zipped,
    });
    expect(res.statusCode).toBe(401);
  });

  it('401 for a missing X-API-KEY', async () => {
    expect(await unauthorized({ apiKey: null })).toContain('missing api key');
  });

  it('401 for a wrong X-API-KEY, even with a valid signature', async () => {
    expect(await unauthorized({ apiKey: 'another-app' })).toContain('unknown api key');
  });

  it('400 for a signed body that is not JSON', async () => {
    const res = await deliverWebhook(app, 'type=call.stats_report_ready');
    expect(res.statusCode).toBe(400);
    expect(res.json()).toEqual({ error: 'body is not JSON' });
  });

  it('400 for a signed empty body', async () => {
    expect((await deliverWebhook(app, '')).statusCode).toBe(400);
  });

  it('400 for signed JSON that is not an event object', async () => {
    expect((await deliverWebhook(app, '[1,2,3]')).statusCode).toBe(400);
  });

  it.each([
    ['without call_cid', { call_cid: undefined }],
    ['without session_id', { session_id: undefined }],
    ['with a call_cid that has no colon', { call_cid: 'standup' }],
  ])('400 for a handled event %s, storing nothing', async (_name, change) => {
    const webhookId = randomUUID();
    for (const body of [statsReportReadyBody(), sessionEndedBody()]) {
      const res = await deliverWebhook(app, { ...body, ...change }, { webhookId });
      expect(res.statusCode).toBe(400);
    }
    expect(await count('webhook_events', 'webhook_id', webhookId)).toBe(0);
  });

  it('stores an event holding a lone surrogate escape (valid JSON that jsonb refuses), with U+FFFD in its place', async () => {
    const webhookId = randomUUID();
    const body = JSON.stringify(statsReportReadyBody()).replace('"is_trimmed"', '"note":"half \\ud800 an emoji","is_trimmed"');
    const res = await deliverWebhook(app, body, { webhookId });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ status: 'stored' });
    const { rows } = await testDb.current.database.pool.query<{ note: string }>(`select payload->>'note' as note from webhook_events where webhook_id = $1`, [
      webhookId,
    ]);
    expect(rows).toEqual([{ note: 'half \ufffd an emoji' }]);
  });

  it('400 for an event Postgres cannot store (a NUL in its session id), logged', async () => {
    const logged = logs.length;
    const res = await deliverWebhook(app, statsReportReadyBody({ sessionId: 'cs-\u0000-1' }));
    expect(res.statusCode).toBe(400);
    expect(res.json()).toEqual({ error: 'event cannot be stored' });
    expect(logs.slice(logged).join('')).toContain('webhook event cannot be stored');
  });

  it(`400 for signed JSON nested deeper than ${MAX_WEBHOOK_JSON_DEPTH}, before any database work; ${MAX_WEBHOOK_JSON_DEPTH} itself is stored`, async () => {
    const nested = (depth: number) => {
      const sessionId = randomUUID();
      return {
        sessionId,
        body: `${JSON.stringify(statsReportReadyBody({ sessionId })).slice(0, -1)},"deep":${'['.repeat(depth - 1)}"[{\\"}"${']'.repeat(depth - 1)}}`,
      };
    };
    for (const depth of [MAX_WEBHOOK_JSON_DEPTH + 1, 100_000]) {
      const { sessionId, body } = nested(depth);
      const res = await deliverWebhook(app, body);
      expect(res.statusCode).toBe(400);
      expect(res.json()).toEqual({ error: `JSON nested deeper than ${MAX_WEBHOOK_JSON_DEPTH}` });
      expect(await count('call_sessions', 'call_session_id', sessionId)).toBe(0);
    }
    // The root object is level 1 and its depth - 1 arrays the rest: exactly the limit is stored.
    const { sessionId, body } = nested(MAX_WEBHOOK_JSON_DEPTH);
    expect((await deliverWebhook(app, body)).statusCode).toBe(200);
    expect(await count('call_sessions', 'call_session_id', sessionId)).toBe(1);
  });

  it('answers 200 to 60 concurrent deliveries and 400 to the one nested 100,000 deep among them', async () => {
    const bodies: (string | Record<string, unknown>)[] = Array.from({ length: 60 }, () => statsReportReadyBody());
    bodies.splice(30, 0, `${JSON.stringify(statsReportReadyBody()).slice(0, -1)},"deep":${'['.repeat(100_000)}${']'.repeat(100_000)}}`);
    const answers = await Promise.all(bodies.map((body) => deliverWebhook(app, body)));
    expect(answers.map((a) => a.statusCode)).toEqual([...Array(30).fill(200), 400, ...Array(30).fill(200)]);
  });

  it.each([
    ['session_id', (id: string) => ({ session_id: id })],
    ['call_cid (call id)', (id: string) => ({ call_cid: `default:${id}` })],
    ['call_cid (call type)', (id: string) => ({ call_cid: `${id}:call-1` })],
  ])('400 for a %s holding invalid UTF-8 bytes, instead of storing U+FFFD in their place', async (_, change) => {
    const marker = randomUUID();
    for (const body of [statsReportReadyBody(), sessionEndedBody()]) {
      const text = JSON.stringify({ ...body, ...change(`${marker}-BAD`) });
      const [before, after] = text.split('BAD') as [string, string];
      // 0xC3 0x28: a lead byte followed by one that cannot continue it.
      const raw = Buffer.concat([Buffer.from(before), Buffer.from([0xc3, 0x28]), Buffer.from(after)]);
      const res = await deliverWebhook(app, raw);
      expect(res.statusCode).toBe(400);
      expect(res.json()).toEqual({ error: 'call_cid or session_id holds invalid characters' });
    }
    const { rows } = await testDb.current.database.pool.query('select count(*)::int as n from webhook_events where session_id like $1 or call_cid like $1', [
      `%${marker}%`,
    ]);
    expect(rows[0].n).toBe(0);
  });

  it.each([
    ['session_id', 'session_id', '"cs-\\ud800-x"'],
    ['session_id', 'session_id', '"cs-\\udc00\\ud800-x"'],
    ['call_cid', 'call_cid', '"default:call-\\udfff"'],
  ])('400 for a %s holding a lone surrogate escape (%#), which could only be stored altered', async (_, key, value) => {
    const webhookId = randomUUID();
    const base = statsReportReadyBody();
    const body = JSON.stringify(base).replace(`"${key}":${JSON.stringify(base[key])}`, `"${key}":${value}`);
    expect(body).toContain(value);
    const res = await deliverWebhook(app, body, { webhookId });
    expect(res.statusCode).toBe(400);
    expect(await count('webhook_events', 'webhook_id', webhookId)).toBe(0);
  });

  it('stores ids exactly when they hold a real U+FFFD or a surrogate pair, and a payload with invalid UTF-8 outside the ids', async () => {
    const sessionId = `cs-\ufffd-🎧-${randomUUID()}`;
    expect((await deliverWebhook(app, statsReportReadyBody({ sessionId, callCid: 'default:call-\ufffd' }))).statusCode).toBe(200);
    expect(await count('call_sessions', 'call_session_id', sessionId)).toBe(1);
    const plain = statsReportReadyBody();
    const [before, after] = JSON.stringify({ ...plain, note: 'BAD' }).split('BAD') as [string, string];
    const webhookId = randomUUID();
    const res = await deliverWebhook(app, Buffer.concat([Buffer.from(before), Buffer.from([0xff]), Buffer.from(after)]), { webhookId });
    expect(res.statusCode).toBe(200);
    expect(await count('call_sessions', 'call_session_id', plain.session_id as string)).toBe(1);
  });

  it('400 for an X-WEBHOOK-ID longer than any Stream sends', async () => {
    expect((await deliverWebhook(app, statsReportReadyBody(), { webhookId: 'w'.repeat(300) })).statusCode).toBe(400);
  });

  it('400 for a body with the gzip magic that is not valid gzip', async () => {
    const broken = Buffer.concat([Buffer.from([0x1f, 0x8b, 0x08, 0x00]), Buffer.from('not really gzip')]);
    const res = await deliverWebhook(app, broken, { signature: signWebhook(broken, TEST_API_SECRET) });
    expect(res.statusCode).toBe(400);
  });

  it('413 for a body over 1 MiB', async () => {
    const before = await counted('rejected_too_large');
    const res = await deliverWebhook(app, paddedBody(MAX_WEBHOOK_BODY_BYTES + 1, randomUUID()));
    expect(res.statusCode).toBe(413);
    expect(await counted('rejected_too_large')).toBe(before + 1);
  });

  it('413 for a gzip body that is small but over 1 MiB once gunzipped', async () => {
    const body = paddedBody(MAX_WEBHOOK_BODY_BYTES + 1, randomUUID());
    const zipped = gzipSync(body);
    expect(zipped.length).toBeLessThan(64 * 1024);
    expect((await deliverWebhook(app, body, { gzip: 'header' })).statusCode).toBe(413);
    expect((await deliverWebhook(app, body, { gzip: 'magic-only' })).statusCode).toBe(413);
  });

  it('413 for a gzip bomb, without inflating it', async () => {
    // 64 MiB of zeros in ~64 KB: the cap stops inflation after 1 MiB.
    const bomb = gzipSync(Buffer.alloc(64 * 1024 * 1024), { level: 9 });
    expect(bomb.length).toBeLessThan(MAX_WEBHOOK_BODY_BYTES);
    const res = await app.inject({
      method: 'POST',
      url: '/webhooks/stream',
      headers: { 'content-encoding': 'gzip', 'x-api-key': 'test-api-key', 'x-signature': 'a'.repeat(64) },
      payload: bomb,
    });
    expect(res.statusCode).toBe(413);
  });

  it.each(['br', 'deflate', 'compress', 'gzip, br'])('415 for Content-Encoding: %s', async (encoding) => {
    const res = await deliverWebhook(app, statsReportReadyBody(), { headers: { 'content-encoding': encoding } });
    expect(res.statusCode).toBe(415);
  });
});

describe('POST /webhooks/stream: database unavailable', () => {
  it('503 at once when Postgres refuses connections, with the error logged', async () => {
    const database = createDatabase('postgres://postgres@127.0.0.1:1/attendance');
    const test = await createWebhookTestApp(database, { captureLogs: true });
    try {
      const res = await deliverWebhook(test.app, statsReportReadyBody());
      expect(res.statusCode).toBe(503);
      expect(res.json()).toEqual({ error: 'database unavailable' });
      expect(test.logs.join('')).toContain('database unavailable');
      expect(test.logs.join('')).toContain('ECONNREFUSED');
    } finally {
      await test.app.close();
      await database.close();
    }
  });

  it('logs an outage as its first refusal in full, then summaries, then one line when the database is back', async () => {
    const target = new URL(testDb.current.url);
    const proxy = await startTcpProxy(target.hostname, Number(target.port || 5432));
    const viaProxy = new URL(testDb.current.url);
    viaProxy.hostname = '127.0.0.1';
    viaProxy.port = String(proxy.port);
    const database = createDatabase(viaProxy.toString(), { connectionTimeoutMillis: 1_000, onError: () => undefined });
    const test = await createWebhookTestApp(database, { captureLogs: true, logLevel: 'info' });
    try {
      await proxy.cut();
      const refused = await Promise.all(Array.from({ length: 40 }, () => deliverWebhook(test.app, statsReportReadyBody())));
      expect(refused.map((r) => r.statusCode)).toEqual(Array(40).fill(503));
      for (let i = 0; i < 20; i++) expect((await deliverWebhook(test.app, statsReportReadyBody())).statusCode).toBe(503);
      const outage = test.logs.map((line) => JSON.parse(line) as Record<string, unknown>).filter((line) => String(line.msg).startsWith('webhooks not stored'));
      // 60 refusals within the 10 s interval: one line, with the error and its stack.
      expect(outage).toHaveLength(1);
      expect(outage[0]).toMatchObject({ level: 50, reason: 'ECONNREFUSED', err: { code: 'ECONNREFUSED', stack: expect.any(String) } });

      await proxy.restore();
      expect((await deliverWebhook(test.app, statsReportReadyBody())).statusCode).toBe(200);
      const recovered = test.logs
        .map((line) => JSON.parse(line) as Record<string, unknown>)
        .filter((line) => line.msg === 'webhooks not stored: database unavailable (recovered)');
      expect(recovered).toEqual([expect.objectContaining({ level: 30, total: 60, reasons: { ECONNREFUSED: 60 } })]);
    } finally {
      await test.app.close();
      await database.close();
      await proxy.close();
    }
  });

  it('503 within Stream 6 s timeout when Postgres accepts connections but never answers', async () => {
    const silent = await startSilentServer();
    const database = createDatabase(`postgres://postgres@127.0.0.1:${silent.port}/attendance`);
    const test = await createWebhookTestApp(database);
    try {
      const started = performance.now();
      const res = await deliverWebhook(test.app, statsReportReadyBody());
      expect(res.statusCode).toBe(503);
      // A contract, not a benchmark: Stream abandons the attempt at 6 s.
      expect(performance.now() - started).toBeLessThan(6_000);
    } finally {
      await silent.close();
      await test.app.close();
      await database.close();
    }
  });
});
