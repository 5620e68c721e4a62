/**
 * Stream's APIError body (docs/stream-api.md §4). Used by the simulator and by our own archive route,
 * which answers like Stream so existing SDKs understand its errors.
 */
export interface ApiErrorBody {
  code: number;
  message: string;
  StatusCode: number;
  duration: string;
  more_info: string;
  details: number[];
  exception_fields?: Record<string, string>;
  unrecoverable?: boolean;
}

/** Stream error codes used here: 4 input, 5 auth, 9 rate limit, 16 not found, -1 internal. */
export const STREAM_ERROR_CODES = { input: 4, auth: 5, rateLimited: 9, notFound: 16, internal: -1 } as const;

export function apiErrorBody(
  status: number,
  code: number,
  message: string,
  extra: { startedAt?: number; exceptionFields?: Record<string, string>; unrecoverable?: boolean } = {},
): ApiErrorBody {
  const body: ApiErrorBody = {
    code,
    message,
    StatusCode: status,
    duration: formatDuration(extra.startedAt),
    more_info: 'https://getstream.io/video/docs/api/errors/',
    details: [],
  };
  if (extra.exceptionFields) body.exception_fields = extra.exceptionFields;
  if (extra.unrecoverable !== undefined) body.unrecoverable = extra.unrecoverable;
  return body;
}

/** Stream writes `duration` on most responses as a string such as "1.23ms". */
export function formatDuration(startedAt: number | undefined): string {
  const ms = startedAt === undefined ? 0 : performance.now() - startedAt;
  return `${ms.toFixed(2)}ms`;
}
