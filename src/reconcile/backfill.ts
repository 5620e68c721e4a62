import { eq } from '../db/drizzle.ts';
import type { Database } from '../db/client.ts';
import { callSessions, type SessionStatus } from '../db/schema.ts';
import { AppError } from '../errors.ts';
import { enqueueListedSessions } from '../queue/enqueue-listed.ts';
import type { StreamClient } from '../stream/client.ts';
import { StreamApiError } from '../stream/errors.ts';
import { STREAM_RETENTION_DAYS } from '../stream/retention.ts';
import type { CallSessionStatsRow, UnusableCallStatsRow } from '../stream/schemas.ts';
import { emptyListingTally, pageCallStats, tallyPage, type EndedWindow } from './call-stats-pages.ts';
import { foundSession, type FoundSession } from './enqueue-found.ts';
import { SWEEP_RETRY_POLICY, withStreamRetries, type RetryPolicy } from './retry.ts';
import { addUnusableRows } from './state.ts';
import { withPoolTransaction } from '../db/transaction.ts';
import type { Metrics } from '../metrics.ts';

/** Stream keeps a session's participant detail STREAM_RETENTION_DAYS (docs/stream-api.md §8); a backfill cannot reach further. */
export const BACKFILL_MAX_DAYS = STREAM_RETENTION_DAYS;

export interface BackfillWindowOptions {
  readonly database: Database;
  readonly stream: StreamClient;
  readonly window: EndedWindow;
  readonly retry?: RetryPolicy;
  /** Rows per call_stats page; default (and maximum) 100. */
  readonly pageLimit?: number;
  readonly signal?: AbortSignal;
  /** Called after each page commits, with the sessions it added. */
  readonly onEnqueued?: (sessions: readonly FoundSession[]) => void;
  /**
   * Called after each page commits with its rows that named no session (not enqueued) and its
   * sessions listed without an end time (enqueued or kept, retention estimated).
   */
  readonly onRowProblems?: (unusable: readonly UnusableCallStatsRow[], withoutEnd: readonly CallSessionStatsRow[]) => void;
  /** Counts unusable rows in reconcileUnusableRows. */
  readonly metrics?: Pick<Metrics, 'reconcileUnusableRows'>;
  readonly now?: () => Date;
}

export interface BackfillWindowResult {
  readonly pages: number;
  /** Rows call_stats listed, unusable ones included. */
  readonly seen: number;
  readonly enqueued: number;
  /** Rows that named no session: not enqueued, counted in reconcile_state.unusable_total. */
  readonly unusable: number;
  /** Sessions listed without an end time: retention estimated (stream/retention.ts). */
  readonly withoutEnd: number;
  /** Sessions already known without an end whose end (or first retention date) the listing supplied. */
  readonly corrected: number;
}

/**
 * The sweep's paging over an explicit window, without the lock and without the sweep's state: the
 * watermark is the reconciler's alone (only unusable rows are added to reconcile_state's all-time
 * count). Each page's new sessions commit together, so an interrupted backfill is simply run
 * again; sessions already present keep their status, and only get their end time when they had
 * none (queue/enqueue-listed.ts).
 */
export async function backfillWindow(options: BackfillWindowOptions): Promise<BackfillWindowResult> {
  const totals = emptyListingTally();
  for await (const page of pageCallStats(options.stream, {
    window: options.window,
    retry: options.retry ?? SWEEP_RETRY_POLICY,
    pageLimit: options.pageLimit,
    signal: options.signal,
  })) {
    const listedAt = options.now?.() ?? new Date();
    const found = page.rows.map((row) => foundSession(row, listedAt));
    const written = await withPoolTransaction(options.database.pool, async (client) => {
      const result = await enqueueListedSessions(client, found);
      await addUnusableRows(client, page.unusable.length);
      return result;
    });
    const ids = new Set(written.inserted);
    const withoutEnd = tallyPage(totals, page, { enqueued: ids.size, corrected: written.corrected.length });
    if (page.unusable.length > 0) options.metrics?.reconcileUnusableRows.inc(page.unusable.length);
    if (ids.size > 0) options.onEnqueued?.(dedupe(found.filter((row) => ids.has(row.callSessionId))));
    if (page.unusable.length > 0 || withoutEnd.length > 0) options.onRowProblems?.(page.unusable, withoutEnd);
  }
  return totals;
}

export interface BackfillSessionOptions {
  readonly database: Database;
  readonly stream: StreamClient;
  readonly callType: string;
  readonly callId: string;
  readonly callSessionId: string;
  readonly retry?: RetryPolicy;
  readonly signal?: AbortSignal;
}

export type BackfillSessionResult =
  | {
      readonly outcome: 'enqueued';
      readonly session: FoundSession;
      /** Why the end time (and so the retention) is unknown, when it is. */
      readonly lookupNote: string | null;
    }
  | { readonly outcome: 'exists'; readonly status: SessionStatus; readonly callCid: string };

/**
 * Enqueues one session. Its end time comes from call_stats filtered on call_session_id; when the
 * row has none, the retention is estimated from the row's other dates (stream/retention.ts); when
 * Stream cannot say at all (not listed yet, filter refused, unavailable), the session is enqueued
 * all the same, with no end and so no retention date (it then sorts after dated sessions in the
 * claim order and is never reported at risk). A session already in call_sessions is reported and
 * left as it is.
 */
export async function backfillSession(options: BackfillSessionOptions): Promise<BackfillSessionResult> {
  const existing = await readExisting(options.database, options.callSessionId);
  if (existing) return existing;

  let listed: CallSessionStatsRow | undefined;
  let lookupNote: string | null = null;
  try {
    const page = await withStreamRetries(
      () =>
        options.stream.queryCallSessionStats({
          filterConditions: { call_session_id: { $eq: options.callSessionId } },
          limit: 1,
          signal: options.signal,
        }),
      { policy: options.retry ?? SWEEP_RETRY_POLICY, signal: options.signal },
    );
    const row = page.rows.find((r) => r.callSessionId === options.callSessionId);
    if (row && (row.callType !== options.callType || row.callId !== options.callId)) {
      throw new AppError(
        'BACKFILL_CALL_MISMATCH',
        `Stream lists session ${options.callSessionId} under call ${row.callType}:${row.callId}, not ${options.callType}:${options.callId}`,
      );
    }
    listed = row;
    if (!row) lookupNote = 'call_stats does not list this session (yet)';
    else if (row.sessionEndedAt === null) lookupNote = 'call_stats gives no end time for this session';
  } catch (error) {
    // Bad credentials would fail the archive run too: better said now than recorded as dead later.
    if (!(error instanceof StreamApiError) || error.failure === 'auth') throw error;
    lookupNote = `call_stats lookup failed: ${error.message}`;
  }

  const session: FoundSession = listed
    ? foundSession(listed, new Date())
    : {
        callType: options.callType,
        callId: options.callId,
        callSessionId: options.callSessionId,
        sessionEndedAt: null,
        retentionExpiresAt: null,
        retentionBasis: null,
      };
  const { inserted } = await enqueueListedSessions(options.database.pool, [session]);
  if (inserted.length === 0) {
    // A webhook or the reconciler got there between the check and the insert.
    const raced = await readExisting(options.database, options.callSessionId);
    if (raced) return raced;
  }
  return { outcome: 'enqueued', session, lookupNote };
}

async function readExisting(database: Database, callSessionId: string): Promise<BackfillSessionResult | null> {
  const rows = await database.db
    .select({ status: callSessions.status, callCid: callSessions.callCid })
    .from(callSessions)
    .where(eq(callSessions.callSessionId, callSessionId));
  const row = rows[0];
  return row ? { outcome: 'exists', status: row.status, callCid: row.callCid } : null;
}

function dedupe(sessions: readonly FoundSession[]): FoundSession[] {
  return [...new Map(sessions.map((s) => [s.callSessionId, s])).values()];
}
