import { ResponseShapeError } from './schemas.ts';

/** One endpoint's server-side window, as GetRateLimits reports it. */
export interface EndpointRateLimit {
  readonly limit: number;
  readonly remaining: number;
  readonly resetAt: Date;
}

/** GetRateLimits: endpoint name → its current window. */
export type RateLimitsResponse = Readonly<Record<string, EndpointRateLimit>>;

/**
 * Parses `GET /api/v2/rate_limits?server_side=true` (docs/stream-api.md §4):
 * `{server_side: {<Endpoint>: {limit, remaining, reset}}, duration}`, reset in Unix seconds.
 * Only the shape is checked strictly; an endpoint Stream leaves out is simply absent.
 */
export function parseRateLimitsResponse(body: unknown): RateLimitsResponse {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new ResponseShapeError('rate_limits response: (root): expected object');
  const serverSide = (body as Record<string, unknown>).server_side;
  if (serverSide === undefined || serverSide === null) return {};
  if (typeof serverSide !== 'object' || Array.isArray(serverSide)) throw new ResponseShapeError('rate_limits response: server_side: expected object');
  const result: Record<string, EndpointRateLimit> = {};
  for (const [name, value] of Object.entries(serverSide as Record<string, unknown>)) {
    const { limit, remaining, reset } = (value ?? {}) as Record<string, unknown>;
    if (typeof limit !== 'number' || typeof remaining !== 'number' || typeof reset !== 'number') {
      throw new ResponseShapeError(`rate_limits response: server_side.${name}: expected {limit, remaining, reset} numbers`);
    }
    result[name] = { limit, remaining, resetAt: new Date(reset * 1000) };
  }
  return result;
}
