import { eq, sql } from 'drizzle-orm';
import type { NodePgDatabase } from 'drizzle-orm/node-postgres';
import { reconcileState } from '../db/schema.ts';
import type * as schema from '../db/schema.ts';

/** The reconcile_state row of the call_stats sweep. */
export const CALL_STATS_SWEEP = 'call_stats';

/** The database or a transaction on it: every function here runs inside the sweep's page transactions. */
export type SweepDb = Pick<NodePgDatabase<typeof schema>, 'select' | 'insert' | 'update' | 'execute' | 'transaction'>;

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

export async function readSweepState(db: SweepDb, name = CALL_STATS_SWEEP): Promise<SweepState | null> {
  const rows = await db
    .select({
      watermark: reconcileState.watermark,
      sweepUntil: reconcileState.sweepUntil,
      cursor: reconcileState.cursor,
      lastSweepAt: reconcileState.lastSweepAt,
      lastError: reconcileState.lastError,
      sweepFrom: reconcileState.sweepFrom,
      sweepPosition: reconcileState.sweepPosition,
      coveredFrom: reconcileState.coveredFrom,
      sweepStartedAt: reconcileState.sweepStartedAt,
      sweepSeen: reconcileState.sweepSeen,
      sweepEnqueued: reconcileState.sweepEnqueued,
      sweepUnusable: reconcileState.sweepUnusable,
      unusableTotal: reconcileState.unusableTotal,
    })
    .from(reconcileState)
    .where(eq(reconcileState.name, name));
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

/**
 * A new window begins (not a resumed one): its start is recorded and the per-sweep figures start
 * from zero, so `status` shows this sweep rather than the last one from its first request on.
 */
export async function startSweepWindow(db: SweepDb, window: { from: Date; until: Date }, name = CALL_STATS_SWEEP): Promise<void> {
  // sweep_until without a cursor is never resumed from (sweepWindow needs both): it only shows the window.
  const reset = {
    sweepFrom: window.from,
    sweepUntil: window.until,
    sweepStartedAt: sql`now()`,
    sweepPosition: null,
    sweepSeen: 0,
    sweepEnqueued: 0,
    sweepUnusable: 0,
  };
  await db
    .insert(reconcileState)
    .values({ name, ...reset })
    .onConflictDoUpdate({ target: reconcileState.name, set: { ...reset, updatedAt: sql`now()` } });
}

/** A page that listed nothing. */
const NO_ROWS: PageTally = { seen: 0, enqueued: 0, unusable: 0, position: null };

// Shared by the two page commits: the page's figures are added to the window's and to the total.
const tallyColumns = (tally: PageTally) => ({
  sweepSeen: sql`${reconcileState.sweepSeen} + ${tally.seen}`,
  sweepEnqueued: sql`${reconcileState.sweepEnqueued} + ${tally.enqueued}`,
  sweepUnusable: sql`${reconcileState.sweepUnusable} + ${tally.unusable}`,
  unusableTotal: sql`${reconcileState.unusableTotal} + ${tally.unusable}`,
});

/**
 * A page committed and more follow: the cursor and the window's end are stored with the page, so a
 * sweep cut off here resumes with the same filter from this cursor. The first sweep of an empty
 * archive also fixes its starting watermark here; otherwise a resumed first sweep would compute a
 * different window than the one its cursor belongs to. The page's figures are added in the same
 * statement, so they always match what committed.
 */
export async function saveSweepProgress(
  db: SweepDb,
  progress: { cursor: string; sweepUntil: Date; watermark: Date; tally?: PageTally },
  name = CALL_STATS_SWEEP,
): Promise<void> {
  const tally = progress.tally ?? NO_ROWS;
  await db
    .insert(reconcileState)
    .values({
      name,
      watermark: progress.watermark,
      cursor: progress.cursor,
      sweepUntil: progress.sweepUntil,
      sweepPosition: tally.position,
      sweepSeen: tally.seen,
      sweepEnqueued: tally.enqueued,
      sweepUnusable: tally.unusable,
      unusableTotal: tally.unusable,
    })
    .onConflictDoUpdate({
      target: reconcileState.name,
      set: {
        watermark: sql`coalesce(${reconcileState.watermark}, excluded.watermark)`,
        cursor: sql`excluded.cursor`,
        sweepUntil: sql`excluded.sweep_until`,
        // Pages come sorted by end time, but a resumed page may repeat the last one's end: never back.
        sweepPosition: sql`greatest(${reconcileState.sweepPosition}, excluded.sweep_position)`,
        ...tallyColumns(tally),
        updatedAt: sql`now()`,
      },
    });
}

/**
 * The last page of the window committed: the watermark moves to the window's end (never back, if
 * a replica with a slower clock finished a window after this one), the covered range reaches back
 * to the window's start (each window starts at or before the watermark, so the range stays
 * contiguous), the cursor and position are cleared and the last error with them.
 */
export async function completeSweep(db: SweepDb, until: Date, name = CALL_STATS_SWEEP, tally?: PageTally): Promise<void> {
  const page = tally ?? NO_ROWS;
  await db
    .insert(reconcileState)
    .values({
      name,
      watermark: until,
      lastSweepAt: sql`now()`,
      sweepSeen: page.seen,
      sweepEnqueued: page.enqueued,
      sweepUnusable: page.unusable,
      unusableTotal: page.unusable,
    })
    .onConflictDoUpdate({
      target: reconcileState.name,
      set: {
        watermark: sql`greatest(${reconcileState.watermark}, excluded.watermark)`,
        coveredFrom: sql`least(${reconcileState.coveredFrom}, ${reconcileState.sweepFrom})`,
        cursor: null,
        sweepUntil: null,
        sweepPosition: null,
        lastSweepAt: sql`now()`,
        lastError: null,
        ...tallyColumns(page),
        updatedAt: sql`now()`,
      },
    });
}

/**
 * Call_stats rows a backfill could not use: counted into the all-time total only (the window
 * figures and the watermark are the sweep's alone). Writes nothing when there were none.
 */
export async function addUnusableRows(db: SweepDb, count: number, name = CALL_STATS_SWEEP): Promise<void> {
  if (count <= 0) return;
  await db
    .insert(reconcileState)
    .values({ name, unusableTotal: count })
    .onConflictDoUpdate({
      target: reconcileState.name,
      set: { unusableTotal: sql`${reconcileState.unusableTotal} + excluded.unusable_total`, updatedAt: sql`now()` },
    });
}

/** A sweep ended early; the cursor stays, so the next one resumes where this one stopped. */
export async function recordSweepError(db: SweepDb, message: string, name = CALL_STATS_SWEEP): Promise<void> {
  await db
    .insert(reconcileState)
    .values({ name, lastError: message })
    .onConflictDoUpdate({
      target: reconcileState.name,
      set: { lastError: sql`excluded.last_error`, updatedAt: sql`now()` },
    });
}

/** Drops a stored cursor Stream no longer accepts, so the next sweep starts its window again. */
export async function discardSweepCursor(db: SweepDb, name = CALL_STATS_SWEEP): Promise<void> {
  await db
    .update(reconcileState)
    .set({ cursor: null, sweepUntil: null, updatedAt: sql`now()` })
    .where(eq(reconcileState.name, name));
}
