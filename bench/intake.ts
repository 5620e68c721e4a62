/**
 * Webhook intake (issue 9, item 1; issue 19, item 3).
 *
 *   node bin/run-ts.js bench/intake.ts [--seconds 6] [--rounds 3]
 *
 * In one run, on one database, three rounds, each: pgbench's single-row INSERT with commit (16
 * clients, into a fresh table with a jsonb column) as the baseline, then `attendance serve
 * --no-worker` in its own process under autocannon, every request a distinct signed
 * `call.stats_report_ready` (its own X-WEBHOOK-ID, session and signature, precomputed): once as
 * fast as it answers, once paced at half that round's pgbench rate for the latency at that load.
 * Each round's ratio is to its own baseline; the median of the rounds is held against the target,
 * since the machine is shared. Every accepted webhook is looked up in webhook_events. A bare
 * Fastify POST route, once after the rounds, shows what the load generator itself costs. Each measured window is
 * also split into CPU of the service, of Postgres, of the load generator and of the rest of the
 * machine (lib/cpu-account.ts); with BENCH_CPU_PROF the service's hottest frames are recorded.
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
import {
  appendResults,
  type BenchDatabase,
  describeMachine,
  fmt,
  type MachineInfo,
  median,
  medianIndex,
  parseCountFlag,
  passMiss,
  QUICK,
  ratio,
  withBenchDatabase,
  withTimeout,
} from './lib/bench-env.ts';
import { type CpuSplit, PER_UNIT_HEADER, perUnitRow, startCpuWindow } from './lib/cpu-account.ts';
import { describeProfile, type ProfileSummary, summariseProfileOf } from './lib/cpu-profile.ts';
import { runLoad, type LoadRequest, type LoadResult } from './lib/load.ts';
import { startServiceProcess } from './lib/service.ts';
import { HOUR_MS, MINUTE_MS } from '../src/time.ts';

const API_KEY = 'bench-key';
const API_SECRET = 'bench-secret';
const CONNECTIONS = 50;
const PGBENCH_CLIENTS = 16;
const DEFAULT_SECONDS = 6;
// The machine is shared and noisy: each target is the median of three rounds within one run.
const ROUNDS = 3;
const MAX_PRECOMPUTED = 300_000;
const P99_TARGET_MS = 20;

export interface IntakeRound {
  readonly pgbench: PgbenchResult;
  readonly saturated: LoadResult;
  /** Paced at half this round's pgbench rate. */
  readonly paced: LoadResult & { readonly rate: number };
  readonly accepted: number;
  readonly stored: number;
  readonly cpu: { readonly pgbench: CpuSplit; readonly saturated: CpuSplit; readonly paced: CpuSplit };
}

export interface IntakeBenchResult {
  readonly rounds: readonly IntakeRound[];
  /** Median over the rounds of the service's accepted/s ÷ that round's pgbench tps. */
  readonly medianRatio: number;
  /** Median over the rounds of the paced run's p99. */
  readonly medianPacedP99Ms: number;
  readonly bare: LoadResult;
  /** The bare route at the first round's paced rate: the latency the load generator itself adds on these cores. */
  readonly barePaced: LoadResult;
  readonly bodyBytes: number;
}

interface PgbenchResult {
  readonly tps: number;
  readonly transactions: number;
  readonly latencyMs: number;
}

interface SignedBody {
  readonly id: string;
  readonly body: Buffer;
  readonly signature: string;
}

/** Distinct signed bodies: precomputed up to `count`, built on the spot past that (and counted). */
function createBodySource(count: number): {
  next(): SignedBody;
  cycle(i: number): SignedBody;
  /** From the first body again: each round starts from emptied tables, so its ids are new to them. */
  reset(): void;
  readonly built: number;
  readonly bodyBytes: number;
} {
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
    reset() {
      used = 0;
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

async function runPgbench(db: BenchDatabase, seconds: number, sample: string): Promise<{ result: PgbenchResult; cpu: CpuSplit }> {
  await db.pool.query('create table bench_insert (id bigserial primary key, payload jsonb not null)');
  await db.pool.query('checkpoint');
  const script = join(tmpdir(), `attendance-pgbench-${process.pid}.sql`);
  await writeFile(script, `insert into bench_insert (payload) values ('${sample.replaceAll("'", "''")}'::jsonb);\n`);
  try {
    const window = await startCpuWindow(db.name);
    const output = await new Promise<string>((resolve, reject) => {
      const child = spawn('pgbench', ['-n', '-c', String(PGBENCH_CLIENTS), '-j', '2', '-T', String(seconds), '-f', script, db.url], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
      child.stderr.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
      child.once('error', reject);
      child.once('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`pgbench exited ${code}: ${out.slice(-500)}`))));
    });
    const cpu = await window.stop();
    const tps = Number(/tps = ([\d.]+) \(without initial connection time\)/.exec(output)?.[1] ?? NaN);
    const transactions = Number(/number of transactions actually processed: (\d+)/.exec(output)?.[1] ?? NaN);
    const latencyMs = Number(/latency average = ([\d.]+) ms/.exec(output)?.[1] ?? NaN);
    if (!Number.isFinite(tps) || !Number.isFinite(transactions)) throw new Error(`could not read pgbench's tps:\n${output}`);
    return { result: { tps, transactions, latencyMs }, cpu };
  } finally {
    await rm(script, { force: true });
    await db.pool.query('drop table bench_insert');
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

/** Empties what intake writes, so each round starts from the same empty tables (and just after a checkpoint). */
async function emptyIntakeTables(pool: pg.Pool): Promise<void> {
  await pool.query('truncate webhook_events, call_sessions cascade');
  await pool.query('checkpoint');
}

export interface IntakeBenchOptions {
  /** Seconds per measured run (pgbench, saturated, paced). */
  readonly seconds?: number;
  readonly rounds?: number;
}

export async function runIntakeBench(options: IntakeBenchOptions = {}): Promise<IntakeBenchResult> {
  const seconds = options.seconds ?? (QUICK ? 3 : DEFAULT_SECONDS);
  const roundCount = options.rounds ?? ROUNDS;
  // Three runs of `seconds` per round plus the bare route's two, with room for start-ups and checkpoints.
  const wholeTimeoutMs = MINUTE_MS + (roundCount * 3 + 2) * seconds * 1000 * 1.5;
  return withTimeout(
    'intake benchmark',
    wholeTimeoutMs,
    withBenchDatabase(async (db) => {
      const sample = createBodySource(1).next().body.toString('utf8');
      const first = await runPgbench(db, seconds, sample);
      console.log(`round 1: pgbench single-row INSERT ${fmt(first.result.tps)} tps`);

      // One round's worth (its saturated run at up to pgbench's rate, its paced run at half of it);
      // every round replays the same bodies into emptied tables.
      const bodies = createBodySource(Math.min(MAX_PRECOMPUTED, Math.ceil(first.result.tps * seconds * 1.6)));
      const service = await startServiceProcess({
        command: 'serve',
        args: ['--no-worker'],
        databaseUrl: db.url,
        apiKey: API_KEY,
        apiSecret: API_SECRET,
        streamBaseUrl: 'http://127.0.0.1:9',
      });
      const rounds: IntakeRound[] = [];
      try {
        let accepted: string[] = [];
        const track = (status: number, context: Record<string, unknown>) => {
          if (status === 200 && typeof context.webhookId === 'string') accepted.push(context.webhookId);
        };
        const next = (context: Record<string, unknown>): LoadRequest => {
          const body = bodies.next();
          context.webhookId = body.id;
          return requestFor(body);
        };
        // A short warm-up, so the JIT and the pool are not part of the figures.
        await runLoad({ url: service.url!, connections: CONNECTIONS, durationSeconds: 2, next, onResponse: track });
        for (let round = 1; round <= roundCount; round++) {
          const pgbench = round === 1 ? first : await runPgbench(db, seconds, sample);
          if (round > 1) console.log(`round ${round}: pgbench single-row INSERT ${fmt(pgbench.result.tps)} tps`);
          await emptyIntakeTables(db.pool);
          bodies.reset();
          accepted = [];
          const rate = Math.round(pgbench.result.tps * 0.5);
          const saturatedWindow = await startCpuWindow(db.name, service.pid);
          const saturated = await runLoad({ url: service.url!, connections: CONNECTIONS, durationSeconds: seconds, next, onResponse: track });
          const saturatedCpu = await saturatedWindow.stop();
          const pacedWindow = await startCpuWindow(db.name, service.pid);
          const paced = await runLoad({ url: service.url!, connections: CONNECTIONS, durationSeconds: seconds, overallRate: rate, next, onResponse: track });
          const pacedCpu = await pacedWindow.stop();
          const stored = (await db.pool.query<{ n: number }>('select count(*)::int as n from webhook_events where webhook_id = any($1)', [accepted])).rows[0]!
            .n;
          console.log(
            `round ${round}: service ${fmt(saturated.requestsPerSecond)} accepted/s (${ratio(saturated.requestsPerSecond, pgbench.result.tps)} pgbench), ` +
              `p50 ${saturated.p50Ms} ms, p99 ${saturated.p99Ms} ms; paced at ${fmt(rate)}/s: ${fmt(paced.requestsPerSecond)}/s, p99 ${paced.p99Ms} ms; ` +
              `errors ${errorCount(saturated) + errorCount(paced)}; accepted ${fmt(accepted.length)}, stored ${fmt(stored)}`,
          );
          rounds.push({
            pgbench: pgbench.result,
            saturated,
            paced: { ...paced, rate },
            accepted: accepted.length,
            stored,
            cpu: { pgbench: pgbench.cpu, saturated: saturatedCpu, paced: pacedCpu },
          });
        }
      } finally {
        await service.stop();
      }
      if (bodies.built > 0) console.log(`${bodies.built} bodies were built during the run (precomputed ran out)`);
      // After the rounds, so that each round's baseline is right before its service runs.
      const firstRate = rounds[0]!.paced.rate;
      const { saturated: bare, paced: barePaced } = await runBareFastify(seconds, firstRate, bodies);
      console.log(`bare Fastify: ${fmt(bare.requestsPerSecond)} req/s, p99 ${bare.p99Ms} ms; paced at ${fmt(firstRate)}/s: p99 ${barePaced.p99Ms} ms`);
      const result: IntakeBenchResult = {
        rounds,
        medianRatio: median(rounds.map((r) => r.saturated.requestsPerSecond / r.pgbench.tps)),
        medianPacedP99Ms: median(rounds.map((r) => r.paced.p99Ms)),
        bare,
        barePaced,
        bodyBytes: bodies.bodyBytes,
      };
      printTimeSplit(result);
      // The profile over the measured runs only (not start-up, warm-up or the pgbench runs).
      const windows = rounds.flatMap((x) => [x.cpu.saturated, x.cpu.paced]);
      const profile = process.env.BENCH_CPU_PROF ? await summariseProfileOf(process.env.BENCH_CPU_PROF, service.pid, windows) : undefined;
      const measured = rounds.reduce((sum, x) => sum + x.saturated.ok + x.paced.ok, 0);
      await record(result, await describeMachine(db.pool), seconds, profile, measured);
      return result;
    }),
  );
}

const errorCount = (l: LoadResult) => l.errors + l.timeouts + l.non2xx;

function timeSplitRows(r: IntakeBenchResult): string[][] {
  return r.rounds.flatMap((round, i) => [
    perUnitRow(`round ${i + 1}, pgbench (per INSERT)`, round.cpu.pgbench, round.pgbench.transactions, round.pgbench.latencyMs),
    perUnitRow(`round ${i + 1}, service as fast as it answers (per webhook)`, round.cpu.saturated, round.saturated.ok, round.saturated.meanMs),
    perUnitRow(`round ${i + 1}, service paced at ${fmt(round.paced.rate)}/s (per webhook)`, round.cpu.paced, round.paced.ok, round.paced.meanMs),
  ]);
}

function printTimeSplit(r: IntakeBenchResult): void {
  console.log(`\nwhere the time goes, ms per webhook (per INSERT for pgbench):\n${PER_UNIT_HEADER.join(' | ')}`);
  for (const row of timeSplitRows(r)) console.log(row.join(' | '));
}

async function record(r: IntakeBenchResult, machine: MachineInfo, seconds: number, profile: ProfileSummary | undefined, measured: number): Promise<void> {
  const allErrors = r.rounds.reduce((sum, round) => sum + errorCount(round.saturated) + errorCount(round.paced), 0);
  const allAccepted = r.rounds.reduce((sum, round) => sum + round.accepted, 0);
  const allStored = r.rounds.reduce((sum, round) => sum + round.stored, 0);
  const medianRound = medianIndex(r.rounds.map((x) => x.saturated.requestsPerSecond / x.pgbench.tps));
  const pacedKeptUp = r.rounds.filter((x) => x.paced.requestsPerSecond >= 0.95 * x.paced.rate).length;
  await appendResults({
    title: 'Webhook intake (bench/intake.ts)',
    command: `node bin/run-ts.js bench/intake.ts${QUICK ? ' (BENCH_QUICK=1)' : ''}`,
    machine,
    notes: [
      `autocannon, ${CONNECTIONS} connections, ${seconds} s per run; every request a distinct signed \`call.stats_report_ready\` ` +
        `(${r.bodyBytes} bytes, its own X-WEBHOOK-ID and session). Service: \`attendance serve --no-worker\` in its own process, warmed up for 2 s once. ` +
        `${r.rounds.length} rounds in this one run, each: \`pgbench -n -c ${PGBENCH_CLIENTS} -j 2 -T ${seconds}\` single-row INSERT with commit into a fresh table with a jsonb column (the baseline), ` +
        "then the service into emptied webhook_events and call_sessions, as fast as it answers and then paced at half that round's pgbench rate (autocannon `overallRate`, latency from the actual send). " +
        'The ratio is taken per round against its own baseline, and the median of the rounds is what is held against the target. ' +
        `A bare Fastify POST route in its own process, once after the rounds, shows what the load generator itself costs on these cores.`,
    ],
    table: {
      header: ['run', 'accepted/s', 'pgbench tps (baseline)', 'ratio to pgbench', 'p50 ms', 'p99 ms', 'paced at 0.5 × pgbench: rate', 'paced p99 ms', 'errors'],
      rows: [
        ...r.rounds.map((x, i) => [
          `round ${i + 1}${i === medianRound ? ' (median)' : ''}`,
          fmt(x.saturated.requestsPerSecond),
          fmt(x.pgbench.tps),
          ratio(x.saturated.requestsPerSecond, x.pgbench.tps),
          String(x.saturated.p50Ms),
          String(x.saturated.p99Ms),
          `${fmt(x.paced.rate)}/s (got ${fmt(x.paced.requestsPerSecond)})`,
          String(x.paced.p99Ms),
          String(errorCount(x.saturated) + errorCount(x.paced)),
        ]),
        [
          'bare Fastify POST route',
          fmt(r.bare.requestsPerSecond),
          fmt(r.rounds[0]!.pgbench.tps),
          ratio(r.bare.requestsPerSecond, r.rounds[0]!.pgbench.tps),
          String(r.bare.p50Ms),
          String(r.bare.p99Ms),
          `${fmt(r.rounds[0]!.paced.rate)}/s (got ${fmt(r.barePaced.requestsPerSecond)})`,
          String(r.barePaced.p99Ms),
          String(errorCount(r.bare) + errorCount(r.barePaced)),
        ],
      ],
    },
    verdicts: [
      `intake ≥ 0.5 × pgbench, median of ${r.rounds.length} rounds: ${r.medianRatio.toFixed(2)} × (${passMiss(r.medianRatio >= 0.5)})`,
      `p99 < ${P99_TARGET_MS} ms at 0.5 × pgbench, median of ${r.rounds.length} rounds: ${r.medianPacedP99Ms} ms (${passMiss(r.medianPacedP99Ms < P99_TARGET_MS && pacedKeptUp * 2 > r.rounds.length)}); ` +
        `the paced rate held in ${pacedKeptUp} of ${r.rounds.length} rounds`,
      `errors: ${allErrors} (${passMiss(allErrors === 0)}); accepted ${fmt(allAccepted)}, found in webhook_events ${fmt(allStored)} (${passMiss(allAccepted === allStored)})`,
      `service vs bare Fastify (round 1): ${ratio(r.rounds[0]!.saturated.requestsPerSecond, r.bare.requestsPerSecond)}`,
    ],
    moreTables: [
      {
        title:
          "Where the time goes, ms per webhook (per INSERT for pgbench), from /proc: CPU of the service process, of the bench database's Postgres backends, " +
          "of Postgres's WAL writer, checkpointer and background writer (shared with the server's other databases), of the bench process (autocannon), " +
          `of every other process on the machine (pgbench's client; other work on the shared cores), and idle core time (${machine.cores} cores × wall). ` +
          'Latency of one unit: mean latency (pgbench: its latency average).',
        header: [...PER_UNIT_HEADER],
        rows: timeSplitRows(r),
      },
    ],
    footnotes: profile ? describeProfile('Profile', profile, measured, 'webhook') : [],
  });
}

function parseArgs(argv: string[]): IntakeBenchOptions {
  const usage = 'usage: intake.ts [--seconds 1..60] [--rounds 1..9]';
  return { seconds: parseCountFlag(argv, '--seconds', 60, usage), rounds: parseCountFlag(argv, '--rounds', 9, usage) };
}

if (import.meta.url === `file://${process.argv[1]}`) await runIntakeBench(parseArgs(process.argv.slice(2)));
