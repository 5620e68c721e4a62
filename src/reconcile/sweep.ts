import type pg from 'pg';
import { ADVISORY_LOCK_KEYS, withSessionAdvisoryLock } from '../db/advisory-lock.ts';
import { inTransaction } from '../db/transaction.ts';
import type { Database } from '../db/client.ts';
import { coerceError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics.ts';
import type { StreamClient } from '../stream/client.ts';
import { StreamApiError } from '../stream/errors.ts';
import { emptyListingTally, pageCallStats, tallyPage, type EndedWindow, type ListingTally } from './call-stats-pages.ts';
import { enqueueListedSessions } from '../queue/enqueue-listed.ts';
import { makeReportedSessionsDue } from '../queue/make-due.ts';
import { foundSession } from './enqueue-found.ts';
import { guardRetention } from './retention.ts';
import { SWEEP_RETRY_POLICY, type RetryPolicy } from './retry.ts';
import { completeSweep, discardSweepCursor, readSweepState, recordSweepError, saveSweepProgress, startSweepWindow, type PageTally } from './state.ts';
import { DAY_MS, MINUTE_MS } from '../time.ts';
import type { CallSessionStatsRow, UnusableCallStatsRow } from '../stream/schemas.ts';

/** Held for the whole sweep by the replica that runs it (db/advisory-lock.ts lists every key). */
const RECONCILE_LOCK_KEY = ADVISORY_LOCK_KEYS.reconcile;
export const DEFAULT_OVERLAP_MINUTES = 60;
const LOGGED_IDS = 5;

export interface SweepOptions {
  readonly database: Database;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly stream: StreamClient;
  /** How far back the first sweep of an empty archive looks. */
  readonly lookbackDays: number;
  /**
   * Each window starts this long before the watermark: call_stats may list a session some time
   * after it ended, and a session ending just before one sweep's end can appear only after it.
   */
  readonly overlapMinutes?: number;
  readonly retry?: RetryPolicy;
  /** Rows per call_stats page; default (and maximum) 100. */
  readonly pageLimit?: number;
  /** Aborting stops after the page being written commits; the next sweep resumes from its cursor. */
  readonly signal?: AbortSignal;
  readonly now?: () => Date;
}

export interface SweepResult {
  /** False when another replica held the lock (nothing was done). */
  readonly ran: boolean;
  readonly pages: number;
  /** Sessions call_stats listed. */
  readonly seen: number;
  /** Sessions that were not in call_sessions and now are, pending. */
  readonly enqueued: number;
  /** Rows that named no session (ids missing or not strings): not enqueued, logged, counted in reconcile_state. */
  readonly unusable: number;
  /** Sessions listed without an end time: enqueued (or kept) with an estimated retention and session_ended_at null. */
  readonly withoutEnd: number;
  /** Sessions already known without an end whose end (or first retention date) this sweep supplied. */
  readonly corrected: number;
  /** Sessions marked expired by the retention guard. */
  readonly expired: number;
  /** Sessions not complete within AT_RISK_DAYS of retention_expires_at. */
  readonly atRisk: number;
  /** Why the sweep ended early (also in reconcile_state.last_error); absent when it finished. */
  readonly error?: string;
}

/**
 * One sweep, at most one replica at a time: a session-level advisory lock on a dedicated
 * connection, and every page written through that same connection. If the connection dies, the
 * lock goes with it and so does any further write, so a replica that lost the lock cannot write.
 * Paging, then the retention guard (which runs even when paging failed: marking expired sessions
 * needs no Stream).
 */
export async function runSweep(options: SweepOptions): Promise<SweepResult> {
  const log = options.logger.child({ component: 'reconciler' });
  let run;
  try {
    run = await withSessionAdvisoryLock(
      options.database.pool,
      RECONCILE_LOCK_KEY,
      (client) => sweepLocked(client, options, log),
      (error) => log.warn({ err: error }, 'reconciler database connection lost'),
    );
  } catch (error) {
    // The connection or the lock query failed: sweepLocked reports its own failures.
    options.metrics.reconcileSweeps.inc({ outcome: 'error' });
    throw error;
  }
  if (!run.locked) {
    options.metrics.reconcileSweeps.inc({ outcome: 'skipped_locked' });
    log.debug('another replica is sweeping; skipped');
    return { ran: false, ...emptyListingTally(), expired: 0, atRisk: 0 };
  }
  return run.value;
}

async function sweepLocked(client: pg.PoolClient, options: SweepOptions, log: Logger): Promise<SweepResult> {
  const progress = emptyListingTally();
  let failure: Error | undefined;
  try {
    await sweepWindow(client, options, log, progress);
  } catch (error) {
    failure = coerceError(error);
  }
  if (failure && options.signal?.aborted) {
    log.info(progress, 'sweep stopped; the next one resumes from the stored cursor');
    return { ran: true, ...progress, expired: 0, atRisk: 0, error: 'stopped' };
  }
  if (failure) {
    const message = describeFailure(failure);
    log.error({ err: failure, ...progress }, 'sweep failed; the next one resumes after the last committed page');
    await recordSweepError(client, message).catch((error: unknown) => log.warn({ err: coerceError(error) }, 'could not record the sweep error'));
  }

  let expired = 0;
  let atRisk = 0;
  try {
    const retention = await guardRetention(client);
    expired = retention.expiredIds.length;
    atRisk = retention.atRisk;
    if (expired > 0) log.error({ expired, first: retention.expiredIds.slice(0, LOGGED_IDS) }, 'sessions expired unarchived');
    if (atRisk > 0) log.warn({ atRisk, first: retention.atRiskIds }, 'sessions at risk of expiring unarchived');
  } catch (error) {
    failure ??= coerceError(error);
    log.error({ err: coerceError(error) }, 'retention guard failed');
  }

  options.metrics.reconcileSweeps.inc({ outcome: failure ? 'error' : 'done' });
  if (!failure) log.info({ ...progress, expired, atRisk }, 'sweep done');
  return { ran: true, ...progress, expired, atRisk, ...(failure ? { error: describeFailure(failure) } : {}) };
}

/**
 * The window runs from the watermark minus the overlap to now, or, when a sweep was cut off, is
 * the stored one resumed from its cursor. Each page commits its new sessions together with the
 * cursor after it and the page's figures; the last page moves the watermark to the window's end.
 *
 * A first sweep (no watermark yet) looks back `lookbackDays`, by default all 90 days Stream
 * keeps: pages come oldest end first (CALL_STATS_SORT), i.e. nearest expiry first, and each page
 * is committed before the next is asked for, so workers start on the sessions closest to expiry
 * while the sweep goes on. Its requests go through the client's process-wide rate limiter, which
 * paces them once half of Stream's window is spent and waits out a 429.
 */
async function sweepWindow(client: pg.PoolClient, options: SweepOptions, log: Logger, progress: ListingTally): Promise<void> {
  const state = await readSweepState(client);
  const now = options.now?.() ?? new Date();
  const watermark = state?.watermark ?? new Date(now.getTime() - options.lookbackDays * DAY_MS);
  const from = new Date(watermark.getTime() - (options.overlapMinutes ?? DEFAULT_OVERLAP_MINUTES) * MINUTE_MS);
  const resumeUntil = state?.cursor && state.sweepUntil ? state.sweepUntil : null;

  const run = async (window: EndedWindow, cursor: string | null) => {
    log.info({ from: window.from, until: window.until, resumed: cursor !== null }, 'sweep started');
    if (cursor === null) await startSweepWindow(client, window);
    const pages = pageCallStats(options.stream, {
      window,
      cursor,
      retry: options.retry ?? SWEEP_RETRY_POLICY,
      pageLimit: options.pageLimit,
      signal: options.signal,
      onRetry: (error, attempt, delayMs) => log.warn({ err: error, attempt, delayMs }, 'call_stats request failed; retrying'),
    });
    for await (const page of pages) {
      const listedAt = options.now?.() ?? new Date();
      const found = page.rows.map((row) => foundSession(row, listedAt));
      const { inserted, corrected, madeDue } = await inTransaction(client, async () => {
        const written = await enqueueListedSessions(client, found);
        const insertedIds = new Set(written.inserted);
        const due = await makeReportedSessionsDue(
          client,
          found.map((row) => row.callSessionId).filter((id) => !insertedIds.has(id)),
        );
        const tally: PageTally = {
          seen: page.rows.length + page.unusable.length,
          enqueued: written.inserted.length,
          unusable: page.unusable.length,
          position: latestEnd(page.rows),
        };
        if (page.next !== null) await saveSweepProgress(client, { cursor: page.next, sweepUntil: window.until, watermark, tally });
        else await completeSweep(client, window.until, undefined, tally);
        return { ...written, madeDue: due };
      });
      const withoutEnd = tallyPage(progress, page, { enqueued: inserted.length, corrected: corrected.length });
      options.metrics.reconcileEnqueued.inc(inserted.length);
      if (inserted.length > 0) log.info({ enqueued: inserted.length, first: inserted.slice(0, LOGGED_IDS) }, 'sessions with no webhook enqueued');
      if (madeDue.length > 0) log.info({ madeDue: madeDue.length, first: madeDue.slice(0, LOGGED_IDS) }, 'sessions whose report event never came made due');
      if (corrected.length > 0)
        log.info({ corrected: corrected.length, first: corrected.slice(0, LOGGED_IDS) }, 'retention of sessions without a known end corrected from call_stats');
      reportRowProblems(log, options.metrics, page.unusable, withoutEnd, found);
      // Stopping between pages leaves a consistent checkpoint: this page and its cursor committed together.
      options.signal?.throwIfAborted();
    }
  };

  if (resumeUntil === null) return run({ from, until: now }, null);
  try {
    await run({ from, until: resumeUntil }, state!.cursor);
  } catch (error) {
    // Stream refusing the stored cursor outright (expired, or the filter changed with the
    // configuration) would otherwise fail every sweep from now on; start the window afresh.
    if (progress.pages > 0 || !(error instanceof StreamApiError) || error.failure !== 'client') throw error;
    log.warn({ err: error }, 'Stream refused the stored cursor; starting the window again');
    await discardSweepCursor(client);
    await run({ from, until: now }, null);
  }
}

/** Pages are sorted by end time, but rows without one may sit anywhere: the latest end present. */
function latestEnd(rows: readonly CallSessionStatsRow[]): Date | null {
  let latest: Date | null = null;
  for (const row of rows) if (row.sessionEndedAt && (!latest || row.sessionEndedAt > latest)) latest = row.sessionEndedAt;
  return latest;
}

/**
 * Nothing listed is dropped in silence. A row naming no session cannot be archived at all: an
 * error line per page with every such row (its position, why, whatever ids it had) and the
 * counter. A session without an end time is archived all the same, with an estimated retention;
 * a warning says which date the estimate came from, and which dates Stream sent unreadable.
 */
export function reportRowProblems(
  log: Logger,
  metrics: Pick<Metrics, 'reconcileUnusableRows'>,
  unusable: readonly UnusableCallStatsRow[],
  withoutEnd: readonly CallSessionStatsRow[],
  found: readonly { readonly callSessionId: string; readonly retentionBasis: string | null }[],
): void {
  if (unusable.length > 0) {
    metrics.reconcileUnusableRows.inc(unusable.length);
    log.error({ unusable: unusable.length, rows: unusable }, 'call_stats rows name no session; not enqueued');
  }
  if (withoutEnd.length > 0) {
    const basis = new Map(found.map((f) => [f.callSessionId, f.retentionBasis]));
    const rows = withoutEnd.map((row) => ({
      callSessionId: row.callSessionId,
      callCid: `${row.callType}:${row.callId}`,
      retentionFrom: basis.get(row.callSessionId),
      ...(row.dateProblems ? { dateProblems: row.dateProblems } : {}),
    }));
    log.warn({ withoutEnd: withoutEnd.length, rows }, 'call_stats lists sessions without an end time; retention estimated');
  }
}

function describeFailure(error: Error): string {
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' ? `${error.message} [${code}]` : error.message;
}
