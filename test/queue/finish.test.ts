import { beforeEach, describe, expect, it } from 'vitest';
import { LeaseLostError } from '../../src/queue/fence.ts';
import { countArchived, finishSession } from '../../src/queue/finish.ts';
import { useTestDatabase } from '../helpers/db.ts';
import { readSessionRow } from '../helpers/session-rows.ts';
import { clearQueue, insertParticipantRows, insertQueueRow } from './queue-rows.ts';

const db = useTestDatabase();
const pool = () => db.current.database.pool;
const lease = { callSessionId: 's1', owner: 'w1' };
const totals = { participantSessions: 3, participantDuration: 180 };

beforeEach(async () => {
  await clearQueue(pool());
  await insertQueueRow(pool(), { id: 's1', status: 'running', leaseOwner: 'w1', leaseExpiresInSeconds: 20, attempts: 2, cursor: 'c3', lastError: 'old error' });
  await insertParticipantRows(pool(), 's1', 3);
});

describe('countArchived', () => {
  it('counts rows and sums their durations for one session only', async () => {
    await insertQueueRow(pool(), { id: 'other' });
    await insertParticipantRows(pool(), 'other', 5);
    expect(await countArchived(pool(), 's1')).toEqual({ rows: 3, durationSeconds: 180 });
    expect(await countArchived(pool(), 'nothing')).toEqual({ rows: 0, durationSeconds: 0 });
  });
});

describe('finishSession', () => {
  it('complete: stores the totals and the count, clears cursor and lease, keeps a note', async () => {
    await finishSession(pool(), lease, { status: 'complete', totals, note: null });
    const row = await readSessionRow(pool(), 's1');
    expect(row).toMatchObject({
      status: 'complete',
      total_participant_sessions: 3,
      total_participant_duration: 180,
      archived_participant_sessions: 3,
      cursor: null,
      last_error: null,
      lease_owner: null,
      lease_expires_at: null,
      attempts: 2,
    });
    expect(row.archived_at).toBeInstanceOf(Date);
  });

  it('complete with a duration note keeps the note in last_error', async () => {
    await finishSession(pool(), lease, { status: 'complete', totals: { ...totals, participantDuration: 200 }, note: 'summed 180 s, Stream 200 s' });
    expect(await readSessionRow(pool(), 's1')).toMatchObject({ status: 'complete', last_error: 'summed 180 s, Stream 200 s', total_participant_duration: 200 });
  });

  it('retrying: due after the delay, cursor kept or dropped as asked', async () => {
    await finishSession(pool(), lease, { status: 'retrying', delayMs: 60_000, error: 'Stream answered 503', restart: false, totals: null });
    let row = await readSessionRow(pool(), 's1');
    expect(row).toMatchObject({ status: 'retrying', cursor: 'c3', last_error: 'Stream answered 503', lease_owner: null, total_participant_sessions: null });
    expect(row.due_in).toBeGreaterThan(58);
    expect(row.due_in).toBeLessThanOrEqual(60);

    await pool().query(`update call_sessions set status = 'running', lease_owner = 'w1' where call_session_id = 's1'`);
    await finishSession(pool(), lease, {
      status: 'retrying',
      delayMs: 1_500,
      error: 'holds 3 rows, Stream reports 4',
      restart: true,
      totals: { participantSessions: 4, participantDuration: 240 },
    });
    row = await readSessionRow(pool(), 's1');
    expect(row).toMatchObject({ status: 'retrying', cursor: null, total_participant_sessions: 4, archived_participant_sessions: 3 });
    expect(row.due_in).toBeGreaterThan(0);
    expect(row.due_in).toBeLessThanOrEqual(1.5);
  });

  it('dead: records the error and keeps the cursor as the record of how far it got', async () => {
    await finishSession(pool(), lease, { status: 'dead', error: 'Stream answered 401', totals: null });
    expect(await readSessionRow(pool(), 's1')).toMatchObject({
      status: 'dead',
      last_error: 'Stream answered 401',
      cursor: 'c3',
      lease_owner: null,
      archived_at: null,
    });
  });

  it('dead after a count mismatch forgets the cursor', async () => {
    await finishSession(pool(), lease, { status: 'dead', error: 'gave up', totals, restart: true });
    expect(await readSessionRow(pool(), 's1')).toMatchObject({ status: 'dead', cursor: null });
  });

  it('expired: records the totals and why, never complete', async () => {
    await finishSession(pool(), lease, {
      status: 'expired',
      totals: { participantSessions: 40, participantDuration: 9000 },
      note: 'Stream returned no entries',
    });
    expect(await readSessionRow(pool(), 's1')).toMatchObject({
      status: 'expired',
      total_participant_sessions: 40,
      archived_participant_sessions: 3,
      last_error: 'Stream returned no entries',
      archived_at: null,
      cursor: null,
    });
  });

  it('expired on a session archived in full before (re-announced after retention) keeps it complete', async () => {
    await pool().query(`update call_sessions set archived_at = now() - interval '50 days' where call_session_id = 's1'`);
    await finishSession(pool(), lease, { status: 'expired', totals, note: 'Stream returned no entries' });
    expect(await readSessionRow(pool(), 's1')).toMatchObject({ status: 'complete', archived_participant_sessions: 3, lease_owner: null });
    // with fewer rows than Stream's total it is expired after all
    await pool().query(`update call_sessions set status = 'running', lease_owner = 'w1' where call_session_id = 's1'`);
    await finishSession(pool(), lease, { status: 'expired', totals: { participantSessions: 4, participantDuration: 240 }, note: 'x' });
    expect((await readSessionRow(pool(), 's1')).status).toBe('expired');
  });

  it('writes nothing and throws when the lease has passed to someone else', async () => {
    await pool().query(`update call_sessions set lease_owner = 'w2' where call_session_id = 's1'`);
    const { due_in: _a, lease_in: _b, ...before } = await readSessionRow(pool(), 's1');
    for (const outcome of [
      { status: 'complete', totals, note: null },
      { status: 'retrying', delayMs: 1, error: 'x', restart: true, totals: null },
      { status: 'dead', error: 'x', totals: null },
      { status: 'expired', totals, note: 'x' },
    ] as const) {
      await expect(finishSession(pool(), lease, outcome)).rejects.toBeInstanceOf(LeaseLostError);
    }
    const { due_in: _c, lease_in: _d, ...after } = await readSessionRow(pool(), 's1');
    expect(after).toEqual(before);
  });
});
