import { describe, expect, it } from 'vitest';
import {
  ResponseShapeError,
  parseCallSessionStatsPage,
  parseParticipantSessionsPage,
  isoMillis,
  parseEntryInstant,
  parseStreamJson,
  parseStreamTimestamp,
  timestampNanosText,
} from '../../src/stream/schemas.ts';

const entry = {
  user_id: 'alice',
  user_session_id: 'sfu-1',
  publisher_type: 'webrtc',
  roles: ['user', 'host'],
  joined_at: '2026-04-08T14:23:35.879421674Z',
  left_at: '2026-04-08T15:00:00Z',
  duration_in_seconds: 2184,
};

function page(overrides: Record<string, unknown> = {}) {
  return {
    call_type: 'default',
    call_id: 'standup',
    call_session_id: 'cs-1',
    duration: 12,
    total_participant_sessions: 1,
    total_participant_duration: 2184,
    participants_sessions: [entry],
    next: 'abc',
    ...overrides,
  };
}

describe('nanosecond timestamps, digit for digit', () => {
  it('parseStreamJson keeps integer joined_at/left_at as digit strings and leaves everything else to JSON.parse', () => {
    const text =
      '{"participants_sessions":[{"user_id":"\\"joined_at\\":1","joined_at":1775658215879421674,"left_at" : -5 ,"duration_in_seconds":12},{"joined_at":"2026-04-08T14:23:35Z","left_at":null,"x":{"joined_at":1.5e18}}],"duration":3}';
    expect(JSON.parse(text).participants_sessions[0].joined_at).toBe(1775658215879421700);
    expect(parseStreamJson(text)).toEqual({
      participants_sessions: [
        { user_id: '"joined_at":1', joined_at: '1775658215879421674', left_at: '-5', duration_in_seconds: 12 },
        { joined_at: '2026-04-08T14:23:35Z', left_at: null, x: { joined_at: 1.5e18 } },
      ],
      duration: 3,
    });
    // Nothing to quote: the same result as JSON.parse.
    const plain = JSON.stringify(page());
    expect(parseStreamJson(plain)).toEqual(JSON.parse(plain));
  });

  it('parseEntryInstant truncates to the microsecond, in either form', () => {
    expect(parseEntryInstant('1775658215879421674')).toBe('2026-04-08T14:23:35.879421Z');
    expect(parseEntryInstant('2026-04-08T14:23:35.879421674Z')).toBe('2026-04-08T14:23:35.879421Z');
    expect(parseEntryInstant('2026-04-08T16:23:35.8794219+02:00')).toBe('2026-04-08T16:23:35.879421+02:00');
    expect(parseEntryInstant('2026-04-08T14:23:35Z')).toBe('2026-04-08T14:23:35Z');
    expect(parseEntryInstant('-1')).toBe('1969-12-31T23:59:59.999999Z');
    expect(parseEntryInstant('999')).toBe('1970-01-01T00:00:00.000000Z');
    expect(parseEntryInstant(1778198400000000000)).toBe('2026-05-08T00:00:00.000000Z');
    expect(parseEntryInstant(null)).toBeNull();
    expect(() => parseEntryInstant('2026-04-31T10:00:00Z')).toThrow(ResponseShapeError);
    expect(() => parseEntryInstant('99999999999999999999999')).toThrow(/out of range/);
  });

  it('isoMillis writes what Date#toISOString writes, for any millisecond in years 1000–9999 and outside them', () => {
    const samples = [0, -1, 951_782_400_000, 1_775_658_215_879, -30_610_224_000_000, 253_402_300_799_999, 253_402_300_800_000, -62_198_755_200_000];
    let seed = 7;
    for (let i = 0; i < 5_000; i++) {
      seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648;
      samples.push(Math.floor((seed / 2_147_483_648 - 0.2) * 253_402_300_799_999));
      samples.push(1_775_658_215_879 + (seed % 200_000_000));
    }
    for (const ms of samples) expect(isoMillis(ms), String(ms)).toBe(new Date(ms).toISOString().slice(0, -1));
  });

  it('timestampNanosText gives back the instant Stream sent, whichever form it was stored in', () => {
    expect(timestampNanosText('1775658215879421674')).toBe('1775658215879421674');
    expect(timestampNanosText('2026-04-08T14:23:35.879421674Z')).toBe('1775658215879421674');
    expect(timestampNanosText('2026-04-08T16:23:35.879421674+02:00')).toBe('1775658215879421674');
    expect(timestampNanosText('2026-04-08 14:23:35.5z')).toBe('1775658215500000000');
    expect(timestampNanosText('2026-04-08T14:23:35.879421Z')).toBe('1775658215879421000');
    expect(timestampNanosText('1775658215879421674.0')).toBe('1775658215879421674');
    expect(timestampNanosText('yesterday')).toBeUndefined();
  });

  it('the page reader hands the columns microseconds and keeps raw as received', () => {
    const text = JSON.stringify(page()).replace('"2026-04-08T14:23:35.879421674Z"', '1775658215879421674');
    const parsed = parseParticipantSessionsPage(parseStreamJson(text));
    expect(parsed.entries[0]).toMatchObject({ joinedAtMicros: '2026-04-08T14:23:35.879421Z', leftAtMicros: '2026-04-08T15:00:00Z' });
    expect(parsed.entries[0]?.joinedAt?.toISOString()).toBe('2026-04-08T14:23:35.879Z');
    expect(parsed.entries[0]?.raw.joined_at).toBe('1775658215879421674');
  });
});

describe('parseStreamTimestamp', () => {
  it('reads RFC 3339 with up to nine fractional digits and offsets', () => {
    expect(parseStreamTimestamp('2026-04-08T14:23:35.879421674Z')?.toISOString()).toBe('2026-04-08T14:23:35.879Z');
    expect(parseStreamTimestamp('2026-04-08T16:23:35+02:00')?.toISOString()).toBe('2026-04-08T14:23:35.000Z');
  });

  it('reads integer nanoseconds, as a number or a digit string', () => {
    expect(parseStreamTimestamp(1778198400000000000)?.toISOString()).toBe('2026-05-08T00:00:00.000Z');
    expect(parseStreamTimestamp('1778198400123456789')?.toISOString()).toBe('2026-05-08T00:00:00.123Z');
  });

  it('maps null, absent and empty to null', () => {
    expect(parseStreamTimestamp(null)).toBeNull();
    expect(parseStreamTimestamp(undefined)).toBeNull();
    expect(parseStreamTimestamp('')).toBeNull();
  });

  it('refuses other forms instead of guessing', () => {
    expect(() => parseStreamTimestamp('yesterday')).toThrow(ResponseShapeError);
    expect(() => parseStreamTimestamp('2026-04-08')).toThrow(ResponseShapeError);
    expect(() => parseStreamTimestamp(true)).toThrow(ResponseShapeError);
  });

  it('refuses calendar dates that do not exist rather than rolling them over', () => {
    expect(() => parseStreamTimestamp('2026-04-31T10:00:00Z')).toThrow(/no such calendar date/);
    expect(() => parseStreamTimestamp('2026-02-29T10:00:00Z')).toThrow(/no such calendar date/);
    expect(() => parseStreamTimestamp('2026-13-01T10:00:00Z')).toThrow(/no such calendar date/);
    expect(parseStreamTimestamp('2028-02-29T10:00:00Z')?.toISOString()).toBe('2028-02-29T10:00:00.000Z');
    expect(parseStreamTimestamp('2000-02-29T10:00:00Z')?.toISOString()).toBe('2000-02-29T10:00:00.000Z');
    expect(() => parseStreamTimestamp('2100-02-29T10:00:00Z')).toThrow(/no such calendar date/);
    expect(() => parseStreamTimestamp('2026-06-00T10:00:00Z')).toThrow(/no such calendar date/);
    expect(parseStreamTimestamp('2026-12-31 23:59:59Z')?.toISOString()).toBe('2026-12-31T23:59:59.000Z');
    expect(() => parseStreamTimestamp('2026-12-31T24:30:00Z')).toThrow(ResponseShapeError);
  });
});

describe('parseParticipantSessionsPage', () => {
  it('turns the wire page into typed values and keeps each entry as received', () => {
    const body = page({ participants_sessions: [{ ...entry, future_field: { x: 1 } }], prev: 'zzz' });
    const parsed = parseParticipantSessionsPage(body);
    expect(parsed).toMatchObject({
      callType: 'default',
      callId: 'standup',
      callSessionId: 'cs-1',
      totalParticipantSessions: 1,
      totalParticipantDuration: 2184,
      next: 'abc',
      prev: 'zzz',
      sessionEndedAt: null,
    });
    const [first] = parsed.entries;
    expect(first).toEqual({
      userId: 'alice',
      userSessionId: 'sfu-1',
      publisherType: 'webrtc',
      roles: ['user', 'host'],
      joinedAt: new Date('2026-04-08T14:23:35.879Z'),
      leftAt: new Date('2026-04-08T15:00:00Z'),
      joinedAtMicros: '2026-04-08T14:23:35.879421Z',
      leftAtMicros: '2026-04-08T15:00:00Z',
      durationInSeconds: 2184,
      raw: { ...entry, future_field: { x: 1 } },
    });
    expect(first?.raw).toBe(body.participants_sessions[0]);
  });

  it('treats an absent and an empty next alike as the end', () => {
    const { next: _omit, ...withoutNext } = page();
    expect(parseParticipantSessionsPage(withoutNext).next).toBeNull();
    expect(parseParticipantSessionsPage(page({ next: '' })).next).toBeNull();
    expect(parseParticipantSessionsPage(page({ next: null })).next).toBeNull();
  });

  it('reads optional entry fields that are absent or null as null', () => {
    const open = { user_id: 'bob', user_session_id: 'sfu-2', publisher_type: 'rtmp', roles: [], joined_at: 1778198400000000000, left_at: null };
    const bare = { user_id: 'carol', user_session_id: 'sfu-3' };
    const [parsed, minimal] = parseParticipantSessionsPage(page({ participants_sessions: [open, bare] })).entries;
    expect(parsed).toMatchObject({ joinedAt: new Date('2026-05-08T00:00:00Z'), leftAt: null, durationInSeconds: null });
    expect(minimal).toMatchObject({ joinedAt: null, leftAt: null, durationInSeconds: null, publisherType: '', roles: [] });
  });

  it('accepts duration and int64 totals as strings', () => {
    const parsed = parseParticipantSessionsPage(page({ duration: '3.21ms', total_participant_duration: '9000000000' }));
    expect(parsed.totalParticipantDuration).toBe(9_000_000_000);
  });

  it('takes the session window from the optional session object', () => {
    const parsed = parseParticipantSessionsPage(page({ session: { id: 'cs-1', started_at: '2026-01-01T10:00:00Z', ended_at: '2026-01-01T11:00:00Z' } }));
    expect(parsed.sessionStartedAt?.toISOString()).toBe('2026-01-01T10:00:00.000Z');
    expect(parsed.sessionEndedAt?.toISOString()).toBe('2026-01-01T11:00:00.000Z');
  });

  it('keeps the envelope: every top-level field but the entries, next, prev and duration, as received', () => {
    const session = { id: 'cs-1', participants: [], accepted_by: {}, started_at: '2026-01-01T10:00:00.123456789Z', ended_at: null };
    const parsed = parseParticipantSessionsPage(page({ prev: 'p', session, something_new: { a: 1, b: [true, null, 'x'] } }));
    expect(parsed.envelope).toEqual({
      call_type: 'default',
      call_id: 'standup',
      call_session_id: 'cs-1',
      total_participant_sessions: 1,
      total_participant_duration: 2184,
      session,
      something_new: { a: 1, b: [true, null, 'x'] },
    });
    // A `__proto__` key from JSON.parse stays an own field, not the envelope's prototype.
    const hostile = parseParticipantSessionsPage(
      JSON.parse(
        '{"call_type":"d","call_id":"c","call_session_id":"s","total_participant_sessions":0,"total_participant_duration":0,"__proto__":{"polluted":1}}',
      ),
    );
    expect(Object.keys(hostile.envelope)).toContain('__proto__');
    expect((hostile.envelope as { polluted?: number }).polluted).toBeUndefined();
  });

  it('parseStreamJson keeps every integer *_at in the envelope digit for digit, at any depth; other keys stay numbers', () => {
    const text =
      '{"call_type":"default","call_id":"c","call_session_id":"cs-1","total_participant_sessions":0,"total_participant_duration":0,' +
      '"session":{"id":"cs-1","participants":[{"user":{"id":"u","created_at":1775658000000000001},"joined_at":1775658215879421674}],' +
      '"accepted_by":{"u":1775658215879421675},"started_at":1775658215000000123,"ended_at":1775661815999999999,"live_started_at":null},' +
      '"something_new":{"checked_at":1775661815123456789,"big":1775661815123456789},"participants_sessions":[],"duration":2}';
    const parsed = parseParticipantSessionsPage(parseStreamJson(text));
    const session = parsed.envelope.session as Record<string, any>;
    expect(session.started_at).toBe('1775658215000000123');
    expect(session.ended_at).toBe('1775661815999999999');
    expect(session.live_started_at).toBeNull();
    expect(session.participants[0].joined_at).toBe('1775658215879421674');
    expect(session.participants[0].user.created_at).toBe('1775658000000000001');
    expect((parsed.envelope.something_new as Record<string, unknown>).checked_at).toBe('1775661815123456789');
    // Documented as not covered: map values and keys not ending in _at are JSON.parse's numbers.
    expect(typeof session.accepted_by.u).toBe('number');
    expect(typeof (parsed.envelope.something_new as Record<string, unknown>).big).toBe('number');
    // The session window still reads from the digit strings, exactly.
    expect(parsed.sessionStartedAt?.toISOString()).toBe('2026-04-08T14:23:35.000Z');
  });

  it('treats a missing or null list as empty (what expired sessions look like)', () => {
    expect(parseParticipantSessionsPage(page({ participants_sessions: [] })).entries).toEqual([]);
    expect(parseParticipantSessionsPage(page({ participants_sessions: null })).entries).toEqual([]);
  });

  it('names the field at fault', () => {
    expect(() => parseParticipantSessionsPage(page({ total_participant_sessions: 'many' }))).toThrow(/total_participant_sessions/);
    expect(() => parseParticipantSessionsPage(page({ participants_sessions: [{ ...entry, user_session_id: '' }] }))).toThrow(
      /participants_sessions\[0\].*user_session_id/,
    );
    expect(() => parseParticipantSessionsPage(page({ participants_sessions: [{ ...entry, joined_at: 'soon' }] }))).toThrow(/joined_at/);
    expect(() => parseParticipantSessionsPage('{"truncated":')).toThrow(ResponseShapeError);
  });

  it('refuses every shape the fields do not allow, naming the field', () => {
    const bad: [Record<string, unknown> | unknown, RegExp][] = [
      [null, /\(root\): expected object, received null/],
      [[page()], /\(root\): expected object, received array/],
      [page({ call_type: 7 }), /call_type: expected string, received number/],
      [page({ call_session_id: undefined }), /call_session_id: expected string, received undefined/],
      [page({ duration: { ms: 3 } }), /duration: expected number or string/],
      [page({ total_participant_duration: '1e9' }), /total_participant_duration/],
      [page({ total_participant_sessions: null }), /total_participant_sessions/],
      [page({ participants_sessions: { 0: entry } }), /participants_sessions: expected array, received object/],
      [page({ next: 42 }), /next: expected string, received number/],
      [page({ session: 'cs-1' }), /session: expected object, received string/],
      [page({ session: { ended_at: 'later' } }), /session\.ended_at/],
      [page({ participants_sessions: [entry, 'bob'] }), /participants_sessions\[1\]: \(root\): expected object, received string/],
      [page({ participants_sessions: [{ ...entry, user_id: null }] }), /participants_sessions\[0\]: user_id: expected string, received null/],
      [page({ participants_sessions: [{ ...entry, publisher_type: 1 }] }), /publisher_type: expected string, received number/],
      [page({ participants_sessions: [{ ...entry, roles: 'host' }] }), /roles: expected array, received string/],
      [page({ participants_sessions: [{ ...entry, roles: ['host', 3] }] }), /roles\[1\]: expected string, received number/],
      [page({ participants_sessions: [{ ...entry, duration_in_seconds: true }] }), /duration_in_seconds/],
      [page({ participants_sessions: [{ ...entry, left_at: '2026-02-30T10:00:00Z' }] }), /left_at: timestamp has no such calendar date/],
    ];
    for (const [body, message] of bad) {
      let caught: unknown;
      try {
        parseParticipantSessionsPage(body);
      } catch (error) {
        caught = error;
      }
      expect(caught, String(message)).toBeInstanceOf(ResponseShapeError);
      expect((caught as Error).message).toMatch(message);
    }
  });

  it('rounds whole numbers sent as decimals or digit strings, as Stream int64 fields may come', () => {
    const parsed = parseParticipantSessionsPage(
      page({ total_participant_sessions: 2.0, total_participant_duration: '2184.4', participants_sessions: [{ ...entry, duration_in_seconds: '2184' }] }),
    );
    expect(parsed.totalParticipantSessions).toBe(2);
    expect(parsed.totalParticipantDuration).toBe(2184);
    expect(parsed.entries[0]?.durationInSeconds).toBe(2184);
  });
});

describe('parseCallSessionStatsPage', () => {
  it('reads rows with either naming of the session window', () => {
    const parsed = parseCallSessionStatsPage({
      duration: '1ms',
      call_stats: [
        {
          call_type: 'default',
          call_id: 'a',
          call_session_id: 's1',
          generated_at: '2026-01-02T00:00:00Z',
          counts: {},
          session_ended_at: '2026-01-01T11:00:00Z',
        },
        {
          call_type: 'default',
          call_id: 'b',
          call_session_id: 's2',
          generated_at: 1767225600000000000,
          counts: {},
          call_started_at: '2026-01-01T09:00:00Z',
          call_ended_at: '2026-01-01T10:00:00Z',
        },
      ],
      next: '',
    });
    expect(parsed.next).toBeNull();
    expect(parsed.unusable).toBeUndefined();
    expect(parsed.rows).toEqual([
      {
        callType: 'default',
        callId: 'a',
        callSessionId: 's1',
        generatedAt: new Date('2026-01-02T00:00:00Z'),
        sessionStartedAt: null,
        sessionEndedAt: new Date('2026-01-01T11:00:00Z'),
      },
      {
        callType: 'default',
        callId: 'b',
        callSessionId: 's2',
        generatedAt: new Date('2026-01-01T00:00:00Z'),
        sessionStartedAt: new Date('2026-01-01T09:00:00Z'),
        sessionEndedAt: new Date('2026-01-01T10:00:00Z'),
      },
    ]);
  });

  it('keeps rows without the optional session window, with null dates', () => {
    const parsed = parseCallSessionStatsPage({
      call_stats: [
        {
          call_type: 'default',
          call_id: 'a',
          call_session_id: 's1',
          generated_at: '2026-01-02T00:00:00Z',
          counts: {},
          call_started_at: '2026-01-01T09:00:00Z',
        },
        { call_type: 'default', call_id: 'b', call_session_id: 's2', counts: {}, call_ended_at: null },
      ],
      next: 'n2',
    });
    expect(parsed.unusable).toBeUndefined();
    expect(parsed.next).toBe('n2');
    expect(parsed.rows.map((r) => [r.callSessionId, r.sessionStartedAt, r.sessionEndedAt, r.generatedAt])).toEqual([
      ['s1', new Date('2026-01-01T09:00:00Z'), null, new Date('2026-01-02T00:00:00Z')],
      ['s2', null, null, null],
    ]);
  });

  it('returns rows that name no session apart, with why and whatever ids they had, and keeps the rest of the page', () => {
    const parsed = parseCallSessionStatsPage({
      call_stats: [
        { call_type: 'default', call_id: 'a', generated_at: '2026-01-02T00:00:00Z', counts: {} },
        { call_type: 'default', call_id: 'ok', call_session_id: 'good', generated_at: '2026-01-02T00:00:00Z', counts: {} },
        { call_type: 'default', call_id: 42, call_session_id: 's3', counts: {} },
        { call_type: '', call_id: 'c', call_session_id: 's4', counts: {} },
        'not a row',
        null,
      ],
      next: 'more',
    });
    expect(parsed.rows.map((r) => r.callSessionId)).toEqual(['good']);
    expect(parsed.next).toBe('more');
    expect(parsed.unusable).toEqual([
      { index: 0, reason: 'call_session_id: expected a non-empty string, received undefined', ids: { callType: 'default', callId: 'a' } },
      { index: 2, reason: 'call_id: expected a non-empty string, received number', ids: { callType: 'default', callSessionId: 's3' } },
      { index: 3, reason: 'call_type: expected a non-empty string, received an empty string', ids: { callId: 'c', callSessionId: 's4' } },
      { index: 4, reason: 'expected object, received string', ids: {} },
      { index: 5, reason: 'expected object, received null', ids: {} },
    ]);
  });

  it('reads an unreadable date as absent, says which, and keeps the row', () => {
    const parsed = parseCallSessionStatsPage({
      call_stats: [
        {
          call_type: 'default',
          call_id: 'a',
          call_session_id: 's1',
          counts: {},
          generated_at: 'yesterday',
          call_started_at: '2026-01-01T09:00:00Z',
          call_ended_at: '2026-02-30T10:00:00Z',
        },
      ],
    });
    expect(parsed.unusable).toBeUndefined();
    expect(parsed.rows[0]).toMatchObject({ callSessionId: 's1', sessionStartedAt: new Date('2026-01-01T09:00:00Z'), sessionEndedAt: null, generatedAt: null });
    expect(parsed.rows[0]?.dateProblems).toEqual([expect.stringMatching(/^call_ended_at: .*calendar date/), expect.stringMatching(/^generated_at: /)]);
  });

  it('still fails the page when the envelope is wrong', () => {
    expect(() => parseCallSessionStatsPage({ call_stats: {} })).toThrow(/call_stats response: call_stats/);
    expect(() => parseCallSessionStatsPage({ call_stats: [], next: 5 })).toThrow(/call_stats response: next/);
    expect(() => parseCallSessionStatsPage('nope')).toThrow(/call_stats response/);
  });
});
