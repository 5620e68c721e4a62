import { describe, expect, it } from 'vitest';
import { InvalidWebhookEventError, parseCallCid, parseWebhookEvent } from '../../src/stream/webhook-events.ts';
import { buildSessionEndedEvent, buildStatsReportReadyEvent } from '../helpers/webhooks.ts';

describe('parseWebhookEvent', () => {
  it('reads call.stats_report_ready', () => {
    const event = parseWebhookEvent(
      buildStatsReportReadyEvent({ callCid: 'default:abc', sessionId: 'sess-1', createdAt: '2026-04-08T14:23:35.879421674Z' }),
    );
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
      buildSessionEndedEvent({ callCid: 'livestream:x', sessionId: 'sess-2', createdAt: 1775658000000000000, endedAt: '2026-04-08T14:00:00Z' }),
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
    const event = parseWebhookEvent(buildSessionEndedEvent({ endedAt: null }));
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
    const event = parseWebhookEvent(buildStatsReportReadyEvent({ callCid: 'default:room:42' }));
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
    for (const body of [buildStatsReportReadyEvent(), buildSessionEndedEvent()]) {
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
    const event = parseWebhookEvent({ ...buildStatsReportReadyEvent(), created_at: value });
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
    const event = parseWebhookEvent(buildSessionEndedEvent({ endedAt: 1775656800000000000 }));
    expect(event).toMatchObject({ sessionEndedAt: new Date(1775656800000) });
    expect(parseWebhookEvent(buildSessionEndedEvent({ endedAt: 'soon' }))).toMatchObject({ sessionEndedAt: null });
  });
});
