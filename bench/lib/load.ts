/**
 * autocannon (programmatic API) behind a small typed surface; the package ships no types.
 */
import autocannonModule from 'autocannon';

export interface LoadRequest {
  method: 'POST';
  path: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
}

export interface LoadOptions {
  readonly url: string;
  readonly connections: number;
  readonly durationSeconds: number;
  /** Requests per second over all connections; unset means as fast as answers come. */
  readonly overallRate?: number;
  /** Builds each request (autocannon calls it once per request, per connection in turn). */
  readonly next: (context: Record<string, unknown>) => LoadRequest;
  readonly onResponse?: (status: number, context: Record<string, unknown>) => void;
}

export interface LoadResult {
  readonly requestsPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly meanMs: number;
  readonly ok: number;
  readonly non2xx: number;
  readonly errors: number;
  readonly timeouts: number;
  readonly seconds: number;
}

interface AutocannonResult {
  requests: { average: number; total: number };
  latency: { p50: number; p99: number; average: number };
  '2xx': number;
  non2xx: number;
  errors: number;
  timeouts: number;
  duration: number;
}

type Autocannon = (options: Record<string, unknown>) => Promise<AutocannonResult>;

export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  const autocannon = autocannonModule as unknown as Autocannon;
  const result = await autocannon({
    url: options.url,
    connections: options.connections,
    duration: options.durationSeconds,
    ...(options.overallRate === undefined ? {} : { overallRate: options.overallRate, ignoreCoordinatedOmission: true }),
    requests: [
      {
        setupRequest: (request: LoadRequest, context: Record<string, unknown>) => ({ ...request, ...options.next(context) }),
        onResponse: (status: number, _body: string, context: Record<string, unknown>) => options.onResponse?.(status, context),
      },
    ],
  });
  return {
    requestsPerSecond: result['2xx'] / result.duration,
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    meanMs: result.latency.average,
    ok: result['2xx'],
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    seconds: result.duration,
  };
}
