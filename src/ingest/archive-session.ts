import { setTimeout as delay } from 'node:timers/promises';
import type pg from 'pg';
import { coerceError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics.ts';
import { DEFAULT_BACKOFF, rateLimitedDelayMs, retryDelayMs, type BackoffPolicy } from '../queue/backoff.ts';
import type { ClaimedSession } from '../queue/claim.ts';
import { LeaseLostError, withFencedTransaction, type Lease } from '../queue/fence.ts';
import { countArchived, finishSession, type ArchivedCount, type SessionOutcome, type StreamTotals } from '../queue/finish.ts';
import { releaseSession } from '../queue/lease.ts';
import type { StreamClient } from '../stream/client.ts';
import { StreamApiError } from '../stream/errors.ts';
import { PAGE_LIMIT, paginate } from '../stream/paginate.ts';
import type { ParticipantSessionsPage } from '../stream/schemas.ts';
import { retentionExpiresAt, STREAM_RETENTION_DAYS } from '../stream/retention.ts';
import { writePage } from './write-page.ts';


/**
 * In-process retries of one page request before the session is handed back: a flaky API should
 * not restart sessions constantly. 0.25 s, 0.5 s, 1 s, 2 s (capped at 4 s), with full jitter.
 * 429s do not wait here: the shared limiter already holds every request until the reset.
 */
export interface PageRetryPolicy {
  readonly retries: number;
  readonly rateLimitedRetries: number;
  readonly baseMs: number;
  readonly capMs: number;
}

export const DEFAULT_PAGE_RETRY: PageRetryPolicy = { retries: 4, rateLimitedRetries: 5, baseMs: 250, capMs: 4_000 };

/** Raised through the run's signal when the worker is stopping: the session is given back. */
export class WorkerStoppingError extends Error {
  constructor() {
    super('worker is stopping');
    this.name = 'WorkerStoppingError';
  }
}

export interface ArchiveSessionOptions {
  readonly pool: pg.Pool;
  readonly stream: StreamClient;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly session: ClaimedSession;
  /** Aborted with LeaseLostError (heartbeat found the lease gone) or WorkerStoppingError. */
  readonly signal: AbortSignal;
  readonly maxAttempts: number;
  readonly backoff?: BackoffPolicy;
  readonly pageRetry?: PageRetryPolicy;
  readonly now?: () => number;
}

/**
 * How the run ended: the status it wrote to call_sessions, `released` (handed back on stop), or
 * `lease_lost` (someone else holds the session, or the outcome could not be written: nothing was).
 */
export interface ArchiveResult {
  readonly status: SessionOutcome['status'] | 'released' | 'lease_lost';
  /** Rows upserted by this run. */
  readonly rows: number;
  /** last_error as written, or why nothing was. */
  readonly detail: string | null;
}

interface PagingSummary {
  readonly totals: StreamTotals;
  /** Entries this run received (not rows held: an earlier run may have written some). */
  readonly entriesSeen: number;
  readonly pages: number;
  readonly sessionEndedAt: Date | null;
}

/**
 * Archives one claimed session: pages through Stream from the stored cursor, writing each page and
 * its cursor in one fenced transaction while the next page is already being fetched, then checks
 * what is held against Stream's totals and records the outcome. Never throws: every ending is a
 * status on the row, or, when the lease is gone, no write at all.
 */
export async function archiveSession(options: ArchiveSessionOptions): Promise<ArchiveResult> {
  const { session, metrics } = options;
  const now = options.now ?? Date.now;
  const backoff = options.backoff ?? DEFAULT_BACKOFF;
  const lease: Lease = { callSessionId: session.callSessionId, owner: session.leaseOwner };
  const log = options.logger.child({ callSessionId: session.callSessionId });
  // Our own controller, so an in-flight prefetch is cancelled whenever the run ends.
  const run = new AbortController();
  const signal = AbortSignal.any([options.signal, run.signal]);
  let rowsWritten = 0;
  // Pages written in this run that moved the stored cursor on to a page not yet archived (any page
  // but the last). A run that fails after doing so does not spend an attempt: see retryOrDead.
  let pagesAdvanced = 0;

  const recorded = (outcome: SessionOutcome): ArchiveResult => {
    metrics.sessionsFinished.inc({ status: outcome.status });
    return { status: outcome.status, rows: rowsWritten, detail: outcomeDetail(outcome) };
  };

  try {
    if (session.attempts > options.maxAttempts) {
      // Only a takeover gets here: earlier runs kept ending without recording anything (a worker
      // crashing on this session, or losing its lease), so one more would not help.
      const outcome: SessionOutcome = {
        status: 'dead',
        error: `gave up after ${session.attempts - 1} attempts: runs ended without a result (worker stopped or lost its lease)`,
        totals: null,
      };
      await finishSession(options.pool, lease, outcome);
      log.error({ attempts: session.attempts }, 'session dead');
      return recorded(outcome);
    }
    if (session.takenOver) log.warn({ attempts: session.attempts, resuming: session.cursor !== null }, 'took over a session whose lease lapsed');

    const summary = await pageThrough();
    const { outcome, held } = await withFencedTransaction(options.pool, lease, async (client) => {
      const counted = await countArchived(client, session.callSessionId);
      const decided = decideOutcome(counted, summary);
      await finishSession(client, lease, decided);
      return { outcome: decided, held: counted };
    });
    const fields = { status: outcome.status, rows: held.rows, total: summary.totals.participantSessions, pages: summary.pages, detail: outcomeDetail(outcome) };
    if (outcome.status === 'complete') log.info(fields, 'session archived');
    else log.warn(fields, 'session not verified');
    return recorded(outcome);
  } catch (caught) {
    return await settleFailure(caught);
  } finally {
    run.abort();
  }

  async function pageThrough(): Promise<PagingSummary> {
    let totals: StreamTotals | null = null;
    let entriesSeen = 0;
    let pages = 0;
    let sessionEndedAt: Date | null = null;
    for await (const { page, cursor } of paginate((next) => fetchPage(next), { start: session.cursor })) {
      checkIdentity(page);
      // After the last page, keep the cursor that fetched it: a resume then re-reads one page, not all.
      const written = await writePage(options.pool, lease, {
        callType: session.callType,
        callId: session.callId,
        entries: page.entries,
        resumeCursor: page.next ?? cursor,
        // Stream's answer without its entries, kept for the archive route: the last page's is the
        // one current when the session completes (see write-page.ts).
        ...(page.next === null ? { envelope: page.envelope } : {}),
      });
      rowsWritten += written.rows;
      if (page.next !== null) pagesAdvanced += 1;
      metrics.pagesArchived.inc();
      metrics.rowsArchived.inc(written.rows);
      pages += 1;
      entriesSeen += page.entries.length;
      // Only the totals outlive the page; the page itself is dropped here, so memory stays flat.
      totals = { participantSessions: page.totalParticipantSessions, participantDuration: page.totalParticipantDuration };
      sessionEndedAt = page.sessionEndedAt ?? sessionEndedAt;
      log.debug({ rows: written.rows, pages }, 'page archived');
      signal.throwIfAborted();
    }
    if (totals === null) throw new Error('pagination ended without a page');
    return { totals, entriesSeen, pages, sessionEndedAt };
  }

  async function fetchPage(cursor: string | null): Promise<ParticipantSessionsPage> {
    const policy = options.pageRetry ?? DEFAULT_PAGE_RETRY;
    let failures = 0;
    let rateLimited = 0;
    for (;;) {
      try {
        return await options.stream.queryCallParticipantSessions({
          type: session.callType,
          id: session.callId,
          session: session.callSessionId,
          limit: PAGE_LIMIT,
          next: cursor ?? undefined,
          signal,
        });
      } catch (error) {
        if (signal.aborted || !(error instanceof StreamApiError) || !error.retryable || error.failure === 'not_ready') throw error;
        if (error.failure === 'rate_limited') {
          rateLimited += 1;
          if (rateLimited > policy.rateLimitedRetries) throw error;
          log.debug({ rateLimited }, 'page rate limited; waiting for the limiter');
          continue;
        }
        failures += 1;
        if (failures > policy.retries) throw error;
        const wait = Math.random() * Math.min(policy.capMs, policy.baseMs * 2 ** (failures - 1));
        log.debug({ failure: error.failure, status: error.status, failures, waitMs: Math.round(wait) }, 'page request failed; retrying');
        await delay(wait, undefined, { signal });
      }
    }
  }

  function checkIdentity(page: ParticipantSessionsPage): void {
    if (page.callSessionId !== session.callSessionId) {
      throw new StreamApiError(`Stream answered for call session ${page.callSessionId}, not the one asked for`, {
        operation: 'QueryCallParticipantSessions',
        status: 200,
        failure: 'invalid_response',
      });
    }
  }

  /**
   * Done means verified: rows held = Stream's total. An empty list with a non-zero total past
   * day 90 is expired, never "no attendees". Anything else is retried from the first page.
   */
  function decideOutcome(held: ArchivedCount, summary: PagingSummary): SessionOutcome {
    const { totals } = summary;
    if (held.rows === totals.participantSessions) {
      const note =
        held.durationSeconds === totals.participantDuration
          ? null
          : `summed duration_in_seconds is ${held.durationSeconds} s but Stream's total_participant_duration is ${totals.participantDuration} s`;
      return { status: 'complete', totals, note };
    }
    const ranFromStart = session.cursor === null;
    if (ranFromStart && summary.entriesSeen === 0 && totals.participantSessions > 0 && pastRetention(summary.sessionEndedAt)) {
      return {
        status: 'expired',
        totals,
        note: `Stream returned no participant sessions but reports ${totals.participantSessions}: its ${STREAM_RETENTION_DAYS}-day retention has passed`,
      };
    }
    const difference = held.rows - totals.participantSessions;
    const error = `holds ${held.rows} participant sessions but Stream reports ${totals.participantSessions} (${difference > 0 ? '+' : ''}${difference})`;
    return retryOrDead(error, 'default', null, true, totals);
  }

  function pastRetention(endedAtFromStream: Date | null): boolean {
    const at = now();
    if (session.retentionExpiresAt !== null && session.retentionExpiresAt.getTime() < at) return true;
    const endedAt = session.sessionEndedAt ?? endedAtFromStream;
    return endedAt !== null && retentionExpiresAt(endedAt).getTime() < at;
  }

  /**
   * `progressed`: the run failed after moving the cursor on. Retrying such a run is retrying "while
   * progress is made", so it gives its attempt back and is never the one that goes dead: a very
   * large session under a long flaky spell still finishes. It stays bounded: each such run moves
   * the cursor forward over a finite list, and whatever restarts from the first page (a count that
   * does not match, a refused cursor) still spends its attempt.
   */
  function retryOrDead(
    error: string,
    kind: 'default' | 'not_ready' | 'rate_limited',
    resetAt: Date | null,
    restart: boolean,
    totals: StreamTotals | null,
    progressed = false,
  ): SessionOutcome {
    if (session.attempts >= options.maxAttempts && !progressed) {
      return { status: 'dead', error: `gave up after ${session.attempts} attempts; last error: ${error}`, totals, restart };
    }
    const delayMs =
      kind === 'rate_limited'
        ? rateLimitedDelayMs(session.attempts, resetAt, now(), backoff)
        : retryDelayMs(session.attempts, kind, backoff);
    return { status: 'retrying', delayMs, error, restart, totals, refundAttempt: progressed };
  }

  async function settleFailure(caught: unknown): Promise<ArchiveResult> {
    const reason: unknown = options.signal.aborted ? options.signal.reason : caught;
    try {
      if (reason instanceof LeaseLostError) {
        // Someone else holds the session now (or intake reset it): writing anything would be wrong.
        log.warn({ rows: rowsWritten }, 'lease lost; stopped archiving');
        return { status: 'lease_lost', rows: rowsWritten, detail: reason.message };
      }
      if (reason instanceof WorkerStoppingError) {
        const released = await releaseSession(options.pool, lease);
        log.info({ rows: rowsWritten, released }, 'session handed back on stop');
        return { status: released ? 'released' : 'lease_lost', rows: rowsWritten, detail: null };
      }
      const outcome = outcomeForError(coerceError(caught));
      await finishSession(options.pool, lease, outcome);
      if (outcome.status === 'dead') log.error({ rows: rowsWritten, err: caught }, 'session dead');
      else log.warn({ status: outcome.status, rows: rowsWritten, err: caught }, 'session will be retried');
      return recorded(outcome);
    } catch (error) {
      if (error instanceof LeaseLostError) {
        log.warn({ rows: rowsWritten }, 'lease lost before the outcome was recorded');
        return { status: 'lease_lost', rows: rowsWritten, detail: error.message };
      }
      // The database is unreachable: the lease lapses and another run picks the session up.
      log.error({ err: error, cause: caught }, 'could not record the outcome of a run');
      return { status: 'lease_lost', rows: rowsWritten, detail: coerceError(error).message };
    }
  }

  function outcomeForError(error: Error): SessionOutcome {
    if (error instanceof StreamApiError) {
      if (error.failure === 'client' && session.cursor !== null && rowsWritten === 0) {
        // A resumed run refused on its first request: the stored cursor may have gone stale
        // (Stream does not say how long cursors live). Start over rather than give up.
        return retryOrDead(`${error.message} (on a stored cursor; restarting from the first page)`, 'default', null, true, null);
      }
      if (!error.retryable) {
        return { status: 'dead', error: error.message, totals: null };
      }
      const kind = error.failure === 'rate_limited' ? 'rate_limited' : error.failure === 'not_ready' ? 'not_ready' : 'default';
      return retryOrDead(error.message, kind, error.rateLimit?.resetAt ?? null, false, null, pagesAdvanced > 0);
    }
    // Database errors and anything unforeseen: retried, and dead at the attempt limit.
    return retryOrDead(error.message, 'default', null, false, null, pagesAdvanced > 0);
  }
}

function outcomeDetail(outcome: SessionOutcome): string | null {
  return outcome.status === 'retrying' || outcome.status === 'dead' ? outcome.error : outcome.note;
}
