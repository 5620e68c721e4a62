import { connect, type Socket } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { INCOMING_REQUEST_TIMEOUT_MS } from '../../src/http/app.ts';
import { useTestDatabase } from '../helpers/db.ts';
import { createWebhookTestApp } from '../helpers/webhooks.ts';

/**
 * Regression: with Fastify's defaults (no request timeout, no idle timeout) a client that sent its
 * headers and then trickled the body, one byte now and then, held its connection for as long as it
 * liked; a few thousand of those exhaust the process's sockets. Now the whole request must arrive
 * within INCOMING_REQUEST_TIMEOUT_MS.
 */
describe('slow senders', () => {
  const test = useTestDatabase();
  let app: FastifyInstance;
  let port: number;

  beforeAll(async () => {
    ({ app } = await createWebhookTestApp(test.current.database));
    await app.listen({ port: 0, host: '127.0.0.1' });
    port = (app.server.address() as { port: number }).port;
  });
  afterAll(async () => {
    await app?.close();
  });

  /** Opens a connection, writes `first`, then one byte of `trickle` every 500 ms; resolves when the server closes it. */
  function slowSender(first: string, trickle: string): { closedAfterMs: Promise<number>; answer: () => string; socket: Socket } {
    const socket = connect(port, '127.0.0.1');
    const started = performance.now();
    let answer = '';
    let timer: NodeJS.Timeout | undefined;
    socket.on('data', (chunk) => (answer += String(chunk)));
    socket.on('error', () => undefined);
    socket.on('connect', () => {
      socket.write(first);
      let i = 0;
      timer = setInterval(() => {
        if (i < trickle.length && !socket.destroyed) socket.write(trickle[i++]!);
      }, 500);
    });
    const closedAfterMs = new Promise<number>((resolve) =>
      socket.on('close', () => {
        clearInterval(timer);
        resolve(performance.now() - started);
      }),
    );
    return { closedAfterMs, answer: () => answer, socket };
  }

  const bound = INCOMING_REQUEST_TIMEOUT_MS + 4_000;

  it(
    'cuts a body trickled byte by byte, a header trickled byte by byte, and a connection that sends nothing',
    async () => {
      const body = 'x'.repeat(200);
      const senders = [
        slowSender(`POST /webhooks/stream HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`, body),
        slowSender('POST /webhooks/stream HTTP/1.1\r\nHost: x\r\n', 'X-Api-Key: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'),
        slowSender('', ''),
      ];
      try {
        const lifetimes = await Promise.all(
          senders.map((s) => Promise.race([s.closedAfterMs, new Promise<number>((r) => setTimeout(r, bound + 2_000, Infinity))])),
        );
        for (const lifetime of lifetimes) expect(lifetime).toBeLessThan(bound);
        // The server answers a slow request with 408 (never a 5xx) when it still can.
        for (const sender of senders.slice(0, 2)) expect(sender.answer()).toMatch(/^$|^HTTP\/1\.1 408/);
      } finally {
        for (const sender of senders) sender.socket.destroy();
      }
    },
    bound + 10_000,
  );

  it('still lets a normal request through on a kept-alive connection', async () => {
    const response = await fetch(`http://127.0.0.1:${port}/healthz`);
    expect(response.status).toBe(200);
  });
});
