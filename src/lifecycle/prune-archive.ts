import type pg from 'pg';
import { inTransaction } from '../db/transaction.ts';
import { recountArchived } from '../queue/recount.ts';
import { STATUS } from '../queue/sql.ts';

/**
 * Archive retention (ARCHIVE_RETENTION_DAYS): the participant_sessions rows and the
 * stream_responses row of call sessions that ended more than `days` ago are deleted. The
 * call_sessions row stays, with its status, Stream's totals (total_participant_sessions,
 * total_participant_duration), stats_report_ready_at and archived_at, and
 * archived_participant_sessions recounted (0 once all its rows are gone). Keeping the row is what
 * stops the archive coming back: the sweep only inserts sessions it does not know
 * (queue/enqueue-listed.ts never touches an existing row's status), and a replayed report is
 * ignored because stats_report_ready_at is kept (queue/enqueue.ts).
 *
 * A session "ended" at call_sessions.session_ended_at; without one, at the entry's joined_at (an
 * entry is never joined after its session ended), else its left_at, else when it was archived.
 * Running sessions are skipped: their worker recounts the rows when it finishes, and a count
 * changing under it would turn a complete archive into a mismatch. They are pruned by a later
 * run.
 */

/**
 * One batch of entries past the cutoff: `candidates` (and `order`, possibly empty) pick them; the
 * rest is shared. Running sessions are skipped; the delete returns per-session counts.
 */
const deleteEntriesSql = (candidates: string, order: string) => `
  with victim as (
    select p.call_session_id, p.user_session_id
      from participant_sessions p join call_sessions cs on cs.call_session_id = p.call_session_id
     where ${candidates}
       and cs.status <> '${STATUS.running}'
     ${order}
     limit $2
     for update of p skip locked
  ), deleted as (
    delete from participant_sessions p using victim v
     where p.call_session_id = v.call_session_id and p.user_session_id = v.user_session_id
    returning p.call_session_id
  )
  select call_session_id, count(*)::int as rows from deleted group by call_session_id`;

/*
 * Entries with a join time, oldest first through participant_sessions_joined_idx: joined_at is at
 * or before the session's end, so `joined_at < cutoff` is the index range that holds every
 * candidate, and only sessions straddling the cutoff (or running) are read and kept. A batch of
 * 1,000 is an index scan plus 1,000 primary-key probes of call_sessions (5.6 ms in EXPLAIN
 * ANALYZE at 500,000 entries); measured with bench/prune.ts --archive-sessions 50000, 324,810
 * entries of 32,481 sessions went in 18 s beside intake-like inserts (p99 12.2 ms, 8.7 ms
 * without), and the next, caught-up run took 27 ms. The delete and the per-session counts are
 * one statement; the recount (queue/recount.ts) is the next one, so it sees the delete.
 */
const DELETE_JOINED_SQL = deleteEntriesSql(
  `p.joined_at < now() - make_interval(days => $1)
       and coalesce(cs.session_ended_at, p.joined_at) < now() - make_interval(days => $1)`,
  'order by p.joined_at',
);

/* The rare entries Stream sent without a join time (the btree index holds the nulls too). */
const DELETE_UNJOINED_SQL = deleteEntriesSql(
  `p.joined_at is null
       and coalesce(cs.session_ended_at, p.left_at, p.archived_at) < now() - make_interval(days => $1)`,
  '',
);

/*
 * stream_responses carries Stream's session object (participants, accepted_by … keyed by user id),
 * so it goes with the entries: once the session has ended before the cutoff and holds no entry.
 * The table holds one row per session inside the retention window only, so reading it whole stays
 * small.
 */
const DELETE_RESPONSES_SQL = `
  delete from stream_responses sr
   where sr.call_session_id in (
     select r.call_session_id
       from stream_responses r join call_sessions cs on cs.call_session_id = r.call_session_id
      where coalesce(cs.session_ended_at, r.updated_at) < now() - make_interval(days => $1)
        and cs.status <> '${STATUS.running}'
        and not exists (select from participant_sessions p where p.call_session_id = r.call_session_id)
      limit $2
      for update of r skip locked)`;

export interface ArchiveBatchResult {
  readonly participantSessions: number;
  /** call_sessions whose archived_participant_sessions was recounted. */
  readonly callSessionIds: readonly string[];
}

/**
 * Deletes at most `limit` participant_sessions rows past the archive retention and recounts
 * their sessions, in one short transaction. Entries with a join time go first; the unjoined ones
 * once those are done.
 */
export async function pruneArchiveBatch(client: pg.ClientBase, days: number, limit: number): Promise<ArchiveBatchResult> {
  return inTransaction(client, async () => {
    let deleted = await client.query<{ call_session_id: string; rows: number }>(DELETE_JOINED_SQL, [days, limit]);
    if (deleted.rowCount === 0) deleted = await client.query<{ call_session_id: string; rows: number }>(DELETE_UNJOINED_SQL, [days, limit]);
    const sessions = deleted.rows.map((r) => r.call_session_id);
    await recountArchived(client, sessions);
    return { participantSessions: deleted.rows.reduce((sum, r) => sum + r.rows, 0), callSessionIds: sessions };
  });
}

/** Deletes at most `limit` stream_responses rows of sessions past the archive retention; autocommit. */
export async function pruneResponsesBatch(client: pg.ClientBase, days: number, limit: number): Promise<number> {
  const result = await client.query(DELETE_RESPONSES_SQL, [days, limit]);
  return result.rowCount ?? 0;
}
