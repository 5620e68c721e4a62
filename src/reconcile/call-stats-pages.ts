import type { StreamClient } from '../stream/client.ts';
import type { StreamApiError } from '../stream/errors.ts';
import { paginate } from '../stream/paginate.ts';
import type { CallSessionStatsRow, UnusableCallStatsRow } from '../stream/schemas.ts';
import { withStreamRetries, type RetryPolicy } from './retry.ts';

/** Stream's maximum page size for call_stats (docs/stream-api.md §7). */
export const CALL_STATS_PAGE_LIMIT = 100;

/**
 * The only sort Stream allows on session_ended_at pairs it with call_cid (docs/stream-api.md §7);
 * the second key makes the order total, so a cursor never skips or repeats a row that ties on time.
 */
export const CALL_STATS_SORT = [
  { field: 'session_ended_at', direction: 1 },
  { field: 'call_cid', direction: 1 },
] as const;

/** Sessions that ended in [from, until], both ends included. */
export interface EndedWindow {
  readonly from: Date;
  readonly until: Date;
}

export interface CallStatsPage {
  readonly rows: readonly CallSessionStatsRow[];
  /** Rows that named no session; the caller counts and reports them (never dropped in silence). */
  readonly unusable: readonly UnusableCallStatsRow[];
  /** The cursor this page was asked for with; null for the first page of the window. */
  readonly cursor: string | null;
  readonly next: string | null;
}

/** What a listing (a sweep's window or a backfill) has gone through so far, page by page. */
export interface ListingTally {
  pages: number;
  /** Rows listed, unusable ones included. */
  seen: number;
  enqueued: number;
  unusable: number;
  withoutEnd: number;
  corrected: number;
}

export function emptyListingTally(): ListingTally {
  return { pages: 0, seen: 0, enqueued: 0, unusable: 0, withoutEnd: 0, corrected: 0 };
}

/** Adds one committed page to `tally`; returns the page's rows listed without an end time. */
export function tallyPage(tally: ListingTally, page: CallStatsPage, written: { enqueued: number; corrected: number }): CallSessionStatsRow[] {
  const withoutEnd = page.rows.filter((row) => row.sessionEndedAt === null);
  tally.pages += 1;
  tally.seen += page.rows.length + page.unusable.length;
  tally.enqueued += written.enqueued;
  tally.unusable += page.unusable.length;
  tally.withoutEnd += withoutEnd.length;
  tally.corrected += written.corrected;
  return withoutEnd;
}

export interface PageCallStatsOptions {
  readonly window: EndedWindow;
  /** Resume here instead of at the window's start; only valid with the same window it came from. */
  readonly cursor?: string | null;
  readonly retry: RetryPolicy;
  /** Rows per page, at most CALL_STATS_PAGE_LIMIT (the default). */
  readonly pageLimit?: number;
  readonly signal?: AbortSignal;
  readonly onRetry?: (error: StreamApiError, attempt: number, delayMs: number) => void;
}

export function endedWindowFilter(window: EndedWindow): Record<string, unknown> {
  return { session_ended_at: { $gte: window.from.toISOString(), $lte: window.until.toISOString() } };
}

/**
 * QueryCallSessionStats over one window, page by page, through the one paginator without
 * prefetch: the next page is asked for only when the consumer comes back for it, so a caller that
 * commits each page before continuing never has more than one page in memory or uncommitted.
 * Each request is retried on its own.
 */
export async function* pageCallStats(stream: StreamClient, options: PageCallStatsOptions): AsyncGenerator<CallStatsPage> {
  const filterConditions = endedWindowFilter(options.window);
  const fetchPage = (cursor: string | null) =>
    withStreamRetries(
      () =>
        stream.queryCallSessionStats({
          filterConditions,
          sort: CALL_STATS_SORT,
          limit: options.pageLimit ?? CALL_STATS_PAGE_LIMIT,
          next: cursor ?? undefined,
          signal: options.signal,
        }),
      { policy: options.retry, signal: options.signal, onRetry: options.onRetry },
    );
  const pages = paginate(fetchPage, { start: options.cursor, prefetch: false, signal: options.signal, operation: 'QueryCallSessionStats' });
  for await (const { page, cursor } of pages) {
    yield { rows: page.rows, unusable: page.unusable ?? [], cursor, next: page.next };
  }
}
