import type pg from 'pg';
import { withPoolTransaction } from '../db/transaction.ts';
import { leaseLive } from '../queue/sql.ts';

/*
 * The rollups (migration 0006_attendance_rollups, documented in docs/sql.md "Rollups") are kept by
 * the database itself: a trigger marks in rollup_pending every session whose participant_sessions
 * rows a statement changed, and attendance_rollup_refresh(sessions) recomputes marked sessions and
 * unmarks them. The views read the rollups only for sessions not marked, so they are exact at every
 * moment; what this module decides is only *when* marked sessions are recomputed:
 * - `attendance forget`, inside the erasure's own transaction (lifecycle/forget.ts), so the user's
 *   id leaves the report tables together with their entries;
 * - the sweep below, for everything else (sessions the worker archived, pruned sessions, rows
 *   written by hand, the archive as it was before the migration), every ROLLUP_SWEEP_INTERVAL_MS.
 *
 * The worker does not refresh at the end of its runs: a session of 25 entries refreshed alone took
 * 3.6–6.1 ms, while the sweep, 100 sessions a statement, rolled up a generated 1M archive at
 * 0.87 ms a session (42.6 s for 48,982; bench/RESULTS.md, 00:23), so batching is cheaper per
 * session; and a run's pages no longer share the cores with refreshes of the sessions archived
 * just before them. The rollups of a run's rows are brought up to date within
 * one sweep interval of its end (the archive bench's sweep: 15–25 µs an entry).
 */

type Queryable = Pick<pg.ClientBase, 'query'>;

/** Sessions recomputed per statement by the sweep: one short transaction each. */
export const ROLLUP_SWEEP_BATCH = 100;

/**
 * Recomputes the rollups of these sessions from their rows (marked or not) and unmarks those no
 * statement marked again meanwhile; returns how many it unmarked. Takes the rollup lock.
 */
export async function refreshRollups(db: Queryable, callSessionIds: readonly string[]): Promise<number> {
  if (callSessionIds.length === 0) return 0;
  const { rows } = await db.query<{ unmarked: number }>('select attendance_rollup_refresh($1::text[]) as unmarked', [callSessionIds]);
  return rows[0]?.unmarked ?? 0;
}

/**
 * The first statement of a transaction that changes participant_sessions rows and then refreshes
 * their sessions before it commits (an erasure): a refresh waits on the rows such a transaction
 * marked, so the lock must be taken before them, never after.
 */
export async function holdRollupLock(db: Queryable): Promise<void> {
  await db.query('select attendance_rollup_lock()');
}

/*
 * A marked session "waits" when no live lease holds it: no run is writing its rows, so refreshing
 * it now is not wasted.
 */
const WAITING = `not exists (
    select 1 from call_sessions cs
     where cs.call_session_id = rp.call_session_id and ${leaseLive('cs.')})`;

const SWEEP_BATCH_SQL = `
  select attendance_rollup_refresh(array(
    select rp.call_session_id from rollup_pending rp where ${WAITING} order by rp.marked_at, rp.call_session_id limit $1)) as unmarked`;

export interface RollupSweepResult {
  /** Sessions unmarked. */
  readonly sessions: number;
  readonly batches: number;
  /** The signal ended the sweep before it ran out of waiting sessions. */
  readonly interrupted: boolean;
}

/**
 * Refreshes waiting marked sessions, oldest mark first, a batch per transaction, until none is left
 * or `signal` aborts. Replicas can sweep at once: the rollup lock is taken before the batch is
 * chosen, so the second one chooses among what the first left.
 */
export async function sweepPendingRollups(pool: pg.Pool, options: { batch?: number; signal?: AbortSignal } = {}): Promise<RollupSweepResult> {
  const batch = options.batch ?? ROLLUP_SWEEP_BATCH;
  let sessions = 0;
  let batches = 0;
  for (;;) {
    if (options.signal?.aborted) return { sessions, batches, interrupted: true };
    const unmarked = await withPoolTransaction(pool, async (client) => {
      await holdRollupLock(client);
      const { rows } = await client.query<{ unmarked: number }>(SWEEP_BATCH_SQL, [batch]);
      return rows[0]?.unmarked ?? 0;
    });
    if (unmarked === 0) return { sessions, batches, interrupted: false };
    sessions += unmarked;
    batches += 1;
  }
}

export interface RollupBacklog {
  /** Sessions whose rollups are behind their rows (the views compute them from the rows). */
  readonly pending: number;
  /** Of those, the ones no worker is archiving right now: the sweep's work. */
  readonly waiting: number;
  /** How long the oldest waiting mark has waited; null when none waits. */
  readonly oldestWaitingSeconds: number | null;
}

const BACKLOG_SQL = `
  select count(*)::int as pending,
         (count(*) filter (where ${WAITING}))::int as waiting,
         extract(epoch from now() - min(rp.marked_at) filter (where ${WAITING}))::float8 as oldest_waiting_seconds
    from rollup_pending rp`;

export async function readRollupBacklog(db: Queryable): Promise<RollupBacklog> {
  const { rows } = await db.query<{ pending: number; waiting: number; oldest_waiting_seconds: number | null }>(BACKLOG_SQL);
  const row = rows[0];
  return { pending: row?.pending ?? 0, waiting: row?.waiting ?? 0, oldestWaitingSeconds: row?.oldest_waiting_seconds ?? null };
}
