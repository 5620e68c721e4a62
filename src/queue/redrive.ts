import type pg from 'pg';
import { notifyDue, RELEASE_LEASE, STATUS } from './sql.ts';

export interface RedriveResult {
  readonly redriven: readonly string[];
}

/*
 * Dead sessions (all, or the one in $1) go back to pending with attempts reset and the cursor
 * cleared, so the next archive run starts from the first page. last_error is kept until that run
 * replaces it, as the record of why the session died. Idle workers are woken on the channel the
 * webhook intake uses, one notification per session, at commit.
 */
const REDRIVE_SQL = `
  with moved as (
    update call_sessions
       set status = '${STATUS.pending}', attempts = 0, cursor = null, next_attempt_at = now(),
           ${RELEASE_LEASE}
     where status = '${STATUS.dead}' and ($1::text is null or call_session_id = $1)
    returning call_session_id)
  select call_session_id, ${notifyDue('call_session_id')} from moved`;

/** Moves dead sessions (all, or one) back to pending; returns the ids moved. */
export async function redriveDeadSessions(pool: pg.Pool, options: { callSessionId?: string } = {}): Promise<RedriveResult> {
  const { rows } = await pool.query<{ call_session_id: string }>(REDRIVE_SQL, [options.callSessionId ?? null]);
  return { redriven: rows.map((r) => r.call_session_id) };
}
