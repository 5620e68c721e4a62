import { randomUUID } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import { signWebhook } from '../../src/stream/signature.ts';
import type { HostileKeys } from './hostile-requests.ts';

/** POSTs `body` to serve's webhook route, signed with the right secret, under a fresh X-WEBHOOK-ID; resolves with the status. */
export async function postSignedWebhook(serveUrl: string, keys: HostileKeys, body: Buffer, webhookId: string = randomUUID()): Promise<number> {
  const response = await fetch(`${serveUrl}/webhooks/stream`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'x-api-key': keys.apiKey,
      'x-signature': signWebhook(body, keys.apiSecret),
      'x-webhook-id': webhookId,
      'x-webhook-attempt': '1',
    },
    body: new Uint8Array(body),
  });
  await response.arrayBuffer();
  return response.status;
}

/** The nearest-rank percentile (0 for no values). */
export function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? 0;
}

/** Answers by status, e.g. { 200: 60, 400: 1 }. */
export function countStatuses(statuses: readonly (number | string)[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const status of statuses) counts[status] = (counts[status] ?? 0) + 1;
  return counts;
}

/** Polls `read` until `done` holds for its value; throws, naming `what`, after `timeoutMs`. */
export async function waitUntil<T>(what: string, read: () => Promise<T>, done: (value: T) => boolean, timeoutMs: number, intervalMs = 50): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (done(value)) return value;
    if (performance.now() > deadline) throw new Error(`${what}: not reached within ${timeoutMs / 1000} s (last: ${JSON.stringify(value)})`);
    await delay(intervalMs);
  }
}
