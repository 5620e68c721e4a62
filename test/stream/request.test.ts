import { getEventListeners } from 'node:events';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMetrics } from '../../src/metrics.ts';
import { StreamApiError } from '../../src/stream/errors.ts';
import { createRateLimiter } from '../../src/stream/rate-limiter.ts';
import { createRequestCore, queryString, type RequestCore } from '../../src/stream/request.ts';
import { isValidServerToken } from '../../src/stream/token.ts';
import { json, startStubServer } from './stub-server.ts';

const API_KEY = 'key-123';
const API_SECRET = 'secret-that-must-never-leak';

async function failure(promise: Promise<unknown>): Promise<StreamApiError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(StreamApiError);
  const apiError = error as StreamApiError;
  // No failure may carry the secret or the token it signs.
  const token = String(stub.requests.at(-1)?.headers.authorization ?? 'no-token-sent');
  expect(apiError.message).not.toContain(API_SECRET);
  expect(apiError.message).not.toContain(token);
  expect(apiError.message).not.toContain(API_KEY);
  return apiError;
}

let stub: Awaited<ReturnType<typeof startStubServer>>;
let core: RequestCore;
const metrics = createMetrics({ defaultMetrics: false });
const limiter = createRateLimiter();

beforeAll(async () => {
  stub = await startStubServer((_req, res) => json(res, 200, {}));
  core = createRequestCore({ baseUrl: `${stub.url}/prefix/`, apiKey: API_KEY, apiSecret: API_SECRET, timeoutMs: 300, limiter, metrics });
});

afterAll(async () => {
  await core.close();
  await stub.close();
});

const get = (signal?: AbortSignal) => core.request({ operation: 'QueryCallParticipantSessions', method: 'GET', path: ['api', 'v2', 'x'], signal });

describe('request core', () => {
  it("authenticates like Stream's SDKs and encodes every path segment and the filter", async () => {
    stub.setHandler((_req, res) => json(res, 200, { ok: true }));
    const response = await core.request({
      operation: 'QueryCallParticipantSessions',
      method: 'GET',
      path: ['api', 'v2', 'video', 'call', 'live stream', 'a/b?c', 'session', 'sé#1', 'participant_sessions'],
      query: { limit: 100, next: 'cur+sor/=', filter_conditions: { user_id: { $eq: 'alice & bob' } }, prev: undefined },
    });
    expect(response).toMatchObject({ status: 200, body: { ok: true }, rateLimit: null });
    const sent = stub.requests.at(-1)!;
    expect(sent.url.pathname).toBe('/prefix/api/v2/video/call/live%20stream/a%2Fb%3Fc/session/s%C3%A9%231/participant_sessions');
    expect(sent.url.searchParams.get('api_key')).toBe(API_KEY);
    expect(sent.url.searchParams.get('limit')).toBe('100');
    expect(sent.url.searchParams.get('next')).toBe('cur+sor/=');
    expect(sent.url.searchParams.has('prev')).toBe(false);
    expect(JSON.parse(sent.url.searchParams.get('filter_conditions')!)).toEqual({ user_id: { $eq: 'alice & bob' } });
    expect(sent.headers['stream-auth-type']).toBe('jwt');
    expect(sent.headers['x-stream-client']).toMatch(/^stream-attendance-\d+\.\d+\.\d+/);
    expect(sent.headers.authorization).not.toMatch(/^Bearer /);
    expect(await isValidServerToken(sent.headers.authorization, [API_SECRET])).toBe(true);
  });

  it('sends a JSON body on POST and reads a gzip answer', async () => {
    stub.setHandler((_req, res) => {
      const body = gzipSync(JSON.stringify({ call_stats: [], next: '' }));
      res.writeHead(201, { 'content-type': 'application/json', 'content-encoding': 'gzip', 'content-length': body.length });
      res.end(body);
    });
    const response = await core.request({
      operation: 'QueryCallSessionStats',
      method: 'POST',
      path: ['api', 'v2', 'video', 'call_stats'],
      body: { limit: 10 },
    });
    expect(response.body).toEqual({ call_stats: [], next: '' });
    const sent = stub.requests.at(-1)!;
    expect(sent.method).toBe('POST');
    expect(sent.headers['content-type']).toBe('application/json');
    expect(JSON.parse(sent.body)).toEqual({ limit: 10 });
  });

  it('reads the rate-limit headers on success and on error', async () => {
    const reset = Math.floor(Date.now() / 1000) + 60;
    const headers = { 'x-ratelimit-limit': '1000', 'x-ratelimit-remaining': '998', 'x-ratelimit-reset': String(reset) };
    stub.setHandler((_req, res) => json(res, 200, {}, headers));
    expect((await get()).rateLimit).toEqual({ limit: 1000, remaining: 998, resetAt: new Date(reset * 1000) });
    expect(limiter.snapshot().resetAt?.getTime()).toBe(reset * 1000);
  });

  it('turns a 429 into a retryable error with the reset, pauses the limiter and counts it', async () => {
    const reset = Math.floor(Date.now() / 1000) + 1;
    stub.setHandler((_req, res) =>
      json(
        res,
        429,
        { code: 9, message: 'Too many requests, check response headers', StatusCode: 429, duration: '0.1ms', more_info: '', details: [] },
        {
          'x-ratelimit-limit': '1000',
          'x-ratelimit-remaining': '0',
          'x-ratelimit-reset': String(reset),
        },
      ),
    );
    const before = (await metrics.streamRateLimited.get()).values[0]?.value ?? 0;
    const error = await failure(get());
    expect(error).toMatchObject({ status: 429, failure: 'rate_limited', streamCode: 9, retryable: true, unrecoverable: false });
    expect(error.rateLimit?.resetAt.getTime()).toBe(reset * 1000);
    expect(error.message).toContain('Too many requests');
    expect((await metrics.streamRateLimited.get()).values[0]?.value).toBe(before + 1);
    expect(limiter.snapshot().pausedUntil?.getTime()).toBe(reset * 1000);
  });

  it.each([
    [404, 'not_ready', true],
    [408, 'server', true],
    [500, 'server', true],
    [503, 'server', true],
    [401, 'auth', false],
    [403, 'auth', false],
    [400, 'client', false],
  ] as const)('classifies HTTP %i as %s (retryable: %s)', async (status, kind, retryable) => {
    stub.setHandler((_req, res) => json(res, status, { code: 16, message: `status ${status}`, StatusCode: status }));
    const error = await failure(get());
    expect(error).toMatchObject({ status, failure: kind, retryable, streamCode: 16 });
  });

  it('honours unrecoverable: true even on a status that is otherwise retried', async () => {
    stub.setHandler((_req, res) => json(res, 500, { code: -1, message: 'broken for good', StatusCode: 500, unrecoverable: true }));
    const error = await failure(get());
    expect(error).toMatchObject({ status: 500, unrecoverable: true, retryable: false });
  });

  it('copes with an error body that is not JSON', async () => {
    stub.setHandler((_req, res) => {
      res.writeHead(502, { 'content-type': 'text/html' });
      res.end('<html>bad gateway</html>');
    });
    const error = await failure(get());
    expect(error).toMatchObject({ status: 502, failure: 'server', streamCode: null, retryable: true });
  });

  it('reports a truncated or invalid JSON body as a retryable invalid response', async () => {
    stub.setHandler((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"call_type":"default","participants_sessions":[{"user_');
    });
    const error = await failure(get());
    expect(error).toMatchObject({ status: 200, failure: 'invalid_response', retryable: true, code: 'STREAM_INVALID_RESPONSE' });
  });

  it('reports a body cut short by the server (content-length not met)', async () => {
    stub.setHandler((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': '500' });
      res.write('{"call_type":"default"');
      setTimeout(() => res.socket?.destroy(), 10);
    });
    const error = await failure(get());
    expect(error.retryable).toBe(true);
    expect(['invalid_response', 'network']).toContain(error.failure);
  });

  it('times out a request that gets no answer, with status 0', async () => {
    stub.setHandler(() => undefined);
    const error = await failure(get());
    expect(error).toMatchObject({ status: 0, failure: 'timeout', retryable: true, code: 'STREAM_TIMEOUT' });
    expect(error.message).toContain('300 ms');
  });

  it('reports a reset connection as a network error with status 0', async () => {
    stub.setHandler((_req, res) => res.socket?.destroy());
    const error = await failure(get());
    expect(error).toMatchObject({ status: 0, failure: 'network', retryable: true, code: 'STREAM_NETWORK_ERROR' });
  });

  it("passes the caller's own abort through untouched", async () => {
    stub.setHandler(() => undefined);
    const controller = new AbortController();
    const pending = get(controller.signal);
    setTimeout(() => controller.abort(new Error('lease lost')), 20);
    await expect(pending).rejects.toThrow('lease lost');
  });

  it('sends nothing for a caller that has already given up', async () => {
    stub.setHandler((_req, res) => json(res, 200, {}));
    const before = stub.requests.length;
    const controller = new AbortController();
    controller.abort(new Error('reconciler stopping'));
    await expect(get(controller.signal)).rejects.toThrow('reconciler stopping');
    expect(stub.requests.length).toBe(before);
  });

  it("leaves nothing attached to the caller's long-lived signal once a request is answered or fails", async () => {
    const session = new AbortController();
    stub.setHandler((_req, res) => json(res, 200, {}));
    for (let i = 0; i < 20; i++) await get(session.signal);
    stub.setHandler((_req, res) => json(res, 500, {}));
    await failure(get(session.signal));
    expect(getEventListeners(session.signal, 'abort')).toHaveLength(0);
  });

  it('records the duration of every request by operation and status', async () => {
    stub.setHandler((_req, res) => json(res, 200, {}));
    await get();
    const samples = (await metrics.streamRequestDuration.get()).values;
    const count = (status: string) =>
      samples.find(
        (s) =>
          s.metricName === 'attendance_stream_request_duration_seconds_count' &&
          s.labels.status === status &&
          s.labels.operation === 'QueryCallParticipantSessions',
      )?.value ?? 0;
    expect(count('200')).toBeGreaterThanOrEqual(3);
    expect(count('0')).toBeGreaterThanOrEqual(2);
    expect(count('429')).toBe(1);
  });
});

describe('queryString', () => {
  it('writes objects and arrays of objects as JSON and scalar arrays comma-joined', () => {
    expect(queryString({ a: ['x', 'y'], b: [{ field: 'f', direction: -1 }], c: { k: 1 }, d: undefined, e: null, f: 0 })).toBe(
      'a=x%2Cy&b=%5B%7B%22field%22%3A%22f%22%2C%22direction%22%3A-1%7D%5D&c=%7B%22k%22%3A1%7D&f=0',
    );
  });
});
