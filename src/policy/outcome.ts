import type { ArchivedCount, SessionOutcome, StreamTotals } from '../queue/finish.ts';
import { STREAM_RETENTION_DAYS } from '../stream/retention.ts';
import { rateLimitedDelayMs, RETRY_POLICIES, sessionRetryDelayMs, type BackoffPolicy } from './retry.ts';

/**
 * How a failed request or write is treated, decided where the error is known (archive-session.ts):
 * - `retryable`: 408, 5xx, network, timeout, a body we cannot read, a database error, anything unforeseen
 * - `rate_limited`: 429, retried after X-RateLimit-Reset
 * - `not_ready`: 404 right after a call, retried on the gentler schedule
 * - `refused`: another 4xx; on a stored cursor before anything was written it may be a stale cursor
 * - `fatal`: retrying cannot help (401/403, Stream's `unrecoverable`)
 */
export type FailureClass = 'retryable' | 'rate_limited' | 'not_ready' | 'refused' | 'fatal';

export interface RunFailure {
  readonly message: string;
  readonly class: FailureClass;
  /** X-RateLimit-Reset of a 429, when it came with one. */
  readonly resetAt: Date | null;
}

/** What the run knows about itself when it ends, however it ends. */
export interface RunFacts {
  /** This run's attempt (the claim counted it), and the limit. */
  readonly attempts: number;
  readonly maxAttempts: number;
  /** The run began from a stored cursor, not the first page. */
  readonly resumed: boolean;
  /** Rows this run upserted. */
  readonly rowsWritten: number;
  /** The run wrote a page that moved the stored cursor on to a page not yet archived. */
  readonly cursorMoved: boolean;
  readonly now: number;
}

/** How the run ended: it paged to the end (then what is held is counted), or something failed. */
export type RunEnd =
  | {
      readonly kind: 'paged';
      readonly held: ArchivedCount;
      readonly totals: StreamTotals;
      /** Entries Stream sent in this run (not rows held: an earlier run may have written some). */
      readonly entriesSeen: number;
      readonly pastRetention: boolean;
    }
  | { readonly kind: 'failed'; readonly failure: RunFailure };

export interface DecisionPolicy {
  readonly backoff?: BackoffPolicy;
  readonly random?: () => number;
}

/**
 * Only a takeover starts past the limit: earlier runs kept ending without recording anything (a
 * worker crashing on this session, or losing its lease), so one more would not help.
 */
export function outcomeBeforeRun(attempts: number, maxAttempts: number): SessionOutcome | null {
  if (attempts <= maxAttempts) return null;
  return {
    status: 'dead',
    error: `gave up after ${attempts - 1} attempts: runs ended without a result (worker stopped or lost its lease)`,
    totals: null,
  };
}

/**
 * Done means verified: rows held = Stream's total (a summed duration that differs is noted, not
 * blocking: Stream does not document its rounding). An empty list from the first page with a
 * non-zero total past day 90 is expired, never "no attendees". Any other count is retried from
 * the first page. A failure is retried by its class, or dead when retrying cannot help.
 */
export function decideOutcome(run: RunFacts, end: RunEnd, policy: DecisionPolicy = {}): SessionOutcome {
  if (end.kind === 'failed') return outcomeOfFailure(run, end.failure, policy);
  const { held, totals } = end;
  if (held.rows === totals.participantSessions) {
    const note =
      held.durationSeconds === totals.participantDuration
        ? null
        : `summed duration_in_seconds is ${held.durationSeconds} s but Stream's total_participant_duration is ${totals.participantDuration} s`;
    return { status: 'complete', totals, note };
  }
  if (!run.resumed && end.entriesSeen === 0 && totals.participantSessions > 0 && end.pastRetention) {
    return {
      status: 'expired',
      totals,
      note: `Stream returned no participant sessions but reports ${totals.participantSessions}: its ${STREAM_RETENTION_DAYS}-day retention has passed`,
    };
  }
  const difference = held.rows - totals.participantSessions;
  const error = `holds ${held.rows} participant sessions but Stream reports ${totals.participantSessions} (${difference > 0 ? '+' : ''}${difference})`;
  return retryOrDead(run, policy, { error, class: 'retryable', resetAt: null, restart: true, totals, progressed: false });
}

function outcomeOfFailure(run: RunFacts, failure: RunFailure, policy: DecisionPolicy): SessionOutcome {
  if (failure.class === 'refused' && run.resumed && run.rowsWritten === 0) {
    // Refused on its first request: the stored cursor may have gone stale (Stream does not say
    // how long cursors live). Start over rather than give up.
    const error = `${failure.message} (on a stored cursor; restarting from the first page)`;
    return retryOrDead(run, policy, { error, class: 'retryable', resetAt: null, restart: true, totals: null, progressed: false });
  }
  if (failure.class === 'refused' || failure.class === 'fatal') return { status: 'dead', error: failure.message, totals: null };
  return retryOrDead(run, policy, {
    error: failure.message,
    class: failure.class,
    resetAt: failure.resetAt,
    restart: false,
    totals: null,
    progressed: run.cursorMoved,
  });
}

interface Retry {
  readonly error: string;
  readonly class: 'retryable' | 'rate_limited' | 'not_ready';
  readonly resetAt: Date | null;
  /** Forget the cursor: the next run pages from the first page. */
  readonly restart: boolean;
  readonly totals: StreamTotals | null;
  readonly progressed: boolean;
}

/**
 * `progressed`: the run failed after moving the cursor on. Retrying such a run is retrying "while
 * progress is made", so it gives its attempt back and is never the one that goes dead: a very
 * large session under a long flaky spell still finishes. It stays bounded: each such run moves
 * the cursor forward over a finite list, and whatever restarts from the first page (a count that
 * does not match, a refused cursor) still spends its attempt.
 */
function retryOrDead(run: RunFacts, policy: DecisionPolicy, retry: Retry): SessionOutcome {
  const { error, restart, totals } = retry;
  if (run.attempts >= run.maxAttempts && !retry.progressed) {
    return { status: 'dead', error: `gave up after ${run.attempts} attempts; last error: ${error}`, totals, restart };
  }
  const backoff = policy.backoff ?? RETRY_POLICIES.session;
  const delayMs =
    retry.class === 'rate_limited'
      ? rateLimitedDelayMs(run.attempts, retry.resetAt, run.now, backoff, policy.random)
      : sessionRetryDelayMs(run.attempts, retry.class === 'not_ready' ? 'not_ready' : 'default', backoff, policy.random);
  return { status: 'retrying', delayMs, error, restart, totals, refundAttempt: retry.progressed };
}

/** last_error as an outcome writes it (or its note). */
export function outcomeDetail(outcome: SessionOutcome): string | null {
  return outcome.status === 'retrying' || outcome.status === 'dead' ? outcome.error : outcome.note;
}
