import { setTimeout as delay } from 'node:timers/promises';
import type pg from 'pg';
import { SESSION_STATUS } from '../db/schema.ts';
import { SQLSTATE, sqlState } from '../db/sqlstate.ts';
import { AppError, coerceError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics.ts';
import { decideOutcome, outcomeBeforeRun, outcomeDetail, type FailureClass, type RunEnd, type RunFacts, type RunFailure } from '../policy/outcome.ts';
import { isPastRetention } from '../policy/retention.ts';
import { RETRY_POLICIES, retryDelayMs, type BackoffPolicy, type PageRetryPolicy } from '../policy/retry.ts';
import { leaseOf, type ClaimedSession } from '../queue/claim.ts';
import { PageOutOfOrderError, type PagePosition, sendPage } from '../queue/checkpoint-page.ts';
import { LeaseLostError, withFencedTransaction, type Lease } from '../queue/fence.ts';
import { countArchived, finishSession, type SessionOutcome, type StreamTotals } from '../queue/finish.ts';
import { releaseSession } from '../queue/lease.ts';
import type { StreamClient } from '../stream/client.ts';
import { StreamApiError } from '../stream/errors.ts';
import { PAGE_LIMIT, paginate } from '../stream/paginate.ts';
import type { ParticipantSessionsPage } from '../stream/schemas.ts';
import { type PageToWrite, type PreparedPage, preparePage } from './write-page.ts';

/** Raised through the run's signal when the worker is stopping: the session is given back. */
export class WorkerStoppingError extends AppError {
  constructor() {
    super('WORKER_STOPPING', 'worker is stopping', { retryable: true });
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

/** What this run has done so far: replaced after each page, never shared between functions. */
interface RunProgress {
  /** Rows upserted by this run. */
  readonly rows: number;
  readonly pages: number;
  /** Entries this run received (not rows held: an earlier run may have written some). */
  readonly entriesSeen: number;
  /** A page written by this run moved the stored cursor on to a page not yet archived (any page but the last). */
  readonly cursorMoved: boolean;
  /** Only the totals outlive a page; the page itself is dropped, so memory stays flat. */
  readonly totals: StreamTotals | null;
  readonly sessionEndedAt: Date | null;
}

const NO_PROGRESS: RunProgress = { rows: 0, pages: 0, entriesSeen: 0, cursorMoved: false, totals: null, sessionEndedAt: null };

/** What does not change during a run. */
interface Run {
  readonly options: ArchiveSessionOptions;
  readonly session: ClaimedSession;
  readonly lease: Lease;
  readonly log: Logger;
  /** The caller's signal, or the run's own end (which cancels an in-flight prefetch). */
  readonly signal: AbortSignal;
  readonly now: () => number;
}

/**
 * Archives one claimed session: pages through Stream from the stored cursor, writing each page and
 * its cursor in one fenced transaction while the next page is already being fetched, then checks
 * what is held against Stream's totals and records the outcome (decided in policy/outcome.ts).
 * Never throws: every ending is a status on the row, or, when the lease is gone, no write at all.
 */
export async function archiveSession(options: ArchiveSessionOptions): Promise<ArchiveResult> {
  const { session } = options;
  const ended = new AbortController();
  const run: Run = {
    options,
    session,
    lease: leaseOf(session),
    log: options.logger.child({ callSessionId: session.callSessionId }),
    signal: AbortSignal.any([options.signal, ended.signal]),
    now: options.now ?? Date.now,
  };
  let progress = NO_PROGRESS;
  try {
    const early = outcomeBeforeRun(session.attempts, options.maxAttempts);
    if (early) return await finishBeforeRun(run, early);
    if (session.takenOver) run.log.warn({ attempts: session.attempts, resuming: session.cursor !== null }, 'took over a session whose lease lapsed');
    const pages = paginate((cursor) => fetchPage(run, cursor), { start: session.cursor, operation: 'QueryCallParticipantSessions' });
    // Two pages are written at once, each on its own connection: page n's statement writes its
    // rows while page n − 1's is still in flight, and stores its cursor only once page n − 1 has
    // committed (queue/checkpoint-page.ts, sendPage), while page n + 1 is fetched, parsed and
    // prepared. On one 100,000-entry session, one page at a time left a core idle ~2 ms a page.
    const sender = new PageSender(run);
    const inFlight: PageInFlight[] = [];
    let sequence = 0;
    try {
      for await (const { page, cursor } of pages) {
        verifyPageIdentity(page, session.callSessionId);
        const prepared = preparePage(pageToWrite(session, page, cursor));
        // From here on only the statement's text and the page's counts are held, not the parsed
        // page: a page kept until its write settled outlived V8's young-generation collections and
        // was promoted (bench/RESULTS.md, peak RSS).
        const counted = pageCounts(page, prepared.rows);
        if (inFlight.length === PAGES_IN_FLIGHT) progress = pageWritten(run, progress, await settle(inFlight.shift()!));
        run.signal.throwIfAborted();
        const position = { fetchedWith: cursor, sequence: sequence++ };
        const written = await sendInFlight(run, sender, prepared, position, inFlight.at(-1)?.written);
        inFlight.push({ counted, written });
      }
      progress = await settleAll(run, progress, inFlight);
      run.signal.throwIfAborted();
    } catch (error) {
      // Pages still in flight settle first, in order, as when each page was written before the
      // next was read: a failure (a lost lease) is the run's, a success is progress.
      progress = await settleAll(run, progress, inFlight);
      throw error;
    }
    return await verifyAndFinish(run, progress);
  } catch (caught) {
    return await settleFailure(run, progress, caught);
  } finally {
    ended.abort();
  }
}

async function finishBeforeRun(run: Run, outcome: SessionOutcome): Promise<ArchiveResult> {
  await finishSession(run.options.pool, run.lease, outcome);
  run.log.error({ attempts: run.session.attempts }, 'session dead');
  return recorded(run, NO_PROGRESS, outcome);
}

/** Counts what is held and records the decision in one fenced transaction: no page write lands between. */
async function verifyAndFinish(run: Run, progress: RunProgress): Promise<ArchiveResult> {
  const { totals } = progress;
  if (totals === null) throw new Error('pagination ended without a page');
  const { session, lease } = run;
  const { outcome, held } = await withFencedTransaction(run.options.pool, lease, async (client) => {
    const counted = await countArchived(client, session.callSessionId);
    const pastRetention = isPastRetention(
      { retentionExpiresAt: session.retentionExpiresAt, sessionEndedAt: session.sessionEndedAt ?? progress.sessionEndedAt },
      run.now(),
    );
    const end: RunEnd = { kind: 'paged', held: counted, totals, entriesSeen: progress.entriesSeen, pastRetention };
    const decided = decideOutcome(runFacts(run, progress), end, { backoff: run.options.backoff });
    await finishSession(client, lease, decided);
    return { outcome: decided, held: counted };
  });
  const fields = { status: outcome.status, rows: held.rows, total: totals.participantSessions, pages: progress.pages, detail: outcomeDetail(outcome) };
  if (outcome.status === SESSION_STATUS.complete) run.log.info(fields, 'session archived');
  else run.log.warn(fields, 'session not verified');
  return recorded(run, progress, outcome);
}

async function settleFailure(run: Run, progress: RunProgress, caught: unknown): Promise<ArchiveResult> {
  const { log, lease, options } = run;
  const reason: unknown = options.signal.aborted ? options.signal.reason : caught;
  try {
    if (reason instanceof LeaseLostError) {
      // Someone else holds the session now (or intake reset it): writing anything would be wrong.
      log.warn({ rows: progress.rows }, 'lease lost; stopped archiving');
      return { status: 'lease_lost', rows: progress.rows, detail: reason.message };
    }
    if (reason instanceof WorkerStoppingError) {
      const released = await releaseSession(options.pool, lease);
      log.info({ rows: progress.rows, released }, 'session handed back on stop');
      return { status: released ? 'released' : 'lease_lost', rows: progress.rows, detail: null };
    }
    const end: RunEnd = { kind: 'failed', failure: describeFailure(coerceError(caught)) };
    const outcome = decideOutcome(runFacts(run, progress), end, { backoff: options.backoff });
    await finishSession(options.pool, lease, outcome);
    if (outcome.status === SESSION_STATUS.dead) log.error({ rows: progress.rows, err: caught }, 'session dead');
    else log.warn({ status: outcome.status, rows: progress.rows, err: caught }, 'session will be retried');
    return recorded(run, progress, outcome);
  } catch (error) {
    if (error instanceof LeaseLostError) {
      log.warn({ rows: progress.rows }, 'lease lost before the outcome was recorded');
      return { status: 'lease_lost', rows: progress.rows, detail: error.message };
    }
    // The database is unreachable: the lease lapses and another run picks the session up.
    log.error({ err: error, cause: caught }, 'could not record the outcome of a run');
    return { status: 'lease_lost', rows: progress.rows, detail: coerceError(error).message };
  }
}

/**
 * One page request, retried in process (RETRY_POLICIES.page) before the session is handed back.
 * A 429 does not wait here: the shared limiter already holds every request until the reset. A 404
 * (not ready) goes straight back to the session's gentler schedule.
 */
async function fetchPage(run: Run, cursor: string | null): Promise<ParticipantSessionsPage> {
  const { session, signal } = run;
  const policy: PageRetryPolicy = run.options.pageRetry ?? RETRY_POLICIES.page;
  let failures = 0;
  let rateLimited = 0;
  for (;;) {
    try {
      return await run.options.stream.queryCallParticipantSessions({
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
        run.log.debug({ rateLimited }, 'page rate limited; waiting for the limiter');
        continue;
      }
      failures += 1;
      if (failures > policy.retries) throw error;
      const waitMs = retryDelayMs(policy, failures);
      run.log.debug({ failure: error.failure, status: error.status, failures, waitMs }, 'page request failed; retrying');
      await delay(waitMs, undefined, { signal });
    }
  }
}

function verifyPageIdentity(page: ParticipantSessionsPage, callSessionId: string): void {
  if (page.callSessionId === callSessionId) return;
  throw new StreamApiError(`Stream answered for call session ${page.callSessionId}, not the one asked for`, {
    operation: 'QueryCallParticipantSessions',
    status: 200,
    failure: 'invalid_response',
  });
}

/** What a written page adds to a run's progress. */
interface PageCounts {
  readonly rows: number;
  readonly entries: number;
  readonly last: boolean;
  readonly totals: StreamTotals;
  readonly sessionEndedAt: Date | null;
}

/** Pages written at once: the one being stored and the one after it (see archiveSession). */
const PAGES_IN_FLIGHT = 2;

interface PageInFlight {
  readonly counted: PageCounts;
  /** Settles once the page is written (a second time, if it had to be) or cannot be. */
  readonly written: { readonly done: Promise<void> };
}

/**
 * Puts a run's page statements on the wire one at a time, in the order they were asked for, so a
 * page's statement has asked for its own lock before the next page's asks for it
 * (queue/checkpoint-page.ts, sendPage). A page written again goes through it too.
 */
class PageSender {
  private tail: Promise<unknown> = Promise.resolve();
  private readonly run: Run;

  constructor(run: Run) {
    this.run = run;
  }

  send(prepared: PreparedPage, position: PagePosition): Promise<{ readonly written: Promise<void> }> {
    const sent = this.tail.then(() => sendPage(this.run.options.pool, this.run.lease, prepared.checkpoint, position));
    this.tail = sent.catch(() => undefined);
    return sent;
  }
}

/**
 * Sends one page while the page before it (`before`) may still be in flight. When the page found
 * that page's cursor not yet stored as it went to store its own (PageOutOfOrderError: the page
 * before it had not yet taken its lock when it asked, or was being written again), or Postgres
 * rolled it back to break a deadlock with it (the two pages held one entry), it wrote nothing:
 * once the page before it is written, it is sent again, before any later page is sent. If the
 * page before it cannot be written, neither is this one, and the run ends with that failure.
 */
async function sendInFlight(
  run: Run,
  sender: PageSender,
  prepared: PreparedPage,
  position: PagePosition,
  before: PageInFlight['written'] | undefined,
): Promise<PageInFlight['written']> {
  const first = await sender.send(prepared, position);
  const done = first.written.catch(async (error: unknown) => {
    if (before === undefined || !(error instanceof PageOutOfOrderError || sqlState(error) === SQLSTATE.deadlockDetected)) throw error;
    await before.done;
    run.options.metrics.pagesRewritten.inc();
    run.log.debug({ sequence: position.sequence, reason: coerceError(error).message }, 'page sent again');
    const again = await sender.send(prepared, position);
    await again.written;
  });
  // Its failure is raised where the run awaits it, not as an unhandled rejection meanwhile.
  done.catch(() => undefined);
  return { done };
}

async function settle({ counted, written }: PageInFlight): Promise<PageCounts> {
  await written.done;
  return counted;
}

/** Settles every page still in flight, in order; the first failure is thrown once none is left in flight. */
async function settleAll(run: Run, progress: RunProgress, inFlight: PageInFlight[]): Promise<RunProgress> {
  let next = progress;
  let failure: { readonly error: unknown } | undefined;
  for (const item of inFlight.splice(0)) {
    if (failure) {
      // Behind a page that failed, no page can store its cursor: it only has to finish.
      await item.written.done.catch(() => undefined);
      continue;
    }
    try {
      next = pageWritten(run, next, await settle(item));
    } catch (error) {
      failure = { error };
    }
  }
  if (failure) throw failure.error;
  return next;
}

function pageWritten(run: Run, progress: RunProgress, counted: PageCounts): RunProgress {
  const next = afterPage(progress, counted);
  run.options.metrics.pagesArchived.inc();
  run.options.metrics.rowsArchived.inc(counted.rows);
  run.log.debug({ rows: counted.rows, pages: next.pages }, 'page archived');
  return next;
}

function pageToWrite(session: ClaimedSession, page: ParticipantSessionsPage, cursor: string | null): PageToWrite {
  return {
    callType: session.callType,
    callId: session.callId,
    entries: page.entries,
    // After the last page, keep the cursor that fetched it: a resume then re-reads one page, not all.
    resumeCursor: page.next ?? cursor,
    // Stream's answer without its entries, kept for the archive route: the last page's is the one
    // current when the session completes (see write-page.ts).
    ...(page.next === null ? { envelope: page.envelope } : {}),
  };
}

function pageCounts(page: ParticipantSessionsPage, rows: number): PageCounts {
  return {
    rows,
    entries: page.entries.length,
    last: page.next === null,
    totals: { participantSessions: page.totalParticipantSessions, participantDuration: page.totalParticipantDuration },
    sessionEndedAt: page.sessionEndedAt,
  };
}

function afterPage(progress: RunProgress, counted: PageCounts): RunProgress {
  return {
    rows: progress.rows + counted.rows,
    pages: progress.pages + 1,
    entriesSeen: progress.entriesSeen + counted.entries,
    cursorMoved: progress.cursorMoved || !counted.last,
    totals: counted.totals,
    sessionEndedAt: counted.sessionEndedAt ?? progress.sessionEndedAt,
  };
}

function runFacts(run: Run, progress: RunProgress): RunFacts {
  return {
    attempts: run.session.attempts,
    maxAttempts: run.options.maxAttempts,
    resumed: run.session.cursor !== null,
    rowsWritten: progress.rows,
    cursorMoved: progress.cursorMoved,
    now: run.now(),
  };
}

/** The error in the terms the decision works with. */
function describeFailure(error: Error): RunFailure {
  if (!(error instanceof StreamApiError)) return { message: error.message, class: 'retryable', resetAt: null };
  return { message: error.message, class: failureClass(error), resetAt: error.rateLimit?.resetAt ?? null };
}

function failureClass(error: StreamApiError): FailureClass {
  if (error.failure === 'client') return 'refused';
  if (!error.retryable) return 'fatal';
  if (error.failure === 'rate_limited' || error.failure === 'not_ready') return error.failure;
  return 'retryable';
}

function recorded(run: Run, progress: RunProgress, outcome: SessionOutcome): ArchiveResult {
  run.options.metrics.sessionsFinished.inc({ status: outcome.status });
  return { status: outcome.status, rows: progress.rows, detail: outcomeDetail(outcome) };
}
