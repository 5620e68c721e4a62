import type pg from 'pg';
import { withPoolTransaction } from '../db/transaction.ts';
import { AppError } from '../errors.ts';
import { holdsLease } from './sql.ts';

/** The worker no longer holds this session's lease: someone took it over, or intake reset it. */
export class LeaseLostError extends AppError {
  readonly callSessionId: string;

  constructor(callSessionId: string) {
    super('LEASE_LOST', `lease on call session ${callSessionId} is no longer held by this worker`);
    this.callSessionId = callSessionId;
  }
}

/** Who may write a session: the worker holding its lease. */
export interface Lease {
  readonly callSessionId: string;
  readonly owner: string;
}

/*
 * The fence for every worker write: the session row, locked, still 'running' under this lease
 * owner. Taken first in the transaction, so from here to commit nobody can claim the row (claims
 * SKIP LOCKED rows) and intake's reset waits for us. FOR NO KEY UPDATE rather than FOR UPDATE: the
 * participant_sessions inserts take KEY SHARE on this row through the foreign key, which it allows.
 */
const FENCE_SQL = `
  select 1 from call_sessions
   where ${holdsLease('$1', '$2')}
     for no key update`;

/**
 * Runs `work` in one transaction that commits only if this worker still holds the lease.
 * Throws LeaseLostError (after rolling back) when it does not; any error rolls back.
 */
export async function withFencedTransaction<T>(pool: pg.Pool, lease: Lease, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  return withPoolTransaction(pool, async (client) => {
    const fence = await client.query(FENCE_SQL, [lease.callSessionId, lease.owner]);
    if (fence.rowCount !== 1) throw new LeaseLostError(lease.callSessionId);
    return work(client);
  });
}
