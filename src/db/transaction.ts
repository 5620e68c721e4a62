import type pg from 'pg';

/**
 * Runs `work` in one transaction on `client`: committed if it returns, rolled back if it throws
 * (the error it threw is what the caller sees). `onRollbackFailed` hears of a rollback that failed
 * too: that connection is in an unknown state and must not be reused.
 */
export async function inTransaction<T>(client: pg.ClientBase, work: () => Promise<T>, onRollbackFailed?: (error: Error) => void): Promise<T> {
  await client.query('begin');
  try {
    const result = await work();
    await client.query('commit');
    return result;
  } catch (error) {
    await client.query('rollback').catch((rollbackError: unknown) => {
      onRollbackFailed?.(rollbackError instanceof Error ? rollbackError : new Error(String(rollbackError)));
    });
    throw error;
  }
}

/** As inTransaction, on a connection taken from the pool for it; one that cannot roll back is not given back for reuse. */
export async function withPoolTransaction<T>(pool: pg.Pool, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let broken: Error | undefined;
  try {
    return await inTransaction(
      client,
      () => work(client),
      (error) => {
        broken = error;
      },
    );
  } finally {
    client.release(broken);
  }
}
