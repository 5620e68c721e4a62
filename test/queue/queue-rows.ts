import type pg from 'pg';
import type { SessionStatus } from '../../src/db/schema.ts';
import { DAY_MS, SECOND_MS } from '../../src/time.ts';
import { databaseNow, insertSessionRows, type SessionRow } from '../helpers/session-rows.ts';

const DAY_SECONDS = DAY_MS / SECOND_MS;

/** A call_sessions row for queue tests; times are given relative to now, in seconds. */
export interface QueueRowSeed {
  readonly id: string;
  readonly status?: SessionStatus;
  readonly dueInSeconds?: number;
  readonly retentionInDays?: number | null;
  readonly leaseOwner?: string | null;
  readonly leaseExpiresInSeconds?: number | null;
  readonly attempts?: number;
  readonly cursor?: string | null;
  readonly lastError?: string | null;
}

/** The shorthand for a queue row: due and lease times in seconds, retention in days, all on the database clock. */
function queueRow(seed: QueueRowSeed): SessionRow {
  const retentionInDays = seed.retentionInDays === undefined ? 80 : seed.retentionInDays;
  return {
    call_session_id: seed.id,
    call_id: seed.id,
    status: seed.status ?? 'pending',
    next_attempt_at: databaseNow(seed.dueInSeconds ?? -1),
    retention_expires_at: retentionInDays === null ? null : databaseNow(retentionInDays * DAY_SECONDS),
    lease_owner: seed.leaseOwner ?? null,
    lease_expires_at: seed.leaseExpiresInSeconds == null ? null : databaseNow(seed.leaseExpiresInSeconds),
    attempts: seed.attempts ?? 0,
    cursor: seed.cursor ?? null,
    last_error: seed.lastError ?? null,
  };
}

export async function insertQueueRow(pool: pg.Pool, seed: QueueRowSeed): Promise<void> {
  await insertSessionRows(pool, [queueRow(seed)]);
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
