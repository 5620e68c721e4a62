import type pg from 'pg';
import type { Lease } from './fence.ts';
import { holdsLease, RELEASE_LEASE, STATUS, type Queryable } from './sql.ts';

export interface ExtendLeasesResult {
  /** Still ours, lease pushed forward. */
  readonly kept: readonly string[];
  /** No longer ours: archiving them must stop at once. */
  readonly lost: readonly string[];
}

/*
 * Heartbeat: one statement for every session this worker holds, fenced on lease_owner and status.
 * A row that no longer matches (taken over after our lease lapsed, or reset by intake) is simply
 * not returned, and the caller aborts its run. updated_at is left alone: a heartbeat is not a
 * change users care about.
 */
const EXTEND_SQL = `
  update call_sessions as s
     set lease_expires_at = now() + make_interval(secs => $3)
    from unnest($1::text[], $2::text[]) as held(call_session_id, lease_owner)
   where ${holdsLease('held.call_session_id', 'held.lease_owner', 's.')}
  returning s.call_session_id`;

export async function extendLeases(
  db: Queryable,
  options: {
    readonly leases: readonly Lease[];
    readonly leaseSeconds: number;
    /** Give up on this beat after this long (a stuck connection or a user's row lock), so the next beat can run. */
    readonly timeoutMs?: number;
  },
): Promise<ExtendLeasesResult> {
  if (options.leases.length === 0) return { kept: [], lost: [] };
  const ids = options.leases.map((lease) => lease.callSessionId);
  const owners = options.leases.map((lease) => lease.owner);
  const result = await db.query<{ call_session_id: string }>({
    text: EXTEND_SQL,
    values: [ids, owners, options.leaseSeconds],
    // pg reads query_timeout per query; @types/pg does not list it.
    ...(options.timeoutMs === undefined ? {} : { query_timeout: options.timeoutMs }),
  } as pg.QueryConfig);
  const kept = new Set(result.rows.map((row) => row.call_session_id));
  return {
    kept: [...kept],
    lost: ids.filter((id) => !kept.has(id)),
  };
}

/*
 * Give a session back without it counting as a failed attempt (graceful stop): due again at once,
 * lease cleared, the attempt this run took handed back, and the cursor kept so the next worker
 * resumes where this one stopped. It goes back to 'retrying' if an earlier run had failed
 * (last_error set), else to 'pending'. Fenced like every other write.
 */
const RELEASE_SQL = `
  update call_sessions
     set status = case when last_error is null then '${STATUS.pending}' else '${STATUS.retrying}' end,
         attempts = greatest(attempts - 1, 0),
         next_attempt_at = now(),
         ${RELEASE_LEASE}
   where ${holdsLease('$1', '$2')}`;

/** True if released; false if the lease was no longer ours (nothing written). */
export async function releaseSession(db: Queryable, lease: Lease): Promise<boolean> {
  const result = await db.query(RELEASE_SQL, [lease.callSessionId, lease.owner]);
  return result.rowCount === 1;
}
