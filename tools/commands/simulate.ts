import { randomBytes } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import { isHttpUrl } from '../../src/config.ts';
import { AppError, UsageError } from '../../src/errors.ts';
import { textOption, wholeNumberOption } from '../../src/commands/args.ts';
import type { Command, CommandContext } from '../../src/commands/types.ts';
import { generateDataset, pickSessionSizes, type SimSession } from '../simulator/generate.ts';
import { startSimulator, type Simulator } from '../simulator/server.ts';
import { buildStatsReportReadyEvent, deliverWebhook } from '../simulator/webhooks.ts';

export const SIMULATE_DEFAULT_PORT = 8090;
const DEFAULT_SESSIONS = 20;
const MAX_SESSIONS = 1_000;
const SESSIONS_LISTED = 30;
/** How often to knock while the webhook target is not up yet. */
const TARGET_POLL_MS = 2_000;

export const simulateCommand: Command = {
  name: 'simulate',
  summary: 'run the local Stream simulator alone (for trying serve against it)',
  usage:
    'simulate [--port <n>] [--host <addr>] [--seed <s>] [--sessions <n>] [--api-key <key>] [--api-secret <secret>] [--send-webhooks <url>]\n\n' +
    `  --port <n>             listen here (default ${SIMULATE_DEFAULT_PORT}; 0 picks a free port)\n` +
    '  --host <addr>          listen address (default 127.0.0.1)\n' +
    '  --seed <s>             seed of the generated calls (default 1); the same seed gives the same sessions\n' +
    `  --sessions <n>         how many call sessions to load (default ${DEFAULT_SESSIONS}, at most ${MAX_SESSIONS})\n` +
    '  --api-key, --api-secret  credentials to accept; made up (and printed) when not given\n' +
    '  --send-webhooks <url>  POST a signed call.stats_report_ready for each session there (waits until it answers)\n\n' +
    'Runs until Ctrl-C. A local development tool: it prints its throwaway API secret on purpose.',
  options: {
    port: { type: 'string' },
    host: { type: 'string' },
    seed: { type: 'string' },
    sessions: { type: 'string' },
    'api-key': { type: 'string' },
    'api-secret': { type: 'string' },
    'send-webhooks': { type: 'string' },
  },
  async run(values, _positionals, ctx) {
    const port = wholeNumberOption(values.port, '--port', { min: 0, max: 65_535, default: SIMULATE_DEFAULT_PORT });
    const sessionCount = wholeNumberOption(values.sessions, '--sessions', { min: 1, max: MAX_SESSIONS, default: DEFAULT_SESSIONS });
    const host = textOption(values.host, '--host') ?? '127.0.0.1';
    const seed = textOption(values.seed, '--seed') ?? '1';
    const apiKey = textOption(values['api-key'], '--api-key') ?? `sim-${randomBytes(4).toString('hex')}`;
    const apiSecret = textOption(values['api-secret'], '--api-secret') ?? randomBytes(24).toString('hex');
    const webhookUrl = textOption(values['send-webhooks'], '--send-webhooks');
    if (webhookUrl !== undefined && !isHttpUrl(webhookUrl)) throw new UsageError(`--send-webhooks must be an http(s) URL (got ${JSON.stringify(webhookUrl)})`);

    const sessions = generateDataset({ seed, sizes: pickSessionSizes({ seed, count: sessionCount }) });
    let sim: Simulator;
    try {
      sim = await startSimulator({ apiKey, apiSecret, host, port });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EADDRINUSE') {
        throw new AppError('PORT_IN_USE', `${host}:${port} is already in use; pass --port 0 for any free port`, { cause: error });
      }
      throw error;
    }
    try {
      for (const session of sessions) sim.addSession(session);
      printIntro(ctx, sim, { seed, sessions, port, webhookUrl });
      const sending = webhookUrl === undefined ? Promise.resolve() : sendReports(ctx, sim, sessions, webhookUrl);
      await Promise.all([untilStopped(ctx.stopSignal), sending]);
    } finally {
      await sim.close();
    }
    ctx.stdout.write('simulator stopped\n');
    return 0;
  },
};

function printIntro(
  ctx: CommandContext,
  sim: Simulator,
  options: { seed: string; sessions: readonly SimSession[]; port: number; webhookUrl: string | undefined },
): void {
  const { sessions } = options;
  const entries = sessions.reduce((sum, s) => sum + s.participants.length, 0);
  const env = `STREAM_BASE_URL=${sim.url} STREAM_API_KEY=${shellQuote(sim.apiKey)} STREAM_API_SECRET=${shellQuote(sim.apiSecret)}`;
  const port = new URL(sim.url).port;
  const lines = [
    `Stream simulator listening on ${sim.url}`,
    `  ${sessions.length} call sessions (seed ${options.seed}), ${entries} participant sessions in all`,
    `  API key:    ${sim.apiKey}`,
    `  API secret: ${sim.apiSecret}`,
    '',
    'Sessions (call_cid  call_session_id  entries):',
    ...sessions.slice(0, SESSIONS_LISTED).map((s) => `  ${s.callType}:${s.callId}  ${s.callSessionId}  ${s.participants.length}`),
    ...(sessions.length > SESSIONS_LISTED ? [`  … and ${sessions.length - SESSIONS_LISTED} more`] : []),
    '',
    'Environment for serve:',
    `  STREAM_BASE_URL=${sim.url}`,
    `  STREAM_API_KEY=${shellQuote(sim.apiKey)}`,
    `  STREAM_API_SECRET=${shellQuote(sim.apiSecret)}`,
    'Run serve against it:',
    `  ${env} npx attendance serve`,
  ];
  if (options.webhookUrl === undefined) {
    lines.push(
      'Send its webhooks to a running serve (same seed, key and secret give the same sessions):',
      `  npx attendance simulate --port ${port} --seed ${shellQuote(options.seed)} --sessions ${sessions.length} --api-key ${shellQuote(sim.apiKey)} --api-secret ${shellQuote(sim.apiSecret)} --send-webhooks http://127.0.0.1:8080/webhooks/stream`,
      '  (stop this one first, or start that one before serve: it waits until serve answers)',
    );
  }
  lines.push('', 'Ctrl-C stops it.', '');
  ctx.stdout.write(lines.join('\n'));
}

/** Waits for the target to answer at all, then delivers one report event per session, in order. */
async function sendReports(ctx: CommandContext, sim: Simulator, sessions: readonly SimSession[], url: string): Promise<void> {
  const signal = ctx.stopSignal;
  let delivered = 0;
  let failed = 0;
  let waitingSaid = false;
  for (const session of sessions) {
    for (;;) {
      const event = buildStatsReportReadyEvent(session);
      const result = await deliverWebhook({ url, apiKey: sim.apiKey, apiSecret: sim.apiSecret, event, signal });
      if (result.failure === 'aborted') return;
      if (result.failure === 'network' && delivered + failed === 0) {
        if (!waitingSaid) ctx.stdout.write(`webhooks: waiting for ${url} to answer…\n`);
        waitingSaid = true;
        try {
          await delay(TARGET_POLL_MS, undefined, { signal });
        } catch {
          return;
        }
        continue;
      }
      if (result.status >= 200 && result.status < 300) delivered++;
      else {
        failed++;
        const why = result.status === 0 ? (result.failure ?? 'no answer') : `HTTP ${result.status}`;
        ctx.stdout.write(`webhooks: ${session.callSessionId} not accepted after ${result.attempts} attempt(s): ${why}\n`);
      }
      break;
    }
  }
  ctx.stdout.write(`webhooks: ${delivered} call.stats_report_ready delivered to ${url}${failed > 0 ? `, ${failed} not accepted` : ''}\n`);
}

function untilStopped(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
}

/** Leaves plain words alone and single-quotes the rest, so printed lines paste into a POSIX shell. */
function shellQuote(value: string): string {
  return /^[A-Za-z0-9_./:@%+=,-]+$/.test(value) ? value : `'${value.replaceAll("'", `'\\''`)}'`;
}
