import { PassThrough } from 'node:stream';
import { createLogger, type Logger } from '../../src/logger.ts';
import { generateSession, type SimSession } from '../../tools/simulator/generate.ts';
import { startSimulator, type Simulator } from '../../tools/simulator/server.ts';
import { createStreamClient, type CallSessionStatsParams, type StreamClient } from '../../src/stream/client.ts';
import { HOUR_MS } from '../../src/time.ts';

export const API_KEY = 'reconcile-test-key';
export const API_SECRET = 'reconcile-test-secret-0123456789abcdef';

/** A session of two entries that ended `hoursAgo` hours before `now`, on whole seconds. */
export function endedSession(seed: string, hoursAgo: number, now = Date.now()): SimSession {
  const endedAt = new Date(Math.floor((now - hoursAgo * HOUR_MS) / 1000) * 1000);
  return generateSession({ seed, size: 2, endedAt });
}

export interface StreamHarness {
  readonly sim: Simulator;
  /** The real client, wrapped to record each call_stats request and run `beforeCallStats` first. */
  readonly stream: StreamClient;
  readonly calls: CallSessionStatsParams[];
  /** Runs before call_stats request number `n` (1-based) is sent. */
  beforeCallStats: (n: number) => Promise<void> | void;
  close(): Promise<void>;
}

export async function startStreamHarness(sessions: readonly SimSession[]): Promise<StreamHarness> {
  const sim = await startSimulator({ apiKey: API_KEY, apiSecret: API_SECRET });
  for (const session of sessions) sim.addSession(session);
  const client = createStreamClient({ baseUrl: sim.url, apiKey: API_KEY, apiSecret: API_SECRET });
  const calls: CallSessionStatsParams[] = [];
  const harness: StreamHarness = {
    sim,
    calls,
    beforeCallStats: () => undefined,
    stream: {
      getRateLimits: (params) => client.getRateLimits(params),
      queryCallParticipantSessions: (params) => client.queryCallParticipantSessions(params),
      async queryCallSessionStats(params) {
        calls.push(params);
        await harness.beforeCallStats(calls.length);
        return client.queryCallSessionStats(params);
      },
      close: () => client.close(),
    },
    async close() {
      await client.close();
      await sim.close();
    },
  };
  return harness;
}

export interface CapturedLogs {
  readonly logger: Logger;
  readonly lines: () => { level: number; msg: string; [key: string]: unknown }[];
}

export function captureLogs(): CapturedLogs {
  const out = new PassThrough();
  let text = '';
  out.on('data', (chunk) => (text += String(chunk)));
  return {
    logger: createLogger({ level: 'debug', destination: out }),
    lines: () =>
      text
        .split('\n')
        .filter((line) => line !== '')
        .map((line) => JSON.parse(line) as { level: number; msg: string }),
  };
}

export async function counterValue(
  metric: { get(): Promise<{ values: { value: number; labels: Record<string, unknown> }[] }> },
  labels: Record<string, string> = {},
): Promise<number> {
  const { values } = await metric.get();
  return values.filter((v) => Object.entries(labels).every(([k, value]) => v.labels[k] === value)).reduce((sum, v) => sum + v.value, 0);
}
