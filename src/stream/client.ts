import type { StreamConfig } from '../config.ts';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics.ts';
import { StreamApiError } from './errors.ts';
import { createRateLimiter, type RateLimiter } from './rate-limiter.ts';
import { parseRateLimitsResponse, type RateLimitsResponse } from './rate-limits.ts';
import { createRequestCore, type StreamOutcome } from './request.ts';
import {
  ResponseShapeError,
  parseCallSessionStatsPage,
  parseParticipantSessionsPage,
  type CallSessionStatsPage,
  type ParticipantSessionsPage,
} from './schemas.ts';

export interface StreamClientOptions {
  readonly baseUrl: string;
  readonly apiKey: string;
  readonly apiSecret: string;
  /** Per request, from sending to the last body byte; default 10 000. */
  readonly timeoutMs?: number;
  readonly connections?: number;
  readonly metrics?: Metrics;
  readonly logger?: Logger;
  /** Process-wide; one is created here if absent. Share one between clients of the same app. */
  readonly limiter?: RateLimiter;
  /** Told of every exchange (see RequestCoreOptions.onOutcome): Stream's health tracking. */
  readonly onOutcome?: (outcome: StreamOutcome) => void;
}

/** The Stream settings of the configuration (STREAM_BASE_URL, STREAM_API_KEY, STREAM_API_SECRET) as client options. */
export const streamConnection = (
  stream: Pick<StreamConfig, 'baseUrl' | 'apiKey' | 'apiSecret'>,
): Pick<StreamClientOptions, 'baseUrl' | 'apiKey' | 'apiSecret'> => ({
  baseUrl: stream.baseUrl,
  apiKey: stream.apiKey,
  apiSecret: stream.apiSecret,
});

export interface ParticipantSessionsParams {
  readonly type: string;
  readonly id: string;
  /** The call session id (not a participant's user_session_id). */
  readonly session: string;
  /** 0–100; Stream documents no default, so callers should pass 100. */
  readonly limit?: number;
  readonly next?: string;
  readonly prev?: string;
  readonly filterConditions?: Record<string, unknown>;
  readonly signal?: AbortSignal;
}

export interface CallSessionStatsParams {
  readonly filterConditions?: Record<string, unknown>;
  readonly sort?: readonly { readonly field: string; readonly direction: 1 | -1 }[];
  readonly limit?: number;
  readonly next?: string;
  readonly signal?: AbortSignal;
}

export interface RateLimitsParams {
  /** Stream's operation names, e.g. QueryCallParticipantSessions. */
  readonly endpoints: readonly string[];
  readonly signal?: AbortSignal;
}

export interface StreamClient {
  /**
   * GET /api/v2/rate_limits?server_side=true: the cheapest authenticated call, used to check the
   * credentials and STREAM_BASE_URL at start (it counts against no archive endpoint's window).
   */
  getRateLimits(params: RateLimitsParams): Promise<RateLimitsResponse>;
  /** GET /api/v2/video/call/{type}/{id}/session/{session}/participant_sessions */
  queryCallParticipantSessions(params: ParticipantSessionsParams): Promise<ParticipantSessionsPage>;
  /** POST /api/v2/video/call_stats */
  queryCallSessionStats(params: CallSessionStatsParams): Promise<CallSessionStatsPage>;
  close(): Promise<void>;
}

/** A typed client for the two Stream operations the archiver uses; every failure is a StreamApiError. */
export function createStreamClient(options: StreamClientOptions): StreamClient {
  const core = createRequestCore({
    baseUrl: options.baseUrl,
    apiKey: options.apiKey,
    apiSecret: options.apiSecret,
    timeoutMs: options.timeoutMs,
    connections: options.connections,
    limiter: options.limiter ?? createRateLimiter(),
    metrics: options.metrics,
    logger: options.logger,
    onOutcome: options.onOutcome,
  });

  return {
    async getRateLimits(params) {
      const operation = 'GetRateLimits';
      const response = await core.request({
        operation,
        method: 'GET',
        path: ['api', 'v2', 'rate_limits'],
        query: { server_side: true, endpoints: params.endpoints },
        signal: params.signal,
        notFound: 'no_route',
      });
      return parsed(operation, response.status, () => parseRateLimitsResponse(response.body));
    },

    async queryCallParticipantSessions(params) {
      const operation = 'QueryCallParticipantSessions';
      const response = await core.request({
        operation,
        method: 'GET',
        path: ['api', 'v2', 'video', 'call', params.type, params.id, 'session', params.session, 'participant_sessions'],
        query: {
          limit: params.limit,
          next: params.next,
          prev: params.prev,
          filter_conditions: params.filterConditions,
        },
        signal: params.signal,
      });
      return parsed(operation, response.status, () => parseParticipantSessionsPage(response.body));
    },

    async queryCallSessionStats(params) {
      const operation = 'QueryCallSessionStats';
      const response = await core.request({
        operation,
        method: 'POST',
        path: ['api', 'v2', 'video', 'call_stats'],
        body: {
          filter_conditions: params.filterConditions,
          sort: params.sort,
          limit: params.limit,
          next: params.next,
        },
        signal: params.signal,
        notFound: 'no_route',
      });
      return parsed(operation, response.status, () => parseCallSessionStatsPage(response.body));
    },

    close: () => core.close(),
  };
}

function parsed<T>(operation: string, status: number, parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    if (!(error instanceof ResponseShapeError)) throw error;
    throw new StreamApiError(`Stream ${operation} answered ${status} with an unexpected body: ${error.message}`, {
      operation,
      status,
      failure: 'invalid_response',
      cause: error,
    });
  }
}
