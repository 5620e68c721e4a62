import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createStreamClient, type StreamClient } from '../../src/stream/client.ts';
import { StreamApiError } from '../../src/stream/errors.ts';
import { paginateParticipantSessions } from '../../src/stream/paginate.ts';
import { json, startStubServer } from './stub-server.ts';

let stub: Awaited<ReturnType<typeof startStubServer>>;
let client: StreamClient;

beforeAll(async () => {
  stub = await startStubServer((_req, res) => json(res, 200, {}));
  client = createStreamClient({ baseUrl: stub.url, apiKey: 'k', apiSecret: 's', timeoutMs: 1_000 });
});

afterAll(async () => {
  await client.close();
  await stub.close();
});

/** Three pages of participant sessions behind opaque cursors; the last page ends with next: "". */
function participantPages(req: { url: URL }, res: Parameters<typeof json>[0]) {
  const cursor = req.url.searchParams.get('next') ?? '';
  const index = cursor === '' ? 0 : Number(cursor.replace('page-', ''));
  const entries = Array.from({ length: index < 2 ? 2 : 1 }, (_, i) => ({
    user_id: `u${index}`,
    user_session_id: `p${index}-${i}`,
    publisher_type: 'webrtc',
    roles: ['user'],
    joined_at: 1767261600000000000 + index * 1e9,
    duration_in_seconds: 60,
  }));
  json(res, 200, {
    call_type: 'default',
    call_id: 'c1',
    call_session_id: 'cs1',
    duration: 3,
    total_participant_sessions: 5,
    total_participant_duration: 300,
    participants_sessions: entries,
    next: index < 2 ? `page-${index + 1}` : '',
  });
}

describe('stream client', () => {
  it('queries participant sessions and parses the page', async () => {
    stub.setHandler(participantPages);
    const page = await client.queryCallParticipantSessions({ type: 'default', id: 'c1', session: 'cs1', limit: 100 });
    expect(page).toMatchObject({ callSessionId: 'cs1', totalParticipantSessions: 5, next: 'page-1' });
    expect(page.entries.map((e) => e.userSessionId)).toEqual(['p0-0', 'p0-1']);
    expect(page.entries[0]?.joinedAt?.toISOString()).toBe('2026-01-01T10:00:00.000Z');
    expect(stub.requests.at(-1)?.url.pathname).toBe('/api/v2/video/call/default/c1/session/cs1/participant_sessions');
  });

  it('pages to the end with limit=100, following the cursors', async () => {
    stub.setHandler(participantPages);
    const before = stub.requests.length;
    const seen: string[] = [];
    for await (const { page, cursor } of paginateParticipantSessions(client, { type: 'default', id: 'c1', session: 'cs1' })) {
      seen.push(`${cursor ?? 'start'}:${page.entries.length}`);
    }
    expect(seen).toEqual(['start:2', 'page-1:2', 'page-2:1']);
    const sent = stub.requests.slice(before);
    expect(sent.map((r) => r.url.searchParams.get('limit'))).toEqual(['100', '100', '100']);
  });

  it('turns a body of the wrong shape into a retryable invalid-response error', async () => {
    stub.setHandler((_req, res) => json(res, 200, { call_type: 'default', call_id: 'c1' }));
    const error = await client.queryCallParticipantSessions({ type: 'default', id: 'c1', session: 'cs1' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StreamApiError);
    expect(error).toMatchObject({ failure: 'invalid_response', retryable: true, status: 200 });
    expect((error as Error).message).toMatch(/call_session_id/);
  });

  it('posts call_stats queries with filter, sort and cursor in the body', async () => {
    stub.setHandler((_req, res) =>
      json(res, 201, {
        duration: '2ms',
        call_stats: [
          {
            call_type: 'default',
            call_id: 'c1',
            call_session_id: 'cs1',
            generated_at: '2026-01-01T12:00:00Z',
            counts: {},
            call_ended_at: '2026-01-01T11:00:00Z',
          },
        ],
        next: 'n2',
      }),
    );
    const page = await client.queryCallSessionStats({
      filterConditions: { session_ended_at: { $gte: '2026-01-01T00:00:00.000Z' } },
      sort: [
        { field: 'session_ended_at', direction: 1 },
        { field: 'call_cid', direction: 1 },
      ],
      limit: 100,
      next: 'n1',
    });
    expect(page).toEqual({
      rows: [
        {
          callType: 'default',
          callId: 'c1',
          callSessionId: 'cs1',
          sessionStartedAt: null,
          sessionEndedAt: new Date('2026-01-01T11:00:00Z'),
          generatedAt: new Date('2026-01-01T12:00:00Z'),
        },
      ],
      next: 'n2',
    });
    const sent = stub.requests.at(-1)!;
    expect(sent.method).toBe('POST');
    expect(sent.url.pathname).toBe('/api/v2/video/call_stats');
    expect(JSON.parse(sent.body)).toEqual({
      filter_conditions: { session_ended_at: { $gte: '2026-01-01T00:00:00.000Z' } },
      sort: [
        { field: 'session_ended_at', direction: 1 },
        { field: 'call_cid', direction: 1 },
      ],
      limit: 100,
      next: 'n1',
    });
  });
});
