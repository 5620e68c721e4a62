import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { StreamClient } from '@stream-io/node-sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateSession, type SimParticipant } from '../../tools/simulator/generate.ts';
import { startSimulator, type Simulator } from '../../tools/simulator/server.ts';
import { buildStatsReportReadyEvent, deliverWebhook } from '../../tools/simulator/webhooks.ts';
import { HOUR_MS } from '../../src/time.ts';

/**
 * A client nobody here wrote: Stream's official Node SDK, pointed at the simulator with basePath.
 * If the simulator drifts from Stream's wire format, this is where it shows.
 */
describe('simulator with @stream-io/node-sdk', () => {
  const apiKey = 'sdk-key';
  const apiSecret = 'sdk-secret-0123456789';
  // The SDK pastes path parameters into the URL unencoded (docs/stream-api.md §1), so plain ids here.
  const session = generateSession({ seed: 'sdk', size: 1_000, endedAt: new Date(Date.now() - HOUR_MS), callType: 'default', callId: 'sdk-call-1' });
  let sim: Simulator;
  let client: StreamClient;

  beforeAll(async () => {
    sim = await startSimulator({ apiKey, apiSecret });
    sim.addSession(session);
    client = new StreamClient(apiKey, apiSecret, { basePath: sim.url });
  });
  afterAll(async () => {
    await sim.close();
  });

  async function readWithSdk() {
    const entries: any[] = [];
    let next: string | undefined;
    let pages = 0;
    do {
      const page = await client.video.queryCallParticipantSessions({
        type: session.callType,
        id: session.callId,
        session: session.callSessionId,
        limit: 100,
        next,
      });
      expect(page.total_participant_sessions).toBe(1_000);
      expect(page.total_participant_duration).toBe(session.totalParticipantDuration);
      expect(page.metadata.rateLimit.rateLimit).toBe(100_000);
      expect(page.metadata.rateLimit.rateLimitReset).toBeInstanceOf(Date);
      entries.push(...page.participants_sessions);
      next = page.next || undefined;
      pages++;
    } while (next && pages < 100);
    return { entries, pages };
  }

  it('reads a 1,000-entry session completely through queryCallParticipantSessions', async () => {
    const { entries, pages } = await readWithSdk();
    expect(pages).toBe(10);
    expect(entries.map((e) => e.user_session_id)).toEqual(session.participants.map((p) => p.user_session_id));
    entries.forEach((entry, i) => {
      const truth = session.participants[i] as SimParticipant;
      expect(entry.user_id).toBe(truth.user_id);
      expect(entry.roles).toEqual(truth.roles);
      expect(entry.publisher_type).toBe(truth.publisher_type);
      // The SDK's decoder turns timestamps into Dates.
      expect(entry.joined_at).toEqual(truth.joined_at);
      expect(entry.left_at).toEqual(truth.left_at ?? undefined);
      expect(entry.duration_in_seconds).toBe(truth.duration_in_seconds ?? undefined);
    });
  });

  it('reads it completely with nanosecond timestamps and "" on the last page too', async () => {
    sim.setOptions({ timestampFormat: 'nanoseconds', lastPageNext: 'empty' });
    try {
      const { entries, pages } = await readWithSdk();
      expect(pages).toBe(10);
      expect(entries).toHaveLength(1_000);
      entries.forEach((entry, i) => {
        const truth = session.participants[i] as SimParticipant;
        // The SDK divides a double by 1e6 and floors it, which can land 1 ms early: its quirk, not the wire's.
        expect(Math.abs(entry.joined_at.getTime() - (truth.joined_at as Date).getTime())).toBeLessThanOrEqual(1);
      });
    } finally {
      sim.setOptions({ timestampFormat: 'rfc3339', lastPageNext: 'absent' });
    }
  });

  it('surfaces the simulator errors as StreamError with Stream codes', async () => {
    await expect(client.video.queryCallParticipantSessions({ type: 'default', id: 'sdk-call-1', session: 'missing', limit: 10 })).rejects.toMatchObject({
      message: expect.stringContaining('call session not found'),
      code: 16,
    });
    const wrong = new StreamClient(apiKey, 'not-the-secret', { basePath: sim.url });
    await expect(wrong.video.queryCallParticipantSessions({ type: 'default', id: 'sdk-call-1', session: session.callSessionId })).rejects.toMatchObject({
      code: 5,
    });
  });

  describe('webhook signatures', () => {
    let receiver: Server;
    let url: string;
    const received: { body: Buffer; signature: string }[] = [];

    beforeAll(async () => {
      receiver = createServer((req, res) => {
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => {
          received.push({ body: Buffer.concat(chunks), signature: String(req.headers['x-signature']) });
          res.writeHead(200).end();
        });
      });
      await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
      url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/`;
    });
    afterAll(async () => {
      receiver.closeAllConnections();
      await new Promise((resolve) => receiver.close(resolve));
    });

    it('verifyWebhook accepts what the simulator signs, and verifyAndParseWebhook reads it gzipped', async () => {
      const event = buildStatsReportReadyEvent(session);
      await deliverWebhook({ url, apiKey, apiSecret, event });
      await deliverWebhook({ url, apiKey, apiSecret, event, gzip: true });
      const [plain, gzipped] = received;
      expect(client.verifyWebhook(plain?.body as Buffer, plain?.signature as string)).toBe(true);
      expect(client.verifyWebhook(plain?.body.toString() as string, plain?.signature as string)).toBe(true);
      expect(new StreamClient(apiKey, 'other-secret').verifyWebhook(plain?.body as Buffer, plain?.signature as string)).toBe(false);
      const parsed = await client.verifyAndParseWebhook(gzipped?.body as Buffer, gzipped?.signature as string);
      expect(parsed).toMatchObject({ type: 'call.stats_report_ready', session_id: session.callSessionId });
    });
  });
});
