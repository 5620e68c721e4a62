import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { createStreamClient } from '../../src/stream/client.ts';
import { encodePath } from '../../src/stream/request.ts';
import { generateSession } from '../../tools/simulator/generate.ts';
import { startSimulator } from '../../tools/simulator/server.ts';

describe('outbound path segments stay data', () => {
  it.each([
    [['a', 'b'], 'a/b'],
    [['..', '.', 'x'], '%2E%2E/%2E/x'],
    [['...', 'a.b', '.x'], '.../a.b/.x'],
    [['a/b', 'c?d', 'e#f', 'g h'], 'a%2Fb/c%3Fd/e%23f/g%20h'],
  ])('%j → %s', (segments, expected) => {
    expect(encodePath(segments)).toBe(expected);
  });

  it('refuses a lone surrogate instead of altering it', () => {
    expect(() => encodePath(['ok', 'bad\uD800'])).toThrow(/path segment 2 holds a lone surrogate/);
  });

  it('sends `..` ids percent-encoded on the wire, so the request is not resolved to another path', async () => {
    const seen: string[] = [];
    const server = createServer((req, res) => {
      seen.push(req.url ?? '');
      res
        .writeHead(200, { 'content-type': 'application/json' })
        .end(JSON.stringify({ participants_sessions: [], total_participant_sessions: 0, total_participant_duration: 0, duration: '1ms' }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const stream = createStreamClient({ baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, apiKey: 'k', apiSecret: 's' });
    try {
      await stream.queryCallParticipantSessions({ type: '..', id: '..', session: '.', limit: 100 }).catch(() => undefined);
      expect(seen).toHaveLength(1);
      expect(seen[0]!.split('?')[0]).toBe('/api/v2/video/call/%2E%2E/%2E%2E/session/%2E/participant_sessions');
    } finally {
      await stream.close();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('the simulator reads such ids back as the data they are', async () => {
    const session = generateSession({ seed: 'dots', size: 3, callType: '..', callId: '..', callSessionId: '..' });
    const sim = await startSimulator({ apiKey: 'k', apiSecret: 's' });
    sim.addSession(session);
    const stream = createStreamClient({ baseUrl: sim.url, apiKey: 'k', apiSecret: 's' });
    try {
      const page = await stream.queryCallParticipantSessions({ type: '..', id: '..', session: '..', limit: 100 });
      expect(page.entries).toHaveLength(3);
    } finally {
      await stream.close();
      await sim.close();
    }
  });
});
