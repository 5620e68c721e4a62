import type pg from 'pg';
import { SESSION_STATUSES, type SessionStatus } from '../db/schema.ts';
import { AT_RISK, STATUS, statusIn } from './sql.ts';

export interface QueueStats {
  readonly counts: Record<SessionStatus, number>;
  /** Seconds the longest-waiting due session (pending/retrying, next_attempt_at passed) has waited; null if none. */
  readonly oldestDueSeconds: number | null;
  readonly oldestPendingSince: Date | null;
  readonly retrying: readonly RetryingSession[];
  readonly retryingCount: number;
  readonly atRisk: readonly AtRiskSession[];
  readonly atRiskCount: number;
  readonly dead: readonly DeadSession[];
  readonly deadCount: number;
}

export interface AtRiskSession {
  readonly callSessionId: string;
  readonly callCid: string;
  readonly status: SessionStatus;
  readonly retentionExpiresAt: Date;
  readonly lastError: string | null;
}

export interface RetryingSession {
  readonly callSessionId: string;
  readonly callCid: string;
  readonly attempts: number;
  readonly lastError: string | null;
  readonly nextAttemptAt: Date;
  readonly retentionExpiresAt: Date | null;
}

export interface DeadSession {
  readonly callSessionId: string;
  readonly callCid: string;
  readonly attempts: number;
  readonly lastError: string | null;
  readonly updatedAt: Date;
}

// Sessions that may still be due, at risk or waiting: everything the second half of the summary
// looks at. Listed (not `not in`) so the claim index's leading status column can serve it.
const OPEN_STATUSES = SESSION_STATUSES.filter((s) => s !== STATUS.complete && s !== STATUS.expired);

/**
 * What `status` prints and `/metrics` exports (refreshed every 15 s by the gauge refresher). Four
 * statements; the lists are capped so a large backlog cannot make a read slow. The counts by status
 * read every row (a seq or index-only scan); the rest reads only open sessions, through the claim
 * index. At 1M rows (97% complete) the first statement took 447 ms before and the whole report
 * now takes 170 ms (bench/metrics-scrape.ts, same run).
 */
export async function readQueueStats(pool: pg.Pool, options: { listLimit?: number } = {}): Promise<QueueStats> {
  const limit = options.listLimit ?? 20;
  const summary = await pool.query<{
    status: SessionStatus | null;
    n: number;
    oldest_due_seconds: number | null;
    oldest_pending: Date | null;
    at_risk: number;
  }>(
    `select status, count(*)::int as n,
            null::float8 as oldest_due_seconds, null::timestamptz as oldest_pending, 0 as at_risk
       from call_sessions group by status
     union all
     select null, 0,
            extract(epoch from now() - min(next_attempt_at) filter (where ${statusIn('status', STATUS.pending, STATUS.retrying)} and next_attempt_at <= now()))::float8,
            min(created_at) filter (where status = '${STATUS.pending}'),
            (count(*) filter (where ${AT_RISK}))::int
       from call_sessions where status = any($1::text[])`,
    [OPEN_STATUSES],
  );
  const counts = Object.fromEntries(SESSION_STATUSES.map((s) => [s, 0])) as Record<SessionStatus, number>;
  let oldestDueSeconds: number | null = null;
  let oldestPendingSince: Date | null = null;
  let atRiskCount = 0;
  for (const row of summary.rows) {
    if (row.status !== null) counts[row.status] = row.n;
    else {
      oldestDueSeconds = row.oldest_due_seconds === null ? null : Math.max(0, row.oldest_due_seconds);
      oldestPendingSince = row.oldest_pending;
      atRiskCount = row.at_risk;
    }
  }
  const atRisk = await pool.query<{ call_session_id: string; call_cid: string; status: SessionStatus; retention_expires_at: Date; last_error: string | null }>(
    `select call_session_id, call_cid, status, retention_expires_at, last_error
       from call_sessions
      where ${AT_RISK}
      order by retention_expires_at
      limit $1`,
    [limit],
  );
  const retrying = await pool.query<{
    call_session_id: string;
    call_cid: string;
    attempts: number;
    last_error: string | null;
    next_attempt_at: Date;
    retention_expires_at: Date | null;
  }>(
    `select call_session_id, call_cid, attempts, last_error, next_attempt_at, retention_expires_at
       from call_sessions where status = '${STATUS.retrying}' order by next_attempt_at limit $1`,
    [limit],
  );
  const dead = await pool.query<{ call_session_id: string; call_cid: string; attempts: number; last_error: string | null; updated_at: Date }>(
    `select call_session_id, call_cid, attempts, last_error, updated_at
       from call_sessions where status = '${STATUS.dead}' order by updated_at desc limit $1`,
    [limit],
  );
  return {
    counts,
    oldestDueSeconds,
    oldestPendingSince,
    retryingCount: counts.retrying,
    retrying: retrying.rows.map((r) => ({
      callSessionId: r.call_session_id,
      callCid: r.call_cid,
      attempts: r.attempts,
      lastError: r.last_error,
      nextAttemptAt: r.next_attempt_at,
      retentionExpiresAt: r.retention_expires_at,
    })),
    atRiskCount,
    atRisk: atRisk.rows.map((r) => ({
      callSessionId: r.call_session_id,
      callCid: r.call_cid,
      status: r.status,
      retentionExpiresAt: r.retention_expires_at,
      lastError: r.last_error,
    })),
    deadCount: counts.dead,
    dead: dead.rows.map((r) => ({
      callSessionId: r.call_session_id,
      callCid: r.call_cid,
      attempts: r.attempts,
      lastError: r.last_error,
      updatedAt: r.updated_at,
    })),
  };
}
