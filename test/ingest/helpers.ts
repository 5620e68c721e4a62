import type pg from 'pg';
import { expect } from 'vitest';
import { createLogger, type Logger } from '../../src/logger.ts';
import { retentionExpiresAt } from '../../src/stream/retention.ts';
import type { SimSession } from '../../tools/simulator/generate.ts';
import { participantJson, type MissingFieldStyle, type TimestampFormat } from '../../tools/simulator/wire.ts';
import { databaseNow, insertSessionRows } from '../helpers/session-rows.ts';

/** Makes a simulator session due the way intake would: a pending row, due now, expiring 90 days after it ended. */
export async function enqueueSimSession(pool: pg.Pool, session: SimSession, options: { dueInSeconds?: number } = {}): Promise<void> {
  await insertSessionRows(pool, [
    {
      call_session_id: session.callSessionId,
      call_type: session.callType,
      call_id: session.callId,
      status: 'pending',
      next_attempt_at: databaseNow(options.dueInSeconds ?? 0),
      session_ended_at: session.endedAt,
      retention_expires_at: retentionExpiresAt(session.endedAt),
    },
  ]);
}

interface ArchivedRow {
  call_session_id: string;
  user_session_id: string;
  call_type: string;
  call_id: string;
  user_id: string;
  joined_at: Date | null;
  left_at: Date | null;
  duration_in_seconds: number | null;
  publisher_type: string;
  roles: string[];
  raw: Record<string, unknown>;
}

/**
 * The archive of `session` equals the simulator's ground truth, field by field: one row per entry,
 * none missing, none extra, every column as Stream sent it and the entry (participant_session_entry)
 * exactly the wire entry.
 */
export async function expectArchiveMatches(
  pool: pg.Pool,
  session: SimSession,
  wire: { format?: TimestampFormat; missing?: MissingFieldStyle } = {},
): Promise<void> {
  const result = await pool.query<ArchivedRow>(
    `select call_session_id, user_session_id, call_type, call_id, user_id, joined_at, left_at,
            duration_in_seconds, publisher_type, roles, participant_session_entry(p) as raw
       from participant_sessions p where call_session_id = $1 order by user_session_id collate "C"`,
    [session.callSessionId],
  );
  const expected = [...session.participants].sort((a, b) => (a.user_session_id < b.user_session_id ? -1 : a.user_session_id > b.user_session_id ? 1 : 0));
  expect(result.rows.length).toBe(expected.length);
  const mismatches: string[] = [];
  expected.forEach((p, i) => {
    const row = result.rows[i];
    if (!row) return;
    const want = {
      call_session_id: session.callSessionId,
      user_session_id: p.user_session_id,
      call_type: session.callType,
      call_id: session.callId,
      user_id: p.user_id,
      joined_at: p.joined_at?.getTime() ?? null,
      left_at: p.left_at?.getTime() ?? null,
      duration_in_seconds: p.duration_in_seconds,
      publisher_type: p.publisher_type,
      roles: p.roles,
      raw: JSON.parse(participantJson(p, wire.format ?? 'rfc3339', wire.missing ?? 'omit')) as unknown,
    };
    const got = { ...row, joined_at: row.joined_at?.getTime() ?? null, left_at: row.left_at?.getTime() ?? null };
    try {
      expect(got).toEqual(want);
    } catch {
      if (mismatches.length < 3) mismatches.push(`${p.user_session_id}: got ${JSON.stringify(got)} want ${JSON.stringify(want)}`);
    }
  });
  expect(mismatches).toEqual([]);
}

/** Polls until `check` returns a value (not undefined/false), or fails after `timeoutMs`. */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined | false>, timeoutMs = 15_000, everyMs = 25): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}

export function quietLogger(): Logger {
  return createLogger({ level: process.env.TEST_LOG_LEVEL === undefined ? 'silent' : (process.env.TEST_LOG_LEVEL as 'debug'), pretty: false });
}

/** Fast schedules for tests: seconds become tens of milliseconds. */
export const FAST_BACKOFF = {
  baseMs: 20,
  capMs: 100,
  floorShare: 0.2,
  notReadyBaseMs: 50,
  notReadyCapMs: 200,
  rateLimitJitterMs: 20,
  maxResetWaitMs: 200,
} as const;
export const FAST_PAGE_RETRY = { retries: 4, rateLimitedRetries: 5, baseMs: 10, capMs: 80 } as const;
