import { archivedCount, type Queryable } from './sql.ts';

/*
 * After participant_sessions rows were deleted (archive retention, `forget --user`), their
 * sessions' archived_participant_sessions is recounted: users see what is held (finish.ts counts
 * the same way). updated_at moves so a reader polling call_sessions notices. Status, Stream's
 * totals and the lease are not touched. A separate statement from the delete, run in the same
 * transaction after it, so the count sees the delete (a CTE of the same statement would not).
 */
const RECOUNT_SQL = `
  update call_sessions cs
     set archived_participant_sessions = ${archivedCount('cs.call_session_id')},
         updated_at = now()
   where cs.call_session_id = any($1::text[])`;

/** Recounts the rows held for these sessions; returns how many call_sessions rows were updated. */
export async function recountArchived(db: Queryable, callSessionIds: readonly string[]): Promise<number> {
  if (callSessionIds.length === 0) return 0;
  const result = await db.query(RECOUNT_SQL, [callSessionIds]);
  return result.rowCount ?? 0;
}
