import { AppError } from '../errors.ts';

/** Stream's rate-limit headers (docs/stream-api.md §4): a 1-minute window per endpoint and platform. */
export interface RateLimitInfo {
  readonly limit: number;
  readonly remaining: number;
  /** X-RateLimit-Reset is a Unix timestamp in seconds; kept here as a Date. */
  readonly resetAt: Date;
}

/**
 * Why a request failed, in the terms the worker decides on:
 * - `not_ready`: 404, which right after a call usually means the analytics are not in yet
 * - `rate_limited`: 429
 * - `timeout`, `network`: no answer (status 0)
 * - `server`: 5xx and 408
 * - `invalid_response`: a 2xx whose body is not the JSON we expect (truncated, changed shape)
 * - `auth`: 401/403, `client`: any other 4xx
 */
export const STREAM_FAILURES = ['not_ready', 'rate_limited', 'timeout', 'network', 'server', 'invalid_response', 'auth', 'client'] as const;
export type StreamFailure = (typeof STREAM_FAILURES)[number];

const RETRYABLE: ReadonlySet<StreamFailure> = new Set(['not_ready', 'rate_limited', 'timeout', 'network', 'server', 'invalid_response']);

export interface StreamApiErrorDetails {
  readonly operation: string;
  /** HTTP status; 0 when no answer came (network error or timeout). */
  readonly status: number;
  readonly failure: StreamFailure;
  /** Stream's own error code from the APIError body, when there was one. */
  readonly streamCode?: number | null;
  /** Stream's `unrecoverable: true`: retrying the same request will not help. */
  readonly unrecoverable?: boolean;
  readonly rateLimit?: RateLimitInfo | null;
  readonly cause?: unknown;
}

/**
 * A failed call to Stream. The message names the operation, the status and Stream's own message,
 * never the URL's query, a header or the token.
 */
export class StreamApiError extends AppError {
  readonly operation: string;
  readonly status: number;
  readonly failure: StreamFailure;
  readonly streamCode: number | null;
  readonly unrecoverable: boolean;
  readonly rateLimit: RateLimitInfo | null;

  constructor(message: string, details: StreamApiErrorDetails) {
    const unrecoverable = details.unrecoverable ?? false;
    super(errorCode(details.failure), scrubSecrets(message), {
      retryable: RETRYABLE.has(details.failure) && !unrecoverable,
      cause: details.cause,
    });
    this.operation = details.operation;
    this.status = details.status;
    this.failure = details.failure;
    this.streamCode = details.streamCode ?? null;
    this.unrecoverable = unrecoverable;
    this.rateLimit = details.rateLimit ?? null;
  }
}

/** Maps an HTTP status to the failure kind the retry policy works with. */
export function failureForStatus(status: number): StreamFailure {
  if (status === 404) return 'not_ready';
  if (status === 429) return 'rate_limited';
  if (status === 408 || status >= 500) return 'server';
  if (status === 401 || status === 403) return 'auth';
  return 'client';
}

function errorCode(failure: StreamFailure): string {
  switch (failure) {
    case 'timeout':
      return 'STREAM_TIMEOUT';
    case 'network':
      return 'STREAM_NETWORK_ERROR';
    case 'invalid_response':
      return 'STREAM_INVALID_RESPONSE';
    default:
      return 'STREAM_API_ERROR';
  }
}

// A JWT is three base64url parts; Stream echoes request data in some messages, so anything
// token-shaped is cut before it can reach a log line or last_error.
const TOKEN_PATTERN = /eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*/g;

export function scrubSecrets(text: string): string {
  return text.replace(TOKEN_PATTERN, '[token]');
}
