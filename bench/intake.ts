/**
 * Webhook intake (issue 9, item 1).
 *
 *   node bin/run-ts.js bench/intake.ts [--seconds 10]
 *
 * In one run, on one database: pgbench's single-row INSERT with commit (16 clients, into a
 * throwaway table with a jsonb column) as the ceiling; a bare Fastify POST route in its own
 * process under the same autocannon settings; then `attendance serve --no-worker` in its own
 * process under the same load, with every request a distinct signed `call.stats_report_ready`
 * (its own X-WEBHOOK-ID, session and signature, precomputed): once as fast as it answers, once
 * paced at half the pgbench rate for the latency at that load. Afterwards every accepted
 * webhook is looked up in webhook_events.
 */
import { spawn } from 'node:child_process';
import { writeFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type pg from 'pg';
import { generateSession } from '../tools/simulator/generate.ts';
import { buildStatsReportReadyEvent } from '../tools/simulator/webhooks.ts';
import { signWebhook } from '../src/stream/signature.ts';
import { appendResults, describeMachine, fmt, pass, ratio, withBenchDatabase, withTimeout, type MachineInfo } from './lib/bench-env.ts';
import { runLoad, type LoadRequest, type LoadResult } from './lib/load.ts';
import { startServiceProcess } from './lib/service.ts';
import { HOUR_MS, MINUTE_MS } from '../src/time.ts';

const API_KEY = 'bench-key';
const API_SECRET = 'bench-secret';
const CONNECTIONS = 50;
const PGBENCH_CLIENTS = 16;
const WHOLE_TIMEOUT_MS = 4 * MINUTE_MS;
const MAX_PRECOMPUTED = 300_000;
const P99_TARGET_MS = 20;

export interface IntakeBenchResult {
  readonly pgbenchTps: number;
  readonly bare: LoadResult;
  /** The bare route at the paced rate: the latency the load generator itself adds on these cores. */
  readonly barePaced: LoadResult;
  readonly saturated: LoadResult;
  readonly paced: LoadResult & { readonly rate: number };
  readonly accepted: number;
  readonly stored: number;
  readonly bodyBytes: number;
}

interface SignedBody {
  readonly id: string;
  readonly body: Buffer;
  readonly signature: string;
}

/** Distinct signed bodies: precomputed up to `count`, built on the spot past that (and counted). */
function createBodySource(count: number): { next(): SignedBody; cycle(i: number): SignedBody; readonly built: number; readonly bodyBytes: number } {
  const session = generateSession({ seed: 'bench-intake', size: 3, endedAt: new Date(Date.now() - HOUR_MS) });
  const template = JSON.stringify(buildStatsReportReadyEvent(session, { createdAt: new Date() }));
  const cid = `${session.callType}:${session.callId}`;
  const make = (i: number): SignedBody => {
    const id = `bench-webhook-${i}`;
    const text = template
      .replace(`"call_cid":${JSON.stringify(cid)}`, `"call_cid":"bench:call-${i % 1000}"`)
      .replace(`"session_id":${JSON.stringify(session.callSessionId)}`, `"session_id":"bench-session-${i}"`);
    const body = Buffer.from(text);
    return { id, body, signature: signWebhook(body, API_SECRET) };
  };
  const precomputed: SignedBody[] = [];
  for (let i = 0; i < count; i++) precomputed.push(make(i));
  let used = 0;
  let built = 0;
  return {
    next() {
      const i = used++;
      if (i < precomputed.length) return precomputed[i]!;
      built++;
      return make(i);
    },
    // The bare route stores nothing, so it may see the same bodies again.
    cycle(i) {
      return precomputed[i % precomputed.length] ?? make(i);
    },
    get built() {
      return built;
    },
    bodyBytes: precomputed[0]?.body.length ?? make(0).body.length,
  };
}

function requestFor(body: SignedBody): LoadRequest {
  return {
    method: 'POST',
    path: '/webhooks/stream',
    headers: {
      'content-type': 'application/json',
      'x-webhook-id': body.id,
      'x-webhook-attempt': '1',
      'x-api-key': API_KEY,
      'x-signature': body.signature,
    },
    body: body.body,
  };
}

async function runPgbench(url: string, pool: pg.Pool, seconds: number, sample: string): Promise<number> {
  await pool.query('create table bench_insert (id bigserial primary key, payload jsonb not null)');
  const script = join(tmpdir(), `attendance-pgbench-${process.pid}.sql`);
  await writeFile(script, `insert into bench_insert (payload) values ('${sample.replaceAll("'", "''")}'::jsonb);\n`);
  try {
    const output = await new Promise<string>((resolve, reject) => {
      const child = spawn('pgbench', ['-n', '-c', String(PGBENCH_CLIENTS), '-j', '2', '-T', String(seconds), '-f', script, url], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
      child.stderr.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
      child.once('error', reject);
      child.once('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`pgbench exited ${code}: ${out.slice(-500)}`))));
    });
    const tps = Number(/tps = ([\d.]+) \(without initial connection time\)/.exec(output)?.[1] ?? NaN);
    if (!Number.isFinite(tps)) throw new Error(`could not read pgbench's tps:\n${output}`);
    return tps;
  } finally {
    await rm(script, { force: true });
    await pool.query('drop table bench_insert');
  }
}

async function runBareFastify(
  seconds: number,
  rate: number,
  bodies: ReturnType<typeof createBodySource>,
): Promise<{ saturated: LoadResult; paced: LoadResult }> {
  const entry = fileURLToPath(new URL('./lib/bare-server.ts', import.meta.url));
  const runTs = fileURLToPath(new URL('../bin/run-ts.js', import.meta.url));
  const child = spawn(process.execPath, [runTs, entry], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const url = await new Promise<string>((resolve, reject) => {
      child.stdout.once('data', (chunk: Buffer) => resolve(chunk.toString('utf8').trim()));
      child.once('exit', (code) => reject(new Error(`bare server exited ${code}`)));
    });
    let i = 0;
    const next = () => requestFor(bodies.cycle(i++));
    const saturated = await runLoad({ url, connections: CONNECTIONS, durationSeconds: seconds, next });
    const paced = await runLoad({ url, connections: CONNECTIONS, durationSeconds: seconds, overallRate: rate, next });
    return { saturated, paced };
  } finally {
    child.kill('SIGTERM');
  }
}

export async function runIntakeBench(options: { seconds?: number } = {}): Promise<IntakeBenchResult> {
  const seconds = options.seconds ?? 10;
  return withTimeout(
    'intake benchmark',
    WHOLE_TIMEOUT_MS,
    withBenchDatabase(async (db) => {
      const probe = createBodySource(1);
      const pgbenchTps = await runPgbench(db.url, db.pool, seconds, probe.next().body.toString('utf8'));
      console.log(`pgbench single-row INSERT: ${fmt(pgbenchTps)} tps`);
      await db.pool.query('checkpoint');

      // Enough for a service at the pgbench rate for the saturated run plus the paced one.
      const bodies = createBodySource(Math.min(MAX_PRECOMPUTED, Math.ceil(pgbenchTps * seconds * 1.6)));
      const rate = Math.round(pgbenchTps * 0.5);
      const { saturated: bare, paced: barePaced } = await runBareFastify(seconds, rate, bodies);
      console.log(`bare Fastify: ${fmt(bare.requestsPerSecond)} req/s, p99 ${bare.p99Ms} ms; paced at ${fmt(rate)}/s: p99 ${barePaced.p99Ms} ms`);

      const service = await startServiceProcess({
        command: 'serve',
        args: ['--no-worker'],
        databaseUrl: db.url,
        apiKey: API_KEY,
        apiSecret: API_SECRET,
        streamBaseUrl: 'http://127.0.0.1:9',
      });
      const accepted: string[] = [];
      const track = (status: number, context: Record<string, unknown>) => {
        if (status === 200 && typeof context.webhookId === 'string') accepted.push(context.webhookId);
      };
      const next = (context: Record<string, unknown>): LoadRequest => {
        const body = bodies.next();
        context.webhookId = body.id;
        return requestFor(body);
      };
      let saturated: LoadResult;
      let paced: LoadResult;
      try {
        // A short warm-up, so the JIT and the pool are not part of the figures.
        await runLoad({ url: service.url!, connections: CONNECTIONS, durationSeconds: 2, next, onResponse: track });
        saturated = await runLoad({ url: service.url!, connections: CONNECTIONS, durationSeconds: seconds, next, onResponse: track });
        console.log(
          `service, saturated: ${fmt(saturated.requestsPerSecond)} accepted/s, p50 ${saturated.p50Ms} ms, p99 ${saturated.p99Ms} ms, errors ${saturated.errors + saturated.non2xx + saturated.timeouts}`,
        );
        paced = await runLoad({ url: service.url!, connections: CONNECTIONS, durationSeconds: seconds, overallRate: rate, next, onResponse: track });
        console.log(`service, paced at ${fmt(rate)}/s: ${fmt(paced.requestsPerSecond)} accepted/s, p50 ${paced.p50Ms} ms, p99 ${paced.p99Ms} ms`);
      } finally {
        await service.stop();
      }
      if (bodies.built > 0) console.log(`${bodies.built} bodies were built during the run (precomputed ran out)`);
      const stored = (await db.pool.query<{ n: number }>('select count(*)::int as n from webhook_events where webhook_id = any($1)', [accepted])).rows[0]!.n;
      console.log(`accepted ${fmt(accepted.length)}, stored ${fmt(stored)}`);
      const result: IntakeBenchResult = {
        pgbenchTps,
        bare,
        barePaced,
        saturated,
        paced: { ...paced, rate },
        accepted: accepted.length,
        stored,
        bodyBytes: bodies.bodyBytes,
      };
      await record(result, await describeMachine(db.pool), seconds);
      return result;
    }),
  );
}

async function record(r: IntakeBenchResult, machine: MachineInfo, seconds: number): Promise<void> {
  const errors = (l: LoadResult) => l.errors + l.timeouts + l.non2xx;
  const row = (name: string, l: LoadResult): string[] => [
    name,
    fmt(l.requestsPerSecond),
    ratio(l.requestsPerSecond, r.pgbenchTps),
    String(l.p50Ms),
    String(l.p99Ms),
    String(errors(l)),
  ];
  const allErrors = errors(r.saturated) + errors(r.paced);
  await appendResults({
    title: 'Webhook intake (bench/intake.ts)',
    command: 'node bin/run-ts.js bench/intake.ts',
    machine,
    notes: [
      `autocannon, ${CONNECTIONS} connections, ${seconds} s per run (after a 2 s warm-up for the service); every request a distinct signed \`call.stats_report_ready\` ` +
        `(${r.bodyBytes} bytes, its own X-WEBHOOK-ID and session). Service: \`attendance serve --no-worker\` in its own process. ` +
        `Baselines: \`pgbench -n -c ${PGBENCH_CLIENTS} -j 2 -T ${seconds}\` single-row INSERT with commit into a table with a jsonb column; a bare Fastify POST route in its own process. ` +
        'Paced runs use autocannon `overallRate` (latency from the actual send); the bare route paced the same way shows what the load generator itself adds to p99 on these shared cores.',
    ],
    table: {
      header: ['run', 'accepted/s', 'ratio to pgbench', 'p50 ms', 'p99 ms', 'errors'],
      rows: [
        ['pgbench single-row INSERT (baseline)', fmt(r.pgbenchTps), '1.00 ×', '', '', '0'],
        row('bare Fastify POST route', r.bare),
        row(`bare Fastify POST route, paced at ${fmt(r.paced.rate)}/s`, r.barePaced),
        row('service, as fast as it answers', r.saturated),
        row(`service, paced at ${fmt(r.paced.rate)}/s (0.5 × pgbench)`, r.paced),
      ],
    },
    verdicts: [
      `≥ 0.5 × pgbench: ${ratio(r.saturated.requestsPerSecond, r.pgbenchTps)} (${pass(r.saturated.requestsPerSecond >= 0.5 * r.pgbenchTps)}); ` +
        `p99 at 0.5 × pgbench: ${r.paced.p99Ms} ms (< ${P99_TARGET_MS} ms: ${pass(r.paced.p99Ms < P99_TARGET_MS && r.paced.requestsPerSecond >= 0.95 * r.paced.rate)})`,
      `errors: ${allErrors} (${pass(allErrors === 0)}); accepted ${fmt(r.accepted)}, found in webhook_events ${fmt(r.stored)} (${pass(r.accepted === r.stored)})`,
      `service vs bare Fastify: ${ratio(r.saturated.requestsPerSecond, r.bare.requestsPerSecond)}`,
    ],
  });
}

function parseSeconds(argv: string[]): number | undefined {
  const i = argv.indexOf('--seconds');
  if (i === -1) return undefined;
  const value = Number(argv[i + 1]);
  if (!Number.isInteger(value) || value < 1 || value > 60) throw new Error('usage: intake.ts [--seconds 1..60]');
  return value;
}

if (import.meta.url === `file://${process.argv[1]}`) await runIntakeBench({ seconds: parseSeconds(process.argv.slice(2)) });
