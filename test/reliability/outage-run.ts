import { setTimeout as delay } from 'node:timers/promises';
import { generateSession } from '../../tools/simulator/generate.ts';
import { buildStatsReportReadyEvent } from '../../tools/simulator/webhooks.ts';
import type { TcpProxy } from '../helpers/tcp-proxy.ts';
import type { HostileKeys } from './hostile-requests.ts';
import { countStatuses, postSignedWebhook, waitUntil } from './signed-post.ts';
import { parseLogLines, type ServeSupervisor } from './serve-process.ts';

export interface OutagePlan {
  /** Serve, whose DATABASE_URL goes through `proxy`. */
  readonly serve: ServeSupervisor;
  readonly proxy: TcpProxy;
  readonly keys: HostileKeys;
  /** Signed webhooks sent while the database is away. */
  readonly webhooks: number;
  readonly concurrency: number;
}

export interface OutageReport {
  readonly statuses: Record<string, number>;
  /** From the cut to the restore. */
  readonly outageSeconds: number;
  /** Every line serve wrote from the cut to the first stored webhook after it, and their bytes. */
  readonly lines: number;
  readonly bytes: number;
  /** Of those, the lines about refused webhooks (`webhooks not stored…`), and their bytes. */
  readonly webhookLines: readonly Record<string, unknown>[];
  readonly webhookBytes: number;
  /** Lines of the old kind, one per refused webhook: should be none. */
  readonly perWebhookLines: number;
  /** The other lines meanwhile (background work losing its connections), by message. */
  readonly otherLines: Record<string, number>;
}

const event = (seed: string) => Buffer.from(JSON.stringify(buildStatsReportReadyEvent(generateSession({ seed, size: 1 }))));

/**
 * The database goes away (the proxy in front of it is cut) while `webhooks` signed webhooks
 * arrive; then it comes back and one more webhook is stored. Counts what serve logged meanwhile:
 * the first refusal in full, a summary per 10 s, one line when it is over, is the promise.
 */
export async function runOutageScenario(plan: OutagePlan): Promise<OutageReport> {
  const { serve, proxy } = plan;
  const outputBefore = serve.output().length;
  await proxy.cut();
  const cutAt = performance.now();
  const statuses: number[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: plan.concurrency }, async () => {
      while (next++ < plan.webhooks) statuses.push(await postSignedWebhook(serve.url, plan.keys, event(`outage-${next}`)));
    }),
  );
  await proxy.restore();
  const outageSeconds = (performance.now() - cutAt) / 1000;
  await waitUntil(
    'a webhook stored after the outage',
    () => postSignedWebhook(serve.url, plan.keys, event('after-outage')),
    (s) => s === 200,
    15_000,
    250,
  );
  await delay(200);

  const text = serve.output().slice(outputBefore);
  const rawLines = text.split('\n').filter((line) => line.length > 0);
  const lines = parseLogLines(text);
  const webhookLines = lines.filter((line) => String(line.msg).startsWith('webhooks not stored'));
  const webhookBytes = rawLines.filter((line) => line.includes('"msg":"webhooks not stored')).reduce((sum, line) => sum + Buffer.byteLength(line) + 1, 0);
  return {
    statuses: countStatuses(statuses),
    outageSeconds,
    lines: rawLines.length,
    bytes: Buffer.byteLength(text),
    webhookLines,
    webhookBytes,
    perWebhookLines: lines.filter((line) => line.msg === 'webhook not stored: database unavailable').length,
    otherLines: countBy(lines.filter((line) => !String(line.msg).startsWith('webhooks not stored')).map((line) => String(line.msg))),
  };
}

function countBy(values: readonly string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const value of values) counts[value] = (counts[value] ?? 0) + 1;
  return counts;
}

/** The most webhook lines an outage may write: the first in full, one summary per 10 s, one on recovery. */
export function outageLineBudget(outageSeconds: number): number {
  return 2 + Math.ceil(outageSeconds / 10);
}
