import type { AddressInfo } from 'node:net';
import { StreamClient } from '@stream-io/node-sdk';
import type { FastifyInstance } from 'fastify';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { buildApp } from '../../src/http/app.ts';
import { createLogger } from '../../src/logger.ts';
import { createMetrics } from '../../src/metrics.ts';
import { generateSession, type SimSession } from '../../tools/simulator/generate.ts';
import { startSimulator, type Simulator } from '../../tools/simulator/server.ts';
import { participantJson } from '../../tools/simulator/wire.ts';
import { createServerToken } from '../../src/stream/token.ts';
import { createCursorScope, encodeArchiveCursor } from '../../src/archive/cursor.ts';
import { parseStreamJson } from '../../src/stream/schemas.ts';
import { expectedSession, insertCallSession, insertEntries, type WireEntry } from '../helpers/attendance-data.ts';
import { useTestDatabase } from '../helpers/db.ts';
import { HOUR_MS } from '../../src/time.ts';

const API_KEY = 'archive-key';
const API_SECRET = 'archive-secret-0123456789';
const OLD_SECRET = 'archive-old-secret-9876543210';
const config = loadConfig({ STREAM_API_KEY: API_KEY, STREAM_API_SECRET: API_SECRET, STREAM_PREVIOUS_API_SECRETS: OLD_SECRET });

type SdkEntry = { user_session_id: string; user_id: string; publisher_type: string } & Record<string, unknown>;
type Filter = Record<string, unknown> | undefined;

/** The entry exactly as the simulator serves it: what participant_session_entry(p) gives back for the row the worker stores. */
const wireEntries = (session: SimSession): WireEntry[] => session.participants.map((p) => JSON.parse(participantJson(p, 'rfc3339', 'omit')) as WireEntry);
const byId = (a: { user_session_id: string }, b: { user_session_id: string }) =>
  a.user_session_id < b.user_session_id ? -1 : a.user_session_id > b.user_session_id ? 1 : 0;

describe('archive API: GET …/participant_sessions in Stream’s shape', () => {
  const db = useTestDatabase();
  const pool = () => db.current.database.pool;
  // Ended an hour ago: inside Stream's retention, past the simulator's not-ready window.
  const big = generateSession({ seed: 'archive-3000', size: 3_000, endedAt: new Date(Date.now() - HOUR_MS), callType: 'default', callId: 'archive-call' });
  const growing = generateSession({ seed: 'archive-growing', size: 300, endedAt: new Date(Date.now() - HOUR_MS), callType: 'default', callId: 'growing-call' });
  let app: FastifyInstance;
  let baseUrl: string;
  let sim: Simulator;
  let archive: StreamClient;
  let stream: StreamClient;

  beforeAll(async () => {
    for (const session of [big, growing]) {
      const seed = { call_session_id: session.callSessionId, call_type: session.callType, call_id: session.callId };
      await insertCallSession(pool(), {
        ...seed,
        status: 'complete',
        total_participant_sessions: session.participants.length,
        total_participant_duration: session.totalParticipantDuration,
        archived_participant_sessions: session.participants.length,
      });
      await insertEntries(pool(), seed, wireEntries(session));
    }
    app = await buildApp({
      config,
      database: db.current.database,
      logger: createLogger({ level: 'silent' }),
      metrics: createMetrics({ defaultMetrics: false }),
    });
    await app.listen({ port: 0, host: '127.0.0.1' });
    baseUrl = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    // Integer nanoseconds, the form the archive answers in, so both decode through the same SDK path.
    sim = await startSimulator({ apiKey: API_KEY, apiSecret: API_SECRET, timestampFormat: 'nanoseconds' });
    sim.addSession(big);
    archive = new StreamClient(API_KEY, API_SECRET, { basePath: baseUrl });
    stream = new StreamClient(API_KEY, API_SECRET, { basePath: sim.url });
  });

  afterAll(async () => {
    await app?.close();
    await sim?.close();
  });

  async function readAll(client: StreamClient, session: SimSession, filter?: Filter, limit = 100) {
    const entries: SdkEntry[] = [];
    let next: string | undefined;
    let pages = 0;
    do {
      const page = await client.video.queryCallParticipantSessions({
        type: session.callType,
        id: session.callId,
        session: session.callSessionId,
        limit,
        next,
        filter_conditions: filter,
      });
      // Totals describe the whole session whatever the filter.
      expect(page.total_participant_sessions).toBe(session.participants.length);
      expect(page.total_participant_duration).toBe(session.totalParticipantDuration);
      entries.push(...(page.participants_sessions as unknown as SdkEntry[]));
      next = page.next || undefined;
      pages += 1;
    } while (next && pages <= 200);
    return { entries, pages };
  }

  /** Raw HTTP, for what the SDK hides: status, headers, exact JSON. */
  async function get(path: string, params: Record<string, string> = {}, headers?: Record<string, string>) {
    const token = await createServerToken(API_SECRET);
    const query = new URLSearchParams({ api_key: API_KEY, ...params });
    const res = await fetch(`${baseUrl}${path}?${query}`, {
      headers: headers ?? { authorization: token, 'stream-auth-type': 'jwt' },
    });
    const text = await res.text();
    return { status: res.status, headers: res.headers, text, body: JSON.parse(text) as Record<string, any> };
  }
  /** Raw HTTP with a query string written by hand (the bracket form). */
  async function getQuery(path: string, query: string) {
    const token = await createServerToken(API_SECRET);
    const res = await fetch(`${baseUrl}${path}?api_key=${API_KEY}&${query}`, { headers: { authorization: token, 'stream-auth-type': 'jwt' } });
    return { status: res.status, body: (await res.json()) as Record<string, any> };
  }
  const pathOf = (s: SimSession, suffix = '') => `/api/v2/video/call/${s.callType}/${s.callId}/session/${s.callSessionId}/participant_sessions${suffix}`;

  it('the SDK reads all 3,000 archived entries, exactly as inserted and as the SDK reads them from the simulator', async () => {
    const fromArchive = await readAll(archive, big);
    expect(fromArchive.pages).toBe(30);
    expect(fromArchive.entries).toHaveLength(3_000);
    expect(new Set(fromArchive.entries.map((e) => e.user_session_id)).size).toBe(3_000);
    // Keyset order: user_session_id as Postgres sorts it; strictly increasing means nothing repeats or goes back.
    const { rows } = await pool().query<{ id: string }>(
      'select user_session_id as id from participant_sessions where call_session_id = $1 order by user_session_id',
      [big.callSessionId],
    );
    expect(fromArchive.entries.map((e) => e.user_session_id)).toEqual(rows.map((r) => r.id));

    const fromSimulator = await readAll(stream, big);
    expect([...fromArchive.entries].sort(byId)).toEqual([...fromSimulator.entries].sort(byId));
    const inserted = [...big.participants].sort(byId);
    [...fromArchive.entries].sort(byId).forEach((entry, i) => {
      const truth = inserted[i]!;
      expect(entry.user_session_id).toBe(truth.user_session_id);
      expect(entry.user_id).toBe(truth.user_id);
      expect(entry.roles).toEqual(truth.roles);
      // stream-node decodes an integer as new Date(Math.floor(n / 1e6)) on a double, which can land
      // 1 ms early (1796043052282000000 is held as …281999872); the exact digits are checked below.
      for (const field of ['joined_at', 'left_at'] as const) {
        const got = entry[field] as Date | undefined;
        const want = truth[field];
        if (want === null) expect(got).toBeUndefined();
        else expect(want.getTime() - got!.getTime()).toBeOneOf([0, 1]);
      }
      expect(entry.duration_in_seconds).toBe(truth.duration_in_seconds ?? undefined);
    });
  });

  it('filters like the simulator (user_id, session_id, publisher_type, shorthand and $in), totals unchanged', async () => {
    const users = [...new Set(big.participants.map((p) => p.user_id))].slice(0, 7);
    const someSessions = big.participants.filter((_, i) => i % 97 === 0).map((p) => p.user_session_id);
    const otherPublishers = big.participants.filter((p) => p.publisher_type !== 'webrtc');
    const otherUsers = [...new Set(otherPublishers.map((p) => p.user_id))].slice(0, 3).concat(users);
    const otherTypes = [...new Set(otherPublishers.map((p) => p.publisher_type))];
    expect(otherTypes.length).toBeGreaterThan(0);
    const cases: [Filter, (p: SimSession['participants'][number]) => boolean][] = [
      [{ user_id: { $in: users } }, (p) => users.includes(p.user_id)],
      [{ user_id: users[0] }, (p) => p.user_id === users[0]],
      [{ session_id: { $in: someSessions } }, (p) => someSessions.includes(p.user_session_id)],
      [{ publisher_type: { $eq: 'webrtc' } }, (p) => p.publisher_type === 'webrtc'],
      [{ publisher_type: { $in: otherTypes }, user_id: { $in: otherUsers } }, (p) => otherTypes.includes(p.publisher_type) && otherUsers.includes(p.user_id)],
    ];
    for (const [filter, keep] of cases) {
      const fromArchive = await readAll(archive, big, filter, 50);
      const fromSimulator = await readAll(stream, big, filter, 50);
      const truth = big.participants
        .filter(keep)
        .map((p) => p.user_session_id)
        .sort();
      expect(truth.length, JSON.stringify(filter)).toBeGreaterThan(0);
      expect(fromArchive.entries.map((e) => e.user_session_id).sort()).toEqual(truth);
      expect([...fromArchive.entries].sort(byId)).toEqual([...fromSimulator.entries].sort(byId));
    }
  });

  it('uses 25 entries when limit is absent or 0, and refuses limits outside 0–100 in Stream’s error shape', async () => {
    expect((await get(pathOf(big))).body.participants_sessions).toHaveLength(25);
    expect((await get(pathOf(big), { limit: '0' })).body.participants_sessions).toHaveLength(25);
    expect((await get(pathOf(big), { limit: '100' })).body.participants_sessions).toHaveLength(100);
    for (const limit of ['101', '-1', 'ten', '1.5']) {
      const res = await get(pathOf(big), { limit });
      expect(res.status).toBe(400);
      expect(res.body).toMatchObject({ code: 4, StatusCode: 400, message: expect.stringContaining('limit'), more_info: expect.any(String), details: [] });
      expect(typeof res.body.duration).toBe('string');
    }
    await expect(
      archive.video.queryCallParticipantSessions({ type: big.callType, id: big.callId, session: big.callSessionId, limit: 1000 }),
    ).rejects.toMatchObject({ code: 4, metadata: { responseCode: 400 } });
  });

  it('answers in Stream’s shape: integer duration in ms, integer-nanosecond timestamps, omitted next/prev at the ends', async () => {
    const first = await get(pathOf(big), { limit: '10' });
    expect(first.status).toBe(200);
    expect(first.headers.get('x-attendance-archive-status')).toBe('complete');
    expect(Object.keys(first.body).sort()).toEqual(
      [
        'call_id',
        'call_session_id',
        'call_type',
        'duration',
        'next',
        'participants_sessions',
        'total_participant_duration',
        'total_participant_sessions',
      ].sort(),
    );
    expect(Number.isInteger(first.body.duration)).toBe(true);
    expect(first.body).toMatchObject({ call_type: 'default', call_id: 'archive-call', call_session_id: big.callSessionId, total_participant_sessions: 3_000 });
    // Stored as RFC 3339 (the simulator's default form), answered as the integer every SDK decodes.
    const truth = new Map(big.participants.map((p) => [p.user_session_id, p]));
    const firstEntry = first.body.participants_sessions[0];
    expect(first.text).toMatch(/"joined_at":\d{19}[,}]/);
    expect(first.text).not.toMatch(/"(joined|left)_at":"/);
    expect(firstEntry.joined_at).toBe(truth.get(firstEntry.user_session_id)!.joined_at!.getTime() * 1e6);

    const single = await get(pathOf(big), { limit: '10', filter_conditions: JSON.stringify({ session_id: big.participants[5]!.user_session_id }) });
    expect(single.body.participants_sessions).toHaveLength(1);
    expect(single.body).not.toHaveProperty('next');
    expect(single.body).not.toHaveProperty('prev');
  });

  it('walks back with prev to the first page, where prev is omitted again', async () => {
    const pages: { ids: string[]; next?: string; prev?: string }[] = [];
    let next: string | undefined;
    for (let i = 0; i < 4; i += 1) {
      const page = await archive.video.queryCallParticipantSessions({ type: big.callType, id: big.callId, session: big.callSessionId, limit: 40, next });
      pages.push({ ids: page.participants_sessions.map((e) => e.user_session_id), next: page.next, prev: page.prev });
      next = page.next;
    }
    expect(pages[0]!.prev).toBeUndefined();
    let prev = pages[3]!.prev;
    for (let i = 2; i >= 0; i -= 1) {
      const page = await archive.video.queryCallParticipantSessions({ type: big.callType, id: big.callId, session: big.callSessionId, limit: 40, prev });
      expect(page.participants_sessions.map((e) => e.user_session_id)).toEqual(pages[i]!.ids);
      expect(page.next).toBeTruthy();
      prev = page.prev;
      if (i === 0) expect(page.prev).toBeUndefined();
    }
    // The last page has no next.
    const all = await readAll(archive, big, undefined, 100);
    expect(all.pages).toBe(30);
  });

  it('keeps cursors valid while new rows are archived: nothing served twice, nothing skipped', async () => {
    const call = { type: growing.callType, id: growing.callId, session: growing.callSessionId };
    const first = await archive.video.queryCallParticipantSessions({ ...call, limit: 100 });
    expect(first.participants_sessions).toHaveLength(100);
    const seen = first.participants_sessions.map((e) => e.user_session_id);

    // Archived meanwhile: ids sorting before the cursor (already passed) and after everything.
    const seed = { call_session_id: growing.callSessionId, call_type: growing.callType, call_id: growing.callId };
    const late = (id: string): WireEntry => ({
      user_id: `late-${id}`,
      user_session_id: id,
      publisher_type: 'webrtc',
      roles: ['user'],
      joined_at: '2026-03-10T10:00:00Z',
      left_at: '2026-03-10T10:01:00Z',
      duration_in_seconds: 60,
    });
    await insertEntries(pool(), seed, ['0000-late-a', '0000-late-b'].map(late));
    await insertEntries(pool(), seed, ['zzzz-late-a', 'zzzz-late-b'].map(late));

    let next = first.next;
    let pages = 0;
    while (next && pages < 20) {
      const page = await archive.video.queryCallParticipantSessions({ ...call, limit: 100, next });
      seen.push(...page.participants_sessions.map((e) => e.user_session_id));
      next = page.next;
      pages += 1;
    }
    expect(new Set(seen).size).toBe(seen.length);
    expect(seen.filter((id) => id.startsWith('zzzz-late'))).toEqual(['zzzz-late-a', 'zzzz-late-b']);
    expect(seen.filter((id) => id.startsWith('0000-late'))).toEqual([]);
    expect(seen.filter((id) => !id.includes('-late-')).sort()).toEqual(growing.participants.map((p) => p.user_session_id).sort());
  });

  it('refuses a cursor from another filter, another session, the other direction, or nowhere', async () => {
    const unfiltered = await get(pathOf(big), { limit: '10' });
    const filter = JSON.stringify({ publisher_type: 'webrtc' });
    const filtered = await get(pathOf(big), { limit: '10', filter_conditions: filter });
    const otherSession = await get(pathOf(growing), { limit: '10' });
    const cases: Record<string, string>[] = [
      { next: unfiltered.body.next, filter_conditions: filter },
      { next: filtered.body.next },
      { next: otherSession.body.next },
      { prev: unfiltered.body.next },
      { next: 'not-a-cursor' },
      { next: Buffer.from('{"v":1}').toString('base64url') },
      { next: unfiltered.body.next, prev: unfiltered.body.next },
    ];
    for (const params of cases) {
      const res = await get(pathOf(big), { limit: '10', ...params });
      expect(res.status, JSON.stringify(params)).toBe(400);
      expect(res.body).toMatchObject({ code: 4, StatusCode: 400 });
    }
    // The same filter written in another key order (and $in values in another order) still fits its cursor.
    const types = [...new Set(big.participants.map((p) => p.publisher_type))];
    const written = JSON.stringify({ publisher_type: { $in: types }, user_id: { $in: [big.participants[0]!.user_id, big.participants[1]!.user_id] } });
    const reordered = JSON.stringify({
      user_id: { $in: [big.participants[1]!.user_id, big.participants[0]!.user_id] },
      publisher_type: { $in: [...types].reverse() },
    });
    const page = await get(pathOf(big), { limit: '1', filter_conditions: written });
    expect(page.body.next).toBeTruthy();
    const again = await get(pathOf(big), { limit: '1', filter_conditions: reordered, next: page.body.next });
    expect(again.status).toBe(200);
    expect(again.body.participants_sessions[0].user_session_id).not.toBe(page.body.participants_sessions[0].user_session_id);
  });

  it('reads the bracket form of filter_conditions like the JSON form, on the archive and in the simulator', async () => {
    const users = [...new Set(big.participants.map((p) => p.user_id))].slice(0, 3);
    const token = await createServerToken(API_SECRET);
    const fromSimulator = async (query: string) => {
      const res = await fetch(`${sim.url}${pathOf(big)}?api_key=${API_KEY}&limit=100&${query}`, {
        headers: { authorization: token, 'stream-auth-type': 'jwt' },
      });
      return { status: res.status, body: (await res.json()) as Record<string, any> };
    };
    const ids = (body: Record<string, any>) => (body.participants_sessions as SdkEntry[]).map((e) => e.user_session_id).sort();
    const enc = encodeURIComponent;
    const rtmpUsers = [...new Set(big.participants.filter((p) => p.publisher_type !== 'webrtc').map((p) => p.user_id))].slice(0, 3);
    const cases: [string, (p: SimSession['participants'][number]) => boolean][] = [
      // The seed document's own curl example.
      [`filter_conditions%5Buser_id%5D%5B%24eq%5D=${enc(users[0]!)}`, (p) => p.user_id === users[0]],
      [`filter_conditions[user_id]=${enc(users[1]!)}`, (p) => p.user_id === users[1]],
      [users.map((u) => `filter_conditions[user_id][$in][]=${enc(u)}`).join('&'), (p) => users.includes(p.user_id)],
      [users.map((u, i) => `filter_conditions[user_id][$in][${i}]=${enc(u)}`).join('&'), (p) => users.includes(p.user_id)],
      [
        `filter_conditions[publisher_type][$in][1]=srt&filter_conditions[publisher_type][$in][0]=rtmp&${rtmpUsers.map((u) => `filter_conditions[user_id][$in][]=${enc(u)}`).join('&')}`,
        (p) => p.publisher_type !== 'webrtc' && rtmpUsers.includes(p.user_id),
      ],
    ];
    for (const [query, keep] of cases) {
      const truth = big.participants
        .filter(keep)
        .map((p) => p.user_session_id)
        .sort();
      expect(truth.length, query).toBeGreaterThan(0);
      expect(truth.length, query).toBeLessThanOrEqual(100);
      const archived = await getQuery(pathOf(big), `limit=100&${query}`);
      expect(archived.status, query).toBe(200);
      expect(ids(archived.body), query).toEqual(truth);
      const simulated = await fromSimulator(query);
      expect(simulated.status, query).toBe(200);
      expect(ids(simulated.body), query).toEqual(truth);
    }
    // A cursor from the JSON form serves the same filter written in brackets.
    const json = await get(pathOf(big), { limit: '1', filter_conditions: JSON.stringify({ user_id: { $in: users } }) });
    const bracket = await getQuery(pathOf(big), `limit=1&next=${json.body.next}&${users.map((u) => `filter_conditions[user_id][$in][]=${enc(u)}`).join('&')}`);
    expect(bracket.status).toBe(200);
    for (const query of [
      `filter_conditions={}&filter_conditions[user_id]=a`,
      `filter_conditions[email]=a`,
      `filter_conditions[user_id][$gt]=a`,
      `filter_conditions[user_id][$eq][0]=a`,
      `filter_conditions[user_id][$eq]=a&filter_conditions[user_id][$eq]=b`,
      `filter_conditions[__proto__][$eq]=a`,
    ]) {
      expect((await getQuery(pathOf(big), query)).body, query).toMatchObject({ code: 4, StatusCode: 400 });
      expect((await fromSimulator(query)).status, query).toBe(400);
    }
  });

  it('refuses published_tracks, is_live and is_tech_user with a 400 naming the field, where the simulator answers', async () => {
    const token = await createServerToken(API_SECRET);
    const filters: Record<string, unknown>[] = [
      { is_live: true },
      { is_live: { $eq: false } },
      { published_tracks: { $in: ['video'] } },
      { published_tracks: 'audio' },
      { is_tech_user: true, user_id: 'x' },
    ];
    for (const filter of filters) {
      const res = await get(pathOf(big), { filter_conditions: JSON.stringify(filter) });
      const field = Object.keys(filter).find((f) => f !== 'user_id')!;
      expect(res.status, JSON.stringify(filter)).toBe(400);
      expect(res.body).toMatchObject({ code: 4, StatusCode: 400, exception_fields: { filter_conditions: expect.stringContaining(`"${field}"`) } });
      expect(res.body.message).toContain('does not return it');
      expect((await get(pathOf(big, '/summary'), { filter_conditions: JSON.stringify(filter) })).status).toBe(400);
      // Stream (the simulator) knows these fields and answers.
      const simulated = await fetch(`${sim.url}${pathOf(big)}?api_key=${API_KEY}&filter_conditions=${encodeURIComponent(JSON.stringify(filter))}`, {
        headers: { authorization: token, 'stream-auth-type': 'jwt' },
      });
      expect(simulated.status).toBe(200);
    }
    expect((await getQuery(pathOf(big), 'filter_conditions[is_live][$eq]=true')).body).toMatchObject({
      code: 4,
      message: expect.stringContaining('"is_live"'),
    });
    await expect(
      archive.video.queryCallParticipantSessions({ type: big.callType, id: big.callId, session: big.callSessionId, filter_conditions: { is_live: true } }),
    ).rejects.toMatchObject({ code: 4, metadata: { responseCode: 400 } });
  });

  it('refuses bad filter_conditions with a 400 in Stream’s error shape', async () => {
    for (const filter of ['{not json', '[]', JSON.stringify({ email: 'a' }), JSON.stringify({ user_id: { $gt: 'a' } }), JSON.stringify({ is_live: 'yes' })]) {
      const res = await get(pathOf(big), { filter_conditions: filter });
      expect(res.status, filter).toBe(400);
      expect(res.body).toMatchObject({ code: 4, StatusCode: 400, details: [], exception_fields: { filter_conditions: expect.any(String) } });
    }
    await expect(
      archive.video.queryCallParticipantSessions({ type: big.callType, id: big.callId, session: big.callSessionId, filter_conditions: { role: 'admin' } }),
    ).rejects.toMatchObject({ code: 4, metadata: { responseCode: 400 } });
  });

  it('refuses bad auth with 401 code 5, and accepts a token signed with a previous secret', async () => {
    const good = await createServerToken(API_SECRET);
    const key = (secret: string) => new TextEncoder().encode(secret);
    const cases: { params?: Record<string, string>; headers: Record<string, string> }[] = [
      { params: { api_key: 'other-key' }, headers: { authorization: good, 'stream-auth-type': 'jwt' } },
      { headers: { 'stream-auth-type': 'jwt' } },
      { headers: { authorization: good } },
      { headers: { authorization: await createServerToken('some-other-secret'), 'stream-auth-type': 'jwt' } },
      {
        headers: {
          authorization: await new SignJWT({ user_id: 'alice' }).setProtectedHeader({ alg: 'HS256' }).sign(key(API_SECRET)),
          'stream-auth-type': 'jwt',
        },
      },
      {
        headers: {
          authorization: await new SignJWT({ server: true })
            .setProtectedHeader({ alg: 'HS256' })
            .setExpirationTime(Math.floor(Date.now() / 1000) - 60)
            .sign(key(API_SECRET)),
          'stream-auth-type': 'jwt',
        },
      },
    ];
    for (const c of cases) {
      const res = await get(pathOf(big), c.params ?? {}, c.headers);
      expect(res.status, JSON.stringify(Object.keys(c.headers))).toBe(401);
      expect(res.body).toMatchObject({ code: 5, StatusCode: 401, details: [] });
      expect(JSON.stringify(res.body)).not.toContain(good);
    }
    const missingKey = await fetch(`${baseUrl}${pathOf(big)}`, { headers: { authorization: good, 'stream-auth-type': 'jwt' } });
    expect(missingKey.status).toBe(401);

    // A secret rotated out verifies webhooks for a while, but never reads the archive.
    const rotated = await get(pathOf(big), { limit: '1' }, { authorization: await createServerToken(OLD_SECRET), 'stream-auth-type': 'jwt' });
    expect(rotated.status).toBe(401);
    expect(rotated.body).toMatchObject({ code: 5, StatusCode: 401, message: 'JWT token is not valid' });
    expect((await get(pathOf(big, '/summary'), {}, { authorization: await createServerToken(OLD_SECRET), 'stream-auth-type': 'jwt' })).status).toBe(401);
    await expect(
      new StreamClient(API_KEY, 'wrong-secret', { basePath: baseUrl }).video.queryCallParticipantSessions({
        type: big.callType,
        id: big.callId,
        session: big.callSessionId,
      }),
    ).rejects.toMatchObject({ code: 5 });
    // Auth comes before everything else: even an unknown session is a 401 without a token.
    expect((await get('/api/v2/video/call/default/x/session/unknown/participant_sessions', {}, {})).status).toBe(401);
  });

  it('answers 400 in Stream’s shape, never 500, for a NUL in the path, a filter value, a filter key or a cursor key', async () => {
    const nulPath = '/api/v2/video/call/default/archive-call/session/a%00b/participant_sessions';
    const scope = createCursorScope(big.callSessionId, []);
    const cases: [string, Record<string, string>, string][] = [
      [nulPath, {}, 'session'],
      [`${nulPath}/summary`, {}, 'session'],
      ['/api/v2/video/call/def%00ault/archive-call/session/x/participant_sessions', {}, 'type'],
      [pathOf(big), { filter_conditions: JSON.stringify({ user_id: { $eq: 'a\u0000b' } }) }, 'filter_conditions'],
      [pathOf(big), { filter_conditions: JSON.stringify({ user_id: { $in: ['ok', 'a\u0000b'] } }) }, 'filter_conditions'],
      [pathOf(big, '/summary'), { filter_conditions: JSON.stringify({ user_id: { $eq: 'a\u0000b' } }) }, 'filter_conditions'],
      [pathOf(big), { next: encodeArchiveCursor({ direction: 'next', key: 'a\u0000b', scope }) }, 'next'],
    ];
    for (const [path, params, field] of cases) {
      const res = await get(path, params);
      expect(res.status, `${path} ${JSON.stringify(params)}`).toBe(400);
      expect(res.body).toMatchObject({ code: 4, StatusCode: 400 });
      expect(res.body.exception_fields?.[field] ?? res.body.message).toMatch(/NUL|filter_conditions/);
    }
  });

  it('answers 404 with Stream’s error for a session the archive does not know, or under another call', async () => {
    for (const path of [
      '/api/v2/video/call/default/archive-call/session/unknown/participant_sessions',
      `/api/v2/video/call/default/other-call/session/${big.callSessionId}/participant_sessions`,
    ]) {
      const res = await get(path);
      expect(res.status).toBe(404);
      expect(res.body).toMatchObject({ code: 16, StatusCode: 404, message: 'call session not found' });
    }
    await expect(archive.video.queryCallParticipantSessions({ type: 'default', id: 'archive-call', session: 'unknown' })).rejects.toMatchObject({ code: 16 });
  });

  describe('entries as the raw entry had them', () => {
    const shaped = { call_session_id: 'shaped-session', call_type: 'default', call_id: 'shaped-call' };
    const raws: WireEntry[] = [
      {
        user_id: 'a',
        user_session_id: 's1',
        publisher_type: 'webrtc',
        roles: ['user'],
        joined_at: '2026-03-10T10:00:00.5Z',
        left_at: null,
        duration_in_seconds: null,
      },
      { user_id: 'b', user_session_id: 's2', publisher_type: 'rtmp', roles: [], joined_at: '2026-03-10T10:00:00.123456789Z' },
      {
        user_id: 'c',
        user_session_id: 's3',
        publisher_type: 'webrtc',
        roles: ['admin'],
        joined_at: '2026-03-10T11:00:00.000000001+01:00',
        left_at: '2026-03-10T10:30:00Z',
        duration_in_seconds: 1800,
        published_tracks: ['audio', 'video'],
        is_live: true,
        future_field: { x: 1 },
      },
      {
        user_id: 'd',
        user_session_id: 's4',
        publisher_type: 'webrtc',
        roles: ['user'],
        joined_at: '2026-03-10T10:10:00Z',
        left_at: '2026-03-10T10:20:00.999999999Z',
        duration_in_seconds: 600,
      },
    ];
    const running = { call_session_id: 'running-session', call_type: 'default', call_id: 'shaped-call' };

    beforeAll(async () => {
      await insertCallSession(pool(), {
        ...shaped,
        status: 'complete',
        total_participant_sessions: 4,
        total_participant_duration: 2400,
        archived_participant_sessions: 4,
      });
      await insertEntries(pool(), shaped, raws);
      // Being archived: 2 of Stream's 5 entries held so far.
      await insertCallSession(pool(), {
        ...running,
        status: 'running',
        total_participant_sessions: 5,
        total_participant_duration: 3000,
        archived_participant_sessions: 2,
      });
      await insertEntries(pool(), running, raws.slice(0, 2));
    });
    const path = `/api/v2/video/call/default/shaped-call/session/shaped-session/participant_sessions`;
    const runningPath = `/api/v2/video/call/default/shaped-call/session/running-session/participant_sessions`;
    const ns = (iso: string, extra: bigint) => (BigInt(Date.parse(iso)) * 1_000_000n + extra).toString();

    it('keeps null as null, absent as absent, extra fields, and every timestamp as integer nanoseconds to the digit', async () => {
      const res = await get(path);
      expect(res.body.total_participant_sessions).toBe(4);
      expect(res.body.total_participant_duration).toBe(2400);
      // Read without JSON numbers: the digits past 2^53 are the point.
      const entries = (parseStreamJson(res.text) as { participants_sessions: unknown[] }).participants_sessions;
      expect(entries).toEqual([
        {
          user_id: 'a',
          user_session_id: 's1',
          publisher_type: 'webrtc',
          roles: ['user'],
          joined_at: ns('2026-03-10T10:00:00.5Z', 0n),
          left_at: null,
          duration_in_seconds: null,
        },
        { user_id: 'b', user_session_id: 's2', publisher_type: 'rtmp', roles: [], joined_at: ns('2026-03-10T10:00:00Z', 123_456_789n) },
        { ...raws[2], joined_at: ns('2026-03-10T10:00:00Z', 1n), left_at: ns('2026-03-10T10:30:00Z', 0n) },
        { ...raws[3], joined_at: ns('2026-03-10T10:10:00Z', 0n), left_at: ns('2026-03-10T10:20:00Z', 999_999_999n) },
      ]);
      expect(res.text).toContain('"joined_at":1773136800123456789');
      expect(Object.keys(res.body.participants_sessions[1])).not.toContain('left_at');
    });

    it('answers a session still being archived with 404 code 16 saying so, never a partial 200', async () => {
      const res = await get(runningPath);
      expect(res.status).toBe(404);
      expect(res.headers.get('x-attendance-archive-status')).toBe('running');
      expect(res.body).toMatchObject({
        code: 16,
        StatusCode: 404,
        message: expect.stringContaining('not complete (status running: 2 of 5 participant sessions archived)'),
        exception_fields: { session: expect.stringContaining('running') },
      });
      await expect(archive.video.queryCallParticipantSessions({ type: 'default', id: 'shaped-call', session: 'running-session' })).rejects.toMatchObject({
        code: 16,
        metadata: { responseCode: 404 },
      });
      // Stream's totals unknown yet, and expired for good: the same refusal; expired is unrecoverable.
      await pool().query(
        `update call_sessions set status = 'pending', total_participant_sessions = null, total_participant_duration = null where call_session_id = 'running-session'`,
      );
      expect((await get(runningPath)).body.message).toContain("Stream's total not read yet");
      await pool().query(`update call_sessions set status = 'expired', total_participant_sessions = 5 where call_session_id = 'running-session'`);
      expect((await get(runningPath)).body).toMatchObject({ code: 16, unrecoverable: true });
      // Verified whole before and being archived again: still whole.
      await pool().query(
        `update call_sessions set status = 'running', archived_at = now(), total_participant_sessions = 2, total_participant_duration = 0 where call_session_id = 'running-session'`,
      );
      const again = await get(runningPath);
      expect(again.status).toBe(200);
      expect(again.body).toMatchObject({ total_participant_sessions: 2, participants_sessions: [{ user_session_id: 's1' }, { user_session_id: 's2' }] });
      await pool().query(
        `update call_sessions set status = 'running', archived_at = null, total_participant_sessions = 5, total_participant_duration = 3000 where call_session_id = 'running-session'`,
      );
    });

    it('summarises a partial archive with its status and Stream’s totals, not the rows held as totals', async () => {
      const res = await get(runningPath.replace(/$/, '/summary'));
      expect(res.status).toBe(200);
      expect(res.headers.get('x-attendance-archive-status')).toBe('running');
      expect(res.body).toMatchObject({
        archive_status: 'running',
        archive_complete: false,
        archived_participant_sessions: 2,
        total_participant_sessions: 5,
        total_participant_duration: 3000,
        participant_sessions: 2,
      });
      const text = res.text;
      expect(text).toContain(`"first_joined_at":${ns('2026-03-10T10:00:00Z', 123_456_789n)}`);
    });
  });

  describe('GET …/participant_sessions/summary', () => {
    it('gives the whole session’s totals, matching call_session_attendance', async () => {
      const res = await get(pathOf(big, '/summary'));
      expect(res.status).toBe(200);
      const {
        rows: [view],
      } = await pool().query(
        `select participants, entries, summed_seconds, attended_seconds::float8 as attended_seconds, peak_concurrent_participants
         from call_session_attendance where call_session_id = $1`,
        [big.callSessionId],
      );
      expect(res.body).toMatchObject({
        call_type: 'default',
        call_id: 'archive-call',
        call_session_id: big.callSessionId,
        total_participant_sessions: 3_000,
        total_participant_duration: big.totalParticipantDuration,
        participant_sessions: view.entries,
        participants: view.participants,
        summed_seconds: view.summed_seconds,
        peak_concurrent_participants: view.peak_concurrent_participants,
      });
      expect(res.body.attended_seconds).toBeCloseTo(view.attended_seconds, 6);
      expect(Number.isInteger(res.body.duration)).toBe(true);
    });

    it('totals only the filtered entries, merging attendance over them alone', async () => {
      const users = [...new Set(big.participants.map((p) => p.user_id))].slice(0, 40);
      const filter = { user_id: { $in: users }, publisher_type: 'webrtc' };
      const res = await get(pathOf(big, '/summary'), { filter_conditions: JSON.stringify(filter) });
      const kept = wireEntries(big).filter((e) => users.includes(e.user_id) && e.publisher_type === 'webrtc');
      const expected = expectedSession(big.callSessionId, kept);
      expect(kept.length).toBeGreaterThan(10);
      expect(res.body).toMatchObject({
        participant_sessions: kept.length,
        participants: expected.participants,
        summed_seconds: expected.summed_seconds,
        peak_concurrent_participants: expected.peak_concurrent_participants,
        total_participant_sessions: 3_000,
      });
      // Integer nanoseconds, like every timestamp the archive answers.
      expect(res.text).toContain(`"first_joined_at":${expected.session_started_at}000000,`);
      expect(res.text).toContain(`"last_left_at":${expected.session_ended_at}000000,`);
      expect(res.body.attended_seconds).toBeCloseTo(expected.attended_seconds, 6);
      const paged = await readAll(archive, big, filter, 100);
      expect(paged.entries).toHaveLength(res.body.participant_sessions);
    });

    it('refuses what the list refuses', async () => {
      expect((await get(pathOf(big, '/summary'), { filter_conditions: '{"nope":1}' })).body).toMatchObject({ code: 4, StatusCode: 400 });
      expect((await get(pathOf(big, '/summary'), {}, {})).status).toBe(401);
      expect((await get('/api/v2/video/call/default/archive-call/session/unknown/participant_sessions/summary')).status).toBe(404);
    });
  });
});
