import { ConfigError } from './errors.ts';

export const DEFAULT_STREAM_BASE_URL = 'https://video.stream-io-api.com';
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface StreamConfig {
  readonly apiKey: string;
  readonly apiSecret: string;
  /** Older secrets still accepted for webhook signatures while a rotation settles. */
  readonly previousApiSecrets: readonly string[];
  readonly baseUrl: string;
}

export interface Config {
  /** Unset means: use the embedded Postgres under ./.attendance/ (serve, demo). */
  readonly databaseUrl: string | undefined;
  readonly stream: StreamConfig;
  readonly http: { readonly port: number; readonly host: string };
  /** Request body bytes held in memory at once, over every connection (HTTP_BODY_BUDGET_MIB). */
  readonly bodyBudgetBytes: number;
  readonly database: DatabasePoolsConfig;
  readonly logLevel: LogLevel;
  readonly worker: { readonly concurrency: number };
  readonly reconcile: { readonly intervalMinutes: number; readonly lookbackDays: number };
  readonly retention: RetentionConfig;
  /** Where OpenTelemetry traces go (OTEL_EXPORTER_OTLP_ENDPOINT, OTLP over HTTP); undefined: no tracing. */
  readonly tracing: { readonly endpoint: string | undefined };
}

/** How long stored data is kept (WEBHOOK_EVENTS_RETENTION_DAYS, ARCHIVE_RETENTION_DAYS). */
export interface RetentionConfig {
  /** Inbox events older than this many days are pruned; 0 keeps them for ever. */
  readonly webhookEventsDays: number;
  /** Archived attendance of sessions that ended longer ago is deleted; undefined keeps it for ever. */
  readonly archiveDays: number | undefined;
}

/**
 * DATABASE_POOL_SIZE split into pools no other path can take from: a webhook never waits behind an
 * archive query or a worker's page write. The three shares add up to `poolSize`.
 */
export interface DatabasePoolsConfig {
  readonly poolSize: number;
  /** Webhook intake and /readyz: a quarter, at least 2 (intake's group commit uses one at a time). */
  readonly intakeConnections: number;
  /** The archive API: an eighth, at least 1; requests past it queue briefly, then get 503. */
  readonly apiConnections: number;
  /** The rest: worker (one or two per session in flight: two pages are written at once), heartbeat, claims, reconciler, gauge refresher. */
  readonly backgroundConnections: number;
}

/** The smallest DATABASE_POOL_SIZE the default gives; larger when WORKER_CONCURRENCY needs it. */
export const DEFAULT_DATABASE_POOL_SIZE = 16;
export const DEFAULT_HTTP_BODY_BUDGET_MIB = 32;
/**
 * 30 days of inbox: Stream retries a delivery for only ~15 s (docs/stream-api.md §5) and nothing reads
 * webhook_events after intake has acted on it (the replay guard compares with
 * call_sessions.stats_report_ready_at, not the inbox), so a month is ample for debugging a
 * delivery while keeping the table (a few KiB per event) from growing for ever.
 */
export const DEFAULT_WEBHOOK_EVENTS_RETENTION_DAYS = 30;
/** 100 years: the upper bound of both retention settings, so a typo cannot overflow an interval. */
const MAX_RETENTION_DAYS = 36_500;
// Besides one connection per session in flight, the worker's heartbeat and claims, the reconciler's
// sweep (held for the whole sweep), the pruner (held for a whole prune run) and the gauge
// refresher / Stream-health writes each take one.
const BACKGROUND_OVERHEAD_CONNECTIONS = 5;

/** How a DATABASE_POOL_SIZE of `poolSize` is split (documented in the README's configuration table). */
export function splitDatabasePool(poolSize: number): DatabasePoolsConfig {
  const intakeConnections = Math.max(2, Math.round(poolSize / 4));
  const apiConnections = Math.max(1, Math.round(poolSize / 8));
  return { poolSize, intakeConnections, apiConnections, backgroundConnections: poolSize - intakeConnections - apiConnections };
}

/** The smallest DATABASE_POOL_SIZE whose background share fits WORKER_CONCURRENCY sessions and the overhead. */
export function minimumDatabasePoolSize(workerConcurrency: number): number {
  let size = 4;
  while (splitDatabasePool(size).backgroundConnections < workerConcurrency + BACKGROUND_OVERHEAD_CONNECTIONS) size++;
  return size;
}

/** The default DATABASE_POOL_SIZE: 16, or more when WORKER_CONCURRENCY needs it. */
export function defaultDatabasePoolSize(workerConcurrency: number): number {
  return Math.max(DEFAULT_DATABASE_POOL_SIZE, minimumDatabasePoolSize(workerConcurrency));
}

export interface LoadConfigOptions {
  /** The demo makes its own key and secret, so they are optional there. */
  readonly requireStreamCredentials?: boolean;
}

type Env = Readonly<Record<string, string | undefined>>;

/**
 * Reads the environment (the README's Configuration table) into a frozen, typed config.
 * The only place that reads environment variables; every problem is reported at once,
 * naming the variable and never echoing a secret's value.
 */
export function loadConfig(env: Env, options: LoadConfigOptions = {}): Config {
  const read = createEnvReader(env);
  // A problem is recorded as its variable is read: the order below is the order of the report.
  const databaseUrl = read.text('DATABASE_URL');
  if (databaseUrl !== undefined && !/^postgres(ql)?:\/\//.test(databaseUrl)) {
    read.problems.push('DATABASE_URL must be a postgres:// or postgresql:// connection string');
  }
  const stream = readStream(read, options.requireStreamCredentials ?? true);
  const http = { port: read.integer('PORT', 8080, 0, 65535), host: read.text('HOST') ?? '0.0.0.0' };
  const logLevel = readLogLevel(read);
  // 32 MiB: 32 bodies at the 1 MiB limit, or thousands of Stream's few-kilobyte webhooks, at once.
  // Past it requests get 503 before their body is read: 800 uploads of 1 MiB at once took RSS from
  // 416 to 923 MiB without it (issue 15). The parser briefly holds a body twice (its chunks and
  // their concatenation), so the peak is about idle + 2 × budget: with 64 MiB the 800 uploads
  // peaked at 229–276 MiB, too close to the 300 MiB target (test/reliability/body-memory.test.ts).
  const bodyBudgetMiB = read.integer('HTTP_BODY_BUDGET_MIB', DEFAULT_HTTP_BODY_BUDGET_MIB, 2, 4096);
  const concurrency = read.integer('WORKER_CONCURRENCY', 4, 1, 256);
  const database = readDatabasePools(read, concurrency);
  const intervalMinutes = read.integer('RECONCILE_INTERVAL_MINUTES', 15, 0, 1440);
  // How far back the first sweep of an empty archive looks. By default all 90 days Stream keeps
  // (docs/stream-api.md §8), so a new install archives everything Stream still holds, nearest expiry
  // first, with no manual backfill; later sweeps only cover what ended since, with an overlap.
  const lookbackDays = read.integer('RECONCILE_LOOKBACK_DAYS', 90, 1, 90);
  const retention = readRetention(read);
  // The OTLP/HTTP base URL; traces go to <endpoint>/v1/traces, as the OpenTelemetry spec says.
  const otlpEndpoint = read.text('OTEL_EXPORTER_OTLP_ENDPOINT');
  if (otlpEndpoint !== undefined && !isHttpUrl(otlpEndpoint)) {
    read.problems.push(`OTEL_EXPORTER_OTLP_ENDPOINT must be an http(s) URL (got ${JSON.stringify(otlpEndpoint)})`);
  }

  if (read.problems.length > 0) throw new ConfigError(read.problems);

  return deepFreeze({
    databaseUrl,
    stream,
    http,
    bodyBudgetBytes: bodyBudgetMiB * 1024 * 1024,
    database,
    logLevel,
    worker: { concurrency },
    reconcile: { intervalMinutes, lookbackDays },
    retention,
    tracing: { endpoint: otlpEndpoint?.replace(/\/+$/, '') },
  });
}

/** Reads variables, collecting every problem instead of stopping at the first. */
interface EnvReader {
  readonly problems: string[];
  /** The trimmed value; undefined when unset or blank. */
  text(name: string): string | undefined;
  /** `fallback` when unset, and when out of range (with a problem recorded). */
  integer(name: string, fallback: number, min: number, max: number): number;
}

function createEnvReader(env: Env): EnvReader {
  const problems: string[] = [];
  const text = (name: string): string | undefined => {
    const value = env[name];
    return value === undefined || value.trim() === '' ? undefined : value.trim();
  };
  const integer = (name: string, fallback: number, min: number, max: number): number => {
    const raw = text(name);
    if (raw === undefined) return fallback;
    if (!/^-?\d+$/.test(raw) || Number(raw) < min || Number(raw) > max) {
      problems.push(`${name} must be a whole number from ${min} to ${max} (got ${JSON.stringify(raw)})`);
      return fallback;
    }
    return Number(raw);
  };
  return { problems, text, integer };
}

function readStream(read: EnvReader, requireCredentials: boolean): StreamConfig {
  const apiKey = read.text('STREAM_API_KEY');
  const apiSecret = read.text('STREAM_API_SECRET');
  if (requireCredentials && apiKey === undefined) read.problems.push('STREAM_API_KEY is required');
  if (requireCredentials && apiSecret === undefined) read.problems.push('STREAM_API_SECRET is required');
  const previousApiSecrets = (read.text('STREAM_PREVIOUS_API_SECRETS') ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  const baseUrl = read.text('STREAM_BASE_URL') ?? DEFAULT_STREAM_BASE_URL;
  if (!isHttpUrl(baseUrl)) {
    read.problems.push(`STREAM_BASE_URL must be an http(s) URL (got ${JSON.stringify(baseUrl)})`);
  }
  return { apiKey: apiKey ?? '', apiSecret: apiSecret ?? '', previousApiSecrets, baseUrl: baseUrl.replace(/\/+$/, '') };
}

function readLogLevel(read: EnvReader): LogLevel {
  const rawLevel = read.text('LOG_LEVEL') ?? 'info';
  const logLevel = (LOG_LEVELS as readonly string[]).includes(rawLevel) ? (rawLevel as LogLevel) : 'info';
  if (logLevel !== rawLevel) {
    read.problems.push(`LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')} (got ${JSON.stringify(rawLevel)})`);
  }
  return logLevel;
}

function readDatabasePools(read: EnvReader, concurrency: number): DatabasePoolsConfig {
  const poolSize = read.integer('DATABASE_POOL_SIZE', defaultDatabasePoolSize(concurrency), 4, 1000);
  const pools = splitDatabasePool(poolSize);
  if (read.text('DATABASE_POOL_SIZE') !== undefined && pools.backgroundConnections < concurrency + BACKGROUND_OVERHEAD_CONNECTIONS) {
    read.problems.push(
      `DATABASE_POOL_SIZE ${poolSize} leaves ${pools.backgroundConnections} connections for the worker, fewer than WORKER_CONCURRENCY (${concurrency}) + ${BACKGROUND_OVERHEAD_CONNECTIONS}: ` +
        `set DATABASE_POOL_SIZE to at least ${minimumDatabasePoolSize(concurrency)} or lower WORKER_CONCURRENCY`,
    );
  }
  return pools;
}

function readRetention(read: EnvReader): RetentionConfig {
  // 0 keeps the inbox for ever, like RECONCILE_INTERVAL_MINUTES' 0 turns the sweep off.
  const webhookEventsDays = read.integer('WEBHOOK_EVENTS_RETENTION_DAYS', DEFAULT_WEBHOOK_EVENTS_RETENTION_DAYS, 0, MAX_RETENTION_DAYS);
  // Unset keeps the archive for ever (the product's point); there is no 0, which would read as
  // "delete everything at once".
  const archiveDays = read.text('ARCHIVE_RETENTION_DAYS') === undefined ? undefined : read.integer('ARCHIVE_RETENTION_DAYS', 0, 1, MAX_RETENTION_DAYS);
  return { webhookEventsDays, archiveDays };
}

/** True for an absolute http: or https: URL. */
export function isHttpUrl(value: string): boolean {
  try {
    const url = new URL(value);
    return url.protocol === 'http:' || url.protocol === 'https:';
  } catch {
    return false;
  }
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object') {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}
