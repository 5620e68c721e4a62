import { describe, expect, it } from 'vitest';
import { foundSession } from '../../src/reconcile/enqueue-found.ts';
import { estimateRetention, retentionExpiresAt } from '../../src/stream/retention.ts';
import { DAY_MS } from '../../src/time.ts';

const end = new Date('2026-03-01T12:00:00Z');
const start = new Date('2026-03-01T10:30:00Z');
const generated = new Date('2026-03-01T12:04:00Z');
const listed = new Date('2026-03-02T00:00:00Z');

describe('the retention of a listed session', () => {
  it.each([
    ['its end, when known', { sessionEndedAt: end, sessionStartedAt: start, generatedAt: generated }, end, 'ended'],
    ['else its start, never later than the end', { sessionEndedAt: null, sessionStartedAt: start, generatedAt: generated }, start, 'started'],
    ['else the report time', { sessionEndedAt: null, sessionStartedAt: null, generatedAt: generated }, generated, 'generated'],
    ['else when it was listed', { sessionEndedAt: null, sessionStartedAt: null, generatedAt: null }, listed, 'listed'],
  ] as const)('counts 90 days from %s', (_, dates, from, basis) => {
    expect(estimateRetention(dates, listed)).toEqual({ expiresAt: new Date(from.getTime() + 90 * DAY_MS), basis });
  });

  it('keeps session_ended_at null unless Stream gave the end, so a better date can replace the estimate', () => {
    const row = { callType: 'default', callId: 'a', callSessionId: 's', sessionStartedAt: start, sessionEndedAt: null, generatedAt: generated };
    expect(foundSession(row, listed)).toEqual({
      callType: 'default',
      callId: 'a',
      callSessionId: 's',
      sessionEndedAt: null,
      retentionExpiresAt: retentionExpiresAt(start),
      retentionBasis: 'started',
    });
    expect(foundSession({ ...row, sessionEndedAt: end }, listed)).toMatchObject({
      sessionEndedAt: end,
      retentionExpiresAt: retentionExpiresAt(end),
      retentionBasis: 'ended',
    });
  });
});
