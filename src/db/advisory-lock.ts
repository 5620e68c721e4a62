import type pg from 'pg';

/**
 * Every session-level advisory lock the service takes, in one place so no two uses collide:
 * arbitrary but fixed numbers, one per job that at most one replica may run at a time. The worker's
 * page statements also take transaction-level ones, keyed by a hash of the session, the run's
 * lease and the page (queue/checkpoint-page.ts, pageLockKey), which none of these can be but by
 * a SHA-256 collision.
 */
export const ADVISORY_LOCK_KEYS = {
  /** `attendance migrate` and an embedded start: waits, so replicas never apply a migration twice. */
  migrate: 7_301_402_417,
  /** The call_stats sweep (reconcile/sweep.ts). */
  reconcile: 7_301_402_418,
  /** Retention pruning (lifecycle/prune.ts). */
  prune: 7_301_402_419,
  /**
   * Every rollup refresh, as a transaction-level lock: taken by attendance_rollup_lock() in
   * migration 0006 (SQL holds the number; a test checks the two agree).
   */
  rollup: 7_301_402_420,
} as const;

export type LockedRun<T> = { readonly locked: true; readonly value: T } | { readonly locked: false };

/**
 * Runs `fn` on one dedicated connection that holds the session-level advisory lock `key`, or
 * returns `{ locked: false }` at once when another session holds it. Everything `fn` writes goes
 * through that connection, so if it dies the lock goes with it and so does any further write: a
 * holder that lost the lock cannot write. A broken connection is discarded rather than pooled
 * (closing it releases the lock); otherwise the lock is released and the connection returned.
 */
export async function withSessionAdvisoryLock<T>(
  pool: pg.Pool,
  key: number,
  fn: (client: pg.PoolClient) => Promise<T>,
  onConnectionLost?: (error: Error) => void,
): Promise<LockedRun<T>> {
  const client = await pool.connect();
  let broken: Error | undefined;
  const onError = (error: Error) => {
    broken = error;
    onConnectionLost?.(error);
  };
  client.on('error', onError);
  let locked = false;
  try {
    const lock = await client.query<{ locked: boolean }>('select pg_try_advisory_lock($1) as locked', [key]);
    locked = lock.rows[0]?.locked === true;
    if (!locked) return { locked: false };
    return { locked: true, value: await fn(client) };
  } catch (error) {
    broken ??= error instanceof Error ? error : new Error(String(error));
    throw error;
  } finally {
    if (locked && !broken) {
      await client.query('select pg_advisory_unlock($1)', [key]).catch((error: unknown) => {
        broken = error instanceof Error ? error : new Error(String(error));
      });
    }
    client.off('error', onError);
    client.release(broken);
  }
}
