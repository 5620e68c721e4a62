import type { Lease } from './fence.ts';
import { leaseLapsed, STATUS, statusIn, type Queryable } from './sql.ts';

/** A session this worker now holds the lease on. */
export interface ClaimedSession {
  readonly callSessionId: string;
  readonly callType: string;
  readonly callId: string;
  /** Counting this run. */
  readonly attempts: number;
  /** Where the last run stopped (a stored `next`), or null to start from the first page. */
  readonly cursor: string | null;
  readonly sessionEndedAt: Date | null;
  readonly retentionExpiresAt: Date | null;
  readonly leaseExpiresAt: Date;
  /** True when the session was 'running' under a lease that had lapsed. */
  readonly takenOver: boolean;
  /** This claim's lease token (stored in lease_owner): the fence every write of this run checks. */
  readonly leaseOwner: string;
}

/** The lease a claim holds: what every write of its run is fenced by. */
export function leaseOf(session: ClaimedSession): Lease {
  return { callSessionId: session.callSessionId, owner: session.leaseOwner };
}

export interface ClaimOptions {
  readonly workerId: string;
  /** Free slots: at most this many sessions are claimed. */
  readonly limit: number;
  readonly leaseSeconds: number;
  /** Sessions this worker is still running: never claimed again while their old run is alive. */
  readonly exclude?: readonly string[];
}

/*
 * Claim up to $2 sessions in one statement.
 *
 * Due means: pending or retrying with next_attempt_at passed, or running under a lease that has
 * lapsed (its worker died; heartbeats every 10 s renew a 30 s lease, so a dead worker's session is
 * taken over within ~30 s plus one poll interval). Soonest retention_expires_at first, because Stream
 * empties a session's detail 90 days after it ended; unknown expiry last; then the longest waiting.
 *
 * FOR UPDATE SKIP LOCKED: concurrent claimers each take different rows and never wait on each
 * other, and a row locked by a worker's in-flight page transaction is skipped, so a session is only
 * ever claimed while nobody is writing it. attempts counts claims, so a session whose run keeps
 * killing its worker still reaches the attempt limit.
 *
 * lease_owner names the claim, not the process: the worker id plus a random token. So when one
 * process claims a session again (intake reset it while a run was paging it, or its own lease
 * lapsed), the older run's writes fail the fence like any other stale lease; and the process
 * never claims a session whose previous run it still holds ($4).
 */
const CLAIM_SQL = `
  with due as (
    select call_session_id, status as previous_status
      from call_sessions
     where ((${statusIn('status', STATUS.pending, STATUS.retrying)} and next_attempt_at <= now())
         or (${leaseLapsed()}))
       and call_session_id <> all($4::text[])
     order by retention_expires_at asc nulls last, next_attempt_at asc
     limit $2
     for update skip locked
  )
  update call_sessions as s
     set status = '${STATUS.running}',
         lease_owner = $1 || '/' || gen_random_uuid(),
         lease_expires_at = now() + make_interval(secs => $3),
         attempts = s.attempts + 1,
         updated_at = now()
    from due
   where s.call_session_id = due.call_session_id
  returning s.call_session_id, s.call_type, s.call_id, s.attempts, s.cursor, s.session_ended_at,
            s.retention_expires_at, s.lease_expires_at, s.lease_owner, due.previous_status = '${STATUS.running}' as taken_over`;

interface ClaimRow {
  call_session_id: string;
  call_type: string;
  call_id: string;
  attempts: number;
  cursor: string | null;
  session_ended_at: Date | null;
  retention_expires_at: Date | null;
  lease_expires_at: Date;
  lease_owner: string;
  taken_over: boolean;
}

/** Claims due sessions for `workerId`, most urgent first; an empty list when nothing is due. */
export async function claimSessions(db: Queryable, options: ClaimOptions): Promise<ClaimedSession[]> {
  if (options.limit <= 0) return [];
  const result = await db.query<ClaimRow>(CLAIM_SQL, [options.workerId, options.limit, options.leaseSeconds, options.exclude ?? []]);
  // UPDATE … RETURNING does not keep the CTE's order.
  const rows = [...result.rows].sort((a, b) => (a.retention_expires_at?.getTime() ?? Infinity) - (b.retention_expires_at?.getTime() ?? Infinity));
  return rows.map((row) => ({
    callSessionId: row.call_session_id,
    callType: row.call_type,
    callId: row.call_id,
    attempts: row.attempts,
    cursor: row.cursor,
    sessionEndedAt: row.session_ended_at,
    retentionExpiresAt: row.retention_expires_at,
    leaseExpiresAt: row.lease_expires_at,
    takenOver: row.taken_over,
    leaseOwner: row.lease_owner,
  }));
}
