import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import { generateSession } from '../../tools/simulator/generate.ts';
import { buildSessionEndedEvent, buildStatsReportReadyEvent, deliverWebhook } from '../../tools/simulator/webhooks.ts';
import { isValidWebhookSignature } from '../../src/stream/signature.ts';

interface Received {
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/** A webhook receiver whose answer to the n-th request (0-based) the test decides; 'hang' never answers. */
async function startReceiver(answer: (n: number, res: ServerResponse) => number | 'hang' = () => 200) {
  const received: Received[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.push({ headers: req.headers, body: Buffer.concat(chunks) });
      const status = answer(received.length - 1, res);
      if (status !== 'hang') res.writeHead(status).end('ok');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/webhooks/stream`;
  receivers.push(server);
  return { url, received };
}

const receivers: Server[] = [];
afterEach(async () => {
  for (const server of receivers.splice(0)) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

const session = generateSession({ seed: 'hooks', size: 60, endedAt: new Date('2026-05-01T09:30:00Z') });
const credentials = { apiKey: 'hook-key', apiSecret: 'hook-secret' };

describe('simulator: webhook bodies', () => {
  it('builds call.stats_report_ready with counts that agree with the session', () => {
    const event = buildStatsReportReadyEvent(session, { createdAt: new Date('2026-05-01T09:31:00.5Z') });
    const users = new Set(session.participants.map((p) => p.user_id));
    expect(event).toMatchObject({
      type: 'call.stats_report_ready',
      created_at: '2026-05-01T09:31:00.5Z',
      call_cid: `${session.callType}:${session.callId}`,
      session_id: session.callSessionId,
      counts: { participants: users.size, sessions: 60, total_participant_duration: session.totalParticipantDuration },
      is_trimmed: true,
    });
    const overview = event.participants_overview as { user_id: string; sessions: { user_session_id: string; published_tracks: object }[] }[];
    expect(overview).toHaveLength(10);
    const first = overview[0];
    expect(first?.sessions.map((s) => s.user_session_id)).toEqual(
      session.participants.filter((p) => p.user_id === first?.user_id).map((p) => p.user_session_id),
    );
    expect(first?.sessions[0]?.published_tracks).toEqual({
      audio: expect.any(Boolean),
      video: expect.any(Boolean),
      screenshare: expect.any(Boolean),
      screenshare_audio: expect.any(Boolean),
    });
    const counts = event.counts as Record<string, number>;
    expect(counts.peak_concurrent_sessions).toBeGreaterThanOrEqual(counts.peak_concurrent_users as number);
    expect(counts.peak_concurrent_users).toBeLessThanOrEqual(users.size);
  });

  it('builds call.session_ended with the call and the ended session, in either timestamp form', () => {
    const event = buildSessionEndedEvent(session, { createdAt: new Date('2026-05-01T09:30:01Z'), timestampFormat: 'nanoseconds' });
    expect(event).toMatchObject({
      type: 'call.session_ended',
      created_at: Date.parse('2026-05-01T09:30:01Z') * 1e6,
      call_cid: `${session.callType}:${session.callId}`,
      session_id: session.callSessionId,
      call: {
        type: session.callType,
        id: session.callId,
        current_session_id: session.callSessionId,
        session: { id: session.callSessionId, ended_at: session.endedAt.getTime() * 1e6 },
      },
    });
    expect(JSON.stringify(event)).toContain(`"created_at":${Date.parse('2026-05-01T09:30:01Z')}000000`);
  });
});

describe('simulator: webhook delivery', () => {
  it('signs the exact bytes and sends Stream headers', async () => {
    const receiver = await startReceiver();
    const body = '{"type":"call.stats_report_ready", "odd spacing":  true}';
    const result = await deliverWebhook({ ...credentials, url: receiver.url, event: body, webhookId: 'wh-1' });
    expect(result).toEqual({ status: 200, attempts: 1, webhookId: 'wh-1' });
    const [request] = receiver.received;
    expect(request?.body.toString()).toBe(body);
    expect(request?.headers).toMatchObject({ 'x-webhook-id': 'wh-1', 'x-webhook-attempt': '1', 'x-api-key': 'hook-key', 'content-type': 'application/json' });
    expect(request?.headers['x-signature']).toMatch(/^[0-9a-f]{64}$/);
    expect(isValidWebhookSignature(request?.body as Buffer, request?.headers['x-signature'] as string, ['hook-secret'])).toBe(true);
    expect(isValidWebhookSignature(request?.body as Buffer, request?.headers['x-signature'] as string, ['other'])).toBe(false);
  });

  it('gzips on request, with the signature over the uncompressed bytes', async () => {
    const receiver = await startReceiver();
    const event = buildStatsReportReadyEvent(session);
    const result = await deliverWebhook({ ...credentials, url: receiver.url, event, gzip: true });
    expect(result.status).toBe(200);
    const [request] = receiver.received;
    expect(request?.headers['content-encoding']).toBe('gzip');
    const plain = gunzipSync(request?.body as Buffer);
    expect(plain.toString()).toBe(JSON.stringify(event));
    expect(isValidWebhookSignature(plain, request?.headers['x-signature'] as string, ['hook-secret'])).toBe(true);
    expect(isValidWebhookSignature(request?.body as Buffer, request?.headers['x-signature'] as string, ['hook-secret'])).toBe(false);
  });

  it('retries 5xx with the same id and a rising attempt number', async () => {
    const receiver = await startReceiver((n) => (n === 0 ? 503 : 200));
    const result = await deliverWebhook({ ...credentials, url: receiver.url, event: { type: 'x' }, retryDelayMs: 1 });
    expect(result).toMatchObject({ status: 200, attempts: 2 });
    expect(receiver.received.map((r) => r.headers['x-webhook-attempt'])).toEqual(['1', '2']);
    expect(new Set(receiver.received.map((r) => r.headers['x-webhook-id'])).size).toBe(1);
    expect(receiver.received[0]?.headers['x-webhook-id']).toBe(result.webhookId);
  });

  it('stops after 3 attempts on 408/429/5xx and does not retry other answers', async () => {
    for (const status of [408, 429, 500]) {
      const receiver = await startReceiver(() => status);
      expect(await deliverWebhook({ ...credentials, url: receiver.url, event: {}, retryDelayMs: 1 })).toMatchObject({ status, attempts: 3 });
    }
    for (const status of [400, 401, 404, 413]) {
      const receiver = await startReceiver(() => status);
      expect(await deliverWebhook({ ...credentials, url: receiver.url, event: {}, retryDelayMs: 1 })).toMatchObject({ status, attempts: 1 });
    }
    const once = await startReceiver(() => 503);
    expect(await deliverWebhook({ ...credentials, url: once.url, event: {}, retry: false })).toMatchObject({ status: 503, attempts: 1 });
  });

  it('makes 2 attempts on a network error and 3 on timeouts, within the total budget', async () => {
    const gone = await startReceiver();
    const server = receivers.pop() as Server;
    await new Promise((resolve) => server.close(resolve));
    expect(await deliverWebhook({ ...credentials, url: gone.url, event: {}, retryDelayMs: 1 })).toMatchObject({ status: 0, attempts: 2, failure: 'network' });

    const hanging = await startReceiver(() => 'hang');
    const timedOut = await deliverWebhook({ ...credentials, url: hanging.url, event: {}, attemptTimeoutMs: 50, retryDelayMs: 1 });
    expect(timedOut).toMatchObject({ status: 0, attempts: 3, failure: 'timeout' });
    expect(hanging.received).toHaveLength(3);

    const budget = await startReceiver(() => 'hang');
    const cut = await deliverWebhook({ ...credentials, url: budget.url, event: {}, attemptTimeoutMs: 200, totalTimeoutMs: 250, retryDelayMs: 1 });
    // Two 200 ms attempts do not fit in 250 ms: the budget, not the attempt count, ends it.
    expect(cut.attempts).toBeLessThan(3);
    expect(cut.failure).toBe('timeout');
  });
});
