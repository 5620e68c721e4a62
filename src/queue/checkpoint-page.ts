import { LeaseLostError, type Lease } from './fence.ts';
import { holdsLease, type Queryable } from './sql.ts';

/*
 * One page, one transaction: the rows and the cursor commit together, behind the lease fence, so
 * after a crash the stored cursor never points past rows we do not hold, and a worker that lost its
 * lease writes nothing.
 *
 * The whole page is ONE statement, so one round trip and one implicit transaction: the fence
 * (the session row locked FOR NO KEY UPDATE, still 'running' under this owner, the same check as
 * fence.ts; the rows' foreign key checks take KEY SHARE on it, which that lock allows), the
 * upsert and the checkpoint. Both writes depend on the fence through an InitPlan evaluated before
 * their first row, so with the lease gone neither writes anything. Measured on 2 cores: the
 * five-statement transaction (begin, fence, upsert, checkpoint, commit) spent ~6.5 ms per page of
 * 100 of which the upsert was ~2.3 ms; see bench/RESULTS.md for the end-to-end effect.
 *
 * The upsert: the page travels as a single jsonb array and jsonb_to_recordset turns it into rows
 * (a fixed parameter count, so one prepared plan; unnest() cannot carry roles, a text[] per row).
 * On conflict every column takes excluded.*, but only when something differs, so re-archiving an
 * unchanged session rewrites no tuples.
 *
 * raw is stored lean (migrations/0005_lean_raw.sql): only what the columns do not give back
 * exactly, so excluded.raw is lean too and the no-op check compares lean to lean. A row stored
 * whole before that migration differs once, and is rewritten lean; participant_session_entry(p)
 * gives Stream's entry back from either. The page arrives with raw already lean (ingest/lean-raw.ts)
 * and is stored as sent: participant_session_lean_raw, the same form computed here per row, cost
 * 1–2 ms of Postgres time a 100-row page.
 *
 * The envelope (`session`, the totals and any top-level field Stream adds) goes to
 * stream_responses in a fourth CTE behind the same fence. The worker passes it on the last page
 * of a run only: the archive route reads it once the session is complete, which needs a run that
 * reached the last page, and a resumed run re-reads that page. Pages without it ($7 null) plan
 * the same statement and insert nothing; an unchanged envelope rewrites no tuple either.
 */
const WRITE_PAGE_SQL = `
  with fence as (
    select call_session_id from call_sessions
     where ${holdsLease('$1', '$5')}
       for no key update
  ), upserted as (
    insert into participant_sessions as p
      (call_session_id, user_session_id, call_type, call_id, user_id, joined_at, left_at,
       duration_in_seconds, publisher_type, roles, raw, archived_at)
    select $1, r.user_session_id, $2, $3, r.user_id, r.joined_at, r.left_at,
           r.duration_in_seconds, r.publisher_type, r.roles, r.raw, now()
      from jsonb_to_recordset($4::jsonb) as r(
        user_session_id text, user_id text, joined_at timestamptz, left_at timestamptz,
        duration_in_seconds integer, publisher_type text, roles text[], raw jsonb)
     where exists (select 1 from fence)
    on conflict (call_session_id, user_session_id) do update set
      call_type = excluded.call_type,
      call_id = excluded.call_id,
      user_id = excluded.user_id,
      joined_at = excluded.joined_at,
      left_at = excluded.left_at,
      duration_in_seconds = excluded.duration_in_seconds,
      publisher_type = excluded.publisher_type,
      roles = excluded.roles,
      raw = excluded.raw,
      archived_at = excluded.archived_at
    where (p.call_type, p.call_id, p.user_id, p.joined_at, p.left_at, p.duration_in_seconds, p.publisher_type, p.roles, p.raw)
          is distinct from
          (excluded.call_type, excluded.call_id, excluded.user_id, excluded.joined_at, excluded.left_at,
           excluded.duration_in_seconds, excluded.publisher_type, excluded.roles, excluded.raw)
    returning 1
  ), response as (
    insert into stream_responses as s (call_session_id, response, updated_at)
    select $1, $7::jsonb, now()
     where $7::jsonb is not null and exists (select 1 from fence)
    on conflict (call_session_id) do update set
      response = excluded.response,
      updated_at = excluded.updated_at
    where s.response is distinct from excluded.response
    returning 1
  ), checkpoint as (
    update call_sessions set cursor = $6, updated_at = now()
     where call_session_id = (select call_session_id from fence)
    returning 1
  )
  select (select count(*) from fence)::int as fenced, (select count(*) from checkpoint)::int as checkpointed`;

/** One page as the statement takes it: the entries and the envelope already as JSON text. */
export interface PageCheckpoint {
  readonly callType: string;
  readonly callId: string;
  /** The page's participant_sessions rows, one JSON array, raw in its lean form (see ingest/write-page.ts for the columns). */
  readonly rowsJson: string;
  /** Where the next run resumes if this one stops after this page. */
  readonly resumeCursor: string | null;
  /** Stream's answer without its entries, for stream_responses; null on pages that do not carry it. */
  readonly envelopeJson: string | null;
}

/** Upserts one page's rows and stores its cursor in one fenced statement; throws LeaseLostError (nothing written) if the lease is gone. */
export async function checkpointPage(db: Queryable, lease: Lease, page: PageCheckpoint): Promise<void> {
  const result = await db.query<{ fenced: number; checkpointed: number }>({
    // Named, so each connection parses and plans it once.
    name: 'write-page',
    text: WRITE_PAGE_SQL,
    values: [lease.callSessionId, page.callType, page.callId, page.rowsJson, lease.owner, page.resumeCursor, page.envelopeJson],
  });
  if (result.rows[0]?.fenced !== 1) throw new LeaseLostError(lease.callSessionId);
}
