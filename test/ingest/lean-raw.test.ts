import { describe, expect, it } from 'vitest';
import { leanRaw } from '../../src/ingest/lean-raw.ts';
import { type ParticipantEntry, parseParticipantSessionsPage, parseStreamJson } from '../../src/stream/schemas.ts';

/*
 * The lean form's rules, one entry each. test/db/lean-raw.test.ts checks the same function against
 * participant_session_lean_raw and participant_session_entry in Postgres.
 */

/** One entry as the worker reads it from Stream's JSON text. */
function read(entryJson: string): ParticipantEntry {
  const page = `{"call_type":"default","call_id":"c","call_session_id":"s","total_participant_sessions":1,"total_participant_duration":0,"participants_sessions":[${entryJson}]}`;
  return parseParticipantSessionsPage(parseStreamJson(page)).entries[0]!;
}

/** An entry with Stream's seven fields; `fields` is JSON text replacing or adding some (`"roles":null`), `drop` names some to leave out. */
function sent(fields = '', drop: readonly string[] = []): string {
  const base: Record<string, string> = {
    user_id: '"alice"',
    user_session_id: '"us-1"',
    publisher_type: '"webrtc"',
    roles: '["user"]',
    joined_at: '"2026-04-08T14:23:35.879421674Z"',
    left_at: '"2026-04-08T15:02:11Z"',
    duration_in_seconds: '2315',
  };
  const text = Object.entries(base)
    .filter(([key]) => !drop.includes(key) && !fields.includes(`"${key}":`))
    .map(([key, value]) => `"${key}":${value}`);
  return `{${[...text, ...(fields === '' ? [] : [fields])].join(',')}}`;
}

describe('leanRaw', () => {
  const cases: readonly [string, string, Record<string, unknown>][] = [
    // The columns give back user_id, user_session_id, publisher_type, roles and duration: left out.
    ['the common entry', sent(), { '~joined_at': 9674, '~left_at': 0 }],
    // RFC 3339 in UTC: fraction digits × 1000 + the digits past the microsecond, read as three.
    ['one fraction digit', sent('"joined_at":"2026-04-08T14:23:35.5Z"'), { '~joined_at': 1000, '~left_at': 0 }],
    ['three', sent('"joined_at":"2026-04-08T14:23:35.879Z"'), { '~joined_at': 3000, '~left_at': 0 }],
    ['six', sent('"joined_at":"2026-04-08T14:23:35.879421Z"'), { '~joined_at': 6000, '~left_at': 0 }],
    ['seven', sent('"joined_at":"2026-04-08T14:23:35.8794216Z"'), { '~joined_at': 7600, '~left_at': 0 }],
    ['eight', sent('"joined_at":"2026-04-08T14:23:35.87942167Z"'), { '~joined_at': 8670, '~left_at': 0 }],
    ['trailing zeros sent', sent('"joined_at":"2026-04-08T14:23:35.120000000Z"'), { '~joined_at': 9000, '~left_at': 0 }],
    ['a year below 1000', sent('"joined_at":"0001-01-01T00:00:00.000000001Z"'), { '~joined_at': 9001, '~left_at': 0 }],
    // Integer nanoseconds: the nanoseconds past the microsecond (the column floors, also before 1970).
    ['integer nanoseconds', sent('"joined_at":1775658215879421674,"left_at":1775658245000000000'), { '#joined_at': 674, '#left_at': 0 }],
    ['a digit string under joined_at, the integer it denotes', sent('"joined_at":"1775658215879421674"'), { '#joined_at': 674, '~left_at': 0 }],
    ['nanoseconds before 1970', sent('"joined_at":-1500'), { '#joined_at': 500, '~left_at': 0 }],
    ['one nanosecond before 1970', sent('"joined_at":-1'), { '#joined_at': 999, '~left_at': 0 }],
    ['the epoch', sent('"joined_at":0'), { '#joined_at': 0, '~left_at': 0 }],
    // What the column cannot give back byte for byte stays as sent.
    ['an offset', sent('"joined_at":"2026-04-08T16:23:35.879421674+02:00"'), { joined_at: '2026-04-08T16:23:35.879421674+02:00', '~left_at': 0 }],
    ['a lowercase z', sent('"joined_at":"2026-04-08T14:23:35.879z"'), { joined_at: '2026-04-08T14:23:35.879z', '~left_at': 0 }],
    ['a space for T', sent('"joined_at":"2026-04-08 14:23:35.879Z"'), { joined_at: '2026-04-08 14:23:35.879Z', '~left_at': 0 }],
    ['hour 24, which Postgres rolls over', sent('"joined_at":"2026-04-08T24:00:00Z"'), { joined_at: '2026-04-08T24:00:00Z', '~left_at': 0 }],
    ['leading zeros, which jsonb drops', sent('"joined_at":"0001775658215879421674"'), { joined_at: '0001775658215879421674', '~left_at': 0 }],
    ['minus zero, which jsonb prints as 0', sent('"joined_at":"-0"'), { joined_at: '-0', '~left_at': 0 }],
    ['a JS number, already rounded', sent('"joined_at":1.775658215879421e18'), { joined_at: 1775658215879421000, '~left_at': 0 }],
    ['null and empty timestamps', sent('"joined_at":null,"left_at":""'), { joined_at: null, left_at: '' }],
    // Fields left out: named under `-` when their column still holds a value.
    ['publisher_type and roles absent', sent('', ['publisher_type', 'roles']), { '-': ['publisher_type', 'roles'], '~joined_at': 9674, '~left_at': 0 }],
    ['duration and timestamps absent (a null column)', sent('', ['duration_in_seconds', 'joined_at', 'left_at']), {}],
    ['only the ids', '{"user_session_id":"us-1","user_id":"m"}', { '-': ['publisher_type', 'roles'] }],
    // JSON nulls and values of another type stay, the column having made them something else.
    [
      'nulls',
      sent('"publisher_type":null,"roles":null,"duration_in_seconds":null'),
      { publisher_type: null, roles: null, duration_in_seconds: null, '~joined_at': 9674, '~left_at': 0 },
    ],
    ['a duration as a string', sent('"duration_in_seconds":"2315"'), { duration_in_seconds: '2315', '~joined_at': 9674, '~left_at': 0 }],
    ['a fractional duration', sent('"duration_in_seconds":30.5'), { duration_in_seconds: 30.5, '~joined_at': 9674, '~left_at': 0 }],
    ['empty roles', sent('"roles":[]'), { '~joined_at': 9674, '~left_at': 0 }],
    // Fields Stream adds are kept, nested `*_at` digit strings included (the page writer makes them integers).
    [
      'fields Stream adds',
      sent('"future":{"seen_at":1775658215879421111},"flag":true'),
      { future: { seen_at: '1775658215879421111' }, flag: true, '~joined_at': 9674, '~left_at': 0 },
    ],
  ];

  it.each(cases)('%s', (_name, entryJson, lean) => {
    expect(leanRaw(read(entryJson))).toEqual(lean);
  });

  it('keeps a `__proto__` field as an own field, as JSON.parse made it', () => {
    const lean = leanRaw(read(sent('"__proto__":{"x":1}')));
    expect(Object.getPrototypeOf(lean)).toBe(Object.prototype);
    expect(JSON.parse(JSON.stringify(lean))).toEqual(JSON.parse('{"__proto__":{"x":1},"~joined_at":9674,"~left_at":0}'));
  });

  // Kept whole: entry.raw itself, which participant_session_entry gives back as it is.
  const whole: readonly [string, ParticipantEntry][] = [
    ['a key named like a marker', read(sent('"~joined_at":7'))],
    ['a `-` key', read(sent('"-":["roles"]'))],
    ['a key holding a NUL, which storableJson would rename', read(sent('"note\\u0000":1'))],
    ['a user_session_id other than the column', { ...read(sent()), userSessionId: 'us-2' }],
  ];

  it.each(whole)('keeps the entry whole for %s', (_name, entry) => {
    expect(leanRaw(entry)).toBe(entry.raw);
  });

  it('keeps what columns written from other values would not give back', () => {
    const entry = read(sent());
    expect(
      leanRaw({
        ...entry,
        userId: 'bob',
        publisherType: 'rtmp',
        roles: ['admin'],
        durationInSeconds: 2316,
        joinedAtMicros: '2026-04-08T14:23:35.879422Z',
        leftAtMicros: '2026-04-08T15:02:11+00:00',
      }),
    ).toEqual({
      user_id: 'alice',
      publisher_type: 'webrtc',
      roles: ['user'],
      duration_in_seconds: 2315,
      joined_at: '2026-04-08T14:23:35.879421674Z',
      left_at: '2026-04-08T15:02:11Z',
    });
    // Integer nanoseconds against a column a microsecond off.
    const nanos = read(sent('"joined_at":1775658215879421674'));
    expect(leanRaw({ ...nanos, joinedAtMicros: '2026-04-08T14:23:35.879422Z' })).toMatchObject({ joined_at: '1775658215879421674' });
  });

  it('does not change the entry', () => {
    const entry = read(sent('"future":1'));
    const before = JSON.stringify(entry.raw);
    leanRaw(entry);
    expect(JSON.stringify(entry.raw)).toBe(before);
  });
});
