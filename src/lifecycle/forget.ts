import { createHash } from 'node:crypto';
import type pg from 'pg';
import { inTransaction } from '../db/transaction.ts';
import { recountArchived } from '../queue/recount.ts';
import { holdRollupLock, refreshRollups } from '../rollup/refresh.ts';

/** What a scrubbed string becomes in stored JSON: a string, so every payload stays valid JSON. */
export const ERASED_PLACEHOLDER = '[erased]';

export interface ForgetCounts {
  readonly participantSessions: number;
  /** call_sessions whose archived_participant_sessions was recounted. */
  readonly callSessions: number;
  readonly webhookEvents: number;
  readonly streamResponses: number;
}

export interface ForgetResult extends ForgetCounts {
  /** Hex SHA-256 of the user id: what the audit row and logs name instead of the id. */
  readonly userIdSha256: string;
  /** An erasure_log row was written (something was removed, and not a dry run). */
  readonly logged: boolean;
}

export function userIdDigest(userId: string): string {
  return createHash('sha256').update(userId, 'utf8').digest('hex');
}

/*
 * Scrubbing stored JSON: every string equal to the id, as a value or as a key, anywhere in the
 * document, becomes "[erased]". Done on jsonb's text form, where such a string is exactly the JSON
 * literal of the id ($1 = JSON.stringify(id): Postgres escapes the same characters JSON.stringify
 * does, `"`, `\` and control characters, and nothing else). Replacing one quoted literal by another
 * keeps the document valid, and the cast back to jsonb keeps every other value exact (numbers
 * never pass through a JS number). A literal inside a longer string can only match bounded by
 * escaped quotes (`\"id\"`), i.e. the id quoted inside some text: erasing that too is wanted.
 * No index can find a value anywhere in a document, so each table is read whole: the inbox is
 * bounded by WEBHOOK_EVENTS_RETENTION_DAYS, stream_responses holds one small row per session.
 * Measured (bench/prune.ts --forget, 110,000 events of ~1.3 KiB): 0.5 s to count, 0.7 s to erase.
 * The `<>` keeps an id equal to the placeholder from counting rows it does not change.
 */
const SCRUBBED = (column: string) => `replace(${column}::text, $1, $2)`;
const HOLDS_ID = (column: string) => `strpos(${column}::text, $1) > 0 and ${SCRUBBED(column)} <> ${column}::text`;

const SCRUB_EVENTS_SQL = `update webhook_events set payload = ${SCRUBBED('payload')}::jsonb where ${HOLDS_ID('payload')}`;
const SCRUB_RESPONSES_SQL = `update stream_responses set response = ${SCRUBBED('response')}::jsonb where ${HOLDS_ID('response')}`;
const COUNT_EVENTS_SQL = `select count(*)::int as n from webhook_events where ${HOLDS_ID('payload')}`;
const COUNT_RESPONSES_SQL = `select count(*)::int as n from stream_responses where ${HOLDS_ID('response')}`;

/* The user's entries go whole: the id is in user_id and raw, and roles belong to them alone. */
const DELETE_ENTRIES_SQL = `
  with deleted as (delete from participant_sessions where user_id = $1 returning call_session_id)
  select call_session_id, count(*)::int as rows from deleted group by call_session_id`;
const COUNT_ENTRIES_SQL = `
  select call_session_id, count(*)::int as rows from participant_sessions where user_id = $1 group by call_session_id`;

/*
 * The recount (queue/recount.ts, shared with the archive prune) is a separate statement from the
 * delete, so the count sees it. Stream's totals (total_participant_sessions,
 * total_participant_duration) stay Stream's: the archive now holds fewer rows than Stream
 * reported, and says so.
 */

const AUDIT_SQL = `
  insert into erasure_log (user_id_sha256, participant_sessions_deleted, webhook_events_scrubbed, call_sessions_adjusted)
  values ($1, $2, $3, $4)`;

/**
 * Erases one user: deletes their participant_sessions rows, recounts the sessions those belonged
 * to, scrubs the id out of every stored webhook payload and Stream response, and leaves one
 * erasure_log row naming the user by SHA-256 only: all in one transaction, so it happens whole or
 * not at all. Idempotent: a second run finds nothing, changes nothing and writes no audit row.
 * `dryRun` only counts (plain reads, no locks taken, nothing written).
 */
export async function forgetUser(client: pg.ClientBase, userId: string, options: { dryRun?: boolean } = {}): Promise<ForgetResult> {
  const userIdSha256 = userIdDigest(userId);
  const literal = JSON.stringify(userId);
  const placeholder = JSON.stringify(ERASED_PLACEHOLDER);
  if (options.dryRun) {
    await client.query('begin isolation level repeatable read read only');
    try {
      const entries = await client.query<{ call_session_id: string; rows: number }>(COUNT_ENTRIES_SQL, [userId]);
      const events = await client.query<{ n: number }>(COUNT_EVENTS_SQL, [literal, placeholder]);
      const responses = await client.query<{ n: number }>(COUNT_RESPONSES_SQL, [literal, placeholder]);
      await client.query('commit');
      return {
        userIdSha256,
        logged: false,
        participantSessions: entries.rows.reduce((sum, r) => sum + r.rows, 0),
        callSessions: entries.rows.length,
        webhookEvents: events.rows[0]?.n ?? 0,
        streamResponses: responses.rows[0]?.n ?? 0,
      };
    } catch (error) {
      await client.query('rollback').catch(() => undefined);
      throw error;
    }
  }

  return inTransaction(client, async () => {
    // First: the refresh at the end waits on the rollup marks the delete takes (rollup/refresh.ts).
    await holdRollupLock(client);
    // The long scans first, the call_sessions rows last: a lock on a session's row holds up intake's
    // upsert for that session until the commit, so it is taken just before it.
    const events = (await client.query(SCRUB_EVENTS_SQL, [literal, placeholder])).rowCount ?? 0;
    const responses = (await client.query(SCRUB_RESPONSES_SQL, [literal, placeholder])).rowCount ?? 0;
    const entries = await client.query<{ call_session_id: string; rows: number }>(DELETE_ENTRIES_SQL, [userId]);
    const sessions = entries.rows.map((r) => r.call_session_id);
    const adjusted = await recountArchived(client, sessions);
    // The user's id leaves the rollups (attendance_rollup, monthly_user_attendance, daily_call_type_users) in this transaction too.
    await refreshRollups(client, sessions);
    const participantSessions = entries.rows.reduce((sum, r) => sum + r.rows, 0);
    const logged = participantSessions + events + responses > 0;
    if (logged) await client.query(AUDIT_SQL, [userIdSha256, participantSessions, events, adjusted]);
    return { userIdSha256, logged, participantSessions, callSessions: adjusted, webhookEvents: events, streamResponses: responses };
  });
}
