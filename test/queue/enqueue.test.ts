import { randomUUID } from 'node:crypto';
import { createServer, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabase } from '../../src/db/client.ts';
import { EnqueueTimeoutError, enqueueWebhookEvent } from '../../src/queue/enqueue.ts';
import { SESSIONS_DUE_CHANNEL } from '../../src/queue/sql.ts';
import { parseWebhookEvent, type HandledWebhookEvent } from '../../src/stream/webhook-events.ts';
import { DAY_MS, HOUR_MS, MINUTE_MS } from '../../src/time.ts';
import { useTestDatabase } from '../helpers/db.ts';
import { sessionEndedBody, statsReportReadyBody, listenForNotifications } from '../helpers/webhooks.ts';

const testDb = useTestDatabase();
const DEADLINE = { deadlineMs: 4_500 };
/** Whole seconds `msFromNow` from now: an event time inside the plausible band unless far enough away. */
const wholeSeconds = (msFromNow: number) => new Date(Math.floor((Date.now() + msFromNow) / 1000) * 1000);

async function enqueue(body: Record<string, unknown>, webhookId: string = randomUUID(), attempt: number | null = 1) {
  const event = parseWebhookEvent(body) as HandledWebhookEvent;
  const bodyText = JSON.stringify(body);
  return enqueueWebhookEvent(testDb.current.database.pool, { webhookId, attempt, event, bodyText, payload: body }, DEADLINE);
}

interface EnqueuedRow {
  call_session_id: string;
  call_type: string;
  call_id: string;
  call_cid: string;
  status: string;
  attempts: number;
  cursor: string | null;
  lease_owner: string | null;
  lease_expires_at: Date | null;
  next_attempt_at: Date;
  session_ended_at: Date | null;
  stats_report_ready_at: Date | null;
  retention_expires_at: Date | null;
  updated_at: Date;
  db_now: Date;
}

async function session(id: string): Promise<EnqueuedRow | undefined> {
  const { rows } = await testDb.current.database.pool.query<EnqueuedRow>('select *, now() as db_now from call_sessions where call_session_id = $1', [id]);
  return rows[0];
}

async function setSession(id: string, assignments: string): Promise<void> {
  await testDb.current.database.pool.query(`update call_sessions set ${assignments} where call_session_id = $1`, [id]);
}

describe('enqueueWebhookEvent: call.stats_report_ready', () => {
  it('stores the event and makes a new session due now', async () => {
    const sessionId = randomUUID();
    const webhookId = randomUUID();
    // A minute ago, with Stream's nanosecond digits.
    const created = wholeSeconds(-MINUTE_MS);
    const result = await enqueue(
      statsReportReadyBody({ sessionId, callCid: 'default:room:7', createdAt: created.toISOString().replace('.000Z', '.879421674Z') }),
      webhookId,
      2,
    );
    expect(result).toEqual({ stored: true, due: true });

    const row = await session(sessionId);
    expect(row).toMatchObject({
      call_type: 'default',
      call_id: 'room:7',
      call_cid: 'default:room:7',
      status: 'pending',
      attempts: 0,
      session_ended_at: null,
      stats_report_ready_at: new Date(created.getTime() + 879),
      retention_expires_at: new Date(created.getTime() + 879 + 90 * DAY_MS),
    });
    expect(row!.next_attempt_at.getTime()).toBeLessThanOrEqual(row!.db_now.getTime());

    const { rows: events } = await testDb.current.database.pool.query(
      'select type, call_cid, session_id, attempt, payload from webhook_events where webhook_id = $1',
      [webhookId],
    );
    expect(events).toEqual([
      {
        type: 'call.stats_report_ready',
        call_cid: 'default:room:7',
        session_id: sessionId,
        attempt: 2,
        payload: expect.objectContaining({ type: 'call.stats_report_ready', session_id: sessionId }),
      },
    ]);
  });

  it('reads a missing created_at as now', async () => {
    const sessionId = randomUUID();
    const body = statsReportReadyBody({ sessionId });
    delete body.created_at;
    await enqueue(body);
    const row = await session(sessionId);
    // Both are the statement's now().
    expect(row!.stats_report_ready_at).toEqual(row!.next_attempt_at);
    expect(row!.retention_expires_at).toEqual(new Date(row!.next_attempt_at.getTime() + 90 * DAY_MS));
  });

  it.each([
    ['two days ahead', 2 * DAY_MS, false],
    ['two hours ahead', 2 * HOUR_MS, false],
    ['half an hour ahead', HOUR_MS / 2, true],
    ['twenty hours behind', -20 * HOUR_MS, true],
    ['two days behind', -2 * DAY_MS, false],
    ['years behind', -5 * 365 * DAY_MS, false],
  ])('estimates retention from a created_at %s only if plausible (else from now)', async (_, offsetMs, plausible) => {
    const sessionId = randomUUID();
    const created = wholeSeconds(offsetMs);
    await enqueue(statsReportReadyBody({ sessionId, createdAt: created.toISOString() }));
    const row = await session(sessionId);
    // The event's time is recorded as it came, unless more than an hour ahead: such a time says
    // nothing about which report is newer (see REPORTED_AT), so the receive time stands in.
    expect(row!.stats_report_ready_at).toEqual(offsetMs <= HOUR_MS ? created : row!.next_attempt_at);
    const from = plausible ? created : row!.next_attempt_at;
    expect(row!.retention_expires_at).toEqual(new Date(from.getTime() + 90 * DAY_MS));

    // The same rule for a session already known without an end.
    const later = wholeSeconds(offsetMs + 1_000);
    await enqueue(statsReportReadyBody({ sessionId, createdAt: later.toISOString() }));
    const again = await session(sessionId);
    expect(again!.retention_expires_at).toEqual(new Date((plausible ? later : again!.next_attempt_at).getTime() + 90 * DAY_MS));
  });

  it('changes nothing at all for a duplicate webhook id', async () => {
    const sessionId = randomUUID();
    const webhookId = randomUUID();
    await enqueue(statsReportReadyBody({ sessionId }), webhookId);
    await setSession(sessionId, `status = 'complete', attempts = 3, cursor = 'c', updated_at = '2020-01-01Z'`);
    const before = await session(sessionId);

    const again = await enqueue(statsReportReadyBody({ sessionId, createdAt: '2026-05-01T00:00:00Z' }), webhookId);
    expect(again).toEqual({ stored: false, due: false });
    const after = await session(sessionId);
    expect({ ...after, db_now: null }).toEqual({ ...before, db_now: null });
    const { rows } = await testDb.current.database.pool.query('select count(*)::int as n from webhook_events where webhook_id = $1', [webhookId]);
    expect(rows[0].n).toBe(1);
  });

  it.each(['complete', 'dead', 'expired', 'retrying', 'running'])('re-archives a %s session from the start', async (status) => {
    const sessionId = randomUUID();
    await enqueue(sessionEndedBody({ sessionId, endedAt: '2026-04-01T10:00:00Z' }));
    await setSession(
      sessionId,
      `status = '${status}', attempts = 4, cursor = 'page-3', lease_owner = 'worker-a',
       lease_expires_at = now() + interval '1 minute', next_attempt_at = now() + interval '1 day'`,
    );

    const result = await enqueue(statsReportReadyBody({ sessionId, createdAt: '2026-04-01T10:05:00Z' }));
    expect(result).toEqual({ stored: true, due: true });
    const row = await session(sessionId);
    expect(row).toMatchObject({
      status: 'pending',
      attempts: 0,
      cursor: null,
      lease_owner: null,
      lease_expires_at: null,
      stats_report_ready_at: new Date('2026-04-01T10:05:00Z'),
      // The end the session_ended event gave, not the report's time.
      retention_expires_at: new Date(Date.parse('2026-04-01T10:00:00Z') + 90 * DAY_MS),
    });
    expect(row!.next_attempt_at.getTime()).toBeLessThanOrEqual(row!.db_now.getTime());
  });

  // X-WEBHOOK-ID is not signed: a captured body re-sent under fresh ids must change nothing (docs/architecture.md, "Signature first").
  it.each(['complete', 'dead', 'expired', 'retrying', 'running', 'pending'])(
    'leaves a %s session alone for a replayed or older report under a new webhook id, storing the event',
    async (status) => {
      const sessionId = randomUUID();
      const createdAt = '2026-04-01T10:05:00Z';
      await enqueue(statsReportReadyBody({ sessionId, createdAt }));
      await setSession(
        sessionId,
        `status = '${status}', attempts = 4, cursor = 'page-3', lease_owner = 'worker-a', updated_at = '2020-01-01Z',
         lease_expires_at = now() + interval '1 minute', next_attempt_at = now() + interval '1 day'`,
      );
      const before = await session(sessionId);
      for (const replayed of [createdAt, '2026-04-01T10:04:59Z', '2026-04-01T10:05:00.000000000Z']) {
        const webhookId = randomUUID();
        expect(await enqueue(statsReportReadyBody({ sessionId, createdAt: replayed }), webhookId)).toEqual({ stored: true, due: false });
        const { rows } = await testDb.current.database.pool.query('select count(*)::int as n from webhook_events where webhook_id = $1', [webhookId]);
        expect(rows[0].n).toBe(1);
      }
      expect({ ...(await session(sessionId)), db_now: null }).toEqual({ ...before, db_now: null });
    },
  );

  it('re-archives a complete session for a genuinely newer report, once, and not for its replays', async () => {
    const sessionId = randomUUID();
    await enqueue(statsReportReadyBody({ sessionId, createdAt: '2026-04-01T10:05:00Z' }));
    await setSession(sessionId, `status = 'complete', attempts = 2, next_attempt_at = now() + interval '1 day'`);
    const newer = statsReportReadyBody({ sessionId, createdAt: '2026-04-01T10:05:00.001Z' });
    expect(await enqueue(newer)).toEqual({ stored: true, due: true });
    expect(await session(sessionId)).toMatchObject({ status: 'pending', attempts: 0, stats_report_ready_at: new Date('2026-04-01T10:05:00.001Z') });
    await setSession(sessionId, `status = 'complete', attempts = 2, next_attempt_at = now() + interval '1 day'`);
    for (let i = 0; i < 5; i++) expect(await enqueue(newer)).toEqual({ stored: true, due: false });
    expect((await session(sessionId))!.status).toBe('complete');
  });

  it.each([
    ['absent', undefined],
    ['two days ahead', 2 * DAY_MS],
  ])('acts on a report whose created_at is %s only when no report was acted on yet, recording the receive time', async (_, offsetMs) => {
    const sessionId = randomUUID();
    const body = statsReportReadyBody({ sessionId, ...(offsetMs === undefined ? {} : { createdAt: wholeSeconds(offsetMs).toISOString() }) });
    if (offsetMs === undefined) delete body.created_at;
    expect(await enqueue(body)).toEqual({ stored: true, due: true });
    const first = await session(sessionId);
    expect(first!.stats_report_ready_at).toEqual(first!.next_attempt_at);
    await setSession(sessionId, `status = 'complete', next_attempt_at = now() + interval '1 day'`);
    // Its replays, later (so a later now()), are not newer.
    for (let i = 0; i < 3; i++) expect(await enqueue(body)).toEqual({ stored: true, due: false });
    expect((await session(sessionId))!.stats_report_ready_at).toEqual(first!.stats_report_ready_at);
    // A report with a plausible time after the recorded receive time is.
    expect(await enqueue(statsReportReadyBody({ sessionId, createdAt: wholeSeconds(30 * MINUTE_MS).toISOString() }))).toEqual({ stored: true, due: true });
  });

  it('treats a recorded report time more than an hour ahead (written before the replay rule) as none, once', async () => {
    const sessionId = randomUUID();
    await enqueue(statsReportReadyBody({ sessionId, createdAt: '2026-04-01T10:05:00Z' }));
    await setSession(sessionId, `status = 'complete', stats_report_ready_at = now() + interval '10 days', next_attempt_at = now() + interval '1 day'`);
    const body = statsReportReadyBody({ sessionId, createdAt: '2026-04-01T10:05:00Z' });
    expect(await enqueue(body)).toEqual({ stored: true, due: true });
    expect((await session(sessionId))!.stats_report_ready_at).toEqual(new Date('2026-04-01T10:05:00Z'));
    expect(await enqueue(body)).toEqual({ stored: true, due: false });
  });

  it('sends a NOTIFY with the session id once the statement commits', async () => {
    const listener = await listenForNotifications(testDb.current.url, SESSIONS_DUE_CHANNEL);
    try {
      const sessionId = randomUUID();
      await enqueue(statsReportReadyBody({ sessionId }));
      expect(await listener.next()).toBe(sessionId);
    } finally {
      await listener.close();
    }
  });

  it('keeps integers of the body exact in the stored payload', async () => {
    const sessionId = randomUUID();
    const webhookId = randomUUID();
    const event = parseWebhookEvent(statsReportReadyBody({ sessionId })) as HandledWebhookEvent;
    const bodyText = `{"type":"call.stats_report_ready","call_cid":"default:call-1","session_id":"${sessionId}","created_at":1775658215879421674}`;
    await enqueueWebhookEvent(testDb.current.database.pool, { webhookId, attempt: null, event, bodyText, payload: JSON.parse(bodyText) }, DEADLINE);
    const { rows } = await testDb.current.database.pool.query(
      `select payload->>'created_at' as created_at, attempt from webhook_events where webhook_id = $1`,
      [webhookId],
    );
    expect(rows[0]).toEqual({ created_at: '1775658215879421674', attempt: null });
  });

  it('stores a body with a \\u0000 escape, which jsonb refuses, without its NUL characters', async () => {
    const sessionId = randomUUID();
    const webhookId = randomUUID();
    const body = { ...statsReportReadyBody({ sessionId }), note: 'a\u0000b' };
    const bodyText = JSON.stringify(body);
    expect(bodyText).toContain('\\u0000');
    const event = parseWebhookEvent(body) as HandledWebhookEvent;
    const result = await enqueueWebhookEvent(testDb.current.database.pool, { webhookId, attempt: 1, event, bodyText, payload: body }, DEADLINE);
    expect(result.stored).toBe(true);
    const { rows } = await testDb.current.database.pool.query(`select payload->>'note' as note from webhook_events where webhook_id = $1`, [webhookId]);
    expect(rows[0].note).toBe('ab');
  });
});

describe('enqueueWebhookEvent: call.session_ended', () => {
  it('records a new session as pending, due one hour later, retention from the session end', async () => {
    const sessionId = randomUUID();
    const result = await enqueue(sessionEndedBody({ sessionId, endedAt: '2026-04-08T14:00:00.5Z', createdAt: '2026-04-08T14:00:03Z' }));
    expect(result).toEqual({ stored: true, due: false });
    const row = await session(sessionId);
    expect(row).toMatchObject({
      status: 'pending',
      session_ended_at: new Date('2026-04-08T14:00:00.500Z'),
      stats_report_ready_at: null,
      retention_expires_at: new Date(Date.parse('2026-04-08T14:00:00.500Z') + 90 * DAY_MS),
    });
    // updated_at is the same statement's now().
    expect(row!.next_attempt_at.getTime() - row!.updated_at.getTime()).toBe(HOUR_MS);
  });

  it('uses the event created_at when the call carries no session end', async () => {
    const sessionId = randomUUID();
    const created = wholeSeconds(-5_000);
    // Integer nanoseconds, exact as a double for whole seconds.
    await enqueue(sessionEndedBody({ sessionId, endedAt: null, createdAt: (created.getTime() / 1000) * 1e9 }));
    const row = await session(sessionId);
    expect(row!.session_ended_at).toEqual(created);
    expect(row!.retention_expires_at).toEqual(new Date(created.getTime() + 90 * DAY_MS));
  });

  it('reads an implausible created_at as now when no session end is given, and uses a given end whatever its age', async () => {
    const sessionId = randomUUID();
    await enqueue(sessionEndedBody({ sessionId, endedAt: null, createdAt: '2001-01-01T00:00:00Z' }));
    const row = await session(sessionId);
    // Both are the statement's now() (due is now() + 1 hour).
    expect(row!.session_ended_at).toEqual(new Date(row!.next_attempt_at.getTime() - HOUR_MS));
    expect(row!.retention_expires_at).toEqual(new Date(row!.next_attempt_at.getTime() - HOUR_MS + 90 * DAY_MS));

    const old = randomUUID();
    const ended = wholeSeconds(-80 * DAY_MS);
    await enqueue(sessionEndedBody({ sessionId: old, endedAt: ended.toISOString(), createdAt: '2001-01-01T00:00:00Z' }));
    expect(await session(old)).toMatchObject({ session_ended_at: ended, retention_expires_at: new Date(ended.getTime() + 90 * DAY_MS) });
  });

  it('does not delay a session that stats_report_ready already made due (out of order delivery)', async () => {
    const listener = await listenForNotifications(testDb.current.url, SESSIONS_DUE_CHANNEL);
    try {
      const sessionId = randomUUID();
      await enqueue(statsReportReadyBody({ sessionId, createdAt: '2026-04-08T14:10:00Z' }));
      expect(await listener.next()).toBe(sessionId);

      const result = await enqueue(sessionEndedBody({ sessionId, endedAt: '2026-04-08T14:00:00Z' }));
      expect(result).toEqual({ stored: true, due: true });
      const row = await session(sessionId);
      expect(row!.status).toBe('pending');
      expect(row!.next_attempt_at.getTime()).toBeLessThanOrEqual(row!.db_now.getTime());
      expect(row!.session_ended_at).toEqual(new Date('2026-04-08T14:00:00Z'));
      expect(row!.stats_report_ready_at).toEqual(new Date('2026-04-08T14:10:00Z'));
      // Learning the real end moves retention to end + 90 days.
      expect(row!.retention_expires_at).toEqual(new Date(Date.parse('2026-04-08T14:00:00Z') + 90 * DAY_MS));
    } finally {
      await listener.close();
    }
  });

  it('brings a retrying session due later than an hour forward to one hour', async () => {
    const sessionId = randomUUID();
    await enqueue(statsReportReadyBody({ sessionId }));
    await setSession(sessionId, `status = 'retrying', attempts = 2, next_attempt_at = now() + interval '5 hours'`);
    await enqueue(sessionEndedBody({ sessionId }));
    const row = await session(sessionId);
    expect(row!.status).toBe('retrying');
    expect(row!.attempts).toBe(2);
    // updated_at is the same statement's now().
    expect(row!.next_attempt_at.getTime() - row!.updated_at.getTime()).toBe(HOUR_MS);
  });

  it('never changes the status or schedule of a complete or running session, nor a known end', async () => {
    for (const status of ['complete', 'running']) {
      const sessionId = randomUUID();
      await enqueue(sessionEndedBody({ sessionId, endedAt: '2026-04-08T14:00:00Z' }));
      await setSession(sessionId, `status = '${status}', next_attempt_at = '2030-01-01Z', lease_owner = 'w'`);
      const result = await enqueue(sessionEndedBody({ sessionId, endedAt: '2026-04-08T15:00:00Z' }));
      expect(result).toEqual({ stored: true, due: false });
      const row = await session(sessionId);
      expect(row).toMatchObject({
        status,
        lease_owner: 'w',
        next_attempt_at: new Date('2030-01-01Z'),
        session_ended_at: new Date('2026-04-08T14:00:00Z'),
        retention_expires_at: new Date(Date.parse('2026-04-08T14:00:00Z') + 90 * DAY_MS),
      });
    }
  });

  it('sends no NOTIFY for a session that is not due yet', async () => {
    const listener = await listenForNotifications(testDb.current.url, SESSIONS_DUE_CHANNEL);
    try {
      await enqueue(sessionEndedBody({ sessionId: randomUUID() }));
      const due = randomUUID();
      await enqueue(statsReportReadyBody({ sessionId: due }));
      // Notifications arrive in commit order: the first one is the due session's.
      expect(await listener.next()).toBe(due);
    } finally {
      await listener.close();
    }
  });
});

describe('enqueueWebhookEvent: an unresponsive database', () => {
  const sockets = new Set<Socket>();
  // Accepts connections and never answers, like a server stuck behind a dead network path.
  const silent = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  beforeAll(async () => {
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  });
  afterAll(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => silent.close(() => resolve()));
  });

  it('rejects with EnqueueTimeoutError at the deadline instead of waiting on the pool', async () => {
    const address = silent.address();
    if (address === null || typeof address === 'string') throw new Error('no port');
    // A pool whose own connect timeout is far longer than the deadline.
    const database = createDatabase(`postgres://postgres@127.0.0.1:${address.port}/none`, { connectionTimeoutMillis: 60_000 });
    try {
      const event = parseWebhookEvent(statsReportReadyBody()) as HandledWebhookEvent;
      const pending = enqueueWebhookEvent(database.pool, { webhookId: 'w', attempt: null, event, bodyText: '{}', payload: {} }, { deadlineMs: 200 });
      await expect(pending).rejects.toBeInstanceOf(EnqueueTimeoutError);
    } finally {
      for (const socket of sockets) socket.destroy();
      await database.close();
    }
  });
});
