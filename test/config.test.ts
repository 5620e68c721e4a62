import { describe, expect, it } from 'vitest';
import { DEFAULT_STREAM_BASE_URL, loadConfig, splitDatabasePool } from '../src/config.ts';
import { ConfigError } from '../src/errors.ts';

const FULL = {
  DATABASE_URL: 'postgres://app:pw@db:5432/attendance',
  STREAM_API_KEY: 'key123',
  STREAM_API_SECRET: 'super-secret-value',
  STREAM_PREVIOUS_API_SECRETS: ' old-one , older-two ,',
  STREAM_BASE_URL: 'http://127.0.0.1:4000/',
  PORT: '9090',
  HOST: '127.0.0.1',
  LOG_LEVEL: 'debug',
  WORKER_CONCURRENCY: '8',
  RECONCILE_INTERVAL_MINUTES: '0',
  RECONCILE_LOOKBACK_DAYS: '30',
  WEBHOOK_EVENTS_RETENTION_DAYS: '7',
  ARCHIVE_RETENTION_DAYS: '730',
  OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318/',
};

function problemsOf(env: Record<string, string | undefined>, options?: Parameters<typeof loadConfig>[1]): string[] {
  try {
    loadConfig(env, options);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return [...(error as ConfigError).problems];
  }
  return [];
}

describe('loadConfig', () => {
  it('reads a full environment into typed values', () => {
    const config = loadConfig(FULL);
    expect(config).toEqual({
      databaseUrl: FULL.DATABASE_URL,
      stream: { apiKey: 'key123', apiSecret: 'super-secret-value', previousApiSecrets: ['old-one', 'older-two'], baseUrl: 'http://127.0.0.1:4000' },
      http: { port: 9090, host: '127.0.0.1' },
      bodyBudgetBytes: 32 * 1024 * 1024,
      // WORKER_CONCURRENCY 8 needs 13 background connections, so the default grows past 16.
      database: { poolSize: 21, intakeConnections: 5, apiConnections: 3, backgroundConnections: 13 },
      logLevel: 'debug',
      worker: { concurrency: 8 },
      reconcile: { intervalMinutes: 0, lookbackDays: 30 },
      retention: { webhookEventsDays: 7, archiveDays: 730 },
      tracing: { endpoint: 'http://collector:4318' },
    });
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.stream)).toBe(true);
  });

  it('applies the documented defaults', () => {
    const config = loadConfig({ STREAM_API_KEY: 'k', STREAM_API_SECRET: 's' });
    expect(config.databaseUrl).toBeUndefined();
    expect(config.stream.baseUrl).toBe(DEFAULT_STREAM_BASE_URL);
    expect(config.stream.previousApiSecrets).toEqual([]);
    expect(config.http).toEqual({ port: 8080, host: '0.0.0.0' });
    expect(config.logLevel).toBe('info');
    expect(config.worker.concurrency).toBe(4);
    expect(config.reconcile).toEqual({ intervalMinutes: 15, lookbackDays: 90 });
    expect(config.database).toEqual({ poolSize: 16, intakeConnections: 4, apiConnections: 2, backgroundConnections: 10 });
    expect(config.bodyBudgetBytes).toBe(32 * 1024 * 1024);
    // The inbox for 30 days, the archive for ever.
    expect(config.retention).toEqual({ webhookEventsDays: 30, archiveDays: undefined });
  });

  it('reads 0 as keep the inbox for ever, and an empty ARCHIVE_RETENTION_DAYS as unset', () => {
    const config = loadConfig({ STREAM_API_KEY: 'k', STREAM_API_SECRET: 's', WEBHOOK_EVENTS_RETENTION_DAYS: '0', ARCHIVE_RETENTION_DAYS: ' ' });
    expect(config.retention).toEqual({ webhookEventsDays: 0, archiveDays: undefined });
  });

  it('splits DATABASE_POOL_SIZE between intake, the archive API and the rest', () => {
    const at = (size: string) => loadConfig({ STREAM_API_KEY: 'k', STREAM_API_SECRET: 's', DATABASE_POOL_SIZE: size, WORKER_CONCURRENCY: '1' }).database;
    expect(at('9')).toEqual({ poolSize: 9, intakeConnections: 2, apiConnections: 1, backgroundConnections: 6 });
    expect(at('40')).toEqual({ poolSize: 40, intakeConnections: 10, apiConnections: 5, backgroundConnections: 25 });
    for (const size of [4, 7, 16, 33, 100, 1000]) {
      const pools = splitDatabasePool(size);
      expect(pools.intakeConnections + pools.apiConnections + pools.backgroundConnections).toBe(size);
      expect(pools.intakeConnections).toBeGreaterThanOrEqual(2);
      expect(pools.apiConnections).toBeGreaterThanOrEqual(1);
    }
    expect(loadConfig({ STREAM_API_KEY: 'k', STREAM_API_SECRET: 's', HTTP_BODY_BUDGET_MIB: '8' }).bodyBudgetBytes).toBe(8 * 1024 * 1024);
  });

  it('refuses a DATABASE_POOL_SIZE that leaves the worker too few connections, naming the size that fits', () => {
    const problems = problemsOf({ ...FULL, DATABASE_POOL_SIZE: '12' });
    expect(problems).toEqual([
      'DATABASE_POOL_SIZE 12 leaves 7 connections for the worker, fewer than WORKER_CONCURRENCY (8) + 5: set DATABASE_POOL_SIZE to at least 21 or lower WORKER_CONCURRENCY',
    ]);
  });

  it.each([
    ['STREAM_API_KEY', undefined, /STREAM_API_KEY is required/],
    ['STREAM_API_SECRET', '  ', /STREAM_API_SECRET is required/],
    ['DATABASE_URL', 'mysql://x', /DATABASE_URL must be a postgres/],
    ['STREAM_BASE_URL', 'not a url', /STREAM_BASE_URL must be an http/],
    ['PORT', 'eighty', /PORT must be a whole number/],
    ['PORT', '70000', /PORT must be a whole number/],
    ['LOG_LEVEL', 'loud', /LOG_LEVEL must be one of/],
    ['WORKER_CONCURRENCY', '0', /WORKER_CONCURRENCY must be a whole number/],
    ['WORKER_CONCURRENCY', '2.5', /WORKER_CONCURRENCY must be a whole number/],
    ['RECONCILE_INTERVAL_MINUTES', '-1', /RECONCILE_INTERVAL_MINUTES must be a whole number/],
    ['RECONCILE_LOOKBACK_DAYS', '365', /RECONCILE_LOOKBACK_DAYS must be a whole number/],
    ['DATABASE_POOL_SIZE', '3', /DATABASE_POOL_SIZE must be a whole number from 4 to 1000/],
    ['DATABASE_POOL_SIZE', 'lots', /DATABASE_POOL_SIZE must be a whole number/],
    ['HTTP_BODY_BUDGET_MIB', '1', /HTTP_BODY_BUDGET_MIB must be a whole number from 2 to 4096/],
    ['WEBHOOK_EVENTS_RETENTION_DAYS', '-1', /WEBHOOK_EVENTS_RETENTION_DAYS must be a whole number from 0 to 36500/],
    ['WEBHOOK_EVENTS_RETENTION_DAYS', '30d', /WEBHOOK_EVENTS_RETENTION_DAYS must be a whole number/],
    ['ARCHIVE_RETENTION_DAYS', '0', /ARCHIVE_RETENTION_DAYS must be a whole number from 1 to 36500/],
    ['ARCHIVE_RETENTION_DAYS', '36501', /ARCHIVE_RETENTION_DAYS must be a whole number from 1 to 36500/],
    ['ARCHIVE_RETENTION_DAYS', 'forever', /ARCHIVE_RETENTION_DAYS must be a whole number/],
  ])('rejects %s=%j naming the variable', (name, value, message) => {
    const problems = problemsOf({ ...FULL, [name]: value });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(message);
  });

  it('reports every problem at once', () => {
    const problems = problemsOf({ PORT: 'x', LOG_LEVEL: 'nope', WEBHOOK_EVENTS_RETENTION_DAYS: 'x', ARCHIVE_RETENTION_DAYS: '-5' });
    expect(problems.map((p) => p.split(' ')[0])).toEqual([
      'STREAM_API_KEY',
      'STREAM_API_SECRET',
      'PORT',
      'LOG_LEVEL',
      'WEBHOOK_EVENTS_RETENTION_DAYS',
      'ARCHIVE_RETENTION_DAYS',
    ]);
  });

  it('lets the demo run without Stream credentials', () => {
    expect(problemsOf({}, { requireStreamCredentials: false })).toEqual([]);
  });

  it('never echoes a secret or the database password in its message', () => {
    try {
      loadConfig({ ...FULL, DATABASE_URL: 'mysql://u:hunter2@x/db', STREAM_API_KEY: '', PORT: 'x' });
      expect.unreachable();
    } catch (error) {
      const message = (error as Error).message;
      expect(message).not.toContain('hunter2');
      expect(message).not.toContain('super-secret-value');
      expect(message).not.toContain('old-one');
    }
  });
});
