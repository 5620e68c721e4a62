import { beforeEach, describe, expect, it } from 'vitest';
import { claimSessions } from '../../src/queue/claim.ts';
import { withFencedTransaction } from '../../src/queue/fence.ts';
import { useTestDatabase } from '../helpers/db.ts';
import { readSessionRow } from '../helpers/session-rows.ts';
import { clearQueue, insertQueueRow } from './queue-rows.ts';

const db = useTestDatabase();
const pool = () => db.current.database.pool;

beforeEach(async () => {
  await clearQueue(pool());
});

describe('claimSessions', () => {
  it('takes due pending and retrying sessions and lapsed leases, nothing else', async () => {
    await insertQueueRow(pool(), { id: 'pending-due' });
    await insertQueueRow(pool(), { id: 'retrying-due', status: 'retrying', attempts: 2 });
    await insertQueueRow(pool(), { id: 'pending-later', dueInSeconds: 60 });
    await insertQueueRow(pool(), { id: 'retrying-later', status: 'retrying', dueInSeconds: 60 });
    await insertQueueRow(pool(), { id: 'running-live', status: 'running', leaseOwner: 'other', leaseExpiresInSeconds: 20 });
    await insertQueueRow(pool(), { id: 'running-lapsed', status: 'running', leaseOwner: 'dead-worker', leaseExpiresInSeconds: -5, attempts: 1 });
    for (const status of ['complete', 'dead', 'expired'] as const) await insertQueueRow(pool(), { id: status, status });

    const claimed = await claimSessions(pool(), { workerId: 'w1', limit: 10, leaseSeconds: 30 });
    expect(claimed.map((c) => c.callSessionId).sort()).toEqual(['pending-due', 'retrying-due', 'running-lapsed']);
    expect(claimed.find((c) => c.callSessionId === 'running-lapsed')?.takenOver).toBe(true);
    expect(claimed.find((c) => c.callSessionId === 'pending-due')?.takenOver).toBe(false);

    const row = await readSessionRow(pool(), 'retrying-due');
    expect(row).toMatchObject({ status: 'running', lease_owner: expect.stringMatching(/^w1\/[0-9a-f-]{36}$/), attempts: 3 });
    expect(claimed.find((c) => c.callSessionId === 'retrying-due')?.leaseOwner).toBe(row.lease_owner);
    expect(row.lease_in).toBeGreaterThan(28);
    expect(row.lease_in).toBeLessThanOrEqual(30);
    expect((await readSessionRow(pool(), 'running-lapsed')).lease_owner).toMatch(/^w1\//);
    expect((await readSessionRow(pool(), 'running-live')).lease_owner).toBe('other');
  });

  it('claims the soonest retention expiry first, unknown expiry last, and no more than asked', async () => {
    await insertQueueRow(pool(), { id: 'unknown', retentionInDays: null, dueInSeconds: -100 });
    await insertQueueRow(pool(), { id: 'day-80', retentionInDays: 80, dueInSeconds: -50 });
    await insertQueueRow(pool(), { id: 'day-3', retentionInDays: 3 });
    await insertQueueRow(pool(), { id: 'day-40', retentionInDays: 40 });

    const first = await claimSessions(pool(), { workerId: 'w1', limit: 2, leaseSeconds: 30 });
    expect(first.map((c) => c.callSessionId)).toEqual(['day-3', 'day-40']);
    const rest = await claimSessions(pool(), { workerId: 'w1', limit: 5, leaseSeconds: 30 });
    expect(rest.map((c) => c.callSessionId)).toEqual(['day-80', 'unknown']);
    expect(await claimSessions(pool(), { workerId: 'w1', limit: 5, leaseSeconds: 30 })).toEqual([]);
  });

  it('gives every claim its own lease token, and never re-claims a session the worker still runs', async () => {
    await insertQueueRow(pool(), { id: 'again', status: 'pending' });
    const [first] = await claimSessions(pool(), { workerId: 'w1', limit: 1, leaseSeconds: 30 });
    // Intake resets the session while w1's first run still pages it.
    await pool().query(`update call_sessions set status = 'pending', lease_owner = null, next_attempt_at = now() where call_session_id = 'again'`);
    expect(await claimSessions(pool(), { workerId: 'w1', limit: 1, leaseSeconds: 30, exclude: ['again'] })).toEqual([]);
    const [second] = await claimSessions(pool(), { workerId: 'w1', limit: 1, leaseSeconds: 30 });
    expect(second!.callSessionId).toBe('again');
    expect(second!.leaseOwner).not.toBe(first!.leaseOwner);
    expect((await readSessionRow(pool(), 'again')).lease_owner).toBe(second!.leaseOwner);
  });

  it('hands back the stored cursor so a run resumes', async () => {
    await insertQueueRow(pool(), { id: 's1', status: 'retrying', cursor: 'page-7' });
    const [claimed] = await claimSessions(pool(), { workerId: 'w1', limit: 1, leaseSeconds: 30 });
    expect(claimed).toMatchObject({ callSessionId: 's1', cursor: 'page-7', attempts: 1, callType: 'default', callId: 's1' });
  });

  it('never gives one session to two concurrent claimers', async () => {
    for (let i = 0; i < 60; i += 1) await insertQueueRow(pool(), { id: `s${String(i).padStart(2, '0')}` });
    const claimers = Array.from({ length: 6 }, (_, w) => claimSessions(pool(), { workerId: `w${w}`, limit: 7, leaseSeconds: 30 }));
    const more = Array.from({ length: 6 }, (_, w) => claimSessions(pool(), { workerId: `w${w + 6}`, limit: 7, leaseSeconds: 30 }));
    const results = await Promise.all([...claimers, ...more]);
    const ids = results.flat().map((c) => c.callSessionId);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids.length).toBe(60);
    const owners = await pool().query<{ n: number }>(`select count(distinct lease_owner)::int as n from call_sessions`);
    expect(owners.rows[0]?.n).toBeGreaterThan(1);
    const attempts = await pool().query<{ max: number }>(`select max(attempts) as max from call_sessions`);
    expect(attempts.rows[0]?.max).toBe(1);
  });

  it('skips a lapsed session whose old owner is still inside a write transaction', async () => {
    await insertQueueRow(pool(), { id: 'busy', status: 'running', leaseOwner: 'slow', leaseExpiresInSeconds: -1 });
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let inside!: () => void;
    const entered = new Promise<void>((resolve) => (inside = resolve));
    const writing = withFencedTransaction(pool(), { callSessionId: 'busy', owner: 'slow' }, async () => {
      inside();
      await held;
    });
    await entered;
    expect(await claimSessions(pool(), { workerId: 'w1', limit: 5, leaseSeconds: 30 })).toEqual([]);
    release();
    await writing;
    const claimed = await claimSessions(pool(), { workerId: 'w1', limit: 5, leaseSeconds: 30 });
    expect(claimed.map((c) => c.callSessionId)).toEqual(['busy']);
  });
});
