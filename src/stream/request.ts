import { randomUUID } from 'node:crypto';
import { gunzipSync } from 'node:zlib';
import { Pool } from 'undici';
import packageJson from '../../package.json' with { type: 'json' };
import { AppError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics.ts';
import { StreamApiError, failureForStatus, type RateLimitInfo } from './errors.ts';
import type { RateLimiter } from './rate-limiter.ts';
import { parseStreamJson } from './schemas.ts';
import { createServerToken } from './token.ts';

export const REQUEST_TIMEOUT_MS = 10_000;
export const DEFAULT_CONNECTIONS = 8;
// A page of 100 entries is tens of kilobytes; anything near this is not a page we asked for.
const MAX_RESPONSE_BYTES = 8 * 1024 * 1024;
const CLIENT_HEADER = `stream-attendance-${packageJson.version}`;

export interface RequestCoreOptions {
  readonly baseUrl: string;
  readonly apiKey: string;
  readonly apiSecret: string;
  readonly timeoutMs?: number;
  /** Keep-alive connections to Stream's host. */
  readonly connections?: number;
  readonly limiter: RateLimiter;
  readonly metrics?: Metrics;
  readonly logger?: Logger;
  /**
   * Told of every exchange that got an answer or failed on its own (not one its caller aborted):
   * what Stream's health tracking feeds on. Must not throw or block; it runs on the hot path.
   */
  readonly onOutcome?: (outcome: StreamOutcome) => void;
}

/** One exchange with Stream, as health tracking sees it. */
export interface StreamOutcome {
  readonly operation: string;
  readonly method: 'GET' | 'POST';
  /** The URL asked, without its query (which holds the API key). */
  readonly url: string;
  /** HTTP status; 0 when no answer came. */
  readonly status: number;
  /** Null on a 2xx that parsed. */
  readonly error: StreamApiError | null;
}

export type QueryValue = string | number | boolean | Record<string, unknown> | readonly unknown[] | null | undefined;

export interface StreamRequest {
  /** Stream's operation name, used in metrics and error messages. */
  readonly operation: string;
  readonly method: 'GET' | 'POST';
  /** Path segments after the base URL; each is URL-encoded here. */
  readonly path: readonly string[];
  readonly query?: Readonly<Record<string, QueryValue>>;
  readonly body?: unknown;
  readonly signal?: AbortSignal;
  /**
   * What a 404 means here. `not_ready` (the default) is participant_sessions' "analytics not in
   * yet" (docs/stream-api.md §8); `no_route` is for endpoints that never answer 404 themselves, so a 404
   * means STREAM_BASE_URL points at something that is not Stream's API: a configuration error.
   */
  readonly notFound?: 'not_ready' | 'no_route';
}

export interface StreamResponse {
  readonly status: number;
  readonly body: unknown;
  readonly rateLimit: RateLimitInfo | null;
}

export interface RequestCore {
  /** Sends one request; resolves with the parsed JSON of a 2xx, throws StreamApiError otherwise. */
  request(request: StreamRequest): Promise<StreamResponse>;
  close(): Promise<void>;
}

/** What one request core holds for its requests. */
interface Core {
  readonly options: RequestCoreOptions;
  readonly origin: string;
  readonly basePath: string;
  readonly timeoutMs: number;
  readonly pool: Pool;
  readonly token: { readonly pending: Promise<string>; signed: string | undefined };
}

/**
 * Every call to Stream goes through here: one keep-alive pool, the process-wide rate limiter,
 * the server JWT, a timeout per request, metrics, and one typed error for every way a call fails.
 * Retrying is the caller's decision (it knows whether a session or a single page is at stake).
 */
export function createRequestCore(options: RequestCoreOptions): RequestCore {
  const base = new URL(options.baseUrl);
  const timeoutMs = options.timeoutMs ?? REQUEST_TIMEOUT_MS;
  const pool = new Pool(base.origin, {
    connections: options.connections ?? DEFAULT_CONNECTIONS,
    keepAliveTimeout: 30_000,
    // Backstops for the per-request signal below, which covers the whole exchange.
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs,
  });
  // Stream's SDKs sign one token without iat/exp and reuse it (docs/stream-api.md §3). Once signed, it
  // is used as a plain value: no await (and no trip through the microtask queue) per request. A
  // signing failure surfaces at the first request's await, not as an unhandled rejection.
  const token: Core['token'] = { pending: createServerToken(options.apiSecret), signed: undefined };
  void token.pending.then(
    (value) => (token.signed = value),
    () => undefined,
  );
  const core: Core = { options, origin: base.origin, basePath: base.pathname.replace(/\/+$/, ''), timeoutMs, pool, token };

  return {
    request: (req) => request(core, req),
    async close() {
      await pool.close();
    },
  };
}

async function request(core: Core, req: StreamRequest): Promise<StreamResponse> {
  const { onOutcome } = core.options;
  if (!onOutcome) return exchangeOnce(core, req);
  const url = `${core.origin}${core.basePath}/${encodePath(req.path)}`;
  try {
    const response = await exchangeOnce(core, req);
    onOutcome({ operation: req.operation, method: req.method, url, status: response.status, error: null });
    return response;
  } catch (error) {
    if (error instanceof StreamApiError) onOutcome({ operation: req.operation, method: req.method, url, status: error.status, error });
    throw error;
  }
}

async function exchangeOnce(core: Core, req: StreamRequest): Promise<StreamResponse> {
  const { options, timeoutMs } = core;
  // A caller that has already given up sends nothing (its abort event has fired, so the listener
  // below would never hear of it). From here to the socket write nothing awaits unless it must:
  // a request waiting in the microtask queue also waits for whatever synchronous work the caller
  // does next (the worker serialises the previous page right after asking for this one).
  req.signal?.throwIfAborted();
  if (!options.limiter.tryAcquire()) await options.limiter.acquire(req.signal);
  const started = performance.now();
  // One controller per request, released with it: AbortSignal.timeout() would keep each request's
  // signal (and, through undici's listener on it, the request) alive for the full timeout after
  // the answer, and AbortSignal.any() ties them to the session's long-lived signal. At ~150 pages
  // a second that kept seconds of pages in the old generation (peak RSS grew with session size).
  const exchange = new AbortController();
  let timedOutByUs = false;
  const timer = setTimeout(() => {
    timedOutByUs = true;
    exchange.abort(new DOMException(`timed out after ${timeoutMs} ms`, 'TimeoutError'));
  }, timeoutMs);
  const onCallerAbort = () => exchange.abort(req.signal?.reason);
  req.signal?.addEventListener('abort', onCallerAbort, { once: true });
  const path = `${core.basePath}/${encodePath(req.path)}?${queryString({ api_key: options.apiKey, ...req.query })}`;
  const headers = requestHeaders(core.token.signed ?? (await core.token.pending), req.body !== undefined);

  let status = 0;
  let responseHeaders: Record<string, string | string[] | undefined> = {};
  let raw: Buffer;
  try {
    const body = req.body === undefined ? undefined : JSON.stringify(req.body);
    const response = await core.pool.request({ path, method: req.method, headers, body, signal: exchange.signal });
    status = response.statusCode;
    responseHeaders = response.headers;
    raw = await readBody(response.body, responseHeaders['content-encoding']);
  } catch (error) {
    clearTimeout(timer);
    req.signal?.removeEventListener('abort', onCallerAbort);
    // The caller gave up (lease lost, stopping): not Stream's failure, so it is not wrapped.
    if (req.signal?.aborted) throw req.signal.reason;
    throw failedExchange(core, req, { error, status, headers: responseHeaders, timedOut: timedOutByUs || isTimeoutError(error), started });
  }

  clearTimeout(timer);
  req.signal?.removeEventListener('abort', onCallerAbort);
  const rateLimit = parseRateLimitHeaders(responseHeaders);
  options.limiter.observe(rateLimit, status === 429);
  record(core, req.operation, status, started);
  if (status === 429) options.metrics?.streamRateLimited.inc();
  return answerOrThrow(core, req, status, raw, rateLimit);
}

function requestHeaders(token: string, hasBody: boolean): Record<string, string> {
  const headers: Record<string, string> = {
    authorization: token,
    'stream-auth-type': 'jwt',
    'x-stream-client': CLIENT_HEADER,
    'x-client-request-id': randomUUID(),
    accept: 'application/json',
    'accept-encoding': 'gzip',
  };
  if (hasBody) headers['content-type'] = 'application/json';
  return headers;
}

interface Failed {
  readonly error: unknown;
  /** 0 unless the headers had arrived. */
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly timedOut: boolean;
  readonly started: number;
}

/** No usable answer: a timeout, a network failure, or a body that could not be read. */
function failedExchange(core: Core, req: StreamRequest, failed: Failed): StreamApiError {
  const { error, timedOut } = failed;
  const failure = timedOut ? 'timeout' : failed.status !== 0 ? 'invalid_response' : 'network';
  const rateLimit = failed.status === 0 ? null : parseRateLimitHeaders(failed.headers);
  if (failed.status !== 0) core.options.limiter.observe(rateLimit, failed.status === 429);
  // A timeout counts as "no answer" whether or not the headers had arrived.
  const status = failure === 'invalid_response' ? failed.status : 0;
  record(core, req.operation, status, failed.started);
  const what =
    failure === 'timeout'
      ? `timed out after ${core.timeoutMs} ms`
      : failure === 'network'
        ? `failed: ${networkReason(error)}`
        : `answered ${status} but the body could not be read: ${networkReason(error)}`;
  return new StreamApiError(`Stream ${req.operation} ${what}`, { operation: req.operation, status, failure, rateLimit, cause: error });
}

/** A 2xx's parsed JSON, or the typed error for anything else. */
function answerOrThrow(core: Core, req: StreamRequest, status: number, raw: Buffer, rateLimit: RateLimitInfo | null): StreamResponse {
  const text = raw.toString('utf8');
  if (status >= 200 && status < 300) {
    try {
      // Not JSON.parse: integer-nanosecond entry timestamps would lose their last digits.
      return { status, body: parseStreamJson(text), rateLimit };
    } catch (error) {
      throw new StreamApiError(`Stream ${req.operation} answered ${status} with a body that is not JSON (${raw.length} bytes)`, {
        operation: req.operation,
        status,
        failure: 'invalid_response',
        rateLimit,
        cause: error,
      });
    }
  }
  const apiError = parseApiErrorBody(text);
  const code = apiError?.code === undefined ? '' : ` (Stream code ${apiError.code})`;
  const message = apiError?.message ? `: ${truncate(apiError.message, 300)}` : '';
  const noRoute = status === 404 && req.notFound === 'no_route';
  const hint = noRoute
    ? ` at ${core.origin}${core.basePath}/${encodePath(req.path)}: that is not Stream's API there; check STREAM_BASE_URL (${core.options.baseUrl})`
    : '';
  throw new StreamApiError(`Stream ${req.operation} answered ${status}${code}${message}${hint}`, {
    operation: req.operation,
    status,
    failure: noRoute ? 'client' : failureForStatus(status),
    streamCode: apiError?.code ?? null,
    unrecoverable: apiError?.unrecoverable === true,
    rateLimit,
  });
}

function record(core: Core, operation: string, status: number, started: number): void {
  const seconds = (performance.now() - started) / 1000;
  core.options.metrics?.streamRequestDuration.observe({ operation, status: String(status) }, seconds);
  core.options.logger?.debug({ operation, status, ms: Math.round(seconds * 1000) }, 'stream request');
}

/**
 * Path segments as data, whatever they hold. encodeURIComponent leaves `.` alone, so an id of
 * `.` or `..` would be a dot segment that URL normalisation (in proxies, load balancers, or the
 * server) resolves away, sending the signed request to another path; such a segment is written
 * percent-encoded instead. A lone surrogate cannot be encoded at all (encodeURIComponent throws
 * URIError): it is refused as a client error naming the segment's position, never altered.
 */
export function encodePath(segments: readonly string[]): string {
  return segments
    .map((segment, index) => {
      if (segment === '.' || segment === '..') return segment.replaceAll('.', '%2E');
      try {
        return encodeURIComponent(segment);
      } catch {
        throw new AppError('STREAM_INVALID_PATH', `path segment ${index + 1} holds a lone surrogate and cannot be sent as it is`);
      }
    })
    .join('/');
}

/**
 * Query parameters the way Stream's SDKs write them: objects and arrays of objects as
 * URL-encoded JSON (filter_conditions, sort), scalar arrays comma-joined (docs/stream-api.md §1).
 */
export function queryString(query: Readonly<Record<string, QueryValue>>): string {
  const parts: string[] = [];
  for (const [key, value] of Object.entries(query)) {
    if (value === undefined || value === null) continue;
    let text: string;
    if (Array.isArray(value)) {
      text = value.some((v) => v !== null && typeof v === 'object') ? JSON.stringify(value) : value.join(',');
    } else if (typeof value === 'object') {
      text = JSON.stringify(value);
    } else {
      text = String(value);
    }
    parts.push(`${encodeURIComponent(key)}=${encodeURIComponent(text)}`);
  }
  return parts.join('&');
}

/** X-RateLimit-Limit/Remaining/Reset; Reset is Unix seconds. Null unless all three are numbers. */
export function parseRateLimitHeaders(headers: Record<string, string | string[] | undefined>): RateLimitInfo | null {
  const read = (name: string): number | null => {
    const value = headers[name];
    const text = Array.isArray(value) ? value[0] : value;
    if (text === undefined || !/^\d+$/.test(text.trim())) return null;
    return Number(text);
  };
  const limit = read('x-ratelimit-limit');
  const remaining = read('x-ratelimit-remaining');
  const reset = read('x-ratelimit-reset');
  if (limit === null || remaining === null || reset === null) return null;
  return { limit, remaining, resetAt: new Date(reset * 1000) };
}

interface ApiErrorFields {
  code?: number;
  message?: string;
  unrecoverable?: boolean;
}

function parseApiErrorBody(text: string): ApiErrorFields | null {
  try {
    const body = JSON.parse(text) as unknown;
    if (body === null || typeof body !== 'object') return null;
    const { code, message, unrecoverable } = body as Record<string, unknown>;
    return {
      code: typeof code === 'number' ? code : undefined,
      message: typeof message === 'string' ? message : undefined,
      unrecoverable: typeof unrecoverable === 'boolean' ? unrecoverable : undefined,
    };
  } catch {
    return null;
  }
}

async function readBody(body: AsyncIterable<Buffer>, encoding: string | string[] | undefined): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.length;
    if (size > MAX_RESPONSE_BYTES) throw new Error(`response body over ${MAX_RESPONSE_BYTES} bytes`);
    chunks.push(chunk);
  }
  const buffer = Buffer.concat(chunks);
  const gzip = (Array.isArray(encoding) ? encoding.join(',') : (encoding ?? '')).toLowerCase().includes('gzip');
  return gzip ? gunzipSync(buffer, { maxOutputLength: MAX_RESPONSE_BYTES }) : buffer;
}

function isTimeoutError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  const name = (error as { name?: unknown } | null)?.name;
  return code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT' || code === 'UND_ERR_CONNECT_TIMEOUT' || name === 'TimeoutError';
}

function networkReason(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  const message = error instanceof Error ? error.message : String(error);
  return typeof code === 'string' ? `${code} ${truncate(message, 200)}` : truncate(message, 200);
}

function truncate(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}
