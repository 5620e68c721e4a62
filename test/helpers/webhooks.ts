import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import pg from 'pg';
import { loadConfig, type Config } from '../../src/config.ts';
import type { Database } from '../../src/db/client.ts';
import { buildApp } from '../../src/http/app.ts';
import { createLogger, type Logger } from '../../src/logger.ts';
import { createMetrics, type Metrics } from '../../src/metrics.ts';
import { signWebhook } from '../../src/stream/signature.ts';
import { MINUTE_MS } from '../../src/time.ts';
import type { SimSession } from '../../tools/simulator/generate.ts';
import { buildSessionEndedEvent, buildStatsReportReadyEvent } from '../../tools/simulator/webhooks.ts';

export const TEST_API_KEY = 'test-api-key';
export const TEST_API_SECRET = 'test-api-secret-current';
export const TEST_PREVIOUS_API_SECRET = 'test-api-secret-previous';

export function createWebhookTestConfig(options: { previousApiSecrets?: readonly string[] } = {}): Config {
  return loadConfig({
    STREAM_API_KEY: TEST_API_KEY,
    STREAM_API_SECRET: TEST_API_SECRET,
    STREAM_PREVIOUS_API_SECRETS: (options.previousApiSecrets ?? [TEST_PREVIOUS_API_SECRET]).join(','),
    STREAM_BASE_URL: 'http://127.0.0.1:9',
  });
}

export interface WebhookTestApp {
  readonly app: FastifyInstance;
  readonly metrics: Metrics;
  /** Lines the app logged, when built with `captureLogs`. */
  readonly logs: string[];
}

/** The whole app (buildApp) over `database`, silent unless `captureLogs` asks for `logLevel` (default warn) and above. */
export async function createWebhookTestApp(
  database: Database,
  options: { captureLogs?: boolean; logLevel?: 'info' | 'warn'; previousApiSecrets?: readonly string[] } = {},
): Promise<WebhookTestApp> {
  const logs: string[] = [];
  const logger: Logger = options.captureLogs
    ? createLogger({
        level: options.logLevel ?? 'warn',
        destination: new Writable({
          write(chunk, _encoding, callback) {
            logs.push(String(chunk));
            callback();
          },
        }),
      })
    : createLogger({ level: 'silent' });
  const metrics = createMetrics({ defaultMetrics: false });
  const app = await buildApp({ config: createWebhookTestConfig(options), database, logger, metrics });
  return { app, metrics, logs };
}

export interface TestEventOptions {
  readonly callCid?: string;
  readonly sessionId?: string;
  /** Written as given: an RFC 3339 string or integer nanoseconds, as Stream writes either. */
  readonly createdAt?: string | number;
}

// Fixed and long past by default, so an event's time never lands in the plausible band by accident.
const SESSION_ENDED_AT = new Date('2026-04-08T14:20:00Z');
const REPORT_CREATED_AT = '2026-04-08T14:23:35.879421674Z';
const ENDED_CREATED_AT = '2026-04-08T14:20:01.123456789Z';

/** A session without participants, named by `callCid` (type before the first colon) and `sessionId`. */
function bareSession(options: TestEventOptions): SimSession {
  const callCid = options.callCid ?? 'default:call-1';
  return {
    callType: callCid.slice(0, callCid.indexOf(':')),
    callId: callCid.slice(callCid.indexOf(':') + 1),
    callSessionId: options.sessionId ?? randomUUID(),
    startedAt: new Date(SESSION_ENDED_AT.getTime() - 20 * MINUTE_MS),
    endedAt: SESSION_ENDED_AT,
    participants: [],
    totalParticipantDuration: 0,
  };
}

/** The simulator's call.stats_report_ready body for one session, with fixed defaults. */
export function statsReportReadyBody(options: TestEventOptions = {}): Record<string, unknown> {
  return buildStatsReportReadyEvent(bareSession(options), { createdAt: options.createdAt ?? REPORT_CREATED_AT });
}

/** The simulator's call.session_ended body; `endedAt` replaces the session's end as written, null leaves it out. */
export function sessionEndedBody(options: TestEventOptions & { endedAt?: string | number | null } = {}): Record<string, unknown> {
  return buildSessionEndedEvent(bareSession(options), { createdAt: options.createdAt ?? ENDED_CREATED_AT, endedAt: options.endedAt });
}

export interface DeliverOptions {
  /** Signed with this secret; defaults to the current test secret. `null` sends no X-SIGNATURE. */
  readonly secret?: string | null;
  /** Replaces the computed signature. */
  readonly signature?: string;
  /** `null` sends no X-API-KEY. */
  readonly apiKey?: string | null;
  /** `null` sends no X-WEBHOOK-ID; defaults to a fresh UUID. */
  readonly webhookId?: string | null;
  readonly attempt?: string;
  /** 'header': gzip with Content-Encoding; 'magic-only': gzip bytes without the header. */
  readonly gzip?: 'header' | 'magic-only';
  /** `null` sends no Content-Type. */
  readonly contentType?: string | null;
  readonly headers?: Record<string, string>;
}

/** Signs (over the uncompressed bytes, as Stream does) and posts one delivery through `inject`. */
export async function deliverWebhook(
  app: FastifyInstance,
  body: string | Buffer | Record<string, unknown>,
  options: DeliverOptions = {},
): Promise<LightMyRequestResponse> {
  const raw = Buffer.isBuffer(body) ? body : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body), 'utf8');
  const headers: Record<string, string> = {};
  if (options.contentType !== null) headers['content-type'] = options.contentType ?? 'application/json';
  if (options.apiKey !== null) headers['x-api-key'] = options.apiKey ?? TEST_API_KEY;
  const secret = options.secret === undefined ? TEST_API_SECRET : options.secret;
  if (options.signature !== undefined) headers['x-signature'] = options.signature;
  else if (secret !== null) headers['x-signature'] = signWebhook(raw, secret);
  if (options.webhookId !== null) headers['x-webhook-id'] = options.webhookId ?? randomUUID();
  if (options.attempt !== undefined) headers['x-webhook-attempt'] = options.attempt;
  let payload = raw;
  if (options.gzip !== undefined) {
    payload = gzipSync(raw);
    if (options.gzip === 'header') headers['content-encoding'] = 'gzip';
  }
  return app.inject({ method: 'POST', url: '/webhooks/stream', headers: { ...headers, ...options.headers }, payload });
}

/**
 * LISTENs on `channel` over its own connection; `next()` resolves with the next payload (or
 * rejects after `timeoutMs`, so a missing NOTIFY fails the test instead of hanging it).
 */
export async function listenForNotifications(url: string, channel: string) {
  const client = new pg.Client(url);
  await client.connect();
  const received: string[] = [];
  let wake: (() => void) | undefined;
  client.on('notification', (message) => {
    if (message.channel !== channel) return;
    received.push(message.payload ?? '');
    wake?.();
  });
  await client.query(`listen ${pg.escapeIdentifier(channel)}`);
  return {
    async next(timeoutMs = 5_000): Promise<string> {
      if (received.length === 0) {
        await new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`no NOTIFY on ${channel} within ${timeoutMs} ms`)), timeoutMs);
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        wake = undefined;
      }
      return received.shift()!;
    },
    close: () => client.end(),
  };
}
