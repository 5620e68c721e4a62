import { createHash } from 'node:crypto';
import type pg from 'pg';
import { SQLSTATE, sqlState } from '../db/sqlstate.ts';
import { AppError } from '../errors.ts';
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
 * That statement (checkpointPage) writes one page alone: writePage uses it. The worker sends its
 * pages with sendPage instead, two at a time: the same rows and envelope (PAGE_WRITES), with the
 * lock on the session row taken at the end rather than the start (WRITE_PAGE_IN_FLIGHT_SQL), so
 * one page's rows are written while the page before it is still being written.
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
/** The rows and the envelope, each behind the `fence` CTE: the same in both page statements. */
const PAGE_WRITES = `
  upserted as (
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
  )`;

const WRITE_PAGE_SQL = `
  with fence as (
    select call_session_id from call_sessions
     where ${holdsLease('$1', '$5')}
       for no key update
  ), ${PAGE_WRITES}, checkpoint as (
    update call_sessions set cursor = $6, updated_at = now()
     where call_session_id = (select call_session_id from fence)
    returning 1
  )
  select (select count(*) from fence)::int as fenced, (select count(*) from checkpoint)::int as checkpointed`;

/*
 * The same page with the page before it still in flight (sendPage), on a connection of its own.
 * Page k's statement takes an advisory lock of its own as it starts (pageLockKey: the run's
 * lease and k), writes its rows and envelope with no lock on the session row, then waits for page
 * k − 1's lock in shared mode, that is, for page k − 1's commit. Only then does it lock the
 * session row (the lease check, as the fence does) and store its cursor, if the stored cursor is
 * still the one its page was fetched with ($8). The row is locked and read first, and compared
 * after: under READ COMMITTED an UPDATE whose WHERE compared the cursor would not see page
 * k − 1's commit, made after this statement's snapshot, and would match nothing. If the cursor
 * is not that one (page k − 1 rolled back, or had not taken its lock yet when this one asked),
 * or the lease is gone by then, participant_sessions_page_not_written() (migration 0008) raises,
 * and its error rolls this page's rows back with it.
 */
const WRITE_PAGE_IN_FLIGHT_SQL = `
  with started as (
    select pg_advisory_xact_lock($9::bigint)
  ), fence as (
    select call_session_id from call_sessions
     where ${holdsLease('$1', '$5')} and (select count(*) from started) = 1
  ), ${PAGE_WRITES}, ordered as (
    select pg_advisory_xact_lock_shared($10::bigint)
      from (select count(*) from upserted) u(n), (select count(*) from response) r(n)
     where u.n >= 0 and r.n >= 0
  ), locked as (
    select cursor from call_sessions
     where ${holdsLease('$1', '$5')} and (select count(*) from ordered) = 1
       for no key update
  ), checkpoint as (
    update call_sessions set cursor = $6, updated_at = now()
     where call_session_id = $1 and exists (select 1 from locked where cursor is not distinct from $8)
    returning 1
  )
  select case when (select count(*) from checkpoint) = 1 then 1
              else participant_sessions_page_not_written($1, (select count(*) from locked) = 1) end as checkpointed`;

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
    values: pageValues(lease, page),
  });
  if (result.rows[0]?.fenced !== 1) throw new LeaseLostError(lease.callSessionId);
}

/** $1–$7 of both page statements. */
function pageValues(lease: Lease, page: PageCheckpoint): unknown[] {
  return [lease.callSessionId, page.callType, page.callId, page.rowsJson, lease.owner, page.resumeCursor, page.envelopeJson];
}

/** Where a page sent with the page before it in flight stands in its run. */
export interface PagePosition {
  /** The cursor the page was fetched with: what the page before it stores, or the run's start. */
  readonly fetchedWith: string | null;
  /** 0 for the run's first page, then 1, 2, …: the page waits for the lock of page `sequence − 1`. */
  readonly sequence: number;
}

/**
 * Page `sequence`'s lock in its run, a transaction-level advisory lock: the first 64 bits of
 * SHA-256 of the session, the lease token (one per claim, so a run never waits for the pages of
 * another run of the session) and `sequence`. One matching a fixed key of db/advisory-lock.ts is as
 * likely as a SHA-256 collision.
 */
export function pageLockKey(lease: Lease, sequence: number): string {
  return createHash('sha256').update(`${lease.callSessionId}\0${lease.owner}\0${sequence}`).digest().readBigInt64BE(0).toString();
}

/**
 * Sends one page's statement (WRITE_PAGE_IN_FLIGHT_SQL) on a connection taken for it, and
 * returns once the statement is on its way, with the promise of its outcome: void once the rows
 * and the cursor committed; LeaseLostError or PageOutOfOrderError with nothing written; or the
 * database's error. Awaiting sendPage for page k before sending page k + 1 sends the two in that
 * order, on two connections, so page k's statement has taken its lock well before page k + 1's
 * asks for it. Through pool.query the order is not held: a later page can take an idle
 * connection while the earlier one is still opening its own.
 *
 * The statement runs in callback form: on Node 24, the same statement through the promise
 * client.query returns, on a connection from pool.connect(), had V8 promote ~7 MB to the old
 * generation at every scavenge during a 100,000-entry session, against ~70 kB, and peak RSS rose
 * by ~100 MiB (bench/RESULTS.md, "Two pages in flight, kept", 2026-12-01).
 */
export async function sendPage(pool: pg.Pool, lease: Lease, page: PageCheckpoint, position: PagePosition): Promise<{ readonly written: Promise<void> }> {
  const client = await pool.connect();
  const written = new Promise<void>((resolve, reject) => {
    client.query(
      {
        name: 'write-page-in-flight',
        text: WRITE_PAGE_IN_FLIGHT_SQL,
        values: [...pageValues(lease, page), position.fetchedWith, pageLockKey(lease, position.sequence), pageLockKey(lease, position.sequence - 1)],
      },
      (error) => {
        // An error Postgres answered leaves the connection usable (the statement's implicit
        // transaction rolled back); any other (a broken connection) is given back to be discarded,
        // as pool.query does.
        const state = error ? sqlState(error) : undefined;
        client.release(error && state === undefined ? error : undefined);
        if (!error) resolve();
        else if (state === SQLSTATE.pageOutOfOrder) reject(new PageOutOfOrderError(lease.callSessionId));
        else if (state === SQLSTATE.pageLeaseLost) reject(new LeaseLostError(lease.callSessionId));
        else reject(error);
      },
    );
  });
  // Its failure is raised where the run awaits it, not as an unhandled rejection meanwhile.
  written.catch(() => undefined);
  return { written };
}

/** A page sent while the page before it was in flight found that page's cursor not stored: nothing of it was written. */
export class PageOutOfOrderError extends AppError {
  constructor(callSessionId: string) {
    super('PAGE_OUT_OF_ORDER', `page of call session ${callSessionId} was not written: the page before it had not stored its cursor`, {
      retryable: true,
    });
    this.name = 'PageOutOfOrderError';
  }
}
