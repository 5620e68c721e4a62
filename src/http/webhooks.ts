import { isUtf8 } from 'node:buffer';
import { createHash, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';
import { gunzip } from 'node:zlib';
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { isContentError, sqlState } from '../db/sqlstate.ts';
import { createLogSummary, type LogSummary } from '../log-summary.ts';
import { createWebhookEnqueuer, type EnqueueResult, type WebhookEnqueuer } from '../queue/enqueue.ts';
import { createWebhookSignatureVerifier } from '../stream/signature.ts';
import {
  exceedsJsonDepth,
  type HandledWebhookEvent,
  InvalidWebhookEventError,
  MAX_WEBHOOK_JSON_DEPTH,
  nestsDeeperThan,
  parseWebhookEvent,
  type WebhookEvent,
} from '../stream/webhook-events.ts';
import { endSpan, startChildSpan, type Span, type Tracer } from '../tracing.ts';
import type { AppDeps } from './app.ts';

/** Largest body accepted, compressed or after gunzip (docs/architecture.md, "Signature first": 413 above 1 MiB). */
export const MAX_WEBHOOK_BODY_BYTES = 1024 * 1024;

// Stream gives each attempt 6 s (docs/stream-api.md §5). The pool gives up connecting after 2 s; this
// bounds the whole database step however the pool is configured, leaving time to answer.
const DATABASE_DEADLINE_MS = 4_500;

// Bodies larger than this have their nesting checked before JSON.parse as well (see the route):
// below it, parsing even the deepest body costs ~7 ms (measured: 64 KiB nested 32,768 deep), and
// Stream's events are a few KB, so they pay only the check on the parsed value.
const SCAN_BEFORE_PARSING_FROM_BYTES = 64 * 1024;

// While the database is away, 503s are logged as one summary per this many milliseconds (log-summary.ts).
const REFUSAL_SUMMARY_INTERVAL_MS = 10_000;

const GZIP_MAGIC_0 = 0x1f;
const GZIP_MAGIC_1 = 0x8b;
const EMPTY_BODY = Buffer.alloc(0);
const gunzipAsync = promisify(gunzip);

type Outcome = 'stored' | 'duplicate' | 'ignored' | 'rejected_unauthorized' | 'rejected_invalid' | 'rejected_too_large' | 'rejected_encoding' | 'error';

type Answer = (reply: FastifyReply, status: number, outcome: Outcome, type: string, body: object) => FastifyReply;

interface IntakeParts {
  readonly answer: Answer;
  readonly verifySignature: (body: Buffer, signature: string) => boolean;
  readonly expectedApiKey: Buffer;
  readonly enqueuer: WebhookEnqueuer;
  readonly refusals: LogSummary;
  readonly tracer: Tracer | undefined;
  readonly spans: WeakMap<FastifyRequest, Span>;
}

/**
 * POST /webhooks/stream: verify on the raw bytes, store and make the session due in one statement
 * (shared with concurrent requests: group commit), answer 200 only after the commit. Encapsulated, so its catch-all Buffer parser (no JSON parsing
 * before the signature check) and its error handler apply to this route alone.
 */
export const webhooksPlugin: FastifyPluginAsync<AppDeps> = async (app, deps) => {
  const { config, database, metrics, tracer } = deps;
  const verifySignature = createWebhookSignatureVerifier([config.stream.apiSecret, ...config.stream.previousApiSecrets]);
  const expectedApiKey = Buffer.from(config.stream.apiKey, 'utf8');
  // Concurrent requests share one statement and one commit; each is answered after that commit.
  const enqueuer = createWebhookEnqueuer(database.pool, { deadlineMs: DATABASE_DEADLINE_MS });
  const refusals = createLogSummary({
    log: app.log,
    message: 'webhooks not stored: database unavailable',
    intervalMs: REFUSAL_SUMMARY_INTERVAL_MS,
  });

  // Traces (OTEL_EXPORTER_OTLP_ENDPOINT): a span per delivery with the enqueue as its child. Without
  // a tracer no hook is added and no span made.
  const spans = new WeakMap<FastifyRequest, Span>();
  if (tracer) addTracingHooks(app, tracer, spans);

  const answer: Answer = (reply, status, outcome, type, body) => {
    metrics.webhooksTotal.inc({ type, outcome });
    metrics.webhookDuration.observe({ outcome }, reply.elapsedTime / 1000);
    return reply.code(status).send(body);
  };

  // The signature covers the exact bytes, so this route takes every body (and none) as a Buffer.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: MAX_WEBHOOK_BODY_BYTES }, (_request, body, done) => {
    done(null, body);
  });
  app.setErrorHandler(createEarlyErrorHandler(answer));
  app.post(
    '/webhooks/stream',
    { bodyLimit: MAX_WEBHOOK_BODY_BYTES },
    createIntakeHandler({ answer, verifySignature, expectedApiKey, enqueuer, refusals, tracer, spans }),
  );
};

function addTracingHooks(app: FastifyInstance, tracer: Tracer, spans: WeakMap<FastifyRequest, Span>): void {
  app.addHook('onRequest', async (request) => {
    spans.set(request, tracer.startSpan('webhook', { attributes: { 'http.request.method': request.method } }));
  });
  app.addHook('onResponse', async (request, reply) => {
    const span = spans.get(request);
    if (!span) return;
    span.setAttribute('http.response.status_code', reply.statusCode);
    endSpan(span, reply.statusCode >= 500 ? new Error(`answered ${reply.statusCode}`) : undefined);
  });
}

/** Errors raised before the handler runs: a body over the limit, a bad Content-Length or Content-Type. */
function createEarlyErrorHandler(answer: Answer) {
  return (error: Error & { statusCode?: number }, request: FastifyRequest, reply: FastifyReply): FastifyReply => {
    const status = error.statusCode ?? 500;
    if (status === 413) return answer(reply, 413, 'rejected_too_large', 'unknown', { error: 'payload too large' });
    if (status >= 400 && status < 500) return answer(reply, status, 'rejected_invalid', 'unknown', { error: 'bad request' });
    // A capacity refusal (the body budget, overload.ts) is not a failure: the app adds Retry-After.
    if (status === 503) return answer(reply, 503, 'error', 'unknown', { error: 'service busy' });
    request.log.error({ err: error }, 'webhook failed');
    return answer(reply, 500, 'error', 'unknown', { error: 'internal error' });
  };
}

/**
 * The route's handler, built once per app. Its steps are synchronous calls that answer a refusal
 * themselves; the only waits on a delivery's path are gunzip and the group commit.
 */
function createIntakeHandler(parts: IntakeParts) {
  const { answer, verifySignature, enqueuer, tracer, spans } = parts;
  return async (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> => {
    const headers = request.headers;
    const signature = checkSigningHeaders(request, reply, parts);
    if (typeof signature !== 'string') return signature;

    let body = Buffer.isBuffer(request.body) ? request.body : EMPTY_BODY;
    // The bytes decide, as in Stream's SDK: a proxy may have decompressed the body and left the
    // header, and a gzip body may come without it. A "gzip" header over plain bytes is then verified as is.
    if (body.length >= 2 && body[0] === GZIP_MAGIC_0 && body[1] === GZIP_MAGIC_1) {
      try {
        // zlib inflates chunk by chunk and stops as soon as the output passes the cap, so a
        // bomb costs at most ~1 MiB of memory and a few milliseconds.
        body = await gunzipAsync(body, { maxOutputLength: MAX_WEBHOOK_BODY_BYTES });
      } catch (error) {
        if ((error as { code?: unknown }).code === 'ERR_BUFFER_TOO_LARGE') {
          return answer(reply, 413, 'rejected_too_large', 'unknown', { error: 'payload too large' });
        }
        return answer(reply, 400, 'rejected_invalid', 'unknown', { error: 'body could not be decompressed' });
      }
    }
    if (!verifySignature(body, signature)) return unauthorized(request, reply, 'signature mismatch', answer);

    // No nesting Postgres would refuse (54001) may reach a batch. Checked on the parsed value (0.5-5 µs
    // for Stream's events); a large body is scanned before parsing too, since V8 spends ~350 ms
    // parsing 1 MiB nested 500,000 deep, and the scan finds it in microseconds.
    if (body.length > SCAN_BEFORE_PARSING_FROM_BYTES && exceedsJsonDepth(body, MAX_WEBHOOK_JSON_DEPTH)) return answerTooDeep(reply, answer);
    const bodyText = body.toString('utf8');
    let payload: unknown;
    try {
      payload = JSON.parse(bodyText);
    } catch {
      return answer(reply, 400, 'rejected_invalid', 'unknown', { error: 'body is not JSON' });
    }
    if (nestsDeeperThan(payload, MAX_WEBHOOK_JSON_DEPTH)) return answerTooDeep(reply, answer);
    const event = parseEventOrAnswer(reply, payload, bodyText, body, answer);
    if (event === undefined) return reply;
    if (event.kind === 'ignored') return answer(reply, 200, 'ignored', metricType(event.type), { status: 'ignored' });

    const webhookId = parseWebhookId(headers['x-webhook-id'], body);
    if (webhookId === null) return answer(reply, 400, 'rejected_invalid', event.type, { error: 'X-WEBHOOK-ID is too long' });
    const enqueueSpan = tracer
      ? startChildSpan(tracer, 'enqueue', spans.get(request), { 'webhook.type': event.type, call_session_id: event.callSessionId })
      : undefined;
    try {
      const result = await enqueuer.enqueue({ webhookId, attempt: parseAttempt(headers['x-webhook-attempt']), event, bodyText, payload });
      return answerStored(request, reply, result, webhookId, event, enqueueSpan, parts);
    } catch (error) {
      if (enqueueSpan) endSpan(enqueueSpan, error);
      return answerEnqueueFailure(request, reply, error, webhookId, event, parts);
    }
  };
}

/**
 * X-SIGNATURE once Content-Encoding and X-API-KEY pass, else the refusal answered. Both headers are
 * checked before any decompression, so an unsigned body costs no gunzip.
 */
function checkSigningHeaders(request: FastifyRequest, reply: FastifyReply, parts: IntakeParts): string | FastifyReply {
  const { headers } = request;
  const { answer } = parts;
  const encoding = parseContentEncoding(headers['content-encoding']);
  if (encoding === 'unsupported') {
    return answer(reply, 415, 'rejected_encoding', 'unknown', { error: 'unsupported content encoding' });
  }
  const apiKey = headers['x-api-key'];
  if (typeof apiKey !== 'string' || apiKey === '') return unauthorized(request, reply, 'missing api key', answer);
  if (!matchesApiKey(apiKey, parts.expectedApiKey)) return unauthorized(request, reply, 'unknown api key', answer);
  const signature = headers['x-signature'];
  if (typeof signature !== 'string' || signature === '') return unauthorized(request, reply, 'missing signature', answer);
  return signature;
}

function unauthorized(request: FastifyRequest, reply: FastifyReply, reason: string, answer: Answer): FastifyReply {
  // The reason goes to the log only: the caller learns nothing about which check failed.
  request.log.warn({ reason, webhookId: headerForLog(request.headers['x-webhook-id']) }, 'webhook rejected');
  return answer(reply, 401, 'rejected_unauthorized', 'unknown', { error: 'unauthorized' });
}

function answerTooDeep(reply: FastifyReply, answer: Answer): FastifyReply {
  return answer(reply, 400, 'rejected_invalid', 'unknown', { error: `JSON nested deeper than ${MAX_WEBHOOK_JSON_DEPTH}` });
}

/** The event, or undefined once a body that is not one of Stream's events has been answered 400. */
function parseEventOrAnswer(reply: FastifyReply, payload: unknown, bodyText: string, body: Buffer, answer: Answer): WebhookEvent | undefined {
  try {
    // isUtf8 only when an id could hold a U+FFFD from decoding: ~0.1 µs, but spared on nearly every body.
    return parseWebhookEvent(payload, { bodyWasUtf8: !bodyText.includes('\ufffd') || isUtf8(body) });
  } catch (error) {
    if (!(error instanceof InvalidWebhookEventError)) throw error;
    const type = isObjectWithStringType(payload) ? metricType(payload.type) : 'unknown';
    answer(reply, 400, 'rejected_invalid', type, { error: error.message });
    return undefined;
  }
}

function answerStored(
  request: FastifyRequest,
  reply: FastifyReply,
  result: EnqueueResult,
  webhookId: string,
  event: HandledWebhookEvent,
  enqueueSpan: Span | undefined,
  parts: IntakeParts,
): FastifyReply {
  if (enqueueSpan) {
    enqueueSpan.setAttribute('stored', result.stored);
    endSpan(enqueueSpan);
  }
  parts.refusals.success();
  request.log.debug({ webhookId, callSessionId: event.callSessionId, type: event.type, ...result }, 'webhook handled');
  const outcome = result.stored ? 'stored' : 'duplicate';
  return parts.answer(reply, 200, outcome, event.type, { status: outcome });
}

function answerEnqueueFailure(
  request: FastifyRequest,
  reply: FastifyReply,
  error: unknown,
  webhookId: string,
  event: HandledWebhookEvent,
  parts: IntakeParts,
): FastifyReply {
  const logged = { err: error, webhookId, callSessionId: event.callSessionId, type: event.type };
  if (isContentError(error)) {
    // Retrying the same bytes would fail the same way; the reconciler still finds the session.
    // The enqueuer fails only this event, never its batch.
    request.log.error(logged, 'webhook event cannot be stored');
    return parts.answer(reply, 400, 'rejected_invalid', event.type, { error: 'event cannot be stored' });
  }
  // One line with a stack per refusal made an outage 8,732 lines (5.4 MB): summarised instead.
  parts.refusals.failure(refusalReason(error), logged);
  return parts.answer(reply, 503, 'error', event.type, { error: 'database unavailable' });
}

/** 'gzip' | 'identity' (also for no header); 'unsupported' for anything else. */
function parseContentEncoding(header: string | undefined): 'gzip' | 'identity' | 'unsupported' {
  if (header === undefined) return 'identity';
  const value = header.trim().toLowerCase();
  if (value === '' || value === 'identity') return 'identity';
  // x-gzip is the old name recipients should treat as gzip (RFC 9110 §8.4.1.3).
  if (value === 'gzip' || value === 'x-gzip') return 'gzip';
  return 'unsupported';
}

function matchesApiKey(given: string, expected: Buffer): boolean {
  // An unset key must refuse everything, not match an empty header.
  if (expected.length === 0) return false;
  const bytes = Buffer.from(given, 'utf8');
  return bytes.length === expected.length && timingSafeEqual(bytes, expected);
}

// Stream's ids are UUIDs; a longer one would only ever fail the primary key's index.
const MAX_WEBHOOK_ID_LENGTH = 255;

/**
 * X-WEBHOOK-ID, which Stream keeps the same on every retry. Without it, an id is derived from the
 * sha256 of the uncompressed body: a retry sends the same bytes, so it still dedupes.
 */
function parseWebhookId(header: string | string[] | undefined, body: Buffer): string | null {
  if (typeof header === 'string' && header.trim() !== '') {
    const id = header.trim();
    return id.length > MAX_WEBHOOK_ID_LENGTH ? null : id;
  }
  return `sha256:${createHash('sha256').update(body).digest('hex')}`;
}

function parseAttempt(header: string | string[] | undefined): number | null {
  return typeof header === 'string' && /^\d{1,9}$/.test(header.trim()) ? Number(header.trim()) : null;
}

// Only Stream can sign a body, but a label set must stay bounded whatever arrives.
function metricType(type: string): string {
  return /^[a-z0-9_.]{1,64}$/.test(type) ? type : 'other';
}

function isObjectWithStringType(value: unknown): value is { type: string } {
  return typeof value === 'object' && value !== null && typeof (value as { type?: unknown }).type === 'string';
}

/** A short, bounded name for why the database refused: its SQLSTATE or Node error code, else the error's name. */
function refusalReason(error: unknown): string {
  const code = sqlState(error) ?? (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && /^[A-Za-z0-9_]{1,40}$/.test(code)) return code;
  return error instanceof Error ? error.name.slice(0, 40) : 'unknown';
}

function headerForLog(value: string | string[] | undefined): string | undefined {
  return typeof value === 'string' ? value.slice(0, 64) : undefined;
}
