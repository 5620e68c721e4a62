import type { AddressInfo } from 'node:net';
import { StreamClient as StreamSdkClient } from '@stream-io/node-sdk';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { buildApp } from '../../src/http/app.ts';
import { archiveSession } from '../../src/ingest/archive-session.ts';
import { createLogger } from '../../src/logger.ts';
import { createMetrics } from '../../src/metrics.ts';
import { claimSessions } from '../../src/queue/claim.ts';
import { generateSession, type SimSession } from '../../tools/simulator/generate.ts';
import { startSimulator, type Simulator } from '../../tools/simulator/server.ts';
import { timestampNanos, type TimestampFormat } from '../../tools/simulator/wire.ts';
import { createStreamClient, type StreamClient } from '../../src/stream/client.ts';
import { createServerToken } from '../../src/stream/token.ts';
import { HOUR_MS } from '../../src/time.ts';
import { insertCallSession, insertEntries } from '../helpers/attendance-data.ts';
import { useTestDatabase } from '../helpers/db.ts';
import { FAST_BACKOFF, FAST_PAGE_RETRY, enqueueSimSession, quietLogger, waitFor } from '../ingest/helpers.ts';
import { goDecodeParticipantSessions, parseLiteralJson, pyDecodeParticipantSessions, type Literal } from './sdk-decoders.ts';

/*
 * Issue 16, point 6, end to end: the simulator serves Stream's `session` object and a top-level
 * field Stream might add; the worker archives the session; the archive route answers both, digit
 * for digit, under its own ids, totals, entries, cursors and duration.
 */

const API_KEY = 'envelope-key';
const API_SECRET = 'envelope-secret-0123456789';
const config = loadConfig({ STREAM_API_KEY: API_KEY, STREAM_API_SECRET: API_SECRET });

/** A Literal as plain data: numbers as `#<their text>`, so 19-digit integers compare exactly. */
function plain(value: Literal): unknown {
  switch (value.kind) {
    case 'number':
      return `#${value.text}`;
    case 'string':
    case 'bool':
      return value.value;
    case 'null':
      return null;
    case 'array':
      return value.items.map(plain);
    case 'object':
      return Object.fromEntries([...value.fields].map(([key, inner]) => [key, plain(inner)]));
  }
}

const literal = (text: string) => plain(parseLiteralJson(text)) as Record<string, unknown>;

describe('archive API: Stream’s session object and added fields, simulator → worker → route', () => {
  const db = useTestDatabase();
  const pool = () => db.current.database.pool;
  let app: FastifyInstance;
  let baseUrl: string;
  let sim: Simulator;
  let stream: StreamClient;
  let sdk: StreamSdkClient;

  beforeAll(async () => {
    app = await buildApp({
      config,
      database: db.current.database,
      logger: createLogger({ level: 'silent' }),
      metrics: createMetrics({ defaultMetrics: false }),
    });
    await app.listen({ port: 0, host: '127.0.0.1' });
    baseUrl = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    sim = await startSimulator({ apiKey: API_KEY, apiSecret: API_SECRET });
    stream = createStreamClient({ baseUrl: sim.url, apiKey: API_KEY, apiSecret: API_SECRET, timeoutMs: 2_000 });
    sdk = new StreamSdkClient(API_KEY, API_SECRET, { basePath: baseUrl });
  });

  afterAll(async () => {
    await stream?.close();
    await app?.close();
    await sim?.close();
  });

  beforeEach(() => {
    sim.setOptions({ timestampFormat: 'rfc3339', lastPageNext: 'absent', missingFields: 'omit', notReadyForMs: 0, pageLatencyMs: 0 });
  });

  /** Archives `session` as the worker does; resolves to how the run ended. */
  async function archive(session: SimSession, client: StreamClient = stream): Promise<string> {
    sim.addSession(session);
    await enqueueSimSession(pool(), session);
    const [claimed] = (await claimSessions(pool(), { workerId: 'w1', limit: 100, leaseSeconds: 30 })).filter((c) => c.callSessionId === session.callSessionId);
    if (!claimed) throw new Error(`${session.callSessionId} was not claimable`);
    const result = await archiveSession({
      pool: pool(),
      stream: client,
      logger: quietLogger(),
      metrics: createMetrics({ defaultMetrics: false }),
      session: claimed,
      signal: new AbortController().signal,
      maxAttempts: 3,
      backoff: FAST_BACKOFF,
      pageRetry: FAST_PAGE_RETRY,
    });
    return result.status;
  }

  const pathOf = (s: { callType: string; callId: string; callSessionId: string }) =>
    `/api/v2/video/call/${encodeURIComponent(s.callType)}/${encodeURIComponent(s.callId)}/session/${encodeURIComponent(s.callSessionId)}/participant_sessions`;

  async function getText(base: string, s: { callType: string; callId: string; callSessionId: string }, params: Record<string, string> = {}): Promise<string> {
    const token = await createServerToken(API_SECRET);
    const res = await fetch(`${base}${pathOf(s)}?${new URLSearchParams({ api_key: API_KEY, ...params })}`, {
      headers: { authorization: token, 'stream-auth-type': 'jwt' },
    });
    expect(res.status).toBe(200);
    return res.text();
  }

  /** The simulator's own answer, read the same way: what Stream sent the worker. */
  async function fromStream(session: SimSession, format: TimestampFormat, params: Record<string, string> = {}): Promise<string> {
    sim.setOptions({ timestampFormat: format });
    return getText(sim.url, session, params);
  }

  for (const format of ['nanoseconds', 'rfc3339'] as const) {
    it(`answers session and an added field exactly as Stream sent them (${format}), under the archive's own fields`, async () => {
      sim.setOptions({ timestampFormat: format });
      const truth = generateSession({
        seed: `envelope-${format}`,
        size: 120,
        endedAt: new Date(Date.now() - HOUR_MS),
        subMillisecond: true,
        extraFields: true,
      });
      expect(await archive(truth)).toBe('complete');

      const sent = literal(await fromStream(truth, format));
      const text = await getText(baseUrl, truth, { limit: '100' });
      const answered = literal(text);
      expect(answered.session).toEqual(sent.session);
      expect(answered.something_new).toEqual(sent.something_new);
      // Digit for digit: the 19-digit integers a JS number would have changed.
      const { startedAt, endedAt, startedAtSubMsNs, endedAtSubMsNs } = truth;
      const checkedAt = /"checked_at":(\d{19})/.exec(truth.extraFieldsJson!)![1]!;
      expect(text).toContain(`"checked_at": ${checkedAt}`);
      if (format === 'nanoseconds') {
        expect((answered.session as Record<string, unknown>).started_at).toBe(`#${timestampNanos(startedAt, startedAtSubMsNs)}`);
        expect((answered.session as Record<string, unknown>).ended_at).toBe(`#${timestampNanos(endedAt, endedAtSubMsNs)}`);
      } else {
        expect(typeof (answered.session as Record<string, unknown>).started_at).toBe('string');
      }
      // The archive's fields, each once: its ids and Stream's totals from call_sessions, its own
      // entries (timestamps as integers), its own cursor and duration.
      expect(Object.keys(answered).sort()).toEqual([
        'call_id',
        'call_session_id',
        'call_type',
        'duration',
        'next',
        'participants_sessions',
        'session',
        'something_new',
        'total_participant_duration',
        'total_participant_sessions',
      ]);
      for (const key of Object.keys(answered)) expect(text.split(`"${key}":`)).toHaveLength(2);
      expect(answered.total_participant_sessions).toBe('#120');
      expect((answered.participants_sessions as unknown[]).length).toBe(100);
      expect(text.indexOf('"something_new"')).toBeLessThan(text.indexOf('"participants_sessions"'));

      // The official Node SDK still reads the answer, session included.
      const page = await sdk.video.queryCallParticipantSessions({ type: truth.callType, id: truth.callId, session: truth.callSessionId, limit: 100 });
      expect(page.participants_sessions).toHaveLength(100);
      expect(page.total_participant_sessions).toBe(120);
      expect(page.session?.id).toBe(truth.callSessionId);
      expect(new Date(page.session!.started_at as unknown as string | Date).getTime()).toBe(startedAt.getTime());
      expect((page as unknown as { something_new?: unknown }).something_new).toMatchObject({ a: 1, labels: ['x', 'y'], note: null });
      if (format === 'nanoseconds') {
        // The Go and Python SDKs (stand-ins: sdk-decoders.ts) decode it as before.
        expect(goDecodeParticipantSessions(text).participantsSessions).toHaveLength(100);
        expect(pyDecodeParticipantSessions(text).total_participant_sessions).toBe(120);
      }
    });
  }

  it('the totals in call_sessions win over the stored answer’s, and a later page keeps the envelope', async () => {
    const truth = generateSession({ seed: 'envelope-totals', size: 30, endedAt: new Date(Date.now() - HOUR_MS), extraFields: true });
    expect(await archive(truth)).toBe('complete');
    await pool().query(
      `update stream_responses set response = response || '{"total_participant_sessions": 999, "call_id": "elsewhere", "duration": 77, "next": "n"}'::jsonb
        where call_session_id = $1`,
      [truth.callSessionId],
    );
    const first = literal(await getText(baseUrl, truth, { limit: '20' }));
    expect(first).toMatchObject({ total_participant_sessions: '#30', call_id: truth.callId });
    expect(first.duration).not.toBe('#77');
    expect(first.next).not.toBe('n');
    const second = literal(await getText(baseUrl, truth, { limit: '20', next: first.next as string }));
    expect(second).not.toHaveProperty('next');
    expect(second.session).toEqual(first.session);
    expect(second.something_new).toEqual(first.something_new);
  });

  it('a session archived before stream_responses existed answers as before: no session, no added field', async () => {
    const seed = { call_session_id: 'old-1', call_type: 'default', call_id: 'old-call' };
    await insertCallSession(pool(), {
      ...seed,
      status: 'complete',
      total_participant_sessions: 1,
      total_participant_duration: 60,
      archived_participant_sessions: 1,
    });
    await insertEntries(pool(), seed, [
      {
        user_id: 'u',
        user_session_id: 'us-1',
        publisher_type: 'webrtc',
        roles: [],
        joined_at: '2026-04-08T14:23:35.879421674Z',
        left_at: '2026-04-08T14:24:35.879421674Z',
        duration_in_seconds: 60,
      },
    ]);
    const text = await getText(baseUrl, { callType: 'default', callId: 'old-call', callSessionId: 'old-1' });
    const answered = literal(text);
    expect(Object.keys(answered)).toEqual([
      'call_type',
      'call_id',
      'call_session_id',
      'total_participant_sessions',
      'total_participant_duration',
      'participants_sessions',
      'duration',
    ]);
    expect(text).toMatch(
      /^\{"call_type":"default","call_id":"old-call","call_session_id":"old-1","total_participant_sessions":1,"total_participant_duration":60,"participants_sessions":\[\{/,
    );
    const page = await sdk.video.queryCallParticipantSessions({ type: 'default', id: 'old-call', session: 'old-1' });
    expect(page.session).toBeUndefined();
  });

  it('a worker that lost its lease before the last page writes no envelope', async () => {
    const truth = generateSession({ seed: 'envelope-lease', size: 250, endedAt: new Date(Date.now() - HOUR_MS), extraFields: true });
    let pages = 0;
    const stealing: StreamClient = {
      ...stream,
      async queryCallParticipantSessions(params) {
        const page = await stream.queryCallParticipantSessions(params);
        // The third page is the last (100 a page): once the second is written (it is written
        // while the third is fetched), another worker takes the session, before the last write.
        if (++pages === 3) {
          await waitFor('the second page written', async () => (await heldRows()) === 200);
          await pool().query(`update call_sessions set lease_owner = 'w2' where call_session_id = $1`, [truth.callSessionId]);
        }
        return page;
      },
    };
    const heldRows = async () =>
      (await pool().query('select count(*)::int as n from participant_sessions where call_session_id = $1', [truth.callSessionId])).rows[0].n as number;
    expect(await archive(truth, stealing)).toBe('lease_lost');
    expect(pages).toBe(3);
    // The last page, the one carrying the envelope, was fenced out whole: its rows and the envelope.
    expect(await heldRows()).toBe(200);
    expect((await pool().query('select 1 from stream_responses where call_session_id = $1', [truth.callSessionId])).rowCount).toBe(0);
  });
});
