import { setImmediate } from 'node:timers/promises';
import type { ParticipantSessionsParams, StreamClient } from './client.ts';
import { StreamApiError } from './errors.ts';
import type { ParticipantSessionsPage } from './schemas.ts';

/** Stream's maximum page size for participant_sessions (docs/stream-api.md §1). */
export const PAGE_LIMIT = 100;

export interface FetchedPage<P> {
  readonly page: P;
  /** The cursor this page was fetched with (null for the first page). */
  readonly cursor: string | null;
}

export interface PaginateOptions {
  /** Where to resume: a stored `next` cursor, or null/undefined for the first page. */
  readonly start?: string | null;
  /**
   * Ask for page n + 1 while the caller works on page n (the default). Off, the next page is asked
   * for only when the caller comes back for it: a caller that commits each page before going on
   * then never has more than one page in memory or uncommitted.
   */
  readonly prefetch?: boolean;
  /** Checked before each request. */
  readonly signal?: AbortSignal;
  /** Stream's operation, named in the error if the cursor does not move. */
  readonly operation?: string;
}

/**
 * Pages as an async iterator. With prefetch, exactly one page ahead: while the caller works on page
 * n, the request for page n + 1 is in flight, and nothing beyond it is fetched until the caller
 * asks, so it holds at most two pages however long the list (the worker one more: the page whose
 * write is still in flight while it prepares the next, ingest/archive-session.ts). The cursor lives in this
 * closure; `null` is the end (schemas.ts folds "" and absent into it). Serves every Stream listing
 * (participant_sessions, call_stats): one stuck-cursor check, one error for it.
 */
export async function* paginate<P extends { readonly next: string | null }>(
  fetchPage: (cursor: string | null) => Promise<P>,
  options: PaginateOptions = {},
): AsyncGenerator<FetchedPage<P>, void, undefined> {
  const prefetch = options.prefetch ?? true;
  const request = (at: string | null): Promise<P> => {
    options.signal?.throwIfAborted();
    return fetchPage(at);
  };
  let cursor = options.start ?? null;
  let pending: Promise<P> | null = request(cursor);
  while (pending) {
    const page: P = await pending;
    const requested = cursor;
    pending = null;
    if (page.next !== null) {
      verifyCursorMoved(page.next, requested, options.operation ?? 'paginate');
      cursor = page.next;
      if (prefetch) {
        pending = request(cursor);
        // Its failure is raised when the caller asks for that page, not as an unhandled rejection now.
        pending.catch(() => undefined);
        // Let the request leave before the caller's work on this page: undici writes it on a later
        // turn of the event loop (on an open keep-alive connection, the next one), so without this
        // turn the caller's synchronous work (the worker serialises the page for Postgres) would hold
        // it back, and every hop of the chain would carry that delay.
        await setImmediate();
      }
    }
    yield { page, cursor: requested };
    if (!prefetch && page.next !== null) pending = request(cursor);
  }
}

/** A cursor that does not move would page forever. */
function verifyCursorMoved(next: string, requested: string | null, operation: string): void {
  if (next !== requested) return;
  throw new StreamApiError(`Stream ${operation} returned the same \`next\` cursor it was asked for; pagination would not end`, {
    operation,
    status: 200,
    failure: 'invalid_response',
  });
}

/** Every page of one call session's participant sessions, `limit=100`, with one page of prefetch. */
export function paginateParticipantSessions(
  client: StreamClient,
  params: Omit<ParticipantSessionsParams, 'next' | 'prev' | 'limit'>,
  options: PaginateOptions = {},
): AsyncGenerator<FetchedPage<ParticipantSessionsPage>, void, undefined> {
  return paginate((cursor) => client.queryCallParticipantSessions({ ...params, limit: PAGE_LIMIT, next: cursor ?? undefined }), {
    operation: 'QueryCallParticipantSessions',
    ...options,
  });
}
