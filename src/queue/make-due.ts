import { notifyDue, STATUS, type Queryable } from './sql.ts';

/*
 * A session known only from call.session_ended waits an hour for call.stats_report_ready
 * (enqueue.ts). When a call_stats listing shows its report exists (the listing's rows carry
 * generated_at) the wait ends: still pending, no report time recorded, due later → due now.
 * Nothing else is touched (a retrying session keeps its backoff, a running one its lease). One
 * NOTIFY per session made due goes out with the caller's commit.
 */
const MAKE_REPORTED_DUE_SQL = `
  with moved as (
    update call_sessions
       set next_attempt_at = now(), updated_at = now()
     where call_session_id = any($1::text[])
       and status = '${STATUS.pending}'
       and stats_report_ready_at is null
       and next_attempt_at > now()
    returning call_session_id)
  select call_session_id, ${notifyDue('call_session_id')} from moved`;

/** Makes the listed sessions that still wait for a report event due now; returns their ids. */
export async function makeReportedSessionsDue(db: Queryable, callSessionIds: readonly string[]): Promise<string[]> {
  if (callSessionIds.length === 0) return [];
  const { rows } = await db.query<{ call_session_id: string }>(MAKE_REPORTED_DUE_SQL, [callSessionIds]);
  return rows.map((r) => r.call_session_id);
}
