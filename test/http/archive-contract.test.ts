import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { buildApp } from '../../src/http/app.ts';
import { archiveSession } from '../../src/ingest/archive-session.ts';
import { createLogger } from '../../src/logger.ts';
import { createMetrics } from '../../src/metrics.ts';
import { claimSessions } from '../../src/queue/claim.ts';
import { generateSession, type SimSession } from '../../tools/simulator/generate.ts';
import { startSimulator, type Simulator } from '../../tools/simulator/server.ts';
import { timestampNanos, type MissingFieldStyle, type TimestampFormat } from '../../tools/simulator/wire.ts';
import { createStreamClient, type StreamClient } from '../../src/stream/client.ts';
import { createServerToken } from '../../src/stream/token.ts';
import { useTestDatabase } from '../helpers/db.ts';
import { FAST_BACKOFF, FAST_PAGE_RETRY, enqueueSimSession, quietLogger } from '../ingest/helpers.ts';
import { goDecodeApiError, goDecodeParticipantSessions, pyDecodeParticipantSessions } from './sdk-decoders.ts';
import { HOUR_MS } from '../../src/time.ts';

/*
 * The archive route read the way each official server SDK reads it. The Node SDK runs for real in
 * archive.test.ts; Go and Python cannot be installed here, so their decoders' rules are applied to
 * the exact bytes (test/http/sdk-decoders.ts names the source of each rule). The sessions are
 * archived by the real worker from the simulator, with nanoseconds past the millisecond, in both
 * of Stream's wire forms: the route must give back each instant digit for digit.
 */

const API_KEY = 'contract-key';
const API_SECRET = 'contract-secret-0123456789';
const config = loadConfig({ STREAM_API_KEY: API_KEY, STREAM_API_SECRET: API_SECRET });

describe('archive route: the contract every server SDK decodes', () => {
  const db = useTestDatabase();
  const pool = () => db.current.database.pool;
  const ended = new Date(Date.now() - HOUR_MS);
  const variants: { format: TimestampFormat; missing: MissingFieldStyle; session: SimSession }[] = [
    { format: 'nanoseconds', missing: 'omit', session: generateSession({ seed: 'contract-ns', size: 250, endedAt: ended, subMillisecond: true }) },
    { format: 'rfc3339', missing: 'null', session: generateSession({ seed: 'contract-rfc', size: 250, endedAt: ended, subMillisecond: true }) },
  ];
  let sim: Simulator;
  let stream: StreamClient;
  let app: FastifyInstance;
  let baseUrl: string;

  beforeAll(async () => {
    sim = await startSimulator({ apiKey: API_KEY, apiSecret: API_SECRET });
    stream = createStreamClient({ baseUrl: sim.url, apiKey: API_KEY, apiSecret: API_SECRET, timeoutMs: 5_000 });
    for (const { format, missing, session } of variants) {
      sim.setOptions({ timestampFormat: format, missingFields: missing });
      sim.addSession(session);
      await enqueueSimSession(pool(), session);
      const [claimed] = await claimSessions(pool(), { workerId: `w-${format}`, limit: 1, leaseSeconds: 30 });
      const result = await archiveSession({
        pool: pool(),
        stream,
        logger: quietLogger(),
        metrics: createMetrics({ defaultMetrics: false }),
        session: claimed!,
        signal: new AbortController().signal,
        maxAttempts: 3,
        backoff: FAST_BACKOFF,
        pageRetry: FAST_PAGE_RETRY,
      });
      expect(result).toMatchObject({ status: 'complete', rows: session.participants.length });
    }
    app = await buildApp({
      config,
      database: db.current.database,
      logger: createLogger({ level: 'silent' }),
      metrics: createMetrics({ defaultMetrics: false }),
    });
    await app.listen({ port: 0, host: '127.0.0.1' });
    baseUrl = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    await app?.close();
    await stream?.close();
    await sim?.close();
  });

  async function get(session: SimSession, params: Record<string, string> = {}, suffix = '') {
    const query = new URLSearchParams({ api_key: API_KEY, ...params });
    const res = await fetch(
      `${baseUrl}/api/v2/video/call/${session.callType}/${session.callId}/session/${session.callSessionId}/participant_sessions${suffix}?${query}`,
      {
        headers: { authorization: await createServerToken(API_SECRET), 'stream-auth-type': 'jwt' },
      },
    );
    return { status: res.status, text: await res.text() };
  }

  /** Every page's raw text, following next. */
  async function allPages(session: SimSession): Promise<string[]> {
    const pages: string[] = [];
    let next: string | undefined;
    do {
      const res = await get(session, { limit: '100', ...(next ? { next } : {}) });
      expect(res.status).toBe(200);
      pages.push(res.text);
      next = goDecodeParticipantSessions(res.text).next;
    } while (next && pages.length < 10);
    return pages;
  }

  it('the simulator really sent nanoseconds past the microsecond, so precision is tested', () => {
    for (const { session } of variants) {
      const subMicro = session.participants.filter((p) => (p.joined_at_sub_ms_ns ?? 0) % 1_000 !== 0);
      expect(subMicro.length).toBeGreaterThan(session.participants.length / 2);
    }
  });

  it('Go (pinned Timestamp: strconv.ParseInt only) decodes every page, each instant exact to the nanosecond', async () => {
    for (const { format, session } of variants) {
      const truth = new Map(session.participants.map((p) => [p.user_session_id, p]));
      const seen = new Set<string>();
      for (const text of await allPages(session)) {
        const page = goDecodeParticipantSessions(text);
        expect(page).toMatchObject({ callType: session.callType, callId: session.callId, callSessionId: session.callSessionId });
        expect(page.totalParticipantSessions).toBe(BigInt(session.participants.length));
        expect(page.totalParticipantDuration).toBe(BigInt(session.totalParticipantDuration));
        for (const entry of page.participantsSessions) {
          const p = truth.get(entry.userSessionId)!;
          seen.add(entry.userSessionId);
          expect(entry.joinedAtNs, format).toBe(p.joined_at ? BigInt(timestampNanos(p.joined_at, p.joined_at_sub_ms_ns)) : undefined);
          expect(entry.leftAtNs, format).toBe(p.left_at ? BigInt(timestampNanos(p.left_at, p.left_at_sub_ms_ns)) : undefined);
          expect(entry.durationInSeconds).toBe(p.duration_in_seconds === null ? undefined : BigInt(p.duration_in_seconds));
          expect(entry).toMatchObject({ userId: p.user_id, publisherType: p.publisher_type, roles: p.roles });
        }
      }
      expect(seen.size).toBe(session.participants.length);
    }
  });

  it('Python (datetime_from_unix_ns: int(ts), ts / 1e9) decodes every page, with Stream’s totals and types', async () => {
    for (const { session } of variants) {
      const truth = new Map(session.participants.map((p) => [p.user_session_id, p]));
      let count = 0;
      for (const text of await allPages(session)) {
        const page = pyDecodeParticipantSessions(text);
        expect(page.total_participant_sessions).toBe(session.participants.length);
        expect(page.total_participant_duration).toBe(session.totalParticipantDuration);
        for (const entry of page.participants_sessions) {
          const p = truth.get(entry.user_session_id)!;
          count += 1;
          if (p.joined_at) expect(entry.joined_at).toBe(Number(BigInt(timestampNanos(p.joined_at, p.joined_at_sub_ms_ns))) / 1e9);
          // An entry Stream sent without left_at: absent or null, never a wrong instant.
          if (p.left_at) expect(entry.left_at).toBe(Number(BigInt(timestampNanos(p.left_at, p.left_at_sub_ms_ns))) / 1e9);
          else expect(entry.left_at ?? null).toBeNull();
        }
      }
      expect(count).toBe(session.participants.length);
    }
  });

  it('both decoders would fail on RFC 3339 timestamps, the form the route used to answer', () => {
    const old =
      '{"call_type":"default","call_id":"c","call_session_id":"s","duration":1,"total_participant_sessions":1,"total_participant_duration":1,' +
      '"participants_sessions":[{"user_id":"a","user_session_id":"x","publisher_type":"webrtc","roles":[],"joined_at":"2026-04-08T14:23:35.879421674Z"}]}';
    expect(() => goDecodeParticipantSessions(old)).toThrow(/strconv.ParseInt/);
    expect(() => pyDecodeParticipantSessions(old)).toThrow(/invalid literal for int/);
    // And a duration written as a string, as most other Stream responses do, fails Go's int field.
    expect(() => goDecodeParticipantSessions(old.replace('"duration":1', '"duration":"1ms"'))).toThrow(/duration/);
  });

  it('the summary’s timestamps are integer nanoseconds too, exact to the digit', async () => {
    const { session } = variants[0]!;
    const res = await get(session, {}, '/summary');
    expect(res.status).toBe(200);
    const first = session.participants
      .filter((p) => p.joined_at)
      .sort((a, b) => a.joined_at!.getTime() - b.joined_at!.getTime() || (a.joined_at_sub_ms_ns ?? 0) - (b.joined_at_sub_ms_ns ?? 0))[0]!;
    expect(res.text).toContain(`"first_joined_at":${timestampNanos(first.joined_at!, first.joined_at_sub_ms_ns)},`);
  });

  it('errors decode as Go’s APIError: integer code and StatusCode, string duration, string exception_fields', async () => {
    const { session } = variants[0]!;
    const refused = await get(session, { filter_conditions: JSON.stringify({ is_live: true }) });
    expect(refused.status).toBe(400);
    expect(goDecodeApiError(refused.text)).toMatchObject({ code: 4n, statusCode: 400n, message: expect.stringContaining('"is_live"') });
    expect(goDecodeApiError(refused.text).duration).toMatch(/ms$/);

    await pool().query(`update call_sessions set status = 'running', archived_at = null where call_session_id = $1`, [session.callSessionId]);
    const partial = await get(session);
    await pool().query(`update call_sessions set status = 'complete', archived_at = now() where call_session_id = $1`, [session.callSessionId]);
    expect(partial.status).toBe(404);
    const error = goDecodeApiError(partial.text);
    expect(error).toMatchObject({ code: 16n, statusCode: 404n });
    expect(error.exceptionFields.get('session')).toContain('running');

    const res = await fetch(
      `${baseUrl}/api/v2/video/call/${session.callType}/${session.callId}/session/${session.callSessionId}/participant_sessions?api_key=${API_KEY}`,
    );
    expect(res.status).toBe(401);
    expect(goDecodeApiError(await res.text())).toMatchObject({ code: 5n, statusCode: 401n });
  });
});
