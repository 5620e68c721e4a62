import type { Queryable } from '../queue/sql.ts';

/** The reconcile_state row of the call_stats sweep. */
export const CALL_STATS_SWEEP = 'call_stats';

/*
 * reconcile_state's statements are SQL text like the queue's, so a sweep page's call_sessions
 * writes (src/queue/) and its progress commit in one transaction on one connection: the sweep's
 * advisory-lock connection, or a pooled one for a backfill.
 */

/**
 * Where the call_stats sweep stands. A sweep is in progress (or was cut off and will resume from
 * `cursor`) while `sweepStartedAt` is set and later than `lastSweepAt`.
 */
export interface SweepState {
  /** Every session that ended before this has been listed by a sweep that finished. */
  readonly watermark: Date | null;
  /** The end of the window a sweep in progress covers; set when the window starts, null once it finished. */
  readonly sweepUntil: Date | null;
  /** Stream's `next` after the last committed page of a sweep in progress; null when none is in progress. */
  readonly cursor: string | null;
  /** When the last sweep finished its window. */
  readonly lastSweepAt: Date | null;
  readonly lastError: string | null;
  /** Start of the window in progress, or of the last one. */
  readonly sweepFrom: Date | null;
  /** The latest session end committed so far in the window in progress; null when none is in progress. */
  readonly sweepPosition: Date | null;
  /** The earliest session end any finished sweep covered: sessions that ended in [coveredFrom, watermark] have been listed. */
  readonly coveredFrom: Date | null;
  /** When the window in progress (or the last one) started; a resumed sweep keeps it. */
  readonly sweepStartedAt: Date | null;
  /** Rows call_stats listed in the window in progress (or the last one), unusable ones included. */
  readonly sweepSeen: number;
  /** Of those, sessions that were not in call_sessions and were enqueued. */
  readonly sweepEnqueued: number;
  /** Of those, rows that named no session and were not enqueued. */
  readonly sweepUnusable: number;
  /** Unusable call_stats rows over every sweep and backfill. */
  readonly unusableTotal: number;
}

const READ_SQL = `
  select watermark, sweep_until as "sweepUntil", cursor, last_sweep_at as "lastSweepAt", last_error as "lastError",
         sweep_from as "sweepFrom", sweep_position as "sweepPosition", covered_from as "coveredFrom",
         sweep_started_at as "sweepStartedAt", sweep_seen as "sweepSeen", sweep_enqueued as "sweepEnqueued",
         sweep_unusable as "sweepUnusable", unusable_total as "unusableTotal"
    from reconcile_state where name = $1`;

export async function readSweepState(db: Queryable, name = CALL_STATS_SWEEP): Promise<SweepState | null> {
  const { rows } = await db.query<SweepState>(READ_SQL, [name]);
  return rows[0] ?? null;
}

/** What one committed page adds to the sweep's figures. */
export interface PageTally {
  /** Rows listed, unusable ones included. */
  readonly seen: number;
  readonly enqueued: number;
  readonly unusable: number;
  /** The latest session end among the page's rows; null when none of them had one. */
  readonly position: Date | null;
}

/*
 * A new window begins (not a resumed one): its start is recorded and the per-sweep figures start
 * from zero, so `status` shows this sweep rather than the last one from its first request on.
 * sweep_until without a cursor is never resumed from (sweepWindow needs both): it only shows the window.
 */
const START_WINDOW_SQL = `
  insert into reconcile_state as r (name, sweep_from, sweep_until, sweep_started_at, sweep_position, sweep_seen, sweep_enqueued, sweep_unusable)
  values ($1, $2, $3, now(), null, 0, 0, 0)
  on conflict (name) do update set
    sweep_from = excluded.sweep_from, sweep_until = excluded.sweep_until, sweep_started_at = now(), sweep_position = null,
    sweep_seen = 0, sweep_enqueued = 0, sweep_unusable = 0, updated_at = now()`;

export async function startSweepWindow(db: Queryable, window: { from: Date; until: Date }, name = CALL_STATS_SWEEP): Promise<void> {
  await db.query(START_WINDOW_SQL, [name, window.from, window.until]);
}

/** A page that listed nothing. */
const NO_ROWS: PageTally = { seen: 0, enqueued: 0, unusable: 0, position: null };

// Shared by the two page commits: the page's figures (the inserted row's) are added to the
// window's and to the total.
const ADD_TALLY = `
    sweep_seen = r.sweep_seen + excluded.sweep_seen, sweep_enqueued = r.sweep_enqueued + excluded.sweep_enqueued,
    sweep_unusable = r.sweep_unusable + excluded.sweep_unusable, unusable_total = r.unusable_total + excluded.unusable_total`;

const tallyValues = (tally: PageTally) => [tally.seen, tally.enqueued, tally.unusable, tally.unusable];

/*
 * A page committed and more follow: the cursor and the window's end are stored with the page, so a
 * sweep cut off here resumes with the same filter from this cursor. The first sweep of an empty
 * archive also fixes its starting watermark here; otherwise a resumed first sweep would compute a
 * different window than the one its cursor belongs to. The page's figures are added in the same
 * statement, so they always match what committed.
 */
const SAVE_PROGRESS_SQL = `
  insert into reconcile_state as r
    (name, watermark, cursor, sweep_until, sweep_position, sweep_seen, sweep_enqueued, sweep_unusable, unusable_total)
  values ($1, $2, $3, $4, $5, $6, $7, $8, $9)
  on conflict (name) do update set
    watermark = coalesce(r.watermark, excluded.watermark),
    cursor = excluded.cursor,
    sweep_until = excluded.sweep_until,
    -- Pages come sorted by end time, but a resumed page may repeat the last one's end: never back.
    sweep_position = greatest(r.sweep_position, excluded.sweep_position),
    ${ADD_TALLY},
    updated_at = now()`;

export async function saveSweepProgress(
  db: Queryable,
  progress: { cursor: string; sweepUntil: Date; watermark: Date; tally?: PageTally },
  name = CALL_STATS_SWEEP,
): Promise<void> {
  const tally = progress.tally ?? NO_ROWS;
  await db.query(SAVE_PROGRESS_SQL, [name, progress.watermark, progress.cursor, progress.sweepUntil, tally.position, ...tallyValues(tally)]);
}

/*
 * The last page of the window committed: the watermark moves to the window's end (never back, if
 * a replica with a slower clock finished a window after this one), the covered range reaches back
 * to the window's start (each window starts at or before the watermark, so the range stays
 * contiguous), the cursor and position are cleared and the last error with them.
 */
const COMPLETE_SQL = `
  insert into reconcile_state as r (name, watermark, last_sweep_at, sweep_seen, sweep_enqueued, sweep_unusable, unusable_total)
  values ($1, $2, now(), $3, $4, $5, $6)
  on conflict (name) do update set
    watermark = greatest(r.watermark, excluded.watermark),
    covered_from = least(r.covered_from, r.sweep_from),
    cursor = null, sweep_until = null, sweep_position = null, last_sweep_at = now(), last_error = null,
    ${ADD_TALLY},
    updated_at = now()`;

export async function completeSweep(db: Queryable, until: Date, name = CALL_STATS_SWEEP, tally?: PageTally): Promise<void> {
  await db.query(COMPLETE_SQL, [name, until, ...tallyValues(tally ?? NO_ROWS)]);
}

/*
 * Call_stats rows a backfill could not use: counted into the all-time total only (the window
 * figures and the watermark are the sweep's alone). Writes nothing when there were none.
 */
const ADD_UNUSABLE_SQL = `
  insert into reconcile_state as r (name, unusable_total) values ($1, $2)
  on conflict (name) do update set unusable_total = r.unusable_total + excluded.unusable_total, updated_at = now()`;

export async function addUnusableRows(db: Queryable, count: number, name = CALL_STATS_SWEEP): Promise<void> {
  if (count <= 0) return;
  await db.query(ADD_UNUSABLE_SQL, [name, count]);
}

/* A sweep ended early; the cursor stays, so the next one resumes where this one stopped. */
const RECORD_ERROR_SQL = `
  insert into reconcile_state as r (name, last_error) values ($1, $2)
  on conflict (name) do update set last_error = excluded.last_error, updated_at = now()`;

export async function recordSweepError(db: Queryable, message: string, name = CALL_STATS_SWEEP): Promise<void> {
  await db.query(RECORD_ERROR_SQL, [name, message]);
}

/** Drops a stored cursor Stream no longer accepts, so the next sweep starts its window again. */
export async function discardSweepCursor(db: Queryable, name = CALL_STATS_SWEEP): Promise<void> {
  await db.query('update reconcile_state set cursor = null, sweep_until = null, updated_at = now() where name = $1', [name]);
}
