import type pg from 'pg';

export interface SessionRow {
  call_session_id: string;
  call_type?: string;
  call_id?: string;
  status?: string;
  attempts?: number;
  last_error?: string | null;
  retention_expires_at?: Date | null;
  next_attempt_at?: Date;
  created_at?: Date;
}

/** Inserts call_sessions rows directly, for tests of what reads the queue. */
export async function insertSessions(pool: pg.Pool, rows: readonly SessionRow[]): Promise<void> {
  for (const row of rows) {
    const type = row.call_type ?? 'default';
    const id = row.call_id ?? `call-${row.call_session_id}`;
    await pool.query(
      `insert into call_sessions (call_session_id, call_type, call_id, call_cid, status, attempts, last_error,
                                  retention_expires_at, next_attempt_at, created_at)
       values ($1, $2, $3, $2 || ':' || $3, $4, $5, $6, $7, coalesce($8, now()), coalesce($9, now()))`,
      [row.call_session_id, type, id, row.status ?? 'pending', row.attempts ?? 0, row.last_error ?? null,
        row.retention_expires_at ?? null, row.next_attempt_at ?? null, row.created_at ?? null],
    );
  }
}

export const DAY_MS = 86_400_000;
export const daysFromNow = (days: number): Date => new Date(Date.now() + days * DAY_MS);
