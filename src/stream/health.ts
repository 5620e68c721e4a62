import type { StreamOutcome } from './request.ts';

/**
 * What the service can say about Stream's API. `unknown` is only ever the starting point (nothing
 * asked yet); every verdict below is one of the other three.
 */
export type StreamHealthVerdict = 'ok' | 'unauthorized' | 'unreachable';

/**
 * What one exchange says about Stream's health, or null when it says nothing either way:
 * - a 2xx: `ok`
 * - 401/403: `unauthorized` (the key or the secret is wrong; nothing will work until fixed)
 * - no answer, a timeout, a 5xx or 408, a body that is not Stream's: `unreachable`
 * - a 404 where Stream has a route for sure (`client` failure on a no-route 404): `unreachable`,
 *   since STREAM_BASE_URL points at something that is not Stream's API
 * - 429, participant_sessions' "not ready" 404 and other 4xx: nothing. Stream answered, but a
 *   rate-limited or refused request does not show the credentials were accepted.
 */
export function healthOfOutcome(outcome: Pick<StreamOutcome, 'status' | 'error'>): StreamHealthVerdict | null {
  const { error } = outcome;
  if (error === null) return 'ok';
  switch (error.failure) {
    case 'auth':
      return 'unauthorized';
    case 'network':
    case 'timeout':
    case 'server':
    case 'invalid_response':
      return 'unreachable';
    case 'client':
      return error.status === 404 ? 'unreachable' : null;
    case 'rate_limited':
    case 'not_ready':
      return null;
  }
}

/**
 * One line that says what is wrong and what to fix, for logs, `status` and last_error. Never
 * holds the query string (the API key) or a token: `outcome.url` has no query and the
 * StreamApiError message is already scrubbed.
 */
export function describeStreamProblem(verdict: Exclude<StreamHealthVerdict, 'ok'>, outcome: StreamOutcome, baseUrl: string): string {
  const what = outcome.error?.message ?? `Stream ${outcome.operation} answered ${outcome.status}`;
  if (verdict === 'unauthorized') {
    return `Stream refused the API credentials (${what}): check STREAM_API_KEY and STREAM_API_SECRET`;
  }
  // A no-route 404 (request.ts) is already worded with STREAM_BASE_URL and the URL.
  if (outcome.error?.failure === 'client' && outcome.status === 404) return `Stream is not reachable as configured: ${what}`;
  return `Stream is not reachable as configured (${outcome.method} ${outcome.url}: ${what}): check STREAM_BASE_URL (${baseUrl}) and the network`;
}
