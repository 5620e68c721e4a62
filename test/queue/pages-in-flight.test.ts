import { beforeEach, describe, expect, it } from 'vitest';
import { preparePage } from '../../src/ingest/write-page.ts';
import { PageOutOfOrderError, type PagePosition, pageLockKey, sendPage } from '../../src/queue/checkpoint-page.ts';
import { LeaseLostError } from '../../src/queue/fence.ts';
import type { ParticipantEntry } from '../../src/stream/schemas.ts';
import { useTestDatabase } from '../helpers/db.ts';
import { readSessionRow } from '../helpers/session-rows.ts';
import { insertQueueRow } from './queue-rows.ts';

/*
 * A page sent while the page before it is still in flight (queue/checkpoint-page.ts, sendPage):
 * it writes its rows at once, stores its cursor only after the page before it committed, and
 * writes nothing at all when that page did not store its cursor first, or the lease is gone. The
 * page before it is played here by a transaction holding that page's lock.
 */

const db = useTestDatabase();
const pool = () => db.current.database.pool;
const lease = { callSessionId: 's1', owner: 'w1' };

function entry(n: number): ParticipantEntry {
  return {
    userId: `user ${n}`,
    userSessionId: `us-${n}`,
    publisherType: 'webrtc',
    roles: ['user'],
    joinedAt: new Date('2026-01-01T10:00:00Z'),
    leftAt: new Date('2026-01-01T10:30:00Z'),
    joinedAtMicros: '2026-01-01T10:00:00Z',
    leftAtMicros: '2026-01-01T10:30:00Z',
    durationInSeconds: 1800,
    raw: { user_id: `user ${n}`, user_session_id: `us-${n}`, publisher_type: 'webrtc', roles: ['user'], joined_at: '2026-01-01T10:00:00Z' },
  };
}

/** Page `n`: entries 10n and 10n + 1, resuming at `c<n>`. */
const page = (n: number) => preparePage({ callType: 'default', callId: 's1', entries: [entry(10 * n), entry(10 * n + 1)], resumeCursor: `c${n}` }).checkpoint;

/** Page 0 in flight: a transaction holding its lock; it stores c0 and commits, or rolls back. */
async function pageZeroInFlight(): Promise<{ commit(): Promise<void>; rollBack(): Promise<void> }> {
  const client = await pool().connect();
  await client.query('begin');
  await client.query('select pg_advisory_xact_lock($1::bigint)', [pageLockKey(lease, 0)]);
  const end = async (statement: string) => {
    try {
      await client.query(statement);
    } finally {
      client.release();
    }
  };
  return {
    async commit() {
      await client.query("update call_sessions set cursor = 'c0' where call_session_id = 's1'");
      await end('commit');
    },
    rollBack: () => end('rollback'),
  };
}

/** Sends page `n` and returns once it is on its way (an object, so that awaiting this does not await the write). */
async function send(n: number, position: PagePosition, as = lease): Promise<{ readonly written: Promise<void> }> {
  return sendPage(pool(), as, page(n), position);
}

const rowsHeld = async () => (await pool().query<{ id: string }>('select user_session_id as id from participant_sessions order by 1')).rows.map((r) => r.id);

/** Resolves once some statement waits for an advisory lock. */
async function someoneWaitsForAnAdvisoryLock(): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const { rows } = await pool().query<{ n: number }>("select count(*)::int as n from pg_locks where locktype = 'advisory' and not granted");
    if (rows[0]!.n > 0) return;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error('no statement waited for an advisory lock within 5 s');
}

beforeEach(async () => {
  await pool().query('truncate participant_sessions, stream_responses, call_sessions');
  await insertQueueRow(pool(), { id: 's1', status: 'running', leaseOwner: 'w1', leaseExpiresInSeconds: 30 });
});

describe('sendPage: a page with the page before it in flight', () => {
  it("the run's first page stores its cursor in place of the one it was fetched with", async () => {
    await (await send(0, { fetchedWith: null, sequence: 0 })).written;
    expect((await readSessionRow(pool(), 's1')).cursor).toBe('c0');
    expect(await rowsHeld()).toEqual(['us-0', 'us-1']);
  });

  it('waits for the page before it to commit, then stores its own cursor after it', async () => {
    const zero = await pageZeroInFlight();
    let settled = false;
    const written = (await send(1, { fetchedWith: 'c0', sequence: 1 })).written.finally(() => {
      settled = true;
    });
    await someoneWaitsForAnAdvisoryLock();
    // Its rows are written but not committed, and its cursor waits for page 0.
    expect(settled).toBe(false);
    expect(await rowsHeld()).toEqual([]);
    expect((await readSessionRow(pool(), 's1')).cursor).toBeNull();

    await zero.commit();
    await written;
    expect((await readSessionRow(pool(), 's1')).cursor).toBe('c1');
    expect(await rowsHeld()).toEqual(['us-10', 'us-11']);
  });

  it('writes nothing when the page before it rolls back', async () => {
    const zero = await pageZeroInFlight();
    const { written } = await send(1, { fetchedWith: 'c0', sequence: 1 });
    await someoneWaitsForAnAdvisoryLock();
    await zero.rollBack();
    await expect(written).rejects.toBeInstanceOf(PageOutOfOrderError);
    expect(await rowsHeld()).toEqual([]);
    expect((await readSessionRow(pool(), 's1')).cursor).toBeNull();
  });

  it('writes nothing when the page before it has not taken its lock yet', async () => {
    await expect((await send(1, { fetchedWith: 'c0', sequence: 1 })).written).rejects.toThrow(
      /page of call session s1 was not written: the page before it had not stored its cursor/,
    );
    expect(await rowsHeld()).toEqual([]);
    expect((await readSessionRow(pool(), 's1')).cursor).toBeNull();
  });

  it("a run's page locks are its own: another claim's page 0 in flight does not hold this run up", async () => {
    // A worker whose lease lapsed may still have a statement in flight when the session is claimed again.
    const stale = await pool().connect();
    try {
      await stale.query('begin');
      await stale.query('select pg_advisory_xact_lock($1::bigint)', [pageLockKey({ callSessionId: 's1', owner: 'w0' }, 0)]);
      await (await send(0, { fetchedWith: null, sequence: 0 })).written;
      expect((await readSessionRow(pool(), 's1')).cursor).toBe('c0');
    } finally {
      await stale.query('rollback');
      stale.release();
    }
  });

  it('writes nothing once the lease is gone, whether before the statement or while it waits', async () => {
    await expect((await send(0, { fetchedWith: null, sequence: 0 }, { callSessionId: 's1', owner: 'w2' })).written).rejects.toBeInstanceOf(LeaseLostError);

    const zero = await pageZeroInFlight();
    const { written } = await send(1, { fetchedWith: 'c0', sequence: 1 });
    await someoneWaitsForAnAdvisoryLock();
    // Taken over while page 1 waits: page 0 still commits its cursor, page 1 finds the lease gone.
    await pool().query("update call_sessions set lease_owner = 'w2' where call_session_id = 's1'");
    await zero.commit();
    await expect(written).rejects.toBeInstanceOf(LeaseLostError);
    expect(await rowsHeld()).toEqual([]);
    expect((await readSessionRow(pool(), 's1')).cursor).toBe('c0');
  });
});
