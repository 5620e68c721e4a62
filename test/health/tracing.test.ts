import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startService } from '../../src/commands/runtime.ts';
import { loadConfig } from '../../src/config.ts';
import { createLogger } from '../../src/logger.ts';
import { createMetrics } from '../../src/metrics.ts';
import { generateSession } from '../../tools/simulator/generate.ts';
import { startSimulator, type Simulator } from '../../tools/simulator/server.ts';
import { buildStatsReportReadyEvent, deliverWebhook } from '../../tools/simulator/webhooks.ts';
import { startTracing } from '../../src/tracing.ts';
import { useTestDatabase } from '../helpers/db.ts';
import { HOUR_MS } from '../../src/time.ts';

const API_KEY = 'tracing-key';
const API_SECRET = 'tracing-secret';

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  attributes?: { key: string; value: Record<string, unknown> }[];
}

/** A stand-in OpenTelemetry collector: keeps every span POSTed to /v1/traces (OTLP/HTTP JSON). */
async function startCollector(): Promise<{ url: string; spans: OtlpSpan[]; paths: string[]; close(): Promise<void> }> {
  const spans: OtlpSpan[] = [];
  const paths: string[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      paths.push(req.url ?? '');
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { resourceSpans: { scopeSpans: { spans: OtlpSpan[] }[] }[] };
      for (const rs of body.resourceSpans) for (const ss of rs.scopeSpans) spans.push(...ss.spans);
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    spans,
    paths,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

describe('OpenTelemetry traces', () => {
  const test = useTestDatabase();
  let simulator: Simulator;
  beforeAll(async () => {
    simulator = await startSimulator({ apiKey: API_KEY, apiSecret: API_SECRET });
  });
  afterAll(async () => {
    await simulator?.close();
  });

  it('nothing is set up without OTEL_EXPORTER_OTLP_ENDPOINT', async () => {
    expect(loadConfig({ STREAM_API_KEY: 'k', STREAM_API_SECRET: 's' }).tracing).toEqual({ endpoint: undefined });
    expect(await startTracing(undefined)).toBeUndefined();
    expect(() => loadConfig({ STREAM_API_KEY: 'k', STREAM_API_SECRET: 's', OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318' })).toThrow(
      /OTEL_EXPORTER_OTLP_ENDPOINT must be an http\(s\) URL/,
    );
  });

  it('webhook → enqueue, and claim → pages → outcome, reach the collector as linked spans', async () => {
    const collector = await startCollector();
    const session = generateSession({ seed: 'traced', size: 250, endedAt: new Date(Date.now() - HOUR_MS) });
    simulator.addSession(session);
    const service = await startService({
      config: loadConfig({
        DATABASE_URL: test.current.url,
        STREAM_API_KEY: API_KEY,
        STREAM_API_SECRET: API_SECRET,
        STREAM_BASE_URL: simulator.url,
        PORT: '0',
        HOST: '127.0.0.1',
        RECONCILE_INTERVAL_MINUTES: '0',
        OTEL_EXPORTER_OTLP_ENDPOINT: `${collector.url}/`,
      }),
      database: test.current.database,
      logger: createLogger({ level: 'silent' }),
      http: true,
      worker: true,
      migrate: false,
      metrics: createMetrics({ defaultMetrics: false }),
    });
    try {
      const delivery = await deliverWebhook({
        url: `${service.url}/webhooks/stream`,
        apiKey: API_KEY,
        apiSecret: API_SECRET,
        event: buildStatsReportReadyEvent(session),
      });
      expect(delivery.status).toBe(200);
      for (let i = 0; i < 200; i++) {
        const { rows } = await test.current.database.pool.query<{ status: string }>('select status from call_sessions where call_session_id = $1', [
          session.callSessionId,
        ]);
        if (rows[0]?.status === 'complete') break;
        await new Promise((r) => setTimeout(r, 50));
      }
    } finally {
      await service.stop();
      await collector.close();
    }
    expect(new Set(collector.paths)).toEqual(new Set(['/v1/traces']));
    const named = (name: string) => collector.spans.filter((s) => s.name === name);
    const [webhook] = named('webhook');
    const [enqueue] = named('enqueue');
    expect(webhook).toBeDefined();
    expect(enqueue?.parentSpanId).toBe(webhook!.spanId);
    expect(enqueue?.traceId).toBe(webhook!.traceId);
    const runs = named('archive session');
    const run = runs.find((r) => r.attributes?.some((a) => a.key === 'archive.status' && a.value.stringValue === 'complete'));
    expect(run).toBeDefined();
    expect(run!.attributes?.find((a) => a.key === 'call_session_id')?.value.stringValue).toBe(session.callSessionId);
    const children = collector.spans.filter((s) => s.parentSpanId === run!.spanId);
    expect(children.filter((s) => s.name === 'claim')).toHaveLength(1);
    // 250 entries: three pages of at most 100.
    expect(children.filter((s) => s.name === 'page')).toHaveLength(3);
    for (const child of children) expect(child.traceId).toBe(run!.traceId);
  });
});
