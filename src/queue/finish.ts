import { LeaseLostError, type Lease } from './fence.ts';
import { archivedCount, expiredUnlessVerified, holdsLease, RELEASE_LEASE, STATUS, type Queryable } from './sql.ts';

/** Stream's totals for a session, as its last page reported them. */
export interface StreamTotals {
  readonly participantSessions: number;
  readonly participantDuration: number;
}

/** How an archiving run ends; each maps to one fenced statement below. */
export type SessionOutcome =
  | { readonly status: typeof STATUS.complete; readonly totals: StreamTotals; readonly note: string | null }
  | { readonly status: typeof STATUS.expired; readonly totals: StreamTotals; readonly note: string }
  | {
      readonly status: typeof STATUS.retrying;
      readonly delayMs: number;
      readonly error: string;
      /** Forget the cursor so the next run pages from the first page (counts did not match). */
      readonly restart: boolean;
      readonly totals: StreamTotals | null;
      /** The run moved the cursor on before failing: it does not count against the attempt limit. */
      readonly refundAttempt?: boolean;
    }
  | {
      readonly status: typeof STATUS.dead;
      readonly error: string;
      readonly totals: StreamTotals | null;
      /** Forget the cursor: the pages archived so far did not add up. */
      readonly restart?: boolean;
    };

export interface ArchivedCount {
  readonly rows: number;
  /** Sum of duration_in_seconds over those rows (nulls count as 0). */
  readonly durationSeconds: number;
}

/*
 * What we hold for a session: the verification step compares this with Stream's totals. Runs on
 * the primary key's leading column, inside the fenced transaction that records the outcome, so no
 * page write can land between the count and the status it decides.
 */
const COUNT_SQL = `
  select count(*)::int as rows, coalesce(sum(duration_in_seconds), 0)::float8 as duration_seconds
    from participant_sessions where call_session_id = $1`;

export async function countArchived(db: Queryable, callSessionId: string): Promise<ArchivedCount> {
  const result = await db.query<{ rows: number; duration_seconds: number }>(COUNT_SQL, [callSessionId]);
  const row = result.rows[0];
  return { rows: row?.rows ?? 0, durationSeconds: row?.duration_seconds ?? 0 };
}

// Every statement below is fenced on ($1 session, $2 lease owner, status running) and clears the
// lease; archived_participant_sessions is always recounted, so users see what is really held.
const ARCHIVED = archivedCount('$1');
const FENCE = `where ${holdsLease('$1', '$2')}`;

/* Verified: rows held = Stream's total. $5 is a note (duration mismatch) or null. */
const COMPLETE_SQL = `
  update call_sessions
     set status = '${STATUS.complete}', total_participant_sessions = $3, total_participant_duration = $4,
         archived_participant_sessions = ${ARCHIVED}, archived_at = now(), cursor = null, last_error = $5,
         ${RELEASE_LEASE}
   ${FENCE}`;

/*
 * Stream no longer has the detail (empty list, non-zero total, past day 90). Never "no attendees".
 * A session archived in full before (rows held = the total, archived_at set), then announced again
 * after its retention, stays complete: its rows were verified while Stream still had them.
 */
const EXPIRE_SQL = `
  update call_sessions
     set status = ${expiredUnlessVerified(ARCHIVED, '$3')},
         total_participant_sessions = $3, total_participant_duration = $4,
         archived_participant_sessions = ${ARCHIVED}, cursor = null, last_error = $5,
         ${RELEASE_LEASE}
   ${FENCE}`;

/*
 * Try again after $5 ms (the caller's backoff: capped exponential with full jitter, or until
 * X-RateLimit-Reset). $6 true forgets the cursor so the next run starts from the first page.
 * $8 true gives back the attempt the claim counted (the run made progress).
 */
const RETRY_SQL = `
  update call_sessions
     set status = '${STATUS.retrying}', next_attempt_at = now() + make_interval(secs => $5::float8 / 1000),
         cursor = case when $6::boolean then null else cursor end, last_error = $7,
         attempts = case when $8::boolean then greatest(attempts - 1, 0) else attempts end,
         total_participant_sessions = coalesce($3, total_participant_sessions),
         total_participant_duration = coalesce($4, total_participant_duration),
         archived_participant_sessions = ${ARCHIVED},
         ${RELEASE_LEASE}
   ${FENCE}`;

/*
 * Retrying cannot help (or the attempt limit is reached). The cursor stays as the record of how far
 * paging got, unless $6 says the pages so far cannot be trusted (counts did not match); `redrive`
 * starts every dead session from the first page either way.
 */
const DEAD_SQL = `
  update call_sessions
     set status = '${STATUS.dead}', last_error = $5, cursor = case when $6::boolean then null else cursor end,
         total_participant_sessions = coalesce($3, total_participant_sessions),
         total_participant_duration = coalesce($4, total_participant_duration),
         archived_participant_sessions = ${ARCHIVED},
         ${RELEASE_LEASE}
   ${FENCE}`;

/** Records how the run ended. Throws LeaseLostError if this worker no longer holds the lease. */
export async function finishSession(db: Queryable, lease: Lease, outcome: SessionOutcome): Promise<void> {
  const base = [lease.callSessionId, lease.owner];
  let result;
  switch (outcome.status) {
    case STATUS.complete:
      result = await db.query(COMPLETE_SQL, [...base, outcome.totals.participantSessions, outcome.totals.participantDuration, outcome.note]);
      break;
    case STATUS.expired:
      result = await db.query(EXPIRE_SQL, [...base, outcome.totals.participantSessions, outcome.totals.participantDuration, outcome.note]);
      break;
    case STATUS.retrying:
      result = await db.query(RETRY_SQL, [
        ...base,
        outcome.totals?.participantSessions ?? null,
        outcome.totals?.participantDuration ?? null,
        Math.max(0, Math.round(outcome.delayMs)),
        outcome.restart,
        outcome.error,
        outcome.refundAttempt ?? false,
      ]);
      break;
    case STATUS.dead:
      result = await db.query(DEAD_SQL, [
        ...base,
        outcome.totals?.participantSessions ?? null,
        outcome.totals?.participantDuration ?? null,
        outcome.error,
        outcome.restart ?? false,
      ]);
      break;
  }
  if (result.rowCount !== 1) throw new LeaseLostError(lease.callSessionId);
}
