import { expiredUnlessVerified, STATUS, statusIn, verifiedBefore, type Queryable } from './sql.ts';

export const EXPIRED_ERROR = "expired unarchived: past retention_expires_at, Stream no longer holds this session's detail";

/*
 * Sessions past retention_expires_at that are waiting (pending, retrying) or dead can no longer be
 * archived: Stream now answers with an empty array. They become expired, with a last_error that
 * says so and keeps the error they had (why a dead session died stays visible), rather than a
 * worker later reading "no attendees" into them. One archived in full before (the same rule as
 * the worker's expire, finish.ts) goes back to complete and keeps its last_error. A running
 * session is left to its worker, which tells expired from empty itself, and a complete one is
 * already safe. No lease is held by a session in these statuses, so there is none to fence.
 */
const VERIFIED = verifiedBefore('archived_participant_sessions', 'total_participant_sessions');
const EXPIRE_OVERDUE_SQL = `
  update call_sessions
     set status = ${expiredUnlessVerified('archived_participant_sessions', 'total_participant_sessions')},
         last_error = case when ${VERIFIED} then last_error
                           else $1::text || coalesce('; last error: ' || last_error, '') end,
         updated_at = now()
   where ${statusIn('status', STATUS.pending, STATUS.retrying, STATUS.dead)}
     and retention_expires_at is not null
     and retention_expires_at < now()
  returning call_session_id, status`;

/** Expires (or completes, when verified before) every waiting or dead session past its retention. */
export async function expireOverdueSessions(db: Queryable): Promise<{ readonly expired: string[]; readonly completed: string[] }> {
  const { rows } = await db.query<{ call_session_id: string; status: string }>(EXPIRE_OVERDUE_SQL, [EXPIRED_ERROR]);
  return {
    expired: rows.filter((r) => r.status === STATUS.expired).map((r) => r.call_session_id),
    completed: rows.filter((r) => r.status === STATUS.complete).map((r) => r.call_session_id),
  };
}
