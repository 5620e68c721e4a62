import { describe, expect, it } from 'vitest';
import {
  exceedsJsonDepth,
  InvalidWebhookEventError,
  MAX_WEBHOOK_JSON_DEPTH,
  nestsDeeperThan,
  parseCallCid,
  parseWebhookEvent,
} from '../../src/stream/webhook-events.ts';
import { sessionEndedBody, statsReportReadyBody } from '../helpers/webhooks.ts';

describe('parseWebhookEvent', () => {
  it('reads call.stats_report_ready', () => {
    const event = parseWebhookEvent(statsReportReadyBody({ callCid: 'default:abc', sessionId: 'sess-1', createdAt: '2026-04-08T14:23:35.879421674Z' }));
    expect(event).toEqual({
      kind: 'stats_report_ready',
      type: 'call.stats_report_ready',
      callCid: 'default:abc',
      callType: 'default',
      callId: 'abc',
      callSessionId: 'sess-1',
      createdAt: new Date('2026-04-08T14:23:35.879Z'),
    });
  });

  it('reads call.session_ended with call.session.ended_at', () => {
    const event = parseWebhookEvent(
      sessionEndedBody({ callCid: 'livestream:x', sessionId: 'sess-2', createdAt: 1775658000000000000, endedAt: '2026-04-08T14:00:00Z' }),
    );
    expect(event).toMatchObject({
      kind: 'session_ended',
      callType: 'livestream',
      callId: 'x',
      callSessionId: 'sess-2',
      createdAt: new Date(1775658000000),
      sessionEndedAt: new Date('2026-04-08T14:00:00Z'),
    });
  });

  it('reads call.session_ended without an end time as sessionEndedAt null', () => {
    const event = parseWebhookEvent(sessionEndedBody({ endedAt: null }));
    expect(event).toMatchObject({ kind: 'session_ended', sessionEndedAt: null });
    const bare = parseWebhookEvent({ type: 'call.session_ended', call_cid: 'a:b', session_id: 's' });
    expect(bare).toMatchObject({ kind: 'session_ended', sessionEndedAt: null, createdAt: null });
  });

  it('passes other event types through as ignored, without requiring their fields', () => {
    expect(parseWebhookEvent({ type: 'call.session_participant_joined' })).toEqual({
      kind: 'ignored',
      type: 'call.session_participant_joined',
    });
    expect(parseWebhookEvent({ type: 'some.future_event', call_cid: 'nocolon' })).toEqual({ kind: 'ignored', type: 'some.future_event' });
  });

  it('splits call_cid on the first colon only', () => {
    const event = parseWebhookEvent(statsReportReadyBody({ callCid: 'default:room:42' }));
    expect(event).toMatchObject({ callType: 'default', callId: 'room:42', callCid: 'default:room:42' });
  });

  it.each([
    ['not an object', [1, 2]],
    ['null', null],
    ['a number', 42],
    ['missing type', { call_cid: 'a:b', session_id: 's' }],
    ['type not a string', { type: 7 }],
  ])('refuses a body that is %s', (_name, body) => {
    expect(() => parseWebhookEvent(body)).toThrow(InvalidWebhookEventError);
  });

  it.each([
    ['missing call_cid', { call_cid: undefined }, /call_cid is missing/],
    ['call_cid not a string', { call_cid: 12 }, /call_cid is missing/],
    ['call_cid without a colon', { call_cid: 'default' }, /call_cid is not/],
    ['call_cid with an empty type', { call_cid: ':abc' }, /call_cid is not/],
    ['call_cid with an empty id', { call_cid: 'default:' }, /call_cid is not/],
    ['missing session_id', { session_id: undefined }, /session_id is missing/],
    ['empty session_id', { session_id: '' }, /session_id is missing/],
    ['absurdly long session_id', { session_id: 'x'.repeat(300) }, /session_id is too long/],
  ])('refuses a handled event with %s', (_name, change, message) => {
    for (const body of [statsReportReadyBody(), sessionEndedBody()]) {
      expect(() => parseWebhookEvent({ ...body, ...change })).toThrow(message);
    }
  });
});

describe('parseCallCid', () => {
  it('splits at the first colon', () => {
    expect(parseCallCid('a:b:c')).toEqual({ callType: 'a', callId: 'b:c' });
  });

  it('refuses cids Stream never issues', () => {
    expect(parseCallCid('nocolon')).toBeNull();
    expect(parseCallCid(':id')).toBeNull();
    expect(parseCallCid('type:')).toBeNull();
    expect(parseCallCid(`a:${'b'.repeat(300)}`)).toBeNull();
  });
});

describe('event times', () => {
  const createdAt = (value: unknown) => {
    const event = parseWebhookEvent({ ...statsReportReadyBody(), created_at: value });
    return event.kind === 'stats_report_ready' ? event.createdAt : undefined;
  };

  it('reads RFC 3339 with nanoseconds, keeping milliseconds', () => {
    expect(createdAt('2026-04-08T14:23:35.879421674Z')?.toISOString()).toBe('2026-04-08T14:23:35.879Z');
  });

  it('reads RFC 3339 without a fraction and with an offset', () => {
    expect(createdAt('2026-04-08T14:23:35Z')?.toISOString()).toBe('2026-04-08T14:23:35.000Z');
    expect(createdAt('2026-04-08T16:23:35.5+02:00')?.toISOString()).toBe('2026-04-08T14:23:35.500Z');
  });

  it('reads integer nanoseconds since the epoch', () => {
    expect(createdAt(1778198400000000000)?.toISOString()).toBe('2026-05-08T00:00:00.000Z');
    // biome-ignore lint/correctness/noPrecisionLoss: a JSON number of nanoseconds arrives as this imprecise double; that is the case under test
    expect(createdAt(1775658215879421674)?.toISOString()).toBe('2026-04-08T14:23:35.879Z');
  });

  it('reads the unset forms as absent', () => {
    expect(createdAt(0)).toBeNull();
    expect(createdAt('0001-01-01T00:00:00Z')).toBeNull();
    expect(createdAt(undefined)).toBeNull();
    expect(createdAt(null)).toBeNull();
  });

  it('reads malformed values as absent instead of refusing the delivery', () => {
    expect(createdAt('yesterday')).toBeNull();
    expect(createdAt('2026-04-08T14:23:35')).toBeNull(); // no zone: ambiguous
    expect(createdAt('2026-13-08T14:23:35Z')).toBeNull();
    expect(createdAt(Number.NaN)).toBeNull();
    expect(createdAt({ seconds: 1 })).toBeNull();
  });

  it('reads call.session.ended_at the same way', () => {
    const event = parseWebhookEvent(sessionEndedBody({ endedAt: 1775656800000000000 }));
    expect(event).toMatchObject({ sessionEndedAt: new Date(1775656800000) });
    expect(parseWebhookEvent(sessionEndedBody({ endedAt: 'soon' }))).toMatchObject({ sessionEndedAt: null });
  });
});

describe('ids that are not what the event said', () => {
  const withIds = (callCid: string, sessionId: string) => ({ type: 'call.stats_report_ready', call_cid: callCid, session_id: sessionId });

  it.each([
    ['a lone high surrogate in session_id', withIds('default:a', 's-\ud800')],
    ['a lone low surrogate in session_id', withIds('default:a', '\udc00-s')],
    ['a reversed pair in the call id', withIds('default:\udc00\ud800', 's')],
    ['a lone surrogate in the call type', withIds('de\udbffault:a', 's')],
  ])('refuses %s', (_, body) => {
    expect(() => parseWebhookEvent(body)).toThrow(InvalidWebhookEventError);
    expect(() => parseWebhookEvent({ ...body, type: 'call.session_ended' })).toThrow('call_cid or session_id holds invalid characters');
  });

  it('refuses U+FFFD in an id only when the body was not valid UTF-8 (then it stands for bytes the sender wrote)', () => {
    const body = withIds('default:call-\ufffd', 's-\ufffd');
    expect(parseWebhookEvent(body)).toMatchObject({ callId: 'call-\ufffd', callSessionId: 's-\ufffd' });
    expect(parseWebhookEvent(body, { bodyWasUtf8: true })).toMatchObject({ callSessionId: 's-\ufffd' });
    expect(() => parseWebhookEvent(body, { bodyWasUtf8: false })).toThrow(InvalidWebhookEventError);
    expect(() => parseWebhookEvent(withIds('default:a', 's-\ufffd'), { bodyWasUtf8: false })).toThrow(InvalidWebhookEventError);
    expect(parseWebhookEvent(withIds('default:a', 's'), { bodyWasUtf8: false })).toMatchObject({ callSessionId: 's' });
  });

  it('keeps surrogate pairs, dots and slashes: only invalid characters are refused', () => {
    expect(parseWebhookEvent(withIds('default:🎧/..', '../s.1'))).toMatchObject({ callId: '🎧/..', callSessionId: '../s.1' });
  });

  it('does not look at the ids of ignored event types', () => {
    expect(parseWebhookEvent({ type: 'call.created', call_cid: 'a:\ud800', session_id: '\ud800' })).toEqual({ kind: 'ignored', type: 'call.created' });
  });
});

describe('exceedsJsonDepth', () => {
  const deep = (depth: number) => Buffer.from(`{"a":${'['.repeat(depth - 1)}${']'.repeat(depth - 1)}}`);

  it('counts objects and arrays, the root included', () => {
    expect(exceedsJsonDepth(deep(MAX_WEBHOOK_JSON_DEPTH), MAX_WEBHOOK_JSON_DEPTH)).toBe(false);
    expect(exceedsJsonDepth(deep(MAX_WEBHOOK_JSON_DEPTH + 1), MAX_WEBHOOK_JSON_DEPTH)).toBe(true);
    expect(exceedsJsonDepth(Buffer.from('[[{"a":{}}],[[]]]'), 4)).toBe(false);
    expect(exceedsJsonDepth(Buffer.from('[[{"a":{}}],[[]]]'), 3)).toBe(true);
  });

  it('ignores brackets inside strings, escaped quotes included', () => {
    const inString = Buffer.from(`{"a":"${'[{'.repeat(100)}","b":"\\"${'['.repeat(100)}\\\\","c":[1]}`);
    expect(JSON.parse(String(inString))).toBeTruthy();
    expect(exceedsJsonDepth(inString, 2)).toBe(false);
    expect(exceedsJsonDepth(inString, 1)).toBe(true);
  });

  it('passes multi-byte UTF-8 through untouched', () => {
    expect(exceedsJsonDepth(Buffer.from('{"🎧":["é",{"ü":"[[["}]}'), 3)).toBe(false);
  });

  it('finds 100,000 levels in a few milliseconds, stopping at the limit', () => {
    const body = Buffer.from(`${'['.repeat(100_000)}${']'.repeat(100_000)}`);
    const started = performance.now();
    expect(exceedsJsonDepth(body, MAX_WEBHOOK_JSON_DEPTH)).toBe(true);
    expect(performance.now() - started).toBeLessThan(50);
  });
});

describe('nestsDeeperThan', () => {
  const deep = (depth: number) => JSON.parse(`{"a":${'['.repeat(depth - 1)}${']'.repeat(depth - 1)}}`) as unknown;

  it('counts objects and arrays, the root included, and nothing else', () => {
    expect(nestsDeeperThan(deep(MAX_WEBHOOK_JSON_DEPTH), MAX_WEBHOOK_JSON_DEPTH)).toBe(false);
    expect(nestsDeeperThan(deep(MAX_WEBHOOK_JSON_DEPTH + 1), MAX_WEBHOOK_JSON_DEPTH)).toBe(true);
    const value = JSON.parse('[[{"a":{}}],[[]],"[[[[",7,null]');
    expect(nestsDeeperThan(value, 4)).toBe(false);
    expect(nestsDeeperThan(value, 3)).toBe(true);
    expect(nestsDeeperThan('[[[[', 0)).toBe(false);
    expect(nestsDeeperThan(null, 0)).toBe(false);
  });

  it('finds the deep path among shallow siblings, in objects as in arrays', () => {
    const value = { a: 1, b: [1, 2, { c: 'x' }], d: { e: { f: { g: [[[]]] } } } };
    expect(nestsDeeperThan(value, 7)).toBe(false);
    expect(nestsDeeperThan(value, 6)).toBe(true);
  });

  it('agrees with the byte scan on Stream-shaped events', () => {
    for (const body of [statsReportReadyBody(), sessionEndedBody()]) {
      for (const max of [1, 2, 3, 4, 5, 64]) {
        expect(nestsDeeperThan(body, max)).toBe(exceedsJsonDepth(Buffer.from(JSON.stringify(body)), max));
      }
    }
  });

  it('stops at the limit: 500,000 levels cost next to nothing once parsed', () => {
    const value = JSON.parse(`${'['.repeat(500_000)}${']'.repeat(500_000)}`) as unknown;
    const started = performance.now();
    expect(nestsDeeperThan(value, MAX_WEBHOOK_JSON_DEPTH)).toBe(true);
    expect(performance.now() - started).toBeLessThan(20);
  });
});
