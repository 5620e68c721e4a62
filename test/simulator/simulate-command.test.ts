import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PassThrough } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { main } from '../../src/cli.ts';
import { developmentCommands } from '../../tools/commands.ts';
import { generateDataset, pickSessionSizes } from '../../tools/simulator/generate.ts';
import { isValidWebhookSignature } from '../../src/stream/signature.ts';
import { createServerToken } from '../../src/stream/token.ts';

function startCli(argv: string[]) {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const output = { out: '', err: '' };
  stdout.on('data', (c) => (output.out += String(c)));
  stderr.on('data', (c) => (output.err += String(c)));
  const stop = new AbortController();
  const exit = main(argv, { env: {}, stdout, stderr, stopSignal: stop.signal, developmentCommands });
  const waitFor = async (pattern: RegExp): Promise<RegExpMatchArray> => {
    for (let i = 0; i < 500; i++) {
      const match = output.out.match(pattern);
      if (match) return match;
      await delay(10);
    }
    throw new Error(`output never matched ${pattern}: ${output.out}${output.err}`);
  };
  return { output, exit, stop: () => stop.abort(), waitFor };
}

const servers: Server[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

describe('attendance simulate', () => {
  it('prints its URL, credentials and env lines, serves the seeded sessions, and stops on the signal', async () => {
    const cli = startCli(['simulate', '--port', '0', '--seed', 'cli', '--sessions', '4']);
    const [, url] = await cli.waitFor(/listening on (http:\/\/127\.0\.0\.1:\d+)\n/);
    const [, apiKey] = await cli.waitFor(/API key: +(\S+)\n/);
    const [, apiSecret] = await cli.waitFor(/API secret: +(\S+)\n/);
    await cli.waitFor(/Ctrl-C/);
    expect(cli.output.out).toContain(`STREAM_BASE_URL=${url}\n`);
    expect(cli.output.out).toContain(`STREAM_API_KEY=${apiKey}\n`);
    expect(cli.output.out).toContain(`STREAM_API_SECRET=${apiSecret}\n`);
    expect(cli.output.out).toMatch(/npx attendance serve\n/);
    expect(cli.output.out).toMatch(/--send-webhooks http:\/\/127\.0\.0\.1:8080\/webhooks\/stream/);

    // The same seed gives the same sessions (the times follow the clock).
    const expected = generateDataset({ seed: 'cli', sizes: pickSessionSizes({ seed: 'cli', count: 4 }) });
    for (const session of expected)
      expect(cli.output.out).toContain(`${session.callType}:${session.callId}  ${session.callSessionId}  ${session.participants.length}`);
    const first = expected[0];
    const response = await fetch(
      `${url}/api/v2/video/call/${first?.callType}/${first?.callId}/session/${first?.callSessionId}/participant_sessions?api_key=${apiKey}`,
      {
        headers: { authorization: await createServerToken(apiSecret as string), 'stream-auth-type': 'jwt' },
      },
    );
    expect(response.status).toBe(200);
    expect((await response.json()).total_participant_sessions).toBe(first?.participants.length);

    cli.stop();
    expect(await cli.exit).toBe(0);
    expect(cli.output.out).toContain('simulator stopped');
    await expect(fetch(`${url}/`)).rejects.toThrow();
  });

  it('sends a signed call.stats_report_ready for each session with --send-webhooks', async () => {
    const received: { headers: IncomingHttpHeaders; body: Buffer }[] = [];
    const receiver = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        received.push({ headers: req.headers, body: Buffer.concat(chunks) });
        res.writeHead(200).end();
      });
    });
    servers.push(receiver);
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    const target = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/webhooks/stream`;

    const cli = startCli(['simulate', '--port', '0', '--sessions', '3', '--api-key', 'my-key', '--api-secret', 'my secret', '--send-webhooks', target]);
    await cli.waitFor(/webhooks: 3 call\.stats_report_ready delivered/);
    cli.stop();
    expect(await cli.exit).toBe(0);
    expect(cli.output.out).toContain("STREAM_API_SECRET='my secret'");
    expect(received).toHaveLength(3);
    for (const { headers, body } of received) {
      expect(headers['x-api-key']).toBe('my-key');
      expect(isValidWebhookSignature(body, headers['x-signature'] as string, ['my secret'])).toBe(true);
      expect(JSON.parse(body.toString())).toMatchObject({ type: 'call.stats_report_ready', session_id: expect.any(String) });
    }
  });

  it('refuses bad flags with exit 2 and a busy port with exit 1', async () => {
    for (const argv of [
      ['simulate', '--port', 'abc'],
      ['simulate', '--sessions', '0'],
      ['simulate', '--send-webhooks', 'ftp://example'],
      ['simulate', 'extra'],
    ]) {
      const cli = startCli(argv);
      expect(await cli.exit, argv.join(' ')).toBe(2);
      expect(cli.output.err).toMatch(/^attendance simulate: /);
    }
    const busy = createServer();
    servers.push(busy);
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
    const cli = startCli(['simulate', '--port', String((busy.address() as AddressInfo).port)]);
    expect(await cli.exit).toBe(1);
    expect(cli.output.err).toContain('already in use');
  });
});
