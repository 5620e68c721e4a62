import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateSession, type SimParticipant, type SimSession } from '../../tools/simulator/generate.ts';
import { startSimulator, type Simulator } from '../../tools/simulator/server.ts';
import { parseStreamJson } from '../../src/stream/schemas.ts';
import { DAY_MS } from '../../src/time.ts';
import { timestampNanos } from '../../tools/simulator/wire.ts';
import { createSimClient } from './helpers.ts';

const ENDED_AT = new Date('2026-03-01T12:00:00Z');

/** The entry as the simulator must put it on the wire by default (RFC 3339, missing keys left out). */
function expectedEntry(p: SimParticipant): Record<string, unknown> {
  const entry: Record<string, unknown> = { user_id: p.user_id, user_session_id: p.user_session_id, publisher_type: p.publisher_type, roles: p.roles };
  if (p.joined_at) entry.joined_at = p.joined_at.getTime();
  if (p.left_at) entry.left_at = p.left_at.getTime();
  if (p.duration_in_seconds !== null) entry.duration_in_seconds = p.duration_in_seconds;
  return entry;
}

function parsedEntry(wire: Record<string, unknown>): Record<string, unknown> {
  const entry = { ...wire };
  for (const key of ['joined_at', 'left_at'] as const) {
    if (typeof entry[key] === 'string') entry[key] = Date.parse(entry[key] as string);
    else if (typeof entry[key] === 'number') entry[key] = Number(BigInt(String(wire[key])) / 1_000_000n);
  }
  return entry;
}

describe('simulator: participant_sessions', () => {
  let clock = ENDED_AT.getTime() + DAY_MS;
  let sim: Simulator;
  let client: Awaited<ReturnType<typeof createSimClient>>;
  const session = generateSession({ seed: 'paging', size: 237, endedAt: ENDED_AT });
  const other = generateSession({ seed: 'other', size: 30, endedAt: ENDED_AT });

  beforeAll(async () => {
    sim = await startSimulator({ apiKey: 'key-1', apiSecret: 'secret-1', now: () => new Date(clock) });
    sim.addSession(session);
    sim.addSession(other);
    client = await createSimClient(sim);
  });
  afterAll(async () => {
    await sim.close();
  });

  it('covers every entry exactly once, in the same order, with every limit from 1 to 100', async () => {
    const expectedIds = session.participants.map((p) => p.user_session_id);
    for (let limit = 1; limit <= 100; limit++) {
      const { entries, replies } = await client.readAll(session, { limit: String(limit) });
      expect(entries.map((e) => e.user_session_id)).toEqual(expectedIds);
      expect(replies).toHaveLength(Math.ceil(session.participants.length / limit));
      expect(replies.every((r) => r.json.participants_sessions.length <= limit)).toBe(true);
    }
  });

  it('sends each entry as Stream does, equal to the generated ground truth', async () => {
    const { entries, replies } = await client.readAll(session, { limit: '100' });
    expect(entries.map(parsedEntry)).toEqual(session.participants.map(expectedEntry));
    // Entries without left_at / duration exist and travel without those keys.
    expect(entries.some((e) => !('left_at' in e) && !('duration_in_seconds' in e))).toBe(true);
    expect(entries.some((e) => 'left_at' in e && !('duration_in_seconds' in e))).toBe(true);
    for (const reply of replies) {
      expect(reply.json).toMatchObject({
        call_type: session.callType,
        call_id: session.callId,
        call_session_id: session.callSessionId,
        total_participant_sessions: 237,
        total_participant_duration: session.totalParticipantDuration,
      });
      expect(Number.isInteger(reply.json.duration)).toBe(true);
      expect(Object.keys(reply.json.participants_sessions[0]).sort()).toEqual(
        expect.arrayContaining(['publisher_type', 'roles', 'user_id', 'user_session_id']),
      );
    }
    expect(replies.at(-1)?.json).not.toHaveProperty('next');
    expect(replies[0]?.json).not.toHaveProperty('prev');
  });

  it('uses 25 entries when limit is absent or 0 and refuses a limit outside 0–100', async () => {
    expect((await client.participantSessions(session)).json.participants_sessions).toHaveLength(25);
    expect((await client.participantSessions(session, { limit: '0' })).json.participants_sessions).toHaveLength(25);
    for (const limit of ['101', '-1', '2.5', 'ten']) {
      const reply = await client.participantSessions(session, { limit });
      expect(reply.status).toBe(400);
      expect(reply.json).toMatchObject({ code: 4, StatusCode: 400 });
    }
  });

  it('walks backwards with prev', async () => {
    const forward = await client.readAll(session, { limit: '40' });
    const last = forward.replies.at(-1);
    const pages: any[][] = [last?.json.participants_sessions];
    let prev: string | undefined = last?.json.prev;
    while (prev) {
      const reply = await client.participantSessions(session, { limit: '40', prev });
      expect(reply.status).toBe(200);
      pages.unshift(reply.json.participants_sessions);
      prev = reply.json.prev;
    }
    expect(pages.flat().map((e) => e.user_session_id)).toEqual(forward.entries.map((e) => e.user_session_id));
  });

  it('filters on every allowed field, and the totals still describe the whole session', async () => {
    const someone = session.participants.find((p) => p.user_id.includes('/') || p.user_id.includes(' ')) ?? session.participants[5];
    const rejoiner = session.participants[0] as SimParticipant;
    const cases: [Record<string, unknown>, (p: SimParticipant) => boolean][] = [
      [{ user_id: { $eq: someone?.user_id } }, (p) => p.user_id === someone?.user_id],
      [{ user_id: rejoiner.user_id }, (p) => p.user_id === rejoiner.user_id],
      [{ user_id: { $in: [rejoiner.user_id, someone?.user_id] } }, (p) => p.user_id === rejoiner.user_id || p.user_id === someone?.user_id],
      [{ session_id: { $eq: session.participants[7]?.user_session_id } }, (p) => p === session.participants[7]],
      [
        { session_id: { $in: [session.participants[1]?.user_session_id, session.participants[2]?.user_session_id] } },
        (p) => p === session.participants[1] || p === session.participants[2],
      ],
      [{ publisher_type: { $eq: 'rtmp' } }, (p) => p.publisher_type === 'rtmp'],
      [{ publisher_type: { $in: ['rtmp', 'srt'] } }, (p) => p.publisher_type !== 'webrtc'],
      [{ published_tracks: { $eq: 'video' } }, (p) => p.published_tracks.includes('video')],
      [{ published_tracks: { $in: ['screenshare', 'audio'] } }, (p) => p.published_tracks.includes('screenshare') || p.published_tracks.includes('audio')],
      [{ is_live: { $eq: true } }, (p) => p.is_live],
      [{ is_tech_user: { $eq: true } }, (p) => p.is_tech_user],
      [{ is_tech_user: false, publisher_type: { $eq: 'webrtc' } }, (p) => !p.is_tech_user && p.publisher_type === 'webrtc'],
    ];
    for (const [filter, keep] of cases) {
      const expected = session.participants.filter(keep).map((p) => p.user_session_id);
      expect(expected.length, JSON.stringify(filter)).toBeGreaterThan(0);
      const { entries, replies } = await client.readAll(session, { limit: '7', filter_conditions: JSON.stringify(filter) });
      expect(
        entries.map((e) => e.user_session_id),
        JSON.stringify(filter),
      ).toEqual(expected);
      for (const reply of replies) {
        expect(reply.json.total_participant_sessions).toBe(237);
        expect(reply.json.total_participant_duration).toBe(session.totalParticipantDuration);
      }
    }
    const none = await client.participantSessions(session, { filter_conditions: JSON.stringify({ user_id: 'nobody' }) });
    expect(none.json).toMatchObject({ participants_sessions: [], total_participant_sessions: 237 });
  });

  it('refuses unknown filter fields, operators and malformed filters with a 400 APIError', async () => {
    for (const filter of ['{"name":{"$eq":"x"}}', '{"user_id":{"$ne":"x"}}', '{"is_live":{"$in":[true]}}', '{"user_id":', '[1]', '{"is_live":"yes"}']) {
      const reply = await client.participantSessions(session, { filter_conditions: filter });
      expect(reply.status, filter).toBe(400);
      expect(reply.json, filter).toMatchObject({ code: 4, StatusCode: 400, more_info: expect.any(String), details: [] });
      expect(typeof reply.json.duration).toBe('string');
    }
  });

  it('refuses a cursor from another session, another filter, or one that is not a cursor', async () => {
    const first = await client.participantSessions(session, { limit: '10' });
    const next = first.json.next as string;
    expect((await client.participantSessions(session, { limit: '10', next })).status).toBe(200);
    // A different limit with the same cursor is fine: the cursor marks a position, not a page size.
    expect((await client.participantSessions(session, { limit: '3', next })).json.participants_sessions[0].user_session_id).toBe(
      session.participants[10]?.user_session_id,
    );
    const rejected = [
      await client.participantSessions(other, { limit: '10', next }),
      await client.participantSessions(session, { limit: '10', next, filter_conditions: '{"is_live":false}' }),
      await client.participantSessions(session, { limit: '10', next: 'not-a-cursor' }),
      await client.participantSessions(session, { limit: '10', next: Buffer.from('{"o":5}').toString('base64url') }),
      await client.participantSessions(session, { limit: '10', prev: next }),
      await client.participantSessions(session, { limit: '10', next, prev: next }),
    ];
    for (const reply of rejected) expect(reply.json).toMatchObject({ StatusCode: 400, code: 4 });
  });

  it('decodes path segments, so ids may hold any characters', async () => {
    const odd = generateSession({ seed: 'odd', size: 12, endedAt: ENDED_AT, callType: 'live stream', callId: 'a/b c?d#e%f🎉"', callSessionId: 'sess/1 ü' });
    sim.addSession(odd);
    const { entries, replies } = await client.readAll(odd, { limit: '5' });
    expect(entries).toHaveLength(12);
    expect(replies[0]?.json).toMatchObject({ call_type: 'live stream', call_id: 'a/b c?d#e%f🎉"', call_session_id: 'sess/1 ü' });
  });

  it('answers 404 "call session not found" for unknown sessions and mismatched calls', async () => {
    for (const target of [
      { ...session, callSessionId: 'no-such-session' },
      { ...session, callId: 'another-call' },
      { ...session, callType: 'livestream-x' },
    ]) {
      const reply = await client.participantSessions(target);
      expect(reply.status).toBe(404);
      expect(reply.json).toMatchObject({ code: 16, message: 'call session not found', StatusCode: 404 });
    }
  });

  it('answers 404 until the analytics are ready, then the data', async () => {
    const fresh = generateSession({ seed: 'fresh', size: 5, endedAt: new Date(clock - 1_000) });
    sim.addSession(fresh);
    sim.setOptions({ notReadyForMs: 30_000 });
    try {
      expect((await client.participantSessions(fresh)).json).toMatchObject({ StatusCode: 404, message: 'call session not found' });
      clock += 28_999;
      expect((await client.participantSessions(fresh)).status).toBe(404);
      clock += 1;
      const ready = await client.participantSessions(fresh);
      expect(ready.status).toBe(200);
      expect(ready.json.participants_sessions).toHaveLength(5);
    } finally {
      sim.setOptions({ notReadyForMs: 0 });
    }
  });

  it('returns an empty list with the totals intact more than 90 days after the end', async () => {
    const old = generateSession({ seed: 'old', size: 40, endedAt: new Date(clock - 90 * DAY_MS) });
    sim.addSession(old);
    const lastDay = await client.participantSessions(old, { limit: '100' });
    expect(lastDay.json.participants_sessions).toHaveLength(40);
    clock += 1;
    const expired = await client.participantSessions(old, { limit: '100' });
    expect(expired.status).toBe(200);
    expect(expired.json).toMatchObject({
      participants_sessions: [],
      total_participant_sessions: 40,
      total_participant_duration: old.totalParticipantDuration,
      call_session_id: old.callSessionId,
    });
    expect(expired.json).not.toHaveProperty('next');
  });

  it('switches to integer-nanosecond timestamps, null for missing fields, and "" at the ends', async () => {
    sim.setOptions({ timestampFormat: 'nanoseconds', lastPageNext: 'empty', missingFields: 'null' });
    try {
      const { entries, replies } = await client.readAll(session, { limit: '100' });
      const raw = replies.map((r) => r.text).join('');
      const first = session.participants[0] as SimParticipant;
      expect(raw).toContain(`"joined_at":${first.joined_at?.getTime()}000000`);
      expect(entries.map(parsedEntry)).toEqual(
        session.participants.map((p) => ({ ...expectedEntry(p), left_at: p.left_at?.getTime() ?? null, duration_in_seconds: p.duration_in_seconds })),
      );
      expect(replies.at(-1)?.json.next).toBe('');
      expect(replies[0]?.json.prev).toBe('');
    } finally {
      sim.setOptions({ timestampFormat: 'rfc3339', lastPageNext: 'absent', missingFields: 'omit' });
    }
  });

  it('serves nanoseconds past the millisecond for a subMillisecond session, the same instant in both forms', async () => {
    const precise = generateSession({ seed: 'precise', size: 40, endedAt: ENDED_AT, subMillisecond: true });
    // The same attendance as without the option: only the digits are added.
    const plain = generateSession({ seed: 'precise', size: 40, endedAt: ENDED_AT });
    expect(precise.participants.map((p) => [p.user_session_id, p.joined_at, p.left_at])).toEqual(
      plain.participants.map((p) => [p.user_session_id, p.joined_at, p.left_at]),
    );
    expect(precise.participants.filter((p) => (p.joined_at_sub_ms_ns ?? 0) % 1_000 !== 0).length).toBeGreaterThan(30);
    sim.addSession(precise);
    const read = async (format: 'nanoseconds' | 'rfc3339') => {
      sim.setOptions({ timestampFormat: format });
      try {
        const reply = await client.participantSessions(precise, { limit: '100' });
        return (parseStreamJson(reply.text) as { participants_sessions: Record<string, string>[] }).participants_sessions;
      } finally {
        sim.setOptions({ timestampFormat: 'rfc3339' });
      }
    };
    const asIntegers = await read('nanoseconds');
    const asStrings = await read('rfc3339');
    precise.participants.forEach((p, i) => {
      const want = timestampNanos(p.joined_at!, p.joined_at_sub_ms_ns);
      expect(asIntegers[i]!.joined_at).toBe(want);
      expect(asIntegers[i]!.joined_at).toMatch(/^\d{19}$/);
      // RFC 3339 with up to nine fractional digits, Go's RFC3339Nano (trailing zeros trimmed).
      expect(asStrings[i]!.joined_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{0,8}[1-9])?Z$/);
      const [, fraction = ''] = /\.(\d+)Z$/.exec(asStrings[i]!.joined_at!) ?? [];
      expect(BigInt(Date.parse(asStrings[i]!.joined_at!.replace(/\.\d+Z$/, 'Z'))) * 1_000_000n + BigInt(fraction.padEnd(9, '0') || '0')).toBe(BigInt(want));
    });
  });

  it("serves Stream's session object on every page, its timestamps in the entries' form, and a field Stream might add", async () => {
    const precise = generateSession({ seed: 'session-object', size: 30, endedAt: ENDED_AT, subMillisecond: true, extraFields: true });
    sim.addSession(precise);
    const read = async (format: 'nanoseconds' | 'rfc3339') => {
      sim.setOptions({ timestampFormat: format });
      try {
        return await client.readAll(precise, { limit: '10' });
      } finally {
        sim.setOptions({ timestampFormat: 'rfc3339' });
      }
    };
    const asIntegers = await read('nanoseconds');
    const asStrings = await read('rfc3339');
    const startedAt = timestampNanos(precise.startedAt, precise.startedAtSubMsNs);
    const endedAt = timestampNanos(precise.endedAt, precise.endedAtSubMsNs);
    expect(asIntegers.replies).toHaveLength(3);
    for (const reply of [...asIntegers.replies, ...asStrings.replies]) {
      // CallSessionResponse's required fields (docs/stream-api.md §6), nobody present once it ended.
      expect(reply.json.session).toMatchObject({
        id: precise.callSessionId,
        participants: [],
        participants_count_by_role: {},
        anonymous_participant_count: 0,
        accepted_by: {},
        rejected_by: {},
        missed_by: {},
      });
      expect(reply.text).toContain(`"something_new":${precise.extraFieldsJson!.slice('"something_new":'.length)}`);
    }
    for (const reply of asIntegers.replies) {
      expect(reply.text).toContain(`"started_at":${startedAt},"ended_at":${endedAt}}`);
    }
    for (const reply of asStrings.replies) {
      const nanos = (text: string) => {
        const [, fraction = ''] = /\.(\d+)Z$/.exec(text) ?? [];
        return (BigInt(Date.parse(text.replace(/\.\d+Z$/, 'Z'))) * 1_000_000n + BigInt(fraction.padEnd(9, '0') || '0')).toString();
      };
      expect(nanos(reply.json.session.started_at)).toBe(startedAt);
      expect(nanos(reply.json.session.ended_at)).toBe(endedAt);
    }
    // A session generated without the option has no such field.
    expect((await client.participantSessions(session, { limit: '1' })).json).not.toHaveProperty('something_new');
  });

  it('reads filter_conditions in the bracket form like the JSON form', async () => {
    const users = [...new Set(session.participants.map((p) => p.user_id))].slice(0, 2);
    const json = await client.readAll(session, { limit: '100', filter_conditions: JSON.stringify({ user_id: { $in: users } }) });
    const reply = await client.participantSessions(session, {
      limit: '100',
      ...Object.fromEntries(users.map((u, i) => [`filter_conditions[user_id][$in][${i}]`, u])),
    });
    expect(reply.status).toBe(200);
    expect(json.entries.length).toBeGreaterThan(0);
    expect((reply.json.participants_sessions as { user_session_id: string }[]).map((e) => e.user_session_id)).toEqual(
      json.entries.map((e) => e.user_session_id),
    );
  });

  it('writes RFC 3339 the way Go does: trailing fractional zeros trimmed', async () => {
    const s = generateSession({ seed: 'fractions', size: 1, endedAt: ENDED_AT });
    const p = s.participants[0] as SimParticipant;
    p.joined_at = new Date('2026-03-01T11:00:00.000Z');
    p.left_at = new Date('2026-03-01T11:30:00.120Z');
    sim.addSession(s);
    const reply = await client.participantSessions(s);
    expect(reply.text).toContain('"joined_at":"2026-03-01T11:00:00Z"');
    expect(reply.text).toContain('"left_at":"2026-03-01T11:30:00.12Z"');
  });
});

describe('simulator: authentication and rate limits', () => {
  let clock = Date.parse('2026-03-02T10:00:30Z');
  let sim: Simulator;
  let client: Awaited<ReturnType<typeof createSimClient>>;
  const session: SimSession = generateSession({ seed: 'auth', size: 3, endedAt: ENDED_AT });

  beforeAll(async () => {
    sim = await startSimulator({ apiKey: 'key-2', apiSecret: 'secret-2', rateLimitPerMinute: 5, now: () => new Date(clock) });
    sim.addSession(session);
    client = await createSimClient(sim);
  });
  afterAll(async () => {
    await sim.close();
  });

  it('refuses every broken part of Stream server auth with 401 and an APIError body', async () => {
    sim.setOptions({ rateLimitPerMinute: 1_000 });
    const wrongSecret = await createSimClient(sim, 'not-the-secret');
    const notServer = await new SignJWT({ user_id: 'alice' }).setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode('secret-2'));
    const expired = await new SignJWT({ server: true })
      .setProtectedHeader({ alg: 'HS256' })
      .setExpirationTime(Math.floor(Date.now() / 1000) - 60)
      .sign(new TextEncoder().encode('secret-2'));
    const replies = [
      await client.participantSessions(session, {}, { apiKey: null }),
      await client.participantSessions(session, {}, { apiKey: 'other-key' }),
      await client.participantSessions(session, {}, { headers: { authorization: '' } }),
      await client.participantSessions(session, {}, { headers: { 'stream-auth-type': 'anonymous' } }),
      await wrongSecret.participantSessions(session),
      await client.participantSessions(session, {}, { headers: { authorization: notServer } }),
      await client.participantSessions(session, {}, { headers: { authorization: expired } }),
      await client.participantSessions(session, {}, { headers: { authorization: 'garbage' } }),
    ];
    for (const reply of replies) {
      expect(reply.status).toBe(401);
      expect(reply.json).toMatchObject({ code: 5, StatusCode: 401, message: expect.any(String), more_info: expect.any(String), details: [] });
      expect(reply.text).not.toContain(wrongSecret.token);
      expect(reply.text).not.toContain('secret-2');
    }
    expect((await client.participantSessions(session)).status).toBe(200);
  });

  it('sends the rate-limit headers on successes and errors, then 429 with code 9 past the limit', async () => {
    sim.setOptions({ rateLimitPerMinute: 5 });
    clock = Date.parse('2026-03-02T10:05:30Z');
    const replies = [
      await client.participantSessions(session),
      await client.participantSessions(session, {}, { apiKey: 'wrong' }),
      await client.participantSessions(session, { limit: '500' }),
      await client.participantSessions({ ...session, callSessionId: 'missing' }),
      await client.participantSessions(session),
      await client.participantSessions(session),
    ];
    expect(replies.map((r) => r.status)).toEqual([200, 401, 400, 404, 200, 429]);
    replies.forEach((reply, i) => {
      expect(reply.headers.get('x-ratelimit-limit')).toBe('5');
      expect(reply.headers.get('x-ratelimit-remaining')).toBe(String(Math.max(0, 4 - i)));
      // Epoch seconds of the next minute boundary.
      expect(reply.headers.get('x-ratelimit-reset')).toBe(String(Date.parse('2026-03-02T10:06:00Z') / 1000));
    });
    expect(replies[5]?.json).toMatchObject({ code: 9, StatusCode: 429 });

    clock = Date.parse('2026-03-02T10:06:00Z');
    const fresh = await client.participantSessions(session);
    expect(fresh.status).toBe(200);
    expect(fresh.headers.get('x-ratelimit-remaining')).toBe('4');
    expect(fresh.headers.get('x-ratelimit-reset')).toBe(String(Date.parse('2026-03-02T10:07:00Z') / 1000));
  });

  it('counts call_stats in its own window, as Stream counts per endpoint', async () => {
    sim.setOptions({ rateLimitPerMinute: 2 });
    clock = Date.parse('2026-03-02T11:00:00Z');
    expect((await client.participantSessions(session)).status).toBe(200);
    expect((await client.participantSessions(session)).status).toBe(200);
    expect((await client.participantSessions(session)).status).toBe(429);
    const stats = await client.callStats({});
    expect(stats.status).toBe(201);
    expect(stats.headers.get('x-ratelimit-remaining')).toBe('1');
  });

  it('answers unknown endpoints with a 404 APIError', async () => {
    const reply = await client.request('GET', '/api/v2/video/nothing');
    expect(reply.status).toBe(404);
    expect(reply.json).toMatchObject({ StatusCode: 404 });
    expect(sim.stats.byStatus['404']).toBeGreaterThan(0);
    expect(sim.stats.requests).toBeGreaterThan(10);
  });
});
