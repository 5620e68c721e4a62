import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { AppError } from '../errors.ts';

/**
 * Seconds a refused client is told to wait. Stream retries a webhook for about 15 s in all
 * (docs/stream-api.md §5), so a longer hint would outlast its retries; 1 s lets a burst drain.
 */
export const RETRY_AFTER_SECONDS = 1;

/** Work refused because a bounded resource (a pool share, the body budget) is full: 503, retry later. */
export class OverloadedError extends AppError {
  readonly statusCode = 503;

  constructor(message: string) {
    super('OVERLOADED', message, { retryable: true });
  }
}

// pg-pool's own wording (pg-pool/index.js) when no connection frees up within connectionTimeoutMillis,
// and when opening a new one takes that long.
const POOL_EXHAUSTED_MESSAGES = ['timeout exceeded when trying to connect', 'Connection terminated due to connection timeout'];

/** True for refusals that mean "busy, try again": answered 503 with Retry-After, never 500. */
export function isOverloadError(error: unknown): boolean {
  // drizzle wraps the driver's error ("Failed query: …", the pg-pool error as its cause).
  for (let current = error, depth = 0; current instanceof Error && depth < 5; current = current.cause, depth++) {
    if (current instanceof OverloadedError || POOL_EXHAUSTED_MESSAGES.includes(current.message)) return true;
  }
  return false;
}

/** The answer every refusal gets: 503, Retry-After, a body that says why without detail. */
export function replyOverloaded(reply: FastifyReply): FastifyReply {
  return reply.code(503).header('retry-after', String(RETRY_AFTER_SECONDS)).send({ error: 'service busy, retry later' });
}

/**
 * Makes every overload answer 503 with Retry-After, whichever error handler rendered it. Route
 * plugins keep their own handlers (the archive answers in Stream's error shape and turns anything
 * not 4xx into 500; the webhook route's does the same), so the mapping is done around them: the
 * onError hook, which runs before any handler, marks the request, and onSend turns the marked
 * 5xx into a 503, keeping a Stream-shaped body Stream-shaped. Any other 503 gets Retry-After too.
 * Register before the route plugins so they inherit the hooks.
 */
export function registerOverloadAnswers(app: FastifyInstance, onOverload: (request: FastifyRequest, error: Error) => void): void {
  const overloaded = new WeakSet<FastifyRequest>();
  app.addHook('onError', async (request, _reply, error) => {
    if (!isOverloadError(error)) return;
    overloaded.add(request);
    onOverload(request, error);
  });
  app.addHook('onSend', async (request, reply, payload) => {
    let body = payload;
    if (overloaded.has(request) && reply.statusCode >= 500) {
      reply.code(503);
      body = overloadBody(payload);
    }
    if (reply.statusCode === 503 && !reply.hasHeader('retry-after')) reply.header('retry-after', String(RETRY_AFTER_SECONDS));
    return body;
  });
}

/** The 5xx body rewritten: Stream's APIError shape keeps its shape with StatusCode 503; anything else is replaced. */
function overloadBody(payload: unknown): unknown {
  if (typeof payload !== 'string') return payload;
  try {
    const parsed = JSON.parse(payload) as unknown;
    if (parsed !== null && typeof parsed === 'object' && 'StatusCode' in parsed) {
      return JSON.stringify({ ...parsed, StatusCode: 503, message: 'service busy, retry later' });
    }
  } catch {
    // not JSON: replaced below
  }
  return JSON.stringify({ error: 'service busy, retry later' });
}
