import { eq, sql } from 'drizzle-orm';
import type { NodePgDatabase } from 'drizzle-orm/node-postgres';
import { reconcileState } from '../db/schema.ts';
import type * as schema from '../db/schema.ts';

/** The reconcile_state row of the call_stats sweep. */
export const CALL_STATS_SWEEP = 'call_stats';

/** The database or a transaction on it: every function here runs inside the sweep's page transactions. */
export type SweepDb = Pick<NodePgDatabase<typeof schema>, 'select' | 'insert' | 'update' | 'execute' | 'transaction'>;

export interface SweepState {
  /** Every session that ended before this has been listed by a sweep that finished. */
  readonly watermark: Date | null;
  /** The end of the window a sweep in progress covers; set together with `cursor`. */
  readonly sweepUntil: Date | null;
  /** Stream's `next` after the last committed page of a sweep in progress; null when none is in progress. */
  readonly cursor: string | null;
  readonly lastSweepAt: Date | null;
  readonly lastError: string | null;
}

export async function readSweepState(db: SweepDb, name = CALL_STATS_SWEEP): Promise<SweepState | null> {
  const rows = await db
    .select({
      watermark: reconcileState.watermark,
      sweepUntil: reconcileState.sweepUntil,
      cursor: reconcileState.cursor,
      lastSweepAt: reconcileState.lastSweepAt,
      lastError: reconcileState.lastError,
    })
    .from(reconcileState)
    .where(eq(reconcileState.name, name));
  return rows[0] ?? null;
}

/**
 * A page committed and more follow: the cursor and the window's end are stored with the page, so a
 * sweep cut off here resumes with the same filter from this cursor. The first sweep of an empty
 * archive also fixes its starting watermark here; otherwise a resumed first sweep would compute a
 * different window than the one its cursor belongs to.
 */
export async function saveSweepProgress(
  db: SweepDb,
  progress: { cursor: string; sweepUntil: Date; watermark: Date },
  name = CALL_STATS_SWEEP,
): Promise<void> {
  await db
    .insert(reconcileState)
    .values({ name, watermark: progress.watermark, cursor: progress.cursor, sweepUntil: progress.sweepUntil })
    .onConflictDoUpdate({
      target: reconcileState.name,
      set: {
        watermark: sql`coalesce(${reconcileState.watermark}, excluded.watermark)`,
        cursor: sql`excluded.cursor`,
        sweepUntil: sql`excluded.sweep_until`,
        updatedAt: sql`now()`,
      },
    });
}

/**
 * The last page of the window committed: the watermark moves to the window's end (never back, if
 * a replica with a slower clock finished a window after this one), the cursor is cleared and the
 * last error with it.
 */
export async function completeSweep(db: SweepDb, until: Date, name = CALL_STATS_SWEEP): Promise<void> {
  await db
    .insert(reconcileState)
    .values({ name, watermark: until, lastSweepAt: sql`now()` })
    .onConflictDoUpdate({
      target: reconcileState.name,
      set: {
        watermark: sql`greatest(${reconcileState.watermark}, excluded.watermark)`,
        cursor: null,
        sweepUntil: null,
        lastSweepAt: sql`now()`,
        lastError: null,
        updatedAt: sql`now()`,
      },
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
