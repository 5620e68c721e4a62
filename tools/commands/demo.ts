import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { loadConfig, type Config } from '../../src/config.ts';
import { createDatabase, withDatabaseName, type Database } from '../../src/db/client.ts';
import { resolveEmbeddedDir, startEmbeddedPostgres, verifyEmbeddedInstalled, type EmbeddedDatabase } from '../../src/db/embedded.ts';
import { describeDatabaseTarget, verifyConnection } from '../../src/db/verify.ts';
import { createLogger } from '../../src/logger.ts';
import { generateDataset, type SimSession } from '../simulator/generate.ts';
import { startSimulator, type Simulator } from '../simulator/server.ts';
import { buildSessionEndedEvent, buildStatsReportReadyEvent, deliverWebhook } from '../simulator/webhooks.ts';
import { booleanOption, wholeNumberOption } from '../../src/commands/args.ts';
import { embeddedNotice } from '../../src/commands/database.ts';
import { startService, type Service } from '../../src/commands/runtime.ts';
import type { Command, CommandContext } from '../../src/commands/types.ts';
import { renderHandover, renderReport, stopCommand } from './demo-report.ts';

// About 20 sessions and 10,000 participant sessions, a few of them large.
export const DEMO_SESSION_SIZES = [1, 2, 5, 12, 25, 40, 60, 80, 100, 150, 200, 300, 400, 500, 600, 700, 800, 1000, 1500, 3527] as const;
const DEMO_DATABASE = 'attendance_demo';
const DEFAULT_TIMEOUT_SECONDS = 120;
const WEBHOOK_CONCURRENCY = 8;

export const demoCommand: Command = {
  name: 'demo',
  summary: 'embedded Postgres + local Stream simulator + serve: signed webhooks, archive, verified report',
  usage:
    'demo [--keep] [--sessions <n>] [--timeout <seconds>]\n\n' +
    '  --keep              keep the demo database reachable afterwards: the embedded Postgres stays running\n' +
    '                      (the last lines say how to query it and how to stop it)\n' +
    `  --sessions <n>      how many of the ${DEMO_SESSION_SIZES.length} seeded sessions to use (default all)\n` +
    `  --timeout <s>       give up waiting for the archive after this long (default ${DEFAULT_TIMEOUT_SECONDS})\n\n` +
    'Uses DATABASE_URL when set (its data stays there), else an embedded Postgres under ./.attendance/\n' +
    '(database attendance_demo, recreated each run).',
  options: { keep: { type: 'boolean' }, sessions: { type: 'string' }, timeout: { type: 'string' } },
  async run(values, _positionals, ctx) {
    const sessionCount = wholeNumberOption(values.sessions, '--sessions', { min: 1, max: DEMO_SESSION_SIZES.length, default: DEMO_SESSION_SIZES.length });
    const timeoutSeconds = wholeNumberOption(values.timeout, '--timeout', { min: 1, max: 3600, default: DEFAULT_TIMEOUT_SECONDS });
    const base = loadConfig(ctx.env, { requireStreamCredentials: false });
    return runDemo(base, ctx, { keep: booleanOption(values.keep), sessionCount, timeoutSeconds });
  },
};

interface DemoOptions {
  readonly keep: boolean;
  readonly sessionCount: number;
  readonly timeoutSeconds: number;
}

async function runDemo(base: Config, ctx: CommandContext, options: DemoOptions): Promise<number> {
  const out = (line = '') => ctx.stdout.write(`${line}\n`);
  const started = performance.now();
  const apiKey = `demo-${randomBytes(4).toString('hex')}`;
  // A throwaway secret shared by the local simulator and the local service; never printed.
  const apiSecret = randomBytes(24).toString('base64url');
  const runId = randomBytes(3).toString('hex');

  let embedded: EmbeddedDatabase | undefined;
  let database: Database | undefined;
  let simulator: Simulator | undefined;
  let service: Service | undefined;
  let handedOver = false;
  try {
    out('stream-attendance demo');
    let databaseUrl = base.databaseUrl;
    if (databaseUrl === undefined) {
      // Checked before the notice, so a missing package is the one line the user sees.
      await verifyEmbeddedInstalled();
      const dir = resolveEmbeddedDir();
      ctx.stderr.write(`${embeddedNotice(dir)}\n`);
      out(`  starting embedded Postgres in ${dir} …`);
      embedded = await startEmbeddedPostgres({ dir });
      // From here the server outlives the demo when asked to; the finally's stop() is then a no-op.
      if (options.keep) embedded.detach();
      databaseUrl = await recreateDatabase(embedded.url, DEMO_DATABASE);
    }
    database = createDatabase(databaseUrl, { max: 12 });
    // The demo migrates, so a database it cannot reach is the only setup problem left to report.
    await verifyConnection(database.pool, describeDatabaseTarget(databaseUrl, embedded ? `the embedded Postgres in ${embedded.dir}` : 'DATABASE_URL'), {
      forMigrate: true,
    });

    const sessions = generateDataset({ seed: `demo-${runId}`, sizes: DEMO_SESSION_SIZES.slice(0, options.sessionCount) });
    simulator = await startSimulator({ apiKey, apiSecret });
    for (const session of sessions) simulator.addSession(session);
    const entries = sessions.reduce((n, s) => n + s.participants.length, 0);
    out(`  Stream simulator on ${simulator.url}: ${sessions.length} call sessions, ${entries.toLocaleString('en-US')} participant sessions`);

    const config: Config = {
      ...base,
      databaseUrl,
      stream: { apiKey, apiSecret, previousApiSecrets: [], baseUrl: simulator.url },
      http: { port: 0, host: '127.0.0.1' },
      worker: { concurrency: Math.max(base.worker.concurrency, 4) },
      reconcile: { intervalMinutes: 0, lookbackDays: base.reconcile.lookbackDays },
    };
    const logLevel = ctx.env.LOG_LEVEL ? base.logLevel : 'warn';
    const logger = createLogger({ level: logLevel, pretty: false, destination: ctx.stderr });
    service = await startService({ config, database, logger, http: true, worker: true, migrate: true });
    out(`  attendance serve on ${service.url}`);

    const webhookUrl = `${service.url}/webhooks/stream`;
    const delivered = await sendWebhooks(sessions, { url: webhookUrl, apiKey, apiSecret });
    out(`  sent ${delivered} signed webhooks (call.session_ended + call.stats_report_ready per session)`);

    const ids = sessions.map((s) => s.callSessionId);
    const done = await waitForArchive(database.pool, ids, entries, options.timeoutSeconds * 1000, ctx);
    if (!done) {
      out(`  the archive did not finish within ${options.timeoutSeconds} s; 'attendance status' shows why`);
      return 1;
    }
    out(`  archived in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    out();
    const report = await renderReport(database.pool, sessions);
    out(report.text);
    out();
    out(renderHandover({ keep: options.keep, demoUrl: embedded ? databaseUrl : undefined, embeddedDir: embedded?.dir }));
    handedOver = true;
    return report.allVerified ? 0 : 1;
  } finally {
    // A kept server must never be left running without a word on how to stop it.
    if (options.keep && embedded && !handedOver)
      ctx.stderr.write(`attendance demo: the embedded Postgres keeps running; stop it with: ${stopCommand(embedded.dir)}\n`);
    await service?.stop();
    await simulator?.close();
    await database?.close();
    await embedded?.stop();
  }
}

async function recreateDatabase(adminUrl: string, name: string): Promise<string> {
  const admin = new pg.Client(adminUrl);
  await admin.connect();
  try {
    await admin.query(`drop database if exists ${name} with (force)`);
    await admin.query(`create database ${name}`);
  } finally {
    await admin.end();
  }
  return withDatabaseName(adminUrl, name);
}

async function sendWebhooks(sessions: readonly SimSession[], target: { url: string; apiKey: string; apiSecret: string }): Promise<number> {
  const events = sessions.flatMap((session) => [buildSessionEndedEvent(session), buildStatsReportReadyEvent(session)]);
  let next = 0;
  let sent = 0;
  const lane = async () => {
    while (next < events.length) {
      const event = events[next++]!;
      const result = await deliverWebhook({ ...target, event });
      if (result.status !== 200) throw new Error(`webhook answered ${result.status} after ${result.attempts} attempt(s)`);
      sent++;
    }
  };
  await Promise.all(Array.from({ length: WEBHOOK_CONCURRENCY }, lane));
  return sent;
}

async function waitForArchive(pool: pg.Pool, ids: readonly string[], entries: number, timeoutMs: number, ctx: CommandContext): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  const tty = Boolean((ctx.stdout as NodeJS.WriteStream).isTTY);
  let lastPrintedLine = '';
  let lastPrinted = 0;
  for (;;) {
    const { rows } = await pool.query<{ complete: number; rows: number; failed: number }>(
      `select count(*) filter (where status = 'complete')::int as complete,
              count(*) filter (where status in ('dead', 'expired'))::int as failed,
              (select count(*)::int from participant_sessions where call_session_id = any($1)) as rows
         from call_sessions where call_session_id = any($1)`,
      [ids],
    );
    const { complete = 0, rows: archived = 0, failed = 0 } = rows[0] ?? {};
    const line = `  archiving: ${complete}/${ids.length} sessions complete, ${archived.toLocaleString('en-US')}/${entries.toLocaleString('en-US')} rows`;
    if (tty) ctx.stdout.write(`\r${line}`);
    else if (line !== lastPrintedLine && Date.now() - lastPrinted > 1000) {
      ctx.stdout.write(`${line}\n`);
      lastPrinted = Date.now();
      lastPrintedLine = line;
    }
    if (complete === ids.length) {
      ctx.stdout.write(tty ? '\n' : line !== lastPrintedLine ? `${line}\n` : '');
      return true;
    }
    if (failed > 0 || Date.now() > deadline || ctx.stopSignal.aborted) {
      if (tty) ctx.stdout.write('\n');
      return false;
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}
