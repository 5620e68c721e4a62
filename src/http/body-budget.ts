import { Transform, type TransformCallback } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { OverloadedError, replyOverloaded } from './overload.ts';

/**
 * Bodies up to this size may use the whole budget; larger ones only LARGE_BODY_SHARE of it. Stream's
 * webhooks are a few kilobytes (1,368 bytes for a stats_report_ready in bench/intake.ts), so a flood
 * of near-limit uploads cannot take the last quarter from them.
 */
export const SMALL_BODY_BYTES = 64 * 1024;
const LARGE_BODY_SHARE = 0.75;

export interface BodyBudget {
  /** Reserves `bytes` for a body whose size so far (or declared) is `bodyBytes`; false when over the budget. */
  tryAcquire(bytes: number, bodyBytes: number): boolean;
  release(bytes: number): void;
  readonly inFlightBytes: () => number;
}

/** A process-wide count of request body bytes held in memory, bounded by `totalBytes`. */
export function createBodyBudget(totalBytes: number): BodyBudget {
  let inFlight = 0;
  return {
    tryAcquire(bytes, bodyBytes) {
      const limit = bodyBytes > SMALL_BODY_BYTES ? totalBytes * LARGE_BODY_SHARE : totalBytes;
      if (inFlight + bytes > limit) return false;
      inFlight += bytes;
      return true;
    },
    release(bytes) {
      inFlight = Math.max(0, inFlight - bytes);
    },
    inFlightBytes: () => inFlight,
  };
}

/**
 * Every request body is paid for from `budget` before it is buffered. With a Content-Length the
 * whole body is reserved in onRequest, before a byte of it is read, and refused with 503 and
 * Retry-After when it does not fit (the unread body is then discarded by Node as it arrives, never
 * held). A chunked body is counted as it arrives (preParsing wraps the stream) and fails with 503
 * at the chunk that does not fit. The reservation is returned when the response is done or the
 * connection closes. Route parsers (the webhook route's raw Buffer parser) need no change.
 */
export function registerBodyBudget(app: FastifyInstance, budget: BodyBudget, onRefused: (request: FastifyRequest) => void): void {
  const held = new WeakMap<FastifyRequest, { bytes: number }>();
  const account = (request: FastifyRequest, reply: FastifyReply) => {
    const entry = { bytes: 0 };
    held.set(request, entry);
    const giveBack = () => {
      budget.release(entry.bytes);
      entry.bytes = 0;
    };
    reply.raw.once('close', giveBack);
    reply.raw.once('finish', giveBack);
    return entry;
  };

  app.addHook('onRequest', async (request, reply) => {
    const declared = parseContentLength(request.headers['content-length']);
    if (declared === undefined || declared === 0) return;
    // A body over the route's limit is refused with 413 by Fastify before it is read: nothing to hold.
    if (declared > (request.routeOptions.bodyLimit ?? app.initialConfig.bodyLimit ?? Infinity)) return;
    if (!budget.tryAcquire(declared, declared)) {
      onRefused(request);
      return replyOverloaded(reply);
    }
    account(request, reply).bytes = declared;
  });

  app.addHook('onResponse', async (request) => {
    const entry = held.get(request);
    if (entry) {
      budget.release(entry.bytes);
      entry.bytes = 0;
    }
  });

  app.addHook('preParsing', async (request, reply, payload) => {
    // Node's parser only delivers a body with a Content-Length (reserved above) or chunked.
    if (held.has(request) || request.headers['content-length'] !== undefined || request.headers['transfer-encoding'] === undefined) return payload;
    const entry = account(request, reply);
    let received = 0;
    const counted = new Transform({
      transform(chunk: Buffer, _encoding, callback: TransformCallback) {
        received += chunk.length;
        if (!budget.tryAcquire(chunk.length, received)) {
          onRefused(request);
          callback(new OverloadedError('request body budget exhausted'));
          return;
        }
        entry.bytes += chunk.length;
        callback(null, chunk);
      },
    });
    payload.on('error', (error) => counted.destroy(error));
    // Fastify's body limit reads this to count what the client sent.
    Object.defineProperty(counted, 'receivedEncodedLength', { get: () => received });
    return payload.pipe(counted);
  });
}

function parseContentLength(header: string | undefined): number | undefined {
  if (header === undefined || !/^\d{1,15}$/.test(header.trim())) return undefined;
  return Number(header.trim());
}
