import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateDataset, generateSession, type SimSession } from '../../tools/simulator/generate.ts';
import { startSimulator, type Simulator } from '../../tools/simulator/server.ts';
import { createSimClient } from './helpers.ts';
import { DAY_MS, HOUR_MS } from '../../src/time.ts';

const NEWEST_END = new Date('2026-06-10T18:00:00Z');

describe('simulator: call_stats (QueryCallSessionStats)', () => {
  let clock = NEWEST_END.getTime() + HOUR_MS;
  let sim: Simulator;
  let client: Awaited<ReturnType<typeof createSimClient>>;
  const dataset = generateDataset({ seed: 'stats', sizes: [3, 1, 8, 2, 5, 13, 4, 1, 6, 2, 9, 3], endedAt: NEWEST_END });
  // Two sessions ending at the same instant: call_cid decides their order.
  const tieA = generateSession({ seed: 'tie-a', size: 2, endedAt: new Date('2026-06-01T00:00:00Z'), callType: 'default', callId: 'aaa' });
  const tieB = generateSession({ seed: 'tie-b', size: 2, endedAt: new Date('2026-06-01T00:00:00Z'), callType: 'default', callId: 'bbb' });
  const all = [...dataset, tieA, tieB];
  const cid = (s: SimSession) => `${s.callType}:${s.callId}`;
  const ascending = [...all].sort((a, b) => a.endedAt.getTime() - b.endedAt.getTime() || (cid(a) < cid(b) ? -1 : cid(a) > cid(b) ? 1 : 0));

  beforeAll(async () => {
    sim = await startSimulator({ apiKey: 'stats-key', apiSecret: 'stats-secret', now: () => new Date(clock) });
    for (const session of all) sim.addSession(session);
    client = await createSimClient(sim);
  });
  afterAll(async () => {
    await sim.close();
  });

  async function pageAll(body: Record<string, unknown>) {
    const rows: any[] = [];
    let next: string | undefined;
    let pages = 0;
    do {
      const reply = await client.callStats({ ...body, next });
      // The spec's success status for QueryCallSessionStats.
      expect(reply.status, reply.text).toBe(201);
      rows.push(...reply.json.call_stats);
      next = reply.json.next;
      pages++;
    } while (next && pages < 100);
    return { rows, pages };
  }

  it('pages every session once in [session_ended_at, call_cid] order, both directions', async () => {
    const sortAsc = [
      { field: 'session_ended_at', direction: 1 },
      { field: 'call_cid', direction: 1 },
    ];
    const asc = await pageAll({ sort: sortAsc, limit: 4 });
    expect(asc.pages).toBe(4);
    expect(asc.rows.map((r) => r.call_session_id)).toEqual(ascending.map((s) => s.callSessionId));

    const desc = await pageAll({
      sort: [
        { field: 'session_ended_at', direction: -1 },
        { field: 'call_cid', direction: -1 },
      ],
      limit: 5,
    });
    expect(desc.rows.map((r) => r.call_session_id)).toEqual([...ascending].reverse().map((s) => s.callSessionId));

    // Without a sort the default is the same ascending order.
    expect((await pageAll({ limit: 100 })).rows.map((r) => r.call_session_id)).toEqual(ascending.map((s) => s.callSessionId));
  });

  it('returns CallStatsSessionResponse rows with counts consistent with the sessions', async () => {
    const reply = await client.callStats({ filter_conditions: { call_session_id: { $eq: dataset[5]?.callSessionId } } });
    const session = dataset[5] as SimSession;
    expect(reply.json.call_stats).toEqual([
      {
        call_type: session.callType,
        call_id: session.callId,
        call_session_id: session.callSessionId,
        generated_at: expect.any(String),
        call_started_at: session.startedAt.toISOString().replace('.000Z', 'Z'),
        call_ended_at: session.endedAt.toISOString().replace('.000Z', 'Z'),
        counts: expect.objectContaining({
          participants: new Set(session.participants.map((p) => p.user_id)).size,
          sessions: session.participants.length,
          total_participant_duration: session.totalParticipantDuration,
          live_sessions: session.participants.filter((p) => p.is_live).length,
          peak_concurrent_users: expect.any(Number),
          peak_concurrent_sessions: expect.any(Number),
          publishers: expect.any(Number),
          sfus_used: expect.any(Number),
        }),
      },
    ]);
    expect(reply.json.duration).toMatch(/^\d+\.\d\dms$/);
  });

  it('filters on session_ended_at with each operator, call_cid, call_session_id and $and', async () => {
    const pivot = ascending[6] as SimSession;
    const at = pivot.endedAt.toISOString();
    const ids = async (filter: unknown) => (await pageAll({ filter_conditions: filter, limit: 3 })).rows.map((r) => r.call_session_id);
    const where = (keep: (s: SimSession) => boolean) => ascending.filter(keep).map((s) => s.callSessionId);
    const t = pivot.endedAt.getTime();
    expect(await ids({ session_ended_at: { $gt: at } })).toEqual(where((s) => s.endedAt.getTime() > t));
    expect(await ids({ session_ended_at: { $gte: at } })).toEqual(where((s) => s.endedAt.getTime() >= t));
    expect(await ids({ session_ended_at: { $lt: at } })).toEqual(where((s) => s.endedAt.getTime() < t));
    expect(await ids({ session_ended_at: { $lte: at } })).toEqual(where((s) => s.endedAt.getTime() <= t));
    expect(await ids({ session_ended_at: { $eq: at } })).toEqual(where((s) => s.endedAt.getTime() === t));
    const lo = (ascending[2] as SimSession).endedAt.toISOString();
    expect(await ids({ session_ended_at: { $gte: lo, $lt: at } })).toEqual(where((s) => s.endedAt.getTime() >= Date.parse(lo) && s.endedAt.getTime() < t));
    expect(await ids({ $and: [{ session_ended_at: { $gte: lo } }, { session_ended_at: { $lt: at } }] })).toEqual(
      where((s) => s.endedAt.getTime() >= Date.parse(lo) && s.endedAt.getTime() < t),
    );
    expect(await ids({ call_cid: { $eq: 'default:aaa' } })).toEqual([tieA.callSessionId]);
    expect(await ids({ call_cid: cid(dataset[0] as SimSession) })).toEqual(where((s) => cid(s) === cid(dataset[0] as SimSession)));
    expect(await ids({ call_session_id: { $eq: tieB.callSessionId } })).toEqual([tieB.callSessionId]);
  });

  it('walks back with prev', async () => {
    const sort = [
      { field: 'session_ended_at', direction: 1 },
      { field: 'call_cid', direction: 1 },
    ];
    const forward = await pageAll({ sort, limit: 5 });
    let reply = await client.callStats({ sort, limit: 5 });
    while (reply.json.next) reply = await client.callStats({ sort, limit: 5, next: reply.json.next });
    const pages: any[][] = [reply.json.call_stats];
    while (reply.json.prev) {
      reply = await client.callStats({ sort, limit: 5, prev: reply.json.prev });
      pages.unshift(reply.json.call_stats);
    }
    expect(pages.flat().map((r) => r.call_session_id)).toEqual(forward.rows.map((r) => r.call_session_id));
  });

  it('keeps a cursor valid when sessions are added before it', async () => {
    const own = await startSimulator({ apiKey: 'k', apiSecret: 's', now: () => new Date(clock) });
    try {
      for (const session of all) own.addSession(session);
      const ownClient = await createSimClient(own);
      const sort = [
        { field: 'session_ended_at', direction: 1 },
        { field: 'call_cid', direction: 1 },
      ];
      const first = await ownClient.callStats({ sort, limit: 5 });
      own.addSession(generateSession({ seed: 'early', size: 1, endedAt: new Date('2026-01-01T00:00:00Z') }));
      const second = await ownClient.callStats({ sort, limit: 5, next: first.json.next });
      expect(second.json.call_stats.map((r: any) => r.call_session_id)).toEqual(ascending.slice(5, 10).map((s) => s.callSessionId));
    } finally {
      await own.close();
    }
  });

  it('lists a session only once its report is generated', async () => {
    const fresh = generateSession({ seed: 'fresh-stats', size: 2, endedAt: new Date(clock - 1_000) });
    sim.addSession(fresh);
    sim.setOptions({ notReadyForMs: 60_000 });
    try {
      const filter = { call_session_id: fresh.callSessionId };
      expect((await client.callStats({ filter_conditions: filter })).json.call_stats).toEqual([]);
      clock += 59_000;
      const ready = await client.callStats({ filter_conditions: filter });
      expect(ready.json.call_stats).toHaveLength(1);
      expect(ready.json.call_stats[0].generated_at).toBe(new Date(fresh.endedAt.getTime() + 60_000).toISOString().replace('.000Z', 'Z'));
    } finally {
      sim.setOptions({ notReadyForMs: 0 });
    }
  });

  it('writes nanosecond timestamps and "" ends when switched', async () => {
    sim.setOptions({ timestampFormat: 'nanoseconds', lastPageNext: 'empty' });
    try {
      const reply = await client.callStats({ filter_conditions: { call_session_id: tieA.callSessionId } });
      expect(reply.json.call_stats[0].call_ended_at).toBe(tieA.endedAt.getTime() * 1e6);
      expect(reply.json.next).toBe('');
      expect(reply.json.prev).toBe('');
    } finally {
      sim.setOptions({ timestampFormat: 'rfc3339', lastPageNext: 'absent' });
    }
  });

  it('lists rows without the optional window, and broken rows, still filtered and sorted on the true times', async () => {
    const own = await startSimulator({ apiKey: 'k', apiSecret: 's', now: () => new Date(clock) });
    try {
      const base = new Date('2026-05-01T00:00:00Z');
      const noEnd = generateSession({ seed: 'q-end', size: 2, endedAt: base, statsRow: { omit: ['call_ended_at'] } });
      const noWindow = generateSession({
        seed: 'q-window',
        size: 2,
        endedAt: new Date(base.getTime() + 60_000),
        statsRow: { omit: ['call_started_at', 'call_ended_at'] },
      });
      const noId = generateSession({ seed: 'q-id', size: 2, endedAt: new Date(base.getTime() + 120_000), statsRow: { unusable: 'no_call_session_id' } });
      const numericId = generateSession({ seed: 'q-num', size: 2, endedAt: new Date(base.getTime() + 180_000), statsRow: { unusable: 'call_id_not_string' } });
      for (const session of [noEnd, noWindow, noId, numericId]) own.addSession(session);
      const ownClient = await createSimClient(own);
      const reply = await ownClient.callStats({ filter_conditions: { session_ended_at: { $gte: base.toISOString() } } });
      const rows = reply.json.call_stats as Record<string, unknown>[];
      expect(rows).toHaveLength(4);
      expect(rows[0]).toMatchObject({ call_session_id: noEnd.callSessionId, call_started_at: noEnd.startedAt.toISOString().replace('.000Z', 'Z') });
      expect(rows[0]).not.toHaveProperty('call_ended_at');
      expect(rows[1]).toMatchObject({ call_session_id: noWindow.callSessionId, generated_at: expect.any(String) });
      expect(rows[1]).not.toHaveProperty('call_started_at');
      expect(rows[1]).not.toHaveProperty('call_ended_at');
      expect(rows[2]).toMatchObject({ call_type: noId.callType, call_id: noId.callId });
      expect(rows[2]).not.toHaveProperty('call_session_id');
      expect(rows[3]).toMatchObject({ call_session_id: numericId.callSessionId, call_id: expect.any(Number) });
    } finally {
      await own.close();
    }
  });

  it('spreads a dataset over 89 days, with seeded shares of rough rows', () => {
    const newest = new Date('2026-06-10T18:00:00Z');
    const options = {
      seed: 'spread',
      sizes: Array.from({ length: 60 }, () => 1),
      endedAt: newest,
      spreadDays: 89,
      withoutEndShare: 0.2,
      withoutWindowShare: 0.1,
      unusableShare: 0.1,
    };
    const spread = generateDataset(options);
    expect(spread[0]?.endedAt).toEqual(newest);
    expect(spread.at(-1)?.endedAt).toEqual(new Date(newest.getTime() - 89 * DAY_MS));
    const ends = spread.map((s) => s.endedAt.getTime());
    expect(ends).toEqual([...ends].sort((a, b) => b - a));
    const kinds = spread.map((s) => (s.statsRow?.unusable ? 'unusable' : s.statsRow?.omit?.length === 2 ? 'window' : s.statsRow?.omit ? 'end' : 'full'));
    for (const kind of ['unusable', 'window', 'end', 'full']) expect(kinds, kind).toContain(kind);
    // Same seed, same dataset; without the options, the same sessions as before they existed.
    expect(generateDataset(options)).toEqual(spread);
    const plain = generateDataset({ seed: 'spread', sizes: [3, 2], endedAt: newest });
    expect(plain.every((s) => s.statsRow === undefined)).toBe(true);
    expect(plain.map((s) => s.callSessionId)).toEqual(
      generateDataset({ seed: 'spread', sizes: [3, 2], endedAt: newest, unusableShare: 0 }).map((s) => s.callSessionId),
    );
  });

  it('refuses bad limits, fields, operators, dates, sorts and foreign cursors with 400', async () => {
    const first = await client.callStats({ limit: 2, filter_conditions: { session_ended_at: { $gte: '2026-01-01T00:00:00Z' } } });
    const bodies: unknown[] = [
      { limit: 101 },
      { limit: -1 },
      { limit: '10' },
      { filter_conditions: { created_at: { $gt: '2026-01-01T00:00:00Z' } } },
      { filter_conditions: { session_ended_at: { $ne: '2026-01-01T00:00:00Z' } } },
      { filter_conditions: { session_ended_at: { $gt: 'yesterday' } } },
      { filter_conditions: { call_cid: { $in: ['a'] } } },
      { filter_conditions: [] },
      { sort: [{ field: 'call_cid', direction: 1 }] },
      { sort: [{ field: 'session_ended_at', direction: 2 }] },
      { sort: [{ field: 'session_ended_at' }, { field: 'call_id' }] },
      { sort: [{ field: 'session_ended_at' }, { field: 'call_cid' }, { field: 'call_cid' }] },
      { next: first.json.next, limit: 2 },
      { next: 'garbage' },
      [],
    ];
    for (const body of bodies) {
      const reply = await client.callStats(body);
      expect(reply.status, JSON.stringify(body)).toBe(400);
      expect(reply.json).toMatchObject({ code: 4, StatusCode: 400 });
    }
    const notJson = await client.request('POST', '/api/v2/video/call_stats', { rawBody: '{"limit":' });
    expect(notJson.json).toMatchObject({ StatusCode: 400, message: 'request body is not valid JSON' });
    const empty = await client.request('POST', '/api/v2/video/call_stats', { rawBody: '' });
    expect(empty.status).toBe(201);
  });
});
