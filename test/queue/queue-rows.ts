import type pg from 'pg';

/** A call_sessions row for queue tests; times are given relative to now, in seconds. */
export interface QueueRowSeed {
  readonly id: string;
  readonly status?: 'pending' | 'running' | 'complete' | 'retrying' | 'dead' | 'expired';
  readonly dueInSeconds?: number;
  readonly retentionInDays?: number | null;
  readonly leaseOwner?: string | null;
  readonly leaseExpiresInSeconds?: number | null;
  readonly attempts?: number;
  readonly cursor?: string | null;
  readonly lastError?: string | null;
}

export async function insertQueueRow(pool: pg.Pool, seed: QueueRowSeed): Promise<void> {
  await pool.query(
    `insert into call_sessions (call_session_id, call_type, call_id, call_cid, status, next_attempt_at,
       retention_expires_at, lease_owner, lease_expires_at, attempts, cursor, last_error)
     values ($1, 'default', $1, 'default:' || $1, $2, now() + make_interval(secs => $3),
       case when $4::float8 is null then null else now() + make_interval(days => $4::int) end,
       $5, case when $6::float8 is null then null else now() + make_interval(secs => $6) end, $7, $8, $9)`,
    [
      seed.id,
      seed.status ?? 'pending',
      seed.dueInSeconds ?? -1,
      seed.retentionInDays === undefined ? 80 : seed.retentionInDays,
      seed.leaseOwner ?? null,
      seed.leaseExpiresInSeconds ?? null,
      seed.attempts ?? 0,
      seed.cursor ?? null,
      seed.lastError ?? null,
    ],
  );
}

export interface QueueRow {
  call_session_id: string;
  status: string;
  attempts: number;
  lease_owner: string | null;
  lease_expires_at: Date | null;
  next_attempt_at: Date;
  cursor: string | null;
  last_error: string | null;
  total_participant_sessions: number | null;
  total_participant_duration: number | null;
  archived_participant_sessions: number;
  archived_at: Date | null;
  updated_at: Date;
  /** Seconds from now (database clock) to next_attempt_at / lease_expires_at. */
  due_in: number;
  lease_in: number | null;
}

export async function readQueueRow(pool: pg.Pool, id: string): Promise<QueueRow> {
  const result = await pool.query<QueueRow>(
    `select *, extract(epoch from next_attempt_at - now())::float8 as due_in,
            extract(epoch from lease_expires_at - now())::float8 as lease_in
       from call_sessions where call_session_id = $1`,
    [id],
  );
  const row = result.rows[0];
  if (!row) throw new Error(`no call_sessions row ${id}`);
  return row;
}

export async function clearQueue(pool: pg.Pool): Promise<void> {
  await pool.query('truncate participant_sessions, stream_responses, call_sessions');
}

/** Adds `count` participant rows to a session (the archive as a worker would have left it). */
export async function insertParticipantRows(pool: pg.Pool, id: string, count: number, durationEach = 60): Promise<void> {
  await pool.query(
    `insert into participant_sessions (call_session_id, user_session_id, call_type, call_id, user_id,
       duration_in_seconds, publisher_type, raw)
     select $1, 'us-' || g, 'default', $1, 'user-' || g, $3, 'webrtc', '{}'::jsonb from generate_series(1, $2) g`,
    [id, count, durationEach],
  );
}
