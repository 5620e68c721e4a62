import { readFile } from 'node:fs/promises';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import packageJson from '../../package.json' with { type: 'json' };
import { loadConfig } from '../../src/config.ts';
import { buildApp } from '../../src/http/app.ts';
import { createLogger } from '../../src/logger.ts';
import { createMetrics } from '../../src/metrics.ts';
import { useTestDatabase } from '../helpers/db.ts';
import { findTool, runTool } from './tools.ts';

const root = new URL('../../', import.meta.url);
const RULES = fileURLToPath(new URL('deploy/prometheus/alerts.yml', root));
const DASHBOARD = fileURLToPath(new URL('deploy/grafana/dashboard.json', root));
const API_KEY = 'observability-key';
const API_SECRET = 'observability-secret-never-logged';

interface RuleFile {
  groups: { name: string; rules: { alert: string; expr: string; annotations?: { summary?: string } }[] }[];
}

/** The metric names an expression reads; a histogram's _bucket/_sum/_count read the histogram. */
function metricNames(expr: string): string[] {
  const names = expr.match(/\b(?:attendance|process|nodejs)_[a-z0-9_]+/g) ?? [];
  return [...new Set(names.map((n) => n.replace(/_(bucket|sum|count)$/, '')))];
}

describe('alert rules, dashboard and /metrics agree', () => {
  const test = useTestDatabase();
  let app: FastifyInstance;
  let log = '';
  let exposed: Set<string>;
  let text: string;

  beforeAll(async () => {
    const out = new PassThrough();
    out.on('data', (chunk) => (log += String(chunk)));
    const config = loadConfig({ STREAM_API_KEY: API_KEY, STREAM_API_SECRET: API_SECRET, LOG_LEVEL: 'info' });
    app = await buildApp({
      config,
      database: test.current.database,
      logger: createLogger({ level: 'info', pretty: false, destination: out }),
      metrics: createMetrics(),
    });
    text = (await app.inject({ method: 'GET', url: '/metrics' })).body;
    exposed = new Set([...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]!));
  });
  afterAll(async () => {
    await app?.close();
  });

  it('every metric an alert rule reads is exposed', async () => {
    const rules = parse(await readFile(RULES, 'utf8')) as RuleFile;
    const alerts = rules.groups.flatMap((g) => g.rules);
    expect(alerts.map((a) => a.alert)).toEqual(
      expect.arrayContaining([
        'AttendanceDeadSessions',
        'AttendanceSessionsAtRisk',
        'AttendanceQueueBehind',
        'AttendanceStreamUnhealthy',
        'AttendanceSweepStale',
        'AttendanceIntakeErrors',
      ]),
    );
    for (const alert of alerts) {
      const names = metricNames(alert.expr);
      expect(names.length, alert.alert).toBeGreaterThan(0);
      for (const name of names) expect(exposed, `${alert.alert} reads ${name}`).toContain(name);
    }
  });

  it('every metric a dashboard panel reads is exposed', async () => {
    const dashboard = JSON.parse(await readFile(DASHBOARD, 'utf8')) as { panels: { title: string; targets: { expr: string }[] }[] };
    expect(dashboard.panels.length).toBeGreaterThan(10);
    for (const panel of dashboard.panels) {
      for (const target of panel.targets) {
        for (const name of metricNames(target.expr)) expect(exposed, `${panel.title} reads ${name}`).toContain(name);
      }
    }
  });

  it('Node and process metrics have their standard names, and the build is labelled', () => {
    expect(exposed).toContain('process_cpu_seconds_total');
    expect(exposed).toContain('nodejs_heap_size_used_bytes');
    expect([...exposed].some((n) => n.startsWith('attendance_process_'))).toBe(false);
    expect(text).toContain(`attendance_build_info{version="${packageJson.version}",node="${process.versions.node}"} 1`);
  });

  it('the access log has one line per request: method, path without the query, status; no secrets', async () => {
    log = '';
    await app.inject({
      method: 'GET',
      url: `/api/v2/video/call/default/c/session/s/participant_sessions?api_key=${API_KEY}&limit=5`,
      headers: { authorization: 'eyJhbGciOiJIUzI1NiJ9.eyJzZXJ2ZXIiOnRydWV9.sig', 'stream-auth-type': 'jwt' },
    });
    await app.inject({
      method: 'POST',
      url: '/webhooks/stream',
      payload: '{}',
      headers: { 'content-type': 'application/json', 'x-signature': 'deadbeef', 'x-api-key': API_KEY },
    });
    const lines = log
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => l.msg === 'request');
    expect(lines.map((l) => [l.method, l.path, l.status])).toEqual([
      ['GET', '/api/v2/video/call/default/c/session/s/participant_sessions', 401],
      ['POST', '/webhooks/stream', 401],
    ]);
    for (const line of lines) expect(typeof line.ms).toBe('number');
    expect(log).not.toContain(API_KEY);
    expect(log).not.toContain(API_SECRET);
    expect(log).not.toContain('eyJhbGciOiJIUzI1NiJ9');
    expect(log).not.toContain('deadbeef');
  });

  it("the rules pass promtool check rules (where Debian's prometheus package is installed)", async (ctx) => {
    const promtool = await findTool([['promtool']], ['--version']);
    if (!promtool) ctx.skip('promtool not installed (apt-get install prometheus): rules checked by parsing only');
    const result = await runTool('promtool', ['check', 'rules', RULES]);
    expect(result.stdout + result.stderr).toMatch(/SUCCESS: \d+ rules found/);
    expect(result.code).toBe(0);
  });
});
