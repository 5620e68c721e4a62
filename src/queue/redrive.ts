import type pg from 'pg';

export interface RedriveResult {
  readonly redriven: readonly string[];
}

/**
 * Moves dead sessions (all, or one) back to pending with attempts reset and the cursor cleared, so
 * the next archive run starts from the first page. `last_error` is kept until that run replaces it,
 * as the record of why the session died. Idle workers are woken on the same channel the webhook
 * intake uses.
 */
export async function redriveDeadSessions(pool: pg.Pool, options: { callSessionId?: string } = {}): Promise<RedriveResult> {
  const { rows } = await pool.query<{ call_session_id: string }>(
    `with moved as (
       update call_sessions
          set status = 'pending', attempts = 0, cursor = null, next_attempt_at = now(),
              lease_owner = null, lease_expires_at = null, updated_at = now()
        where status = 'dead' and ($1::text is null or call_session_id = $1)
        returning call_session_id)
     select call_session_id, pg_notify('attendance_sessions_due', call_session_id) from moved`,
    [options.callSessionId ?? null],
  );
  return { redriven: rows.map((r) => r.call_session_id) };
}
