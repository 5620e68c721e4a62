import { beforeEach, describe, expect, it } from 'vitest';
import { LeaseLostError, withFencedTransaction } from '../../src/queue/fence.ts';
import { extendLeases, releaseSession } from '../../src/queue/lease.ts';
import { useTestDatabase } from '../helpers/db.ts';
import { readSessionRow } from '../helpers/session-rows.ts';
import { clearQueue, insertQueueRow } from './queue-rows.ts';

const db = useTestDatabase();
const pool = () => db.current.database.pool;

beforeEach(async () => {
  await clearQueue(pool());
});

describe('extendLeases (heartbeat)', () => {
  it('extends every session still held in one go and reports the ones lost', async () => {
    await insertQueueRow(pool(), { id: 'a', status: 'running', leaseOwner: 'w1', leaseExpiresInSeconds: 3 });
    await insertQueueRow(pool(), { id: 'b', status: 'running', leaseOwner: 'w1', leaseExpiresInSeconds: -2 });
    // Taken over by another worker after w1's lease lapsed.
    await insertQueueRow(pool(), { id: 'c', status: 'running', leaseOwner: 'w2', leaseExpiresInSeconds: 30 });
    // Reset to pending by webhook intake (lease cleared).
    await insertQueueRow(pool(), { id: 'd', status: 'pending' });

    const leases = ['a', 'b', 'c', 'd'].map((callSessionId) => ({ callSessionId, owner: 'w1' }));
    const result = await extendLeases(pool(), { leases, leaseSeconds: 30 });
    expect([...result.kept].sort()).toEqual(['a', 'b']);
    expect(result.lost).toEqual(['c', 'd']);
    expect((await readSessionRow(pool(), 'a')).lease_in).toBeGreaterThan(28);
    expect((await readSessionRow(pool(), 'b')).lease_in).toBeGreaterThan(28);
    expect((await readSessionRow(pool(), 'c')).lease_owner).toBe('w2');
  });

  it('does nothing for an empty list', async () => {
    expect(await extendLeases(pool(), { leases: [], leaseSeconds: 30 })).toEqual({ kept: [], lost: [] });
  });

  it("gives up on a beat blocked by someone else's row lock after timeoutMs, so the next beat can run", async () => {
    await insertQueueRow(pool(), { id: 'locked', status: 'running', leaseOwner: 'w1', leaseExpiresInSeconds: 20 });
    const holder = await pool().connect();
    try {
      await holder.query('begin');
      await holder.query(`select 1 from call_sessions where call_session_id = 'locked' for update`);
      const beat = extendLeases(pool(), { leases: [{ callSessionId: 'locked', owner: 'w1' }], leaseSeconds: 30, timeoutMs: 300 });
      await expect(beat).rejects.toThrow(/timeout/i);
    } finally {
      await holder.query('rollback');
      holder.release();
    }
  });

  it('extends each session under its own lease token only', async () => {
    await insertQueueRow(pool(), { id: 'e', status: 'running', leaseOwner: 'w1/run-2', leaseExpiresInSeconds: 3 });
    await insertQueueRow(pool(), { id: 'f', status: 'running', leaseOwner: 'w1/run-3', leaseExpiresInSeconds: 3 });
    // The same process's older run of e (claimed again since) must not keep e's lease alive.
    const result = await extendLeases(pool(), {
      leases: [
        { callSessionId: 'e', owner: 'w1/run-1' },
        { callSessionId: 'f', owner: 'w1/run-3' },
      ],
      leaseSeconds: 30,
    });
    expect(result).toEqual({ kept: ['f'], lost: ['e'] });
    expect((await readSessionRow(pool(), 'e')).lease_in).toBeLessThan(5);
  });
});

describe('releaseSession (graceful stop)', () => {
  it('makes the session due again with its cursor, without spending an attempt', async () => {
    await insertQueueRow(pool(), { id: 'a', status: 'running', leaseOwner: 'w1', leaseExpiresInSeconds: 20, attempts: 1, cursor: 'c5' });
    expect(await releaseSession(pool(), { callSessionId: 'a', owner: 'w1' })).toBe(true);
    const row = await readSessionRow(pool(), 'a');
    expect(row).toMatchObject({ status: 'pending', attempts: 0, cursor: 'c5', lease_owner: null, lease_expires_at: null });
    expect(row.due_in).toBeLessThanOrEqual(0);
  });

  it('goes back to retrying when an earlier run had failed', async () => {
    await insertQueueRow(pool(), { id: 'a', status: 'running', leaseOwner: 'w1', leaseExpiresInSeconds: 20, attempts: 3, lastError: 'Stream answered 503' });
    await releaseSession(pool(), { callSessionId: 'a', owner: 'w1' });
    expect(await readSessionRow(pool(), 'a')).toMatchObject({ status: 'retrying', attempts: 2, last_error: 'Stream answered 503' });
  });

  it('writes nothing when the lease is not ours', async () => {
    await insertQueueRow(pool(), { id: 'a', status: 'running', leaseOwner: 'w2', leaseExpiresInSeconds: 20, attempts: 1 });
    expect(await releaseSession(pool(), { callSessionId: 'a', owner: 'w1' })).toBe(false);
    expect(await readSessionRow(pool(), 'a')).toMatchObject({ status: 'running', lease_owner: 'w2', attempts: 1 });
  });
});

describe('withFencedTransaction', () => {
  it('commits the work while the lease is held', async () => {
    await insertQueueRow(pool(), { id: 'a', status: 'running', leaseOwner: 'w1', leaseExpiresInSeconds: 20 });
    await withFencedTransaction(pool(), { callSessionId: 'a', owner: 'w1' }, async (client) => {
      await client.query(`update call_sessions set cursor = 'c1' where call_session_id = 'a'`);
    });
    expect((await readSessionRow(pool(), 'a')).cursor).toBe('c1');
  });

  it('refuses to start the work when another worker holds the lease', async () => {
    await insertQueueRow(pool(), { id: 'a', status: 'running', leaseOwner: 'w2', leaseExpiresInSeconds: 20 });
    let ran = false;
    const attempt = withFencedTransaction(pool(), { callSessionId: 'a', owner: 'w1' }, async () => {
      ran = true;
    });
    await expect(attempt).rejects.toBeInstanceOf(LeaseLostError);
    expect(ran).toBe(false);
  });

  it('refuses a session that is no longer running, even with our name on it', async () => {
    await insertQueueRow(pool(), { id: 'a', status: 'pending', leaseOwner: 'w1' });
    await expect(withFencedTransaction(pool(), { callSessionId: 'a', owner: 'w1' }, async () => undefined)).rejects.toBeInstanceOf(LeaseLostError);
  });

  it('rolls back everything when the work fails, and the connection stays usable', async () => {
    await insertQueueRow(pool(), { id: 'a', status: 'running', leaseOwner: 'w1', leaseExpiresInSeconds: 20 });
    const attempt = withFencedTransaction(pool(), { callSessionId: 'a', owner: 'w1' }, async (client) => {
      await client.query(`update call_sessions set cursor = 'half-written' where call_session_id = 'a'`);
      throw new Error('page write failed');
    });
    await expect(attempt).rejects.toThrow('page write failed');
    expect((await readSessionRow(pool(), 'a')).cursor).toBeNull();
    const idle = await pool().query<{ n: number }>(
      `select count(*)::int as n from pg_stat_activity where datname = current_database() and state = 'idle in transaction'`,
    );
    expect(idle.rows[0]?.n).toBe(0);
  });

  it('makes a takeover wait: intake resetting the session blocks until the page commits, then fences the writer out', async () => {
    await insertQueueRow(pool(), { id: 'a', status: 'running', leaseOwner: 'w1', leaseExpiresInSeconds: 20 });
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let inside!: () => void;
    const entered = new Promise<void>((resolve) => (inside = resolve));
    const writing = withFencedTransaction(pool(), { callSessionId: 'a', owner: 'w1' }, async (client) => {
      inside();
      await held;
      await client.query(`update call_sessions set cursor = 'c9' where call_session_id = 'a'`);
    });
    await entered;
    const reset = pool().query(`update call_sessions set status = 'pending', lease_owner = null, cursor = null where call_session_id = 'a'`);
    release();
    await writing;
    await reset;
    // The page committed first; the reset then won, and w1 can no longer write.
    expect(await readSessionRow(pool(), 'a')).toMatchObject({ status: 'pending', cursor: null, lease_owner: null });
    await expect(withFencedTransaction(pool(), { callSessionId: 'a', owner: 'w1' }, async () => undefined)).rejects.toBeInstanceOf(LeaseLostError);
  });
});
